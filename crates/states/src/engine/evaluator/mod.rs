//! One [`Evaluator`] per query language, so that each state kind is written once: the
//! state kinds (in `engine/`) say what a state does; the evaluator says how its fields are
//! read in the state's language.
//!
//! | concern | JSONPath ([`jsonpath::JsonPath`]) | JSONata ([`jsonata::Jsonata`]) |
//! | --- | --- | --- |
//! | input | `InputPath` | the input as is (`$states.input`) |
//! | arguments | `Parameters` (Pass: `Result`) | `Arguments` |
//! | result | `ResultSelector` | as is (`$states.result`) |
//! | output | `ResultPath`, then `OutputPath` | `Output` |
//! | assign | `Assign` over the result as `$` | `Assign` over `$states` |
//! | conditions | Choice rules | `Condition` expressions |
//! | errors of values | `States.Runtime` | `States.QueryEvaluationError` |

pub(super) mod jsonata;
pub(super) mod jsonpath;

use serde_json::{Map, Value};

use crate::choice::ChoiceRule;
use crate::definition::{Catcher, MapState, State};
use crate::failure::Failure;
use crate::limits;
use crate::template::Scope;

/// Variables a state assigns (`Assign`).
pub(crate) type Assigned = Map<String, Value>;

/// How a state's fields are read: its input, arguments, output, variables and conditions,
/// in the state's query language.
pub(crate) trait Evaluator: Send + Sync {
    /// The state's effective input: after `InputPath` (JSONPath), as it came (JSONata).
    fn input(&self) -> &Value;

    /// A JSONPath scope over the effective input, the context and the variables: what
    /// `ItemReader`, `ItemBatcher` and `ResultWriter` read in either language.
    fn scope(&self) -> Scope<'_>;

    /// `Parameters` (JSONPath) or `Arguments` (JSONata); `None` when the state has neither
    /// (its input is passed on). `token`: a callback task's token (`$$.Task.Token`).
    fn arguments(&self, token: Option<&str>) -> Result<Option<Value>, Failure>;

    /// A Pass state's result: JSONPath's `Result`, else its `Parameters`; `None` passes the
    /// input on (JSONata's Pass has only `Output` and `Assign`).
    fn pass_result(&self, result: Option<&Value>) -> Result<Option<Value>, Failure>;

    /// `ResultSelector` over a Task, Parallel or Map result (JSONPath; JSONata has none).
    fn select_result(&self, result: Value) -> Result<Value, Failure>;

    /// Output and variables of a state that produced `result` (`None`: a Pass that passes
    /// its input on).
    fn finish(&self, result: Option<Value>) -> Result<(Value, Option<Assigned>), Failure>;

    /// Output of a state that passes its input on (Succeed, Wait, Choice); `rule`: the
    /// `Output` of the Choice rule taken, if it has one.
    fn output(&self, rule: Option<&Value>) -> Result<Value, Failure>;

    /// The state's own `Assign` where it passes its input on (Wait, a Choice's `Default`).
    /// The JSONPath engine has never applied it there (a known gap, kept as it is).
    fn pass_on_assign(&self) -> Result<Option<Assigned>, Failure>;

    /// A Choice rule's `Assign`, over the state's input.
    fn assign(&self, template: &Value) -> Result<Assigned, Failure>;

    /// Whether a Choice rule holds (a JSONPath rule, or a JSONata `Condition`).
    fn condition(&self, rule: &ChoiceRule) -> Result<bool, Failure>;

    /// A Fail state's `Error` or `Cause`: written, or from its `…Path` (JSONPath).
    fn fail_text(&self, fixed: &Option<String>, path: &Option<String>) -> Result<String, Failure>;

    /// How many seconds a Wait state waits, from now.
    fn wait_seconds(&self) -> Result<f64, Failure>;

    /// Output and variables of a catcher that took `failure` (`$states.errorOutput`).
    fn caught(
        &self,
        catcher: &Catcher,
        failure: &Failure,
    ) -> Result<(Value, Option<Assigned>), Failure>;

    /// A Map's items when it has no `ItemReader`: `ItemsPath` or `Items`, else the input.
    fn items(&self, map: &MapState) -> Result<Value, Failure>;

    /// An item's input through `ItemSelector` (`$$.Map.Item` / `$states.context.Map.Item`).
    fn item_input(&self, selector: &Value, index: usize, item: &Value) -> Result<Value, Failure>;

    /// A failure of a value the state computed, as the language names it.
    fn value_failure(&self, failure: Failure) -> Failure;

    /// The value of a JSONata `{% … %}` expression the definition keeps in a `…Path` field.
    fn expression(&self, text: &str) -> Result<Value, Failure>;

    /// An `ItemReader`'s (or a `ResultWriter`'s) request: its `Parameters` rendered as a
    /// payload template (JSONPath), or its `Arguments` with their `{% … %}` expressions
    /// evaluated (JSONata),
    /// <https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html>.
    /// Its `ReaderConfig` comes back with a `{% … %}` `MaxItems` evaluated.
    fn reader_request(&self, reader: &Value) -> Result<(Value, Value), Failure>;
}

/// A Wait's number of seconds: "an integer value from 0 to 99999999", whether written in
/// the definition, read from `SecondsPath` or given by a JSONata `Seconds`
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html>).
pub(super) fn wait_seconds(state: &State, v: &Value, what: &str) -> Result<f64, Failure> {
    limits::integer_in(v, 0, limits::MAX_WAIT_SECONDS)
        .map(|n| n as f64)
        .ok_or_else(|| {
            Failure::runtime(format!(
                "state `{}`: {what} must give an integer from 0 to {} seconds, got {}",
                state.name,
                limits::MAX_WAIT_SECONDS,
                crate::definition::text::shown(v)
            ))
        })
}

/// A runtime failure of a JSONata state's value as AWS names it.
pub(super) fn query_error(f: Failure) -> Failure {
    Failure::new("States.QueryEvaluationError", f.cause)
}

/// Seconds from now until an RFC 3339 timestamp (0 for a past one). AWS wants the `T`
/// between date and time; RFC 3339's allowed space is refused as it refuses it.
pub(super) fn seconds_until(state: &State, v: &Value, what: &str) -> Result<f64, Failure> {
    let s = v.as_str().ok_or_else(|| {
        Failure::runtime(format!(
            "state `{}`: {what} must be a timestamp string, got {}",
            state.name,
            crate::definition::text::shown(v)
        ))
    })?;
    let t = Some(s)
        .filter(|s| matches!(s.as_bytes().get(10), Some(b'T' | b't')))
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .ok_or_else(|| {
            Failure::runtime(format!(
                "state `{}`: {what} `{s}` is not an RFC 3339 timestamp",
                state.name
            ))
        })?;
    // Both ends lie within chrono's range, so the difference cannot overflow.
    let left = t.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Ok(left.num_milliseconds().max(0) as f64 / 1000.0)
}

/// What `Assign` gave, which must be an object of variables.
fn assigned(state: &State, value: Value) -> Result<Assigned, Failure> {
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(Failure::runtime(format!(
            "state `{}`: `Assign` must be an object",
            state.name
        ))),
    }
}
