//! The job queue port: one queue per worker group, jobs carrying a Step Functions task
//! token. SQS implements it on AWS (redrive to a dead-letter queue), SQLite embedded.
//!
//! Delivery is at-least-once: a job whose worker dies becomes visible again after its
//! visibility timeout; after `max_receives` deliveries it moves to the dead letters.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A migration job: a reference to the dataset, not its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub dataset: String,
    pub run_id: String,
    /// The token to answer with SendTaskSuccess / SendTaskFailure.
    pub task_token: String,
    /// Stage only this chunk of a chunked dataset (the Map over `migrate.chunks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<u32>,
    /// A later step of a chunked dataset: `combine` joins the staged chunks into one
    /// staged version and verifies it in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<JobStep>,
    /// The fleet's large-job setting for the dataset's group: a source larger than its
    /// threshold (and not chunked) is answered `large`, to run in a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large: Option<crate::fleet::LargeJobs>,
    /// Run here whatever the size: this job is the container's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub container: bool,
}

impl Job {
    /// A job for the whole dataset (the first job of every migration).
    pub fn new(dataset: &str, run_id: &str, task_token: &str) -> Job {
        Job {
            dataset: dataset.to_string(),
            run_id: run_id.to_string(),
            task_token: task_token.to_string(),
            chunk: None,
            step: None,
            large: None,
            container: false,
        }
    }
}

/// The steps of a chunked migration after its first job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobStep {
    /// Join the staged chunks into one staged version and verify it in total.
    Combine,
}

/// A received job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Handle to extend or delete this delivery.
    pub receipt: String,
    /// How many times the job has been delivered, this one included.
    pub receives: u32,
    pub job: Job,
}

/// The queue port.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues a job on the group's queue; sending the same task token twice enqueues once.
    async fn send(&self, group: &str, job: &Job) -> Result<()>;

    /// Takes the next visible job of the group, hidden for `visibility_secs`.
    async fn receive(&self, group: &str, visibility_secs: u64) -> Result<Option<Delivery>>;

    /// Keeps a job hidden for `visibility_secs` more (long jobs).
    async fn extend(&self, delivery: &Delivery, visibility_secs: u64) -> Result<()>;

    /// Removes a finished job.
    async fn delete(&self, delivery: &Delivery) -> Result<()>;

    /// Visible plus in-flight jobs of the group.
    async fn depth(&self, group: &str) -> Result<u64>;

    /// Jobs of the group that went to the dead letters.
    async fn dead_letters(&self, group: &str) -> Result<Vec<Job>>;
}
