//! Payload templates (`Parameters`, `ResultSelector`, `ItemSelector`, `Assign`) and the
//! JSONPath input/output processing of a state.

use serde_json::{Map, Value};

use crate::definition::PathField;
use crate::error::{IntrinsicError, PathError};
use crate::failure::Failure;
use crate::{causes, intrinsics, path};

/// What a template or path can read: the input (`$`), the context object (`$$`) and the
/// variables (`$name`).
pub struct Scope<'a> {
    pub input: &'a Value,
    pub context: &'a Value,
    pub vars: &'a Value,
}

/// Evaluates one path in a scope; a missing path is a `States.Runtime` failure.
pub fn select(scope: &Scope<'_>, p: &str) -> Result<Value, Failure> {
    if let Some((name, sub)) = path::variable(p) {
        let value = scope.vars.get(name).ok_or_else(|| {
            Failure::runtime(format!(
                "The variable `${name}` is not assigned; set it with `Assign` in an earlier state"
            ))
        })?;
        return path::select(value, scope.context, &sub).map_err(|e| match e {
            PathError::NotFound { .. } => {
                Failure::runtime(causes::path_not_found(value, scope.context, &sub))
            }
            e => Failure::runtime(e.to_string()),
        });
    }
    path::select(scope.input, scope.context, p).map_err(|e| match e {
        PathError::NotFound { .. } => {
            Failure::runtime(causes::path_not_found(scope.input, scope.context, p))
        }
        e => Failure::runtime(e.to_string()),
    })
}

/// Renders a payload template: keys ending in `.$` take the value of their path or
/// intrinsic function, other values are copied (objects and arrays recursively).
pub fn render(template: &Value, scope: &Scope<'_>) -> Result<Value, Failure> {
    match template {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                match k.strip_suffix(".$") {
                    Some(key) => {
                        let expr = v.as_str().ok_or_else(|| {
                            Failure::runtime(format!(
                                "the field `{k}` must hold a path or an intrinsic function"
                            ))
                        })?;
                        out.insert(key.to_string(), field(k, expr, scope)?);
                    }
                    None => {
                        out.insert(k.clone(), render(v, scope)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => Ok(Value::Array(
            items
                .iter()
                .map(|v| render(v, scope))
                .collect::<Result<_, _>>()?,
        )),
        other => Ok(other.clone()),
    }
}

/// The value of the `.$` field `key` of a template: [`eval`], a path that selects nothing
/// worded as AWS words it for a field.
fn field(key: &str, expr: &str, scope: &Scope<'_>) -> Result<Value, Failure> {
    if intrinsics::is_intrinsic(expr) || path::variable(expr).is_some() {
        return eval(expr, scope);
    }
    path::select(scope.input, scope.context, expr).map_err(|e| match e {
        PathError::NotFound { .. } => {
            Failure::runtime(causes::field_not_found(expr, key, scope.input))
        }
        e => Failure::runtime(e.to_string()),
    })
}

/// One `.$` value: an intrinsic function call or a path.
pub fn eval(expr: &str, scope: &Scope<'_>) -> Result<Value, Failure> {
    if intrinsics::is_intrinsic(expr) {
        return intrinsics::eval_scoped(expr, scope.input, scope.context, scope.vars).map_err(
            |e| match e {
                // A path argument that selects nothing is `States.Runtime` on AWS, not
                // `States.IntrinsicFailure`, and names the whole expression.
                IntrinsicError::Path {
                    source: PathError::NotFound { path },
                    ..
                } => Failure::runtime(causes::intrinsic_argument(expr, &path, scope.input)),
                e => Failure {
                    error: "States.IntrinsicFailure".into(),
                    cause: e.to_string(),
                },
            },
        );
    }
    select(scope, expr)
}

/// Checks an intrinsic function call without input: syntax, known function, argument count.
pub fn check_intrinsic(expr: &str) -> Result<(), String> {
    intrinsics::validate(expr).map_err(|e| e.to_string())
}

/// `InputPath` / `OutputPath`: default `$`, `null` gives `{}`.
pub fn apply_path(field: &PathField, value: &Value, scope: &Scope<'_>) -> Result<Value, Failure> {
    match field {
        PathField::Default => Ok(value.clone()),
        PathField::Null => Ok(Value::Object(Map::new())),
        PathField::Path(p) => select(
            &Scope {
                input: value,
                context: scope.context,
                vars: scope.vars,
            },
            p,
        ),
    }
}

/// `ResultPath`: default replaces the input with the result, `null` keeps the input, a
/// path places the result inside (a copy of) the input.
pub fn apply_result_path(
    field: &PathField,
    raw_input: &Value,
    result: Value,
) -> Result<Value, Failure> {
    match field {
        PathField::Default => Ok(result),
        PathField::Null => Ok(raw_input.clone()),
        PathField::Path(p) => {
            let mut doc = raw_input.clone();
            path::set(&mut doc, p, result).map_err(|e| Failure::runtime(e.to_string()))?;
            Ok(doc)
        }
    }
}
