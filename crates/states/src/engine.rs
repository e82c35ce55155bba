//! The interpreter: runs a [`Definition`] state by state, committing every transition to
//! the [`Store`] before acting on it, so that [`Engine::resume`] continues a killed run.
//!
//! An execution is a tree of frames: the root runs the machine's states; each Parallel
//! branch and Map iteration is a child frame (`<parent>/<step>:<index>`), resumed or
//! re-used (when it already ended) on restart. A Task whose result was not committed
//! before a crash is invoked again: bound handlers must be idempotent.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::choice;
pub use crate::error::Error as EngineError;
use crate::error::Error;
pub use crate::failure::Failure;
use crate::definition::{Definition, Kind, MapState, QueryLanguage, Retrier, State};
use crate::jsonata;
use crate::limits;
use crate::mock::MockCase;
use crate::status::{ExecutionStatus, TokenStatus};
use crate::error::StoreError;
use crate::store::{Event, Execution, Frame, FrameStatus, Op, Store};
use crate::template::{self, Scope};

/// A Task invocation, as a bound handler sees it.
#[derive(Debug, Clone)]
pub struct TaskCall {
    /// The state's `Resource`.
    pub resource: String,
    /// For Lambda resources: the function name.
    pub function: Option<String>,
    /// The payload (the function's event).
    pub payload: Value,
    /// For `.waitForTaskToken`: the token to answer with `send-task-success|failure`.
    pub token: Option<String>,
    /// The state's name.
    pub state: String,
    /// The execution ARN.
    pub execution: String,
}

/// A Task resource bound by the embedding program (skein's use cases, a command, …).
#[async_trait]
pub trait TaskHandler: Send + Sync {
    /// Runs the task; the value is the task's result. Must be idempotent: after a crash a
    /// task whose result was not committed runs again.
    async fn call(&self, call: &TaskCall) -> Result<Value, Failure>;
}

/// Which handler serves which resource.
#[derive(Default, Clone)]
pub struct Handlers {
    functions: HashMap<String, Arc<dyn TaskHandler>>,
    resources: HashMap<String, Arc<dyn TaskHandler>>,
}

impl Handlers {
    /// Binds a Lambda function name (for `lambda:invoke` and function ARNs).
    pub fn function(&mut self, name: &str, handler: Arc<dyn TaskHandler>) -> &mut Self {
        self.functions.insert(name.to_string(), handler);
        self
    }

    /// Binds a resource ARN (without `.sync` / `.waitForTaskToken`).
    pub fn resource(&mut self, arn: &str, handler: Arc<dyn TaskHandler>) -> &mut Self {
        self.resources.insert(arn.to_string(), handler);
        self
    }
}

/// Engine options.
#[derive(Clone)]
pub struct Options {
    /// Multiplies every Wait, retry delay and timeout (tests run with e.g. 0.01).
    pub time_scale: f64,
    /// Directory standing in for S3: `s3://bucket/key` is `<s3_root>/bucket/key`.
    pub s3_root: PathBuf,
    /// How often a waiting task polls for its token's answer.
    pub token_poll: Duration,
    /// Enforce AWS's quotas ([`crate::quotas`]): payload sizes, history length.
    pub quotas: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            time_scale: std::env::var("SKEIN_STATES_TIME_SCALE")
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .unwrap_or(1.0),
            s3_root: PathBuf::from("."),
            token_poll: Duration::from_millis(50),
            quotas: std::env::var_os("SKEIN_STATES_NO_QUOTAS").is_none(),
        }
    }
}

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

struct Run {
    store: Store,
    handlers: Handlers,
    options: Options,
    exec: Execution,
    def: Arc<Definition>,
    mock: Option<MockCase>,
    resuming: bool,
    counters: Mutex<HashMap<String, u64>>,
    /// Events of a frame waiting to be committed with its next transition.
    deferred: Mutex<HashMap<String, Vec<Op>>>,
    /// Events per history: the execution's (key "") and each distributed Map item's.
    history: Mutex<HistoryCount>,
}

/// Event counts per history, for the 25,000-event quota.
#[derive(Default)]
struct HistoryCount {
    /// Frames that are distributed Map items (their own child-execution history).
    items: std::collections::HashSet<String>,
    /// Events per history owner ("" = the execution).
    events: HashMap<String, u64>,
}

impl HistoryCount {
    /// Counts from a stored history (a resumed execution).
    fn from_events(events: &[crate::store::Event]) -> HistoryCount {
        let mut h = HistoryCount::default();
        for e in events {
            if e.kind == "MapIterationStarted"
                && e.details.get("distributed") == Some(&Value::Bool(true))
                && let Some(child) = e.details.get("frame").and_then(Value::as_str)
            {
                h.items.insert(child.to_string());
            }
        }
        for e in events {
            h.count(&e.frame, &e.kind, &e.details);
        }
        h
    }

