//! Task: the resource is invoked through its bound [`super::TaskHandler`] (or the mock
//! config), with `TimeoutSeconds`, and for `.waitForTaskToken` a token committed before
//! anyone can answer it, then awaited with `HeartbeatSeconds`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::bindings::{TaskCall, function_name};
use super::evaluator::Evaluator;
use super::frame::{Attempted, Run};
use super::interrupt::Interrupt;
use crate::definition::{Kind, State};
use crate::failure::Failure;
use crate::jsonata;
use crate::limits;
use crate::status::TokenStatus;
use crate::store::{Frame, Op};
use crate::template::{self, Scope};

impl Run {
    /// Invokes the resource with the state's arguments and finishes with its result.
    pub(super) async fn task(
        self: &Arc<Self>,
        state: &State,
        frame: &mut Frame,
        ev: &dyn Evaluator,
        resource: &str,
    ) -> Result<Attempted, Interrupt> {
        // A callback task's token is known to its arguments (`$$.Task.Token`).
        let token = self.callback_token(resource, frame);
        let token_text = token.as_ref().map(|t| match t {
            Ok(t) | Err(t) => t.as_str(),
        });
        let payload = match ev.arguments(token_text)? {
            Some(arguments) => arguments,
            None => ev.input().clone(),
        };
        let result = self.invoke(state, frame, payload, token).await?;
        let result = ev.select_result(self.result_fits(state, result)?)?;
        Ok(Attempted::after(state, ev.finish(Some(result))?))
    }

    /// A callback task's token (known to its input as `$$.Task.Token`): `Ok` if the frame
    /// already committed it (a resumed wait), `Err` with a new one otherwise; `None` for
    /// other tasks.
    fn callback_token(&self, resource: &str, frame: &Frame) -> Option<Result<String, String>> {
        resource.ends_with(".waitForTaskToken").then(|| {
            frame.token.clone().ok_or_else(|| {
                let attempt: u32 = frame.retries.iter().sum();
                format!(
                    "{}.{}.{}.{attempt}",
                    self.exec.id,
                    frame.id.replace('/', "_"),
                    frame.step
                )
            })
        })
    }

    /// The mocked response of `state`'s next invocation, if the execution is mocked.
    fn mocked(&self, state: &State) -> Option<Result<Value, Failure>> {
        let mock = self.mock.as_ref()?;
        let n = {
            let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            let n = counters.entry(state.name.clone()).or_insert(0);
            let current = *n;
            *n += 1;
            current
        };
        mock.response(&state.name, n)
    }

