//! AWS Step Functions quotas the engine enforces, so a local run predicts what AWS accepts.
//!
//! - **Payload size**: the input and output of a state, a task's result, and an
//!   execution's input and output are at most 262,144 bytes (256 KiB) of UTF-8; beyond it
//!   the state fails with `States.DataLimitExceeded`, which `States.ALL` does not catch
//!   (only a retrier or catcher that names it):
//!   <https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html#service-limits-task-executions>
//!   and <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html#error-handling-error-representation>.
//! - **History**: an execution's history holds at most 25,000 events; an execution that
//!   would go past it fails:
//!   <https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html#service-limits-state-machine-executions>.
//!   The items of a distributed Map run as child executions with their own histories, so
//!   their events do not count toward the parent's (the parent records the Map Run).
//!
//! `skein states run --no-quotas` (or [`crate::engine::Options::quotas`] off) lifts them.

use serde_json::Value;

use crate::failure::Failure;

/// The largest state input, output or task result AWS accepts, in bytes (one constant
/// with the execution input's bound in [`crate::limits`]).
pub use crate::limits::MAX_PAYLOAD_BYTES;
/// The most events an execution's history may hold.
pub const MAX_HISTORY_EVENTS: u64 = 25_000;
/// The error of a payload over [`MAX_PAYLOAD_BYTES`].
pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";

/// Size of `v` as AWS counts it: its JSON text in UTF-8.
pub fn payload_size(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(0)
}

/// The payload limit in force: [`MAX_PAYLOAD_BYTES`], or a lower one from
/// `SKEIN_STATES_TEST_MAX_PAYLOAD` (tests use it to show with a few hundred datasets that
/// no state grows with their number, as AWS's limit would show with thousands).
pub fn payload_limit() -> usize {
    std::env::var("SKEIN_STATES_TEST_MAX_PAYLOAD")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(MAX_PAYLOAD_BYTES, |v| v.min(MAX_PAYLOAD_BYTES))
}

/// `States.DataLimitExceeded` when `v` is over the limit; `what` says which payload.
pub fn check_payload(state: &str, what: &str, v: &Value) -> Result<(), Failure> {
    let size = payload_size(v);
    let limit = payload_limit();
    if size > limit {
        return Err(Failure::new(
            DATA_LIMIT_EXCEEDED,
            format!(
                "state `{state}`: the {what} is {size} bytes, over the limit of {limit} bytes (AWS: {MAX_PAYLOAD_BYTES}, 256 KiB); pass a reference (an S3 key) instead of the data"
            ),
        ));
    }
    Ok(())
}

/// The failure of an execution whose history went past [`MAX_HISTORY_EVENTS`]. It is a
/// `States.Runtime` error: no retrier or catcher takes it, as on AWS.
pub fn history_full(owner: &str) -> Failure {
    let whose = if owner.is_empty() {
        "the execution's history".to_string()
    } else {
        format!("the history of distributed Map item `{owner}`")
    };
    Failure::runtime(format!(
        "{whose} reached {MAX_HISTORY_EVENTS} events, AWS's limit per execution; split the work (a distributed Map runs its items as child executions)"
    ))
}

/// The figures a user reads the headroom from, for one execution's history.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Headroom {
    /// Events in the execution's own history (distributed Map items excluded).
    pub events: u64,
    /// The largest state input or output in the history, in bytes.
    pub largest_payload_bytes: usize,
    /// The state whose input or output that was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub largest_payload_state: Option<String>,
    pub max_events: u64,
    pub max_payload_bytes: usize,
}

/// Headroom figures from an execution's events.
pub fn headroom(events: &[crate::store::Event]) -> Headroom {
    let mut h = Headroom {
        max_events: MAX_HISTORY_EVENTS,
        max_payload_bytes: MAX_PAYLOAD_BYTES,
        ..Headroom::default()
    };
    let mut distributed_items: std::collections::HashSet<&str> = Default::default();
    for e in events {
        if e.kind == "MapIterationStarted"
            && e.details.get("distributed") == Some(&Value::Bool(true))
        {
            if let Some(child) = e.details.get("frame").and_then(Value::as_str) {
                distributed_items.insert(child);
            }
            continue;
        }
        if history_owner(&e.frame, |f| distributed_items.contains(f)).is_none() {
            h.events += 1;
        }
        for field in ["input", "output"] {
            if let Some(v) = e.details.get(field) {
                let size = payload_size(v);
                if size > h.largest_payload_bytes {
                    h.largest_payload_bytes = size;
                    h.largest_payload_state = e
                        .details
                        .get("name")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
            }
        }
    }
    h
}

/// The distributed Map item whose own history a frame's events belong to (the innermost
/// such item among the frame and its ancestors), or `None` for the execution's history.
/// Frame ids nest with `/`: `0/3:12/5:0` is inside `0/3:12`.
pub fn history_owner(frame: &str, is_item: impl Fn(&str) -> bool) -> Option<&str> {
    let mut end = frame.len();
    loop {
        let candidate = &frame[..end];
        if is_item(candidate) {
            return Some(candidate);
        }
        match candidate.rfind('/') {
            Some(i) => end = i,
            None => return None,
        }
    }
}
