//! An in-process fake of the three KMS operations the backend uses, plugged into the SDK as
//! its HTTP client: no socket, no network. It records every request (target, URI, headers,
//! JSON body) so tests can assert on exactly what the SDK sent, and signs with local keys.
#![allow(dead_code)] // each test binary uses a different subset

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use aws_smithy_runtime_api::{
    client::{
        http::{
            HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings,
            SharedHttpConnector,
        },
        orchestrator::{HttpRequest, HttpResponse},
        runtime_components::RuntimeComponents,
    },
    http::StatusCode,
};
use aws_smithy_types::body::SdkBody;
use codeseal_local::LocalKey;
use codeseal_signer::{DigestAlgorithm, KeyKind, KeySigner};
use der::Encode;

pub const ACCOUNT: &str = "111122223333";
pub const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
pub const ALIAS: &str = "alias/fake-signing";

pub fn arn(region: &str) -> String {
    format!("arn:aws:kms:{region}:{ACCOUNT}:key/{KEY_ID}")
}

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Captured {
    /// The operation, e.g. `Sign` (from `X-Amz-Target: TrentService.Sign`).
    pub operation: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: String,
    pub json: serde_json::Value,
}

/// How the fake key looks to DescribeKey / GetPublicKey.
#[derive(Clone, Debug)]
pub struct FakeKeySpec {
    pub key_spec: &'static str,
    pub key_usage: &'static str,
    pub key_state: &'static str,
    pub signing_algorithms: Vec<&'static str>,
}

struct State {
    region: String,
    key: Arc<LocalKey>,
    /// When set, GetPublicKey returns this key's public key (a mismatch).
    public_override: Option<Arc<LocalKey>>,
    /// When set, Sign signs with this key (a wrong signature).
    sign_override: Option<Arc<LocalKey>>,
    spec: FakeKeySpec,
    /// Operation -> (HTTP status, __type, message).
    errors: HashMap<String, (u16, String, String)>,
    delay: Duration,
    requests: Vec<Captured>,
}

/// The fake. Clone it freely: clones share state.
#[derive(Clone)]
pub struct FakeKms {
    state: Arc<Mutex<State>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    counter: Arc<AtomicUsize>,
}

impl std::fmt::Debug for FakeKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeKms")
    }
}

pub fn spec_of(kind: KeyKind) -> FakeKeySpec {
    let (key_spec, algs): (&str, Vec<&str>) = match kind {
        KeyKind::Rsa { bits: 2048 } => ("RSA_2048", rsa_algs()),
        KeyKind::Rsa { bits: 3072 } => ("RSA_3072", rsa_algs()),
        KeyKind::Rsa { .. } => ("RSA_4096", rsa_algs()),
        KeyKind::EcP256 => ("ECC_NIST_P256", vec!["ECDSA_SHA_256"]),
        KeyKind::EcP384 => ("ECC_NIST_P384", vec!["ECDSA_SHA_384"]),
    };
    FakeKeySpec {
        key_spec,
        key_usage: "SIGN_VERIFY",
        key_state: "Enabled",
        signing_algorithms: algs,
    }
}

fn rsa_algs() -> Vec<&'static str> {
    vec![
        "RSASSA_PKCS1_V1_5_SHA_256",
        "RSASSA_PKCS1_V1_5_SHA_384",
        "RSASSA_PKCS1_V1_5_SHA_512",
        "RSASSA_PSS_SHA_256",
        "RSASSA_PSS_SHA_384",
        "RSASSA_PSS_SHA_512",
    ]
}

/// Keys are slow to make (RSA): make each kind once per test binary.
pub fn local_key(kind: KeyKind) -> Arc<LocalKey> {
    static KEYS: Mutex<Vec<(KeyKind, Arc<LocalKey>)>> = Mutex::new(Vec::new());
    let mut keys = KEYS.lock().expect("keys");
    if let Some((_, k)) = keys.iter().find(|(k, _)| *k == kind) {
        return Arc::clone(k);
    }
    let k = Arc::new(LocalKey::generate(kind).expect("generate key"));
    keys.push((kind, Arc::clone(&k)));
    k
}

impl FakeKms {
    pub fn new(kind: KeyKind) -> Self {
        Self::in_region(kind, "us-east-1")
    }

