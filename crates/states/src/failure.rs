//! [`Failure`]: an ASL error (`States.Timeout`, `States.TaskFailed`, a task's own error
//! name) with its cause. A failure is data of the execution, caught and retried by the
//! state machine, never a Rust error of the interpreter.

use serde_json::{Value, json};

/// An error as Step Functions names it, with its cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub cause: String,
}

impl Failure {
    /// A `States.Runtime` failure: neither retried nor caught.
    pub fn runtime(cause: impl Into<String>) -> Failure {
        Failure {
            error: "States.Runtime".into(),
            cause: cause.into(),
        }
    }

    /// A failure with an error name and a cause.
    pub fn new(error: &str, cause: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            cause: cause.into(),
        }
    }

    /// `{"Error": …, "Cause": …}`, as a catcher's output and a failed item's result.
    pub fn as_json(&self) -> Value {
        json!({"Error": self.error, "Cause": self.cause})
    }
}
