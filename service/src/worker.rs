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
    formats::Error as FormatError, sign::PreparedSigning, timestamp::TimestampOptions, AppxRefusal,
    Error as AcError, OpusInfo, SignOptions,
};
use codeseal_signer::{KeySigner, SignError};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use crate::{
    audit,
    context::Ctx,
    events,
    job::{
        check_file_name, now_ms, sanitize_file_name, FailureReason, Finish, Job, JobResult,
        JobStatus,
    },
    queue::{DeadLetter, JobQueue, Message},
    store::StoreError,
};

/// A failed step: the reason, our message for clients, and the detail for the logs.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Why.
    pub reason: FailureReason,
    /// Text for the job record (shown to clients): ours, never backend or SDK text.
    pub message: String,
    /// The underlying error's text, for the logs only.
    pub detail: String,
    /// Worth retrying.
    pub transient: bool,
}

/// Why a step stopped.
#[derive(Debug, Clone)]
pub enum StepError {
    /// Another worker holds the job now.
    LeaseLost,
    /// The job was released (shutdown): stop without touching the key or the stores.
    Released,
    /// The step failed.
    Failed(Failure),
}

impl StepError {
    /// A permanent failure whose message is `reason`'s.
    fn permanent(reason: FailureReason, detail: impl Into<String>) -> Self {
        Self::failed(reason, reason.message(), detail, false)
    }
    /// A transient failure whose message is `reason`'s.
    fn transient(reason: FailureReason, detail: impl Into<String>) -> Self {
        Self::failed(reason, reason.message(), detail, true)
    }
    /// A permanent failure with a message of ours about the client's input (shown as is).
    fn input(reason: FailureReason, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::failed(reason, message.clone(), message, false)
    }
    fn failed(
        reason: FailureReason,
        message: impl Into<String>,
        detail: impl Into<String>,
        transient: bool,
    ) -> Self {
        Self::Failed(Failure {
            reason,
            message: message.into(),
            detail: detail.into(),
            transient,
        })
    }
    /// A store error: backend failures may pass, the rest will not.
    fn store(reason: FailureReason, e: StoreError) -> Self {
        let transient = matches!(e, StoreError::Backend(_));
        Self::failed(reason, reason.message(), e.to_string(), transient)
    }
}

/// How a key failure is treated: its reason and whether it may pass. Decided by the error's
/// type (and, for KMS and PKCS#11, the typed service error or return value inside it).
pub fn classify_key_error(e: &SignError) -> (FailureReason, bool) {
    match e {
        SignError::KeyMismatch { .. }
        | SignError::BadSignatureFromKey { .. }
        | SignError::EmptyChain => (FailureReason::KeyMismatch, false),
        SignError::UnsupportedAlgorithm { .. }
        | SignError::DigestLength { .. }
        | SignError::UnsupportedKey(_) => (FailureReason::UnsupportedAlgorithm, false),
        SignError::Malformed { .. } => (FailureReason::Signing, false),
        SignError::Backend {
            source: Some(source),
            ..
        } => classify_backend_source(source.as_ref()),
        _ => (FailureReason::Signing, true),
    }
}

/// The typed cause inside a backend error's source chain.
fn classify_backend_source(source: &(dyn std::error::Error + 'static)) -> (FailureReason, bool) {
    type KmsSign = aws_sdk_kms::error::SdkError<
        aws_sdk_kms::operation::sign::SignError,
        aws_sdk_kms::config::http::HttpResponse,
    >;
    let mut cur = Some(source);
    while let Some(e) = cur {
        if let Some(sdk) = e.downcast_ref::<KmsSign>() {
            return match sdk.as_service_error() {
                Some(s) => classify_kms_sign(s),
                // Dispatch failures, timeouts, unreadable answers: may pass.
                None => (FailureReason::Signing, true),
            };
        }
        if let Some(cryptoki::error::Error::Pkcs11(rv, _)) =
            e.downcast_ref::<cryptoki::error::Error>()
        {
            return classify_pkcs11(*rv);
        }
        cur = e.source();
    }
    (FailureReason::Signing, true)
}

fn classify_kms_sign(e: &aws_sdk_kms::operation::sign::SignError) -> (FailureReason, bool) {
    use aws_sdk_kms::error::ProvideErrorMetadata;
    if e.is_not_found_exception() {
        (FailureReason::KeyNotFound, false)
    } else if e.is_disabled_exception() || e.is_kms_invalid_state_exception() {
        (FailureReason::KeyDisabled, false)
    } else if e.is_invalid_key_usage_exception() {
        (FailureReason::UnsupportedAlgorithm, false)
    } else if e.code() == Some("AccessDeniedException") {
        // Not a modelled error of Sign: KMS's error code (not its message) says it.
        (FailureReason::KeyAccessDenied, false)
    } else {
        // KeyUnavailable, DependencyTimeout, KMSInternal, throttling...: may pass.
        (FailureReason::Signing, true)
    }
}

fn classify_pkcs11(rv: cryptoki::error::RvError) -> (FailureReason, bool) {
    use cryptoki::error::RvError as Rv;
    match rv {
        Rv::KeyHandleInvalid | Rv::ObjectHandleInvalid => (FailureReason::KeyNotFound, false),
        Rv::KeyFunctionNotPermitted
        | Rv::KeyTypeInconsistent
        | Rv::KeySizeRange
        | Rv::MechanismInvalid
        | Rv::MechanismParamInvalid => (FailureReason::UnsupportedAlgorithm, false),
        Rv::PinIncorrect | Rv::PinLocked | Rv::PinExpired => {
            (FailureReason::KeyAccessDenied, false)
        }
        _ => (FailureReason::Signing, true),
    }
}

/// [`classify_sign`] for the errors of reading the upload: a catalog's format errors are
/// `malformed_catalog` (its errors are DER and CMS ones, which for other files mean a broken
/// signature).
fn classify_input(e: AcError, input: &std::path::Path) -> StepError {
    let catalog = input
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case(codeseal_authenticode::format::CATALOG_EXTENSION));
    match e {
        AcError::Format(f) if catalog && !matches!(f, FormatError::Io { .. }) => StepError::input(
            FailureReason::MalformedCatalog,
            AcError::Format(f).to_string(),
        ),
        e => classify_sign(e),
    }
}