    pub fn in_region(kind: KeyKind, region: &str) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                region: region.to_owned(),
                key: local_key(kind),
                public_override: None,
                sign_override: None,
                spec: spec_of(kind),
                errors: HashMap::new(),
                delay: Duration::ZERO,
                requests: Vec::new(),
            })),
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: Arc::new(AtomicUsize::new(0)),
            counter: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn with_state(&self, f: impl FnOnce(&mut State)) -> Self {
        f(&mut self.state.lock().expect("state"));
        self.clone()
    }

    pub fn key_arn(&self) -> String {
        arn(&self.state.lock().expect("state").region)
    }

    pub fn with_spec(self, f: impl FnOnce(&mut FakeKeySpec)) -> Self {
        self.with_state(|s| f(&mut s.spec))
    }

    /// Makes `operation` fail with `status` and error `code`.
    pub fn with_error(self, operation: &str, status: u16, code: &str, message: &str) -> Self {
        self.with_state(|s| {
            s.errors.insert(
                operation.to_owned(),
                (status, code.to_owned(), message.to_owned()),
            );
        })
    }

    pub fn with_public_key_of(self, other: Arc<LocalKey>) -> Self {
        self.with_state(|s| s.public_override = Some(other))
    }

    pub fn signing_with(self, other: Arc<LocalKey>) -> Self {
        self.with_state(|s| s.sign_override = Some(other))
    }

    pub fn with_delay(self, d: Duration) -> Self {
        self.with_state(|s| s.delay = d)
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.state.lock().expect("state").requests.clone()
    }

    pub fn requests_of(&self, operation: &str) -> Vec<Captured> {
        self.requests()
            .into_iter()
            .filter(|r| r.operation == operation)
            .collect()
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    fn handle(&self, req: &HttpRequest) -> (u16, serde_json::Value) {
        let target = req
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        let operation = target
            .strip_prefix("TrentService.")
            .unwrap_or(&target)
            .to_owned();
        let body = req
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let mut st = self.state.lock().expect("state");
        st.requests.push(Captured {
            operation: operation.clone(),
            uri: req.uri().to_owned(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            body,
            json: json.clone(),
        });
        if let Some((status, code, message)) = st.errors.get(&operation) {
            return (
                *status,
                serde_json::json!({"__type": code, "message": message}),
            );
        }
        let arn = arn(&st.region);
        let key_id = json["KeyId"].as_str().unwrap_or_default();
        let alias_arn = format!("arn:aws:kms:{}:{ACCOUNT}:{ALIAS}", st.region);
        if ![arn.as_str(), KEY_ID, ALIAS, alias_arn.as_str()].contains(&key_id) {
            return (
                400,
                serde_json::json!({"__type": "NotFoundException",
                    "message": format!("Alias {key_id} is not found.")}),
            );
        }
        let spec = st.spec.clone();
        match operation.as_str() {
            "DescribeKey" => (
                200,
                serde_json::json!({"KeyMetadata": {
                    "AWSAccountId": ACCOUNT,
                    "KeyId": KEY_ID,
                    "Arn": arn,
                    "CreationDate": 1.7e9,
                    "Enabled": spec.key_state == "Enabled",
                    "KeyUsage": spec.key_usage,
                    "KeySpec": spec.key_spec,
                    "CustomerMasterKeySpec": spec.key_spec,
                    "KeyState": spec.key_state,
                    "KeyManager": "CUSTOMER",
                    "Origin": "AWS_KMS",
                    "SigningAlgorithms": spec.signing_algorithms,
                }}),
            ),
            "GetPublicKey" => {
                let k = st.public_override.as_ref().unwrap_or(&st.key);
                let der = k.public_key().to_der().expect("spki der");
                (
                    200,
                    serde_json::json!({
                        "KeyId": arn,
                        "PublicKey": aws_smithy_types::base64::encode(der),
                        "KeyUsage": spec.key_usage,
                        "CustomerMasterKeySpec": spec.key_spec,
                        "SigningAlgorithms": spec.signing_algorithms,
                    }),
                )
            }
            "Sign" => {
                let alg = json["SigningAlgorithm"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let msg = aws_smithy_types::base64::decode(json["Message"].as_str().unwrap_or(""))
                    .unwrap_or_default();
                if json["MessageType"].as_str() != Some("DIGEST") {
                    return (
                        400,
                        serde_json::json!({"__type": "ValidationException",
                            "message": "the fake only signs digests"}),
                    );
                }
                let digest = if alg.ends_with("_256") {
                    DigestAlgorithm::Sha256
                } else if alg.ends_with("_384") {
                    DigestAlgorithm::Sha384
                } else {
                    DigestAlgorithm::Sha512
                };
                let k = st.sign_override.as_ref().unwrap_or(&st.key);
                match k.sign_digest(k.key_kind().with_digest(digest), &msg) {
                    Ok(sig) => (
                        200,
                        serde_json::json!({
                            "KeyId": arn,
                            "Signature": aws_smithy_types::base64::encode(sig),
                            "SigningAlgorithm": alg,
                        }),
                    ),
                    Err(e) => (
                        400,
                        serde_json::json!({"__type": "ValidationException",
                            "message": e.to_string()}),
                    ),
                }
            }
            other => (
                400,
                serde_json::json!({"__type": "UnknownOperationException",
                    "message": format!("the fake does not implement {other}")}),
            ),
        }
    }
}

impl HttpConnector for FakeKms {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move {
            let now = this.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            this.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let delay = this.state.lock().expect("state").delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let (status, json) = this.handle(&request);
            this.in_flight.fetch_sub(1, Ordering::SeqCst);
            let n = this.counter.fetch_add(1, Ordering::SeqCst);
            let mut resp = HttpResponse::new(
                StatusCode::try_from(status).expect("status"),
                SdkBody::from(json.to_string()),
            );
            resp.headers_mut()
                .insert("content-type", "application/x-amz-json-1.1");
            resp.headers_mut()
                .insert("x-amzn-requestid", format!("fake-request-{n}"));
            Ok(resp)
        })
    }
}

impl HttpClient for FakeKms {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// An SdkConfig whose HTTP client is `fake`, with static credentials.
pub fn sdk_config(fake: &FakeKms, secret: &str) -> aws_config::SdkConfig {
    use aws_sdk_kms::config::{Credentials, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDFAKEFAKEFAKE",
            secret,
            None,
            None,
            "codeseal-test",
        )))
        .http_client(fake.clone())
        .build()
}

/// A tracing writer that keeps everything in memory.
#[derive(Clone, Default)]
pub struct LogBuffer(pub Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log")).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A subscriber at TRACE for everything that writes into `buf` (spans included).
pub fn capture_logs(buf: &LogBuffer) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(buf.clone())
        .finish()
}
