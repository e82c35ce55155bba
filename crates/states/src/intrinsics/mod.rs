//! ASL intrinsic functions (`States.Format(...)`, `States.Array(...)`, …) for JSONPath states.
//!
//! [`eval`] parses one invocation and evaluates it against the state input and the context
//! object. Arguments are string literals in single quotes (`\'`, `\{`, `\}` and `\\` are the
//! only escapes), numbers, `true`, `false`, `null`, JSONPaths (`$.x`, `$$.Execution.Id`,
//! read with [`crate::path::select`]) and nested invocations, at most
//! [`MAX_NESTING`] deep. Behaviour and limits follow the AWS guide "Intrinsic functions
//! for JSONPath states in Step Functions".

mod parse;
mod syntax;

use std::collections::HashSet;

use base64::Engine as _;
use md5::Digest as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Map, Number, Value};
use sha2::Digest as _;

use parse::parse;
pub use syntax::MAX_NESTING;
use syntax::{Call, Expr, check_placeholders};

pub use crate::error::IntrinsicError;
use crate::path;

/// The longest string Base64Encode, Base64Decode and Hash accept (the AWS limit).
const MAX_STRING_CHARS: usize = 10_000;

/// The longest array ArrayRange makes (the AWS limit).
const MAX_RANGE_ITEMS: i128 = 1_000;

/// Whether a `.$` field's value is an intrinsic invocation rather than a path.
pub fn is_intrinsic(s: &str) -> bool {
    s.starts_with("States.") && s.contains('(')
}

/// Parses and evaluates the invocation `expr` against the state input and context object.
pub fn eval(expr: &str, input: &Value, context: &Value) -> Result<Value, IntrinsicError> {
    eval_scoped(expr, input, context, &Value::Null)
}

/// [`eval`] with workflow variables: a `$name` argument reads the variable `name`.
pub fn eval_scoped(
    expr: &str,
    input: &Value,
    context: &Value,
    vars: &Value,
) -> Result<Value, IntrinsicError> {
    parse(expr)?.eval(&Scope {
        input,
        context,
        vars,
    })
}

/// Checks `expr` without evaluating it: syntax, nesting, function names, argument counts
/// and literal States.Format templates. Fails with what [`eval`] would fail with first.
pub fn validate(expr: &str) -> Result<(), IntrinsicError> {
    parse(expr).map(drop)
}

struct Scope<'a> {
    input: &'a Value,
    context: &'a Value,
    vars: &'a Value,
}

