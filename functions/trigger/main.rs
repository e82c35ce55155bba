//! skein-trigger: a run-request object dropped into S3 (EventBridge `Object Created`, or
//! an S3 notification) starts the migration-run state machine with `{runId, specs}`.
//! Environment: `SKEIN_RUN_STATE_MACHINE_ARN`.

use serde_json::Value;
use skein_aws::{AwsSettings, functions, lambda};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let arn = lambda::required_env("SKEIN_RUN_STATE_MACHINE_ARN")?;
    let settings = AwsSettings::from_env();
    let sfn = aws_sdk_sfn::Client::new(&settings.sdk_config().await);
    lambda::serve_payload("trigger", |event: Value| {
        let (settings, sfn, arn) = (settings.clone(), sfn.clone(), arn.clone());
        async move { functions::trigger(&settings, &sfn, &arn, &event).await }
    })
    .await
}
