//! Retry and catch: a state is attempted until it succeeds, a retrier's attempts run out
//! or a catcher takes its error (`ErrorEquals`), with the delays of
//! [`retry_delay`]. Only [`Interrupt::Failed`] errors other than `States.Runtime` are
//! retried or caught.

use std::sync::Arc;

use serde_json::json;

use super::frame::{Attempted, Run, Step};
use super::interrupt::Interrupt;
use crate::definition::{Kind, Retrier, State};
use crate::failure::Failure;
use crate::limits;
use crate::store::Frame;

impl Run {
    /// Runs a state with its retriers and catchers.
    pub(super) async fn run_state(
        self: &Arc<Self>,
        state: &State,
        frame: &mut Frame,
    ) -> Result<Attempted, Interrupt> {
        loop {
            if let Some(wake) = frame.wake_at.clone() {
                self.sleep_until(&wake).await;
                frame.wake_at = None;
            }
            let attempted = self
                .attempt(state, frame)
                .await
                .and_then(|a| self.fits(state, a).map_err(Interrupt::from));
            let failure = match attempted.map_err(|i| self.worded(state, frame, i)) {
                Ok(a) => return Ok(a),
                Err(i) => match i.handled() {
                    Some(f) => f.clone(),
                    None => return Err(i),
                },
            };
            frame.token = None;
            if let Kind::Task { resource, .. } = &state.kind {
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
                let (output, assign) = self.evaluator(state, frame)?.caught(catcher, &failure)?;
                return Ok(Attempted {
                    step: Step::Next {
                        next: catcher.next.clone(),
                        output,
                    },
                    assign,
                });
            }
            return Err(failure.into());
        }
    }

    /// An error the engine raised in `state` (a runtime error, a JSONata evaluation error,
    /// an intrinsic's failure), its cause worded as AWS words it: `An error occurred while
    /// executing the state 'NAME' (entered at the event id #N). …` (see [`crate::causes`]).
    /// A task's own errors, and causes that carry a state's prefix already, are left alone.
    fn worded(&self, state: &State, frame: &Frame, i: Interrupt) -> Interrupt {
        let Interrupt::Failed(mut f) = i else {
            return i;
        };
        if ENGINE_ERRORS.contains(&f.error.as_str()) {
            let entered = self
                .store
                .events(&self.exec.id)
                .ok()
                .and_then(|events| {
                    events
                        .iter()
                        .rposition(|e| e.frame == frame.id && e.kind.ends_with("StateEntered"))
                })
                .map_or(0, |at| at + 1);
            f.cause = crate::causes::in_state(&state.name, entered, &f.cause);
        }
        Interrupt::Failed(f)
    }

    /// A state's output over AWS's payload limit is `States.DataLimitExceeded`.
    pub(super) fn fits(&self, state: &State, a: Attempted) -> Result<Attempted, Failure> {
        if self.options.quotas {
            let (Step::Next { output, .. } | Step::End { output }) = &a.step;
            crate::quotas::check_payload(&state.name, "state output", output)?;
        }
        Ok(a)
    }
}

/// The errors the engine itself raises in a state, whose causes AWS prefixes with the
/// state's name and event id.
const ENGINE_ERRORS: &[&str] = &[
    "States.Runtime",
    "States.QueryEvaluationError",
    "States.IntrinsicFailure",
    "States.ParameterPathFailure",
    "States.ResultPathMatchFailure",
];

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
