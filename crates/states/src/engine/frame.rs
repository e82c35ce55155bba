//! Frames and scheduling: [`Run`] is one execution being run; [`Run::run_frame`] takes a
//! frame (the root, a Parallel branch, a Map iteration) from state to state, committing
//! each transition before acting on it, and [`Run::attempt`] runs one state by its kind.
//!
//! Commits count their events against AWS's history quota ([`HistoryCount`]); a Task's
//! events are deferred ([`Run::defer`]) and committed with its outcome.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::bindings::Handlers;
use super::evaluator::Evaluator;
use super::evaluator::jsonata::Jsonata;
use super::evaluator::jsonpath::JsonPath;
use super::interrupt::Interrupt;
use super::options::Options;
use crate::definition::{Definition, Kind, QueryLanguage, State};
use crate::failure::Failure;
use crate::limits;
use crate::mock::MockCase;
use crate::store::{Event, Execution, Frame, FrameStatus, Op, Store};

/// One execution being run: what every frame of it shares.
pub(super) struct Run {
    pub(super) store: Store,
    pub(super) handlers: Handlers,
    pub(super) options: Options,
    pub(super) exec: Execution,
    pub(super) def: Arc<Definition>,
    pub(super) mock: Option<MockCase>,
    pub(super) resuming: bool,
    pub(super) counters: Mutex<HashMap<String, u64>>,
    /// Events of a frame waiting to be committed with its next transition.
    pub(super) deferred: Mutex<HashMap<String, Vec<Op>>>,
    /// Events per history: the execution's (key "") and each distributed Map item's.
    pub(super) history: Mutex<HistoryCount>,
}

/// Event counts per history, for the 25,000-event quota.
#[derive(Default)]
pub(super) struct HistoryCount {
    /// Frames that are distributed Map items (their own child-execution history).
    items: HashSet<String>,
    /// Events per history owner ("" = the execution).
    events: HashMap<String, u64>,
}

impl HistoryCount {
    /// Counts of a new execution: `ExecutionStarted` and the first `StateEntered`,
    /// committed when it started.
    pub(super) fn started() -> HistoryCount {
        let mut h = HistoryCount::default();
        h.events.insert(String::new(), 2);
        h
    }

