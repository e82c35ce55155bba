//! Where the dashboard and the report read executions: the embedded engine's store
//! ([`EngineExecutions`]) or, for a deployed stack, Step Functions (the CLI's adapter over
//! `DescribeExecution` and `GetExecutionHistory`). Both give the engine's records, so the
//! pages are the same code on either.

use std::collections::HashMap;

use async_trait::async_trait;
use skein_states::status::ExecutionStatus;
use skein_states::store::{Event, Execution, Store};

use crate::error::Result;

/// Reads executions by id: a run's execution is named after the run, a dataset's after
/// `skein_core::fleet::execution_name(run, dataset)`.
#[async_trait]
pub trait Executions: Send + Sync {
    /// The execution's status, `None` when there is no such execution.
    async fn status(&self, id: &str) -> Result<Option<ExecutionStatus>>;
    /// The execution with its definition and input, `None` when there is none.
    async fn execution(&self, id: &str) -> Result<Option<Execution>>;
    /// The execution's history, oldest first. A frame names where an event happened:
    /// `0` for the top level, a deeper path inside a Map iteration or a Parallel branch.
    async fn events(&self, id: &str) -> Result<Vec<Event>>;
    /// Whether asking [`Executions::status`] once per dataset of a page is cheap (a local
    /// query) or not (a network call per dataset: the pages then link to the executions
    /// without checking that each exists, and take where a dataset stands from the catalog).
    fn cheap(&self) -> bool {
        true
    }
}

/// The embedded engine's store (`states.db`).
#[derive(Clone)]
pub struct EngineExecutions(pub Store);

#[async_trait]
impl Executions for EngineExecutions {
    async fn status(&self, id: &str) -> Result<Option<ExecutionStatus>> {
        Ok(self.0.execution_status(id)?)
    }

    async fn execution(&self, id: &str) -> Result<Option<Execution>> {
        Ok(self.0.execution(id)?)
    }

    async fn events(&self, id: &str) -> Result<Vec<Event>> {
        Ok(self.0.events(id)?)
    }
}

/// The frame of each event of a Step Functions history, given as (id, previous event id,
/// type). AWS does not say in which Map iteration or Parallel branch an event happened,
/// but each event names the one before it in its own line of work (`previousEventId`): a
/// state entered right after a `MapIterationStarted` or `ParallelStateStarted` opens a
/// frame (`<outer>/<opener id>:<id>`), the events chained to it stay in it, and an
/// iteration's or a Parallel's closing event is back in the frame around it.
pub fn frames(events: &[(i64, i64, &str)]) -> Vec<String> {
    let mut seen: HashMap<i64, (String, &str)> = HashMap::new();
    let mut out = Vec::with_capacity(events.len());
    for &(id, previous, kind) in events {
        let (outer, previous_kind) = seen
            .get(&previous)
            .cloned()
            .unwrap_or_else(|| ("0".to_string(), ""));
        let opens = matches!(
            previous_kind,
            "MapIterationStarted" | "ParallelStateStarted"
        ) && kind.ends_with("StateEntered");
        let closes = matches!(
            kind,
            "MapIterationSucceeded"
                | "MapIterationFailed"
                | "MapIterationAborted"
                | "ParallelStateSucceeded"
                | "ParallelStateFailed"
                | "ParallelStateAborted"
        ) && previous_kind != "ParallelStateStarted";
        let frame = if opens {
            format!("{outer}/{previous}:{id}")
        } else if closes {
            match outer.rsplit_once('/') {
                Some((around, _)) => around.to_string(),
                None => outer,
            }
        } else {
            outer
        };
        seen.insert(id, (frame.clone(), kind));
        out.push(frame);
    }
    out
}
