//! The task-token port: answering the Step Functions task that a migrate job or an
//! approval waits on. Step Functions implements it on AWS (`SendTaskSuccess`,
//! `SendTaskFailure`, `SendTaskHeartbeat`), the embedded engine's store locally.
//!
//! A token that no longer waits (answered, timed out, its execution stopped) is
//! [`Error::TokenGone`](crate::Error::TokenGone) from every call: a worker that hears it
//! stops at once, since another attempt may hold the dataset now
//! (<https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskHeartbeat.html#API_SendTaskHeartbeat_Errors>:
//! `TaskTimedOut`, `InvalidToken`, `TaskDoesNotExist`).

use async_trait::async_trait;
use serde_json::Value;

use crate::error::Result;

/// Answers task tokens.
#[async_trait]
pub trait TaskCallbacks: Send + Sync {
    /// The task succeeds with `output`. Returns the execution that waited when the
    /// backend knows it (the embedded engine does; Step Functions' answer does not say).
    async fn succeed(&self, token: &str, output: &Value) -> Result<Option<String>>;

    /// The task fails with `error` (a name the state machine catches) and `cause`.
    async fn fail(&self, token: &str, error: &str, cause: &str) -> Result<Option<String>>;

    /// The worker is alive: resets the task's heartbeat clock.
    async fn heartbeat(&self, token: &str) -> Result<()>;
}