    /// Counts from a stored history (a resumed execution).
    pub(super) fn from_events(events: &[Event]) -> HistoryCount {
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

pub(super) type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a state leads: the next state, or the end of its frame.
pub(super) enum Step {
    Next { next: String, output: Value },
    End { output: Value },
}

/// What attempting a state gives: a step, plus variables it assigns.
pub(super) struct Attempted {
    pub(super) step: Step,
    pub(super) assign: Option<Map<String, Value>>,
}

/// Now, as the store keeps times (RFC 3339, milliseconds, UTC).
pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Run {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        store: Store,
        handlers: Handlers,
        options: Options,
        exec: Execution,
        def: Arc<Definition>,
        mock: Option<MockCase>,
        resuming: bool,
        counters: HashMap<String, u64>,
        history: HistoryCount,
    ) -> Run {
        Run {
            store,
            handlers,
            options,
            exec,
            def,
            mock,
            resuming,
            counters: Mutex::new(counters),
            deferred: Mutex::new(HashMap::new()),
            history: Mutex::new(history),
        }
    }

    /// `secs` of the definition in real time ([`Options::time_scale`]).
    pub(super) fn scaled(&self, secs: f64) -> Duration {
        limits::duration(secs * self.options.time_scale)
    }

    /// The wake-up time `secs` (scaled) from now; a time past what a timestamp holds is a
    /// `States.Runtime` failure of `state` (the bounds checked when reading the definition
    /// keep every documented value well inside it).
    pub(super) fn wake_in(&self, state: &State, secs: f64) -> Result<String, Failure> {
        limits::wake_after(self.scaled(secs)).ok_or_else(|| {
            Failure::runtime(format!(
                "state `{}`: a wait of {secs} seconds ends past the last time a timestamp can hold",
                state.name
            ))
        })
    }

    /// The context object (`$$`) of `state` in `frame`, with the task token if any.
    pub(super) fn context(&self, state: &State, frame: &Frame, token: Option<&str>) -> Value {
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

    /// Commits `ops` in one transaction, counting their events against the history quota.
    pub(super) async fn commit(&self, ops: Vec<Op>) -> Result<(), Interrupt> {
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
                        return Err(crate::quotas::history_full(&owner).into());
                    }
                }
            }
        }
        Ok(self.store.commit(ops).await?)
    }

    /// Holds `ops` back until the frame's next commit, so that a task's events and its
    /// effect on the frame are durable together (or not at all, and the task runs again).
    pub(super) fn defer(&self, frame: &str, ops: Vec<Op>) {
        let mut d = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
        d.entry(frame.to_string()).or_default().extend(ops);
    }

    /// Commits `ops` of `frame` together with what was deferred for it.
    pub(super) async fn commit_for(&self, frame: &str, ops: Vec<Op>) -> Result<(), Interrupt> {
        let mut all = {
            let mut d = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
            d.remove(frame).unwrap_or_default()
        };
        all.extend(ops);
        self.commit(all).await
    }

    /// A history event of `frame`.
    pub(super) fn event(&self, frame: &str, kind: &str, details: Value) -> Op {
        Op::Event {
            execution: self.exec.id.clone(),
            frame: frame.to_string(),
            kind: kind.to_string(),
            details,
        }
    }

    /// Writes `frame` as it is now.
    pub(super) fn put(&self, frame: &Frame) -> Op {
        Op::PutFrame {
            execution: self.exec.id.clone(),
            frame: Box::new(frame.clone()),
        }
    }

    /// Runs (or resumes, or re-reads) one frame to its end. `init` creates it: its input,
    /// variables, and the events to commit with its creation.
    pub(super) fn run_frame<'a>(
        self: &'a Arc<Self>,
        def: &'a Definition,
        id: String,
        init: Option<(Value, Value, Vec<Op>)>,
    ) -> Boxed<'a, Result<Value, Interrupt>> {
        Box::pin(async move {
            let mut frame = self.open_frame(def, &id, init).await?;
            loop {
                match frame.status {
                    FrameStatus::Succeeded => {
                        return Ok(frame.output.clone().unwrap_or(Value::Null));
                    }
                    FrameStatus::Failed => {
                        return Err(Failure {
                            error: frame.error.clone().unwrap_or_default(),
                            cause: frame.cause.clone().unwrap_or_default(),
                        }
                        .into());
                    }
                    FrameStatus::Running => {}
                }
                let Some(state) = def.states.get(&frame.state) else {
                    return Err(Failure::runtime(format!(
                        "state `{}` is not in the definition",
                        frame.state
                    ))
                    .into());
                };
                match self.run_state(state, &mut frame).await {
                    Ok(attempted) => self.advance(def, state, &mut frame, attempted).await?,
                    Err(Interrupt::Failed(f)) => {
                        frame.status = FrameStatus::Failed;
                        frame.error = Some(f.error);
                        frame.cause = Some(f.cause);
                        self.commit_for(&frame.id, vec![self.put(&frame)]).await?;
                    }
                    Err(other) => return Err(other),
                }
            }
        })
    }

    /// The frame `id` as stored (a resumed or finished one), or created from `init`.
    async fn open_frame(
        &self,
        def: &Definition,
        id: &str,
        init: Option<(Value, Value, Vec<Op>)>,
    ) -> Result<Frame, Interrupt> {
        let existing = if self.resuming || init.is_none() {
            self.store.frame(&self.exec.id, id)?
        } else {
            None
        };
        match (existing, init) {
            (Some(f), _) => Ok(f),
            (None, Some((input, vars, mut ops))) => {
                let (f, entered) = first_state(&self.exec.id, id, def, input, vars);
                ops.push(entered);
                ops.push(self.put(&f));
                self.commit(ops).await?;
                Ok(f)
            }
            (None, None) => {
                Err(Failure::runtime(format!("frame `{id}` is missing from the store")).into())
            }
        }
    }

    /// Commits `state`'s exit and where it led: the next state entered, or the frame's end.
    async fn advance(
        &self,
        def: &Definition,
        state: &State,
        frame: &mut Frame,
        Attempted { step, assign }: Attempted,
    ) -> Result<(), Interrupt> {
        if let Some(vars) = assign
            && let Value::Object(current) = &mut frame.vars
        {
            current.extend(vars);
        }
        let mut entered = None;
        let output = match step {
            Step::Next { next, output } => {
                entered = Some(self.event(
                    &frame.id,
                    &format!("{}StateEntered", def.type_name_of(&next)),
                    json!({"name": next, "input": output}),
                ));
                frame.state = next;
                frame.input = output.clone();
                frame.retries.clear();
                frame.wake_at = None;
                frame.token = None;
                frame.entered_at = now();
                output
            }
            Step::End { output } => {
                frame.status = FrameStatus::Succeeded;
                frame.output = Some(output.clone());
                output
            }
        };
        frame.step += 1;
        let exited = self.event(
            &frame.id,
            &format!("{}StateExited", state.kind.type_name()),
            json!({"name": state.name, "output": output}),
        );
        let mut ops = vec![exited];
        ops.extend(entered);
        ops.push(self.put(frame));
        self.commit_for(&frame.id, ops).await
    }

    /// One attempt of a state: the state's kind, over the evaluator of its query language.
    pub(super) async fn attempt(
        self: &Arc<Self>,
        state: &State,
        frame: &mut Frame,
    ) -> Result<Attempted, Interrupt> {
        let ev = self.evaluator(state, frame)?;
        let ev = ev.as_ref();
        match &state.kind {
            Kind::Pass { result } => self.pass(state, ev, result.as_ref()),
            Kind::Succeed => self.succeed(ev),
            Kind::Fail {
                error,
                cause,
                error_path,
                cause_path,
            } => Err(self
                .fail(ev, (error, error_path), (cause, cause_path))
                .into()),
            Kind::Choice { choices, default } => self.choice(state, ev, choices, default.as_ref()),
            Kind::Wait { .. } => self.wait(state, frame, ev).await,
            Kind::Task { resource, .. } => self.task(state, frame, ev, resource).await,
            Kind::Parallel { branches } => self.parallel(state, frame, ev, branches).await,
            Kind::Map(map) => self.map(state, frame, ev, map).await,
        }
    }

    /// The evaluator of `state`'s query language, over `frame`'s input and variables.
    pub(super) fn evaluator<'s>(
        &self,
        state: &'s State,
        frame: &Frame,
    ) -> Result<Box<dyn Evaluator + 's>, Failure> {
        let context = self.context(state, frame, None);
        Ok(match state.query_language {
            QueryLanguage::Jsonata => Box::new(Jsonata::new(state, frame, context)),
            QueryLanguage::JsonPath => Box::new(JsonPath::new(state, frame, context)?),
        })
    }

    /// Sleeps until `wake` (RFC 3339); at once if it passed.
    pub(super) async fn sleep_until(&self, wake: &str) {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(wake) {
            let left = (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
            if left > 0 {
                tokio::time::sleep(Duration::from_millis(left as u64)).await;
            }
        }
    }
}

/// A frame `id` of `execution` at `def`'s first state, and its `…StateEntered` event.
pub(super) fn first_state(
    execution: &str,
    id: &str,
    def: &Definition,
    input: Value,
    vars: Value,
) -> (Frame, Op) {
    let entered = Op::Event {
        execution: execution.to_string(),
        frame: id.to_string(),
        kind: format!("{}StateEntered", def.type_name_of(&def.start_at)),
        details: json!({"name": def.start_at, "input": input}),
    };
    let frame = Frame {
        id: id.to_string(),
        state: def.start_at.clone(),
        input,
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
    (frame, entered)
}

impl Attempted {
    /// A state that produced `output` and `assign`, going where the state leads.
    pub(super) fn after(
        state: &State,
        (output, assign): (Value, Option<Map<String, Value>>),
    ) -> Attempted {
        Attempted {
            step: step_after(state, output),
            assign,
        }
    }
}

/// Where `state` leads with `output`: its `Next`, or the end of the frame.
pub(super) fn step_after(state: &State, output: Value) -> Step {
    match &state.next {
        Some(next) if !state.end => Step::Next {
            next: next.clone(),
            output,
        },
        _ => Step::End { output },
    }
}
