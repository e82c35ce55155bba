//! Mocked Task responses in the AWS Step Functions Local mock-config format:
//!
//! ```json
//! {"StateMachines": {"M": {"TestCases": {"Happy": {"Load": "LoadOk"}}}},
//!  "MockedResponses": {"LoadOk": {"0": {"Return": {"StatusCode": 200, "Payload": {}}},
//!                                 "1-2": {"Throw": {"Error": "E", "Cause": "c"}}}}}
//! ```
//!
//! The n-th invocation (0-based, counted per state over the whole execution, retries
//! included) of a mocked state gets the response whose key is `n` or a range `a-b`
//! holding `n`. For `lambda:invoke` the `Return` is the whole Invoke response.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

pub use crate::error::MockError;
use crate::failure::Failure;

/// One test case: which states are mocked, and their responses.
#[derive(Debug, Clone, PartialEq)]
pub struct MockCase {
    /// State name → response sequence (`"0"`, `"1-2"` → `Return` / `Throw`).
    states: BTreeMap<String, Value>,
}

impl MockCase {
    /// Reads `file` and picks `machine` → `case`.
    pub fn load(file: &Path, machine: &str, case: &str) -> Result<MockCase, MockError> {
        let err = |message: String| MockError {
            file: file.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(file).map_err(|e| err(format!("cannot read: {e}")))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?;
        let cases = doc
            .pointer(&format!(
                "/StateMachines/{}/TestCases",
                crate::definition::escape(machine)
            ))
            .and_then(Value::as_object)
            .ok_or_else(|| {
                err(format!(
                    "no `StateMachines.{machine}.TestCases`; check --state-machine-name"
                ))
            })?;
        let case_map = cases.get(case).and_then(Value::as_object).ok_or_else(|| {
            let known: Vec<&String> = cases.keys().collect();
            err(format!(
                "no test case `{case}` for `{machine}`; known: {known:?}"
            ))
        })?;
        let responses = doc.get("MockedResponses").and_then(Value::as_object);
        let mut states = BTreeMap::new();
        for (state, response) in case_map {
            let name = response.as_str().ok_or_else(|| {
                err(format!(
                    "test case `{case}`, state `{state}`: the value must name a mocked response"
                ))
            })?;
            let seq = responses.and_then(|r| r.get(name)).ok_or_else(|| {
                err(format!(
                    "test case `{case}`, state `{state}`: no `MockedResponses.{name}`"
                ))
            })?;
            let obj = seq.as_object().ok_or_else(|| {
                err(format!(
                    "`MockedResponses.{name}` must be an object of invocation keys"
                ))
            })?;
            for (key, r) in obj {
                if parse_range(key).is_none() {
                    return Err(err(format!(
                        "`MockedResponses.{name}`: key `{key}` must be `n` or `a-b`"
                    )));
                }
                let ok = r.get("Return").is_some()
                    || r.get("Throw").is_some_and(|t| t.get("Error").is_some());
                if !ok {
                    return Err(err(format!(
                        "`MockedResponses.{name}.{key}` needs `Return` or `Throw` with `Error` and `Cause`"
                    )));
                }
            }
            states.insert(state.clone(), seq.clone());
        }
        Ok(MockCase { states })
    }

    /// The response of state `state`'s `n`-th invocation; `None` if the state is not mocked.
    pub fn response(&self, state: &str, n: u64) -> Option<Result<Value, Failure>> {
        let seq = self.states.get(state)?.as_object()?;
        let hit = seq
            .iter()
            .find(|(k, _)| parse_range(k).is_some_and(|(a, b)| a <= n && n <= b));
        Some(match hit {
            Some((_, r)) => match (r.get("Return"), r.get("Throw")) {
                (Some(v), _) => Ok(v.clone()),
                (None, Some(t)) => Err(Failure {
                    error: t
                        .get("Error")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    cause: t
                        .get("Cause")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                }),
                _ => Err(Failure::runtime(format!(
                    "mocked response of `{state}` has neither Return nor Throw"
                ))),
            },
            None => Err(Failure::runtime(format!(
                "state `{state}` is mocked but has no response for invocation {n}; add a key covering {n}"
            ))),
        })
    }

    /// Kept with the execution so `resume` mocks the same way.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.states
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    /// Reads what [`MockCase::to_json`] wrote.
    pub fn from_json(v: &Value) -> Option<MockCase> {
        let obj = v.as_object()?;
        Some(MockCase {
            states: obj.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        })
    }
}

fn parse_range(key: &str) -> Option<(u64, u64)> {
    match key.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => key.trim().parse().ok().map(|n| (n, n)),
    }
}
