//! `Retry` and `Catch`: retriers and catchers, with their `ErrorEquals`.

use serde_json::{Map, Value};

use super::reader::Reader;
use super::text::escape;
use super::{Catcher, Retrier};
use crate::limits;

fn error_equals(r: &mut Reader, obj: &Map<String, Value>, ptr: &str) -> Vec<String> {
    match obj.get("ErrorEquals") {
        Some(Value::Array(items)) if !items.is_empty() => {
            let names: Vec<String> = items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            if names.len() != items.len() {
                r.err(
                    &format!("{ptr}/ErrorEquals"),
                    "`ErrorEquals` holds error names (strings)",
                );
            }
            if names.iter().any(|n| n == "States.ALL") && names.len() > 1 {
                r.err(
                    &format!("{ptr}/ErrorEquals"),
                    "`States.ALL` must appear alone",
                );
            }
            names
        }
        _ => {
            r.err(
                &format!("{ptr}/ErrorEquals"),
                "needs a non-empty `ErrorEquals` array of error names",
            );
            Vec::new()
        }
    }
}

/// The objects of an array field (`Retry`, `Catch`), each with its pointer; every key
/// outside `allowed` is reported.
fn objects<'a>(
    r: &mut Reader,
    obj: &'a Map<String, Value>,
    ptr: &str,
    key: &str,
    what: &str,
    allowed: &[&str],
) -> Vec<(String, &'a Map<String, Value>)> {
    let Some(v) = obj.get(key) else {
        return Vec::new();
    };
    let Some(items) = v.as_array() else {
        r.err(
            &format!("{ptr}/{key}"),
            format!("`{key}` must be an array of {what}s"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{ptr}/{key}/{i}");
        let Some(o) = item.as_object() else {
            r.err(&p, format!("a {what} must be an object"));
            continue;
        };
        for k in o.keys() {
            if !allowed.contains(&k.as_str()) {
                r.err(
                    &format!("{p}/{}", escape(k)),
                    format!("unknown {what} field `{k}`"),
                );
            }
        }
        out.push((p, o));
    }
    out
}

pub(super) fn read_retry(r: &mut Reader, obj: &Map<String, Value>, ptr: &str) -> Vec<Retrier> {
    let allowed = [
        "ErrorEquals",
        "IntervalSeconds",
        "MaxAttempts",
        "BackoffRate",
        "MaxDelaySeconds",
        "JitterStrategy",
        "Comment",
    ];
    let mut out = Vec::new();
    for (p, o) in objects(r, obj, ptr, "Retry", "retrier", &allowed) {
        let jitter = r.string(o, &p, "JitterStrategy");
        if let Some(j) = &jitter
            && j != "FULL"
            && j != "NONE"
        {
            r.err(
                &format!("{p}/JitterStrategy"),
                "`JitterStrategy` must be FULL or NONE",
            );
        }
        // The retrier's numbers and their bounds:
        // https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
        // BackoffRate has no documented maximum; a computed delay is capped at
        // `limits::MAX_DELAY_SECONDS` by the engine instead.
        let backoff_rate = r.number(o, &p, "BackoffRate").unwrap_or(2.0);
        if !(backoff_rate >= 1.0 && backoff_rate.is_finite()) {
            r.err(
                &format!("{p}/BackoffRate"),
                "`BackoffRate` must be a number of at least 1.0",
            );
        }
        let interval = r.bounded(o, &p, "IntervalSeconds", 1, limits::MAX_INTERVAL_SECONDS);
        let attempts = r.bounded(o, &p, "MaxAttempts", 0, limits::MAX_ATTEMPTS);
        let max_delay = r.bounded(o, &p, "MaxDelaySeconds", 1, limits::MAX_DELAY_SECONDS);
        out.push(Retrier {
            error_equals: error_equals(r, o, &p),
            interval_seconds: interval.unwrap_or(1) as f64,
            // at most 99,999,999: fits a u32
            max_attempts: attempts.map_or(3, |n| n as u32),
            backoff_rate,
            max_delay_seconds: max_delay.map(|n| n as f64),
            jitter_full: jitter.as_deref() == Some("FULL"),
        });
    }
    out
}

pub(super) fn read_catch(r: &mut Reader, obj: &Map<String, Value>, ptr: &str) -> Vec<Catcher> {
    let allowed = [
        "ErrorEquals",
        "Next",
        "ResultPath",
        "Output",
        "Assign",
        "Comment",
    ];
    let mut out = Vec::new();
    for (p, o) in objects(r, obj, ptr, "Catch", "catcher", &allowed) {
        let next = r.string(o, &p, "Next").unwrap_or_else(|| {
            r.err(&p, "a catcher needs `Next`");
            String::new()
        });
        out.push(Catcher {
            error_equals: error_equals(r, o, &p),
            next,
            result_path: r.path_field(o, &p, "ResultPath", true),
            output: o.get("Output").cloned(),
            assign: o.get("Assign").cloned(),
        });
    }
    out
}