fn classify_sign(e: AcError) -> StepError {
    let msg = e.to_string();
    match e {
        AcError::Format(f) => match f {
            FormatError::MalformedPe { .. } => StepError::input(FailureReason::NotPe, msg),
            FormatError::Truncated { .. } => StepError::input(FailureReason::Truncated, msg),
            FormatError::CertTable(_) => StepError::input(FailureReason::MalformedPe, msg),
            FormatError::MalformedZip { .. } => StepError::input(FailureReason::MalformedAppx, msg),
            FormatError::Io { .. } => StepError::transient(FailureReason::Io, msg),
            _ => StepError::permanent(FailureReason::Signing, msg),
        },
        AcError::Unsupported(_) => StepError::input(FailureReason::UnsupportedType, msg),
        AcError::Script(_) => StepError::input(FailureReason::MalformedScript, msg),
        AcError::Cab(_) => StepError::input(FailureReason::MalformedCab, msg),
        AcError::Msi(_) => StepError::input(FailureReason::MalformedMsi, msg),
        AcError::Appx(
            AppxRefusal::PublisherMismatch { .. } | AppxRefusal::InnerPublisher { .. },
        ) => StepError::input(FailureReason::PublisherMismatch, msg),
        AcError::Appx(_) => StepError::input(FailureReason::MalformedAppx, msg),
        AcError::AlreadySigned => StepError::permanent(FailureReason::AlreadySigned, msg),
        AcError::Sign(se) => {
            let (reason, transient) = classify_key_error(&se);
            StepError::failed(reason, reason.message(), msg, transient)
        }
        AcError::Timestamp(_) => StepError::transient(FailureReason::Timestamp, msg),
        AcError::Io { .. } => StepError::transient(FailureReason::Io, msg),
        AcError::OutputCheck(_) => StepError::permanent(FailureReason::Verify, msg),
        _ => StepError::permanent(FailureReason::Signing, msg),
    }
}

/// Whether a key failure is the service saying "too many requests" (KMS ThrottlingException).
pub fn is_throttling(e: &SignError) -> bool {
    type KmsSign = aws_sdk_kms::error::SdkError<
        aws_sdk_kms::operation::sign::SignError,
        aws_sdk_kms::config::http::HttpResponse,
    >;
    use aws_sdk_kms::error::ProvideErrorMetadata;
    let SignError::Backend {
        source: Some(source),
        ..
    } = e
    else {
        return false;
    };
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    while let Some(e) = cur {
        if let Some(sdk) = e.downcast_ref::<KmsSign>() {
            return sdk
                .as_service_error()
                .is_some_and(|s| s.code() == Some("ThrottlingException"));
        }
        cur = e.source();
    }
    false
}

/// Key calls made for one signature at most (throttled answers retried with backoff).
pub const KEY_CALL_TRIES: u32 = 10;

/// One key signature through the client-side rate limit: a token first, then the call; a
/// throttled answer slows the limit down and is retried after a backoff with jitter (at most
/// [`KEY_CALL_TRIES`] calls, and none once the job is released). Runs on a blocking thread.
fn call_key(
    ctx: &Ctx,
    gate: &AtomicU8,
    mut call: impl FnMut() -> Result<Vec<u8>, SignError>,
) -> Result<Vec<u8>, SignError> {
    let mut backoff = Duration::from_millis(25);
    let mut tries = 0;
    loop {
        tries += 1;
        if let Some(b) = &ctx.key_rate {
            let waited = b.acquire_blocking();
            ctx.metrics.key_rate_wait.observe(waited.as_secs_f64());
        }
        let r = call();
        let throttled = matches!(&r, Err(e) if is_throttling(e));
        if throttled {
            ctx.metrics.key_throttles.inc();
        }
        if let Some(b) = &ctx.key_rate {
            if throttled {
                b.throttled();
            }
            ctx.metrics.key_rate.set(b.rate());
        }
        if !throttled || tries >= KEY_CALL_TRIES || gate.load(Ordering::SeqCst) == GATE_RELEASED {
            return r;
        }
        let mut j = [0u8; 2];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut j);
        let jitter = f64::from(u16::from_le_bytes(j)) / f64::from(u16::MAX);
        let wait = backoff.mul_f64(0.5 + jitter);
        debug!(
            wait_ms = wait.as_millis() as u64,
            tries, "key call throttled; backing off"
        );
        std::thread::sleep(wait);
        backoff = (backoff * 2).min(Duration::from_secs(1));
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
    Failed(FailureReason),
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
    reason: FailureReason,
    f: impl FnOnce() -> Result<T, StepError> + Send + 'static,
) -> Result<T, StepError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StepError::transient(reason, format!("worker thread: {e}")))?
}

