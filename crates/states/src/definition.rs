//! State machine definitions: ASL JSON read into typed states, with every structural error
//! named by the JSON pointer of the field at fault.
//!
//! Reading never panics on bad input: each problem becomes a [`DefinitionError`] and all of
//! them are reported at once by [`Definition::parse`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::choice::{ChoiceRule, parse_choice_rule};
use crate::limits;

pub use crate::error::{DefinitionError, DefinitionErrors};




/// Query language of a state or machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryLanguage {
    #[default]
    JsonPath,
    Jsonata,
}

/// `InputPath` / `OutputPath` / `ResultPath`: absent (default `$`), `null`, or a path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PathField {
    #[default]
    Default,
    Null,
    Path(String),
}

/// A state machine, or a branch / item processor inside one.
#[derive(Debug, Clone)]
pub struct Definition {
    /// Where the states live in the document (`` for the root, `/States/P/Branches/0`, …).
    pub pointer: String,
    pub start_at: String,
    pub states: BTreeMap<String, State>,
    pub timeout_seconds: Option<u64>,
    pub query_language: QueryLanguage,
}

/// One retrier of `Retry`.
#[derive(Debug, Clone)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub jitter_full: bool,
}

/// One catcher of `Catch`.
#[derive(Debug, Clone)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: PathField,
    pub output: Option<Value>,
    pub assign: Option<Value>,
}

/// A state: the fields every type shares, and its type.
#[derive(Debug, Clone)]
pub struct State {
    pub name: String,
    pub pointer: String,
    pub kind: Kind,
    pub query_language: QueryLanguage,
    pub input_path: PathField,
    pub output_path: PathField,
    pub result_path: PathField,
    pub parameters: Option<Value>,
    pub result_selector: Option<Value>,
    pub arguments: Option<Value>,
    pub output: Option<Value>,
    pub assign: Option<Value>,
    pub next: Option<String>,
    pub end: bool,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

/// `Map` in detail.
#[derive(Debug, Clone)]
pub struct MapState {
    pub processor: Box<Definition>,
    pub distributed: bool,
    pub items_path: Option<String>,
    pub items: Option<Value>,
    pub item_selector: Option<Value>,
    pub item_reader: Option<Value>,
    pub item_batcher: Option<Value>,
    pub result_writer: Option<Value>,
    pub max_concurrency: Option<u64>,
    pub max_concurrency_path: Option<String>,
    pub tolerated_failure_percentage: Option<f64>,
    pub tolerated_failure_percentage_path: Option<String>,
    pub tolerated_failure_count: Option<u64>,
    pub tolerated_failure_count_path: Option<String>,
}

/// The state types and what only each of them has.
#[derive(Debug, Clone)]
pub enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task {
        resource: String,
        timeout_seconds: Option<u64>,
        timeout_seconds_path: Option<String>,
        heartbeat_seconds: Option<u64>,
        heartbeat_seconds_path: Option<String>,
    },
    Choice {
        choices: Vec<ChoiceRule>,
        default: Option<String>,
    },
    Wait {
        seconds: Option<Value>,
        timestamp: Option<Value>,
        seconds_path: Option<String>,
        timestamp_path: Option<String>,
    },
    Succeed,
    Fail {
        error: Option<String>,
        cause: Option<String>,
        error_path: Option<String>,
        cause_path: Option<String>,
    },
    Parallel {
        branches: Vec<Definition>,
    },
    Map(Box<MapState>),
}

