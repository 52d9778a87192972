//! Command-line configuration → stores, key and shared state.
use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{bail, Context as _};
use codeseal_signer::SigningIdentity;

use crate::{
    auth::ApiKeys,
    context::{Ctx, Settings, Signer},
    metrics::Metrics,
    queue::{embedded::EmbeddedQueue, scan::ScanQueue, JobQueue},
    ratelimit::TokenBucket,
    store::{local::LocalStore, redb_jobs::RedbJobs, JobStore, ObjectStore},
};

/// Store, key and limit options shared by every subcommand. Each flag can also be given as an
/// environment variable `CODESEAL_SERVICE_<FLAG>`.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Use local directories and an embedded job table under --data-dir (no AWS needed).
    #[arg(long, env = "CODESEAL_SERVICE_EMBEDDED")]
    pub embedded: bool,
    /// Data directory of the embedded store.
    #[arg(
        long,
        env = "CODESEAL_SERVICE_DATA_DIR",
        default_value = "codeseal-data"
    )]
    pub data_dir: PathBuf,
    /// S3 bucket for uploads (objects under uploads/).
    #[arg(long, env = "CODESEAL_SERVICE_UPLOADS_BUCKET")]
    pub uploads_bucket: Option<String>,
    /// S3 bucket for signed results (objects under signed/).
    #[arg(long, env = "CODESEAL_SERVICE_RESULTS_BUCKET")]
    pub results_bucket: Option<String>,
    /// DynamoDB job table (partition key job_id, string).
    #[arg(long, env = "CODESEAL_SERVICE_JOBS_TABLE")]
    pub jobs_table: Option<String>,
    /// Create the DynamoDB table if it does not exist (first runs, tests).
    #[arg(long, env = "CODESEAL_SERVICE_CREATE_TABLE")]
    pub create_table: bool,
    /// The signing key: awskms:///alias/NAME, arn:aws:kms:..., pkcs11:..., file:PATH.
    /// With --embedded and no key, a throwaway test PKI is made in DATA_DIR/pki.
    #[arg(long, env = "CODESEAL_SERVICE_KEY")]
    pub key: Option<String>,
    /// Certificate chain of the key (PEM, leaf first).
    #[arg(long, env = "CODESEAL_SERVICE_CERT")]
    pub cert: Option<PathBuf>,
    /// Trust anchors the worker verifies signed files against (PEM). Without it, the
    /// signature's integrity is verified but not its chain.
    #[arg(long, env = "CODESEAL_SERVICE_TRUST")]
    pub trust: Option<PathBuf>,
    /// More trust anchors for the verify step: `microsoft:DIR` (Microsoft's root program:
    /// authroot.stl and its certificates, with each root's EKU and disable dates) or
    /// `system` (the OS bundle). Repeatable.
    #[arg(long, value_name = "microsoft:DIR|system")]
    pub trust_store: Vec<String>,
    /// Certificates the verify step refuses: a disallowedcert.stl, certificates, or SPKI
    /// SHA-256 lines. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub deny: Vec<PathBuf>,
    /// Revocation checking of the signed output's chains (as `codeseal verify --revocation`):
    /// default soft when trust anchors are given (a revoked certificate fails the job; no
    /// answer is a warning), off without.
    #[arg(
        long,
        value_name = "hard|soft|off",
        env = "CODESEAL_SERVICE_REVOCATION"
    )]
    pub revocation: Option<codeseal_authenticode::revocation::RevocationPolicy>,
    /// CRL files for the verify step (PEM or DER). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub crl: Vec<PathBuf>,
    /// Where the verify step caches CRL and OCSP answers (none by default).
    #[arg(long, value_name = "DIR", env = "CODESEAL_SERVICE_REVOCATION_CACHE")]
    pub revocation_cache: Option<PathBuf>,
    /// API keys file: lines `NAME SHA256HEX [admin]` (see `hash-key`). With --embedded and no
    /// file, a key is generated into DATA_DIR/api-key.
    #[arg(long, env = "CODESEAL_SERVICE_API_KEYS")]
    pub api_keys: Option<PathBuf>,
    /// Largest upload, bytes.
    #[arg(long, env = "CODESEAL_SERVICE_MAX_SIZE", default_value_t = 2 << 30)]
    pub max_size: u64,
    /// Multipart part size, bytes (S3 needs at least 5 MiB).
    #[arg(long, env = "CODESEAL_SERVICE_PART_SIZE", default_value_t = 16 << 20)]
    pub part_size: u64,
    /// Job lease, seconds.
    #[arg(long, env = "CODESEAL_SERVICE_LEASE_SECONDS", default_value_t = 60)]
    pub lease_seconds: u64,
    /// Claims per job before it fails.
    #[arg(long, env = "CODESEAL_SERVICE_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// Poll interval of the workers, ms.
    #[arg(
        long,
        env = "CODESEAL_SERVICE_POLL_INTERVAL_MS",
        default_value_t = 2000
    )]
    pub poll_interval_ms: u64,
    /// Serve POST /sign (signs any digest; admin API keys only, every call audited).
    #[arg(long, env = "CODESEAL_SERVICE_ENABLE_SIGN_ROUTE")]
    pub enable_sign_route: bool,
    /// Accepted for older configurations: POST /sign is off unless --enable-sign-route.
    #[arg(
        long,
        env = "CODESEAL_SERVICE_DISABLE_SIGN_ROUTE",
        hide = true,
        conflicts_with = "enable_sign_route"
    )]
    pub disable_sign_route: bool,
    /// Embedded store: seconds an upload may stay incomplete before it expires (its parts
    /// are deleted and its job fails with `expired`).
    #[arg(
        long,
        env = "CODESEAL_SERVICE_UPLOAD_TTL_SECONDS",
        default_value_t = 86_400
    )]
    pub upload_ttl_seconds: u64,
    /// RFC 3161 time-stamp URL for signed files.
    #[arg(long, env = "CODESEAL_SERVICE_TIMESTAMP_URL")]
    pub timestamp_url: Option<String>,
    /// Base URL of this service as clients reach it (embedded presigned URLs).
    #[arg(long, env = "CODESEAL_SERVICE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seconds in-flight jobs may run after SIGTERM before they are released.
    #[arg(long, env = "CODESEAL_SERVICE_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace: u64,
    /// SQS queue URL workers receive jobs from (the API sends a message per completed
    /// upload; S3 event notifications for the uploads bucket may arrive on it too). Without
    /// it, server-mode workers poll the job table (a Scan per poll: not for large tables).
    #[arg(long, env = "CODESEAL_SERVICE_QUEUE_URL")]
    pub queue_url: Option<String>,
    /// SQS dead-letter queue URL: messages received more than --max-receives times (their
    /// job failed) and unreadable messages go there, with the reason.
    #[arg(long, env = "CODESEAL_SERVICE_DEAD_LETTER_QUEUE_URL")]
    pub dead_letter_queue_url: Option<String>,
    /// Receives of one queue message before it goes to the dead-letter queue.
    #[arg(long, env = "CODESEAL_SERVICE_MAX_RECEIVES", default_value_t = 5)]
    pub max_receives: u32,
    /// Client-side limit of key calls (KMS Sign) per second, per key and process: set it to
    /// this process's share of the account's KMS quota. Adaptive: throttled answers lower it
    /// for a while. Unset: no limit (KMS's own retries handle throttling).
    #[arg(long, env = "CODESEAL_SERVICE_KMS_RATE")]
    pub kms_rate: Option<f64>,
    /// Key calls allowed at once above --kms-rate (the token bucket's size).
    #[arg(long, env = "CODESEAL_SERVICE_KMS_BURST", default_value_t = 1)]
    pub kms_burst: u32,
    /// Jobs one API key may have queued or running at once (0: no limit). Above it, POST
    /// /uploads and /uploads/ID/complete answer 429 with Retry-After.
    #[arg(
        long,
        env = "CODESEAL_SERVICE_CALLER_MAX_IN_FLIGHT",
        default_value_t = 0
    )]
    pub caller_max_in_flight: u64,
    /// Bytes one API key may upload per UTC day (0: no limit). Above it, POST /uploads
    /// answers 429 with Retry-After (the seconds to midnight UTC).
    #[arg(
        long,
        env = "CODESEAL_SERVICE_CALLER_MAX_BYTES_PER_DAY",
        default_value_t = 0
    )]
    pub caller_max_bytes_per_day: u64,
    /// Test-only fault injection: sleep this many ms after each worker step.
    #[arg(
        long,
        env = "CODESEAL_SERVICE_STEP_DELAY_MS",
        default_value_t = 0,
        hide = true
    )]
    pub step_delay_ms: u64,
    /// Test-only fault injection: sleep this many ms right before each key call of a job.
    #[arg(
        long,
        env = "CODESEAL_SERVICE_KEY_DELAY_MS",
        default_value_t = 0,
        hide = true
    )]
    pub key_delay_ms: u64,
}

