//! The worker: claim a job (conditional write with a lease), download the upload, sign it,
//! verify the result, store it with its SHA-256, record the outcome, delete the upload.
//!
//! A failure leaves the upload in place and the job `failed` with a reason; transient steps
//! (download, key call, store) are retried a few times within a claim, and a job whose worker
//! vanished is taken up again when its lease expires (at most `max_attempts` claims).
use std::{
    collections::HashMap,
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU8, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use codeseal_authenticode::{
    sign::PreparedSigning, timestamp::TimestampOptions, verify::VerifyOptions, Error as AcError,
    OpusInfo, SignOptions,
};
use codeseal_signer::KeySigner;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::{
    context::Ctx,
    job::{now_ms, Finish, Job, JobResult, JobStatus},
    store::StoreError,
};

/// How a step failed.
#[derive(Debug, Clone)]
pub struct StepError {
    /// Short reason code (`not_pe`, `truncated`, `signing`, `verify`, `results_store`, ...).
    pub reason: &'static str,
    /// Text for the job record.
    pub message: String,
    /// Worth retrying.
    pub transient: bool,
}

impl StepError {
    fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            transient: false,
        }
    }
    fn transient(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            transient: true,
        }
    }
    fn store(reason: &'static str, e: StoreError) -> Self {
        match e {
            StoreError::Backend(m) => Self::transient(reason, m),
            other => Self::permanent(reason, other.to_string()),
        }
    }
}

fn classify_sign(e: AcError) -> StepError {
    let msg = e.to_string();
    match e {
        AcError::MalformedPe { .. } => StepError::permanent("not_pe", msg),
        AcError::Truncated { .. } => StepError::permanent("truncated", msg),
        AcError::CertTable(_) => StepError::permanent("malformed_pe", msg),
        AcError::AlreadySigned => StepError::permanent("already_signed", msg),
        AcError::Sign(_) => StepError::transient("signing", format!("signing failed: {msg}")),
        AcError::Timestamp(_) => StepError::transient("timestamp", msg),
        AcError::Io { .. } => StepError::transient("io", msg),
        _ => StepError::permanent("signing", msg),
    }
}

/// What happened to one job id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Someone else has it, or it is finished.
    NotClaimed,
    /// Signed and stored.
    Done,
    /// Failed with this reason.
    Failed(String),
    /// Put back (shutdown) or left for its lease to expire (transient failure, lease lost).
    Released,
}

fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

async fn blocking<T: Send + 'static>(
    reason: &'static str,
    f: impl FnOnce() -> Result<T, StepError> + Send + 'static,
) -> Result<T, StepError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StepError::transient(reason, format!("worker thread: {e}")))?
}

const STATUS_SIGNING: u8 = 0;
const STATUS_VERIFYING: u8 = 1;

/// One claim of one job.
struct Claim {
    ctx: Arc<Ctx>,
    job: Job,
    token: String,
    status: Arc<AtomicU8>,
    lost: Arc<AtomicBool>,
}

impl Claim {
    fn check_lease(&self) -> Result<(), StepError> {
        if self.lost.load(Ordering::SeqCst) {
            Err(StepError::transient("lease_lost", "the lease was lost"))
        } else {
            Ok(())
        }
    }

