//! The embedded default's queue: in this process's memory, with SQS's semantics (visibility
//! timeout, receive count, receipt handles that expire on the next receive, a dead-letter
//! list). Messages do not survive a restart: the workers sweep the job table when they start
//! (and now and then), which re-enqueues queued jobs and jobs whose lease expired.
use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{job_message, DeadLetter, JobQueue, Message, QueueError};
use crate::job::now_ms;

/// Messages kept at most (a bound on memory; enqueueing beyond it fails).
pub const MAX_MESSAGES: usize = 1_000_000;
/// Dead letters kept at most (the oldest are dropped first).
pub const MAX_DEAD_LETTERS: usize = 10_000;

#[derive(Debug)]
struct Entry {
    id: u64,
    job_id: String,
    body: String,
    receive_count: u32,
    sent_ms: u64,
    visible_at: Instant,
    /// The receipt of the last receive (0: never received).
    receipt: u64,
}

#[derive(Debug, Default)]
struct State {
    messages: VecDeque<Entry>,
    dead: VecDeque<DeadLetter>,
    next_id: u64,
}

/// An in-process [`JobQueue`].
#[derive(Debug, Default)]
pub struct EmbeddedQueue {
    state: Mutex<State>,
    notify: Notify,
}

fn poisoned() -> QueueError {
    QueueError("embedded queue: lock poisoned".into())
}

fn parse_receipt(r: &str) -> Option<(u64, u64)> {
    let (a, b) = r.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

impl EmbeddedQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_entry<R>(
        &self,
        receipt: &str,
        f: impl FnOnce(&mut State, usize) -> R,
    ) -> Result<Option<R>, QueueError> {
        let Some((id, rc)) = parse_receipt(receipt) else {
            return Ok(None);
        };
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        let pos = st
            .messages
            .iter()
            .position(|e| e.id == id && e.receipt == rc);
        Ok(pos.map(|p| f(&mut st, p)))
    }
}

#[async_trait]
impl JobQueue for EmbeddedQueue {
    async fn enqueue(&self, job_id: &str) -> Result<(), QueueError> {
        {
            let mut st = self.state.lock().map_err(|_| poisoned())?;
            // One pending message per job is enough (a sweep may find a job again).
            if st.messages.iter().any(|e| e.job_id == job_id) {
                return Ok(());
            }
            if st.messages.len() >= MAX_MESSAGES {
                return Err(QueueError(format!(
                    "embedded queue full ({MAX_MESSAGES} messages)"
                )));
            }
            st.next_id += 1;
            let id = st.next_id;
            st.messages.push_back(Entry {
                id,
                job_id: job_id.to_string(),
                body: job_message(job_id),
                receive_count: 0,
                sent_ms: now_ms(),
                visible_at: Instant::now(),
                receipt: 0,
            });
        }
        self.notify.notify_waiters();
        self.notify.notify_one();
        Ok(())
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.notify.notified();
            let next_visible = {
                let mut st = self.state.lock().map_err(|_| poisoned())?;
                let now = Instant::now();
                let mut out = Vec::new();
                let mut next: Option<Instant> = None;
                let mut receipt_seq = st.next_id;
                for e in st.messages.iter_mut() {
                    if out.len() >= max.max(1) {
                        break;
                    }
                    if e.visible_at <= now {
                        receipt_seq += 1;
                        e.receipt = receipt_seq;
                        e.receive_count = e.receive_count.saturating_add(1);
                        e.visible_at = now + visibility;
                        out.push(Message {
                            id: e.id.to_string(),
                            receipt: format!("{}:{}", e.id, e.receipt),
                            body: e.body.clone(),
                            receive_count: e.receive_count,
                            sent_ms: e.sent_ms,
                        });
                    } else {
                        next = Some(next.map_or(e.visible_at, |n: Instant| n.min(e.visible_at)));
                    }
                }
                st.next_id = receipt_seq;
                if !out.is_empty() {
                    return Ok(out);
                }
                next
            };
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let until = next_visible.map_or(deadline, |n| n.min(deadline));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(until.saturating_duration_since(now)) => {}
            }
        }
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), QueueError> {
        let found = self.with_entry(receipt, |st, p| {
            st.messages[p].visible_at = Instant::now() + visibility;
        })?;
        if visibility.is_zero() && found.is_some() {
            self.notify.notify_one();
        }
        Ok(())
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.with_entry(receipt, |st, p| {
            st.messages.remove(p);
        })?;
        Ok(())
    }

    async fn dead_letter(&self, msg: &Message, why: &DeadLetter) -> Result<(), QueueError> {
        self.with_entry(&msg.receipt, |st, p| {
            st.messages.remove(p);
        })?;
        let mut st = self.state.lock().map_err(|_| poisoned())?;
        if st.dead.len() >= MAX_DEAD_LETTERS {
            st.dead.pop_front();
        }
        st.dead.push_back(why.clone());
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let st = self.state.lock().map_err(|_| poisoned())?;
        Ok(st.dead.iter().take(limit).cloned().collect())
    }

    fn sweep_every(&self) -> Option<u64> {
        Some(30)
    }

    fn describe(&self) -> String {
        "embedded queue".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn visibility_receipts_and_dead_letters() {
        let q = EmbeddedQueue::new();
        q.enqueue("a").await.unwrap();
        q.enqueue("a").await.unwrap(); // deduplicated
        q.enqueue("b").await.unwrap();
        let vis = Duration::from_millis(200);
        let got = q.receive(10, Duration::ZERO, vis).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].receive_count, 1);
        // Invisible now: a long poll returns once the first becomes visible again.
        let t = Instant::now();
        let again = q.receive(1, Duration::from_secs(5), vis).await.unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].receive_count, 2);
        // The first receipt of that message is stale: deleting with it does nothing.
        q.delete(&got[0].receipt).await.unwrap();
        q.delete(&got[1].receipt).await.unwrap();
        assert_eq!(again[0].id, got[0].id);
        assert_eq!(
            q.state.lock().unwrap().messages.len(),
            1,
            "b deleted, a kept"
        );
        q.dead_letter(
            &again[0],
            &DeadLetter {
                job_id: Some("a".into()),
                reason: "attempts".into(),
                error: "x".into(),
                receive_count: 2,
                message: again[0].body.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(q.dead_letters(10).await.unwrap().len(), 1);
        // A wake-up: an enqueue ends a long poll at once.
        let q = std::sync::Arc::new(EmbeddedQueue::new());
        let q2 = std::sync::Arc::clone(&q);
        let t = Instant::now();
        let h = tokio::spawn(async move { q2.receive(1, Duration::from_secs(10), vis).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        q.enqueue("c").await.unwrap();
        assert_eq!(h.await.unwrap().unwrap().len(), 1);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