/// The verifier of the verify step: the anchors of --trust and --trust-store with the
/// --deny lists (integrity only without anchors), and the revocation policy.
fn verifier(
    c: &Common,
    trust: Vec<x509_cert::Certificate>,
) -> anyhow::Result<codeseal_authenticode::Verifier> {
    use codeseal_authenticode::{
        revocation::{RevocationOptions, RevocationPolicy},
        trust::TrustStore,
        Verifier,
    };
    let mut store = TrustStore::from_certificates(trust);
    for spec in &c.trust_store {
        store.merge(TrustStore::from_spec(spec).with_context(|| format!("--trust-store {spec}"))?);
    }
    for f in &c.deny {
        let data = std::fs::read(f).with_context(|| format!("reading --deny {}", f.display()))?;
        store
            .deny_list(&data)
            .with_context(|| format!("--deny {}", f.display()))?;
    }
    let anchors = !store.anchors().is_empty();
    let policy = c.revocation.unwrap_or(if anchors {
        RevocationPolicy::Soft
    } else {
        RevocationPolicy::Off
    });
    if policy != RevocationPolicy::Off && !anchors {
        bail!("--revocation {policy:?} needs trust anchors (--trust or --trust-store)");
    }
    let mut rev = RevocationOptions::new(policy);
    for f in &c.crl {
        let data = std::fs::read(f).with_context(|| format!("reading --crl {}", f.display()))?;
        rev = rev
            .with_crl(&f.display().to_string(), &data)
            .with_context(|| format!("--crl {}", f.display()))?;
    }
    if let Some(dir) = &c.revocation_cache {
        rev = rev.with_cache_dir(dir);
    }
    let v = if anchors {
        Verifier::from_trust_store(store)?
    } else {
        Verifier::integrity_only()
    };
    Ok(v.with_revocation(rev))
}

