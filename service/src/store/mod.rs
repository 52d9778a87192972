//! Where uploads, results and jobs live: S3 + DynamoDB in production, local directories and
//! an embedded redb table on one machine. The worker and the API only see these traits.
use std::{path::Path, time::Duration};

use async_trait::async_trait;

use crate::job::{FailureReason, Finish, Job, JobStatus};

#[cfg(feature = "aws")]
pub mod dynamo;
pub mod local;
pub mod redb_jobs;
#[cfg(feature = "aws")]
pub mod s3;

/// A store operation failed.
///
/// Only [`Invalid`](Self::Invalid)'s `message` is meant for clients (it is written by this
/// crate, never copied from a backend). Every other text here, and `Invalid`'s `detail`, may
/// carry backend or SDK text: it is logged, never sent to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object or job does not exist (the text is a detail for the logs).
    #[error("not found: {0}")]
    NotFound(String),
    /// A conditional write lost (someone else changed the item first).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request was refused (bad part list, ETag mismatch, size over the limit...).
    #[error("{message}{}", detail_suffix(detail))]
    Invalid {
        /// What to tell the client, in our words.
        message: String,
        /// The backend's text, for the logs.
        detail: Option<String>,
    },
    /// The backend failed (network, 5xx, missing bucket...). May be retried.
    #[error("{0}")]
    Backend(String),
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

impl StoreError {
    /// A refusal whose text is ours and may be shown to clients.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            detail: None,
        }
    }

    /// A refusal with our text for clients and the backend's text for the logs.
    pub fn invalid_with(message: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            detail: Some(detail.into()),
        }
    }
}

/// A part the client uploaded.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct PartEtag {
    /// 1-based part number.
    pub part_number: u32,
    /// The ETag the store returned for it.
    pub etag: String,
}

/// What the results store said about a stored object.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The SHA-256 checksum the store recorded, base64 (as S3's ChecksumSHA256).
    pub checksum_sha256: String,
}

/// Uploads and signed results.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Starts a multipart upload of `key` in the uploads store; returns its upload id.
    async fn create_multipart(&self, key: &str) -> Result<String, StoreError>;
    /// A URL the client PUTs part `part` to, valid for `ttl`.
    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        ttl: Duration,
    ) -> Result<String, StoreError>;
    /// Assembles the parts into the object `key`.
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartEtag],
    ) -> Result<(), StoreError>;
    /// Size of the upload `key`, or `None` when it does not exist.
    async fn upload_size(&self, key: &str) -> Result<Option<u64>, StoreError>;
    /// Copies the upload `key` into the local file `dest` (at most `max` bytes); returns its
    /// length and SHA-256, computed while copying.
    async fn download_upload(
        &self,
        key: &str,
        dest: &Path,
        max: u64,
    ) -> Result<(u64, [u8; 32]), StoreError>;
    /// Stores the local file `src` as `key` in the results store, with its SHA-256.
    async fn put_result(
        &self,
        key: &str,
        src: &Path,
        sha256: &[u8; 32],
    ) -> Result<Stored, StoreError>;
    /// A URL to download the result `key` as `file_name`, valid for `ttl`.
    async fn presign_result(
        &self,
        key: &str,
        file_name: &str,
        ttl: Duration,
    ) -> Result<String, StoreError>;
    /// Deletes the result `key` (a result stored by a worker that lost its lease).
    async fn delete_result(&self, key: &str) -> Result<(), StoreError>;
    /// Deletes the upload `key`.
    async fn delete_upload(&self, key: &str) -> Result<(), StoreError>;
    /// Up to `limit` upload keys (for the poll fallback).
    async fn list_uploads(&self, limit: usize) -> Result<Vec<String>, StoreError>;
    /// A short description for logs (`s3://bucket`, `dir:/path`).
    fn describe(&self) -> String;
}

/// The job table.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Creates `job` unless a job with its id exists; returns whether it was created.
    async fn create(&self, job: &Job) -> Result<bool, StoreError>;
    /// The job `id`.
    async fn get(&self, id: &str) -> Result<Option<Job>, StoreError>;
    /// `uploading` → `queued` (idempotent when already past `uploading`): the job, and
    /// whether this call queued it (`false`: it was already past `uploading`, e.g. queued by
    /// a concurrent completion of the same upload).
    async fn mark_queued(&self, id: &str, now_ms: u64) -> Result<(Job, bool), StoreError>;
    /// Claims the job for `token` until `lease_until_ms` if it is claimable at `now_ms`;
    /// `None` when someone else has it or it is finished.
    async fn claim(
        &self,
        id: &str,
        token: &str,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Option<Job>, StoreError>;
    /// Moves a job held by `token` to `status` and extends the lease; `false` when the lease
    /// was lost.
    async fn advance(
        &self,
        id: &str,
        token: &str,
        status: JobStatus,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<bool, StoreError>;
    /// Ends `token`'s work on the job; `false` when the lease was lost (nothing written).
    async fn finish(
        &self,
        id: &str,
        token: &str,
        finish: &Finish,
        now_ms: u64,
    ) -> Result<bool, StoreError>;
    /// Ids of jobs claimable at `now_ms` (queued, or leased with an expired lease), at most
    /// `limit`.
    async fn claimable(&self, now_ms: u64, limit: usize) -> Result<Vec<String>, StoreError>;
    /// Jobs still `uploading` that were created before `before_ms`, at most `limit` (the
    /// embedded store's expiry of abandoned uploads). Stores whose abandoned multipart
    /// uploads are cleaned up by other means (an S3 lifecycle rule) return none.
    async fn stale_uploads(&self, before_ms: u64, limit: usize) -> Result<Vec<Job>, StoreError> {
        let _ = (before_ms, limit);
        Ok(Vec::new())
    }
    /// `uploading` → `failed` with `reason` and `error`; `false` when the job is no longer
    /// uploading (nothing written).
    async fn fail_upload(
        &self,
        id: &str,
        reason: FailureReason,
        error: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let _ = (id, reason, error, now_ms);
        Ok(false)
    }
    /// Adds `size` to `caller`'s bytes of UTC day `day` unless that would pass `max`;
    /// returns whether it was added. Stores without limits accept everything.
    async fn add_caller_bytes(
        &self,
        caller: &str,
        day: u64,
        size: u64,
        max: u64,
    ) -> Result<bool, StoreError> {
        let _ = (caller, day, size, max);
        Ok(true)
    }
    /// `caller`'s jobs queued or running (the count [`start_in_flight`](Self::start_in_flight)
    /// raises and [`release_in_flight`](Self::release_in_flight) lowers).
    async fn caller_in_flight(&self, caller: &str) -> Result<u64, StoreError> {
        let _ = caller;
        Ok(0)
    }
    /// Raises `caller`'s in-flight count unless it is at `max` already; returns whether it
    /// was raised.
    async fn start_in_flight(&self, caller: &str, max: u64) -> Result<bool, StoreError> {
        let _ = (caller, max);
        Ok(true)
    }
    /// Lowers `caller`'s in-flight count (not below zero).
    async fn release_in_flight(&self, caller: &str) -> Result<(), StoreError> {
        let _ = caller;
        Ok(())
    }
    /// Requests this store made so far (for the logs and the load figures).
    fn request_counts(&self) -> RequestCounts {
        RequestCounts::default()
    }
    /// A short description for logs.
    fn describe(&self) -> String;
}

/// Requests a job store made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Item reads (DynamoDB GetItem).
    pub reads: u64,
    /// Table scans (DynamoDB Scan pages).
    pub scans: u64,
    /// Writes (PutItem, UpdateItem; conditional ones included).
    pub writes: u64,
}
