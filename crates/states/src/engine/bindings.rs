//! What the embedding program binds: [`TaskHandler`]s for Task resources, the
//! [`TaskCall`] they receive, and [`Handlers`], which resource goes to which handler.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::failure::Failure;

/// A Task invocation, as a bound handler sees it.
#[derive(Debug, Clone)]
pub struct TaskCall {
    /// The state's `Resource`.
    pub resource: String,
    /// For Lambda resources: the function name.
    pub function: Option<String>,
    /// The payload (the function's event).
    pub payload: Value,
    /// For `.waitForTaskToken`: the token to answer with `send-task-success|failure`.
    pub token: Option<String>,
    /// The state's name.
    pub state: String,
    /// The execution ARN.
    pub execution: String,
}

/// A Task resource bound by the embedding program (skein's use cases, a command, …).
#[async_trait]
pub trait TaskHandler: Send + Sync {
    /// Runs the task; the value is the task's result. Must be idempotent: after a crash a
    /// task whose result was not committed runs again.
    async fn call(&self, call: &TaskCall) -> Result<Value, Failure>;
}

/// Which handler serves which resource.
#[derive(Default, Clone)]
pub struct Handlers {
    functions: HashMap<String, Arc<dyn TaskHandler>>,
    resources: HashMap<String, Arc<dyn TaskHandler>>,
}

impl Handlers {
    /// Binds a Lambda function name (for `lambda:invoke` and function ARNs).
    pub fn function(&mut self, name: &str, handler: Arc<dyn TaskHandler>) -> &mut Self {
        self.functions.insert(name.to_string(), handler);
        self
    }

    /// Binds a resource ARN (without `.sync` / `.waitForTaskToken`).
    pub fn resource(&mut self, arn: &str, handler: Arc<dyn TaskHandler>) -> &mut Self {
        self.resources.insert(arn.to_string(), handler);
        self
    }

    /// The handler of a Lambda `function`, else of the resource `base` (the ARN without
    /// `.sync` / `.waitForTaskToken`) or the `resource` as written.
    pub(super) fn lookup(
        &self,
        function: Option<&str>,
        base: &str,
        resource: &str,
    ) -> Option<Arc<dyn TaskHandler>> {
        match function {
            Some(f) => self.functions.get(f),
            None => self
                .resources
                .get(base)
                .or_else(|| self.resources.get(resource)),
        }
        .cloned()
    }
}

/// The function name in a Lambda function name or ARN (`arn:…:function:name:alias`).
pub(super) fn function_name(name_or_arn: &str) -> String {
    match name_or_arn.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest).to_string(),
        None => name_or_arn
            .split(':')
            .next()
            .unwrap_or(name_or_arn)
            .to_string(),
    }
}