impl Kind {
    /// The `Type` as written.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Pass { .. } => "Pass",
            Kind::Task { .. } => "Task",
            Kind::Choice { .. } => "Choice",
            Kind::Wait { .. } => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail { .. } => "Fail",
            Kind::Parallel { .. } => "Parallel",
            Kind::Map(_) => "Map",
        }
    }
}

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

    fn string(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str) -> Option<String> {
        match obj.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(&format!("{ptr}/{key}"), format!("`{key}` must be a string"));
                None
            }
        }
    }

    fn uint(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str) -> Option<u64> {
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
    fn bounded(
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
    fn jsonata_number(
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

    fn number(&mut self, obj: &Map<String, Value>, ptr: &str, key: &str) -> Option<f64> {
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
    fn path_or_intrinsic(
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

    fn path_field(
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
    fn jsonata(&mut self, ptr: &str, value: &Value) {
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
    fn template(&mut self, ptr: &str, value: &Value) {
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

/// A value for an error message, cut short if long.
pub(crate) fn shown(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// Escapes a key for a JSON pointer.
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];

fn allowed(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pass" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "Result",
            "Output",
            "Assign",
        ],
        "Task" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Resource",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Retry",
            "Catch",
            "Arguments",
            "Output",
            "Assign",
            "Credentials",
        ],
        "Choice" => &[
            "InputPath",
            "OutputPath",
            "Choices",
            "Default",
            "Output",
            "Assign",
        ],
        "Wait" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "Timestamp",
            "SecondsPath",
            "TimestampPath",
            "Output",
            "Assign",
        ],
        "Succeed" => &["InputPath", "OutputPath", "Output"],
        "Fail" => &["Error", "Cause", "ErrorPath", "CausePath"],
        "Parallel" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Branches",
            "Retry",
            "Catch",
            "Arguments",
            "Output",
            "Assign",
        ],
        "Map" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "ItemProcessor",
            "Iterator",
            "ItemsPath",
            "Items",
            "ItemSelector",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "Label",
            "Retry",
            "Catch",
            "Arguments",
            "Output",
            "Assign",
        ],
        _ => &[],
    }
}

impl Definition {
    /// Reads and checks a whole state machine; every problem is reported.
    pub fn parse(doc: &Value) -> Result<Definition, DefinitionErrors> {
        let mut r = Reader { errors: Vec::new() };
        let def = read_machine(&mut r, doc, "", QueryLanguage::JsonPath);
        match def {
            Some(def) if r.errors.is_empty() => Ok(def),
            _ => {
                if r.errors.is_empty() {
                    r.err("", "the definition is not a state machine object");
                }
                Err(DefinitionErrors(r.errors))
            }
        }
    }

    /// The state named `name`.
    pub fn state(&self, name: &str) -> Option<&State> {
        self.states.get(name)
    }
}

fn read_machine(
    r: &mut Reader,
    doc: &Value,
    ptr: &str,
    inherited: QueryLanguage,
) -> Option<Definition> {
    let Some(obj) = doc.as_object() else {
        r.err(
            ptr,
            "a state machine must be a JSON object with `StartAt` and `States`",
        );
        return None;
    };
    let query_language = match obj.get("QueryLanguage") {
        None => inherited,
        Some(Value::String(s)) if s == "JSONPath" => QueryLanguage::JsonPath,
        Some(Value::String(s)) if s == "JSONata" => QueryLanguage::Jsonata,
        Some(_) => {
            r.err(
                &format!("{ptr}/QueryLanguage"),
                "`QueryLanguage` must be \"JSONPath\" or \"JSONata\"",
            );
            inherited
        }
    };
    for key in obj.keys() {
        if ![
            "StartAt",
            "States",
            "Comment",
            "TimeoutSeconds",
            "Version",
            "QueryLanguage",
            "ProcessorConfig",
        ]
        .contains(&key.as_str())
        {
            r.err(
                &format!("{ptr}/{}", escape(key)),
                format!("unknown field `{key}` of a state machine"),
            );
        }
    }
    let start_at = r.string(obj, ptr, "StartAt");
    if start_at.is_none() && !obj.contains_key("StartAt") {
        r.err(ptr, "missing `StartAt`: name the first state");
    }
    let timeout_seconds = r.bounded(obj, ptr, "TimeoutSeconds", 1, limits::MAX_TASK_SECONDS);
    let mut states = BTreeMap::new();
    match obj.get("States") {
        Some(Value::Object(map)) if !map.is_empty() => {
            for (name, body) in map {
                let sptr = format!("{ptr}/States/{}", escape(name));
                if name.is_empty() || name.chars().count() > 80 {
                    r.err(&sptr, "a state name must have 1 to 80 characters");
                }
                if let Some(state) = read_state(r, name, body, &sptr, query_language) {
                    states.insert(name.clone(), state);
                }
            }
        }
        Some(_) => r.err(
            &format!("{ptr}/States"),
            "`States` must be a non-empty object of states",
        ),
        None => r.err(ptr, "missing `States`"),
    }
    let start_at = start_at.unwrap_or_default();
    if !start_at.is_empty()
        && !states.contains_key(&start_at)
        && obj.get("States").is_some_and(Value::is_object)
    {
        r.err(
            &format!("{ptr}/StartAt"),
            format!("`StartAt` names `{start_at}`, which is not a state here"),
        );
    }
    let def = Definition {
        pointer: ptr.to_string(),
        start_at,
        states,
        timeout_seconds,
        query_language,
    };
    check_graph(r, &def);
    Some(def)
}

/// Every `Next` / `Default` / catcher target exists; every state is reachable from `StartAt`;
/// some state ends the machine.
fn check_graph(r: &mut Reader, def: &Definition) {
    let mut targets: Vec<(String, String)> = Vec::new(); // (pointer, target)
    for state in def.states.values() {
        if let Some(next) = &state.next {
            targets.push((format!("{}/Next", state.pointer), next.clone()));
        }
        if let Kind::Choice { choices, default } = &state.kind {
            for (i, c) in choices.iter().enumerate() {
                targets.push((
                    format!("{}/Choices/{i}/Next", state.pointer),
                    c.next.clone(),
                ));
            }
            if let Some(d) = default {
                targets.push((format!("{}/Default", state.pointer), d.clone()));
            }
        }
        for (i, c) in state.catch.iter().enumerate() {
            targets.push((format!("{}/Catch/{i}/Next", state.pointer), c.next.clone()));
        }
    }
    for (ptr, target) in &targets {
        if !def.states.contains_key(target) {
            r.err(
                ptr,
                format!("names `{target}`, which is not a state in this machine or branch"),
            );
        }
    }
    if !def.states.contains_key(&def.start_at) {
        return;
    }
    let mut seen = BTreeSet::new();
    let mut todo = vec![def.start_at.clone()];
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(state) = def.states.get(&name) else {
            continue;
        };
        let mut next: Vec<String> = state.next.iter().cloned().collect();
        if let Kind::Choice { choices, default } = &state.kind {
            next.extend(choices.iter().map(|c| c.next.clone()));
            next.extend(default.iter().cloned());
        }
        next.extend(state.catch.iter().map(|c| c.next.clone()));
        todo.extend(next);
    }
    for (name, state) in &def.states {
        if !seen.contains(name) {
            r.err(&state.pointer, format!("state `{name}` is unreachable from `StartAt`; remove it or point a `Next` at it"));
        }
    }
}

fn read_state(
    r: &mut Reader,
    name: &str,
    body: &Value,
    ptr: &str,
    inherited: QueryLanguage,
) -> Option<State> {
    let Some(obj) = body.as_object() else {
        r.err(ptr, "a state must be a JSON object");
        return None;
    };
    let Some(type_name) = r.string(obj, ptr, "Type") else {
        r.err(ptr, format!("state `{name}` has no `Type`"));
        return None;
    };
    let fields = allowed(&type_name);
    if fields.is_empty() {
        r.err(
            &format!("{ptr}/Type"),
            format!("unknown state type `{type_name}`; use Pass, Task, Choice, Wait, Succeed, Fail, Parallel or Map"),
        );
        return None;
    }
    for key in obj.keys() {
        if !fields.contains(&key.as_str()) && !COMMON.contains(&key.as_str()) {
            r.err(
                &format!("{ptr}/{}", escape(key)),
                format!("field `{key}` is not allowed in a {type_name} state"),
            );
        }
    }
    let query_language = match obj.get("QueryLanguage") {
        None => inherited,
        Some(Value::String(s)) if s == "JSONPath" => QueryLanguage::JsonPath,
        Some(Value::String(s)) if s == "JSONata" => QueryLanguage::Jsonata,
        Some(_) => {
            r.err(
                &format!("{ptr}/QueryLanguage"),
                "`QueryLanguage` must be \"JSONPath\" or \"JSONata\"",
            );
            inherited
        }
    };
    if query_language == QueryLanguage::Jsonata {
        for key in [
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "ItemsPath",
        ] {
            if obj.contains_key(key) {
                r.err(&format!("{ptr}/{key}"), format!("`{key}` is a JSONPath field; JSONata states use `Arguments`, `Output` and `Assign`"));
            }
        }
    }
    if query_language == QueryLanguage::Jsonata {
        for key in [
            "Arguments",
            "Output",
            "Assign",
            "Items",
            "ItemSelector",
            "Seconds",
            "Timestamp",
            "Error",
            "Cause",
        ] {
            if let Some(v) = obj.get(key) {
                r.jsonata(&format!("{ptr}/{key}"), v);
            }
        }
        for (i, c) in obj
            .get("Catch")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for key in ["Output", "Assign"] {
                if let Some(v) = c.get(key) {
                    r.jsonata(&format!("{ptr}/Catch/{i}/{key}"), v);
                }
            }
        }
        for (i, c) in obj
            .get("Choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for key in ["Condition", "Output", "Assign"] {
                if let Some(v) = c.get(key) {
                    r.jsonata(&format!("{ptr}/Choices/{i}/{key}"), v);
                }
            }
        }
    }
    let next = r.string(obj, ptr, "Next");
    let end = match obj.get("End") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            r.err(&format!("{ptr}/End"), "`End` must be true or false");
            false
        }
    };
    let terminal = matches!(type_name.as_str(), "Choice" | "Succeed" | "Fail");
    if !terminal {
        match (&next, end) {
            (None, false) => r.err(ptr, format!("{type_name} state `{name}` needs `Next` (the following state) or `\"End\": true`")),
            (Some(_), true) => r.err(&format!("{ptr}/End"), "a state has either `Next` or `\"End\": true`, not both"),
            _ => {}
        }
    }
    for key in ["Parameters", "ResultSelector", "ItemSelector"] {
        if let Some(v) = obj.get(key) {
            r.template(&format!("{ptr}/{key}"), v);
        }
    }
    let retry = read_retry(r, obj, ptr);
    let catch = read_catch(r, obj, ptr);
    let kind = match type_name.as_str() {
        "Pass" => Kind::Pass {
            result: obj.get("Result").cloned(),
        },
        "Task" => {
            let resource = r.string(obj, ptr, "Resource").unwrap_or_else(|| {
                r.err(ptr, format!("Task state `{name}` needs `Resource`"));
                String::new()
            });
            let jsonata = query_language == QueryLanguage::Jsonata;
            let timeout_expr = r.jsonata_number(obj, ptr, "TimeoutSeconds", jsonata);
            let heartbeat_expr = r.jsonata_number(obj, ptr, "HeartbeatSeconds", jsonata);
            let timeout_seconds = match timeout_expr {
                Some(_) => None,
                None => r.bounded(obj, ptr, "TimeoutSeconds", 1, limits::MAX_TASK_SECONDS),
            };
            let heartbeat_seconds = match heartbeat_expr {
                Some(_) => None,
                None => r.bounded(obj, ptr, "HeartbeatSeconds", 1, limits::MAX_TASK_SECONDS),
            };
            // "HeartbeatSeconds … must be less than the number of seconds specified in the
            // TimeoutSeconds field" (https://docs.aws.amazon.com/step-functions/latest/dg/state-task.html)
            if let (Some(t), Some(h)) = (timeout_seconds, heartbeat_seconds)
                && h >= t
            {
                r.err(
                    &format!("{ptr}/HeartbeatSeconds"),
                    format!("`HeartbeatSeconds` ({h}) must be less than `TimeoutSeconds` ({t})"),
                );
            }
            Kind::Task {
                resource,
                timeout_seconds,
                timeout_seconds_path: timeout_expr
                    .or_else(|| r.path(obj, ptr, "TimeoutSecondsPath", true)),
                heartbeat_seconds,
                heartbeat_seconds_path: heartbeat_expr
                    .or_else(|| r.path(obj, ptr, "HeartbeatSecondsPath", true)),
            }
        }
        "Choice" => {
            let mut choices = Vec::new();
            match obj.get("Choices") {
                Some(Value::Array(items)) if !items.is_empty() => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(c) = parse_choice_rule(
                            r,
                            item,
                            &format!("{ptr}/Choices/{i}"),
                            true,
                            query_language,
                        ) {
                            choices.push(c);
                        }
                    }
                }
                _ => r.err(
                    &format!("{ptr}/Choices"),
                    "a Choice state needs a non-empty `Choices` array",
                ),
            }
            Kind::Choice {
                choices,
                default: r.string(obj, ptr, "Default"),
            }
        }
        "Wait" => {
            let seconds_path = r.path(obj, ptr, "SecondsPath", true);
            let timestamp_path = r.path(obj, ptr, "TimestampPath", true);
            let given = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
                .iter()
                .filter(|k| obj.contains_key(**k))
                .count();
            if given != 1 {
                r.err(ptr, "a Wait state needs exactly one of `Seconds`, `Timestamp`, `SecondsPath`, `TimestampPath`");
            }
            // Seconds: "an integer value from 0 to 99999999"; in a JSONata state it may be
            // an expression instead, whose value the engine checks the same way.
            match obj.get("Seconds") {
                Some(Value::String(s))
                    if query_language == QueryLanguage::Jsonata
                        && crate::jsonata::expression(s).is_some() => {}
                Some(_) => {
                    r.bounded(obj, ptr, "Seconds", 0, limits::MAX_WAIT_SECONDS);
                }
                None => {}
            }
            if let Some(Value::String(ts)) = obj.get("Timestamp")
                && (query_language == QueryLanguage::JsonPath
                    || crate::jsonata::expression(ts).is_none())
                && chrono::DateTime::parse_from_rfc3339(ts).is_err()
            {
                r.err(
                    &format!("{ptr}/Timestamp"),
                    format!("`{ts}` is not an RFC 3339 timestamp"),
                );
            }
            Kind::Wait {
                seconds: obj.get("Seconds").cloned(),
                timestamp: obj.get("Timestamp").cloned(),
                seconds_path,
                timestamp_path,
            }
        }
        "Succeed" => Kind::Succeed,
        "Fail" => Kind::Fail {
            error: r.string(obj, ptr, "Error"),
            cause: r.string(obj, ptr, "Cause"),
            error_path: r.path_or_intrinsic(obj, ptr, "ErrorPath"),
            cause_path: r.path_or_intrinsic(obj, ptr, "CausePath"),
        },
        "Parallel" => {
            let mut branches = Vec::new();
            match obj.get("Branches") {
                Some(Value::Array(items)) if !items.is_empty() => {
                    for (i, b) in items.iter().enumerate() {
                        if let Some(d) =
                            read_machine(r, b, &format!("{ptr}/Branches/{i}"), query_language)
                        {
                            branches.push(d);
                        }
                    }
                }
                _ => r.err(
                    &format!("{ptr}/Branches"),
                    "a Parallel state needs a non-empty `Branches` array",
                ),
            }
            Kind::Parallel { branches }
        }
        "Map" => Kind::Map(Box::new(read_map(r, obj, ptr, query_language)?)),
        _ => return None,
    };
    Some(State {
        name: name.to_string(),
        pointer: ptr.to_string(),
        kind,
        query_language,
        input_path: r.path_field(obj, ptr, "InputPath", false),
        output_path: r.path_field(obj, ptr, "OutputPath", false),
        result_path: r.path_field(obj, ptr, "ResultPath", true),
        parameters: obj.get("Parameters").cloned(),
        result_selector: obj.get("ResultSelector").cloned(),
        arguments: obj.get("Arguments").cloned(),
        output: obj.get("Output").cloned(),
        assign: obj.get("Assign").cloned(),
        next,
        end,
        retry,
        catch,
    })
}

