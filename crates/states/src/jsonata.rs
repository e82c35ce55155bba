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

use crate::failure::Failure;

/// The expression inside `{% … %}`, if `s` is one. The string must start with `{%` and
/// end with `%}`: with blanks around them it is a plain string, as on AWS.
pub fn expression(s: &str) -> Option<&str> {
    s.strip_prefix("{%")?.strip_suffix("%}").map(str::trim)
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

/// How much memory one evaluation's arena may take. jsonata-rs allocates in an arena freed
/// only at the end, so a loop that never ends (a tail-recursive function without a base
/// case, turned into a loop) would otherwise grow it by gigabytes before the time limit;
/// found by fuzzing. Such a loop also chains jsonata-rs's call frames (on the heap, kept
/// alive by the closure that refers to them, so never freed): the cap bounds that too, to
/// a few tens of MiB per runaway evaluation. AWS's payloads are at most 256 KiB, so real
/// expressions stay far below this.
pub const MAX_EVAL_BYTES: usize = 16 * 1024 * 1024;

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
            // bumpalo's own panic when the arena's limit is reached
            if why.contains("out of memory") {
                return on_panic(format!(
                    "evaluation used more than {} MiB (a recursive function without a base case?)",
                    MAX_EVAL_BYTES / (1024 * 1024)
                ));
            }
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

/// Evaluates one expression. An undefined result (nothing matched) is an error, as on AWS:
/// the state fails with `States.QueryEvaluationError` before any Task is invoked
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html>).
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
            arena.set_allocation_limit(Some(MAX_EVAL_BYTES));
            let source = aws::rename_builtins(expr);
            let jsonata = JsonAta::new(&source, &arena).map_err(|e| fail(e.to_string()))?;
            if let Value::Object(v) = vars {
                for (k, val) in v {
                    jsonata.assign_var(k, to_jsonata(&arena, val));
                }
            }
            jsonata.assign_var("states", to_jsonata(&arena, states));
            aws::register(&jsonata);
            let result = jsonata
                .evaluate_timeboxed(None, Some(MAX_EVAL_DEPTH), Some(MAX_EVAL_MILLIS))
                .map_err(|e| fail(e.to_string()))?;
            if result.is_undefined() {
                return Err(fail("returned nothing (undefined)".into()));
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

/// The JSONata functions Step Functions adds to the standard library
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html#jsonata-functions>):
/// `$partition`, `$range`, `$hash`, `$random` (with an optional seed), `$parse`; `$uuid` is
/// jsonata-rs's own.
mod aws {
    use jsonata_rs::{ArrayFlags, Error, FunctionContext, JsonAta, Value};
    use md5::Digest as _;
    use rand::{Rng, SeedableRng};
    use sha2::Digest as _;

    type Result<'a> = std::result::Result<&'a Value<'a>, Error>;

    /// Binds the functions in `jsonata`'s frame.
    pub fn register(jsonata: &JsonAta<'_>) {
        jsonata.register_function("partition", 2, partition);
        jsonata.register_function("range", 3, range);
        jsonata.register_function("hash", 2, hash);
        jsonata.register_function(RANDOM, 1, random);
        jsonata.register_function("parse", 1, parse);
    }

    /// AWS's `$random` takes an optional seed; jsonata-rs binds its own `$random` (no
    /// arguments) when it evaluates, over any binding of ours, so calls go to ours by
    /// another name.
    const RANDOM: &str = "__skein_random";

    /// `expr` with `$random(` calls renamed to [`RANDOM`], outside string literals and
    /// comments.
    pub fn rename_builtins(expr: &str) -> std::borrow::Cow<'_, str> {
        if !expr.contains("$random") {
            return std::borrow::Cow::Borrowed(expr);
        }
        let mut out = String::with_capacity(expr.len() + 16);
        let mut chars = expr.char_indices().peekable();
        let mut quote: Option<char> = None;
        let mut comment = false;
        while let Some((i, c)) = chars.next() {
            if comment {
                out.push(c);
                if c == '*' && expr[i + 1..].starts_with('/') {
                    out.push('/');
                    chars.next();
                    comment = false;
                }
                continue;
            }
            match quote {
                Some(q) => {
                    out.push(c);
                    if c == '\\' {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    } else if c == q {
                        quote = None;
                    }
                }
                None if c == '"' || c == '\'' => {
                    quote = Some(c);
                    out.push(c);
                }
                None if c == '/' && expr[i + 1..].starts_with('*') => {
                    comment = true;
                    out.push(c);
                }
                None if c == '$' && expr[i + 1..].starts_with("random") => {
                    let after = expr[i + 7..].trim_start();
                    if after.starts_with('(') {
                        out.push('$');
                        out.push_str(RANDOM);
                        for _ in 0.."random".len() {
                            chars.next();
                        }
                    } else {
                        out.push(c);
                    }
                }
                None => out.push(c),
            }
        }
        std::borrow::Cow::Owned(out)
    }

    fn fail<'a>(function: &str, message: String) -> Result<'a> {
        Err(Error::D3137Error(format!("${function}: {message}")))
    }

    fn integer(v: Option<&&Value<'_>>) -> Option<i64> {
        let v = v?;
        (v.is_number() && v.as_f64().fract() == 0.0 && v.as_f64().abs() < 9e15)
            .then(|| v.as_f64() as i64)
    }

    /// `$partition(array, size)`: the array cut into arrays of `size` items.
    fn partition<'a>(cx: FunctionContext<'a, '_>, args: &[&'a Value<'a>]) -> Result<'a> {
        let (Some(array), Some(size)) = (args.first(), integer(args.get(1))) else {
            return fail("partition", "takes an array and a chunk size".into());
        };
        if !array.is_array() || size <= 0 {
            return fail(
                "partition",
                "takes an array and a positive integer chunk size".into(),
            );
        }
        let items: Vec<&'a Value<'a>> = array.members().collect();
        let out = Value::array_with_capacity(cx.arena, items.len(), ArrayFlags::empty());
        for chunk in items.chunks(size as usize) {
            let part = Value::array_with_capacity(cx.arena, chunk.len(), ArrayFlags::empty());
            for item in chunk {
                part.push(item);
            }
            out.push(part);
        }
        Ok(out)
    }

    /// `$range(start, end, step)`: integers from start to end (both included) by step.
    fn range<'a>(cx: FunctionContext<'a, '_>, args: &[&'a Value<'a>]) -> Result<'a> {
        let (Some(start), Some(end), Some(step)) = (
            integer(args.first()),
            integer(args.get(1)),
            integer(args.get(2)),
        ) else {
            return fail("range", "takes three integers: start, end and step".into());
        };
        if step == 0 {
            return fail("range", "the step must not be 0".into());
        }
        // AWS caps generated arrays at 1,000 items, as States.ArrayRange does.
        let count = ((end - start) / step).max(-1) + 1;
        if count > 1000 {
            return fail("range", format!("would make {count} items; at most 1000"));
        }
        let out = Value::array_with_capacity(cx.arena, count.max(0) as usize, ArrayFlags::empty());
        let mut n = start;
        while (step > 0 && n <= end) || (step < 0 && n >= end) {
            out.push(Value::number(cx.arena, n as f64));
            n += step;
        }
        Ok(out)
    }

    /// `$hash(text, algorithm)`: the hex digest, MD5, SHA-1, SHA-256, SHA-384 or SHA-512.
    fn hash<'a>(cx: FunctionContext<'a, '_>, args: &[&'a Value<'a>]) -> Result<'a> {
        let (Some(data), Some(algorithm)) = (args.first(), args.get(1)) else {
            return fail("hash", "takes a string and an algorithm".into());
        };
        if !data.is_string() || !algorithm.is_string() {
            return fail("hash", "takes a string and an algorithm name".into());
        }
        let data = data.as_str();
        let bytes = data.as_bytes();
        let digest = match algorithm.as_str().as_ref() {
            "MD5" => md5::Md5::digest(bytes).to_vec(),
            "SHA-1" => sha1::Sha1::digest(bytes).to_vec(),
            "SHA-256" => sha2::Sha256::digest(bytes).to_vec(),
            "SHA-384" => sha2::Sha384::digest(bytes).to_vec(),
            "SHA-512" => sha2::Sha512::digest(bytes).to_vec(),
            other => {
                return fail(
                    "hash",
                    format!(
                        "the algorithm must be MD5, SHA-1, SHA-256, SHA-384 or SHA-512, got `{other}`"
                    ),
                );
            }
        };
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Value::string(cx.arena, &hex))
    }

    /// `$random()` or `$random(seed)`: a number in [0, 1); a seed makes it repeatable.
    fn random<'a>(cx: FunctionContext<'a, '_>, args: &[&'a Value<'a>]) -> Result<'a> {
        let n: f64 = match args.first() {
            None => rand::rng().random(),
            Some(seed) if seed.is_number() => {
                rand::rngs::StdRng::seed_from_u64(seed.as_f64() as i64 as u64).random()
            }
            Some(_) => return fail("random", "the seed must be a number".into()),
        };
        Ok(Value::number(cx.arena, n))
    }

    /// `$parse(text)`: the JSON value a string holds.
    fn parse<'a>(cx: FunctionContext<'a, '_>, args: &[&'a Value<'a>]) -> Result<'a> {
        let Some(text) = args.first().filter(|v| v.is_string()) else {
            return fail("parse", "takes a string of JSON".into());
        };
        match serde_json::from_str::<serde_json::Value>(&text.as_str()) {
            Ok(v) => Ok(super::to_jsonata(cx.arena, &v)),
            Err(e) => fail("parse", format!("the string is not JSON: {e}")),
        }
    }
}
