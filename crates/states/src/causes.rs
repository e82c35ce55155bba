//! Causes worded as Step Functions words them for the engine's own runtime errors, so
//! tools that match on a cause behave the same locally and on AWS. The wording follows
//! what AWS returns in `DescribeExecution` and the execution history
//! (<https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>,
//! <https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html>):
//!
//! - every cause the engine raises in a state starts with `An error occurred while
//!   executing the state 'NAME' (entered at the event id #N). `, N being the position of
//!   the state's `…StateEntered` event in the execution's history ([`in_state`]);
//! - `InputPath`, `OutputPath`, `ItemsPath` and the other path fields: `Invalid path '$.a'
//!   : No results for path: $['a']` ([`path_not_found`]);
//! - a `.$` field of `Parameters`, `ItemSelector` or `ResultSelector`: `The JSONPath '$.a'
//!   specified for the field 'x.$' could not be found in the input '{…}'`
//!   ([`field_not_found`]);
//! - a Choice rule's `Variable`: `Invalid path '$.a': The choice state's condition path
//!   references an invalid value.` ([`choice_path`]);
//! - a Wait's `SecondsPath`: `The SecondsPath parameter cannot be parsed as a long value:
//!   $.s == 1.5`, `… references a negative value: $.s == -1`, `… does not reference an
//!   input value: $.s` ([`seconds_path_value`], [`seconds_path_missing`]);
//! - a Map's `MaxConcurrencyPath`, `ToleratedFailureCountPath` and
//!   `ToleratedFailurePercentagePath`: `The MaxConcurrencyPath field refers to value "x"
//!   which is not a valid integer: $.c`, `Expected non-negative integer for MaxConcurrency,
//!   got '-1' instead.`, `ToleratedFailureCount cannot be negative.`, `ToleratedFailurePercentage
//!   must be between 0 and 100.` ([`map_path_number`]);
//! - an intrinsic's path argument: `The function 'States.Array($.a)' had the following
//!   error: The JsonPath argument for the field '$.a' could not be found in the input
//!   '{…}'` ([`intrinsic_argument`]).

use serde_json::Value;

/// The prefix AWS puts before the cause of an error raised by a state itself.
const PREFIX: &str = "An error occurred while executing the state '";

/// `detail` as the cause of state `name`, entered at history event `event_id`. A cause that
/// has its state's prefix already (from a branch or an iteration) is left as it is.
pub fn in_state(name: &str, event_id: usize, detail: &str) -> String {
    if detail.starts_with(PREFIX) {
        return detail.to_string();
    }
    format!("{PREFIX}{name}' (entered at the event id #{event_id}). {detail}")
}

/// A path field (`InputPath`, `OutputPath`, `ItemsPath`, …) that selects nothing.
pub fn path_not_found(input: &Value, context: &Value, path: &str) -> String {
    let why = crate::path::missing(input, context, path)
        .unwrap_or_else(|| format!("No results for path: {path}"));
    format!("Invalid path '{path}' : {why}")
}

/// A `.$` field of a payload template whose path selects nothing.
pub fn field_not_found(path: &str, field: &str, input: &Value) -> String {
    format!(
        "The JSONPath '{path}' specified for the field '{field}' could not be found in the input '{}'",
        compact(input)
    )
}

/// A Choice rule whose `Variable` selects nothing.
pub fn choice_path(path: &str) -> String {
    format!("Invalid path '{path}': The choice state's condition path references an invalid value.")
}

/// An intrinsic function whose path argument selects nothing.
pub fn intrinsic_argument(invocation: &str, path: &str, input: &Value) -> String {
    format!(
        "The function '{invocation}' had the following error: The JsonPath argument for the field '{path}' could not be found in the input '{}'",
        compact(input)
    )
}

/// A Wait's `SecondsPath` that selects nothing.
pub fn seconds_path_missing(path: &str) -> String {
    format!("The SecondsPath parameter does not reference an input value: {path}")
}

/// A Wait's `SecondsPath` value that is not a whole number of seconds, or is negative.
/// (Values above AWS's 99,999,999 are refused afterwards with the bound named.)
pub fn seconds_path_value(path: &str, v: &Value) -> Result<(), crate::failure::Failure> {
    let shown = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match v.as_i64() {
        Some(n) if n < 0 => Err(crate::failure::Failure::runtime(format!(
            "The SecondsPath parameter references a negative value: {path} == {shown}"
        ))),
        Some(_) => Ok(()),
        None if v.as_u64().is_some() => Ok(()),
        None => Err(crate::failure::Failure::runtime(format!(
            "The SecondsPath parameter cannot be parsed as a long value: {path} == {shown}"
        ))),
    }
}

/// Which of a Map's numeric `…Path` fields a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapNumber {
    MaxConcurrency,
    ToleratedFailureCount,
    ToleratedFailurePercentage,
}

/// The number a Map's `MaxConcurrencyPath` or `ToleratedFailure…Path` selected, checked as
/// AWS checks it: a JSON number or a string holding one (`"5"`), whole for the first two
/// fields, never negative, a percentage at most 100. The error is `States.Runtime` with
/// AWS's cause (<https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html>,
/// <https://docs.aws.amazon.com/step-functions/latest/dg/maprun-fail-threshold.html>).
pub fn map_path_number(
    field: MapNumber,
    path: &str,
    v: &Value,
) -> Result<f64, crate::failure::Failure> {
    let (name, kind) = match field {
        MapNumber::MaxConcurrency => ("MaxConcurrency", "integer"),
        MapNumber::ToleratedFailureCount => ("ToleratedFailureCount", "integer"),
        MapNumber::ToleratedFailurePercentage => ("ToleratedFailurePercentage", "float"),
    };
    let number = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<i64>().ok().map(|n| n as f64),
        _ => None,
    };
    let whole = kind == "integer";
    let Some(n) = number.filter(|n| n.is_finite() && (!whole || n.fract() == 0.0)) else {
        let shown = match v {
            Value::String(s) => s.clone(),
            other => compact(other),
        };
        return Err(crate::failure::Failure::runtime(format!(
            "The {name}Path field refers to value \"{shown}\" which is not a valid {kind}: {path}"
        )));
    };
    let cause = match field {
        MapNumber::MaxConcurrency if n < 0.0 => {
            format!("Expected non-negative integer for MaxConcurrency, got '{n}' instead.")
        }
        MapNumber::ToleratedFailureCount if n < 0.0 => {
            "ToleratedFailureCount cannot be negative.".to_string()
        }
        MapNumber::ToleratedFailurePercentage if !(0.0..=100.0).contains(&n) => {
            "ToleratedFailurePercentage must be between 0 and 100.".to_string()
        }
        _ => return Ok(n),
    };
    Err(crate::failure::Failure::runtime(cause))
}

/// JSON as AWS prints a state's input in a cause: compact.
fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
