//! skein-aws: the adapters that put skein's ports on AWS, and the wiring the Lambda
//! functions share.
//!
//! - [`DynamoCatalog`]: the [`Catalog`](skein_core::catalog::Catalog) port on one DynamoDB
//!   table (key design in [`catalog`]), plus per-source-system semaphores.
//! - [`SqsQueue`]: the [`JobQueue`](skein_core::queue::JobQueue) port, one SQS queue per
//!   worker group with a dead-letter queue.
//! - [`SfnCallbacks`]: task-token answers (`SendTaskSuccess`/`Failure`/`Heartbeat`).
//! - [`objects`]: reading spec files and run requests from S3 through `object_store`.
//! - [`lambda`]: JSON logs, error names across the boundary, the environment functions read.
//!
//! Endpoints come from the standard AWS environment (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! credentials), so the same binaries run against AWS and against a local server that
//! speaks the AWS wire protocols (moto, in the tests).

pub mod callbacks;
pub mod catalog;
pub mod config;
pub mod functions;
pub mod lambda;
pub mod objects;
pub mod queue;

pub use callbacks::SfnCallbacks;
pub use catalog::DynamoCatalog;
pub use config::AwsSettings;
pub use queue::SqsQueue;
