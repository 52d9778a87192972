//! The embedded job table: one redb file, one table `jobs` (job id → JSON). Every change is a
//! read-check-write inside one write transaction, so claims are atomic within the process
//! that owns the file (redb locks it against other processes).
use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};

use super::{JobStore, StoreError};
use crate::job::{FailureReason, Finish, Job, JobStatus};

const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
/// Per-caller counters: `inflight/NAME` and `bytes/DAY/NAME`.
const CALLERS: TableDefinition<&str, u64> = TableDefinition::new("callers");

/// A redb-backed [`JobStore`].
#[derive(Clone)]
pub struct RedbJobs {
    db: Arc<Database>,
    path: String,
}

impl std::fmt::Debug for RedbJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbJobs")
            .field("path", &self.path)
            .finish()
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("job table: {e}"))
}

fn decode(bytes: &[u8]) -> Result<Job, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| backend(format!("corrupt job record: {e}")))
}

impl RedbJobs {
    /// Opens (or creates) the table file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(JOBS).map_err(backend)?;
        txn.open_table(CALLERS).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(Self {
            db: Arc::new(db),
            path: path.display().to_string(),
        })
    }

    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(backend)?
    }

    /// Applies `f` to job `id` in one write transaction; `f` returns `Ok(None)` to leave the
    /// job unchanged, `Ok(Some(r))` to store the (changed) job and return `r`.
    async fn modify<R: Send + 'static>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Job) -> Result<Option<R>, StoreError> + Send + 'static,
    ) -> Result<Option<R>, StoreError> {
        let id = id.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            let out = {
                let mut table = txn.open_table(JOBS).map_err(backend)?;
                let current = match table.get(id.as_str()).map_err(backend)? {
                    Some(v) => decode(v.value())?,
                    None => return Err(StoreError::NotFound(format!("job {id}"))),
                };
                let mut job = current.clone();
                match f(&mut job)? {
                    None => None,
                    Some(r) => {
                        let bytes = serde_json::to_vec(&job).map_err(backend)?;
                        table
                            .insert(id.as_str(), bytes.as_slice())
                            .map_err(backend)?;
                        Some(r)
                    }
                }
            };
            if out.is_some() {
                txn.commit().map_err(backend)?;
            } else {
                txn.abort().map_err(backend)?;
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl JobStore for RedbJobs {
    async fn create(&self, job: &Job) -> Result<bool, StoreError> {
        let job = job.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(JOBS).map_err(backend)?;
                if table.get(job.job_id.as_str()).map_err(backend)?.is_some() {
                    return Ok(false);
                }
                let bytes = serde_json::to_vec(&job).map_err(backend)?;
                table
                    .insert(job.job_id.as_str(), bytes.as_slice())
                    .map_err(backend)?;
            }
            txn.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let id = id.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(JOBS).map_err(backend)?;
            match table.get(id.as_str()).map_err(backend)? {
                Some(v) => Ok(Some(decode(v.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn mark_queued(&self, id: &str, now_ms: u64) -> Result<(Job, bool), StoreError> {
        let r = self
            .modify(id, move |job| {
                if job.status == JobStatus::Uploading {
                    job.status = JobStatus::Queued;
                    job.multipart_id = None;
                    job.updated_ms = now_ms;
                    Ok(Some(job.clone()))
                } else {
                    Ok(None)
                }
            })
            .await?;
        match r {
            Some(j) => Ok((j, true)),
            None => self
                .get(id)
                .await?
                .map(|j| (j, false))
                .ok_or_else(|| StoreError::NotFound(format!("job {id}"))),
        }
    }

    async fn claim(
        &self,
        id: &str,
        token: &str,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Option<Job>, StoreError> {
        let token = token.to_string();
        let r = self
            .modify(id, move |job| {
                if !job.claimable(now_ms) {
                    return Ok(None);
                }
                job.status = JobStatus::Signing;
                job.owner = Some(token);
                job.lease_until_ms = lease_until_ms;
                job.attempts = job.attempts.saturating_add(1);
                job.updated_ms = now_ms;
                Ok(Some(job.clone()))
            })
            .await;
        match r {
            Err(StoreError::NotFound(_)) => Ok(None),
            other => other,
        }
    }

    async fn advance(
        &self,
        id: &str,
        token: &str,
        status: JobStatus,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<bool, StoreError> {
        let token = token.to_string();
        Ok(self
            .modify(id, move |job| {
                if job.owner.as_deref() != Some(token.as_str()) || !job.status.is_leased() {
                    return Ok(None);
                }
                job.status = status;
                job.lease_until_ms = lease_until_ms;
                job.updated_ms = now_ms;
                Ok(Some(()))
            })
            .await?
            .is_some())
    }

    async fn finish(
        &self,
        id: &str,
        token: &str,
        finish: &Finish,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let token = token.to_string();
        let finish = finish.clone();
        Ok(self
            .modify(id, move |job| {
                if job.owner.as_deref() != Some(token.as_str()) || !job.status.is_leased() {
                    return Ok(None);
                }
                apply_finish(job, finish, now_ms);
                Ok(Some(()))
            })
            .await?
            .is_some())
    }

    async fn claimable(&self, now_ms: u64, limit: usize) -> Result<Vec<String>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(JOBS).map_err(backend)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(backend)? {
                let (k, v) = row.map_err(backend)?;
                if decode(v.value())?.claimable(now_ms) {
                    out.push(k.value().to_string());
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn stale_uploads(&self, before_ms: u64, limit: usize) -> Result<Vec<Job>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(JOBS).map_err(backend)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(backend)? {
                if out.len() >= limit {
                    break;
                }
                let (_, v) = row.map_err(backend)?;
                let job = decode(v.value())?;
                if job.status == JobStatus::Uploading && job.created_ms < before_ms {
                    out.push(job);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn fail_upload(
        &self,
        id: &str,
        reason: FailureReason,
        error: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let error = error.to_string();
        let r = self
            .modify(id, move |job| {
                if job.status != JobStatus::Uploading {
                    return Ok(None);
                }
                job.status = JobStatus::Failed;
                job.error = Some(error);
                job.error_reason = Some(reason);
                job.updated_ms = now_ms;
                Ok(Some(()))
            })
            .await;
        match r {
            Ok(r) => Ok(r.is_some()),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn add_caller_bytes(
        &self,
        caller: &str,
        day: u64,
        size: u64,
        max: u64,
    ) -> Result<bool, StoreError> {
        let key = format!("bytes/{day}/{caller}");
        self.counter(key, move |v| v.checked_add(size).filter(|n| *n <= max))
            .await
    }

    async fn caller_in_flight(&self, caller: &str) -> Result<u64, StoreError> {
        let key = format!("inflight/{caller}");
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(CALLERS).map_err(backend)?;
            Ok(table
                .get(key.as_str())
                .map_err(backend)?
                .map(|v| v.value())
                .unwrap_or(0))
        })
        .await
    }

    async fn start_in_flight(&self, caller: &str, max: u64) -> Result<bool, StoreError> {
        let key = format!("inflight/{caller}");
        self.counter(key, move |v| (v < max).then_some(v + 1)).await
    }

    async fn release_in_flight(&self, caller: &str) -> Result<(), StoreError> {
        let key = format!("inflight/{caller}");
        self.counter(key, |v| v.checked_sub(1)).await.map(|_| ())
    }

    fn describe(&self) -> String {
        format!("redb:{}", self.path)
    }
}

impl RedbJobs {
    /// Sets counter `key` to `f(current)` in one write transaction when `f` gives a value;
    /// returns whether it did.
    async fn counter(
        &self,
        key: String,
        f: impl FnOnce(u64) -> Option<u64> + Send + 'static,
    ) -> Result<bool, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend)?;
            let changed = {
                let mut table = txn.open_table(CALLERS).map_err(backend)?;
                let cur = table
                    .get(key.as_str())
                    .map_err(backend)?
                    .map(|v| v.value())
                    .unwrap_or(0);
                match f(cur) {
                    Some(n) => {
                        table.insert(key.as_str(), n).map_err(backend)?;
                        true
                    }
                    None => false,
                }
            };
            if changed {
                txn.commit().map_err(backend)?;
            } else {
                txn.abort().map_err(backend)?;
            }
            Ok(changed)
        })
        .await
    }
}

/// The state change of a [`Finish`], shared by the job stores.
pub(crate) fn apply_finish(job: &mut Job, finish: Finish, now_ms: u64) {
    job.owner = None;
    job.lease_until_ms = 0;
    job.updated_ms = now_ms;
    match finish {
        Finish::Done(result) => {
            job.status = JobStatus::Done;
            job.error = None;
            job.error_reason = None;
            job.result = Some(result);
        }
        Finish::Failed { reason, error } => {
            job.status = JobStatus::Failed;
            job.error = Some(error);
            job.error_reason = Some(reason);
        }
        Finish::Release { error } => {
            job.status = JobStatus::Queued;
            job.error = error;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, status: JobStatus, created_ms: u64) -> Job {
        Job::new(
            id.into(),
            status,
            "a.exe".into(),
            1,
            "t".into(),
            format!("uploads/{id}/a.exe"),
            created_ms,
        )
    }

    /// Two completions of the same upload racing: each counts the caller's job in flight
    /// (as the API does before queueing), only one of them queues the job, and the other
    /// gives its count back, so the caller has one job in flight, not two.
    #[tokio::test]
    async fn racing_completions_queue_once_and_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let t = RedbJobs::open(&dir.path().join("j.redb")).unwrap();
        t.create(&job("j1", JobStatus::Uploading, 10))
            .await
            .unwrap();
        let complete = || async {
            assert!(t.start_in_flight("t", 10).await.unwrap());
            let (j, queued_now) = t.mark_queued("j1", 20).await.unwrap();
            if !queued_now {
                t.release_in_flight("t").await.unwrap();
            }
            (j.status, queued_now)
        };
        let (a, b) = tokio::join!(complete(), complete());
        assert_eq!((a.0, b.0), (JobStatus::Queued, JobStatus::Queued));
        assert!(a.1 ^ b.1, "exactly one call queues the job: {a:?} {b:?}");
        assert_eq!(t.caller_in_flight("t").await.unwrap(), 1);
        // Later completions change nothing.
        assert!(!t.mark_queued("j1", 30).await.unwrap().1);
    }

    #[tokio::test]
    async fn stale_uploads_are_bounded_and_only_uploading() {
        let dir = tempfile::tempdir().unwrap();
        let t = RedbJobs::open(&dir.path().join("j.redb")).unwrap();
        for i in 0..5 {
            t.create(&job(&format!("old{i}"), JobStatus::Uploading, 10))
                .await
                .unwrap();
        }
        t.create(&job("new", JobStatus::Uploading, 1000))
            .await
            .unwrap();
        t.create(&job("queued", JobStatus::Queued, 10))
            .await
            .unwrap();
        assert_eq!(t.stale_uploads(500, 2).await.unwrap().len(), 2);
        let all = t.stale_uploads(500, 100).await.unwrap();
        assert_eq!(all.len(), 5);
        assert!(all.iter().all(|j| j.job_id.starts_with("old")));
        assert!(t
            .fail_upload("old0", FailureReason::Expired, "expired", 600)
            .await
            .unwrap());
        // Only once, and never for a job past uploading or a missing one.
        assert!(!t
            .fail_upload("old0", FailureReason::Expired, "expired", 600)
            .await
            .unwrap());
        assert!(!t
            .fail_upload("queued", FailureReason::Expired, "expired", 600)
            .await
            .unwrap());
        assert!(!t
            .fail_upload("missing", FailureReason::Expired, "expired", 600)
            .await
            .unwrap());
        let j = t.get("old0").await.unwrap().unwrap();
        assert_eq!(
            (j.status, j.error_reason),
            (JobStatus::Failed, Some(FailureReason::Expired))
        );
        assert_eq!(t.stale_uploads(500, 100).await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn caller_counters_hold_their_limits() {
        let dir = tempfile::tempdir().unwrap();
        let t = RedbJobs::open(&dir.path().join("j.redb")).unwrap();
        // In flight: up to the limit, per caller, never below zero.
        assert!(t.start_in_flight("a", 2).await.unwrap());
        assert!(t.start_in_flight("a", 2).await.unwrap());
        assert!(!t.start_in_flight("a", 2).await.unwrap());
        assert!(t.start_in_flight("b", 2).await.unwrap());
        assert_eq!(t.caller_in_flight("a").await.unwrap(), 2);
        t.release_in_flight("a").await.unwrap();
        assert!(t.start_in_flight("a", 2).await.unwrap());
        for _ in 0..5 {
            t.release_in_flight("b").await.unwrap();
        }
        assert_eq!(t.caller_in_flight("b").await.unwrap(), 0);
        // Bytes per day: the sum stays within the limit; another day starts at zero.
        assert!(t.add_caller_bytes("a", 7, 60, 100).await.unwrap());
        assert!(!t.add_caller_bytes("a", 7, 41, 100).await.unwrap());
        assert!(t.add_caller_bytes("a", 7, 40, 100).await.unwrap());
        assert!(!t.add_caller_bytes("a", 7, 1, 100).await.unwrap());
        assert!(t.add_caller_bytes("a", 8, 100, 100).await.unwrap());
        assert!(!t.add_caller_bytes("b", 7, u64::MAX, 100).await.unwrap());
    }
}
