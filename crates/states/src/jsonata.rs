//! JSONata states (`QueryLanguage: JSONata`): `{% expression %}` strings in `Arguments`,
//! `Output`, `Assign`, `Condition`, `Items`, `ItemSelector`, `Error`/`Cause` and Wait's
//! `Seconds`/`Timestamp`, evaluated with the `jsonata-rs` crate.
//!
//! Bindings, as Step Functions has them: `$states.input`, `$states.context`,
//! `$states.result` (after a Task, Parallel or Map), `$states.errorOutput` (in a Catch),
//! and every variable set by `Assign` as `$name`.

use bumpalo::Bump;
use jsonata_rs::JsonAta;
use serde_json::{Map, Value};

use crate::engine::Failure;

/// The expression inside `{% … %}`, if `s` is one.
pub fn expression(s: &str) -> Option<&str> {
    let t = s.trim();
    t.strip_prefix("{%")?.strip_suffix("%}").map(str::trim)
}

/// How deeply an expression may nest, as [`nesting`] counts it. jsonata-rs parses and
/// evaluates by recursion, so an expression nested thousands of levels deep would
/// overflow the stack; real expressions stay far below this.
pub const MAX_NESTING: usize = 400;

/// How deeply evaluation may recurse (nested function calls included) before it fails
/// with a JSONata stack overflow error (`U1001`) instead of overflowing the thread's stack.
pub const MAX_EVAL_DEPTH: usize = 1_000;

/// How long one evaluation may run, in milliseconds, before it fails with a JSONata
/// timeout error (`U1001`): jsonata-rs turns tail calls into loops, so a recursive
/// function without a base case would otherwise never return.
pub const MAX_EVAL_MILLIS: usize = 10_000;

/// The stack every parse and evaluation runs with: grown to this when the calling thread
/// has less left. [`MAX_NESTING`] and [`MAX_EVAL_DEPTH`] are chosen so that they fit.
const STACK_BYTES: usize = 64 * 1024 * 1024;

thread_local! {
    /// Whether this thread is inside jsonata-rs (see [`guarded`]).
    static IN_JSONATA: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Wraps the process's panic hook, once, so that a panic inside jsonata-rs (which
/// [`guarded`] turns into an error) prints nothing; every other panic goes to the hook
/// that was installed before.
fn quiet_panics_in_jsonata() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_JSONATA.get() {
                previous(info);
            }
        }));
    });
}

/// Runs `f` (a call into jsonata-rs) with at least [`STACK_BYTES`] of stack. A panic
/// inside jsonata-rs (it leaves some syntax unimplemented, e.g. the parent operator `%`)
/// is caught and given to `on_panic` as a message: it never reaches the user as a crash.
fn guarded<T>(f: impl FnOnce() -> T, on_panic: impl FnOnce(String) -> T) -> T {
    quiet_panics_in_jsonata();
    stacker::maybe_grow(STACK_BYTES, STACK_BYTES, || {
        IN_JSONATA.set(true);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        IN_JSONATA.set(false);
        caught.unwrap_or_else(|payload| {
            let why = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            on_panic(format!(
                "the JSONata engine (jsonata-rs) does not support this expression: {why}"
            ))
        })
    })
}

