//! The job record: one uploaded file on its way to a signed result.
use serde::{Deserialize, Serialize};

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Created by `POST /uploads`; the client is uploading parts.
    Uploading,
    /// The upload is complete; waiting for a worker.
    Queued,
    /// A worker holds the lease and is downloading and signing.
    Signing,
    /// A worker holds the lease and is verifying and storing the result.
    Verifying,
    /// The signed file is in the results store.
    Done,
    /// Given up; `error` says why. The upload is kept.
    Failed,
}

impl JobStatus {
    /// The lower-case name used in the API and the job tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploading => "uploading",
            Self::Queued => "queued",
            Self::Signing => "signing",
            Self::Verifying => "verifying",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "uploading" => Self::Uploading,
            "queued" => Self::Queued,
            "signing" => Self::Signing,
            "verifying" => Self::Verifying,
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// Whether a worker holds (or held) a lease in this state.
    pub fn is_leased(self) -> bool {
        matches!(self, Self::Signing | Self::Verifying)
    }

    /// Done or failed.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// The outcome recorded when a job is done.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// Key of the signed file in the results store.
    pub result_key: String,
    /// SHA-256 of the signed file, hex.
    pub signed_sha256: String,
    /// Size of the signed file.
    pub signed_size: u64,
    /// SHA-256 of the uploaded (unsigned) file, hex.
    pub input_sha256: String,
    /// The Authenticode digest that was signed, hex.
    pub authenticode_digest: String,
    /// The verify report summary (JSON).
    pub verify: String,
}

/// One job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Random 128-bit id, hex (or derived from the object key for uploads made without the API).
    pub job_id: String,
    /// Where it is.
    pub status: JobStatus,
    /// The client's file name (validated).
    pub file_name: String,
    /// Declared size (checked against the object).
    pub size: u64,
    /// Who created it (API key name, or `event` for objects that arrived without the API).
    pub caller: String,
    /// Key of the upload in the uploads store.
    pub upload_key: String,
    /// The multipart upload id while uploading.
    pub multipart_id: Option<String>,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Last change, ms since the Unix epoch.
    pub updated_ms: u64,
    /// The lease holder's claim token while signing/verifying.
    pub owner: Option<String>,
    /// Lease expiry, ms since the Unix epoch (0 when not leased).
    pub lease_until_ms: u64,
    /// How many times a worker claimed the job.
    pub attempts: u32,
    /// Why it failed (or the last transient error).
    pub error: Option<String>,
    /// A short machine-readable reason (`not_pe`, `truncated`, `signing`, ...).
    pub error_reason: Option<String>,
    /// Set when done.
    pub result: Option<JobResult>,
}

impl Job {
    /// A new job at `now_ms`, not yet claimed.
    pub fn new(
        job_id: String,
        status: JobStatus,
        file_name: String,
        size: u64,
        caller: String,
        upload_key: String,
        now_ms: u64,
    ) -> Self {
        Self {
            job_id,
            status,
            file_name,
            size,
            caller,
            upload_key,
            multipart_id: None,
            created_ms: now_ms,
            updated_ms: now_ms,
            owner: None,
            lease_until_ms: 0,
            attempts: 0,
            error: None,
            error_reason: None,
            result: None,
        }
    }

    /// Whether a worker may claim it at `now_ms`.
    pub fn claimable(&self, now_ms: u64) -> bool {
        self.status == JobStatus::Queued
            || (self.status.is_leased() && self.lease_until_ms < now_ms)
    }
}

/// What a worker writes when it stops working on a job.
#[derive(Clone, Debug)]
pub enum Finish {
    /// Signed, verified and stored.
    Done(JobResult),
    /// Given up.
    Failed {
        /// Short reason code.
        reason: String,
        /// Human-readable text.
        error: String,
    },
    /// Put back in the queue (shutdown, or a transient error with attempts left).
    Release {
        /// The transient error, if any.
        error: Option<String>,
    },
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RFC 3339 text for a time in ms since the epoch.
pub fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