    /// Counts one event; returns its history owner and that history's count.
    fn count(&mut self, frame: &str, kind: &str, details: &Value) -> (String, u64) {
        if kind == "MapIterationStarted"
            && details.get("distributed") == Some(&Value::Bool(true))
            && let Some(child) = details.get("frame").and_then(Value::as_str)
        {
            // the item's child execution starts its own history
            self.items.insert(child.to_string());
            let n = self.events.entry(child.to_string()).or_default();
            *n += 1;
            return (child.to_string(), *n);
        }
        let owner = crate::quotas::history_owner(frame, |f| self.items.contains(f))
            .unwrap_or("")
            .to_string();
        let n = self.events.entry(owner.clone()).or_default();
        *n += 1;
        (owner, *n)
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

enum Step {
    Next { next: String, output: Value },
    End { output: Value },
}

/// What attempting a state gives: a step, plus variables it assigns.
struct Attempted {
    step: Step,
    assign: Option<Map<String, Value>>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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
    fn parse(&self, definition: &Value) -> Result<Arc<Definition>, Error> {
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
    ) -> Result<Outcome, Error> {
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
    ) -> Result<Outcome, Error> {
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
    ) -> Result<Outcome, Error> {
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
        let root = Frame {
            id: "0".into(),
            state: def.start_at.clone(),
            input: input.clone(),
            step: 0,
            status: FrameStatus::Running,
            output: None,
            error: None,
            cause: None,
            retries: Vec::new(),
            vars: Value::Object(Map::new()),
            wake_at: None,
            token: None,
            entered_at: now(),
        };
        let first = def
            .states
            .get(&def.start_at)
            .map(|s| s.kind.type_name())
            .unwrap_or("Pass");
        self.store
            .commit(vec![
                Op::PutExecution(Box::new(exec.clone())),
                Op::Event {
                    execution: exec.id.clone(),
                    frame: "0".into(),
                    kind: "ExecutionStarted".into(),
                    details: json!({"input": input}),
                },
                Op::Event {
                    execution: exec.id.clone(),
                    frame: "0".into(),
                    kind: format!("{first}StateEntered"),
                    details: json!({"name": def.start_at, "input": input}),
                },
                Op::PutFrame {
                    execution: exec.id.clone(),
                    frame: Box::new(root),
                },
            ])
            .await?;
        self.drive(exec, def, mock, false).await
    }

    /// Continues an execution from its last committed transition.
    pub async fn resume(&self, id: &str) -> Result<Outcome, Error> {
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
    ) -> Result<Outcome, Error> {
        let counters = if resuming {
            self.store.counters(&exec.id)?
        } else {
            HashMap::new()
        };
        let history = if resuming && self.options.quotas {
            HistoryCount::from_events(&self.store.events(&exec.id)?)
        } else {
            let mut h = HistoryCount::default();
            // ExecutionStarted and the first StateEntered, committed by start_as
            h.events.insert(String::new(), 2);
            h
        };
        let timeout = def.timeout_seconds;
        let run = Arc::new(Run {
            store: self.store.clone(),
            handlers: self.handlers.clone(),
            options: self.options.clone(),
            exec: exec.clone(),
            def,
            mock,
            resuming,
            counters: Mutex::new(counters),
            deferred: Mutex::new(HashMap::new()),
            history: Mutex::new(history),
        });
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
                    Err(_) => Err(Failure::new(
                        "States.Timeout",
                        format!("the execution ran longer than its TimeoutSeconds ({secs})"),
                    )),
                }
            }
            None => body.await,
        };
        // The execution's output is a payload too.
        let result = match result {
            Ok(output) if self.options.quotas => {
                crate::quotas::check_payload("(execution)", "execution output", &output)
                    .map(|()| output)
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
            Err(f)
                if f.error == "States.Timeout" && f.cause.contains("the execution ran longer") =>
            {
                (
                    ExecutionStatus::TimedOut,
                    None,
                    Some(f.error.clone()),
                    Some(f.cause.clone()),
                    "ExecutionTimedOut",
                    json!({"error": f.error, "cause": f.cause}),
                )
            }
            Err(f) if f.error == ABORTED => {
                let record = self.store.execution(&exec.id)?;
                return Ok(Outcome {
                    status: ExecutionStatus::Aborted,
                    output: None,
                    error: record.as_ref().and_then(|r| r.error.clone()),
                    cause: record.and_then(|r| r.cause),
                    execution_arn: exec.arn,
                });
            }
            Err(f) if f.error == "skein.Store" => {
                return Err(Error::Store(StoreError {
                    path: String::new(),
                    message: f.cause,
                }));
            }
            Err(f) => (
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

const ABORTED: &str = "skein.Aborted";

async fn watch_abort(store: Store, id: String) -> Failure {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(Some(status)) = store.execution_status(&id)
            && status == ExecutionStatus::Aborted
        {
            return Failure::new(ABORTED, "stopped");
        }
    }
}

fn store_failure(e: StoreError) -> Failure {
    Failure::new("skein.Store", e.to_string())
}

/// Whether a catcher or retrier's `ErrorEquals` takes `error`.
pub fn error_matches(names: &[String], error: &str) -> bool {
    if error == "States.Runtime" {
        return false;
    }
    // A terminal error that `States.ALL` (and `States.TaskFailed`) do not take: only a
    // retrier or catcher naming it does.
    // https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
    if error == crate::quotas::DATA_LIMIT_EXCEEDED {
        return names.iter().any(|n| n == error);
    }
    names.iter().any(|n| {
        n == error || n == "States.ALL" || (n == "States.TaskFailed" && error != "States.Timeout")
    })
}

impl Run {
    fn scaled(&self, secs: f64) -> Duration {
        limits::duration(secs * self.options.time_scale)
    }

    /// The wake-up time `secs` (scaled) from now; a time past what a timestamp holds is a
    /// `States.Runtime` failure of `state` (the bounds checked when reading the definition
    /// keep every documented value well inside it).
    fn wake_in(&self, state: &State, secs: f64) -> Result<String, Failure> {
        limits::wake_after(self.scaled(secs)).ok_or_else(|| {
            Failure::runtime(format!(
                "state `{}`: a wait of {secs} seconds ends past the last time a timestamp can hold",
                state.name
            ))
        })
    }

    fn context(&self, state: &State, frame: &Frame, token: Option<&str>) -> Value {
        // The context object as AWS shapes it
        // (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html):
        // an execution that was never redriven has RedriveCount 0, and RetryCount is a Task
        // state's only.
        let retry_count: u32 = frame.retries.iter().sum();
        let mut ctx = json!({
            "Execution": {
                "Id": self.exec.arn,
                "Input": self.exec.input,
                "Name": self.exec.id,
                "StartTime": self.exec.started_at,
                "RoleArn": "arn:aws:iam::000000000000:role/skein-local",
                "RedriveCount": 0,
            },
            "StateMachine": {
                "Id": format!("arn:aws:states:local:000000000000:stateMachine:{}", self.exec.name),
                "Name": self.exec.name,
            },
            "State": {"Name": state.name, "EnteredTime": frame.entered_at},
        });
        if matches!(state.kind, Kind::Task { .. }) {
            ctx["State"]["RetryCount"] = json!(retry_count);
        }
        if let Some(t) = token {
            ctx["Task"] = json!({"Token": t});
        }
        ctx
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<(), Failure> {
        if self.options.quotas {
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            for op in &ops {
                if let Op::Event {
                    frame,
                    kind,
                    details,
                    ..
                } = op
                {
                    let (owner, n) = h.count(frame, kind, details);
                    if n > crate::quotas::MAX_HISTORY_EVENTS {
                        return Err(crate::quotas::history_full(&owner));
                    }
                }
            }
        }
        self.store.commit(ops).await.map_err(store_failure)
    }

    /// Holds `ops` back until the frame's next commit, so that a task's events and its
    /// effect on the frame are durable together (or not at all, and the task runs again).
    fn defer(&self, frame: &str, ops: Vec<Op>) {
        let mut d = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
        d.entry(frame.to_string()).or_default().extend(ops);
    }

    /// Commits `ops` of `frame` together with what was deferred for it.
    async fn commit_for(&self, frame: &str, ops: Vec<Op>) -> Result<(), Failure> {
        let mut all = {
            let mut d = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
            d.remove(frame).unwrap_or_default()
        };
        all.extend(ops);
        self.commit(all).await
    }

    fn event(&self, frame: &str, kind: &str, details: Value) -> Op {
        Op::Event {
            execution: self.exec.id.clone(),
            frame: frame.to_string(),
            kind: kind.to_string(),
            details,
        }
    }

    fn put(&self, frame: &Frame) -> Op {
        Op::PutFrame {
            execution: self.exec.id.clone(),
            frame: Box::new(frame.clone()),
        }
    }

    /// Runs (or resumes, or re-reads) one frame to its end. `init` creates it: its input,
    /// variables, and the events to commit with its creation.
    fn run_frame<'a>(
        self: &'a Arc<Self>,
        def: &'a Definition,
        id: String,
        init: Option<(Value, Value, Vec<Op>)>,
    ) -> Boxed<'a, Result<Value, Failure>> {
        Box::pin(async move {
            let existing = if self.resuming || init.is_none() {
                self.store
                    .frame(&self.exec.id, &id)
                    .map_err(store_failure)?
            } else {
                None
            };
            let mut frame = match (existing, init) {
                (Some(f), _) => f,
                (None, Some((input, vars, mut ops))) => {
                    let f = Frame {
                        id: id.clone(),
                        state: def.start_at.clone(),
                        input: input.clone(),
                        step: 0,
                        status: FrameStatus::Running,
                        output: None,
                        error: None,
                        cause: None,
                        retries: Vec::new(),
                        vars,
                        wake_at: None,
                        token: None,
                        entered_at: now(),
                    };
                    let first = def
                        .states
                        .get(&def.start_at)
                        .map(|s| s.kind.type_name())
                        .unwrap_or("Pass");
                    ops.push(self.event(
                        &id,
                        &format!("{first}StateEntered"),
                        json!({"name": def.start_at, "input": input}),
                    ));
                    ops.push(self.put(&f));
                    self.commit(ops).await?;
                    f
                }
                (None, None) => {
                    return Err(Failure::runtime(format!(
                        "frame `{id}` is missing from the store"
                    )));
                }
            };
            loop {
                match frame.status {
                    FrameStatus::Succeeded => {
                        return Ok(frame.output.clone().unwrap_or(Value::Null));
                    }
                    FrameStatus::Failed => {
                        return Err(Failure {
                            error: frame.error.clone().unwrap_or_default(),
                            cause: frame.cause.clone().unwrap_or_default(),
                        });
                    }
                    FrameStatus::Running => {}
                }
                let Some(state) = def.states.get(&frame.state) else {
                    return Err(Failure::runtime(format!(
                        "state `{}` is not in the definition",
                        frame.state
                    )));
                };
                let exited = format!("{}StateExited", state.kind.type_name());
                match self.run_state(state, &mut frame).await {
                    Ok(Attempted { step, assign }) => {
                        if let Some(vars) = assign
                            && let Value::Object(current) = &mut frame.vars
                        {
                            current.extend(vars);
                        }
                        match step {
                            Step::Next { next, output } => {
                                let next_type = def
                                    .states
                                    .get(&next)
                                    .map(|s| s.kind.type_name())
                                    .unwrap_or("Pass");
                                frame.state = next.clone();
                                frame.input = output.clone();
                                frame.step += 1;
                                frame.retries.clear();
                                frame.wake_at = None;
                                frame.token = None;
                                frame.entered_at = now();
                                self.commit_for(
                                    &id,
                                    vec![
                                        self.event(
                                            &id,
                                            &exited,
                                            json!({"name": state.name, "output": output}),
                                        ),
                                        self.event(
                                            &id,
                                            &format!("{next_type}StateEntered"),
                                            json!({"name": next, "input": output}),
                                        ),
                                        self.put(&frame),
                                    ],
                                )
                                .await?;
                            }
                            Step::End { output } => {
                                frame.status = FrameStatus::Succeeded;
                                frame.output = Some(output.clone());
                                frame.step += 1;
                                self.commit_for(
                                    &id,
                                    vec![
                                        self.event(
                                            &id,
                                            &exited,
                                            json!({"name": state.name, "output": output}),
                                        ),
                                        self.put(&frame),
                                    ],
                                )
                                .await?;
                            }
                        }
                    }
                    Err(f) if f.error == "skein.Store" => return Err(f),
                    Err(f) => {
                        frame.status = FrameStatus::Failed;
                        frame.error = Some(f.error.clone());
                        frame.cause = Some(f.cause.clone());
                        self.commit_for(&id, vec![self.put(&frame)]).await?;
                    }
                }
            }
        })
    }

    /// Runs a state with its retriers and catchers.
    async fn run_state(
        self: &Arc<Self>,
        state: &State,
        frame: &mut Frame,
    ) -> Result<Attempted, Failure> {
        loop {
            if let Some(wake) = frame.wake_at.clone() {
                self.sleep_until(&wake).await;
                frame.wake_at = None;
            }
            let failure = match self
                .attempt(state, frame)
                .await
                .and_then(|a| self.fits(state, a))
            {
                Ok(a) => return Ok(a),
                Err(f) if f.error == "skein.Store" || f.error == "States.Runtime" => return Err(f),
                Err(f) => f,
            };
            frame.token = None;
            if matches!(state.kind, Kind::Task { .. }) {
                let resource = if let Kind::Task { resource, .. } = &state.kind {
                    resource.clone()
                } else {
                    String::new()
                };
                let kind = if failure.error == "States.Timeout" {
                    "TaskTimedOut"
                } else {
                    "TaskFailed"
                };
                self.defer(
                    &frame.id,
                    vec![self.event(&frame.id, kind, json!({"resource": resource, "error": failure.error, "cause": failure.cause}))],
                );
            }
            if let Some((i, retrier)) = state
                .retry
                .iter()
                .enumerate()
                .find(|(_, r)| error_matches(&r.error_equals, &failure.error))
            {
                frame.retries.resize(state.retry.len(), 0);
                let used = frame.retries[i];
                if used < retrier.max_attempts {
                    frame.retries[i] = used + 1;
                    let delay = retry_delay(retrier, used);
                    frame.wake_at = Some(self.wake_in(state, delay)?);
                    self.commit_for(&frame.id, vec![self.put(frame)]).await?;
                    continue;
                }
            }
            if let Some(catcher) = state
                .catch
                .iter()
                .find(|c| error_matches(&c.error_equals, &failure.error))
            {
                let (output, assign) = if state.query_language == QueryLanguage::Jsonata {
                    // JSONata: `$states.errorOutput`; the output defaults to the error.
                    let mut states = self.jsonata_states(state, frame, None);
                    states["errorOutput"] = failure.as_json();
                    let output = match &catcher.output {
                        Some(t) => jsonata::render(t, &states, &frame.vars)?,
                        None => failure.as_json(),
                    };
                    let assign = match &catcher.assign {
                        Some(t) => Some(self.jsonata_assign(t, &states, frame, state)?),
                        None => None,
                    };
                    (output, assign)
                } else {
                    let output = template::apply_result_path(
                        &catcher.result_path,
                        &frame.input,
                        failure.as_json(),
                    )?;
                    let assign = match &catcher.assign {
                        Some(t) => Some(self.assign(t, &failure.as_json(), frame, state)?),
                        None => None,
                    };
                    (output, assign)
                };
                return Ok(Attempted {
                    step: Step::Next {
                        next: catcher.next.clone(),
                        output,
                    },
                    assign,
                });
            }
            return Err(failure);
        }
    }

    /// A state's output over AWS's payload limit is `States.DataLimitExceeded`.
    fn fits(&self, state: &State, a: Attempted) -> Result<Attempted, Failure> {
        if self.options.quotas {
            let (Step::Next { output, .. } | Step::End { output }) = &a.step;
            crate::quotas::check_payload(&state.name, "state output", output)?;
        }
        Ok(a)
    }

    /// A task's result over AWS's payload limit is `States.DataLimitExceeded`.
    fn result_fits(&self, state: &State, result: Value) -> Result<Value, Failure> {
        if self.options.quotas {
            crate::quotas::check_payload(&state.name, "task result", &result)?;
        }
        Ok(result)
    }

    async fn sleep_until(&self, wake: &str) {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(wake) {
            let left = (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
            if left > 0 {
                tokio::time::sleep(Duration::from_millis(left as u64)).await;
            }
        }
    }

    fn assign(
        &self,
        template_value: &Value,
        result: &Value,
        frame: &Frame,
        state: &State,
    ) -> Result<Map<String, Value>, Failure> {
        let ctx = self.context(state, frame, None);
        let scope = Scope {
            input: result,
            context: &ctx,
            vars: &frame.vars,
        };
        match template::render(template_value, &scope)? {
            Value::Object(m) => Ok(m),
            _ => Err(Failure::runtime(format!(
                "state `{}`: `Assign` must be an object",
                state.name
            ))),
        }
    }

    /// One attempt of a state: input processing, the state's work, output processing.
    async fn attempt(
        self: &Arc<Self>,
        state: &State,
        frame: &mut Frame,
    ) -> Result<Attempted, Failure> {
        if state.query_language == QueryLanguage::Jsonata {
            return self.attempt_jsonata(state, frame).await;
        }
        let raw = frame.input.clone();
        let ctx = self.context(state, frame, None);
        let vars = frame.vars.clone();
        let scope = Scope {
            input: &raw,
            context: &ctx,
            vars: &vars,
        };
        let effective = template::apply_path(&state.input_path, &raw, &scope)?;
        let eff_scope = Scope {
            input: &effective,
            context: &ctx,
            vars: &vars,
        };
        let finish = |result: Value, frame: &Frame| -> Result<Attempted, Failure> {
            let assign = match &state.assign {
                Some(t) => Some(self.assign(t, &result, frame, state)?),
                None => None,
            };
            let placed = template::apply_result_path(&state.result_path, &raw, result)?;
            let output = template::apply_path(&state.output_path, &placed, &scope)?;
            Ok(Attempted {
                step: step_after(state, output),
                assign,
            })
        };
        match &state.kind {
            Kind::Pass { result } => {
                let value = match (result, &state.parameters) {
                    (Some(r), _) => r.clone(),
                    (None, Some(p)) => template::render(p, &eff_scope)?,
                    (None, None) => effective.clone(),
                };
                finish(value, frame)
            }
            Kind::Succeed => {
                let output = template::apply_path(&state.output_path, &effective, &scope)?;
                Ok(Attempted {
                    step: Step::End { output },
                    assign: None,
                })
            }
            Kind::Fail {
                error,
                cause,
                error_path,
                cause_path,
            } => {
                let pick =
                    |fixed: &Option<String>, path: &Option<String>| -> Result<String, Failure> {
                        match (fixed, path) {
                            (Some(s), _) => Ok(s.clone()),
                            (None, Some(p)) => match template::eval(p, &scope)? {
                                Value::String(s) => Ok(s),
                                other => Err(Failure::runtime(format!(
                                    "`{p}` must give a string, got {other}"
                                ))),
                            },
                            (None, None) => Ok(String::new()),
                        }
                    };
                Err(Failure {
                    error: pick(error, error_path)?,
                    cause: pick(cause, cause_path)?,
                })
            }
            Kind::Choice { choices, default } => {
                for c in choices {
                    let hit = choice::decide_scoped(&c.rule, &effective, &ctx, &frame.vars)
                        .map_err(|e| Failure::runtime(e.0))?;
                    if hit {
                        let output = template::apply_path(&state.output_path, &effective, &scope)?;
                        let assign = match &c.assign {
                            Some(t) => Some(self.assign(t, &effective, frame, state)?),
                            None => None,
                        };
                        return Ok(Attempted {
                            step: Step::Next {
                                next: c.next.clone(),
                                output,
                            },
                            assign,
                        });
                    }
                }
                match default {
                    Some(d) => Ok(Attempted {
                        step: Step::Next {
                            next: d.clone(),
                            output: template::apply_path(&state.output_path, &effective, &scope)?,
                        },
                        assign: None,
                    }),
                    None => Err(Failure::new(
                        "States.NoChoiceMatched",
                        format!(
                            "no choice rule of state `{}` matched and it has no `Default`",
                            state.name
                        ),
                    )),
                }
            }
            Kind::Wait {
                seconds,
                timestamp,
                seconds_path,
                timestamp_path,
            } => {
                if frame.wake_at.is_none() {
                    let until = wait_until(
                        state,
                        seconds,
                        timestamp,
                        seconds_path,
                        timestamp_path,
                        &eff_scope,
                        self,
                    )?;
                    frame.wake_at = Some(until);
                    self.commit_for(&frame.id, vec![self.put(frame)]).await?;
                }
                if let Some(w) = frame.wake_at.clone() {
                    self.sleep_until(&w).await;
                }
                let output = template::apply_path(&state.output_path, &effective, &scope)?;
                Ok(Attempted {
                    step: step_after(state, output),
                    assign: None,
                })
            }
            Kind::Task { resource, .. } => {
                // A callback task's token is known to its `Parameters` (`$$.Task.Token`).
                let token = self.callback_token(resource, frame);
                let task_ctx = self.context(
                    state,
                    frame,
                    token.as_ref().map(|t| match t {
                        Ok(t) | Err(t) => t.as_str(),
                    }),
                );
                let payload = match &state.parameters {
                    Some(p) => template::render(
                        p,
                        &Scope {
                            input: &effective,
                            context: &task_ctx,
                            vars: &vars,
                        },
                    )?,
                    None => effective.clone(),
                };
                let result =
                    self.result_fits(state, self.invoke(state, frame, payload, token).await?)?;
                let result = match &state.result_selector {
                    Some(sel) => template::render(
                        sel,
                        &Scope {
                            input: &result,
                            context: &ctx,
                            vars: &vars,
                        },
                    )?,
                    None => result,
                };
                finish(result, frame)
            }
            Kind::Parallel { branches } => {
                let input = match &state.parameters {
                    Some(p) => template::render(p, &eff_scope)?,
                    None => effective.clone(),
                };
                let outputs = self.run_branches(state, branches, frame, &input).await?;
                let result = Value::Array(outputs);
                let result = match &state.result_selector {
                    Some(sel) => template::render(
                        sel,
                        &Scope {
                            input: &result,
                            context: &ctx,
                            vars: &vars,
                        },
                    )?,
                    None => result,
                };
                finish(result, frame)
            }
            Kind::Map(map) => {
                let result = self
                    .run_map(
                        state,
                        map,
                        frame,
                        MapInput {
                            effective: &effective,
                            ctx: &ctx,
                            vars: &vars,
                            jsonata: None,
                        },
                    )
                    .await?;
                let result = match &state.result_selector {
                    Some(sel) => template::render(
                        sel,
                        &Scope {
                            input: &result,
                            context: &ctx,
                            vars: &vars,
                        },
                    )?,
                    None => result,
                };
                finish(result, frame)
            }
        }
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

    /// Runs a Parallel state's branches, each a child frame, and returns their outputs.
    async fn run_branches(
        self: &Arc<Self>,
        state: &State,
        branches: &[Definition],
        frame: &Frame,
        input: &Value,
    ) -> Result<Vec<Value>, Failure> {
        let step = frame.step;
        let futures = branches.iter().enumerate().map(|(i, branch)| {
            let child = format!("{}/{step}:{i}", frame.id);
            let ops = vec![self.event(
                &frame.id,
                "ParallelBranchStarted",
                json!({"name": state.name, "index": i}),
            )];
            self.run_frame(
                branch,
                child,
                Some((input.clone(), frame.vars.clone(), ops)),
            )
        });
        futures::future::try_join_all(futures).await
    }

    /// `$states` for a JSONata state: its input and the context object.
    fn jsonata_states(&self, state: &State, frame: &Frame, token: Option<&str>) -> Value {
        json!({"input": frame.input, "context": self.context(state, frame, token)})
    }

    fn jsonata_assign(
        &self,
        template_value: &Value,
        states: &Value,
        frame: &Frame,
        state: &State,
    ) -> Result<Map<String, Value>, Failure> {
        match jsonata::render(template_value, states, &frame.vars)? {
            Value::Object(m) => Ok(m),
            _ => Err(Failure::runtime(format!(
                "state `{}`: `Assign` must be an object",
                state.name
            ))),
        }
    }

    /// One attempt of a JSONata state: `Arguments` in, `Output` and `Assign` out.
    async fn attempt_jsonata(
        self: &Arc<Self>,
        state: &State,
        frame: &mut Frame,
    ) -> Result<Attempted, Failure> {
        let raw = frame.input.clone();
        let vars = frame.vars.clone();
        let mut states = self.jsonata_states(state, frame, None);
        // Output and Assign of a state with a result see it as `$states.result`.
        let finish = |result: Option<Value>,
                      states: &mut Value,
                      frame: &Frame|
         -> Result<Attempted, Failure> {
            if let Some(r) = &result {
                states["result"] = r.clone();
            }
            let output = match &state.output {
                Some(t) => jsonata::render(t, states, &vars)?,
                None => result.unwrap_or_else(|| raw.clone()),
            };
            let assign = match &state.assign {
                Some(t) => Some(self.jsonata_assign(t, states, frame, state)?),
                None => None,
            };
            Ok(Attempted {
                step: step_after(state, output),
                assign,
            })
        };
        let arguments = |states: &Value| -> Result<Value, Failure> {
            match &state.arguments {
                Some(t) => jsonata::render(t, states, &vars),
                None => Ok(raw.clone()),
            }
        };
        match &state.kind {
            Kind::Pass { .. } => finish(None, &mut states, frame),
            Kind::Succeed => {
                let output = match &state.output {
                    Some(t) => jsonata::render(t, &states, &vars)?,
                    None => raw.clone(),
                };
                Ok(Attempted {
                    step: Step::End { output },
                    assign: None,
                })
            }
            Kind::Fail { error, cause, .. } => {
                let text = |v: &Option<String>| -> Result<String, Failure> {
                    match v {
                        Some(s) => {
                            match jsonata::render(&Value::String(s.clone()), &states, &vars)? {
                                Value::String(s) => Ok(s),
                                other => Ok(other.to_string()),
                            }
                        }
                        None => Ok(String::new()),
                    }
                };
                Err(Failure {
                    error: text(error)?,
                    cause: text(cause)?,
                })
            }
            Kind::Choice { choices, default } => {
                for c in choices {
                    let choice::Rule::Condition(cond) = &c.rule else {
                        continue;
                    };
                    let hit = match jsonata::render(cond, &states, &vars)? {
                        Value::Bool(b) => b,
                        other => {
                            return Err(Failure::runtime(format!(
                                "state `{}`: a `Condition` must give true or false, got {other}",
                                state.name
                            )));
                        }
                    };
                    if hit {
                        let output = match c.output.as_ref().or(state.output.as_ref()) {
                            Some(t) => jsonata::render(t, &states, &vars)?,
                            None => raw.clone(),
                        };
                        let assign = match &c.assign {
                            Some(t) => Some(self.jsonata_assign(t, &states, frame, state)?),
                            None => None,
                        };
                        return Ok(Attempted {
                            step: Step::Next {
                                next: c.next.clone(),
                                output,
                            },
                            assign,
                        });
                    }
                }
                match default {
                    Some(d) => {
                        let output = match &state.output {
                            Some(t) => jsonata::render(t, &states, &vars)?,
                            None => raw.clone(),
                        };
                        let assign = match &state.assign {
                            Some(t) => Some(self.jsonata_assign(t, &states, frame, state)?),
                            None => None,
                        };
                        Ok(Attempted {
                            step: Step::Next {
                                next: d.clone(),
                                output,
                            },
                            assign,
                        })
                    }
                    None => Err(Failure::new(
                        "States.NoChoiceMatched",
                        format!(
                            "no choice rule of state `{}` matched and it has no `Default`",
                            state.name
                        ),
                    )),
                }
            }
            Kind::Wait {
                seconds, timestamp, ..
            } => {
                if frame.wake_at.is_none() {
                    let until = match (seconds, timestamp) {
                        // A JSONata value of the wrong type or range is a query
                        // evaluation error on AWS, not States.Runtime.
                        (Some(v), _) => {
                            let secs = jsonata::render(v, &states, &vars)?;
                            let secs =
                                wait_seconds(state, &secs, "`Seconds`").map_err(query_error)?;
                            self.wake_in(state, secs)?
                        }
                        (None, Some(v)) => {
                            let ts = jsonata::render(v, &states, &vars)?;
                            let left =
                                seconds_until(state, &ts, "`Timestamp`").map_err(query_error)?;
                            self.wake_in(state, left)?
                        }
                        _ => self.wake_in(state, 0.0)?,
                    };
                    frame.wake_at = Some(until);
                    self.commit_for(&frame.id, vec![self.put(frame)]).await?;
                }
                if let Some(w) = frame.wake_at.clone() {
                    self.sleep_until(&w).await;
                }
                finish(None, &mut states, frame)
            }
            Kind::Task { resource, .. } => {
                let token = self.callback_token(resource, frame);
                let token_text = token.as_ref().map(|t| match t {
                    Ok(t) | Err(t) => t.clone(),
                });
                let task_states = self.jsonata_states(state, frame, token_text.as_deref());
                let payload = arguments(&task_states)?;
                let result =
                    self.result_fits(state, self.invoke(state, frame, payload, token).await?)?;
                finish(Some(result), &mut states, frame)
            }
            Kind::Parallel { branches } => {
                let input = arguments(&states)?;
                let outputs = self.run_branches(state, branches, frame, &input).await?;
                finish(Some(Value::Array(outputs)), &mut states, frame)
            }
            Kind::Map(map) => {
                let ctx = self.context(state, frame, None);
                let result = self
                    .run_map(
                        state,
                        map,
                        frame,
                        MapInput {
                            effective: &raw,
                            ctx: &ctx,
                            vars: &vars,
                            jsonata: Some(&states),
                        },
                    )
                    .await?;
                finish(Some(result), &mut states, frame)
            }
        }
    }

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
    ) -> Result<Value, Failure> {
        let Kind::Task {
            resource,
            timeout_seconds,
            timeout_seconds_path,
            heartbeat_seconds,
            heartbeat_seconds_path,
        } = &state.kind
        else {
            return Err(Failure::runtime("not a task"));
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
                        let states = self.jsonata_states(state, frame, None);
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
                            crate::definition::shown(&v)
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
        let handler = match &function {
            Some(f) => self.handlers.functions.get(f),
            None => self.handlers.resources.get(&base).or_else(|| self.handlers.resources.get(resource)),
        }
        .cloned()
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
                .token(t)
                .map_err(store_failure)?
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
                )),
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

    async fn await_token(&self, token: &str, heartbeat: Option<f64>) -> Result<Value, Failure> {
        loop {
            // Register for the wake-up before reading, so an answer in between is not missed.
            let woken = self.store.answered().notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let record = self.store.token(token).map_err(store_failure)?;
            let Some(record) = record else {
                return Err(Failure::runtime(format!(
                    "task token `{token}` vanished from the store"
                )));
            };
            match record.status {
                TokenStatus::Succeeded => return Ok(record.output.unwrap_or(Value::Null)),
                TokenStatus::Failed => {
                    return Err(Failure {
                        error: record.error.unwrap_or_default(),
                        cause: record.cause.unwrap_or_default(),
                    });
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
                    ));
                }
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep(self.options.token_poll) => {}
            }
        }
    }

    async fn run_map(
        self: &Arc<Self>,
        state: &State,
        map: &MapState,
        frame: &mut Frame,
        on: MapInput<'_>,
    ) -> Result<Value, Failure> {
        let MapInput {
            effective,
            ctx,
            vars,
            jsonata: jsonata_states,
        } = on;
        let scope = Scope {
            input: effective,
            context: ctx,
            vars,
        };
        let items = match (&map.item_reader, &map.items_path) {
            (None, _) if jsonata_states.is_some() => match (&map.items, jsonata_states) {
                (Some(t), Some(states)) => jsonata::render(t, states, vars)?,
                _ => effective.clone(),
            },
            (Some(reader), _) => crate::items::read(reader, &scope, &self.options.s3_root)?,
            (None, Some(p)) => template::select(&scope, p)?,
            (None, None) => effective.clone(),
        };
        let Value::Array(items) = items else {
            let failure = Failure::runtime(format!(
                "state `{}`: the items (`ItemsPath`) must be a JSON array",
                state.name
            ));
            return Err(if jsonata_states.is_some() {
                query_error(failure)
            } else {
                failure
            });
        };
        let mut inputs = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let input = match &map.item_selector {
                Some(sel) if jsonata_states.is_some() => {
                    let mut states = jsonata_states.cloned().unwrap_or(Value::Null);
                    states["context"]["Map"] = json!({"Item": {"Index": index, "Value": item}});
                    jsonata::render(sel, &states, vars)?
                }
                Some(sel) => {
                    let mut item_ctx = ctx.clone();
                    item_ctx["Map"] = json!({"Item": {"Index": index, "Value": item}});
                    template::render(
                        sel,
                        &Scope {
                            input: effective,
                            context: &item_ctx,
                            vars,
                        },
                    )?
                }
                None => item.clone(),
            };
            inputs.push(input);
        }
        let inputs = match &map.item_batcher {
            Some(b) => crate::items::batch(b, inputs, &scope)?,
            None => inputs,
        };
        // A value from a path must lie where the literal field must: a non-negative integer
        // (at most 10,000 for a distributed Map's concurrency), a percentage from 0 to 100
        // (https://docs.aws.amazon.com/step-functions/latest/dg/maprun-fail-threshold.html).
        let number = |fixed: Option<f64>,
                      path: &Option<String>,
                      ok: &dyn Fn(&Value) -> Option<f64>,
                      what: &str|
         -> Result<Option<f64>, Failure> {
            match (fixed, path) {
                (Some(n), _) => Ok(Some(n)),
                // a JSONata state's `{% … %}` number (the definition keeps it here)
                (None, Some(p)) if jsonata::expression(p).is_some() => {
                    let states = jsonata_states.cloned().unwrap_or(Value::Null);
                    let v = jsonata::render(&Value::String(p.clone()), &states, vars)?;
                    ok(&v).map(Some).ok_or_else(|| {
                        Failure::new(
                            "States.QueryEvaluationError",
                            format!(
                                "state `{}`: `{p}` must give {what}, got {}",
                                state.name,
                                crate::definition::shown(&v)
                            ),
                        )
                    })
                }
                (None, Some(p)) => {
                    let v = template::select(&scope, p)?;
                    ok(&v).map(Some).ok_or_else(|| {
                        Failure::runtime(format!(
                            "state `{}`: `{p}` must give {what}, got {}",
                            state.name,
                            crate::definition::shown(&v)
                        ))
                    })
                }
                (None, None) => Ok(None),
            }
        };
        let max_concurrency = if map.distributed {
            limits::MAX_DISTRIBUTED_CONCURRENCY
        } else {
            u64::from(u32::MAX)
        };
        let count = |v: &Value| limits::integer_in(v, 0, u64::MAX).map(|n| n as f64);
        let concurrency = number(
            map.max_concurrency.map(|n| n as f64),
            &map.max_concurrency_path,
            &|v| limits::integer_in(v, 0, max_concurrency).map(|n| n as f64),
            &format!("an integer from 0 to {max_concurrency}"),
        )?
        .unwrap_or(0.0) as usize;
        let concurrency = if concurrency == 0 {
            inputs.len().max(1)
        } else {
            concurrency
        };
        let tolerated_count = number(
            map.tolerated_failure_count.map(|n| n as f64),
            &map.tolerated_failure_count_path,
            &count,
            "a non-negative integer",
        )?;
        let tolerated_pct = number(
            map.tolerated_failure_percentage,
            &map.tolerated_failure_percentage_path,
            &|v| {
                v.as_f64()
                    .filter(|p| (0.0..=limits::MAX_TOLERATED_PERCENTAGE).contains(p))
            },
            "a number from 0 to 100",
        )?;
        let total = inputs.len();
        let step = frame.step;
        let parent = frame.id.clone();
        let first_child = format!("{parent}/{step}:0");
        let fresh = !self.resuming
            || self
                .store
                .frame(&self.exec.id, &first_child)
                .map_err(store_failure)?
                .is_none();
        if fresh && total == 0 {
            self.commit(vec![self.event(
                &parent,
                "MapStateStarted",
                json!({"length": 0}),
            )])
            .await?;
        }
        let processor = map.processor.as_ref();
        let distributed = map.distributed;
        let frame_vars = frame.vars.clone();
        let runs = futures::stream::iter(inputs.into_iter().enumerate().map(|(i, input)| {
            let child = format!("{parent}/{step}:{i}");
            let mut ops = Vec::new();
            if i == 0 {
                ops.push(self.event(&parent, "MapStateStarted", json!({"length": total})));
            }
            // A distributed Map's item is a child execution on AWS, with its own history.
            let details = if distributed {
                json!({"name": state.name, "index": i, "distributed": true, "frame": child})
            } else {
                json!({"name": state.name, "index": i})
            };
            ops.push(self.event(&parent, "MapIterationStarted", details));
            let vars = frame_vars.clone();
            async move {
                let r = self
                    .run_frame(processor, child, Some((input, vars, ops)))
                    .await;
                (i, r)
            }
        }))
        .buffer_unordered(concurrency);
        let mut results: Vec<Option<Result<Value, Failure>>> = vec![None; total];
        let mut failed = 0usize;
        futures::pin_mut!(runs);
        while let Some((i, r)) = runs.next().await {
            if let Err(f) = &r {
                if f.error == "skein.Store" || f.error == "States.Runtime" {
                    return Err(f.clone());
                }
                failed += 1;
                if !distributed {
                    return Err(f.clone());
                }
                let over_count = tolerated_count.is_none_or(|c| failed as f64 > c);
                let over_pct =
                    tolerated_pct.is_none_or(|p| failed as f64 * 100.0 / total as f64 > p);
                if over_count && over_pct {
                    return Err(Failure::new(
                        "States.ExceedToleratedFailureThreshold",
                        format!(
                            "state `{}`: {failed} of {total} items failed, more than tolerated (last: {}: {})",
                            state.name, f.error, f.cause
                        ),
                    ));
                }
            }
            results[i] = Some(r);
        }
        let outputs: Vec<Value> = results
            .into_iter()
            .map(|r| match r {
                Some(Ok(v)) => v,
                Some(Err(f)) => f.as_json(),
                None => Value::Null,
            })
            .collect();
        match &map.result_writer {
            Some(writer) => crate::items::write_results(
                writer,
                &scope,
                &self.options.s3_root,
                &self.exec,
                &state.name,
                &outputs,
            ),
            None => {
                // Without a ResultWriter the Map's result is every item's output, and AWS
                // bounds it like any payload, whatever ResultPath does with it next.
                let result = Value::Array(outputs);
                if self.options.quotas {
                    crate::quotas::check_payload(
                        &state.name,
                        "Map result (every item's output; a ResultWriter keeps it in S3)",
                        &result,
                    )?;
                }
                Ok(result)
            }
        }
    }
}

