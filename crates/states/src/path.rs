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

use std::cmp::Ordering;

use serde_json::{Map, Value};

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

fn syntax(path: &str, message: impl Into<String>) -> PathError {
    PathError::Syntax {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Where a path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    /// `$`: the state input (or, inside a filter, the document root).
    Input,
    /// `$$`: the context object.
    Context,
    /// `@`: the current node of a filter.
    Current,
}

#[derive(Debug)]
struct Path {
    root: Root,
    segments: Vec<Segment>,
}

impl Path {
    fn is_definite(&self) -> bool {
        self.segments
            .iter()
            .all(|s| !s.recursive && matches!(s.selector, Selector::Field(_) | Selector::Index(_)))
    }

    fn is_reference(&self) -> bool {
        self.segments.iter().all(|s| {
            !s.recursive && matches!(s.selector, Selector::Field(_) | Selector::Index(0..))
        })
    }
}

#[derive(Debug)]
struct Segment {
    /// `..`: apply the selector to the node and all its descendants.
    recursive: bool,
    selector: Selector,
}

#[derive(Debug)]
enum Selector {
    Field(String),
    Index(i64),
    Wildcard,
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Filter(Filter),
}

#[derive(Debug)]
enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// True when the operand selects something (`@.x`).
    Exists(Operand),
    Compare(Operand, CmpOp, Operand),
}

#[derive(Debug)]
enum Operand {
    Path(Path),
    Literal(Value),
}

#[derive(Debug, Clone, Copy)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
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

/// How deeply filters may nest parentheses and `!` (keeps hostile input from exhausting
/// the stack).
const MAX_FILTER_DEPTH: usize = 32;

/// How many comparisons one path's filters may hold: `&&` and `||` chains build nested
/// nodes that are evaluated (and dropped) recursively, so their length is bounded too.
const MAX_FILTER_TERMS: usize = 256;