impl Call {
    fn eval(&self, scope: &Scope<'_>) -> Result<Value, IntrinsicError> {
        let args = Args::new(&self.function, &self.args, scope)?;
        match self.function.as_str() {
            "States.Format" => format(&args, self.args.first()),
            "States.StringToJson" => {
                let text = args.string(0)?;
                // AWS gives null for an empty or blank string rather than an error.
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                serde_json::from_str(text).map_err(|e| args.invalid(0, format!("is not JSON: {e}")))
            }
            "States.JsonToString" => Ok(Value::String(args.values[0].to_string())),
            "States.Array" => Ok(Value::Array(args.values)),
            "States.ArrayPartition" => {
                let size = args.int(1)?;
                if size <= 0 {
                    return Err(args.invalid(1, format!("must be a positive integer, got {size}")));
                }
                let chunks = args
                    .array(0)?
                    .chunks(usize::try_from(size).unwrap_or(usize::MAX));
                Ok(Value::Array(
                    chunks.map(|c| Value::Array(c.to_vec())).collect(),
                ))
            }
            "States.ArrayContains" => Ok(Value::Bool(args.array(0)?.contains(&args.values[1]))),
            "States.ArrayRange" => {
                let (start, end, step) = (args.int(0)?, args.int(1)?, args.int(2)?);
                if step == 0 {
                    return Err(args.invalid(2, "(the step) must not be 0".to_owned()));
                }
                let span = i128::from(end) - i128::from(start);
                let len = if span.signum() * i128::from(step.signum()) < 0 {
                    0
                } else {
                    span / i128::from(step) + 1
                };
                if len > MAX_RANGE_ITEMS {
                    return Err(args.invalid(
                        1,
                        format!("makes a range of {len} items, more than {MAX_RANGE_ITEMS}"),
                    ));
                }
                // Each item lies between start and end, so it fits in an i64.
                let item = |i: i128| (i128::from(start) + i * i128::from(step)) as i64;
                let items = (0..len).map(|i| Value::from(item(i)));
                Ok(Value::Array(items.collect()))
            }
            "States.ArrayGetItem" => {
                let (items, index) = (args.array(0)?, args.int(1)?);
                usize::try_from(index)
                    .ok()
                    .and_then(|i| items.get(i))
                    .cloned()
                    .ok_or_else(|| {
                        let len = items.len();
                        args.invalid(
                            1,
                            format!("(index {index}) is out of bounds for {len} items"),
                        )
                    })
            }
            "States.ArrayLength" => Ok(Value::from(args.array(0)?.len())),
            "States.ArrayUnique" => {
                let mut seen = HashSet::new();
                let items = args.array(0)?.iter().filter(|v| seen.insert(v.to_string()));
                Ok(Value::Array(items.cloned().collect()))
            }
            "States.Base64Encode" => {
                let text = args.short_string(0)?;
                Ok(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(text),
                ))
            }
            "States.Base64Decode" => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(args.short_string(0)?)
                    .map_err(|e| args.invalid(0, format!("is not Base64: {e}")))?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| args.invalid(0, "does not decode to UTF-8 text".to_owned()))?;
                Ok(Value::String(text))
            }
            "States.Hash" => {
                let data = args.short_string(0)?.as_bytes();
                let digest = match args.string(1)? {
                    "MD5" => md5::Md5::digest(data).to_vec(),
                    "SHA-1" => sha1::Sha1::digest(data).to_vec(),
                    "SHA-256" => sha2::Sha256::digest(data).to_vec(),
                    "SHA-384" => sha2::Sha384::digest(data).to_vec(),
                    "SHA-512" => sha2::Sha512::digest(data).to_vec(),
                    other => {
                        return Err(args.invalid(
                            1,
                            format!(
                                "must be MD5, SHA-1, SHA-256, SHA-384 or SHA-512, got `{other}`"
                            ),
                        ));
                    }
                };
                Ok(Value::String(
                    digest.iter().map(|b| format!("{b:02x}")).collect(),
                ))
            }
            "States.JsonMerge" => {
                if args.boolean(2)? {
                    return Err(
                        args.invalid(2, "must be false: only a shallow merge is supported".into())
                    );
                }
                let mut merged = args.object(0)?.clone();
                merged.extend(args.object(1)?.clone());
                Ok(Value::Object(merged))
            }
            "States.MathRandom" => {
                let (start, end) = (args.rounded(0)?, args.rounded(1)?);
                if start >= end {
                    return Err(args.invalid(
                        1,
                        format!("(the end, {end}) must exceed the start, {start}"),
                    ));
                }
                let n = match args.values.get(2) {
                    Some(_) => rand::rngs::StdRng::seed_from_u64(args.rounded(2)? as u64)
                        .random_range(start..end),
                    None => rand::rng().random_range(start..end),
                };
                Ok(Value::from(n))
            }
            "States.MathAdd" => {
                let (a, b) = (args.rounded(0)?, args.rounded(1)?);
                for (i, v) in [(0, a), (1, b)] {
                    if i32::try_from(v).is_err() {
                        return Err(
                            args.invalid(i, format!("({v}) is outside the 32-bit integer range"))
                        );
                    }
                }
                Ok(Value::from(a + b))
            }
            "States.StringSplit" => {
                let (text, delimiters) = (args.string(0)?, args.string(1)?);
                let parts = text
                    .split(|c| delimiters.contains(c))
                    .filter(|p| !p.is_empty());
                Ok(Value::Array(parts.map(Value::from).collect()))
            }
            "States.UUID" => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
            function => Err(IntrinsicError::UnknownFunction {
                function: function.to_owned(),
            }),
        }
    }
}