/// What a Map state maps over: its effective input, context, variables, and for JSONata
/// states `$states`.
struct MapInput<'a> {
    effective: &'a Value,
    ctx: &'a Value,
    vars: &'a Value,
    jsonata: Option<&'a Value>,
}

fn function_name(name_or_arn: &str) -> String {
    match name_or_arn.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest).to_string(),
        None => name_or_arn
            .split(':')
            .next()
            .unwrap_or(name_or_arn)
            .to_string(),
    }
}

fn step_after(state: &State, output: Value) -> Step {
    match &state.next {
        Some(next) if !state.end => Step::Next {
            next: next.clone(),
            output,
        },
        _ => Step::End { output },
    }
}

/// `IntervalSeconds × BackoffRate^(attempt)`, capped by `MaxDelaySeconds`, with full jitter
/// a uniform draw below that.
/// The delay never exceeds [`limits::MAX_DELAY_SECONDS`], however large `BackoffRate`.
pub fn retry_delay(r: &Retrier, attempt: u32) -> f64 {
    let growth = r
        .backoff_rate
        .powi(i32::try_from(attempt).unwrap_or(i32::MAX));
    let cap = r
        .max_delay_seconds
        .unwrap_or(limits::MAX_DELAY_SECONDS as f64)
        .min(limits::MAX_DELAY_SECONDS as f64);
    let delay = r.interval_seconds * growth;
    let mut delay = if delay.is_nan() {
        0.0
    } else {
        delay.clamp(0.0, cap)
    };
    if r.jitter_full {
        delay *= rand_unit();
    }
    delay
}