    /// Invokes a Task's resource: mocked, or through the bound handler.
    /// `token`: for a callback task, `Ok(token)` if the frame already committed it (a
    /// resumed wait), `Err(token)` for a new one.
    async fn invoke(
        self: &Arc<Self>,
        state: &State,
        frame: &mut Frame,
        payload: Value,
        token: Option<Result<String, String>>,
    ) -> Result<Value, Interrupt> {
        let Kind::Task {
            resource,
            timeout_seconds,
            timeout_seconds_path,
            heartbeat_seconds,
            heartbeat_seconds_path,
        } = &state.kind
        else {
            return Err(Failure::runtime("not a task").into());
        };
        let ctx = self.context(state, frame, None);
        let scope = Scope {
            input: &frame.input,
            context: &ctx,
            vars: &frame.vars,
        };
        // "a positive, non-zero integer", at most 99999999, from a path as from a literal
        // (https://docs.aws.amazon.com/step-functions/latest/dg/state-task.html)
        let seconds = |fixed: &Option<u64>,
                       path: &Option<String>|
         -> Result<Option<f64>, Failure> {
            match (fixed, path) {
                (Some(s), _) => Ok(Some(*s as f64)),
                (None, Some(p)) => {
                    // a JSONata state's `{% … %}` number, else a JSONPath `…Path`
                    let v = if jsonata::expression(p).is_some() {
                        let states = json!({"input": frame.input, "context": ctx});
                        jsonata::render(&Value::String(p.clone()), &states, &frame.vars)?
                    } else {
                        template::select(&scope, p)?
                    };
                    match limits::integer_in(&v, 1, limits::MAX_TASK_SECONDS) {
                        Some(s) => Ok(Some(s as f64)),
                        None => Err(Failure::runtime(format!(
                            "state `{}`: `{p}` must give an integer number of seconds from 1 to {}, got {}",
                            state.name,
                            limits::MAX_TASK_SECONDS,
                            crate::definition::text::shown(&v)
                        ))),
                    }
                }
                (None, None) => Ok(None),
            }
        };
        let timeout = seconds(timeout_seconds, timeout_seconds_path)?;
        let heartbeat = seconds(heartbeat_seconds, heartbeat_seconds_path)?;
        let wait_token = resource.ends_with(".waitForTaskToken");
        let base = resource
            .trim_end_matches(".waitForTaskToken")
            .trim_end_matches(":2")
            .trim_end_matches(".sync")
            .to_string();
        let scheduled = json!({"resource": resource, "parameters": payload});
        let mut ops = vec![
            self.event(&frame.id, "TaskScheduled", scheduled),
            self.event(&frame.id, "TaskStarted", json!({"resource": resource})),
        ];
        if let Some(mocked) = self.mocked(state) {
            let n = self
                .counters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&state.name)
                .copied()
                .unwrap_or(0);
            ops.push(Op::Counter {
                execution: self.exec.id.clone(),
                key: state.name.clone(),
                value: n,
            });
            self.defer(&frame.id, ops);
            let value = mocked?;
            self.defer(
                &frame.id,
                vec![self.event(
                    &frame.id,
                    "TaskSucceeded",
                    json!({"resource": resource, "output": value}),
                )],
            );
            return Ok(value);
        }
        let (function, call_payload, lambda_invoke) = if base == "arn:aws:states:::lambda:invoke" {
            let name = payload
                .get("FunctionName")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Failure::runtime(format!(
                        "state `{}`: lambda:invoke needs `FunctionName`",
                        state.name
                    ))
                })?;
            (
                Some(function_name(name)),
                payload.get("Payload").cloned().unwrap_or(json!({})),
                true,
            )
        } else if base.starts_with("arn:aws:lambda:") && base.contains(":function:") {
            (Some(function_name(&base)), payload.clone(), false)
        } else {
            (None, payload.clone(), false)
        };
        let handler = self
            .handlers
            .lookup(function.as_deref(), &base, resource)
            .ok_or_else(|| {
            let what = match &function {
                Some(f) => format!("Lambda function `{f}`"),
                None => format!("resource `{resource}`"),
            };
            Failure::new(
                "States.TaskFailed",
                format!("state `{}`: no handler is bound to {what}; bind it in the bindings file (`functions` / `resources`) or mock it", state.name),
            )
        })?;
        // A token must be durable before anyone can answer it, so a waiting task commits
        // its scheduling at once (and only once: a resumed wait keeps its token); a plain
        // task's events are committed with its outcome.
        let token = match token {
            None => {
                self.defer(&frame.id, ops);
                None
            }
            Some(Ok(t)) => Some(t),
            Some(Err(t)) => {
                frame.token = Some(t.clone());
                ops.push(Op::PutToken {
                    token: t.clone(),
                    execution: self.exec.id.clone(),
                    frame: frame.id.clone(),
                });
                ops.push(self.put(frame));
                self.commit_for(&frame.id, ops).await?;
                Some(t)
            }
        };
        let answered = match &token {
            Some(t) => self
                .store
                .token(t)?
                .is_some_and(|r| r.status != TokenStatus::Waiting),
            None => false,
        };
        let call = TaskCall {
            resource: resource.clone(),
            function,
            payload: call_payload,
            token: token.clone(),
            state: state.name.clone(),
            execution: self.exec.arn.clone(),
        };
        let work = async {
            let value = if answered {
                Value::Null
            } else {
                handler.call(&call).await?
            };
            match &token {
                Some(t) => self.await_token(t, heartbeat).await,
                None => Ok(value),
            }
        };
        let result = match timeout {
            Some(secs) => match tokio::time::timeout(self.scaled(secs), work).await {
                Ok(r) => r,
                Err(_) => Err(Failure::new(
                    "States.Timeout",
                    format!(
                        "state `{}` ran longer than TimeoutSeconds ({secs})",
                        state.name
                    ),
                )
                .into()),
            },
            None => work.await,
        };
        let result = result.map(|v| {
            if lambda_invoke && !wait_token {
                json!({"ExecutedVersion": "$LATEST", "Payload": v, "StatusCode": 200})
            } else {
                v
            }
        });
        if let Ok(v) = &result {
            self.defer(
                &frame.id,
                vec![self.event(
                    &frame.id,
                    "TaskSucceeded",
                    json!({"resource": resource, "output": v}),
                )],
            );
        }
        result
    }

    /// Waits for a callback task's token to be answered, or its heartbeat to lapse.
    async fn await_token(&self, token: &str, heartbeat: Option<f64>) -> Result<Value, Interrupt> {
        loop {
            // Register for the wake-up before reading, so an answer in between is not missed.
            let woken = self.store.answered().notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let record = self.store.token(token)?;
            let Some(record) = record else {
                return Err(Failure::runtime(format!(
                    "task token `{token}` vanished from the store"
                ))
                .into());
            };
            match record.status {
                TokenStatus::Succeeded => return Ok(record.output.unwrap_or(Value::Null)),
                TokenStatus::Failed => {
                    return Err(Failure {
                        error: record.error.unwrap_or_default(),
                        cause: record.cause.unwrap_or_default(),
                    }
                    .into());
                }
                TokenStatus::Waiting => {}
            }
            if let Some(hb) = heartbeat
                && let Ok(last) = chrono::DateTime::parse_from_rfc3339(&record.heartbeat_at)
            {
                let since = (chrono::Utc::now() - last.with_timezone(&chrono::Utc))
                    .num_milliseconds() as f64
                    / 1000.0;
                if since > hb * self.options.time_scale {
                    return Err(Failure::new(
                        "States.HeartbeatTimeout",
                        format!(
                            "no heartbeat for task token `{token}` within HeartbeatSeconds ({hb})"
                        ),
                    )
                    .into());
                }
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep(self.options.token_poll) => {}
            }
        }
    }

    /// A task's result over AWS's payload limit is `States.DataLimitExceeded`.
    fn result_fits(&self, state: &State, result: Value) -> Result<Value, Failure> {
        if self.options.quotas {
            crate::quotas::check_payload(&state.name, "task result", &result)?;
        }
        Ok(result)
    }
}
