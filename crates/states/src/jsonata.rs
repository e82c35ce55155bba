//! JSONata states (`QueryLanguage: JSONata`): `{% expression %}` strings in `Arguments`,
//! `Output`, `Assign`, `Condition`, `Items`, `ItemSelector`, `Error`/`Cause` and Wait's
//! `Seconds`/`Timestamp`, evaluated with the `jsonata-rs` crate.
//!
//! Bindings, as Step Functions has them: `$states.input`, `$states.context`,
//! `$states.result` (after a Task, Parallel or Map), `$states.errorOutput` (in a Catch),
//! and every variable set by `Assign` as `$name`.

use std::collections::HashMap;

use bumpalo::Bump;
use jsonata_rs::JsonAta;
use serde_json::{Map, Value};

use crate::engine::Failure;

/// The expression inside `{% … %}`, if `s` is one.
pub fn expression(s: &str) -> Option<&str> {
    let t = s.trim();
    t.strip_prefix("{%")?.strip_suffix("%}").map(str::trim)
}

/// Checks that an expression parses.
pub fn check(expr: &str) -> Result<(), String> {
    let arena = Bump::new();
    JsonAta::new(expr, &arena)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Evaluates one expression; an undefined result is `null`.
pub fn eval(expr: &str, states: &Value, vars: &Value) -> Result<Value, Failure> {
    let fail = |e: String| {
        Failure::new(
            "States.QueryEvaluationError",
            format!("JSONata `{expr}`: {e}"),
        )
    };
    let arena = Bump::new();
    let jsonata = JsonAta::new(expr, &arena).map_err(|e| fail(e.to_string()))?;
    let mut bindings: HashMap<&str, &Value> = HashMap::new();
    if let Value::Object(v) = vars {
        for (k, val) in v {
            bindings.insert(k.as_str(), val);
        }
    }
    bindings.insert("states", states);
    let result = jsonata
        .evaluate(None, Some(&bindings))
        .map_err(|e| fail(e.to_string()))?;
    if result.is_undefined() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&result.serialize(false))
        .map_err(|e| fail(format!("result is not JSON: {e}")))
}

/// Renders a template: `{% … %}` strings are evaluated, objects and arrays recursively,
/// anything else is copied.
pub fn render(template: &Value, states: &Value, vars: &Value) -> Result<Value, Failure> {
    match template {
        Value::String(s) => match expression(s) {
            Some(expr) => eval(expr, states, vars),
            None => Ok(template.clone()),
        },
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), render(v, states, vars)?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => Ok(Value::Array(
            items
                .iter()
                .map(|v| render(v, states, vars))
                .collect::<Result<_, _>>()?,
        )),
        other => Ok(other.clone()),
    }
}

/// Every expression in a template, for checking a definition.
pub fn expressions(template: &Value, out: &mut Vec<String>) {
    match template {
        Value::String(s) => {
            if let Some(e) = expression(s) {
                out.push(e.to_string());
            }
        }
        Value::Object(map) => map.values().for_each(|v| expressions(v, out)),
        Value::Array(items) => items.iter().for_each(|v| expressions(v, out)),
        _ => {}
    }
}
