//! Crash injection for the durability tests.
//!
//! `SKEIN_CRASH_AT=POINT[@DATASET][#N]` kills the process with SIGKILL (no cleanup, no
//! flush: what `kill -9` or a lost machine does) the `N`-th time (default: the first) it
//! reaches crash point `POINT`, counting only `DATASET` when one is named. Every
//! multi-step side effect calls [`point`] between its steps; [`POINTS`] lists them all, so
//! a test can crash a run at each one and check that the next attempt completes or undoes
//! the step. Without the variable, [`point`] does nothing (one relaxed load after the
//! first call).
//!
//! The engine's own hook, `SKEIN_STATES_CRASH_AFTER=N` (in `skein-states`), kills after
//! the N-th commit of the event store; the two compose.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every crash point, in the order a migration reaches them. The module docs of the
/// protocols (`skein_usecases::publish`, `skein_usecases::rollback`, `skein_data::store`,
/// `skein_data::s3_store`) say what the next attempt does after each.
pub const POINTS: &[&str] = &[
    // staging (skein_data::stage, skein_usecases::migrate)
    "stage.parts",
    "stage.staged",
    "stage.migrated",
    "stage.verified",
    // a chunked dataset's combine job (skein_usecases::migrate::combine_chunks)
    "combine.staged",
    "combine.migrated",
    "combine.verified",
    // publish (skein_usecases::publish)
    "publish.intent",
    "publish.claimed",
    "publish.moved",
    // a Delta target's commit, before skein's own pointer follows (skein_data::delta)
    "delta.committed",
    "publish.swapped",
    "publish.recorded",
    "publish.completed",
    // a failed migration undone (skein_usecases::rollback::undo_run)
    "undo.intent",
    "undo.discarded",
    "undo.swapped",
    "undo.recorded",
    // an operator's rollback (skein_usecases::rollback)
    "rollback.intent",
    "rollback.swapped",
    "rollback.recorded",
];

struct Armed {
    point: String,
    dataset: Option<String>,
    nth: u64,
    seen: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("SKEIN_CRASH_AT").ok()?;
            let (rest, nth) = match spec.split_once('#') {
                Some((r, n)) => (r.to_string(), n.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            let (point, dataset) = match rest.split_once('@') {
                Some((p, d)) => (p.to_string(), Some(d.to_string())),
                None => (rest, None),
            };
            Some(Armed {
                point,
                dataset,
                nth,
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// `SKEIN_PANIC_AT=POINT[@DATASET]`: a panic at that point instead of a kill, standing in
/// for a bug in skein or a library, so tests can check that a panicking job fails its
/// dataset (with the message) and nothing else.
fn panic_armed() -> Option<&'static (String, Option<String>)> {
    static ARMED: OnceLock<Option<(String, Option<String>)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("SKEIN_PANIC_AT").ok()?;
            Some(match spec.split_once('@') {
                Some((p, d)) => (p.to_string(), Some(d.to_string())),
                None => (spec, None),
            })
        })
        .as_ref()
}

/// Crash point `name`, reached while working on `dataset`: kills the process here if
/// `SKEIN_CRASH_AT` names it (or panics if `SKEIN_PANIC_AT` does).
pub fn point(name: &str, dataset: &str) {
    if let Some((point, only)) = panic_armed()
        && point == name
        && only.as_deref().is_none_or(|d| d == dataset)
    {
        panic!("SKEIN_PANIC_AT: a panic injected at {name} ({dataset})");
    }
    let Some(a) = armed() else { return };
    if a.point != name || a.dataset.as_deref().is_some_and(|d| d != dataset) {
        return;
    }
    if a.seen.fetch_add(1, Ordering::SeqCst) + 1 != a.nth {
        return;
    }
    eprintln!("SKEIN_CRASH_AT: killing the process at {name} ({dataset})");
    let _ = std::process::Command::new("kill")
        .args(["-9", &std::process::id().to_string()])
        .status();
    // `kill` is missing or failed: abort is as abrupt (no destructors, no flush).
    std::process::abort();
}
