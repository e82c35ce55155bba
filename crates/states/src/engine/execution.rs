//! [`Engine`]: starts, resumes and ends executions. An execution's frames run in
//! [`super::frame`]; here it is started (its first transition committed), watched for
//! `skein states stop` and its `TimeoutSeconds`, and ended ([`Outcome`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::bindings::Handlers;
use super::frame::{HistoryCount, Run, first_state, now};
use super::interrupt::Interrupt;
use super::options::Options;
use crate::definition::Definition;
use crate::error::{Error, Result};
use crate::failure::Failure;
use crate::limits;
use crate::mock::MockCase;
use crate::status::ExecutionStatus;
use crate::store::{Execution, Op, Store};

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    pub status: ExecutionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(rename = "executionArn")]
    pub execution_arn: String,
}

/// The engine: a store, bound handlers and options.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    handlers: Handlers,
    options: Options,
    /// Parsed definitions by their text: thousands of child executions share one.
    parsed: Arc<Mutex<HashMap<String, Arc<Definition>>>>,
}

impl Engine {
    /// An engine over `store` with `handlers`.
    pub fn new(store: Store, handlers: Handlers, options: Options) -> Engine {
        Engine {
            store,
            handlers,
            options,
            parsed: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Parses a definition once per distinct text.
    fn parse(&self, definition: &Value) -> Result<Arc<Definition>> {
        let text = definition.to_string();
        if let Some(d) = self
            .parsed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&text)
        {
            return Ok(d.clone());
        }
        let def = Arc::new(Definition::parse(definition)?);
        self.parsed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(text, def.clone());
        Ok(def)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts an execution of `definition` named `machine` and runs it to its end.
    /// `config` is kept with the execution (what a resume needs to bind the same handlers).
    pub async fn start(
        &self,
        machine: &str,
        definition: Value,
        input: Value,
        mock: Option<MockCase>,
        config: Value,
    ) -> Result<Outcome> {
        let id = uuid::Uuid::now_v7().to_string();
        self.start_as(&id, machine, definition, input, mock, config)
            .await
    }

    /// Runs the execution named `id` to its end: starts it if it does not exist, resumes
    /// it if it is running, or returns how it ended. (What a parent's
    /// `states:startExecution.sync` needs to be idempotent across a crash.)
    pub async fn run_named(
        &self,
        id: &str,
        machine: &str,
        definition: Value,
        input: Value,
        config: Value,
    ) -> Result<Outcome> {
        match self.store.execution(id)? {
            None => {
                self.start_as(id, machine, definition, input, None, config)
                    .await
            }
            Some(e) if e.status == ExecutionStatus::Running => self.resume(id).await,
            Some(e) => Ok(Outcome {
                status: e.status,
                output: e.output,
                error: e.error,
                cause: e.cause,
                execution_arn: e.arn,
            }),
        }
    }

    async fn start_as(
        &self,
        id: &str,
        machine: &str,
        definition: Value,
        input: Value,
        mock: Option<MockCase>,
        config: Value,
    ) -> Result<Outcome> {
        if let Some(problem) = crate::execution_name::problem(id) {
            return Err(Error::InvalidName(problem));
        }
        let def = self.parse(&definition)?;
        let bytes = input.to_string().len();
        if bytes > limits::MAX_PAYLOAD_BYTES {
            return Err(Error::InputTooLarge {
                bytes,
                limit: limits::MAX_PAYLOAD_BYTES,
            });
        }
        let id = id.to_string();
        let exec = Execution {
            arn: format!("arn:aws:states:local:000000000000:execution:{machine}:{id}"),
            id,
            name: machine.to_string(),
            definition,
            input: input.clone(),
            status: ExecutionStatus::Running,
            output: None,
            error: None,
            cause: None,
            started_at: now(),
            stopped_at: None,
            config: json!({"config": config, "mock": mock.as_ref().map(MockCase::to_json)}),
        };
        let (root, entered) = first_state(
            &exec.id,
            "0",
            &def,
            input.clone(),
            Value::Object(Map::new()),
        );
        self.store
            .commit(vec![
                Op::PutExecution(Box::new(exec.clone())),
                Op::Event {
                    execution: exec.id.clone(),
                    frame: "0".into(),
                    kind: "ExecutionStarted".into(),
                    details: json!({"input": input}),
                },
                entered,
                Op::PutFrame {
                    execution: exec.id.clone(),
                    frame: Box::new(root),
                },
            ])
            .await?;
        self.drive(exec, def, mock, false).await
    }

    /// Continues an execution from its last committed transition.
    pub async fn resume(&self, id: &str) -> Result<Outcome> {
        let exec = self
            .store
            .execution(id)?
            .ok_or_else(|| Error::UnknownExecution(id.to_string()))?;
        if exec.status != ExecutionStatus::Running {
            return Err(Error::Ended {
                id: exec.id,
                status: exec.status,
            });
        }
        let def = self.parse(&exec.definition)?;
        let mock = exec.config.get("mock").and_then(MockCase::from_json);
        self.drive(exec, def, mock, true).await
    }

    async fn drive(
        &self,
        exec: Execution,
        def: Arc<Definition>,
        mock: Option<MockCase>,
        resuming: bool,
    ) -> Result<Outcome> {
        let counters = if resuming {
            self.store.counters(&exec.id)?
        } else {
            HashMap::new()
        };
        let history = if resuming && self.options.quotas {
            HistoryCount::from_events(&self.store.events(&exec.id)?)
        } else {
            HistoryCount::started()
        };
        let timeout = def.timeout_seconds;
        let run = Arc::new(Run::new(
            self.store.clone(),
            self.handlers.clone(),
            self.options.clone(),
            exec.clone(),
            def,
            mock,
            resuming,
            counters,
            history,
        ));
        let frames = run.run_frame(&run.def, "0".to_string(), None);
        // `skein states stop` marks the execution ABORTED from another process; the run
        // notices within a poll and stops where it is.
        let store = self.store.clone();
        let watched = exec.id.clone();
        let body = async move {
            tokio::select! {
                r = frames => r,
                aborted = watch_abort(store, watched) => Err(aborted),
            }
        };
        let result = match timeout {
            Some(secs) => {
                let elapsed = chrono::DateTime::parse_from_rfc3339(&exec.started_at)
                    .map(|t| {
                        (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                            .num_milliseconds()
                            .max(0) as f64
                            / 1000.0
                    })
                    .unwrap_or(0.0);
                let left = (secs as f64 - elapsed).max(0.0);
                match tokio::time::timeout(run.scaled(left), body).await {
                    Ok(r) => r,
                    Err(_) => Err(Interrupt::TimedOut { seconds: secs }),
                }
            }
            None => body.await,
        };
        // The execution's output is a payload too.
        let result = match result {
            Ok(output) if self.options.quotas => {
                crate::quotas::check_payload("(execution)", "execution output", &output)
                    .map(|()| output)
                    .map_err(Interrupt::from)
            }
            other => other,
        };
        let (status, output, error, cause, kind, details) = match result {
            Ok(output) => (
                ExecutionStatus::Succeeded,
                Some(output.clone()),
                None,
                None,
                "ExecutionSucceeded",
                json!({"output": output}),
            ),
            Err(Interrupt::TimedOut { seconds }) => {
                let f = Failure::new(
                    "States.Timeout",
                    format!("the execution ran longer than its TimeoutSeconds ({seconds})"),
                );
                (
                    ExecutionStatus::TimedOut,
                    None,
                    Some(f.error.clone()),
                    Some(f.cause.clone()),
                    "ExecutionTimedOut",
                    json!({"error": f.error, "cause": f.cause}),
                )
            }
            Err(Interrupt::Aborted) => {
                let record = self.store.execution(&exec.id)?;
                return Ok(Outcome {
                    status: ExecutionStatus::Aborted,
                    output: None,
                    error: record.as_ref().and_then(|r| r.error.clone()),
                    cause: record.and_then(|r| r.cause),
                    execution_arn: exec.arn,
                });
            }
            Err(Interrupt::Store(e)) => return Err(Error::Store(e)),
            Err(Interrupt::Failed(f)) => (
                ExecutionStatus::Failed,
                None,
                Some(f.error.clone()),
                Some(f.cause.clone()),
                "ExecutionFailed",
                json!({"error": f.error, "cause": f.cause}),
            ),
        };
        self.store
            .commit(vec![
                Op::Event {
                    execution: exec.id.clone(),
                    frame: "0".into(),
                    kind: kind.into(),
                    details,
                },
                Op::EndExecution {
                    id: exec.id.clone(),
                    status,
                    output: output.clone(),
                    error: error.clone(),
                    cause: cause.clone(),
                },
            ])
            .await?;
        Ok(Outcome {
            status,
            output,
            error,
            cause,
            execution_arn: exec.arn,
        })
    }
}

/// Waits until the execution is marked `ABORTED` in the store (by another process).
async fn watch_abort(store: Store, id: String) -> Interrupt {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(Some(status)) = store.execution_status(&id)
            && status == ExecutionStatus::Aborted
        {
            return Interrupt::Aborted;
        }
    }
}