fn read_map(
    r: &mut Reader,
    obj: &Map<String, Value>,
    ptr: &str,
    ql: QueryLanguage,
) -> Option<MapState> {
    let (key, body) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
        (Some(b), _) => ("ItemProcessor", b),
        (None, Some(b)) => ("Iterator", b),
        (None, None) => {
            r.err(
                ptr,
                "a Map state needs `ItemProcessor` (the states run for each item)",
            );
            return None;
        }
    };
    let processor = read_machine(r, body, &format!("{ptr}/{key}"), ql)?;
    let mode = body
        .get("ProcessorConfig")
        .and_then(|c| c.get("Mode"))
        .and_then(Value::as_str)
        .unwrap_or("INLINE");
    if !["INLINE", "DISTRIBUTED"].contains(&mode) {
        r.err(
            &format!("{ptr}/{key}/ProcessorConfig/Mode"),
            "`Mode` must be INLINE or DISTRIBUTED",
        );
    }
    let distributed = mode == "DISTRIBUTED";
    for key in [
        "ItemReader",
        "ItemBatcher",
        "ResultWriter",
        "ToleratedFailurePercentage",
        "ToleratedFailureCount",
    ] {
        if obj.contains_key(key) && !distributed {
            r.err(
                &format!("{ptr}/{key}"),
                format!("`{key}` needs a distributed Map (`ProcessorConfig.Mode: DISTRIBUTED`)"),
            );
        }
    }
    if let Some(reader) = obj.get("ItemReader")
        && reader.get("Resource").and_then(Value::as_str).is_none()
    {
        r.err(
            &format!("{ptr}/ItemReader/Resource"),
            "an `ItemReader` needs a `Resource`",
        );
    }
    let jsonata = ql == QueryLanguage::Jsonata;
    let concurrency_expr = r.jsonata_number(obj, ptr, "MaxConcurrency", jsonata);
    let count_expr = r.jsonata_number(obj, ptr, "ToleratedFailureCount", jsonata);
    let pct_expr = r.jsonata_number(obj, ptr, "ToleratedFailurePercentage", jsonata);
    let pct = match pct_expr {
        Some(_) => None,
        None => r.number(obj, ptr, "ToleratedFailurePercentage"),
    };
    // "You must specify a value between zero and 100"
    // (https://docs.aws.amazon.com/step-functions/latest/dg/maprun-fail-threshold.html)
    if pct.is_some_and(|p| !(0.0..=limits::MAX_TOLERATED_PERCENTAGE).contains(&p)) {
        r.err(
            &format!("{ptr}/ToleratedFailurePercentage"),
            "`ToleratedFailurePercentage` must be a number from 0 to 100",
        );
    }
    Some(MapState {
        processor: Box::new(processor),
        distributed,
        items_path: r.path(obj, ptr, "ItemsPath", true),
        items: obj.get("Items").cloned(),
        item_selector: obj
            .get("ItemSelector")
            .or_else(|| obj.get("Parameters"))
            .cloned(),
        item_reader: obj.get("ItemReader").cloned(),
        item_batcher: obj.get("ItemBatcher").cloned(),
        result_writer: obj.get("ResultWriter").cloned(),
        // A distributed Map runs "up to 10,000 parallel child workflow executions"
        // (https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html)
        max_concurrency: if concurrency_expr.is_some() {
            None
        } else if distributed {
            r.bounded(
                obj,
                ptr,
                "MaxConcurrency",
                0,
                limits::MAX_DISTRIBUTED_CONCURRENCY,
            )
        } else {
            r.uint(obj, ptr, "MaxConcurrency")
        },
        max_concurrency_path: concurrency_expr
            .or_else(|| r.path(obj, ptr, "MaxConcurrencyPath", true)),
        tolerated_failure_percentage: pct,
        tolerated_failure_percentage_path: pct_expr
            .or_else(|| r.path(obj, ptr, "ToleratedFailurePercentagePath", true)),
        tolerated_failure_count: match count_expr {
            Some(_) => None,
            None => r.uint(obj, ptr, "ToleratedFailureCount"),
        },
        tolerated_failure_count_path: count_expr
            .or_else(|| r.path(obj, ptr, "ToleratedFailureCountPath", true)),
    })
}