fn parse(path: &str) -> Result<Path, PathError> {
    let mut parser = Parser {
        src: path,
        pos: 0,
        depth: 0,
        terms: 0,
    };
    let parsed = parser.path(false)?;
    if parsed.root == Root::Current {
        return Err(syntax(path, "`@` is only allowed inside a filter"));
    }
    if parser.pos < path.len() {
        return Err(parser.error("unexpected character"));
    }
    Ok(parsed)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    /// Filter terms read so far (see [`MAX_FILTER_TERMS`]).
    terms: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn eat(&mut self, s: &str) -> bool {
        let found = self.rest().starts_with(s);
        if found {
            self.pos += s.len();
        }
        found
    }

    fn expect(&mut self, s: &str) -> Result<(), PathError> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(self.error(&format!("expected `{s}`")))
        }
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn error(&self, message: &str) -> PathError {
        syntax(self.src, format!("{message} at position {}", self.pos))
    }

    /// A path from its root; `in_filter` makes dot names stop at spaces and operators.
    fn path(&mut self, in_filter: bool) -> Result<Path, PathError> {
        let root = if self.eat("$$") {
            Root::Context
        } else if self.eat("$") {
            Root::Input
        } else if self.eat("@") {
            Root::Current
        } else {
            return Err(self.error("a path must start with `$`, `$$` or `@`"));
        };
        let mut segments = Vec::new();
        loop {
            if self.eat("..") {
                let selector = if self.peek() == Some('[') {
                    self.pos += 1;
                    self.bracket()?
                } else {
                    self.dot_selector(in_filter)?
                };
                segments.push(Segment {
                    recursive: true,
                    selector,
                });
            } else if self.eat(".") {
                let selector = self.dot_selector(in_filter)?;
                segments.push(Segment {
                    recursive: false,
                    selector,
                });
            } else if self.eat("[") {
                let selector = self.bracket()?;
                segments.push(Segment {
                    recursive: false,
                    selector,
                });
            } else {
                return Ok(Path { root, segments });
            }
        }
    }

    fn dot_selector(&mut self, in_filter: bool) -> Result<Selector, PathError> {
        if self.eat("*") {
            return Ok(Selector::Wildcard);
        }
        let stop = |c: char| {
            c == '.' || c == '[' || (in_filter && (c.is_whitespace() || "=!<>()&|,]".contains(c)))
        };
        let len = self.rest().find(stop).unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.error("expected a field name"));
        }
        let name = self.rest()[..len].to_owned();
        self.pos += len;
        Ok(Selector::Field(name))
    }

    /// What follows `[`, up to and including the closing `]`.
    fn bracket(&mut self) -> Result<Selector, PathError> {
        self.skip_ws();
        let selector = match self.peek() {
            Some(q @ ('\'' | '"')) => Selector::Field(self.quoted(q)?),
            Some('*') => {
                self.pos += 1;
                Selector::Wildcard
            }
            Some('?') => {
                self.pos += 1;
                self.skip_ws();
                self.expect("(")?;
                let filter = self.filter_or()?;
                self.skip_ws();
                self.expect(")")?;
                Selector::Filter(filter)
            }
            _ => {
                let start = self.int()?;
                self.skip_ws();
                if self.eat(":") {
                    let end = self.int()?;
                    self.skip_ws();
                    let step = if self.eat(":") { self.int()? } else { None };
                    if step == Some(0) {
                        return Err(self.error("a slice step cannot be 0"));
                    }
                    Selector::Slice(start, end, step)
                } else {
                    Selector::Index(start.ok_or_else(|| self.error("expected an index"))?)
                }
            }
        };
        self.skip_ws();
        self.expect("]")?;
        Ok(selector)
    }

    fn int(&mut self) -> Result<Option<i64>, PathError> {
        self.skip_ws();
        let rest = self.rest();
        let sign = usize::from(rest.starts_with('-'));
        let digits = rest[sign..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - sign);
        if digits == 0 {
            return Ok(None);
        }
        let text = &rest[..sign + digits];
        let n = text.parse().map_err(|_| self.error("index out of range"))?;
        self.pos += text.len();
        Ok(Some(n))
    }

    /// A string in `quote`s, with `\` escaping the next character.
    fn quoted(&mut self, quote: char) -> Result<String, PathError> {
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, escaped)) => out.push(escaped),
                    None => break,
                },
                c if c == quote => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err(self.error("unterminated string"))
    }

    fn filter_or(&mut self) -> Result<Filter, PathError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(self.error("filter nested too deeply"));
        }
        let mut left = self.filter_and()?;
        loop {
            self.skip_ws();
            if !self.eat("||") {
                break;
            }
            left = Filter::Or(Box::new(left), Box::new(self.filter_and()?));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn filter_and(&mut self) -> Result<Filter, PathError> {
        let mut left = self.filter_term()?;
        loop {
            self.skip_ws();
            if !self.eat("&&") {
                return Ok(left);
            }
            left = Filter::And(Box::new(left), Box::new(self.filter_term()?));
        }
    }

    fn filter_term(&mut self) -> Result<Filter, PathError> {
        self.skip_ws();
        self.terms += 1;
        if self.terms > MAX_FILTER_TERMS {
            return Err(self.error(&format!(
                "more than {MAX_FILTER_TERMS} filter terms; split the filter"
            )));
        }
        if self.rest().starts_with('!') && !self.rest().starts_with("!=") {
            self.pos += 1;
            self.depth += 1;
            if self.depth > MAX_FILTER_DEPTH {
                return Err(self.error("filter nested too deeply"));
            }
            let inner = self.filter_term()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.eat("(") {
            let inner = self.filter_or()?;
            self.skip_ws();
            self.expect(")")?;
            return Ok(inner);
        }
        let left = self.operand()?;
        self.skip_ws();
        let op = [
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ]
        .into_iter()
        .find(|(s, _)| self.rest().starts_with(s));
        match op {
            Some((s, op)) => {
                self.pos += s.len();
                self.skip_ws();
                Ok(Filter::Compare(left, op, self.operand()?))
            }
            None if matches!(left, Operand::Path(_)) => Ok(Filter::Exists(left)),
            None => Err(self.error("expected a comparison operator")),
        }
    }

    fn operand(&mut self) -> Result<Operand, PathError> {
        match self.peek() {
            Some('@' | '$') => Ok(Operand::Path(self.path(true)?)),
            Some(q @ ('\'' | '"')) => Ok(Operand::Literal(Value::String(self.quoted(q)?))),
            _ => {
                let len = self
                    .rest()
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
                    .unwrap_or(self.rest().len());
                let value = serde_json::from_str::<Value>(&self.rest()[..len])
                    .ok()
                    .filter(|v| !v.is_string() && len > 0)
                    .ok_or_else(|| {
                        self.error("expected a path, string, number, boolean or null")
                    })?;
                self.pos += len;
                Ok(Operand::Literal(value))
            }
        }
    }
}