    async fn pause(&self) {
        let d = self.ctx.settings.step_delay;
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    async fn retry<T, F, Fut>(&self, mut f: F) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StepError>>,
    {
        let tries = self.ctx.settings.step_retries.max(1);
        let mut wait = Duration::from_millis(250);
        let mut last = None;
        for i in 0..tries {
            self.check_lease()?;
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if e.transient && i + 1 < tries => {
                    warn!(job_id = %self.job.job_id, reason = e.reason, error = %e.message, "transient failure, retrying");
                    last = Some(e);
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| StepError::transient("retry", "no attempt made")))
    }

    async fn advance(&self, status: JobStatus) -> Result<(), StepError> {
        self.status.store(
            if status == JobStatus::Verifying {
                STATUS_VERIFYING
            } else {
                STATUS_SIGNING
            },
            Ordering::SeqCst,
        );
        let now = now_ms();
        let lease = self.ctx.settings.lease.as_millis() as u64;
        match self
            .ctx
            .jobs
            .advance(&self.job.job_id, &self.token, status, now, now + lease)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.lost.store(true, Ordering::SeqCst);
                Err(StepError::transient("lease_lost", "the lease was lost"))
            }
            Err(e) => Err(StepError::store("job_store", e)),
        }
    }

    /// Download → sign → verify → store. Returns the result and the key of the stored object.
    async fn work(&self) -> Result<JobResult, StepError> {
        let ctx = &self.ctx;
        let job = &self.job;
        let tmp = tempfile::Builder::new()
            .prefix("codeseal-job-")
            .tempdir_in(&ctx.settings.work_dir)
            .map_err(|e| StepError::transient("io", format!("temp dir: {e}")))?;
        let input = tmp.path().join("input");
        let output = tmp.path().join("signed");

        // 1. Download.
        let max = ctx.settings.max_size;
        let (got, input_sha) = self
            .retry(|| async {
                ctx.objects
                    .download_upload(&job.upload_key, &input, max)
                    .await
                    .map_err(|e| match e {
                        StoreError::NotFound(m) => StepError::permanent("upload_missing", m),
                        StoreError::Invalid(m) => StepError::permanent("too_large", m),
                        other => StepError::store("download", other),
                    })
            })
            .await?;
        if got != job.size {
            return Err(StepError::permanent(
                "size_mismatch",
                format!("the upload has {got} bytes, {} were declared", job.size),
            ));
        }
        self.pause().await;

        // 2. Sign (one streaming pass + one key call), timing the key call.
        let opts = SignOptions {
            opus: OpusInfo {
                program_name: Some(job.file_name.clone()),
                url: None,
            },
            timestamp: ctx
                .settings
                .timestamp_url
                .as_ref()
                .map(|u| TimestampOptions {
                    urls: vec![u.clone()],
                    ..TimestampOptions::default()
                }),
            ..SignOptions::default()
        };
        let outcome = self
            .retry(|| {
                let (ctx, input, output, opts) =
                    (Arc::clone(ctx), input.clone(), output.clone(), opts.clone());
                async move {
                    let _ = std::fs::remove_file(&output);
                    blocking("signing", move || {
                        let identity = &ctx.signer.identity;
                        let prepared = PreparedSigning::prepare(identity, &input, &output, &opts)
                            .map_err(classify_sign)?;
                        let (digest, alg) = prepared.digest_to_sign();
                        let key: &dyn KeySigner = identity.key().as_ref();
                        let t = Instant::now();
                        let sig = key
                            .sign_digest_checked(alg, digest)
                            .map_err(|e| classify_sign(AcError::Sign(e)))?;
                        ctx.metrics.sign_duration.observe(t.elapsed().as_secs_f64());
                        prepared.finish(identity, &sig).map_err(classify_sign)
                    })
                    .await
                }
            })
            .await?;
        self.pause().await;

        // 3. Verify with our verifier, against the configured anchors.
        self.advance(JobStatus::Verifying).await?;
        let report = {
            let (out, trust) = (output.clone(), ctx.signer.trust.clone());
            blocking("verify", move || {
                let opts = VerifyOptions {
                    trust_anchors: trust,
                    ..VerifyOptions::default()
                };
                codeseal_authenticode::verify::verify_file_with(&out, &opts)
                    .map_err(|e| StepError::permanent("verify", e.to_string()))
            })
            .await?
        };
        if !report.valid {
            let why: Vec<String> = report
                .errors
                .iter()
                .chain(report.signatures.iter().flat_map(|s| s.errors.iter()))
                .map(ToString::to_string)
                .collect();
            return Err(StepError::permanent(
                "verify",
                format!("the signed file did not verify: {}", why.join("; ")),
            ));
        }
        let summary = serde_json::json!({
            "valid": report.valid,
            "signatures": report.signatures.iter().map(|s| serde_json::json!({
                "index": s.index,
                "digest_algorithm": s.digest_algorithm.to_string(),
                "signer": s.signer.as_ref().map(|c| c.subject.clone()),
                "chain_checked": s.chain.is_some(),
                "errors": s.errors,
                "warnings": s.warnings,
            })).collect::<Vec<_>>(),
            "warnings": report.warnings,
        });
        self.pause().await;

        // 4. Store with the locally computed SHA-256 (the store checks it).
        let signed_sha = {
            let p = output.clone();
            blocking("io", move || {
                sha256_file(&p).map_err(|e| StepError::transient("io", e.to_string()))
            })
            .await?
        };
        let result_key = format!("signed/{}/a{}/{}", job.job_id, job.attempts, job.file_name);
        self.retry(|| async {
            self.check_lease()?;
            ctx.objects
                .put_result(&result_key, &output, &signed_sha)
                .await
                .map_err(|e| StepError::store("results_store", e))
        })
        .await?;
        self.pause().await;
        Ok(JobResult {
            result_key,
            signed_sha256: hex::encode(signed_sha),
            signed_size: outcome.output_len,
            input_sha256: hex::encode(input_sha),
            authenticode_digest: hex::encode(&outcome.image_digest),
            verify: summary.to_string(),
        })
    }
}

