//! Task-token answers through Step Functions: the migrate worker's result, heartbeats
//! while it works, and approvals.

use async_trait::async_trait;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use serde_json::Value;
use skein_core::callbacks::TaskCallbacks;
use skein_core::{Error, Result};

use crate::config::{AwsSettings, sdk_message};

/// Step Functions limits `error` to 256 and `cause` to 32,768 characters.
const MAX_ERROR: usize = 256;
const MAX_CAUSE: usize = 32_768;

/// Answers task tokens.
#[derive(Debug, Clone)]
pub struct SfnCallbacks {
    client: Client,
}

fn backend(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend {
        message: format!("states: {what}: {e}"),
    }
}

/// A refused answer: [`Error::TokenGone`] when the token no longer waits (the errors
/// `SendTask*` documents for that:
/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskHeartbeat.html#API_SendTaskHeartbeat_Errors>),
/// else a backend error.
fn refused<E, R>(what: &str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.code() {
        Some(code @ ("TaskTimedOut" | "InvalidToken" | "TaskDoesNotExist")) => Error::TokenGone {
            reason: format!("{what}: {code}: {}", e.message().unwrap_or("")),
        },
        _ => backend(what, sdk_message(&e)),
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

impl SfnCallbacks {
    pub fn new(client: Client) -> SfnCallbacks {
        SfnCallbacks { client }
    }

    pub async fn connect(settings: &AwsSettings) -> SfnCallbacks {
        SfnCallbacks::new(Client::new(&settings.sdk_config().await))
    }

    /// The client (to start executions, describe them, …).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `SendTaskSuccess` with `output`.
    pub async fn success(&self, token: &str, output: &Value) -> Result<()> {
        self.client
            .send_task_success()
            .task_token(token)
            .output(output.to_string())
            .send()
            .await
            .map_err(|e| refused("SendTaskSuccess", e))?;
        Ok(())
    }

    /// `SendTaskFailure` with an error name the state machine catches, and the cause.
    pub async fn failure(&self, token: &str, error: &str, cause: &str) -> Result<()> {
        self.client
            .send_task_failure()
            .task_token(token)
            .error(clip(error, MAX_ERROR))
            .cause(clip(cause, MAX_CAUSE))
            .send()
            .await
            .map_err(|e| refused("SendTaskFailure", e))?;
        Ok(())
    }

    /// `SendTaskHeartbeat`: the worker is alive (the Migrate state has `HeartbeatSeconds`).
    pub async fn heartbeat(&self, token: &str) -> Result<()> {
        self.client
            .send_task_heartbeat()
            .task_token(token)
            .send()
            .await
            .map_err(|e| refused("SendTaskHeartbeat", e))?;
        Ok(())
    }
}

#[async_trait]
impl TaskCallbacks for SfnCallbacks {
    async fn succeed(&self, token: &str, output: &Value) -> Result<Option<String>> {
        self.success(token, output).await.map(|()| None)
    }

    async fn fail(&self, token: &str, error: &str, cause: &str) -> Result<Option<String>> {
        self.failure(token, error, cause).await.map(|()| None)
    }

    async fn heartbeat(&self, token: &str) -> Result<()> {
        SfnCallbacks::heartbeat(self, token).await
    }
}
