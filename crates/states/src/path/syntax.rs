//! A JSONPath as parsed: its root and segments, each a selector (field, index, wildcard,
//! slice, filter).

use serde_json::Value;

use crate::error::PathError;

pub(super) fn syntax(path: &str, message: impl Into<String>) -> PathError {
    PathError::Syntax {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Where a path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Root {
    /// `$`: the state input (or, inside a filter, the document root).
    Input,
    /// `$$`: the context object.
    Context,
    /// `@`: the current node of a filter.
    Current,
}

#[derive(Debug)]
pub(super) struct Path {
    pub(super) root: Root,
    pub(super) segments: Vec<Segment>,
}

impl Path {
    pub(super) fn is_definite(&self) -> bool {
        self.segments
            .iter()
            .all(|s| !s.recursive && matches!(s.selector, Selector::Field(_) | Selector::Index(_)))
    }

    pub(super) fn is_reference(&self) -> bool {
        self.segments.iter().all(|s| {
            !s.recursive && matches!(s.selector, Selector::Field(_) | Selector::Index(0..))
        })
    }
}

#[derive(Debug)]
pub(super) struct Segment {
    /// `..`: apply the selector to the node and all its descendants.
    pub(super) recursive: bool,
    pub(super) selector: Selector,
}

#[derive(Debug)]
pub(super) enum Selector {
    Field(String),
    Index(i64),
    Wildcard,
    Slice(Option<i64>, Option<i64>, Option<i64>),
    Filter(Filter),
}

#[derive(Debug)]
pub(super) enum Filter {
    Or(Box<Filter>, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// True when the operand selects something (`@.x`).
    Exists(Operand),
    Compare(Operand, CmpOp, Operand),
}

#[derive(Debug)]
pub(super) enum Operand {
    Path(Path),
    Literal(Value),
}

#[derive(Debug, Clone, Copy)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}
