//! The work queue: how workers learn that a job is ready. Amazon SQS in server mode (the API
//! enqueues a job id when an upload completes; objects dropped straight into the uploads
//! bucket arrive as S3 event notifications on the same queue), an in-process queue in the
//! embedded default. Both behave alike: a received message is invisible for the visibility
//! timeout (the job's lease, extended by the worker's heartbeat), deleted when the job is
//! done or failed, and moved to the dead-letter queue (with the job failed and its reason)
//! once it was received more than `max_receives` times.
use std::time::Duration;

use async_trait::async_trait;

pub mod embedded;
pub mod scan;
#[cfg(feature = "aws")]
pub mod sqs;

/// A queue operation failed (backend text: for the logs only).
#[derive(Debug, thiserror::Error)]
#[error("queue: {0}")]
pub struct QueueError(pub String);

/// One received message.
#[derive(Clone, Debug)]
pub struct Message {
    /// The queue's id of the message.
    pub id: String,
    /// What to hand back to [`JobQueue::extend`], [`JobQueue::delete`] and
    /// [`JobQueue::dead_letter`] (SQS's receipt handle).
    pub receipt: String,
    /// The body: `{"job_id": ...}` from the API, or an S3 / EventBridge notification.
    pub body: String,
    /// How many times the message was received, this time included (0 when unknown).
    pub receive_count: u32,
    /// When the message was first sent, ms since the Unix epoch (0 when unknown).
    pub sent_ms: u64,
}

/// Why a message went to the dead-letter queue.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeadLetter {
    /// The job, when the message named one.
    pub job_id: Option<String>,
    /// Short reason code (a job failure reason, or `unreadable_message`).
    pub reason: String,
    /// Our text about it.
    pub error: String,
    /// Receives of the message so far.
    pub receive_count: u32,
    /// The original message body.
    pub message: String,
}

/// The message body the API sends for a job.
pub fn job_message(job_id: &str) -> String {
    serde_json::json!({ "job_id": job_id }).to_string()
}

/// The queue workers take jobs from.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Sends a message naming job `job_id`.
    async fn enqueue(&self, job_id: &str) -> Result<(), QueueError>;
    /// Up to `max` messages, waiting at most `wait` for the first (long poll); each stays
    /// invisible to other receivers for `visibility`.
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError>;
    /// Keeps the message invisible for `visibility` from now (0: visible again at once).
    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError>;
    /// Deletes the message (its job is finished).
    async fn delete(&self, receipt: &str) -> Result<(), QueueError>;
    /// Moves the message to the dead-letter queue with `why`, and deletes it here.
    async fn dead_letter(&self, msg: &Message, why: &DeadLetter) -> Result<(), QueueError>;
    /// Messages in the dead-letter queue (admin view and tests; at most `limit`).
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let _ = limit;
        Ok(Vec::new())
    }
    /// Whether the job table must be swept for work this queue may not hold (jobs left by a
    /// previous run of the embedded queue, uploads dropped into the embedded store's
    /// directory, or the legacy polling mode): every `n`-th receive, `None` never.
    fn sweep_every(&self) -> Option<u64> {
        None
    }
    /// A short description for logs.
    fn describe(&self) -> String;
}