/// Claims job `id` and works on it. `shutdown` cancels between steps (the job is released).
pub async fn process(
    ctx: &Arc<Ctx>,
    id: &str,
    worker_id: &str,
    shutdown: &CancellationToken,
) -> Outcome {
    let now = now_ms();
    let lease = ctx.settings.lease.as_millis() as u64;
    let mut rnd = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut rnd);
    let token = format!("{worker_id}/{}", hex::encode(rnd));
    let job = match ctx.jobs.claim(id, &token, now, now + lease).await {
        Ok(Some(j)) => j,
        Ok(None) => return Outcome::NotClaimed,
        Err(e) => {
            warn!(job_id = id, error = %e, "claim failed");
            return Outcome::NotClaimed;
        }
    };
    let span = tracing::info_span!("job", job_id = %job.job_id, attempt = job.attempts);
    async move {
        ctx.metrics.jobs_started.inc();
        ctx.metrics.in_flight.inc();
        let started = Instant::now();
        let outcome = run_claim(ctx, job, token, shutdown).await;
        ctx.metrics.in_flight.dec();
        ctx.metrics
            .job_duration
            .observe(started.elapsed().as_secs_f64());
        outcome
    }
    .instrument(span)
    .await
}

async fn run_claim(
    ctx: &Arc<Ctx>,
    job: Job,
    token: String,
    shutdown: &CancellationToken,
) -> Outcome {
    let id = job.job_id.clone();
    let finish = |f: Finish| {
        let (ctx, id, token) = (Arc::clone(ctx), id.clone(), token.clone());
        async move { ctx.jobs.finish(&id, &token, &f, now_ms()).await }
    };
    if job.attempts > ctx.settings.max_attempts {
        let f = Finish::Failed {
            reason: "attempts".into(),
            error: format!(
                "gave up after {} attempts; last error: {}",
                ctx.settings.max_attempts,
                job.error
                    .as_deref()
                    .unwrap_or("none recorded (a worker stopped mid-job)")
            ),
        };
        ctx.metrics.failed("attempts");
        let _ = finish(f).await;
        return Outcome::Failed("attempts".into());
    }
    info!(file = %job.file_name, size = job.size, "job claimed");
    let claim = Claim {
        ctx: Arc::clone(ctx),
        job,
        token: token.clone(),
        status: Arc::new(AtomicU8::new(STATUS_SIGNING)),
        lost: Arc::new(AtomicBool::new(false)),
    };
    // Heartbeat: extend the lease while working.
    let hb_stop = CancellationToken::new();
    let heartbeat = {
        let (ctx, id, token) = (Arc::clone(ctx), id.clone(), token.clone());
        let (status, lost, stop) = (
            Arc::clone(&claim.status),
            Arc::clone(&claim.lost),
            hb_stop.clone(),
        );
        tokio::spawn(async move {
            let every = (ctx.settings.lease / 3).max(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let st = if status.load(Ordering::SeqCst) == STATUS_VERIFYING {
                    JobStatus::Verifying
                } else {
                    JobStatus::Signing
                };
                let now = now_ms();
                let until = now + ctx.settings.lease.as_millis() as u64;
                if let Ok(false) = ctx.jobs.advance(&id, &token, st, now, until).await {
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        })
    };
    let result = tokio::select! {
        r = claim.work() => Some(r),
        _ = shutdown.cancelled() => None,
    };
    hb_stop.cancel();
    let _ = heartbeat.await;
    match result {
        None => {
            // Shutting down: hand the job back at once instead of waiting for the lease.
            let _ = finish(Finish::Release { error: None }).await;
            info!("job released (shutdown)");
            Outcome::Released
        }
        Some(Ok(result)) => {
            let result_key = result.result_key.clone();
            let audit = result.clone();
            match finish(Finish::Done(result)).await {
                Ok(true) => {
                    ctx.metrics.jobs_succeeded.inc();
                    info!(
                        target: "codeseal::audit",
                        event = "authenticode_signature",
                        job_id = %id,
                        caller = %claim.job.caller,
                        file_name = %claim.job.file_name,
                        key = %ctx.signer.key_label,
                        cert_sha256 = %ctx.signer.cert_sha256,
                        file_sha256 = %audit.input_sha256,
                        signed_sha256 = %audit.signed_sha256,
                        authenticode_digest = %audit.authenticode_digest,
                        "signed"
                    );
                    if let Err(e) = ctx.objects.delete_upload(&claim.job.upload_key).await {
                        warn!(error = %e, "the job is done but deleting the upload failed");
                    }
                    Outcome::Done
                }
                other => {
                    // Someone else holds the job now: remove our copy of the result.
                    warn!(result = ?other.map_err(|e| e.to_string()), "lease lost before recording the result");
                    let _ = ctx.objects.delete_result(&result_key).await;
                    Outcome::Released
                }
            }
        }
        Some(Err(e)) if e.reason == "lease_lost" => {
            warn!("lease lost; another worker has the job");
            Outcome::Released
        }
        Some(Err(e)) => {
            warn!(reason = e.reason, error = %e.message, "job failed");
            ctx.metrics.failed(e.reason);
            let _ = finish(Finish::Failed {
                reason: e.reason.to_string(),
                error: e.message.clone(),
            })
            .await;
            Outcome::Failed(e.reason.to_string())
        }
    }
}

/// Turns an object key into a job id: `uploads/<id>/<name>` of an existing job, or a new
/// queued job for an object that arrived without the API (id derived from the key, so a
/// repeated event finds the same job). `None` for keys outside `uploads/`.
pub async fn job_for_object(ctx: &Ctx, key: &str) -> Result<Option<String>, StoreError> {
    let Some(rest) = key.strip_prefix("uploads/") else {
        return Ok(None);
    };
    let Some((id_part, name)) = rest.split_once('/') else {
        return Ok(None);
    };
    if let Some(job) = ctx.jobs.get(id_part).await? {
        if job.upload_key != key {
            return Ok(None);
        }
        if job.status == JobStatus::Uploading {
            ctx.jobs.mark_queued(id_part, now_ms()).await?;
        }
        return Ok(Some(job.job_id));
    }
    let id = hex::encode(&Sha256::digest(format!("object:{key}").as_bytes())[..16]);
    if ctx.jobs.get(&id).await?.is_some() {
        return Ok(Some(id));
    }
    let Some(size) = ctx.objects.upload_size(key).await? else {
        return Ok(None);
    };
    let now = now_ms();
    let file_name = name.rsplit('/').next().unwrap_or(name).to_string();
    let job = Job::new(
        id.clone(),
        JobStatus::Queued,
        file_name,
        size,
        "event".into(),
        key.to_string(),
        now,
    );
    ctx.jobs.create(&job).await?;
    Ok(Some(id))
}

/// In-process workers: `n` jobs at a time, woken by completed uploads and by polling (queued
/// jobs, expired leases, and — every tenth poll — uploads that arrived without the API).
/// On `shutdown` they stop claiming, let in-flight jobs run for the grace period, then
/// release what is left.
pub async fn run_workers(ctx: Arc<Ctx>, n: usize, worker_id: String, shutdown: CancellationToken) {
    let permits = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
    let inflight: Arc<Mutex<HashMap<String, ()>>> = Arc::default();
    let hard_stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut polls: u64 = 0;
    info!(workers = n, worker_id = %worker_id, objects = %ctx.objects.describe(), jobs = %ctx.jobs.describe(), "workers started");
    'outer: loop {
        let ids = match ctx.jobs.claimable(now_ms(), 256).await {
            Ok(ids) => ids,
            Err(e) => {
                warn!(error = %e, "polling the job table failed");
                vec![]
            }
        };
        ctx.metrics.queue_depth.set(ids.len() as i64);
        if polls.is_multiple_of(10) {
            if let Ok(keys) = ctx.objects.list_uploads(256).await {
                for k in keys {
                    if let Err(e) = job_for_object(&ctx, &k).await {
                        warn!(key = %k, error = %e, "cannot make a job for an upload");
                    }
                }
            }
        }
        polls += 1;
        for id in ids {
            if inflight.lock().map(|m| m.contains_key(&id)).unwrap_or(true) {
                continue;
            }
            let permit = tokio::select! {
                p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break 'outer },
                _ = shutdown.cancelled() => break 'outer,
            };
            if let Ok(mut m) = inflight.lock() {
                m.insert(id.clone(), ());
            }
            let (ctx, wid, stop, inflight) = (
                Arc::clone(&ctx),
                worker_id.clone(),
                hard_stop.clone(),
                Arc::clone(&inflight),
            );
            tasks.spawn(async move {
                let _permit = permit;
                let out = process(&ctx, &id, &wid, &stop).await;
                if let Ok(mut m) = inflight.lock() {
                    m.remove(&id);
                }
                out
            });
        }
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ctx.wake.notified() => {}
            _ = tokio::time::sleep(ctx.settings.poll_interval) => {}
        }
    }
    let left = tasks.len();
    if left > 0 {
        info!(
            jobs = left,
            grace_s = ctx.settings.shutdown_grace.as_secs(),
            "shutdown: waiting for in-flight jobs"
        );
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(ctx.settings.shutdown_grace, drain)
            .await
            .is_err()
        {
            hard_stop.cancel();
            while tasks.join_next().await.is_some() {}
        }
    }
    info!("workers stopped");
}
