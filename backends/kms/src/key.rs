//! [`KmsKey`]: a [`KeySigner`] backed by an AWS KMS asymmetric key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Region, SdkConfig};
use aws_sdk_kms::{
    operation::RequestId,
    primitives::Blob,
    types::{KeySpec, MessageType, SigningAlgorithmSpec},
    Client,
};
use codeseal_signer::{key_kind_of, BoxFuture, KeyKind, KeySigner, SignError, SignatureAlgorithm};
use der::Decode;
use spki::SubjectPublicKeyInfoOwned;
use tokio::sync::Semaphore;
use tracing::{field, instrument::WithSubscriber, Instrument};

use crate::{
    error::{classify, CallContext},
    metadata::{check_key_metadata, signing_algorithm_spec, KeyFacts},
    rt::KeyRuntime,
    KmsError, KmsKeyRef, KmsOptions, RetryMode,
};

/// An AWS KMS asymmetric signing key (RSA 2048/3072/4096, ECC P-256/P-384).
///
/// [`connect`](Self::connect) calls DescribeKey and GetPublicKey once; every later call is a
/// `Sign` with `MessageType=DIGEST` on the key ARN found at connect time (so an alias that is
/// re-pointed while codeseal runs cannot switch keys under it). The message never leaves the
/// machine: only the digest does.
///
/// IAM permissions needed on the key: `kms:DescribeKey`, `kms:GetPublicKey`, `kms:Sign`
/// (narrow them with the `kms:SigningAlgorithm` and `kms:MessageType` condition keys).
///
/// The key owns a one-thread tokio runtime on which all its KMS calls run, so it signs
/// from async code on any executor ([`KeySigner::sign_digest_async`]), from plain threads
/// and from inside another tokio runtime ([`KeySigner::sign_digest`], which blocks only the
/// calling thread). At most [`KmsOptions::max_in_flight`] Sign calls run at once.
pub struct KmsKey {
    shared: Arc<Shared>,
    kind: KeyKind,
    key_spec: KeySpec,
    signing_algorithms: Vec<SigningAlgorithmSpec>,
    public: SubjectPublicKeyInfoOwned,
    requested: KmsKeyRef,
    pinned: KmsKeyRef,
    // Last: the runtime goes after everything that may hold SDK state.
    rt: KeyRuntime,
}

/// KMS API calls made by this process, for benchmarks, metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// DescribeKey calls.
    pub describe_key: u64,
    /// GetPublicKey calls.
    pub get_public_key: u64,
    /// Sign calls.
    pub sign: u64,
}

struct Counters {
    describe_key: AtomicU64,
    get_public_key: AtomicU64,
    sign: AtomicU64,
}

static CALLS: Counters = Counters {
    describe_key: AtomicU64::new(0),
    get_public_key: AtomicU64::new(0),
    sign: AtomicU64::new(0),
};

/// The KMS API calls this process has made so far (attempts, not retries).
pub fn call_counts() -> CallCounts {
    CallCounts {
        describe_key: CALLS.describe_key.load(Ordering::Relaxed),
        get_public_key: CALLS.get_public_key.load(Ordering::Relaxed),
        sign: CALLS.sign.load(Ordering::Relaxed),
    }
}

/// What the sign tasks need ('static, shared with the runtime's tasks).
struct Shared {
    client: Client,
    arn: String,
    semaphore: Semaphore,
    cx: CallContext,
}

struct Parts {
    client: Client,
    facts: KeyFacts,
    public: SubjectPublicKeyInfoOwned,
    kind: KeyKind,
    location: String,
}

impl fmt::Debug for KmsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsKey")
            .field("arn", &self.shared.arn)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Loads the AWS configuration as [`KmsKey::connect`] does: the default chain
/// (environment, shared config files, SSO, web identity, `credential_process`, ECS, IMDS)
/// with [`BehaviorVersion::latest`], plus the profile, region and FIPS choices of `opts`.
pub async fn load_sdk_config(opts: &KmsOptions) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(p) = &opts.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &opts.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(f) = opts.use_fips {
        loader = loader.use_fips(f);
    }
    loader.load().await
}

