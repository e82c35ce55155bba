//! skein-migrate: the worker of a group's SQS queue (event source mapping with
//! `ReportBatchItemFailures`). Each message is a job `{dataset, runId, taskToken}` from the
//! Migrate state: stage the dataset with its source checksum, verify it, heartbeat while
//! it works, answer the token. Messages to try again come back in `batchItemFailures`.
//! Environment: `SKEIN_TABLE`, `SKEIN_HEARTBEAT_SECS` (60).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use skein_aws::{functions::Worker, lambda};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_logging();
    let worker = Worker::from_env().await?;
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(worker.batch(event.payload).await)
    }))
    .await
}
