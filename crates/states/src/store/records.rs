//! What the store keeps, as the engine and the other crates read it: executions, frames,
//! history events, task tokens, and [`Op`], the writes a commit applies.

use serde_json::Value;

use crate::status::{ExecutionStatus, TokenStatus};

/// Status of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    Running,
    Succeeded,
    Failed,
}

impl FrameStatus {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            FrameStatus::Running => "running",
            FrameStatus::Succeeded => "succeeded",
            FrameStatus::Failed => "failed",
        }
    }

    pub(super) fn parse(s: &str) -> FrameStatus {
        match s {
            "succeeded" => FrameStatus::Succeeded,
            "failed" => FrameStatus::Failed,
            _ => FrameStatus::Running,
        }
    }
}

/// Where one thread of an execution stands: its current state and that state's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub id: String,
    pub state: String,
    pub input: Value,
    /// Transitions taken so far (makes child frame ids unique when a state is re-entered).
    pub step: u64,
    pub status: FrameStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Attempts used per retrier of the current state.
    pub retries: Vec<u32>,
    /// Variables (`Assign`) visible in this frame.
    pub vars: Value,
    /// RFC 3339 time a Wait or a retry delay ends.
    pub wake_at: Option<String>,
    /// Task token the current state waits on.
    pub token: Option<String>,
    /// When the current state was entered.
    pub entered_at: String,
}

/// An execution as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub id: String,
    pub name: String,
    pub arn: String,
    pub definition: Value,
    pub input: Value,
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub started_at: String,
    pub stopped_at: Option<String>,
    /// Bindings, mock config and options needed to resume.
    pub config: Value,
}

/// One history event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Event {
    pub id: u64,
    pub frame: String,
    pub kind: String,
    pub details: Value,
    pub at: String,
}

/// A task token's state.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub token: String,
    pub execution: String,
    pub frame: String,
    pub status: TokenStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub heartbeat_at: String,
}

/// A write, applied inside a commit.
#[derive(Debug, Clone)]
pub enum Op {
    PutExecution(Box<Execution>),
    EndExecution {
        id: String,
        status: ExecutionStatus,
        output: Option<Value>,
        error: Option<String>,
        cause: Option<String>,
    },
    PutFrame {
        execution: String,
        frame: Box<Frame>,
    },
    Event {
        execution: String,
        frame: String,
        kind: String,
        details: Value,
    },
    /// Marks a running execution ABORTED (a no-op if it already ended).
    Abort {
        id: String,
        error: String,
        cause: String,
    },
    PutToken {
        token: String,
        execution: String,
        frame: String,
    },
    Counter {
        execution: String,
        key: String,
        value: u64,
    },
}

/// What `send-task-*` says.
#[derive(Debug, Clone)]
pub enum TokenAnswer {
    Success(Value),
    Failure { error: String, cause: String },
    Heartbeat,
}