/// The KMS client configuration for `key_ref`: `sdk` plus the options. Precedence for the
/// region: `opts.region`, the ARN's region, the configured one; for the endpoint: the
/// `awskms://HOST:PORT/` endpoint, `opts.endpoint_url`, the configured one.
fn service_config(
    key_ref: &KmsKeyRef,
    sdk: &SdkConfig,
    opts: &KmsOptions,
) -> Result<(aws_sdk_kms::Config, String), KmsError> {
    let mut b = aws_sdk_kms::config::Builder::from(sdk);
    let region = opts
        .region
        .clone()
        .or_else(|| key_ref.region().map(str::to_owned))
        .map(Region::new)
        .or_else(|| sdk.region().cloned());
    let Some(region) = region else {
        return Err(KmsError::Config {
            message: "no AWS region: set AWS_REGION, a region in the AWS profile, \
                      a region option, or use a key ARN"
                .into(),
        });
    };
    b.set_region(Some(region.clone()));
    let endpoint = key_ref.endpoint_url().or_else(|| opts.endpoint_url.clone());
    if let Some(url) = &endpoint {
        b.set_endpoint_url(Some(url.clone()));
    }
    if let Some(f) = opts.use_fips {
        b.set_use_fips(Some(f));
    }
    if opts.retry_mode.is_some() || opts.max_attempts.is_some() {
        let mut rc = sdk
            .retry_config()
            .cloned()
            .unwrap_or_else(RetryConfig::standard);
        if let Some(mode) = opts.retry_mode {
            rc = match mode {
                RetryMode::Standard => rc.with_retry_mode(aws_config::retry::RetryMode::Standard),
                RetryMode::Adaptive => rc.with_retry_mode(aws_config::retry::RetryMode::Adaptive),
            };
        }
        if let Some(n) = opts.max_attempts {
            rc = rc.with_max_attempts(n);
        }
        b.set_retry_config(Some(rc));
    }
    if opts.connect_timeout.is_some() || opts.attempt_timeout.is_some() {
        let mut tb = sdk
            .timeout_config()
            .map(TimeoutConfig::to_builder)
            .unwrap_or_default();
        if let Some(t) = opts.connect_timeout {
            tb = tb.connect_timeout(t);
        }
        if let Some(t) = opts.attempt_timeout {
            tb = tb.operation_attempt_timeout(t);
        }
        b.set_timeout_config(Some(tb.build()));
    }
    let location = match (endpoint.as_deref(), sdk.endpoint_url()) {
        (Some(url), _) | (None, Some(url)) => url.to_owned(),
        (None, None) => {
            let fips = opts.use_fips.or(sdk.use_fips()).unwrap_or(false);
            format!(
                "region {region}{}",
                if fips { " (FIPS endpoint)" } else { "" }
            )
        }
    };
    Ok((b.build(), location))
}

