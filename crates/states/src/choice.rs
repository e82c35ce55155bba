//! Choice rules: reading them and deciding them, as the AWS docs describe
//! ("Choice workflow state": comparison operators, `And`/`Or`/`Not`, `*Path` operands,
//! `IsPresent`, `IsNull`, `StringMatches` wildcards, timestamps).
//!
//! A comparison whose variable has the wrong type is simply false; a `Variable` path that
//! does not exist is a `States.Runtime` error, except under `IsPresent`.

use serde_json::Value;

use crate::error::PathError;
use crate::path;

pub use crate::error::ChoiceError;

/// One top-level entry of `Choices`.
#[derive(Debug, Clone)]
pub struct ChoiceRule {
    pub rule: Rule,
    pub next: String,
    pub assign: Option<Value>,
    pub output: Option<Value>,
}

/// A boolean expression.
#[derive(Debug, Clone)]
pub enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    /// `Variable` compared by `op` with a literal or (for `…Path` operators) a path.
    Compare {
        variable: String,
        op: Op,
        operand: Operand,
    },
    /// JSONata `Condition`.
    Condition(Value),
}

/// The right-hand side.
#[derive(Debug, Clone)]
pub enum Operand {
    Literal(Value),
    Path(String),
}

/// Type family of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

/// An operator of a comparison rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Compare(Family, Cmp),
    StringMatches,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

pub(crate) fn parse_ts(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s).ok()
}

/// Decides a rule over `input` (and the context object for `$$` paths).
pub fn decide(rule: &Rule, input: &Value, context: &Value) -> Result<bool, ChoiceError> {
    decide_scoped(rule, input, context, &Value::Null)
}

/// [`decide`] with workflow variables: `Variable` and `*Path` operands may read `$name`.
pub fn decide_scoped(
    rule: &Rule,
    input: &Value,
    context: &Value,
    vars: &Value,
) -> Result<bool, ChoiceError> {
    let decide = |r: &Rule, input: &Value, context: &Value| decide_scoped(r, input, context, vars);
    match rule {
        Rule::And(rules) => {
            for r in rules {
                if !decide(r, input, context)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Rule::Or(rules) => {
            for r in rules {
                if decide(r, input, context)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Rule::Not(r) => Ok(!decide(r, input, context)?),
        Rule::Condition(_) => Err(ChoiceError(
            "JSONata conditions are decided by the engine".into(),
        )),
        Rule::Compare {
            variable,
            op,
            operand,
        } => {
            let value = path::select_scoped(input, context, vars, variable);
            if *op == Op::IsPresent {
                let present = value.is_ok();
                return Ok(present == operand_bool(operand));
            }
            let worded = |p: &str, e: PathError| match e {
                PathError::NotFound { .. } => ChoiceError(crate::causes::choice_path(p)),
                e => ChoiceError(format!("Invalid path '{p}': {e}")),
            };
            let value = value.map_err(|e| worded(variable, e))?;
            let rhs = match operand {
                Operand::Literal(v) => v.clone(),
                Operand::Path(p) => {
                    path::select_scoped(input, context, vars, p).map_err(|e| worded(p, e))?
                }
            };
            Ok(compare(&value, *op, &rhs))
        }
    }
}

fn operand_bool(operand: &Operand) -> bool {
    matches!(operand, Operand::Literal(Value::Bool(true)))
}

fn compare(value: &Value, op: Op, rhs: &Value) -> bool {
    let want = rhs.as_bool().unwrap_or(false);
    match op {
        Op::IsNull => value.is_null() == want,
        Op::IsNumeric => value.is_number() == want,
        Op::IsString => value.is_string() == want,
        Op::IsBoolean => value.is_boolean() == want,
        Op::IsTimestamp => value.as_str().and_then(parse_ts).is_some() == want,
        Op::IsPresent => true,
        Op::StringMatches => match (value.as_str(), rhs.as_str()) {
            (Some(s), Some(pattern)) => wildcard(s, pattern),
            _ => false,
        },
        Op::Compare(family, cmp) => {
            let ord = match family {
                Family::String => match (value.as_str(), rhs.as_str()) {
                    (Some(a), Some(b)) => Some(a.cmp(b)),
                    _ => None,
                },
                Family::Numeric => match (value.as_f64(), rhs.as_f64()) {
                    (Some(a), Some(b)) if value.is_number() => a.partial_cmp(&b),
                    _ => None,
                },
                Family::Boolean => match (value.as_bool(), rhs.as_bool()) {
                    (Some(a), Some(b)) => Some(a.cmp(&b)),
                    _ => None,
                },
                Family::Timestamp => match (
                    value.as_str().and_then(parse_ts),
                    rhs.as_str().and_then(parse_ts),
                ) {
                    (Some(a), Some(b)) => Some(a.cmp(&b)),
                    _ => None,
                },
            };
            let Some(ord) = ord else { return false };
            match cmp {
                Cmp::Equals => ord.is_eq(),
                Cmp::LessThan => ord.is_lt(),
                Cmp::GreaterThan => ord.is_gt(),
                Cmp::LessThanEquals => ord.is_le(),
                Cmp::GreaterThanEquals => ord.is_ge(),
            }
        }
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` is a literal star and `\\` a
/// literal backslash.
pub fn wildcard(text: &str, pattern: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Star,
        Char(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => toks.push(Tok::Char(n)),
                None => toks.push(Tok::Char('\\')),
            },
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Char(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with backtracking to the last star.
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match toks.get(p) {
            Some(Tok::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(Tok::Star) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|t| *t == Tok::Star)
}