const STATUS_SIGNING: u8 = 0;
const STATUS_VERIFYING: u8 = 1;

/// The key gate of one claim: the signing thread moves it IDLE → IN_KEY_CALL → IDLE around
/// the key call, and a release moves it to RELEASED. Both are compare-and-swap, so once the
/// job is released no key call starts for it.
const GATE_IDLE: u8 = 0;
const GATE_IN_KEY_CALL: u8 = 1;
const GATE_RELEASED: u8 = 2;

/// One claim of one job.
struct Claim {
    ctx: Arc<Ctx>,
    job: Job,
    token: String,
    status: Arc<AtomicU8>,
    lost: Arc<AtomicBool>,
    gate: Arc<AtomicU8>,
}

impl Claim {
    fn check_lease(&self) -> Result<(), StepError> {
        if self.gate.load(Ordering::SeqCst) == GATE_RELEASED {
            Err(StepError::Released)
        } else if self.lost.load(Ordering::SeqCst) {
            Err(StepError::LeaseLost)
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
                Err(StepError::Failed(e)) if e.transient && i + 1 < tries => {
                    warn!(job_id = %self.job.job_id, reason = %e.reason, error = %e.detail, "transient failure, retrying");
                    last = Some(StepError::Failed(e));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| StepError::transient(FailureReason::Io, "no attempt made")))
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
                Err(StepError::LeaseLost)
            }
            Err(e) => Err(StepError::store(FailureReason::JobStore, e)),
        }
    }

    /// Download → sign → verify → store. Returns the result and the key of the stored object.
    async fn work(&self) -> Result<JobResult, StepError> {
        let ctx = &self.ctx;
        let job = &self.job;
        let tmp = tempfile::Builder::new()
            .prefix("codeseal-job-")
            .tempdir_in(&ctx.settings.work_dir)
            .map_err(|e| StepError::transient(FailureReason::Io, format!("temp dir: {e}")))?;
        // The client's extension is kept: scripts are recognised by it (PE files by their
        // header). The name was checked when the job was made (letters, digits, ` ._-()+[]`).
        let ext = std::path::Path::new(&job.file_name)
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| format!(".{e}"))
            .unwrap_or_default();
        let input = tmp.path().join(format!("input{ext}"));
        let output = tmp.path().join(format!("signed{ext}"));

        // 1. Download.
        let max = ctx.settings.max_size;
        let (got, input_sha) = self
            .retry(|| async {
                ctx.objects
                    .download_upload(&job.upload_key, &input, max)
                    .await
                    .map_err(|e| match e {
                        StoreError::NotFound(m) => {
                            StepError::permanent(FailureReason::UploadMissing, m)
                        }
                        StoreError::Invalid { .. } => StepError::input(
                            FailureReason::TooLarge,
                            format!("the upload is larger than the limit of {max} bytes"),
                        ),
                        other => StepError::store(FailureReason::Download, other),
                    })
            })
            .await?;
        if got != job.size {
            return Err(StepError::input(
                FailureReason::SizeMismatch,
                format!("the upload has {got} bytes, {} were declared", job.size),
            ));
        }
        self.pause().await;

        // 2. Sign (one streaming pass + one key call), timing the key call.
        let opts = SignOptions::default()
            .with_opus(OpusInfo {
                program_name: Some(job.file_name.clone()),
                url: None,
            })
            .with_timestamp(
                ctx.settings
                    .timestamp_url
                    .as_ref()
                    .map(|u| TimestampOptions::default().with_urls(vec![u.clone()])),
            );
        let outcome = self
            .retry(|| {
                let (ctx, input, output, opts, gate, job_id) = (
                    Arc::clone(ctx),
                    input.clone(),
                    output.clone(),
                    opts.clone(),
                    Arc::clone(&self.gate),
                    job.job_id.clone(),
                );
                async move {
                    let _ = std::fs::remove_file(&output);
                    blocking(FailureReason::Signing, move || {
                        let identity = &ctx.signer.identity;
                        let prepared = PreparedSigning::prepare(identity, &input, &output, &opts)
                            .map_err(|e| classify_input(e, &input))?;
                        let (digest, alg) = prepared.digest_to_sign();
                        let delay = ctx.settings.key_delay;
                        if !delay.is_zero() {
                            info!(job_id = %job_id, "key call delayed (test fault injection)");
                            std::thread::sleep(delay);
                        }
                        // No key call for a job that was released meanwhile.
                        if gate
                            .compare_exchange(
                                GATE_IDLE,
                                GATE_IN_KEY_CALL,
                                Ordering::SeqCst,
                                Ordering::SeqCst,
                            )
                            .is_err()
                        {
                            info!(job_id = %job_id, "the job was released: the key is not called");
                            return Err(StepError::Released);
                        }
                        debug!(job_id = %job_id, "calling the key");
                        let key: &dyn KeySigner = identity.key().as_ref();
                        let t = Instant::now();
                        let sig = call_key(&ctx, &gate, || key.sign_digest_checked(alg, digest));
                        let released = gate
                            .compare_exchange(
                                GATE_IN_KEY_CALL,
                                GATE_IDLE,
                                Ordering::SeqCst,
                                Ordering::SeqCst,
                            )
                            .is_err();
                        let sig = sig.map_err(|e| classify_sign(AcError::Sign(e)))?;
                        ctx.metrics.sign_duration.observe(t.elapsed().as_secs_f64());
                        if released {
                            // Released during the key call: write nothing more.
                            return Err(StepError::Released);
                        }
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
            let (out, verifier) = (output.clone(), Arc::clone(&ctx.signer.verifier));
            blocking(FailureReason::Verify, move || {
                verifier
                    .verify_file(&out)
                    .map_err(|e| StepError::permanent(FailureReason::Verify, e.to_string()))
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
            // The verifier's findings are ours (codeseal's verifier), about the signed file.
            return Err(StepError::input(
                FailureReason::Verify,
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
            blocking(FailureReason::Io, move || {
                sha256_file(&p).map_err(|e| StepError::transient(FailureReason::Io, e.to_string()))
            })
            .await?
        };
        let result_key = format!("signed/{}/a{}/{}", job.job_id, job.attempts, job.file_name);
        self.retry(|| async {
            self.check_lease()?;
            ctx.objects
                .put_result(&result_key, &output, &signed_sha)
                .await
                .map_err(|e| StepError::store(FailureReason::ResultsStore, e))
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

/// The queue message a job came in: its visibility is extended with the job's lease.
#[derive(Clone)]
pub struct MessageLease {
    /// The queue.
    pub queue: Arc<dyn JobQueue>,
    /// The message's receipt.
    pub receipt: String,
}

/// Claims job `id` and works on it. `shutdown` cancels between steps (the job is released).
pub async fn process(
    ctx: &Arc<Ctx>,
    id: &str,
    worker_id: &str,
    shutdown: &CancellationToken,
) -> Outcome {
    process_with(ctx, id, worker_id, shutdown, None).await
}

/// [`process`], extending `message`'s visibility along with the job's lease.
pub async fn process_with(
    ctx: &Arc<Ctx>,
    id: &str,
    worker_id: &str,
    shutdown: &CancellationToken,
    message: Option<MessageLease>,
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
        let outcome = run_claim(ctx, job, token, shutdown, message).await;
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
    message: Option<MessageLease>,
) -> Outcome {
    let id = job.job_id.clone();
    let finish = |f: Finish| {
        let (ctx, id, token) = (Arc::clone(ctx), id.clone(), token.clone());
        async move { ctx.jobs.finish(&id, &token, &f, now_ms()).await }
    };
    if job.attempts > ctx.settings.max_attempts {
        let f = Finish::Failed {
            reason: FailureReason::Attempts,
            error: format!(
                "gave up after {} attempts; last error: {}",
                ctx.settings.max_attempts,
                job.error
                    .as_deref()
                    .unwrap_or("none recorded (a worker stopped mid-job)")
            ),
        };
        ctx.metrics.failed(FailureReason::Attempts);
        if let Ok(true) = finish(f).await {
            job_finished(ctx, &job).await;
        }
        return Outcome::Failed(FailureReason::Attempts);
    }
    info!(file = %job.file_name, size = job.size, "job claimed");
    let claim = Claim {
        ctx: Arc::clone(ctx),
        job,
        token: token.clone(),
        status: Arc::new(AtomicU8::new(STATUS_SIGNING)),
        lost: Arc::new(AtomicBool::new(false)),
        gate: Arc::new(AtomicU8::new(GATE_IDLE)),
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
                if let Some(m) = &message {
                    if let Err(e) = m.queue.extend(&m.receipt, visibility(&ctx)).await {
                        warn!(error = %e, "extending the message's visibility failed");
                    }
                }
            }
        })
    };
    let result = tokio::select! {
        r = claim.work() => Some(r),
        _ = shutdown.cancelled() => None,
    };
    if result.is_none() {
        // Close the key gate before the release is written: from here on no key call starts
        // for this claim, and a signing thread still running stops at its next check.
        claim.gate.store(GATE_RELEASED, Ordering::SeqCst);
    }
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
                    job_finished(ctx, &claim.job).await;
                    audit::record(
                        &ctx.signer,
                        &audit::Record::Authenticode {
                            job_id: &id,
                            caller: &claim.job.caller,
                            file_name: &claim.job.file_name,
                            file_sha256: &audit.input_sha256,
                            signed_sha256: &audit.signed_sha256,
                            authenticode_digest: &audit.authenticode_digest,
                        },
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
        Some(Err(StepError::LeaseLost)) => {
            warn!("lease lost; another worker has the job");
            Outcome::Released
        }
        Some(Err(StepError::Released)) => {
            // Only a release closes the gate, and a release ends the claim above.
            let _ = finish(Finish::Release { error: None }).await;
            info!("job released");
            Outcome::Released
        }
        Some(Err(StepError::Failed(e))) => {
            warn!(reason = %e.reason, error = %e.detail, "job failed");
            ctx.metrics.failed(e.reason);
            if let Ok(true) = finish(Finish::Failed {
                reason: e.reason,
                error: e.message.clone(),
            })
            .await
            {
                job_finished(ctx, &claim.job).await;
            }
            Outcome::Failed(e.reason)
        }
    }
}

/// Turns an object key into a job id: `uploads/<id>/<name>` of an existing job, or a new
/// queued job for an object that arrived without the API (id derived from the key, so a
/// repeated event finds the same job). `None` for keys outside `uploads/`.
pub async fn job_for_object(ctx: &Ctx, key: &str) -> Result<Option<String>, StoreError> {
    Ok(job_for_object_status(ctx, key).await?.map(|j| j.id))
}

/// The job of an object, as [`job_for_object_status`] found (or made) it.
struct ObjectJob {
    id: String,
    status: JobStatus,
    /// An API upload the API had already queued (and sent to the queue) itself.
    queued_by_api: bool,
}

/// [`job_for_object`] with the job's status.
async fn job_for_object_status(ctx: &Ctx, key: &str) -> Result<Option<ObjectJob>, StoreError> {
    let found = |id: String, status, queued_by_api| {
        Ok(Some(ObjectJob {
            id,
            status,
            queued_by_api,
        }))
    };
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
            // The API stopped between assembling the upload and queueing the job.
            let (j, _) = ctx.jobs.mark_queued(id_part, now_ms()).await?;
            return found(j.job_id, j.status, false);
        }
        return found(job.job_id, job.status, true);
    }
    let id = object_job_id(key);
    if let Some(j) = ctx.jobs.get(&id).await? {
        return found(id, j.status, false);
    }
    let now = now_ms();
    let file_name = name.rsplit('/').next().unwrap_or(name);
    // The same check as the API's: the name becomes the signature's program name.
    if let Err(why) = check_file_name(file_name) {
        let shown = sanitize_file_name(file_name);
        warn!(key = ?key, job_id = %id, error = %why, "upload with an unacceptable file name");
        // The size is informative only; a key the store refuses to look at has none.
        let size = ctx
            .objects
            .upload_size(key)
            .await
            .ok()
            .flatten()
            .unwrap_or(0);
        let job = Job {
            error: Some(FailureReason::BadFileName.message().to_string()),
            error_reason: Some(FailureReason::BadFileName),
            ..Job::new(
                id.clone(),
                JobStatus::Failed,
                shown,
                size,
                EVENT_CALLER.into(),
                key.to_string(),
                now,
            )
        };
        if ctx.jobs.create(&job).await? {
            ctx.metrics.failed(FailureReason::BadFileName);
        }
        return found(id, JobStatus::Failed, false);
    }
    let Some(size) = ctx.objects.upload_size(key).await? else {
        return Ok(None);
    };
    let job = Job::new(
        id.clone(),
        JobStatus::Queued,
        file_name.to_string(),
        size,
        EVENT_CALLER.into(),
        key.to_string(),
        now,
    );
    ctx.jobs.create(&job).await?;
    found(id, JobStatus::Queued, false)
}

/// The job id of an object that arrived without the API: derived from its key, so that a
/// repeated event finds the same job.
pub fn object_job_id(key: &str) -> String {
    hex::encode(&Sha256::digest(format!("object:{key}").as_bytes())[..16])
}

/// Abandoned uploads expired per pass, at most.
pub const EXPIRY_BATCH: usize = 100;

/// One pass of the embedded store's upload expiry: jobs still `uploading` after the upload
/// TTL are failed with `expired` and their parts deleted, at most `limit` of them. Returns
/// how many were expired. Does nothing without the embedded store (S3 aborts abandoned
/// multipart uploads with a lifecycle rule).
pub async fn expire_uploads(ctx: &Ctx, now: u64, limit: usize) -> Result<usize, StoreError> {
    let Some(local) = &ctx.local else {
        return Ok(0);
    };
    let ttl = u64::try_from(ctx.settings.upload_ttl.as_millis()).unwrap_or(u64::MAX);
    let stale = ctx
        .jobs
        .stale_uploads(now.saturating_sub(ttl), limit)
        .await?;
    let mut n = 0;
    for job in stale {
        let reason = FailureReason::Expired;
        // Failed first (conditional on still uploading), then the parts go: a completion
        // racing with the expiry finds either a live upload or a failed job.
        if !ctx
            .jobs
            .fail_upload(&job.job_id, reason, reason.message(), now)
            .await?
        {
            continue;
        }
        if let Some(m) = &job.multipart_id {
            if let Err(e) = local.abort_multipart(m).await {
                warn!(job_id = %job.job_id, error = %e, "deleting the parts of an expired upload failed");
            }
        }
        ctx.metrics.failed(reason);
        info!(job_id = %job.job_id, caller = %job.caller, "upload expired");
        n += 1;
    }
    Ok(n)
}

/// Runs [`expire_uploads`] every half TTL (1 s to 5 min) until `shutdown`; only with the
/// embedded store.
pub async fn run_upload_expiry(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    if ctx.local.is_none() {
        return;
    }
    let every =
        (ctx.settings.upload_ttl / 2).clamp(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        match expire_uploads(&ctx, now_ms(), EXPIRY_BATCH).await {
            Ok(n) if n > 0 => info!(expired = n, "abandoned uploads expired"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "expiring abandoned uploads failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// A message's visibility timeout: the job's lease and a second, so that a message comes
/// back only once the job's lease in the table has run out (the next claim then succeeds).
fn visibility(ctx: &Ctx) -> Duration {
    ctx.settings.lease + Duration::from_secs(1)
}

/// What a queue message asks for.
#[derive(Debug)]
enum Work {
    /// These jobs (one for the API's messages, one per object of a notification).
    Jobs(Vec<String>),
    /// Nothing to do (a notification for other keys, an S3 test event).
    Nothing,
    /// Not a message this service understands.
    Unreadable(String),
}

fn is_job_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The jobs a message names: `{"job_id": ...}` from the API, or an S3 event notification
/// (direct or through EventBridge) for objects dropped into the uploads bucket, whose jobs
/// are found or made here.
async fn message_work(ctx: &Ctx, body: &str) -> Result<Work, StoreError> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return Ok(Work::Unreadable("the message is not JSON".into()));
    };
    if let Some(id) = v.get("job_id") {
        return Ok(match id.as_str() {
            Some(id) if is_job_id(id) => Work::Jobs(vec![id.to_string()]),
            _ => Work::Unreadable("the message's job_id is not a job id".into()),
        });
    }
    let objects = match events::parse(&v) {
        Ok(o) => o,
        Err(e) => return Ok(Work::Unreadable(e.to_string())),
    };
    let mut ids = Vec::new();
    for o in objects {
        if ctx
            .settings
            .uploads_bucket
            .as_deref()
            .is_some_and(|b| b != o.bucket)
        {
            warn!(bucket = %o.bucket, key = %o.key, "notification for another bucket ignored");
            continue;
        }
        match job_for_object_status(ctx, &o.key).await? {
            // The API sent its own message for it: this notification is a duplicate.
            Some(j) if j.queued_by_api => {
                debug!(job_id = %j.id, "notification of an upload the API queued; ignored")
            }
            Some(j) if !ids.contains(&j.id) => ids.push(j.id),
            Some(_) => {}
            None => info!(key = %o.key, "not an upload key; ignored"),
        }
    }
    Ok(if ids.is_empty() {
        Work::Nothing
    } else {
        Work::Jobs(ids)
    })
}

/// Fails job `id` for good because its message came back too often (claimed first, so a live
/// worker's job is never touched). Returns the failure text when this call failed it.
async fn give_up(ctx: &Arc<Ctx>, id: &str, worker_id: &str, receives: u32) -> Option<String> {
    let now = now_ms();
    let token = format!("{worker_id}/dlq");
    let job = ctx
        .jobs
        .claim(id, &token, now, now + ctx.settings.lease.as_millis() as u64)
        .await
        .ok()
        .flatten()?;
    let error = format!(
        "gave up: the job's queue message was received {receives} times (the limit is {}); last error: {}",
        ctx.settings.max_receives,
        job.error
            .as_deref()
            .unwrap_or("none recorded (a worker stopped mid-job)")
    );
    let f = Finish::Failed {
        reason: FailureReason::Attempts,
        error: error.clone(),
    };
    match ctx.jobs.finish(id, &token, &f, now_ms()).await {
        Ok(true) => {
            ctx.metrics.failed(FailureReason::Attempts);
            job_finished(ctx, &job).await;
            Some(error)
        }
        _ => None,
    }
}

/// A job left the queue for good (done or failed): its caller's in-flight count goes down.
pub(crate) async fn job_finished(ctx: &Ctx, job: &Job) {
    if !job.counted {
        return;
    }
    if let Err(e) = ctx.jobs.release_in_flight(&job.caller).await {
        warn!(caller = %job.caller, error = %e, "lowering the caller's in-flight count failed");
    }
}

/// The caller recorded for jobs made from bucket notifications (no API key, no limits).
pub const EVENT_CALLER: &str = "event";

async fn dead_letter(ctx: &Ctx, msg: &Message, why: DeadLetter) {
    warn!(message_id = %msg.id, job_id = ?why.job_id, reason = %why.reason, error = %why.error, receives = msg.receive_count, "message moved to the dead-letter queue");
    ctx.metrics.dead_letters.inc();
    if let Err(e) = ctx.queue.dead_letter(msg, &why).await {
        warn!(message_id = %msg.id, error = %e, "moving the message to the dead-letter queue failed");
    }
}

/// Works on one queue message: its job(s), then deletes it (finished), hands it back at once
/// (shutdown), leaves it to reappear after its visibility timeout (lease lost, transient
/// store failure, job held elsewhere), or moves it to the dead-letter queue (unreadable,
/// received too often, or its job gave up after too many attempts).
pub async fn handle_message(
    ctx: &Arc<Ctx>,
    msg: Message,
    worker_id: &str,
    shutdown: &CancellationToken,
) {
    if msg.sent_ms > 0 {
        let age = now_ms().saturating_sub(msg.sent_ms) as f64 / 1000.0;
        ctx.metrics.queue_age.observe(age);
    }
    let dl = |job_id: Option<String>, reason: &str, error: String| DeadLetter {
        job_id,
        reason: reason.to_string(),
        error,
        receive_count: msg.receive_count,
        message: msg.body.clone(),
    };
    let ids = match message_work(ctx, &msg.body).await {
        Ok(Work::Jobs(ids)) => ids,
        Ok(Work::Nothing) => {
            let _ = ctx.queue.delete(&msg.receipt).await;
            return;
        }
        Ok(Work::Unreadable(why)) => {
            let d = dl(None, "unreadable_message", why);
            dead_letter(ctx, &msg, d).await;
            return;
        }
        Err(e) => {
            warn!(message_id = %msg.id, error = %e, "cannot look up the message's job; it will come back");
            return;
        }
    };
    let max = ctx.settings.max_receives.max(1);
    if msg.receive_count > max {
        for id in &ids {
            let error = give_up(ctx, id, worker_id, msg.receive_count).await;
            if error.is_none() {
                let duplicate = matches!(ctx.jobs.get(id).await, Ok(Some(j))
                    if j.status.is_terminal() || (j.status.is_leased() && j.lease_until_ms >= now_ms()));
                if duplicate {
                    // The job is finished, or a live worker has it (and its own message).
                    info!(job_id = %id, "duplicate message of a finished or running job deleted");
                    continue;
                }
            }
            let text =
                error.unwrap_or_else(|| "the job's queue message was received too often".into());
            let d = dl(Some(id.clone()), FailureReason::Attempts.as_str(), text);
            dead_letter(ctx, &msg, d).await;
            return;
        }
        let _ = ctx.queue.delete(&msg.receipt).await;
        return;
    }
    let lease = MessageLease {
        queue: Arc::clone(&ctx.queue),
        receipt: msg.receipt.clone(),
    };
    let mut finished = true;
    for id in &ids {
        match process_with(ctx, id, worker_id, shutdown, Some(lease.clone())).await {
            Outcome::Done => {}
            Outcome::Failed(FailureReason::Attempts) => {
                let error = ctx
                    .jobs
                    .get(id)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|j| j.error)
                    .unwrap_or_else(|| FailureReason::Attempts.message().into());
                let d = dl(Some(id.clone()), FailureReason::Attempts.as_str(), error);
                dead_letter(ctx, &msg, d).await;
                return;
            }
            Outcome::Failed(_) => {}
            Outcome::Released => {
                if shutdown.is_cancelled() {
                    // Shutting down: the message is visible again at once.
                    let _ = ctx.queue.extend(&msg.receipt, Duration::ZERO).await;
                    return;
                }
                finished = false;
            }
            Outcome::NotClaimed => match ctx.jobs.get(id).await {
                Ok(Some(j)) if !j.status.is_terminal() => finished = false,
                Ok(_) => {}
                Err(e) => {
                    warn!(job_id = %id, error = %e, "cannot read the job");
                    finished = false;
                }
            },
        }
    }
    if finished {
        if let Err(e) = ctx.queue.delete(&msg.receipt).await {
            warn!(message_id = %msg.id, error = %e, "deleting the message failed (it will come back; its job is finished)");
        }
    }
}

/// Looks for work the queue may not hold: claimable jobs (embedded store: left by a previous
/// run) and uploads that arrived without the API (embedded store's directory, or the legacy
/// polling mode).
async fn sweep(ctx: &Ctx) {
    if ctx.local.is_some() {
        match ctx.jobs.claimable(now_ms(), 256).await {
            Ok(ids) => {
                for id in ids {
                    if let Err(e) = ctx.queue.enqueue(&id).await {
                        warn!(job_id = %id, error = %e, "cannot enqueue a job");
                    }
                }
            }
            Err(e) => warn!(error = %e, "sweeping the job table failed"),
        }
    }
    if let Ok(keys) = ctx.objects.list_uploads(256).await {
        for k in keys {
            match job_for_object_status(ctx, &k).await {
                Ok(Some(j)) if !j.status.is_terminal() => {
                    let _ = ctx.queue.enqueue(&j.id).await;
                }
                Ok(Some(_)) => {}
                Ok(None) => {}
                Err(e) => warn!(key = %k, error = %e, "cannot make a job for an upload"),
            }
        }
    }
}

/// In-process workers: `n` jobs at a time, taken from the queue (`ctx.queue`: SQS long
/// polls, the embedded queue, or table polling without a queue). On `shutdown` they stop
/// receiving, let in-flight jobs run for the grace period, then release what is left.
pub async fn run_workers(ctx: Arc<Ctx>, n: usize, worker_id: String, shutdown: CancellationToken) {
    let n = n.max(1);
    let permits = Arc::new(tokio::sync::Semaphore::new(n));
    let inflight: Arc<Mutex<HashMap<String, ()>>> = Arc::default();
    let hard_stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut receives: u64 = 0;
    info!(workers = n, worker_id = %worker_id, objects = %ctx.objects.describe(), jobs = %ctx.jobs.describe(), queue = %ctx.queue.describe(), "workers started");
    loop {
        if let Some(every) = ctx.queue.sweep_every() {
            if receives.is_multiple_of(every.max(1)) {
                sweep(&ctx).await;
            }
        }
        receives += 1;
        // Receive only as many messages as there are free workers.
        let first = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.cancelled() => break,
        };
        let mut held = vec![first];
        while held.len() < 10 {
            match Arc::clone(&permits).try_acquire_owned() {
                Ok(p) => held.push(p),
                Err(_) => break,
            }
        }
        let got = tokio::select! {
            r = ctx.queue.receive(held.len(), ctx.settings.receive_wait, visibility(&ctx)) => r,
            _ = shutdown.cancelled() => break,
        };
        let msgs = match got {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "receiving from the queue failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(ctx.settings.poll_interval) => {}
                }
                continue;
            }
        };
        ctx.metrics.queue_depth.set(msgs.len() as i64);
        for msg in msgs {
            // Table polling may return a job again while it is being worked on here.
            if inflight
                .lock()
                .map(|m| m.contains_key(&msg.id))
                .unwrap_or(true)
            {
                continue;
            }
            let Some(permit) = held.pop() else { break };
            if let Ok(mut m) = inflight.lock() {
                m.insert(msg.id.clone(), ());
            }
            let (ctx, wid, stop, inflight) = (
                Arc::clone(&ctx),
                worker_id.clone(),
                hard_stop.clone(),
                Arc::clone(&inflight),
            );
            tasks.spawn(async move {
                let _permit = permit;
                let id = msg.id.clone();
                handle_message(&ctx, msg, &wid, &stop).await;
                if let Ok(mut m) = inflight.lock() {
                    m.remove(&id);
                }
            });
        }
        drop(held);
        while tasks.try_join_next().is_some() {}
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
    let counts = ctx.jobs.request_counts();
    info!(
        reads = counts.reads,
        scans = counts.scans,
        writes = counts.writes,
        "workers stopped; job store requests of this process"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeseal_signer::{DigestAlgorithm, KeyKind};

    #[test]
    fn key_errors_are_classified_by_type() {
        let mismatch = SignError::KeyMismatch {
            subject: "CN=x".into(),
        };
        assert_eq!(
            classify_key_error(&mismatch),
            (FailureReason::KeyMismatch, false)
        );
        let bad_sig = SignError::BadSignatureFromKey {
            backend: "aws-kms".into(),
        };
        assert_eq!(
            classify_key_error(&bad_sig),
            (FailureReason::KeyMismatch, false)
        );
        let digest = SignError::DigestLength {
            algorithm: DigestAlgorithm::Sha256,
            expected: 32,
            actual: 3,
        };
        assert_eq!(
            classify_key_error(&digest),
            (FailureReason::UnsupportedAlgorithm, false)
        );
        let unsupported = SignError::UnsupportedAlgorithm {
            key: KeyKind::EcP256,
            requested: KeyKind::EcP256.with_digest(DigestAlgorithm::Sha384),
        };
        assert_eq!(
            classify_key_error(&unsupported),
            (FailureReason::UnsupportedAlgorithm, false)
        );
        // A backend error is decided by its typed source, whatever its text says.
        let pkcs11 = |rv| {
            SignError::backend(
                "pkcs11",
                "the key was not found, disabled, denied (text that must not matter)",
                Some(Box::new(cryptoki::error::Error::Pkcs11(
                    rv,
                    cryptoki::context::Function::Sign,
                ))),
            )
        };
        use cryptoki::error::RvError;
        assert_eq!(
            classify_key_error(&pkcs11(RvError::KeyHandleInvalid)),
            (FailureReason::KeyNotFound, false)
        );
        assert_eq!(
            classify_key_error(&pkcs11(RvError::MechanismInvalid)),
            (FailureReason::UnsupportedAlgorithm, false)
        );
        assert_eq!(
            classify_key_error(&pkcs11(RvError::PinLocked)),
            (FailureReason::KeyAccessDenied, false)
        );
        assert_eq!(
            classify_key_error(&pkcs11(RvError::DeviceError)),
            (FailureReason::Signing, true)
        );
        // No typed cause: may pass (the text is not read).
        let opaque = SignError::backend("aws-kms", "key not found; disabled; denied", None);
        assert_eq!(classify_key_error(&opaque), (FailureReason::Signing, true));
        // A job's sign step maps these into permanent or transient step failures.
        match classify_sign(AcError::Sign(SignError::KeyMismatch {
            subject: "CN=x".into(),
        })) {
            StepError::Failed(f) => {
                assert_eq!((f.reason, f.transient), (FailureReason::KeyMismatch, false));
                assert_eq!(f.message, FailureReason::KeyMismatch.message());
            }
            other => panic!("{other:?}"),
        }
    }
}