/// Checks that an expression parses and is not nested too deeply.
pub fn check(expr: &str) -> Result<(), String> {
    check_nesting(expr)?;
    guarded(
        || {
            let arena = Bump::new();
            JsonAta::new(expr, &arena)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
        Err,
    )
}

/// Fails when `expr` nests deeper than [`MAX_NESTING`].
fn check_nesting(expr: &str) -> Result<(), String> {
    let depth = nesting(expr);
    if depth > MAX_NESTING {
        return Err(format!(
            "the expression nests about {depth} levels deep (brackets and operators), more than the {MAX_NESTING} skein accepts; split it, e.g. into variables set with `Assign`"
        ));
    }
    Ok(())
}

/// An upper bound on how deeply the syntax tree of `expr` nests, read from its tokens
/// without parsing: every open bracket is a level, and every token since the last `,` or
/// `;` at a level may add one (a chain `a + b + c` nests one level per operator). Strings,
/// names in backticks and comments count once.
pub fn nesting(expr: &str) -> usize {
    let b = expr.as_bytes();
    // tokens since the last separator, per open bracket
    let mut levels: Vec<usize> = vec![0];
    let (mut depth, mut max) = (1usize, 1usize);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => continue,
            b',' | b';' => {
                if let Some(top) = levels.last_mut() {
                    depth -= *top;
                    *top = 0;
                }
                continue;
            }
            b')' | b']' | b'}' => {
                if levels.len() > 1
                    && let Some(top) = levels.pop()
                {
                    depth -= top + 1;
                }
                continue;
            }
            b'"' | b'\'' | b'`' => {
                while i < b.len() && b[i] != c {
                    i += if b[i] == b'\\' && c != b'`' { 2 } else { 1 };
                }
                i += 1;
            }
            b'/' if b.get(i) == Some(&b'*') => {
                i = expr[i..].find("*/").map_or(b.len(), |end| i + end + 2);
                continue;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80)
                {
                    i += 1;
                }
            }
            _ => {}
        }
        // one token at the current level
        if let Some(top) = levels.last_mut() {
            *top += 1;
        }
        depth += 1;
        if matches!(c, b'(' | b'[' | b'{') {
            levels.push(0);
            depth += 1;
        }
        max = max.max(depth);
    }
    max
}

/// An expression for an error message, cut short if long.
pub(crate) fn shown(expr: &str) -> String {
    match expr.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &expr[..i]),
        None => expr.to_string(),
    }
}

/// Evaluates one expression; an undefined result is `null`.
pub fn eval(expr: &str, states: &Value, vars: &Value) -> Result<Value, Failure> {
    let fail = |e: String| {
        Failure::new(
            "States.QueryEvaluationError",
            format!("JSONata `{}`: {e}", shown(expr)),
        )
    };
    check_nesting(expr).map_err(fail)?;
    guarded(
        || {
            let arena = Bump::new();
            let jsonata = JsonAta::new(expr, &arena).map_err(|e| fail(e.to_string()))?;
            if let Value::Object(v) = vars {
                for (k, val) in v {
                    jsonata.assign_var(k, to_jsonata(&arena, val));
                }
            }
            jsonata.assign_var("states", to_jsonata(&arena, states));
            let result = jsonata
                .evaluate_timeboxed(None, Some(MAX_EVAL_DEPTH), Some(MAX_EVAL_MILLIS))
                .map_err(|e| fail(e.to_string()))?;
            if result.is_undefined() {
                return Ok(Value::Null);
            }
            serde_json::from_str(&result.serialize(false))
                .map_err(|e| fail(format!("result is not JSON: {e}")))
        },
        |why| Err(fail(why)),
    )
}

/// A JSON value as a JSONata value in `arena` (what `JsonAta::evaluate` does with its
/// bindings; done here so evaluation can be given a depth limit).
fn to_jsonata<'a>(arena: &'a Bump, v: &Value) -> &'a jsonata_rs::Value<'a> {
    use jsonata_rs::{ArrayFlags, Value as J};
    match v {
        Value::Null => J::null(arena),
        Value::Bool(b) => J::bool(*b),
        Value::Number(n) => J::number(arena, n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => J::string(arena, s),
        Value::Array(items) => {
            let array = J::array_with_capacity(arena, items.len(), ArrayFlags::empty());
            for item in items {
                array.push(to_jsonata(arena, item));
            }
            array
        }
        Value::Object(map) => {
            let object = J::object_with_capacity(arena, map.len());
            for (k, item) in map {
                object.insert(k, to_jsonata(arena, item));
            }
            object
        }
    }
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
