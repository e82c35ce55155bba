//! The dashboard's and the report's executions on a deployed stack: Step Functions'
//! `DescribeExecution`, `DescribeStateMachineForExecution` and `GetExecutionHistory`, read
//! into the engine's records so the pages are the same code as locally
//! (<https://docs.aws.amazon.com/step-functions/latest/apireference/API_GetExecutionHistory.html>).
//!
//! An id is an execution ARN, or a name looked up under the stack's state machines in
//! turn: a run's execution of `migration-run` is named after the run, a dataset's
//! execution of `dataset-migration` after `skein_core::fleet::execution_name`.

use async_trait::async_trait;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::error::ProvideErrorMetadata;
use aws_sdk_sfn::primitives::{DateTime, DateTimeFormat};
use aws_sdk_sfn::types::{ExecutionStatus as AwsStatus, HistoryEvent};
use serde_json::{Value, json};
use skein_states::status::ExecutionStatus;
use skein_states::store::{Event, Execution};
use skein_ui::{Error, Executions, Result};

/// Events read at most: a Standard execution's history holds at most 25,000
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html>).
const MAX_EVENTS: usize = 25_000;

/// Executions of a deployed stack's state machines.
pub struct SfnExecutions {
    client: Client,
    /// State machine ARNs a name is looked up under, in this order.
    machines: Vec<String>,
}

impl SfnExecutions {
    pub fn new(client: Client, machines: Vec<String>) -> SfnExecutions {
        SfnExecutions { client, machines }
    }

    /// The ARNs `id` may stand for.
    fn arns(&self, id: &str) -> Vec<String> {
        if id.starts_with("arn:") {
            return vec![id.to_string()];
        }
        self.machines
            .iter()
            .map(|m| format!("{}:{id}", m.replacen(":stateMachine:", ":execution:", 1)))
            .collect()
    }

    /// The first of [`SfnExecutions::arns`] that names an execution, described.
    async fn describe(
        &self,
        id: &str,
    ) -> Result<Option<aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput>> {
        for arn in self.arns(id) {
            match self
                .client
                .describe_execution()
                .execution_arn(&arn)
                .send()
                .await
            {
                Ok(d) => return Ok(Some(d)),
                Err(e) if matches!(e.code(), Some("ExecutionDoesNotExist" | "InvalidArn")) => {}
                Err(e) => return Err(aws_error("DescribeExecution", &arn, &e)),
            }
        }
        Ok(None)
    }
}

fn aws_error(call: &str, arn: &str, e: &(impl ProvideErrorMetadata + std::fmt::Display)) -> Error {
    Error::Executions(format!(
        "Step Functions {call} of {arn}: {}; check the credentials (AWS_PROFILE) and that the stack's role may read executions",
        e.message()
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string())
    ))
}

/// Step Functions' statuses, as the engine spells them. `PENDING_REDRIVE` is a failed
/// execution that may be redriven.
fn status_of(s: &AwsStatus) -> ExecutionStatus {
    match s {
        AwsStatus::Running => ExecutionStatus::Running,
        AwsStatus::Succeeded => ExecutionStatus::Succeeded,
        AwsStatus::TimedOut => ExecutionStatus::TimedOut,
        AwsStatus::Aborted => ExecutionStatus::Aborted,
        _ => ExecutionStatus::Failed,
    }
}

fn time(t: &DateTime) -> String {
    t.fmt(DateTimeFormat::DateTime).unwrap_or_default()
}

/// A JSON document Step Functions gives as text; text that is no JSON stays text.
fn document(text: Option<&str>) -> Value {
    match text {
        Some(t) => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())),
        None => Value::Null,
    }
}

#[async_trait]
impl Executions for SfnExecutions {
    async fn status(&self, id: &str) -> Result<Option<ExecutionStatus>> {
        Ok(self.describe(id).await?.map(|d| status_of(d.status())))
    }

    async fn execution(&self, id: &str) -> Result<Option<Execution>> {
        let Some(d) = self.describe(id).await? else {
            return Ok(None);
        };
        let arn = d.execution_arn().to_string();
        let machine = self
            .client
            .describe_state_machine_for_execution()
            .execution_arn(&arn)
            .send()
            .await
            .map_err(|e| aws_error("DescribeStateMachineForExecution", &arn, &e))?;
        Ok(Some(Execution {
            id: id.to_string(),
            name: d.name().unwrap_or(id).to_string(),
            definition: document(Some(machine.definition())),
            input: document(d.input()),
            status: status_of(d.status()),
            output: d.output().map(|o| document(Some(o))),
            error: d.error().map(str::to_string),
            cause: d.cause().map(str::to_string),
            started_at: time(d.start_date()),
            stopped_at: d.stop_date().map(time),
            config: Value::Null,
            arn,
        }))
    }