fn rand_unit() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let x = (nanos as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn wait_until(
    state: &State,
    seconds: &Option<Value>,
    timestamp: &Option<Value>,
    seconds_path: &Option<String>,
    timestamp_path: &Option<String>,
    scope: &Scope<'_>,
    run: &Run,
) -> Result<String, Failure> {
    let secs = if let Some(v) = seconds {
        wait_seconds(state, v, "`Seconds`")?
    } else if let Some(v) = timestamp {
        seconds_until(state, v, "`Timestamp`")?
    } else if let Some(p) = seconds_path {
        let v = template::select(scope, p)?;
        wait_seconds(state, &v, &format!("`SecondsPath` `{p}`"))?
    } else if let Some(p) = timestamp_path {
        let v = template::select(scope, p)?;
        seconds_until(state, &v, &format!("`TimestampPath` `{p}`"))?
    } else {
        return Err(Failure::runtime(format!(
            "state `{}`: Wait needs a duration",
            state.name
        )));
    };
    run.wake_in(state, secs)
}

/// A Wait's number of seconds: "an integer value from 0 to 99999999", whether written in
/// the definition, read from `SecondsPath` or given by a JSONata `Seconds`
/// (https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html).
fn wait_seconds(state: &State, v: &Value, what: &str) -> Result<f64, Failure> {
    limits::integer_in(v, 0, limits::MAX_WAIT_SECONDS)
        .map(|n| n as f64)
        .ok_or_else(|| {
            Failure::runtime(format!(
                "state `{}`: {what} must give an integer from 0 to {} seconds, got {}",
                state.name,
                limits::MAX_WAIT_SECONDS,
                crate::definition::shown(v)
            ))
        })
}

/// A runtime failure of a JSONata state's value as AWS names it.
fn query_error(f: Failure) -> Failure {
    Failure::new("States.QueryEvaluationError", f.cause)
}

/// Seconds from now until an RFC 3339 timestamp (0 for a past one). AWS wants the `T`
/// between date and time; RFC 3339's allowed space is refused as it refuses it.
fn seconds_until(state: &State, v: &Value, what: &str) -> Result<f64, Failure> {
    let s = v.as_str().ok_or_else(|| {
        Failure::runtime(format!(
            "state `{}`: {what} must be a timestamp string, got {}",
            state.name,
            crate::definition::shown(v)
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

/// An event in the shape of Step Functions' `GetExecutionHistory`.
pub fn history_json(events: &[Event]) -> Value {
    let list: Vec<Value> = events
        .iter()
        .map(|e| {
            let key = if e.kind.ends_with("StateEntered") {
                "stateEnteredEventDetails".to_string()
            } else if e.kind.ends_with("StateExited") {
                "stateExitedEventDetails".to_string()
            } else {
                let mut k = e.kind.clone();
                if let Some(first) = k.get_mut(0..1) {
                    first.make_ascii_lowercase();
                }
                format!("{k}EventDetails")
            };
            let mut details = e.details.clone();
            for field in ["input", "output", "parameters"] {
                if let Some(v) = details.get_mut(field)
                    && !v.is_string()
                {
                    *v = Value::String(v.to_string());
                }
            }
            json!({"id": e.id, "timestamp": e.at, "type": e.kind, "frame": e.frame, key: details})
        })
        .collect();
    // How close the execution came to AWS's quotas: its event count and largest payload.
    json!({ "events": list, "headroom": crate::quotas::headroom(events) })
}