async fn connect_parts(
    key_ref: KmsKeyRef,
    sdk: SdkConfig,
    opts: KmsOptions,
) -> Result<Parts, KmsError> {
    let (conf, location) = service_config(&key_ref, &sdk, &opts)?;
    let client = Client::from_conf(conf);
    let cx = CallContext {
        key: key_ref.key_id().to_owned(),
        location: location.clone(),
    };
    CALLS.describe_key.fetch_add(1, Ordering::Relaxed);
    let described = client
        .describe_key()
        .key_id(key_ref.key_id())
        .send()
        .await
        .map_err(|e| classify(e, "DescribeKey", &cx))?;
    let meta = described
        .key_metadata()
        .ok_or_else(|| KmsError::InvalidResponse {
            key: cx.key.clone(),
            what: "DescribeKey answer",
            reason: "no KeyMetadata".into(),
        })?;
    let facts = check_key_metadata(key_ref.key_id(), meta)?;
    tracing::debug!(
        key = %facts.arn,
        spec = facts.key_spec.as_str(),
        request_id = described.request_id().unwrap_or("-"),
        "described AWS KMS key"
    );

    // GetPublicKey on the ARN DescribeKey returned: the same key even if an alias moves.
    let cx = CallContext {
        key: facts.arn.clone(),
        location: location.clone(),
    };
    CALLS.get_public_key.fetch_add(1, Ordering::Relaxed);
    let got = client
        .get_public_key()
        .key_id(&facts.arn)
        .send()
        .await
        .map_err(|e| classify(e, "GetPublicKey", &cx))?;
    let bad = |reason: String| KmsError::InvalidResponse {
        key: facts.arn.clone(),
        what: "public key",
        reason,
    };
    if let Some(id) = got.key_id() {
        if id != facts.arn && id != facts.key_id {
            return Err(bad(format!("GetPublicKey answered for another key, {id}")));
        }
    }
    let der = got
        .public_key()
        .ok_or_else(|| bad("GetPublicKey returned no PublicKey".into()))?;
    let public = SubjectPublicKeyInfoOwned::from_der(der.as_ref())
        .map_err(|e| bad(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
    let kind = key_kind_of(&public).map_err(|e| bad(e.to_string()))?;
    if kind != facts.kind {
        return Err(bad(format!(
            "the public key is {kind} but the key spec is {}",
            facts.key_spec.as_str()
        )));
    }
    Ok(Parts {
        client,
        facts,
        public,
        kind,
        location,
    })
}

impl KmsKey {
    /// Connects to the key: loads the AWS configuration ([`load_sdk_config`]), then calls
    /// DescribeKey (the key must be an enabled SIGN_VERIFY key of a supported spec) and
    /// GetPublicKey, once.
    pub async fn connect(key_ref: &KmsKeyRef, opts: &KmsOptions) -> Result<Self, KmsError> {
        opts.validate()?;
        let rt = KeyRuntime::new()?;
        let (r, o) = (key_ref.clone(), opts.clone());
        let fut = async move {
            let sdk = load_sdk_config(&o).await;
            connect_parts(r, sdk, o).await
        };
        let parts = rt.run(fut.with_current_subscriber()).await??;
        Ok(Self::assemble(rt, key_ref, opts, parts))
    }

    /// [`connect`](Self::connect) with an AWS configuration the caller loaded (for an
    /// application that already has one, or a custom HTTP client). The options still apply
    /// on top of it (region, endpoint, FIPS, retries, timeouts, in-flight limit; `profile`
    /// is ignored since the configuration is already loaded).
    pub async fn connect_with_sdk_config(
        key_ref: &KmsKeyRef,
        sdk: &SdkConfig,
        opts: &KmsOptions,
    ) -> Result<Self, KmsError> {
        opts.validate()?;
        let rt = KeyRuntime::new()?;
        let fut = connect_parts(key_ref.clone(), sdk.clone(), opts.clone());
        let parts = rt.run(fut.with_current_subscriber()).await??;
        Ok(Self::assemble(rt, key_ref, opts, parts))
    }

    /// [`connect`](Self::connect) for callers without async code: blocks the calling thread
    /// (which may be inside a tokio runtime) until connected.
    pub fn connect_blocking(key_ref: &KmsKeyRef, opts: &KmsOptions) -> Result<Self, KmsError> {
        opts.validate()?;
        let rt = KeyRuntime::new()?;
        let (r, o) = (key_ref.clone(), opts.clone());
        let fut = async move {
            let sdk = load_sdk_config(&o).await;
            connect_parts(r, sdk, o).await
        };
        let parts = rt.block_on(fut.with_current_subscriber())??;
        Ok(Self::assemble(rt, key_ref, opts, parts))
    }

    fn assemble(rt: KeyRuntime, key_ref: &KmsKeyRef, opts: &KmsOptions, p: Parts) -> Self {
        let pinned = key_ref.with_key_arn(&p.facts.arn);
        Self {
            shared: Arc::new(Shared {
                client: p.client,
                arn: p.facts.arn.clone(),
                semaphore: Semaphore::new(opts.max_in_flight.clamp(1, Semaphore::MAX_PERMITS)),
                cx: CallContext {
                    key: p.facts.arn,
                    location: p.location,
                },
            }),
            kind: p.kind,
            key_spec: p.facts.key_spec,
            signing_algorithms: p.facts.signing_algorithms,
            public: p.public,
            requested: key_ref.clone(),
            pinned,
            rt,
        }
    }

    /// The key ARN.
    pub fn arn(&self) -> &str {
        &self.shared.arn
    }

    /// The key spec, e.g. `RSA_4096`.
    pub fn key_spec(&self) -> &KeySpec {
        &self.key_spec
    }

    /// The signing algorithms KMS allows with this key.
    pub fn signing_algorithms(&self) -> &[SigningAlgorithmSpec] {
        &self.signing_algorithms
    }

    /// The reference the key was connected with (possibly an alias).
    pub fn requested_ref(&self) -> &KmsKeyRef {
        &self.requested
    }

    /// A reference to exactly this key: its ARN, with the endpoint of the requested
    /// reference if it had one.
    pub fn pinned_ref(&self) -> &KmsKeyRef {
        &self.pinned
    }

    /// Checks a request and builds the (lazy, 'static) Sign task for it.
    fn prepare_sign(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<
        impl std::future::Future<Output = Result<Vec<u8>, KmsError>> + Send + 'static,
        SignError,
    > {
        let spec = match signing_algorithm_spec(algorithm) {
            Some(s) if algorithm.key == self.kind && self.signing_algorithms.contains(&s) => s,
            _ => {
                return Err(SignError::UnsupportedAlgorithm {
                    key: self.kind,
                    requested: algorithm,
                })
            }
        };
        let expected = algorithm.digest.output_len();
        if digest.len() != expected {
            return Err(SignError::DigestLength {
                algorithm: algorithm.digest,
                expected,
                actual: digest.len(),
            });
        }
        let span = tracing::info_span!(
            "kms_sign",
            key = %self.shared.arn,
            algorithm = spec.as_str(),
            request_id = field::Empty,
            duration_ms = field::Empty,
        );
        let shared = Arc::clone(&self.shared);
        let digest = digest.to_vec();
        Ok(sign_task(shared, spec, digest)
            .instrument(span)
            .with_current_subscriber())
    }
}

async fn sign_task(
    shared: Arc<Shared>,
    spec: SigningAlgorithmSpec,
    digest: Vec<u8>,
) -> Result<Vec<u8>, KmsError> {
    let _permit = shared
        .semaphore
        .acquire()
        .await
        .map_err(|_| KmsError::Runtime {
            message: "the Sign call limiter was closed".into(),
        })?;
    let digest_hex = hex_string(&digest);
    let start = Instant::now();
    CALLS.sign.fetch_add(1, Ordering::Relaxed);
    let result = shared
        .client
        .sign()
        .key_id(&shared.arn)
        .message(Blob::new(digest))
        .message_type(MessageType::Digest)
        .signing_algorithm(spec.clone())
        .send()
        .await;
    let elapsed = start.elapsed();
    let span = tracing::Span::current();
    span.record("duration_ms", millis(elapsed));
    let request_id = match &result {
        Ok(o) => o.request_id(),
        Err(e) => e.request_id(),
    }
    .unwrap_or("-")
    .to_owned();
    span.record("request_id", request_id.as_str());
    let out = match result {
        Ok(o) => o,
        Err(e) => {
            let e = classify(e, "Sign", &shared.cx);
            tracing::debug!(request_id = %request_id, error = %e, "AWS KMS Sign failed");
            return Err(e);
        }
    };
    let bad = |reason: String| KmsError::InvalidResponse {
        key: shared.arn.clone(),
        what: "Sign answer",
        reason,
    };
    if let Some(id) = out.key_id() {
        if id != shared.arn {
            return Err(bad(format!("signed with another key, {id}")));
        }
    }
    if let Some(alg) = out.signing_algorithm() {
        if *alg != spec {
            return Err(bad(format!(
                "signed with {} instead of {}",
                alg.as_str(),
                spec.as_str()
            )));
        }
    }
    let sig = out
        .signature
        .ok_or_else(|| bad("no Signature".into()))?
        .into_inner();
    tracing::debug!(
        request_id = %request_id,
        digest = %digest_hex,
        duration_ms = millis(elapsed),
        "AWS KMS signed a digest"
    );
    Ok(sig)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn hex_string(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl KeySigner for KmsKey {
    fn key_kind(&self) -> KeyKind {
        self.kind
    }

    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public
    }

    /// The cosign-style URI of the key ARN, e.g. `awskms:///arn:aws:kms:...:key/...`.
    fn describe(&self) -> String {
        self.pinned.to_uri()
    }

    /// RSA keys: RSASSA-PKCS1-v1_5 with SHA-256/384/512; P-256: ECDSA with SHA-256; P-384:
    /// ECDSA with SHA-384; in each case only if the key's SigningAlgorithms list it.
    fn supports(&self, algorithm: SignatureAlgorithm) -> bool {
        algorithm.key == self.kind
            && signing_algorithm_spec(algorithm)
                .is_some_and(|s| self.signing_algorithms.contains(&s))
    }

    fn sign_digest(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        let task = self.prepare_sign(algorithm, digest)?;
        Ok(self.rt.block_on(task)??)
    }

    fn sign_digest_async<'a>(
        &'a self,
        algorithm: SignatureAlgorithm,
        digest: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, SignError>> {
        match self.prepare_sign(algorithm, digest) {
            Err(e) => Box::pin(std::future::ready(Err(e))),
            Ok(task) => {
                let run = self.rt.run(task);
                Box::pin(async move { Ok(run.await??) })
            }
        }
    }
}