    async fn events(&self, id: &str) -> Result<Vec<Event>> {
        let Some(d) = self.describe(id).await? else {
            return Ok(Vec::new());
        };
        let arn = d.execution_arn();
        let mut history = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .get_execution_history()
                .execution_arn(arn)
                .max_results(1000)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| aws_error("GetExecutionHistory", arn, &e))?;
            history.extend(page.events().iter().cloned());
            next = page.next_token().map(str::to_string);
            if next.is_none() || history.len() >= MAX_EVENTS {
                break;
            }
        }
        Ok(records(&history))
    }

    fn cheap(&self) -> bool {
        false
    }
}

/// AWS's history as the engine's records, each event in its frame
/// ([`skein_ui::executions::frames`]).
pub fn records(history: &[HistoryEvent]) -> Vec<Event> {
    let links: Vec<(i64, i64, &str)> = history
        .iter()
        .map(|e| (e.id(), e.previous_event_id(), e.r#type().as_str()))
        .collect();
    let frames = skein_ui::executions::frames(&links);
    history
        .iter()
        .zip(frames)
        .map(|(e, frame)| Event {
            id: e.id().max(0) as u64,
            frame,
            details: details(e),
            at: time(e.timestamp()),
            kind: e.r#type().as_str().to_string(),
        })
        .collect()
}

/// The details of an event, with the keys the engine's own events use (`name`, `input`,
/// `output`, `error`, `cause`, `index`, …): the inputs and outputs parsed from their text.
fn details(e: &HistoryEvent) -> Value {
    let failure =
        |error: Option<&str>, cause: Option<&str>| json!({"error": error, "cause": cause});
    if let Some(d) = e.state_entered_event_details() {
        return json!({"name": d.name(), "input": document(d.input())});
    }
    if let Some(d) = e.state_exited_event_details() {
        return json!({"name": d.name(), "output": document(d.output())});
    }
    if let Some(d) = e.execution_started_event_details() {
        return json!({"input": document(d.input())});
    }
    if let Some(d) = e.execution_succeeded_event_details() {
        return json!({"output": document(d.output())});
    }
    if let Some(d) = e.execution_failed_event_details() {
        return failure(d.error(), d.cause());
    }
    if let Some(d) = e.execution_aborted_event_details() {
        return failure(d.error(), d.cause());
    }
    if let Some(d) = e.execution_timed_out_event_details() {
        return failure(d.error(), d.cause());
    }
    if let Some(d) = e.task_scheduled_event_details() {
        return json!({"resourceType": d.resource_type(), "resource": d.resource(),
            "parameters": document(Some(d.parameters()))});
    }
    if let Some(d) = e.task_started_event_details() {
        return json!({"resourceType": d.resource_type(), "resource": d.resource()});
    }
    if let Some(d) = e.task_succeeded_event_details() {
        return json!({"resource": d.resource(), "output": document(d.output())});
    }
    if let Some(d) = e.task_submitted_event_details() {
        return json!({"resource": d.resource(), "output": document(d.output())});
    }
    if let Some(d) = e.task_failed_event_details() {
        return failure(d.error(), d.cause());
    }
    if let Some(d) = e.task_timed_out_event_details() {
        return failure(d.error(), d.cause());
    }
    if let Some(d) = e.task_start_failed_event_details() {
        return failure(d.error(), d.cause());
    }
    if let Some(d) = e.task_submit_failed_event_details() {
        return failure(d.error(), d.cause());
    }
    if let Some(d) = e.lambda_function_failed_event_details() {
        return failure(d.error(), d.cause());
    }
    if let Some(d) = e.evaluation_failed_event_details() {
        return json!({"error": d.error(), "cause": d.cause(), "location": d.location(),
            "state": d.state()});
    }
    if let Some(d) = e.map_state_started_event_details() {
        return json!({"length": d.length()});
    }
    let iteration = e
        .map_iteration_started_event_details()
        .or(e.map_iteration_succeeded_event_details())
        .or(e.map_iteration_failed_event_details())
        .or(e.map_iteration_aborted_event_details());
    if let Some(d) = iteration {
        return json!({"name": d.name(), "index": d.index()});
    }
    if let Some(d) = e.map_run_started_event_details() {
        return json!({"mapRunArn": d.map_run_arn()});
    }
    if let Some(d) = e.map_run_failed_event_details() {
        return failure(d.error(), d.cause());
    }
    json!({})
}
