//! The job queue on SQS: one queue per worker group, `<prefix><group>`, each with a
//! dead-letter queue `<prefix><group>-dlq` that takes a job after `maxReceiveCount`
//! deliveries (the redrive policy).
//!
//! On AWS the state machine sends the jobs itself (`sqs:sendMessage.waitForTaskToken`) and
//! the migrate function receives them through the event source mapping; this adapter is
//! what the same operations look like from code: `send` for tools and tests, `receive`/
//! `extend`/`delete` for a polling worker, `depth` and `dead_letters` for monitoring.
//!
//! Standard queues may deliver a job twice; the worker is idempotent (the lease, and a
//! staged version of the same spec and source is reused), so a duplicate does no harm.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use skein_core::queue::{Delivery, Job, JobQueue};
use skein_core::{Error, Result};

use crate::config::{AwsSettings, sdk_message};

/// The SQS job queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    /// Queue URL of a group = this prefix + the group name.
    url_prefix: String,
}

fn backend(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend {
        message: format!("sqs: {what}: {e}"),
    }
}

impl SqsQueue {
    /// The queues whose URLs are `url_prefix` + group.
    pub fn new(client: Client, url_prefix: impl Into<String>) -> SqsQueue {
        SqsQueue {
            client,
            url_prefix: url_prefix.into(),
        }
    }

    /// With a client built from `settings`.
    pub async fn connect(settings: &AwsSettings, url_prefix: &str) -> SqsQueue {
        let config = settings.sdk_config().await;
        SqsQueue::new(Client::new(&config), url_prefix)
    }

    /// The queue URL of a group.
    pub fn url(&self, group: &str) -> String {
        format!("{}{group}", self.url_prefix)
    }

    fn dlq_url(&self, group: &str) -> String {
        format!("{}{group}-dlq", self.url_prefix)
    }

    /// The client (for callers that need SQS operations beyond the port).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates a group's queue and its dead-letter queue (tests and local set-ups; on AWS
    /// the template creates them). Returns the queue URL, which must equal [`Self::url`].
    pub async fn create_group(
        &self,
        queue_name: &str,
        max_receives: u32,
        visibility_secs: u32,
    ) -> Result<String> {
        let dlq = self
            .client
            .create_queue()
            .queue_name(format!("{queue_name}-dlq"))
            .send()
            .await
            .map_err(|e| backend("CreateQueue", sdk_message(&e)))?;
        let dlq_url = dlq.queue_url.unwrap_or_default();
        let attrs = self
            .client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| backend("GetQueueAttributes", sdk_message(&e)))?;
        let dlq_arn = attrs
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| backend("GetQueueAttributes", "the dead-letter queue has no ARN"))?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receives.to_string(),
        });
        let q = self
            .client
            .create_queue()
            .queue_name(queue_name)
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_secs.to_string(),
            )
            .send()
            .await
            .map_err(|e| backend("CreateQueue", sdk_message(&e)))?;
        Ok(q.queue_url.unwrap_or_default())
    }

    fn parse(body: &str, url: &str) -> Result<Job> {
        serde_json::from_str(body).map_err(|e| {
            backend(
                "ReceiveMessage",
                format!("a message on {url} is not a skein job ({e}): {body}"),
            )
        })
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send(&self, group: &str, job: &Job) -> Result<()> {
        let body = serde_json::to_string(job).map_err(|e| Error::Internal(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(self.url(group))
            .message_body(body)
            .send()
            .await
            .map_err(|e| backend(&format!("SendMessage to group `{group}`"), sdk_message(&e)))?;
        Ok(())
    }

    async fn receive(&self, group: &str, visibility_secs: u64) -> Result<Option<Delivery>> {
        let url = self.url(group);
        let out = self
            .client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(1)
            .visibility_timeout(visibility_secs.min(43_200) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| backend(&format!("ReceiveMessage from `{url}`"), sdk_message(&e)))?;
        let Some(m) = out.messages.unwrap_or_default().into_iter().next() else {
            return Ok(None);
        };
        let receives = m
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let job = SqsQueue::parse(m.body.as_deref().unwrap_or(""), &url)?;
        Ok(Some(Delivery {
            receipt: format!("{group}\n{}", m.receipt_handle.unwrap_or_default()),
            receives,
            job,
        }))
    }

    async fn extend(&self, delivery: &Delivery, visibility_secs: u64) -> Result<()> {
        let (group, handle) = split_receipt(&delivery.receipt)?;
        self.client
            .change_message_visibility()
            .queue_url(self.url(group))
            .receipt_handle(handle)
            .visibility_timeout(visibility_secs.min(43_200) as i32)
            .send()
            .await
            .map_err(|e| backend("ChangeMessageVisibility", sdk_message(&e)))?;
        Ok(())
    }

    async fn delete(&self, delivery: &Delivery) -> Result<()> {
        let (group, handle) = split_receipt(&delivery.receipt)?;
        self.client
            .delete_message()
            .queue_url(self.url(group))
            .receipt_handle(handle)
            .send()
            .await
            .map_err(|e| backend("DeleteMessage", sdk_message(&e)))?;
        Ok(())
    }

    async fn depth(&self, group: &str) -> Result<u64> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(self.url(group))
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| backend("GetQueueAttributes", sdk_message(&e)))?;
        let attrs = out.attributes.unwrap_or_default();
        let get = |k: &QueueAttributeName| -> u64 {
            attrs.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        Ok(get(&QueueAttributeName::ApproximateNumberOfMessages)
            + get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
    }

    async fn dead_letters(&self, group: &str) -> Result<Vec<Job>> {
        // Peek: receive with a zero visibility timeout, so the letters stay for people.
        let url = self.dlq_url(group);
        let mut jobs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10 {
            let out = self
                .client
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await
                .map_err(|e| backend(&format!("ReceiveMessage from `{url}`"), sdk_message(&e)))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            let mut new = false;
            for m in messages {
                if seen.insert(m.message_id.clone().unwrap_or_default()) {
                    new = true;
                    jobs.push(SqsQueue::parse(m.body.as_deref().unwrap_or(""), &url)?);
                }
            }
            if !new {
                break;
            }
        }
        Ok(jobs)
    }
}

fn split_receipt(receipt: &str) -> Result<(&str, &str)> {
    receipt.split_once('\n').ok_or_else(|| {
        Error::Internal(format!(
            "`{receipt}` is not a receipt of the SQS queue adapter"
        ))
    })
}