fn error_equals(r: &mut Reader, obj: &Map<String, Value>, ptr: &str) -> Vec<String> {
    match obj.get("ErrorEquals") {
        Some(Value::Array(items)) if !items.is_empty() => {
            let names: Vec<String> = items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            if names.len() != items.len() {
                r.err(
                    &format!("{ptr}/ErrorEquals"),
                    "`ErrorEquals` holds error names (strings)",
                );
            }
            if names.iter().any(|n| n == "States.ALL") && names.len() > 1 {
                r.err(
                    &format!("{ptr}/ErrorEquals"),
                    "`States.ALL` must appear alone",
                );
            }
            names
        }
        _ => {
            r.err(
                &format!("{ptr}/ErrorEquals"),
                "needs a non-empty `ErrorEquals` array of error names",
            );
            Vec::new()
        }
    }
}

/// The objects of an array field (`Retry`, `Catch`), each with its pointer; every key
/// outside `allowed` is reported.
fn objects<'a>(
    r: &mut Reader,
    obj: &'a Map<String, Value>,
    ptr: &str,
    key: &str,
    what: &str,
    allowed: &[&str],
) -> Vec<(String, &'a Map<String, Value>)> {
    let Some(v) = obj.get(key) else {
        return Vec::new();
    };
    let Some(items) = v.as_array() else {
        r.err(
            &format!("{ptr}/{key}"),
            format!("`{key}` must be an array of {what}s"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{ptr}/{key}/{i}");
        let Some(o) = item.as_object() else {
            r.err(&p, format!("a {what} must be an object"));
            continue;
        };
        for k in o.keys() {
            if !allowed.contains(&k.as_str()) {
                r.err(
                    &format!("{p}/{}", escape(k)),
                    format!("unknown {what} field `{k}`"),
                );
            }
        }
        out.push((p, o));
    }
    out
}

fn read_retry(r: &mut Reader, obj: &Map<String, Value>, ptr: &str) -> Vec<Retrier> {
    let allowed = [
        "ErrorEquals",
        "IntervalSeconds",
        "MaxAttempts",
        "BackoffRate",
        "MaxDelaySeconds",
        "JitterStrategy",
        "Comment",
    ];
    let mut out = Vec::new();
    for (p, o) in objects(r, obj, ptr, "Retry", "retrier", &allowed) {
        let jitter = r.string(o, &p, "JitterStrategy");
        if let Some(j) = &jitter
            && j != "FULL"
            && j != "NONE"
        {
            r.err(
                &format!("{p}/JitterStrategy"),
                "`JitterStrategy` must be FULL or NONE",
            );
        }
        // The retrier's numbers and their bounds:
        // https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
        // BackoffRate has no documented maximum; a computed delay is capped at
        // `limits::MAX_DELAY_SECONDS` by the engine instead.
        let backoff_rate = r.number(o, &p, "BackoffRate").unwrap_or(2.0);
        if !(backoff_rate >= 1.0 && backoff_rate.is_finite()) {
            r.err(
                &format!("{p}/BackoffRate"),
                "`BackoffRate` must be a number of at least 1.0",
            );
        }
        let interval = r.bounded(o, &p, "IntervalSeconds", 1, limits::MAX_INTERVAL_SECONDS);
        let attempts = r.bounded(o, &p, "MaxAttempts", 0, limits::MAX_ATTEMPTS);
        let max_delay = r.bounded(o, &p, "MaxDelaySeconds", 1, limits::MAX_DELAY_SECONDS);
        out.push(Retrier {
            error_equals: error_equals(r, o, &p),
            interval_seconds: interval.unwrap_or(1) as f64,
            // at most 99,999,999: fits a u32
            max_attempts: attempts.map_or(3, |n| n as u32),
            backoff_rate,
            max_delay_seconds: max_delay.map(|n| n as f64),
            jitter_full: jitter.as_deref() == Some("FULL"),
        });
    }
    out
}

fn read_catch(r: &mut Reader, obj: &Map<String, Value>, ptr: &str) -> Vec<Catcher> {
    let allowed = [
        "ErrorEquals",
        "Next",
        "ResultPath",
        "Output",
        "Assign",
        "Comment",
    ];
    let mut out = Vec::new();
    for (p, o) in objects(r, obj, ptr, "Catch", "catcher", &allowed) {
        let next = r.string(o, &p, "Next").unwrap_or_else(|| {
            r.err(&p, "a catcher needs `Next`");
            String::new()
        });
        out.push(Catcher {
            error_equals: error_equals(r, o, &p),
            next,
            result_path: r.path_field(o, &p, "ResultPath", true),
            output: o.get("Output").cloned(),
            assign: o.get("Assign").cloned(),
        });
    }
    out
}