fn read_identity(
    c: &Common,
) -> anyhow::Result<(SigningIdentity, Vec<x509_cert::Certificate>, String)> {
    let (uri, cert, trust) = match (&c.key, c.embedded) {
        (Some(k), _) => (k.clone(), c.cert.clone(), c.trust.clone()),
        (None, true) => {
            let dir = c.data_dir.join("pki");
            if !dir.join("leaf.key").is_file() {
                std::fs::create_dir_all(&dir)?;
                let pki = codeseal_local::ThrowawayPki::generate("codeseal service test")
                    .map_err(|e| anyhow::anyhow!(e))?;
                pki.write_to(&dir).map_err(|e| anyhow::anyhow!(e))?;
                tracing::warn!(dir = %dir.display(), "no --key: made a throwaway test PKI (never trust its root)");
            }
            (
                format!("file:{}", dir.join("leaf.key").display()),
                Some(dir.join("chain.pem")),
                Some(dir.join("root.pem")),
            )
        }
        (None, false) => {
            bail!(
                "--key is required (awskms:///alias/NAME, arn:aws:kms:..., pkcs11:..., file:PATH)"
            )
        }
    };
    let label = codeseal_keys::redact_uri(&uri);
    // With our own rate limit, KMS calls are not retried by the SDK: every throttled answer
    // reaches the limiter (which backs off and retries).
    let opts = match c.kms_rate {
        Some(_) => codeseal_keys::OpenOptions::default().with_kms_max_attempts(1),
        None => codeseal_keys::OpenOptions::default(),
    };
    let opened = codeseal_keys::open_key_with(&uri, &opts)
        .with_context(|| format!("opening key {label}"))?;
    let chain = match &cert {
        Some(p) => codeseal_keys::load_certificates(p)?,
        None if !opened.chain.is_empty() => opened.chain.clone(),
        None => bail!("--cert is required for {label}"),
    };
    let identity = SigningIdentity::new(Arc::clone(&opened.key), chain)
        .context("the certificate does not match the key")?;
    let trust = match trust {
        Some(p) => codeseal_keys::load_certificates(&p)?,
        None => vec![],
    };
    Ok((identity, trust, label))
}

/// The API keys: from --api-keys, or (embedded) a generated one in DATA_DIR/api-key.
fn read_api_keys(c: &Common) -> anyhow::Result<ApiKeys> {
    if let Some(p) = &c.api_keys {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        return ApiKeys::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
    }
    if !c.embedded {
        bail!("--api-keys is required (lines `NAME SHA256HEX [admin]`, see `codeseal-service hash-key`)");
    }
    let path = c.data_dir.join("api-key");
    let secret = match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => zeroize::Zeroizing::new(s.trim().to_string()),
        _ => {
            use base64::Engine;
            let mut r = [0u8; 24];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut r);
            let s = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            std::io::Write::write_all(&mut opts.open(&path)?, format!("{s}\n").as_bytes())?;
            zeroize::Zeroizing::new(s)
        }
    };
    tracing::info!(file = %path.display(), "embedded mode: API key (name `local`, admin) is in this file");
    Ok(ApiKeys::single("local", &secret))
}

