//! Amazon SQS as the work queue. The queue's visibility timeout is the job's lease: a worker
//! receives a message with `VisibilityTimeout` = the lease and extends it from its heartbeat
//! (`ChangeMessageVisibility`); a worker that dies leaves the message to reappear when the
//! timeout runs out. Dead letters are sent by the worker (with the reason as the body and as
//! message attributes) to `--dead-letter-queue-url`; a redrive policy on the queue with a
//! higher `maxReceiveCount` is a backstop for messages no worker could even read.
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use async_trait::async_trait;
use aws_sdk_sqs::{
    error::DisplayErrorContext,
    types::{MessageAttributeValue, MessageSystemAttributeName},
    Client,
};

use super::{job_message, DeadLetter, JobQueue, Message, QueueError};

/// An SQS-backed [`JobQueue`].
#[derive(Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
    dead_letter_url: Option<String>,
    /// API calls made (for the logs and the load figures).
    pub calls: AtomicU64,
}

fn err(what: &str, e: impl std::error::Error) -> QueueError {
    QueueError(format!("SQS {what}: {}", DisplayErrorContext(&e)))
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

impl SqsQueue {
    /// Uses `sdk` (default chain; `AWS_ENDPOINT_URL` honoured), the queue `url` and the
    /// optional dead-letter queue.
    pub fn new(sdk: &aws_config::SdkConfig, url: &str, dead_letter_url: Option<&str>) -> Self {
        Self {
            client: Client::new(sdk),
            url: url.to_string(),
            dead_letter_url: dead_letter_url.map(str::to_string),
            calls: AtomicU64::new(0),
        }
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn enqueue(&self, job_id: &str) -> Result<(), QueueError> {
        self.count();
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(job_message(job_id))
            .send()
            .await
            .map_err(|e| err("SendMessage", e))?;
        Ok(())
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        self.count();
        let r = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(secs(wait).min(20))
            .visibility_timeout(secs(visibility).max(1))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| err("ReceiveMessage", e))?;
        let mut out = Vec::new();
        for m in r.messages() {
            let (Some(receipt), Some(id)) = (m.receipt_handle(), m.message_id()) else {
                continue;
            };
            let attr = |a: MessageSystemAttributeName| {
                m.attributes()
                    .and_then(|at| at.get(&a))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            out.push(Message {
                id: id.to_string(),
                receipt: receipt.to_string(),
                body: m.body().unwrap_or_default().to_string(),
                receive_count: u32::try_from(attr(
                    MessageSystemAttributeName::ApproximateReceiveCount,
                ))
                .unwrap_or(u32::MAX),
                sent_ms: attr(MessageSystemAttributeName::SentTimestamp),
            });
        }
        Ok(out)
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        self.count();
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs(visibility))
            .send()
            .await
            .map_err(|e| err("ChangeMessageVisibility", e))?;
        Ok(())
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.count();
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| err("DeleteMessage", e))?;
        Ok(())
    }

    async fn dead_letter(&self, msg: &Message, why: &DeadLetter) -> Result<(), QueueError> {
        let Some(dlq) = &self.dead_letter_url else {
            // No dead-letter queue configured: the message stays and the queue's own redrive
            // policy (if any) moves it; the job's failure is recorded either way.
            tracing::warn!(message_id = %msg.id, reason = %why.reason, "no --dead-letter-queue-url: message left to the queue's redrive policy");
            return Ok(());
        };
        let body = serde_json::to_string(why).map_err(|e| QueueError(e.to_string()))?;
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| QueueError(e.to_string()))
        };
        self.count();
        let mut req = self
            .client
            .send_message()
            .queue_url(dlq)
            .message_body(body)
            .message_attributes("reason", attr(&why.reason)?);
        if let Some(j) = &why.job_id {
            req = req.message_attributes("job_id", attr(j)?);
        }
        req.send().await.map_err(|e| err("SendMessage (DLQ)", e))?;
        self.delete(&msg.receipt).await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let _ = limit;
        // Reading the DLQ would hide its messages from operators for a visibility timeout:
        // use the console or `aws sqs receive-message` on it.
        Ok(Vec::new())
    }

    fn describe(&self) -> String {
        format!("sqs:{}", self.url)
    }
}
