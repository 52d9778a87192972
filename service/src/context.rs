//! What the API and the workers share.
use std::{path::PathBuf, sync::Arc, time::Duration};

use codeseal_signer::SigningIdentity;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use crate::{
    auth::ApiKeys,
    metrics::Metrics,
    queue::{scan::ScanQueue, JobQueue},
    ratelimit::TokenBucket,
    store::{local::LocalStore, JobStore, ObjectStore},
};

/// Limits and policies.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Largest upload.
    pub max_size: u64,
    /// Multipart part size (the last part may be smaller).
    pub part_size: u64,
    /// How long a worker holds a job before another may take it.
    pub lease: Duration,
    /// Claims per job before it is failed.
    pub max_attempts: u32,
    /// Retries of a transient step (download, sign, store) within one claim.
    pub step_retries: u32,
    /// How often workers look for claimable jobs and new uploads.
    pub poll_interval: Duration,
    /// Lifetime of presigned URLs.
    pub url_ttl: Duration,
    /// Whether `POST /sign` is served (to admin keys only). Off by default.
    pub sign_route: bool,
    /// How long an upload may stay incomplete before it expires (embedded store).
    pub upload_ttl: Duration,
    /// Where workers put temp files.
    pub work_dir: PathBuf,
    /// The uploads bucket: notifications for other buckets are ignored (`None`: any).
    pub uploads_bucket: Option<String>,
    /// Optional RFC 3161 time-stamp URL.
    pub timestamp_url: Option<String>,
    /// How long in-flight jobs may run after a shutdown request before they are released.
    pub shutdown_grace: Duration,
    /// Test-only fault injection: sleep this long after each worker step.
    pub step_delay: Duration,
    /// Test-only fault injection: sleep this long right before each key call of a job.
    pub key_delay: Duration,
    /// Receives of one queue message before it goes to the dead-letter queue (its job
    /// failed with the reason).
    pub max_receives: u32,
    /// How long a worker's receive waits for a message (long poll, at most 20 s on SQS).
    pub receive_wait: Duration,
    /// Per caller (API key): jobs queued or running at once (0: no limit).
    pub caller_max_in_flight: u64,
    /// Per caller (API key): bytes of uploads started per UTC day (0: no limit).
    pub caller_max_bytes_per_day: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_size: 2 << 30,
            part_size: 16 << 20,
            lease: Duration::from_secs(60),
            max_attempts: 3,
            step_retries: 3,
            poll_interval: Duration::from_secs(2),
            url_ttl: Duration::from_secs(3600),
            sign_route: false,
            upload_ttl: Duration::from_secs(24 * 3600),
            work_dir: std::env::temp_dir(),
            uploads_bucket: None,
            timestamp_url: None,
            shutdown_grace: Duration::from_secs(30),
            step_delay: Duration::ZERO,
            key_delay: Duration::ZERO,
            max_receives: 5,
            receive_wait: Duration::from_secs(20),
            caller_max_in_flight: 0,
            caller_max_bytes_per_day: 0,
        }
    }
}

/// The signing key, its chain, and what the worker verifies against.
pub struct Signer {
    /// Key + chain (checked to match at construction).
    pub identity: Arc<SigningIdentity>,
    /// The verify step's verifier (anchors, trust-store rules, deny lists, revocation).
    pub verifier: Arc<codeseal_authenticode::Verifier>,
    /// The key as shown in logs and audit records (secrets masked).
    pub key_label: String,
    /// SHA-256 of the leaf certificate, hex.
    pub cert_sha256: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key", &self.key_label)
            .field("cert_sha256", &self.cert_sha256)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Builds it, verifying signed output against the anchors `trust` (empty: integrity
    /// only); `key_label` must not contain secrets (use `codeseal_keys::redact_uri`).
    pub fn new(
        identity: SigningIdentity,
        trust: Vec<Certificate>,
        key_label: String,
    ) -> Result<Self, der::Error> {
        // `Verifier::new` fails only on an empty list: no anchors, integrity only.
        let verifier = codeseal_authenticode::Verifier::new(trust)
            .unwrap_or_else(|_| codeseal_authenticode::Verifier::integrity_only());
        Self::with_verifier(identity, verifier, key_label)
    }

    /// Builds it, verifying signed output with `verifier` (trust stores, deny lists,
    /// revocation); `key_label` must not contain secrets.
    pub fn with_verifier(
        identity: SigningIdentity,
        verifier: codeseal_authenticode::Verifier,
        key_label: String,
    ) -> Result<Self, der::Error> {
        use der::Encode;
        let cert_sha256 = hex::encode(Sha256::digest(identity.leaf().to_der()?));
        Ok(Self {
            identity: Arc::new(identity),
            verifier: Arc::new(verifier),
            key_label,
            cert_sha256,
        })
    }
}

/// Shared state.
pub struct Ctx {
    /// Uploads and results.
    pub objects: Arc<dyn ObjectStore>,
    /// The embedded object store, when in use (serves presigned URLs).
    pub local: Option<Arc<LocalStore>>,
    /// Jobs.
    pub jobs: Arc<dyn JobStore>,
    /// The key.
    pub signer: Signer,
    /// Accepted API keys.
    pub api_keys: ApiKeys,
    /// Limits.
    pub settings: Settings,
    /// Metrics.
    pub metrics: Metrics,
    /// Where workers learn of jobs (SQS, the embedded queue, or table polling).
    pub queue: Arc<dyn JobQueue>,
    /// The client-side rate limit of key calls (KMS Sign quota), when configured.
    pub key_rate: Option<Arc<TokenBucket>>,
}

impl Ctx {
    /// The state of workers embedded in another program: your object and job stores, the
    /// key, and the limits. No HTTP API is served from it (no API keys, no embedded store's
    /// presigned URLs); metrics start at zero. Workers find jobs by polling `jobs` (set
    /// [`Ctx::queue`] to an SQS or embedded queue for the queue-driven mode). Hand it to
    /// [`crate::worker::run_workers`] or [`crate::worker::process`].
    pub fn for_workers(
        objects: Arc<dyn ObjectStore>,
        jobs: Arc<dyn JobStore>,
        signer: Signer,
        settings: Settings,
    ) -> Self {
        let queue = Arc::new(ScanQueue::new(Arc::clone(&jobs), settings.poll_interval));
        Self {
            objects,
            local: None,
            jobs,
            signer,
            api_keys: ApiKeys::default(),
            settings,
            metrics: Metrics::default(),
            queue,
            key_rate: None,
        }
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("objects", &self.objects.describe())
            .field("jobs", &self.jobs.describe())
            .field("queue", &self.queue.describe())
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}