/// Builds the shared state. `listen_url` is the default public URL for embedded presigning;
/// `serves_api` says whether this process answers HTTP (workers need no API keys).
pub async fn build(c: &Common, listen_url: &str, serves_api: bool) -> anyhow::Result<Arc<Ctx>> {
    let settings = Settings {
        max_size: c.max_size,
        part_size: c.part_size.max(1),
        lease: Duration::from_secs(c.lease_seconds.max(1)),
        max_attempts: c.max_attempts.max(1),
        poll_interval: Duration::from_millis(c.poll_interval_ms.clamp(50, 60_000)),
        sign_route: c.enable_sign_route && !c.disable_sign_route,
        upload_ttl: Duration::from_secs(c.upload_ttl_seconds.max(1)),
        work_dir: std::env::temp_dir(),
        timestamp_url: c.timestamp_url.clone(),
        shutdown_grace: Duration::from_secs(c.shutdown_grace),
        step_delay: Duration::from_millis(c.step_delay_ms),
        key_delay: Duration::from_millis(c.key_delay_ms),
        max_receives: c.max_receives.max(1),
        caller_max_in_flight: c.caller_max_in_flight,
        caller_max_bytes_per_day: c.caller_max_bytes_per_day,
        uploads_bucket: c.uploads_bucket.clone(),
        ..Settings::default()
    };
    let mut settings = settings;
    if let Some(r) = c.kms_rate {
        if !(r.is_finite() && r > 0.0) {
            bail!("--kms-rate must be a positive number of calls per second");
        }
    }
    let public = c
        .public_url
        .clone()
        .unwrap_or_else(|| listen_url.to_string());
    let (objects, local, jobs, queue): (Arc<dyn ObjectStore>, _, Arc<dyn JobStore>, _) =
        if c.embedded {
            std::fs::create_dir_all(&c.data_dir)?;
            let local = Arc::new(LocalStore::open(&c.data_dir, &public, settings.part_size)?);
            let jobs = Arc::new(RedbJobs::open(&c.data_dir.join("jobs.redb"))?);
            let queue: Arc<dyn JobQueue> = Arc::new(EmbeddedQueue::new());
            (local.clone(), Some(local), jobs, queue)
        } else {
            aws_stores(c, &settings).await?
        };
    // A queue's long poll returns as soon as a message arrives; polling waits a poll interval.
    settings.receive_wait = if c.queue_url.is_some() && !c.embedded {
        Duration::from_secs(20)
    } else {
        settings.poll_interval
    };
    let c2 = c.clone();
    let (identity, trust, label) =
        tokio::task::spawn_blocking(move || read_identity(&c2)).await??;
    let api_keys = if serves_api {
        read_api_keys(c)?
    } else {
        ApiKeys::default()
    };
    tracing::info!(key = %label, objects = %objects.describe(), jobs = %jobs.describe(), queue = %queue.describe(), kms_rate = ?c.kms_rate, "configured");
    Ok(Arc::new(Ctx {
        objects,
        local,
        jobs,
        signer: Signer::with_verifier(identity, verifier(c, trust)?, label)?,
        api_keys,
        settings,
        metrics: Metrics::default(),
        queue,
        key_rate: c
            .kms_rate
            .map(|r| Arc::new(TokenBucket::new(r, c.kms_burst))),
    }))
}

type Stores = (
    Arc<dyn ObjectStore>,
    Option<Arc<LocalStore>>,
    Arc<dyn JobStore>,
    Arc<dyn JobQueue>,
);

#[cfg(feature = "aws")]
async fn aws_stores(c: &Common, s: &Settings) -> anyhow::Result<Stores> {
    let (Some(up), Some(res), Some(table)) = (&c.uploads_bucket, &c.results_bucket, &c.jobs_table)
    else {
        bail!("give --embedded, or all of --uploads-bucket, --results-bucket and --jobs-table");
    };
    if s.part_size < 5 << 20 {
        bail!("--part-size must be at least 5 MiB with S3");
    }
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let objects = Arc::new(crate::store::s3::S3Store::new(&sdk, up, res));
    let jobs = crate::store::dynamo::DynamoJobs::new(&sdk, table);
    if c.create_table {
        jobs.ensure_table().await?;
    }
    let jobs: Arc<dyn JobStore> = Arc::new(jobs);
    let queue: Arc<dyn JobQueue> = match &c.queue_url {
        Some(url) => Arc::new(crate::queue::sqs::SqsQueue::new(
            &sdk,
            url,
            c.dead_letter_queue_url.as_deref(),
        )),
        None => {
            tracing::warn!("no --queue-url: workers poll the job table (a DynamoDB Scan per poll); configure an SQS queue for more than a few thousand jobs");
            Arc::new(ScanQueue::new(Arc::clone(&jobs), s.poll_interval))
        }
    };
    Ok((objects, None, jobs, queue))
}

#[cfg(not(feature = "aws"))]
async fn aws_stores(_: &Common, _: &Settings) -> anyhow::Result<Stores> {
    bail!("this build has no AWS stores (feature `aws`); use --embedded")
}