/// States.Format: the template's `{}` replaced by the other arguments: strings raw,
/// numbers, booleans and null as JSON writes them, objects and arrays as AWS renders them
/// (`{Arg1=1, Arg2=[a, b]}`, Java's text of a map and a list, strings inside unquoted).
fn format(args: &Args<'_>, template: Option<&Expr>) -> Result<Value, IntrinsicError> {
    let text = args.string(0)?;
    let placeholders = match template {
        Some(Expr::Str { placeholders, .. }) => placeholders.clone(),
        _ => text.match_indices("{}").map(|(i, _)| i).collect(),
    };
    check_placeholders(args.function, placeholders.len(), args.values.len() - 1)?;
    let mut out = String::new();
    let mut from = 0;
    for (at, value) in placeholders.iter().zip(&args.values[1..]) {
        out.push_str(&text[from..*at]);
        format_value(value, &mut out);
        from = at + 2;
    }
    out.push_str(&text[from..]);
    Ok(Value::String(out))
}

/// One value as States.Format writes it.
fn format_value(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                format_value(v, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                format_value(v, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The evaluated arguments of one invocation, with checks that name the function.
struct Args<'a> {
    function: &'a str,
    values: Vec<Value>,
}

impl<'a> Args<'a> {
    fn new(function: &'a str, exprs: &[Expr], scope: &Scope<'_>) -> Result<Self, IntrinsicError> {
        let values = exprs
            .iter()
            .map(|e| match e {
                Expr::Literal(v) => Ok(v.clone()),
                Expr::Str { value, .. } => Ok(Value::String(value.clone())),
                Expr::Path(p) => path::select_scoped(scope.input, scope.context, scope.vars, p)
                    .map_err(|source| IntrinsicError::Path {
                        function: function.to_owned(),
                        source,
                    }),
                Expr::Call(c) => c.eval(scope),
            })
            .collect::<Result<_, _>>()?;
        Ok(Args { function, values })
    }

    /// An error about argument `i` (from 0).
    fn invalid(&self, i: usize, message: String) -> IntrinsicError {
        IntrinsicError::InvalidArgument {
            function: self.function.to_owned(),
            argument: i + 1,
            message,
        }
    }

    fn type_error(&self, i: usize, expected: &str) -> IntrinsicError {
        let mut got = self.values[i].to_string();
        if got.len() > 60 {
            let cut = (0..=57)
                .rev()
                .find(|&n| got.is_char_boundary(n))
                .unwrap_or(0);
            got.truncate(cut);
            got.push_str("...");
        }
        self.invalid(i, format!("must be {expected}, got {got}"))
    }

    fn string(&self, i: usize) -> Result<&str, IntrinsicError> {
        self.values[i]
            .as_str()
            .ok_or_else(|| self.type_error(i, "a string"))
    }

    /// A string of at most [`MAX_STRING_CHARS`] characters.
    fn short_string(&self, i: usize) -> Result<&str, IntrinsicError> {
        let s = self.string(i)?;
        let chars = s.chars().count();
        if chars > MAX_STRING_CHARS {
            return Err(self.invalid(
                i,
                format!("has {chars} characters, more than {MAX_STRING_CHARS}"),
            ));
        }
        Ok(s)
    }

    fn array(&self, i: usize) -> Result<&Vec<Value>, IntrinsicError> {
        self.values[i]
            .as_array()
            .ok_or_else(|| self.type_error(i, "an array"))
    }

    fn object(&self, i: usize) -> Result<&Map<String, Value>, IntrinsicError> {
        self.values[i]
            .as_object()
            .ok_or_else(|| self.type_error(i, "an object"))
    }

    fn boolean(&self, i: usize) -> Result<bool, IntrinsicError> {
        self.values[i]
            .as_bool()
            .ok_or_else(|| self.type_error(i, "a boolean"))
    }

    /// An integer; `3.0` counts as one, `3.5` does not.
    fn int(&self, i: usize) -> Result<i64, IntrinsicError> {
        let n = self.values[i].as_number();
        n.and_then(Number::as_i64)
            .or_else(|| {
                let f = n?.as_f64()?;
                (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
            })
            .ok_or_else(|| self.type_error(i, "an integer"))
    }

    /// A number rounded to the nearest integer, halves up (`-1.5` → `-1`, `0.5` → `1`), as
    /// MathAdd and MathRandom do on AWS.
    fn rounded(&self, i: usize) -> Result<i64, IntrinsicError> {
        let n = self.values[i].as_number();
        n.and_then(Number::as_i64)
            .or_else(|| {
                let f = (n?.as_f64()? + 0.5).floor();
                (f.abs() < 9.0e15).then_some(f as i64)
            })
            .ok_or_else(|| self.type_error(i, "a number"))
    }
}
