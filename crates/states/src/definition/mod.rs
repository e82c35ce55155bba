//! State machine definitions: ASL JSON read into typed states, with every structural error
//! named by the JSON pointer of the field at fault.
//!
//! Reading never panics on bad input: each problem becomes a [`DefinitionError`] and all of
//! them are reported at once by [`Definition::parse`].
//!
//! # Layout
//! - this module: the typed definition ([`Definition`], [`State`], [`Kind`], …);
//! - `machine`: [`Definition::parse`], a machine, its states and their graph;
//! - `rules`: Choice rules; `retry`: `Retry` and `Catch`; `fields`: which fields each
//!   state type takes; `reader`: the problem-collecting reader of fields;
//! - `text`: how a definition is named in messages (JSON pointers, values cut short).

mod fields;
mod machine;
pub(crate) mod reader;
mod retry;
mod rules;
pub(crate) mod text;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::choice::ChoiceRule;
pub use crate::error::{DefinitionError, DefinitionErrors};
pub use text::escape;

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

impl Definition {
    /// The state named `name`.
    pub fn state(&self, name: &str) -> Option<&State> {
        self.states.get(name)
    }

    /// The type of the state named `name`, as history events name it (`Pass` for a name
    /// that is not there, which a parsed definition never leads to).
    pub fn type_name_of(&self, name: &str) -> &'static str {
        self.states
            .get(name)
            .map(|s| s.kind.type_name())
            .unwrap_or("Pass")
    }
}
