//! The bounds AWS Step Functions documents for numbers in a definition and for payloads,
//! in one place: the definition reader checks literal fields against them, the engine
//! checks values read from paths (or JSONata) at run time, and every conversion of a
//! number of seconds into a time is checked, so no input can overflow a clock.
//!
//! Each constant cites the AWS page it comes from.

use std::time::Duration;

use serde_json::Value;

/// The largest execution input (and, later, any state's input or output): 256 KiB of
/// UTF-8 text. "Maximum input or output size for a task, state, or execution: 256 KiB of
/// data as a UTF-8 encoded string."
/// <https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html>
pub const MAX_PAYLOAD_BYTES: usize = 262_144;

/// Wait `Seconds` (and what `SecondsPath` or a JSONata `Seconds` gives): "an integer value
/// from 0 to 99999999".
/// <https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html>
pub const MAX_WAIT_SECONDS: u64 = 99_999_999;

/// Task `TimeoutSeconds` and `HeartbeatSeconds` (and their paths): "a positive, non-zero
/// integer"; 99999999 is their documented default, and the largest value accepted.
/// <https://docs.aws.amazon.com/step-functions/latest/dg/state-task.html>
pub const MAX_TASK_SECONDS: u64 = 99_999_999;

/// Retrier `IntervalSeconds`: "a positive integer … IntervalSeconds has a maximum value of
/// 99999999".
/// <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>
pub const MAX_INTERVAL_SECONDS: u64 = 99_999_999;

/// Retrier `MaxAttempts`: "MaxAttempts has a maximum value of 99999999" (0: never retry).
/// <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>
pub const MAX_ATTEMPTS: u64 = 99_999_999;

/// Retrier `MaxDelaySeconds`: "greater than 0 and less than 31622401". Also the cap on any
/// computed retry delay: a delay longer than that outlives every execution (a Standard
/// workflow runs at most a year), so a huge `BackoffRate` cannot overflow the clock.
/// <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>
pub const MAX_DELAY_SECONDS: u64 = 31_622_400;

/// Distributed Map `MaxConcurrency` (and `MaxConcurrencyPath`): "up to 10,000 parallel
/// child workflow executions".
/// <https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html>
pub const MAX_DISTRIBUTED_CONCURRENCY: u64 = 10_000;

/// `ToleratedFailurePercentage` (and what its path gives): "a value between zero and 100".
/// <https://docs.aws.amazon.com/step-functions/latest/dg/maprun-fail-threshold.html>
pub const MAX_TOLERATED_PERCENTAGE: f64 = 100.0;

/// An integer `n` in `min..=max`, if `v` is one (`3` and `3.0` are; `3.5`, `-1`, `"3"` are not).
pub fn integer_in(v: &Value, min: u64, max: u64) -> Option<u64> {
    let n = match v.as_u64() {
        Some(n) => n,
        None => {
            let f = v.as_f64()?;
            if f.fract() != 0.0 || f < 0.0 || f > max as f64 {
                return None;
            }
            f as u64
        }
    };
    (min..=max).contains(&n).then_some(n)
}

/// A span of seconds (already scaled by the engine's time scale) as a `Duration`:
/// negative or NaN is zero, anything too large for a `Duration` is `Duration::MAX`
/// (tokio's timers treat that as never).
pub fn duration(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// The RFC 3339 time `after` from now, or `None` if that is past what a timestamp holds.
pub fn wake_after(after: Duration) -> Option<String> {
    let delta = chrono::TimeDelta::from_std(after).ok()?;
    let at = chrono::Utc::now().checked_add_signed(delta)?;
    Some(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}
