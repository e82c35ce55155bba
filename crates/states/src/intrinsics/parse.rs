//! The parser of one invocation: string literals with their escapes, numbers, paths and
//! nested invocations, at most [`MAX_NESTING`] deep; errors name the position.

use serde_json::{Number, Value};

use super::syntax::{Call, Expr, FUNCTIONS, MAX_NESTING, check_placeholders};
use crate::error::IntrinsicError;

/// Parses the invocation `expr`; text after it is an error.
pub(super) fn parse(expr: &str) -> Result<Call, IntrinsicError> {
    let mut parser = Parser { src: expr, pos: 0 };
    parser.skip_ws();
    let call = parser.call(1)?;
    parser.skip_ws();
    if parser.pos < expr.len() {
        return Err(parser.error("unexpected text after the invocation"));
    }
    Ok(call)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        self.pos = self.src.len() - self.rest().trim_start().len();
    }

    fn error(&self, message: &str) -> IntrinsicError {
        IntrinsicError::Syntax {
            expr: self.src.to_owned(),
            position: self.pos,
            message: message.to_owned(),
        }
    }

    /// `States.Name(arg, ...)` at nesting `depth` (the outermost is 1).
    fn call(&mut self, depth: usize) -> Result<Call, IntrinsicError> {
        if depth > MAX_NESTING {
            return Err(self.error(&format!(
                "intrinsic functions nest at most {MAX_NESTING} deep"
            )));
        }
        let name_len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(self.rest().len());
        let function = self.rest()[..name_len].to_owned();
        if !function.starts_with("States.") {
            return Err(self.error("expected an intrinsic function such as `States.Format(`"));
        }
        let Some(&(_, min, max)) = FUNCTIONS.iter().find(|(name, ..)| *name == function) else {
            return Err(IntrinsicError::UnknownFunction { function });
        };
        self.pos += name_len;
        self.skip_ws();
        if self.peek() != Some('(') {
            return Err(self.error(&format!("expected `(` after `{function}`")));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                args.push(self.arg(depth)?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected `,` or `)`")),
                }
            }
        }
        if !(min..=max).contains(&args.len()) {
            let expected = match (min, max) {
                (_, usize::MAX) => format!("at least {min}"),
                _ if min == max => min.to_string(),
                _ => format!("{min} or {max}"),
            };
            return Err(IntrinsicError::ArgumentCount {
                function,
                expected,
                actual: args.len(),
            });
        }
        if let Some(Expr::Str { placeholders, .. }) = args.first()
            && function == "States.Format"
        {
            check_placeholders(&function, placeholders.len(), args.len() - 1)?;
        }
        Ok(Call { function, args })
    }

    fn arg(&mut self, depth: usize) -> Result<Expr, IntrinsicError> {
        match self.peek() {
            Some('\'') => self.string(),
            Some('$') => Ok(self.path()),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some(c) if c.is_ascii_alphabetic() => {
                for (word, value) in [
                    ("true", true.into()),
                    ("false", false.into()),
                    ("null", Value::Null),
                ] {
                    let after = self.rest().strip_prefix(word).map(|r| r.chars().next());
                    if let Some(None | Some(',' | ')' | ' ' | '\t' | '\n' | '\r')) = after {
                        self.pos += word.len();
                        return Ok(Expr::Literal(value));
                    }
                }
                self.call(depth + 1).map(Expr::Call)
            }
            _ => Err(self.error(
                "expected an argument: 'string', number, true, false, null, path or function",
            )),
        }
    }

    /// A single-quoted string literal.
    fn string(&mut self) -> Result<Expr, IntrinsicError> {
        let start = self.pos;
        self.pos += 1;
        let (mut value, mut placeholders) = (String::new(), Vec::new());
        while let Some(c) = self.peek() {
            match c {
                '\'' => {
                    self.pos += 1;
                    return Ok(Expr::Str {
                        value,
                        placeholders,
                    });
                }
                '\\' => {
                    match self.rest()[1..].chars().next() {
                        Some(e @ ('\'' | '{' | '}' | '\\')) => value.push(e),
                        _ => return Err(self.error("`\\` must be followed by ', {, } or \\")),
                    }
                    self.pos += 2;
                }
                '{' if self.rest().starts_with("{}") => {
                    placeholders.push(value.len());
                    value.push_str("{}");
                    self.pos += 2;
                }
                c => {
                    value.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
        self.pos = start;
        Err(self.error("unterminated string"))
    }

    /// A JSONPath: everything up to a `,` or `)` outside brackets and quotes.
    fn path(&mut self) -> Expr {
        let (mut depth, mut quote) = (0usize, None);
        let mut end = self.rest().len();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match (quote, c) {
                (Some(_), '\\') => {
                    chars.next();
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') if depth > 0 => quote = Some(c),
                (None, '[') => depth += 1,
                (None, ']') => depth = depth.saturating_sub(1),
                (None, ',' | ')') if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let text = self.rest()[..end].trim_end().to_owned();
        self.pos += end;
        Expr::Path(text)
    }

    fn number(&mut self) -> Result<Expr, IntrinsicError> {
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
            .unwrap_or(self.rest().len());
        let number = serde_json::from_str::<Number>(&self.rest()[..len])
            .map_err(|_| self.error("invalid number"))?;
        self.pos += len;
        Ok(Expr::Literal(Value::Number(number)))
    }
}
