//! What every Lambda function shares: JSON logs with run and dataset ids, the environment
//! it reads, and the way a [`StepError`] crosses the boundary as the Step Functions error
//! name (the function error's `errorType`, which a `Catch` matches).

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use skein_usecases::steps::StepError;
use skein_usecases::tasks::names;
use tracing::Instrument;

use crate::catalog::DynamoCatalog;
use crate::config::AwsSettings;

/// The table the functions use.
pub const TABLE_VAR: &str = "SKEIN_TABLE";

/// Logs as one JSON object a line (CloudWatch Logs Insights reads the fields), level from
/// `RUST_LOG` (default `info`), with the span fields (`run_id`, `dataset`) on each line.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .try_init();
}

/// A required environment variable, or an error that names it and says what sets it.
pub fn required_env(name: &str) -> Result<String, StepError> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
        StepError::new(
            names::INTERNAL,
            format!("environment variable {name} is not set; the template (infra/template.yaml) sets it for every function"),
        )
    })
}

/// The catalog the function's environment names.
pub async fn catalog_from_env() -> Result<DynamoCatalog, StepError> {
    let table = required_env(TABLE_VAR)?;
    Ok(DynamoCatalog::connect(&AwsSettings::from_env(), &table).await)
}

/// The error as Lambda reports it: `errorType` is the Step Functions error name.
pub fn diagnostic(e: StepError) -> Diagnostic {
    Diagnostic {
        error_type: e.error,
        error_message: e.cause,
    }
}

/// A step error as a Lambda error value.
#[derive(Debug)]
pub struct FunctionError(pub StepError);

impl From<FunctionError> for Diagnostic {
    fn from(e: FunctionError) -> Diagnostic {
        diagnostic(e.0)
    }
}

impl From<StepError> for FunctionError {
    fn from(e: StepError) -> FunctionError {
        FunctionError(e)
    }
}

/// Serves a function whose event is a state machine's JSON payload: each invocation runs
/// in a span with the payload's `runId` and `dataset`, and logs how it ended.
pub async fn serve_payload<F, Fut>(
    function: &'static str,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Result<Value, StepError>>,
{
    init_logging();
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let payload = event.payload;
        let run_id = payload.get("runId").and_then(Value::as_str).unwrap_or("").to_string();
        let dataset = payload.get("dataset").and_then(Value::as_str).unwrap_or("").to_string();
        let span = tracing::info_span!("invocation", function, run_id = %run_id, dataset = %dataset, request_id = %event.context.request_id);
        async move {
            let result = Box::pin(handler(payload)).await;
            match &result {
                Ok(_) => tracing::info!("done"),
                Err(e) => tracing::warn!(error = %e.error, cause = %e.cause, "failed"),
            }
            result.map_err(FunctionError)
        }
        .instrument(span)
        .await
    }))
    .await
}
