//! The JSONPath parser: a recursive descent over the path text, bounded in depth and in
//! filter terms, whose errors name the position.

use serde_json::Value;

use super::syntax::{CmpOp, Filter, Operand, Path, Root, Segment, Selector, syntax};
use crate::error::PathError;

/// How deeply filters may nest parentheses and `!` (keeps hostile input from exhausting
/// the stack).
const MAX_FILTER_DEPTH: usize = 32;

/// How many comparisons one path's filters may hold: `&&` and `||` chains build nested
/// nodes that are evaluated (and dropped) recursively, so their length is bounded too.
const MAX_FILTER_TERMS: usize = 256;

/// Parses a whole path; what follows a complete path is an error.
pub(super) fn parse(path: &str) -> Result<Path, PathError> {
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
