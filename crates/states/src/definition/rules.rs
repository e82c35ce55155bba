//! Reading Choice rules (the rules themselves and how they are decided are in
//! [`crate::choice`]).

use serde_json::{Map, Value};

use super::QueryLanguage;
use super::reader::Reader;
use crate::choice::{ChoiceRule, Cmp, Family, Op, Operand, Rule, parse_ts};

fn op_of(name: &str) -> Option<(Op, bool)> {
    let (base, is_path) = match name.strip_suffix("Path") {
        Some(b) if !b.is_empty() && b != "Timestamp" && b != "Items" => (b, true),
        _ => (name, false),
    };
    let tests = [
        ("IsNull", Op::IsNull),
        ("IsPresent", Op::IsPresent),
        ("IsNumeric", Op::IsNumeric),
        ("IsString", Op::IsString),
        ("IsBoolean", Op::IsBoolean),
        ("IsTimestamp", Op::IsTimestamp),
    ];
    if let Some((_, op)) = tests.iter().find(|(n, _)| *n == name) {
        return Some((*op, false));
    }
    if base == "StringMatches" {
        return (!is_path).then_some((Op::StringMatches, false));
    }
    let families = [
        ("String", Family::String),
        ("Numeric", Family::Numeric),
        ("Boolean", Family::Boolean),
        ("Timestamp", Family::Timestamp),
    ];
    let cmps = [
        ("Equals", Cmp::Equals),
        ("LessThanEquals", Cmp::LessThanEquals),
        ("GreaterThanEquals", Cmp::GreaterThanEquals),
        ("LessThan", Cmp::LessThan),
        ("GreaterThan", Cmp::GreaterThan),
    ];
    for (fname, family) in families {
        if let Some(rest) = base.strip_prefix(fname) {
            for (cname, cmp) in cmps {
                if rest == cname {
                    if family == Family::Boolean && cmp != Cmp::Equals {
                        return None;
                    }
                    return Some((Op::Compare(family, cmp), is_path));
                }
            }
        }
    }
    None
}

/// Reads one rule; `top` rules carry `Next` (and may carry `Assign`/`Output`).
pub(crate) fn parse_choice_rule(
    r: &mut Reader,
    value: &Value,
    ptr: &str,
    top: bool,
    ql: QueryLanguage,
) -> Option<ChoiceRule> {
    let Some(obj) = value.as_object() else {
        r.err(ptr, "a choice rule must be an object");
        return None;
    };
    let next = if top {
        match obj.get("Next").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => {
                r.err(ptr, "a choice rule needs `Next`");
                String::new()
            }
        }
    } else {
        if obj.contains_key("Next") {
            r.err(
                &format!("{ptr}/Next"),
                "only top-level choice rules have `Next`",
            );
        }
        String::new()
    };
    let rule = parse_rule(r, obj, ptr, ql)?;
    Some(ChoiceRule {
        rule,
        next,
        assign: obj.get("Assign").cloned(),
        output: obj.get("Output").cloned(),
    })
}

fn parse_rule(
    r: &mut Reader,
    obj: &Map<String, Value>,
    ptr: &str,
    ql: QueryLanguage,
) -> Option<Rule> {
    if ql == QueryLanguage::Jsonata {
        return match obj.get("Condition") {
            Some(c) => Some(Rule::Condition(c.clone())),
            None => {
                r.err(ptr, "a JSONata choice rule needs `Condition`");
                None
            }
        };
    }
    let known = [
        "Next", "Comment", "Assign", "Output", "Variable", "And", "Or", "Not",
    ];
    let ops: Vec<(&String, &Value)> = obj
        .iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .collect();
    for key in ["And", "Or"] {
        if let Some(v) = obj.get(key) {
            let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
                r.err(
                    &format!("{ptr}/{key}"),
                    format!("`{key}` must be a non-empty array of rules"),
                );
                return None;
            };
            let mut rules = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let p = format!("{ptr}/{key}/{i}");
                match item.as_object() {
                    Some(o) => rules.extend(parse_rule(r, o, &p, ql)),
                    None => r.err(&p, "a rule must be an object"),
                }
            }
            return Some(if key == "And" {
                Rule::And(rules)
            } else {
                Rule::Or(rules)
            });
        }
    }
    if let Some(v) = obj.get("Not") {
        let p = format!("{ptr}/Not");
        return match v.as_object() {
            Some(o) => parse_rule(r, o, &p, ql).map(|x| Rule::Not(Box::new(x))),
            None => {
                r.err(&p, "`Not` must be one rule object");
                None
            }
        };
    }
    let Some(variable) = obj.get("Variable").and_then(Value::as_str) else {
        r.err(
            ptr,
            "a comparison needs `Variable` (a path) — or use `And`, `Or`, `Not`",
        );
        return None;
    };
    r.check_path(&format!("{ptr}/Variable"), variable, false);
    if ops.len() != 1 {
        r.err(ptr, "a comparison needs exactly one operator, e.g. `StringEquals`, `NumericGreaterThanPath`, `IsPresent`");
        return None;
    }
    let (name, operand) = ops[0];
    let p = format!("{ptr}/{name}");
    let Some((op, is_path)) = op_of(name) else {
        r.err(&p, format!("unknown comparison operator `{name}`"));
        return None;
    };
    let operand = if is_path {
        match operand.as_str() {
            Some(s) => {
                r.check_path(&p, s, false);
                Operand::Path(s.to_string())
            }
            None => {
                r.err(&p, format!("`{name}` takes a path string"));
                return None;
            }
        }
    } else {
        let ok = match op {
            Op::Compare(Family::String | Family::Timestamp, _) | Op::StringMatches => {
                operand.is_string()
            }
            Op::Compare(Family::Numeric, _) => operand.is_number(),
            _ => operand.is_boolean(),
        };
        if !ok {
            r.err(&p, format!("`{name}` takes a {} value", expected_type(op)));
            return None;
        }
        if let (Op::Compare(Family::Timestamp, _), Some(s)) = (op, operand.as_str())
            && parse_ts(s).is_none()
        {
            r.err(&p, format!("`{s}` is not an RFC 3339 timestamp"));
        }
        Operand::Literal(operand.clone())
    };
    Some(Rule::Compare {
        variable: variable.to_string(),
        op,
        operand,
    })
}

fn expected_type(op: Op) -> &'static str {
    match op {
        Op::Compare(Family::String, _) | Op::StringMatches => "string",
        Op::Compare(Family::Timestamp, _) => "timestamp string",
        Op::Compare(Family::Numeric, _) => "number",
        _ => "boolean",
    }
}
