//! JSONPath as the Amazon States Language uses it, over [`serde_json::Value`].
//!
//! Supported syntax: the roots `$` (the state input) and `$$` (the context object), dot
//! fields (`$.a.b`), bracket fields (`$['a b']`, `$["a"]`), indexes (`$.a[0]`, `$.a[-1]`),
//! wildcards (`$.a[*]`, `$.a.*`), slices (`$.a[1:3]`, `$.a[::2]`), recursive descent
//! (`$..b`) and filters (`$.a[?(@.x == 1)]`, `[?(@.x)]`, with `==, !=, <, <=, >, >=`,
//! `&&`, `||`, `!` and parentheses).
//!
//! **Invariant:** a *definite* path (only fields and indexes) selects one value or fails
//! with [`PathError::NotFound`]; an *indefinite* one (wildcard, slice, recursive descent or
//! filter) always selects an array of its matches, possibly empty.

mod parse;
mod syntax;

use std::cmp::Ordering;

use serde_json::{Map, Value};

use parse::parse;
use syntax::{CmpOp, Filter, Operand, Root, Segment, Selector, syntax};

pub use crate::error::PathError;

/// Whether `path` reads a workflow variable (`$name`, `$name.a[0]`) rather than the input
/// (`$`, `$.a`) or the context object (`$$`); `Some((name, the rest as a path from `$`))`.
/// AWS accepts a variable wherever a path is accepted:
/// <https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html>.
pub fn variable(path: &str) -> Option<(&str, String)> {
    let rest = path.strip_prefix('$')?;
    let first = rest.chars().next()?;
    if !(first.is_alphabetic() || first == '_') {
        return None;
    }
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    Some((&rest[..end], format!("${}", &rest[end..])))
}

/// [`select`], where a `$name` path reads the variable `name` of `vars` (an object); an
/// unassigned variable is `NotFound`.
pub fn select_scoped(
    input: &Value,
    context: &Value,
    vars: &Value,
    path: &str,
) -> Result<Value, PathError> {
    match variable(path) {
        Some((name, rest)) => match vars.get(name) {
            Some(value) => select(value, context, &rest),
            None => Err(PathError::NotFound {
                path: path.to_string(),
            }),
        },
        None => select(input, context, path),
    }
}

/// Selects what `path` names: in `context` if it starts with `$$`, else in `input`.
///
/// Definite paths give the value itself, indefinite ones an array of the matches.
pub fn select(input: &Value, context: &Value, path: &str) -> Result<Value, PathError> {
    let parsed = parse(path)?;
    let root = if parsed.root == Root::Context {
        context
    } else {
        input
    };
    let nodes = eval_segments(root, root, &parsed.segments);
    if parsed.is_definite() {
        nodes
            .first()
            .map(|v| (*v).clone())
            .ok_or_else(|| not_found(path))
    } else {
        Ok(Value::Array(nodes.into_iter().cloned().collect()))
    }
}

/// Whether `path` is a reference path: `$` followed only by dot fields, bracket string fields
/// and non-negative integer indexes (what ASL allows for `ResultPath` and `Variable`).
/// A `$$` (context object) path is not one.
pub fn is_reference_path(path: &str) -> bool {
    parse(path).is_ok_and(|p| p.root == Root::Input && p.is_reference())
}

