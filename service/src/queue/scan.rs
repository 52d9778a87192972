//! The legacy mode of servers with no queue configured: the job table is polled for
//! claimable jobs (a DynamoDB Scan per poll, growing with the table). Kept so that existing
//! deployments keep working; configure `--queue-url` for the queue-driven mode.
use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{job_message, DeadLetter, JobQueue, Message, QueueError};
use crate::{job::now_ms, store::JobStore};

/// A [`JobQueue`] that polls the job table.
pub struct ScanQueue {
    jobs: Arc<dyn JobStore>,
    poll: Duration,
    wake: Notify,
}

impl std::fmt::Debug for ScanQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanQueue").finish_non_exhaustive()
    }
}

impl ScanQueue {
    /// Polls `jobs` every `poll` (or when a job is enqueued in this process).
    pub fn new(jobs: Arc<dyn JobStore>, poll: Duration) -> Self {
        Self {
            jobs,
            poll,
            wake: Notify::new(),
        }
    }
}

#[async_trait]
impl JobQueue for ScanQueue {
    async fn enqueue(&self, _job_id: &str) -> Result<(), QueueError> {
        self.wake.notify_waiters();
        Ok(())
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        _visibility: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let notified = self.wake.notified();
        let ids = self
            .jobs
            .claimable(now_ms(), max.max(1))
            .await
            .map_err(|e| QueueError(e.to_string()))?;
        if ids.is_empty() {
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(wait.min(self.poll)) => {}
            }
        }
        Ok(ids
            .into_iter()
            .map(|id| Message {
                body: job_message(&id),
                receipt: String::new(),
                id,
                receive_count: 0,
                sent_ms: 0,
            })
            .collect())
    }

    async fn extend(&self, _receipt: &str, _visibility: Duration) -> Result<(), QueueError> {
        Ok(())
    }

    async fn delete(&self, _receipt: &str) -> Result<(), QueueError> {
        Ok(())
    }

    async fn dead_letter(&self, msg: &Message, why: &DeadLetter) -> Result<(), QueueError> {
        tracing::warn!(message_id = %msg.id, reason = %why.reason, error = %why.error, "no dead-letter queue (table polling mode): the job's failure is recorded");
        Ok(())
    }

    fn sweep_every(&self) -> Option<u64> {
        Some(10)
    }

    fn describe(&self) -> String {
        format!("polling {} (no queue)", self.jobs.describe())
    }
}
