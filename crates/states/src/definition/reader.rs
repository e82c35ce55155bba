//! [`Reader`]: reads a definition's fields and collects every problem, each named by the
//! JSON pointer of the field at fault, instead of stopping at the first.

use serde_json::{Map, Value};

use super::text::{escape, shown};
use super::{DefinitionError, PathField, QueryLanguage};
use crate::limits;

/// Collects problems while reading.
pub(crate) struct Reader {
    pub errors: Vec<DefinitionError>,
}

impl Reader {
    pub(crate) fn err(&mut self, pointer: &str, message: impl Into<String>) {
        self.errors.push(DefinitionError {
            pointer: pointer.to_string(),
            message: message.into(),
        });
    }

    /// `QueryLanguage`: the object's own, else `inherited` (the machine's, or JSONPath).
    pub(crate) fn query_language(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        inherited: QueryLanguage,
    ) -> QueryLanguage {
        match obj.get("QueryLanguage") {
            None => inherited,
            Some(Value::String(s)) if s == "JSONPath" => QueryLanguage::JsonPath,
            Some(Value::String(s)) if s == "JSONata" => QueryLanguage::Jsonata,
            Some(_) => {
                self.err(
                    &format!("{ptr}/QueryLanguage"),
                    "`QueryLanguage` must be \"JSONPath\" or \"JSONata\"",
                );
                inherited
            }
        }
    }

    pub(crate) fn string(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        key: &str,
    ) -> Option<String> {
        match obj.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(&format!("{ptr}/{key}"), format!("`{key}` must be a string"));
                None
            }
        }
    }

    pub(crate) fn uint(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str) -> Option<u64> {
        match obj.get(key) {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => {
                    self.err(
                        &format!("{ptr}/{key}"),
                        format!("`{key}` must be a non-negative integer"),
                    );
                    None
                }
            },
        }
    }

    /// An integer field within the bounds AWS documents for it (see [`crate::limits`]).
    pub(crate) fn bounded(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        key: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let v = obj.get(key)?;
        let n = limits::integer_in(v, min, max);
        if n.is_none() {
            self.err(
                &format!("{ptr}/{key}"),
                format!(
                    "`{key}` must be an integer from {min} to {max} (the AWS Step Functions bound), got {}",
                    shown(v)
                ),
            );
        }
        n
    }

    /// A JSONata state's numeric field given as a `{% … %}` expression (AWS evaluates it
    /// at run time): the checked expression text, kept where the JSONPath state's `…Path`
    /// twin goes; `None` when the field is absent or not an expression.
    pub(crate) fn jsonata_number(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        key: &str,
        jsonata: bool,
    ) -> Option<String> {
        let text = obj.get(key)?.as_str()?;
        let expr = crate::jsonata::expression(text).filter(|_| jsonata)?;
        if let Err(e) = crate::jsonata::check(expr) {
            self.err(
                &format!("{ptr}/{key}"),
                format!("bad JSONata expression: {e}"),
            );
        }
        Some(text.to_string())
    }

    pub(crate) fn number(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str) -> Option<f64> {
        match obj.get(key) {
            None => None,
            Some(v) => match v.as_f64() {
                Some(n) => Some(n),
                None => {
                    self.err(&format!("{ptr}/{key}"), format!("`{key}` must be a number"));
                    None
                }
            },
        }
    }

    /// A field that must hold a path (JSONPath or `$$` context path).
    pub(crate) fn path(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        key: &str,
        reference: bool,
    ) -> Option<String> {
        let s = self.string(obj, ptr, key)?;
        self.check_path(&format!("{ptr}/{key}"), &s, reference);
        Some(s)
    }

    /// A field that holds a path or an intrinsic function (`ErrorPath`, `CausePath`).
    pub(crate) fn path_or_intrinsic(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        key: &str,
    ) -> Option<String> {
        let s = self.string(obj, ptr, key)?;
        if crate::intrinsics::is_intrinsic(&s) {
            if let Err(e) = crate::template::check_intrinsic(&s) {
                self.err(
                    &format!("{ptr}/{key}"),
                    format!("bad intrinsic function: {e}"),
                );
            }
        } else {
            self.check_path(&format!("{ptr}/{key}"), &s, false);
        }
        Some(s)
    }

    pub(crate) fn check_path(&mut self, ptr: &str, path: &str, reference: bool) {
        // A variable (`$name.a`) is a path wherever a path is accepted, but never a
        // ResultPath (a reference path into the state's input).
        let result_path = ptr.ends_with("/ResultPath");
        let checked = match crate::path::variable(path) {
            Some((_, rest)) if !result_path => rest,
            _ => path.to_string(),
        };
        let ok = if reference {
            crate::path::is_reference_path(&checked)
        } else {
            checked.starts_with('$')
                && crate::path::select(&Value::Null, &Value::Null, &checked).is_ok_or_missing()
        };
        if !ok {
            let kind = if reference {
                "a reference path (`$`, `$.a.b`, `$.a[0]`)"
            } else {
                "a JSONPath starting with `$` (or a variable, `$name`)"
            };
            self.err(ptr, format!("`{path}` is not {kind}"));
        }
    }

    pub(crate) fn path_field(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        key: &str,
        reference: bool,
    ) -> PathField {
        match obj.get(key) {
            None => PathField::Default,
            Some(Value::Null) => PathField::Null,
            Some(Value::String(s)) => {
                self.check_path(&format!("{ptr}/{key}"), s, reference);
                PathField::Path(s.clone())
            }
            Some(_) => {
                self.err(
                    &format!("{ptr}/{key}"),
                    format!("`{key}` must be a path string or null"),
                );
                PathField::Default
            }
        }
    }

    /// Checks every `{% … %}` JSONata expression in a field.
    pub(crate) fn jsonata(&mut self, ptr: &str, value: &Value) {
        let mut found = Vec::new();
        crate::jsonata::expressions(value, &mut found);
        for expr in found {
            if let Err(e) = crate::jsonata::check(&expr) {
                self.err(
                    ptr,
                    format!(
                        "JSONata `{}` does not parse: {e}",
                        crate::jsonata::shown(&expr)
                    ),
                );
            }
        }
    }

    /// Checks a payload template (`Parameters`, `ResultSelector`, `ItemSelector`): fields
    /// ending in `.$` hold a path or an intrinsic function.
    pub(crate) fn template(&mut self, ptr: &str, value: &Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let p = format!("{ptr}/{}", escape(k));
                    if k.ends_with(".$") {
                        match v {
                            Value::String(s) if crate::intrinsics::is_intrinsic(s) => {
                                if let Err(e) = crate::template::check_intrinsic(s) {
                                    self.err(&p, format!("bad intrinsic function: {e}"));
                                }
                            }
                            Value::String(s) if s.starts_with('$') => self.check_path(&p, s, false),
                            _ => self.err(&p, format!("`{k}` ends in `.$`, so its value must be a path or an intrinsic function")),
                        }
                    } else {
                        self.template(&p, v);
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.template(&format!("{ptr}/{i}"), v);
                }
            }
            _ => {}
        }
    }
}

trait OkOrMissing {
    fn is_ok_or_missing(&self) -> bool;
}

impl OkOrMissing for Result<Value, crate::path::PathError> {
    fn is_ok_or_missing(&self) -> bool {
        !matches!(self, Err(crate::path::PathError::Syntax { .. }))
    }
}