/// Writes `value` at the reference path `path` in `doc`, as `ResultPath` does.
///
/// `$` replaces the whole document; missing intermediate fields are created as objects;
/// indexes must name an existing element of an array. On error `doc` is left unchanged.
pub fn set(doc: &mut Value, path: &str, value: Value) -> Result<(), PathError> {
    let parsed = parse(path)?;
    if parsed.root != Root::Input || !parsed.is_reference() {
        return Err(syntax(
            path,
            "only a reference path (`$`, fields and indexes) can be set",
        ));
    }
    check_settable(doc, &parsed.segments, path)?;
    let mut current = doc;
    for segment in &parsed.segments {
        current = match (&segment.selector, current) {
            (Selector::Field(name), Value::Object(map)) => map
                .entry(name.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            (Selector::Index(i), Value::Array(items)) => usize::try_from(*i)
                .ok()
                .and_then(|i| items.get_mut(i))
                .ok_or_else(|| not_found(path))?,
            _ => {
                return Err(PathError::NotAnObject {
                    path: path.to_owned(),
                });
            }
        };
    }
    *current = value;
    Ok(())
}

/// Fails as [`set`] would, without changing anything.
fn check_settable(doc: &Value, segments: &[Segment], path: &str) -> Result<(), PathError> {
    let mut current = doc;
    for (i, segment) in segments.iter().enumerate() {
        current = match (&segment.selector, current) {
            (Selector::Field(name), Value::Object(map)) => match map.get(name) {
                Some(child) => child,
                // The rest is created as empty objects, so it can hold fields only.
                None if segments[i + 1..]
                    .iter()
                    .all(|s| matches!(s.selector, Selector::Field(_))) =>
                {
                    return Ok(());
                }
                None => return Err(not_found(path)),
            },
            (Selector::Index(i), Value::Array(items)) => usize::try_from(*i)
                .ok()
                .and_then(|i| items.get(i))
                .ok_or_else(|| not_found(path))?,
            _ => {
                return Err(PathError::NotAnObject {
                    path: path.to_owned(),
                });
            }
        };
    }
    Ok(())
}

fn not_found(path: &str) -> PathError {
    PathError::NotFound {
        path: path.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation

fn eval_segments<'v>(root: &'v Value, start: &'v Value, segments: &[Segment]) -> Vec<&'v Value> {
    let mut nodes = vec![start];
    for segment in segments {
        let mut next = Vec::new();
        for node in nodes {
            if segment.recursive {
                let mut all = Vec::new();
                descendants(node, &mut all);
                for n in all {
                    apply(root, n, &segment.selector, &mut next);
                }
            } else {
                apply(root, node, &segment.selector, &mut next);
            }
        }
        nodes = next;
    }
    nodes
}

/// `node` and everything below it, in document order.
fn descendants<'v>(node: &'v Value, out: &mut Vec<&'v Value>) {
    out.push(node);
    for child in children(node) {
        descendants(child, out);
    }
}

fn children(node: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match node {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => Box::new(std::iter::empty()),
    }
}

fn apply<'v>(root: &'v Value, node: &'v Value, selector: &Selector, out: &mut Vec<&'v Value>) {
    match (selector, node) {
        (Selector::Field(name), Value::Object(map)) => out.extend(map.get(name)),
        (Selector::Index(i), Value::Array(items)) => {
            let len = items.len() as i64;
            let i = if *i < 0 { len + i } else { *i };
            out.extend(usize::try_from(i).ok().and_then(|i| items.get(i)));
        }
        (Selector::Wildcard, _) => out.extend(children(node)),
        (Selector::Slice(start, end, step), Value::Array(items)) => {
            out.extend(slice_indexes(items.len(), *start, *end, *step).map(|i| &items[i]));
        }
        (Selector::Filter(filter), _) => {
            out.extend(children(node).filter(|child| filter.matches(root, child)));
        }
        _ => {}
    }
}

/// The indexes a Python-style slice selects in an array of `len` items.
fn slice_indexes(
    len: usize,
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
) -> Box<dyn Iterator<Item = usize>> {
    let len = len as i64;
    let step = step.unwrap_or(1);
    let clamp = |i: i64, lo: i64, hi: i64| (if i < 0 { i + len } else { i }).clamp(lo, hi);
    if step > 0 {
        let from = start.map_or(0, |s| clamp(s, 0, len));
        let to = end.map_or(len, |e| clamp(e, 0, len));
        Box::new((from..to).step_by(step as usize).map(|i| i as usize))
    } else if step < 0 {
        let from = start.map_or(len - 1, |s| clamp(s, -1, len - 1));
        let to = end.map_or(-1, |e| clamp(e, -1, len - 1));
        let step = step.unsigned_abs() as usize;
        Box::new(((to + 1)..=from).rev().step_by(step).map(|i| i as usize))
    } else {
        Box::new(std::iter::empty())
    }
}

impl Filter {
    fn matches(&self, root: &Value, current: &Value) -> bool {
        match self {
            Filter::Or(a, b) => a.matches(root, current) || b.matches(root, current),
            Filter::And(a, b) => a.matches(root, current) && b.matches(root, current),
            Filter::Not(f) => !f.matches(root, current),
            Filter::Exists(operand) => operand.value(root, current).is_some(),
            Filter::Compare(a, op, b) => {
                let (Some(a), Some(b)) = (a.value(root, current), b.value(root, current)) else {
                    return false;
                };
                match op {
                    CmpOp::Eq => json_eq(&a, &b),
                    CmpOp::Ne => !json_eq(&a, &b),
                    CmpOp::Lt => json_cmp(&a, &b) == Some(Ordering::Less),
                    CmpOp::Le => matches!(json_cmp(&a, &b), Some(Ordering::Less | Ordering::Equal)),
                    CmpOp::Gt => json_cmp(&a, &b) == Some(Ordering::Greater),
                    CmpOp::Ge => {
                        matches!(json_cmp(&a, &b), Some(Ordering::Greater | Ordering::Equal))
                    }
                }
            }
        }
    }
}

impl Operand {
    /// The operand's value, `None` when its path selects nothing.
    fn value(&self, root: &Value, current: &Value) -> Option<Value> {
        match self {
            Operand::Literal(v) => Some(v.clone()),
            Operand::Path(path) => {
                let start = if path.root == Root::Current {
                    current
                } else {
                    root
                };
                let nodes = eval_segments(root, start, &path.segments);
                if path.is_definite() {
                    nodes.first().map(|v| (*v).clone())
                } else {
                    Some(Value::Array(nodes.into_iter().cloned().collect()))
                }
            }
        }
    }
}

/// Equality where `1` and `1.0` are equal.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Order between two numbers or two strings; `None` for anything else.
fn json_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Parsing

/// Why a definite `path` selects nothing in `input` (or `context`), worded as Step
/// Functions words it (its JSONPath is Jayway's): `No results for path: $['a']['b']` when
/// only the last step is missing, `Missing property in path $['a']` when an earlier one
/// is. `None` for a path that does not parse or is not definite.
pub fn missing(input: &Value, context: &Value, path: &str) -> Option<String> {
    let parsed = parse(path).ok()?;
    if !parsed.is_definite() {
        return None;
    }
    let mut node = if parsed.root == Root::Context {
        context
    } else {
        input
    };
    let mut shown = String::from("$");
    let last = parsed.segments.len().saturating_sub(1);
    for (i, segment) in parsed.segments.iter().enumerate() {
        let next = match &segment.selector {
            Selector::Field(name) => {
                shown.push_str(&format!("['{name}']"));
                node.get(name)
            }
            Selector::Index(n) => {
                shown.push_str(&format!("[{n}]"));
                match node.as_array() {
                    Some(items) if *n < 0 => items
                        .len()
                        .checked_sub(n.unsigned_abs() as usize)
                        .and_then(|k| items.get(k)),
                    Some(items) => items.get(*n as usize),
                    None => None,
                }
            }
            _ => return None,
        };
        match next {
            Some(v) => node = v,
            None if i == last => return Some(format!("No results for path: {shown}")),
            None => return Some(format!("Missing property in path {shown}")),
        }
    }
    None
}
