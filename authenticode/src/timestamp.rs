//! Time stamps: RFC 3161 (unsigned attribute 1.3.6.1.4.1.311.3.3.1 holding the token) and
//! legacy Authenticode (a PKCS#9 countersignature, 1.2.840.113549.1.9.6).
//!
//! The client stamps the **signature bytes** of a SignerInfo (its encryptedDigest), tries
//! several TSA URLs in turn with retries and backoff within a total time budget, validates
//! every reply fully before it is used, and never returns "no time stamp" when one was asked
//! for: it returns an error instead, and the caller writes nothing.
use std::{
    fmt,
    time::{Duration, Instant},
};

use base64::Engine;
use cms::content_info::ContentInfo;
use codeseal_signer::DigestAlgorithm;
use const_oid::ObjectIdentifier;
use der::{
    asn1::{Any, Int, OctetString},
    Decode, Encode, Sequence,
};
use serde::Serialize;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_tsp::{MessageImprint, TimeStampReq, TspVersion};

use crate::{
    asn1::{self, Time},
    error::Error,
    oid::{
        ID_AA_SIGNING_CERTIFICATE, ID_AA_SIGNING_CERTIFICATE_V2, ID_CT_TST_INFO, ID_DATA,
        ID_KP_TIME_STAMPING, PKCS9_COUNTERSIGNATURE, PKCS9_SIGNING_TIME, SPC_RFC3161_TIMESTAMP,
        SPC_TIME_STAMP_REQUEST,
    },
    pkcs7::{find_signer, verify_cms_signer},
};

/// The largest reply accepted from a TSA.
pub const MAX_REPLY: u64 = 1 << 20;

/// Which time-stamp protocol to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// RFC 3161 (SignTool `/tr`, osslsigncode `-ts`): the default.
    Rfc3161,
    /// Legacy Authenticode (SignTool `/t`, osslsigncode `-t`).
    Legacy,
}

/// How to time-stamp.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TimestampOptions {
    /// TSA URLs, tried in turn (rotated per attempt).
    pub urls: Vec<String>,
    /// The protocol.
    pub protocol: Protocol,
    /// Hash for the RFC 3161 message imprint.
    pub digest: DigestAlgorithm,
    /// Attempts in all (at least one per URL).
    pub attempts: u32,
    /// Wait before the second attempt; doubles after each further one.
    pub retry_wait: Duration,
    /// Connect + read timeout of one request.
    pub timeout: Duration,
    /// Time budget for all attempts.
    pub budget: Duration,
    /// TSA policy to ask for (RFC 3161).
    pub policy: Option<ObjectIdentifier>,
    /// How far the token's time may be from this machine's clock.
    pub max_clock_skew: Duration,
    /// How requests are sent: [`UreqTransport`] (HTTP/HTTPS, the system's proxy settings are
    /// not read) unless replaced, e.g. by a proxy, a custom TLS stack or a test double.
    pub transport: SharedTransport,
}

/// A [`Transport`] shared by the clones of a [`TimestampOptions`].
#[derive(Clone)]
pub struct SharedTransport(pub std::sync::Arc<dyn Transport>);

impl Default for SharedTransport {
    fn default() -> Self {
        Self(std::sync::Arc::new(UreqTransport))
    }
}

impl fmt::Debug for SharedTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedTransport(..)")
    }
}

impl<T: Transport + 'static> From<T> for SharedTransport {
    fn from(t: T) -> Self {
        Self(std::sync::Arc::new(t))
    }
}

impl TimestampOptions {
    /// Sets `urls`: tSA URLs, tried in turn (rotated per attempt).
    pub fn with_urls(mut self, urls: Vec<String>) -> Self {
        self.urls = urls;
        self
    }
    /// Sets `protocol`: the protocol.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }
    /// Sets `digest`: hash for the RFC 3161 message imprint.
    pub fn with_digest(mut self, digest: DigestAlgorithm) -> Self {
        self.digest = digest;
        self
    }
    /// Sets `attempts`: attempts in all (at least one per URL).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }
    /// Sets `retry_wait`: wait before the second attempt; doubles after each further one.
    pub fn with_retry_wait(mut self, retry_wait: Duration) -> Self {
        self.retry_wait = retry_wait;
        self
    }
    /// Sets `timeout`: connect + read timeout of one request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Sets `budget`: time budget for all attempts.
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }
    /// Sets `policy`: tSA policy to ask for (RFC 3161).
    pub fn with_policy(mut self, policy: Option<ObjectIdentifier>) -> Self {
        self.policy = policy;
        self
    }
    /// Sets `max_clock_skew`: how far the token's time may be from this machine's clock.
    pub fn with_max_clock_skew(mut self, max_clock_skew: Duration) -> Self {
        self.max_clock_skew = max_clock_skew;
        self
    }

    /// Sends requests through `transport` instead of [`UreqTransport`].
    pub fn with_transport(mut self, transport: impl Into<SharedTransport>) -> Self {
        self.transport = transport.into();
        self
    }
}

impl Default for TimestampOptions {
    fn default() -> Self {
        Self {
            urls: vec![],
            protocol: Protocol::Rfc3161,
            digest: DigestAlgorithm::Sha256,
            attempts: 3,
            retry_wait: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            budget: Duration::from_secs(120),
            policy: None,
            max_clock_skew: Duration::from_secs(24 * 3600),
            transport: SharedTransport::default(),
        }
    }
}

/// Why a time stamp could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// No URL was given.
    #[error("no time-stamp server URL was given")]
    NoUrl,
    /// The request did not get through (connection refused, timeout, ...).
    #[error("time-stamp server {url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The server answered with an HTTP error.
    #[error("time-stamp server {url} answered HTTP {status}{hint}")]
    Http {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// A hint about the protocol, if the answer suggests a mix-up.
        hint: String,
    },
    /// The reply could not be parsed.
    #[error("time-stamp server {url} sent a malformed reply: {reason}{hint}")]
    Malformed {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
        /// A hint about the protocol, if the answer suggests a mix-up.
        hint: String,
    },
    /// The server refused to time-stamp (a validated PKIStatus rejection).
    #[error("time-stamp server {url} refused: status {status}{text}")]
    Rejected {
        /// The URL.
        url: String,
        /// The PKIStatus.
        status: u8,
        /// The status string, if any.
        text: String,
    },
    /// The reply parsed but is not a valid time stamp for this request.
    #[error("time-stamp server {url} sent an invalid time stamp: {reason}")]
    Invalid {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Every attempt failed; the last error says why.
    #[error("no time stamp after {attempts} attempt(s) within {budget:?}: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The budget.
        budget: Duration,
        /// The last error.
        last: Box<TimestampError>,
    },
}

impl TimestampError {
    fn retriable(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::Malformed { .. } | Self::Invalid { .. } => true,
            Self::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

impl From<TimestampError> for Error {
    fn from(e: TimestampError) -> Self {
        Error::Timestamp(e.to_string())
    }
}

/// An HTTP reply.
#[derive(Clone, Debug)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Content-Type, if sent.
    pub content_type: Option<String>,
    /// Body (at most [`MAX_REPLY`] bytes).
    pub body: Vec<u8>,
}

/// Sends one POST. The default is [`UreqTransport`]; tests may plug in another in addition.
pub trait Transport: Send + Sync {
    /// POSTs `body` to `url`, with a timeout.
    fn post(
        &self,
        url: &str,
        content_type: &str,
        body: &[u8],
        timeout: Duration,
    ) -> std::result::Result<HttpReply, String>;
}

/// HTTP(S) through `ureq`.
#[derive(Clone, Copy, Debug, Default)]
pub struct UreqTransport;

impl Transport for UreqTransport {
    fn post(
        &self,
        url: &str,
        content_type: &str,
        body: &[u8],
        timeout: Duration,
    ) -> std::result::Result<HttpReply, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent
            .post(url)
            .header("Content-Type", content_type)
            .header("Accept", "*/*")
            .send(body)
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_REPLY)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok(HttpReply {
            status,
            content_type,
            body,
        })
    }
}

/// A validated time stamp, ready to embed as an unsigned attribute.
#[derive(Clone, Debug)]
pub struct Stamp {
    /// The protocol.
    pub protocol: Protocol,
    /// The attribute OID (RFC 3161 token or PKCS#9 countersignature).
    pub attr_oid: ObjectIdentifier,
    /// The attribute value (a ContentInfo for RFC 3161, a SignerInfo for legacy).
    pub value: Any,
    /// Certificates to add to the signature's SignedData (legacy: the TSA's chain).
    pub certs: Vec<Certificate>,
    /// The time stamped.
    pub time: Time,
    /// The TSA certificate's subject.
    pub tsa: String,
    /// The URL that answered.
    pub url: String,
}

/// Time-stamps `signature` (the bytes of a SignerInfo's signature) with the configured TSAs.
pub fn stamp(
    signature: &[u8],
    opts: &TimestampOptions,
    transport: &dyn Transport,
) -> std::result::Result<Stamp, TimestampError> {
    if opts.urls.is_empty() {
        return Err(TimestampError::NoUrl);
    }
    let start = Instant::now();
    let attempts = opts.attempts.max(opts.urls.len() as u32).max(1);
    let mut wait = opts.retry_wait;
    let mut last = None;
    let mut made = 0;
    // A URL that failed in a way retrying cannot fix (HTTP 4xx, an invalid token) is not
    // tried again; the others still are.
    let mut dead = vec![false; opts.urls.len()];
    for i in 0..attempts {
        let n = opts.urls.len();
        let Some(idx) = (0..n)
            .map(|k| (i as usize + k) % n)
            .find(|&k| !dead.get(k).copied().unwrap_or(true))
        else {
            break;
        };
        let Some(url) = opts.urls.get(idx) else {
            break;
        };
        if i > 0 {
            let left = opts.budget.saturating_sub(start.elapsed());
            if left <= wait {
                break;
            }
            std::thread::sleep(wait);
            wait = wait.saturating_mul(2);
        }
        made += 1;
        let res = match opts.protocol {
            Protocol::Rfc3161 => rfc3161_once(url, signature, opts, transport),
            Protocol::Legacy => legacy_once(url, signature, opts, transport),
        };
        match res {
            Ok(s) => {
                tracing::info!(url = %url, tsa = %s.tsa, "time stamp obtained");
                return Ok(s);
            }
            Err(e) => {
                tracing::warn!(url = %url, error = %e, attempt = i + 1, "time stamp attempt failed");
                let retry = e.retriable();
                let rejected = matches!(e, TimestampError::Rejected { .. });
                last = Some(e);
                if rejected {
                    // A validated refusal: the TSA answered properly and said no.
                    break;
                }
                if !retry {
                    if let Some(d) = dead.get_mut(idx) {
                        *d = true;
                    }
                }
            }
        }
        if start.elapsed() >= opts.budget {
            break;
        }
    }
    let last = last.unwrap_or(TimestampError::NoUrl);
    match last {
        e @ (TimestampError::Rejected { .. } | TimestampError::NoUrl) if made <= 1 => Err(e),
        e => Err(TimestampError::Exhausted {
            attempts: made,
            budget: opts.budget,
            last: Box::new(e),
        }),
    }
}

fn random_nonce() -> [u8; 8] {
    use rand::RngCore;
    let mut n = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n[0] &= 0x7f; // positive INTEGER
    if n[0] == 0 {
        n[0] = 1; // minimal encoding, still 64 bits of which 63 random
    }
    n
}

fn looks_like_base64(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter()
            .take(64)
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'\r' | b'\n'))
}

fn rfc3161_once(
    url: &str,
    signature: &[u8],
    opts: &TimestampOptions,
    t: &dyn Transport,
) -> std::result::Result<Stamp, TimestampError> {
    let imprint = opts.digest.digest(signature);
    let nonce = random_nonce();
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: opts.digest.algorithm_identifier(),
            hashed_message: OctetString::new(imprint.clone()).map_err(|e| invalid(url, e))?,
        },
        req_policy: opts.policy,
        nonce: Some(Int::new(&nonce).map_err(|e| invalid(url, e))?),
        cert_req: true,
        extensions: None,
    };
    let body = req.to_der().map_err(|e| invalid(url, e))?;
    let reply = t
        .post(url, "application/timestamp-query", &body, opts.timeout)
        .map_err(|reason| TimestampError::Transport {
            url: url.into(),
            reason,
        })?;
    let hint_legacy = if looks_like_base64(&reply.body) {
        " (the reply looks like a legacy Authenticode time stamp: is this URL for legacy (-t) time stamps? use the legacy protocol)".to_string()
    } else {
        String::new()
    };
    if reply.status != 200 {
        return Err(TimestampError::Http {
            url: url.into(),
            status: reply.status,
            hint: if (400..500).contains(&reply.status) {
                " (if this server speaks only legacy Authenticode time stamps, use the legacy protocol)".into()
            } else {
                hint_legacy
            },
        });
    }
    let malformed = |reason: String| TimestampError::Malformed {
        url: url.into(),
        reason,
        hint: hint_legacy.clone(),
    };
    let resp = Resp::from_der(&reply.body).map_err(|e| malformed(format!("TimeStampResp: {e}")))?;
    let status = u8::try_from(resp.status.status).unwrap_or(u8::MAX);
    if status > 1 {
        let text = resp
            .status
            .status_string
            .as_ref()
            .map(|s| format!(" ({})", s.join("; ")))
            .unwrap_or_default();
        let fail = resp
            .status
            .fail_info
            .as_ref()
            .map(|b| format!(" failInfo bits {}", hex::encode(b.raw_bytes())))
            .unwrap_or_default();
        return Err(TimestampError::Rejected {
            url: url.into(),
            status,
            text: text + &fail,
        });
    }
    let token = resp
        .token
        .ok_or_else(|| malformed("status granted but no token".into()))?;
    let token_der = token.to_der().map_err(|e| malformed(e.to_string()))?;
    let v = validate_token(
        &token_der,
        Some((opts.digest, &imprint)),
        Some(&nonce),
        opts.policy,
    )
    .map_err(|reason| TimestampError::Invalid {
        url: url.into(),
        reason,
    })?;
    check_time(&v.time, opts.max_clock_skew).map_err(|reason| TimestampError::Invalid {
        url: url.into(),
        reason,
    })?;
    Ok(Stamp {
        protocol: Protocol::Rfc3161,
        attr_oid: SPC_RFC3161_TIMESTAMP,
        value: Any::from_der(&token_der).map_err(|e| malformed(e.to_string()))?,
        certs: vec![],
        time: v.time,
        tsa: v.tsa_subject,
        url: url.into(),
    })
}

fn invalid(url: &str, e: impl std::fmt::Display) -> TimestampError {
    TimestampError::Invalid {
        url: url.into(),
        reason: e.to_string(),
    }
}

fn check_time(t: &Time, skew: Duration) -> std::result::Result<(), String> {
    let then = t.to_unix_duration();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let diff = then.abs_diff(now);
    if diff > skew {
        return Err(format!(
            "its time {} is {}s away from this machine's clock",
            t.rfc3339(),
            diff.as_secs()
        ));
    }
    Ok(())
}

/// `TimeStampResp`, read leniently: x509-tsp's type rejects valid `failInfo` bit strings
/// longer than its flag set, and a rejection must still be read to be reported.
#[derive(Clone, Debug, Sequence)]
struct Resp {
    status: RespStatus,
    #[asn1(optional = "true")]
    token: Option<ContentInfo>,
}

#[derive(Clone, Debug, Sequence)]
struct RespStatus {
    status: u32,
    #[asn1(optional = "true")]
    status_string: Option<Vec<String>>,
    #[asn1(optional = "true")]
    fail_info: Option<der::asn1::BitString>,
}

/// What a valid RFC 3161 token says.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    /// genTime.
    pub time: Time,
    /// The TSA certificate's subject.
    pub tsa_subject: String,
    /// The TSA certificate.
    pub tsa_cert: Certificate,
    /// The token's certificates.
    pub certs: Vec<Certificate>,
    /// The message imprint's algorithm.
    pub imprint_algorithm: Option<DigestAlgorithm>,
    /// The message imprint.
    pub imprint: Vec<u8>,
}

#[derive(Clone, Debug, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
struct EssCertId {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
struct SigningCertificate {
    certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// What is wrong with a TSA certificate's extended key usage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsaEkuError {
    /// No extendedKeyUsage extension.
    #[error("the TSA certificate has no extended key usage")]
    Missing,
    /// The extension cannot be read.
    #[error("the TSA certificate's extended key usage cannot be read: {0}")]
    Unreadable(String),
    /// timeStamping is not among the purposes.
    #[error("the TSA certificate lacks the timeStamping extended key usage")]
    NoTimeStamping,
    /// The extension is not marked critical (RFC 3161 §2.3 requires it).
    #[error(
        "the TSA certificate's timeStamping extended key usage is not critical (RFC 3161 §2.3)"
    )]
    NotCritical,
}

/// Checks that the TSA certificate has the timeStamping EKU, marked critical (RFC 3161 §2.3).
pub fn check_tsa_eku(cert: &Certificate) -> std::result::Result<(), TsaEkuError> {
    let eku = crate::chain::Eku::of(cert)
        .map_err(TsaEkuError::Unreadable)?
        .ok_or(TsaEkuError::Missing)?;
    if !eku.contains(&ID_KP_TIME_STAMPING) {
        return Err(TsaEkuError::NoTimeStamping);
    }
    if !eku.critical {
        return Err(TsaEkuError::NotCritical);
    }
    Ok(())
}

/// The fields of a TSTInfo a verifier uses, read in one pass. genTime is read in every form
/// RFC 3161 allows (with a fraction of a second, as Microsoft's TSAs send it), which a strict
/// DER `GeneralizedTime` refuses.
#[derive(Clone, Debug)]
struct TstFields {
    policy: ObjectIdentifier,
    imprint_algorithm: ObjectIdentifier,
    imprint: Vec<u8>,
    gen_time: Time,
    nonce: Option<Vec<u8>>,
}

fn parse_tst_info(der: &[u8]) -> std::result::Result<TstFields, String> {
    let e = |e: asn1::Asn1Error| format!("TSTInfo: {e}");
    let t = asn1::Tlv::exactly(der)
        .and_then(|t| t.expect(asn1::tag::SEQUENCE, "TSTInfo (SEQUENCE)"))
        .map_err(e)?;
    let mut c = t.children();
    let version = c
        .required("version")
        .and_then(|v| v.small_uint())
        .map_err(e)?;
    if version != 1 {
        return Err(format!("TSTInfo version {version}, expected 1"));
    }
    let policy = c.required("policy").and_then(|p| p.oid()).map_err(e)?;
    let mi = c
        .required("messageImprint")
        .and_then(|m| m.expect(asn1::tag::SEQUENCE, "messageImprint (SEQUENCE)"))
        .map_err(e)?;
    let mut m = mi.children();
    let alg = m
        .required("hashAlgorithm")
        .and_then(|a| a.expect(asn1::tag::SEQUENCE, "hashAlgorithm (SEQUENCE)"))
        .map_err(e)?;
    let imprint_algorithm = alg
        .children()
        .required("algorithm")
        .and_then(|o| o.oid())
        .map_err(e)?;
    let imprint = m
        .required("hashedMessage")
        .and_then(|h| h.expect(asn1::tag::OCTET_STRING, "hashedMessage (OCTET STRING)"))
        .map_err(e)?
        .value
        .to_vec();
    c.required("serialNumber")
        .and_then(|s| s.expect(asn1::tag::INTEGER, "serialNumber (INTEGER)"))
        .map_err(e)?;
    let gen_time = c
        .required("genTime")
        .and_then(|g| g.expect(asn1::tag::GENERALIZED_TIME, "genTime (GeneralizedTime)"))
        .and_then(|g| Time::generalized(g.value))
        .map_err(e)?;
    // accuracy, ordering, nonce, tsa, extensions: only the nonce is used.
    let mut nonce = None;
    for f in c {
        let f = f.map_err(e)?;
        if f.tag == asn1::tag::INTEGER {
            nonce = Some(f.value.to_vec());
        }
    }
    Ok(TstFields {
        policy,
        imprint_algorithm,
        imprint,
        gen_time,
        nonce,
    })
}

/// Validates an RFC 3161 token (a DER ContentInfo): SignedData over a TSTInfo, imprint and
/// nonce equal to the request's (when given), ESSCertID(v2) naming the TSA certificate, the
/// signature over the original signed attributes, the TSA certificate's critical
/// timeStamping EKU and its validity at genTime.
pub fn validate_token(
    token_der: &[u8],
    imprint: Option<(DigestAlgorithm, &[u8])>,
    nonce: Option<&[u8]>,
    policy: Option<ObjectIdentifier>,
) -> std::result::Result<TokenInfo, String> {
    let ci = crate::pkcs7::parse_content_info(token_der).map_err(|e| format!("token: {e}"))?;
    if ci.content_info.raw.len() != token_der.len() {
        return Err("token: bytes after the ContentInfo".into());
    }
    let sd = ci.signed_data;
    if sd.content_type != ID_CT_TST_INFO {
        return Err(format!(
            "the token content is {}, not TSTInfo",
            sd.content_type
        ));
    }
    let econtent = sd.content.ok_or("the token has no TSTInfo")?;
    let tst_bytes = econtent
        .expect(
            asn1::tag::OCTET_STRING,
            "the TSTInfo wrapper (OCTET STRING)",
        )
        .map_err(|e| e.to_string())?
        .value;
    let tst = parse_tst_info(tst_bytes)?;
    let imprint_algorithm = DigestAlgorithm::from_oid(&tst.imprint_algorithm);
    if let Some((alg, want)) = imprint {
        if imprint_algorithm != Some(alg) || tst.imprint != want {
            return Err(
                "the message imprint is not the one requested (a reply for another request)".into(),
            );
        }
    }
    if let Some(n) = nonce {
        match &tst.nonce {
            Some(got) if got == n => {}
            Some(_) => {
                return Err(
                    "the nonce differs from the request's (replayed or mixed-up reply)".into(),
                )
            }
            None => return Err("the reply carries no nonce though one was sent".into()),
        }
    }
    if let Some(p) = policy {
        if tst.policy != p {
            return Err(format!("the TSA used policy {} instead of {p}", tst.policy));
        }
    }
    let [signer] = sd.signer_infos.as_slice() else {
        return Err("the token must have exactly one SignerInfo".into());
    };
    let certs = sd.certificates;
    let cert = find_signer(&signer.info, certs.iter())
        .ok_or("the TSA certificate is not in the token (was certReq honoured?)")?
        .clone();
    let attrs_der = signer
        .signed_attrs_der
        .as_deref()
        .ok_or("the token's SignerInfo has no signed attributes")?;
    verify_cms_signer(
        &signer.info,
        attrs_der,
        tst_bytes,
        Some(ID_CT_TST_INFO),
        &cert,
    )
    .map_err(|e| format!("token signature: {e}"))?;
    check_ess_cert_id(&signer.info, &cert)?;
    check_tsa_eku(&cert).map_err(|e| e.to_string())?;
    let validity = &cert.tbs_certificate.validity;
    let t = Duration::from_secs(tst.gen_time.unix);
    if t < validity.not_before.to_unix_duration() || t > validity.not_after.to_unix_duration() {
        return Err("genTime is outside the TSA certificate's validity".into());
    }
    Ok(TokenInfo {
        time: tst.gen_time,
        tsa_subject: cert.tbs_certificate.subject.to_string(),
        tsa_cert: cert,
        certs,
        imprint_algorithm,
        imprint: tst.imprint,
    })
}

fn check_ess_cert_id(
    info: &cms::signed_data::SignerInfo,
    cert: &Certificate,
) -> std::result::Result<(), String> {
    let attrs = info.signed_attrs.as_ref().ok_or("no signed attributes")?;
    let cert_der = cert.to_der().map_err(|e| e.to_string())?;
    if let Some(a) = attrs.iter().find(|a| a.oid == ID_AA_SIGNING_CERTIFICATE_V2) {
        let v: SigningCertificateV2 = a
            .values
            .iter()
            .next()
            .ok_or("empty signingCertificateV2")?
            .decode_as()
            .map_err(|e| format!("signingCertificateV2: {e}"))?;
        let first = v
            .certs
            .first()
            .ok_or("signingCertificateV2 lists no certificate")?;
        let alg = match &first.hash_algorithm {
            None => DigestAlgorithm::Sha256,
            Some(a) => DigestAlgorithm::from_oid(&a.oid).ok_or("unknown ESSCertIDv2 hash")?,
        };
        if first.cert_hash.as_bytes() != alg.digest(&cert_der).as_slice() {
            return Err("ESSCertIDv2 does not name the TSA certificate".into());
        }
        return Ok(());
    }
    if let Some(a) = attrs.iter().find(|a| a.oid == ID_AA_SIGNING_CERTIFICATE) {
        let v: SigningCertificate = a
            .values
            .iter()
            .next()
            .ok_or("empty signingCertificate")?
            .decode_as()
            .map_err(|e| format!("signingCertificate: {e}"))?;
        let first = v
            .certs
            .first()
            .ok_or("signingCertificate lists no certificate")?;
        if first.cert_hash.as_bytes() != DigestAlgorithm::Sha1.digest(&cert_der).as_slice() {
            return Err("ESSCertID does not name the TSA certificate".into());
        }
        return Ok(());
    }
    Err("the token has no ESS signing-certificate attribute".into())
}

/// The legacy request: `SEQUENCE { OID 1.3.6.1.4.1.311.3.2.1, ContentInfo { data, [0] OCTET STRING } }`.
#[derive(Clone, Debug, Sequence)]
struct LegacyRequest {
    countersignature_type: ObjectIdentifier,
    content: LegacyContent,
}

#[derive(Clone, Debug, Sequence)]
struct LegacyContent {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    content: OctetString,
}

fn legacy_once(
    url: &str,
    signature: &[u8],
    opts: &TimestampOptions,
    t: &dyn Transport,
) -> std::result::Result<Stamp, TimestampError> {
    let req = LegacyRequest {
        countersignature_type: SPC_TIME_STAMP_REQUEST,
        content: LegacyContent {
            content_type: ID_DATA,
            content: OctetString::new(signature).map_err(|e| invalid(url, e))?,
        },
    };
    let der = req.to_der().map_err(|e| invalid(url, e))?;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let reply = t
        .post(
            url,
            "application/octet-stream",
            body.as_bytes(),
            opts.timeout,
        )
        .map_err(|reason| TimestampError::Transport {
            url: url.into(),
            reason,
        })?;
    let rfc_hint = if reply.body.first() == Some(&0x30) {
        " (the reply is binary DER: this URL seems to speak RFC 3161; use the RFC 3161 protocol)"
            .to_string()
    } else {
        String::new()
    };
    if reply.status != 200 {
        return Err(TimestampError::Http {
            url: url.into(),
            status: reply.status,
            hint: rfc_hint,
        });
    }
    let malformed = |reason: String| TimestampError::Malformed {
        url: url.into(),
        reason,
        hint: rfc_hint.clone(),
    };
    let text: Vec<u8> = reply
        .body
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace() && *c != 0)
        .collect();
    let p7 = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|e| malformed(format!("not base64: {e}")))?;
    let ci =
        crate::pkcs7::parse_content_info(&p7).map_err(|e| malformed(format!("PKCS#7: {e}")))?;
    let sd = ci.signed_data;
    let [signer] = sd.signer_infos.as_slice() else {
        return Err(malformed(
            "the reply must have exactly one SignerInfo".into(),
        ));
    };
    let info = &signer.info;
    let raw = signer.raw;
    let certs: Vec<Certificate> = sd.certificates.clone();
    let cert = find_signer(info, certs.iter())
        .ok_or_else(|| invalid(url, "the TSA certificate is not in the reply"))?
        .clone();
    let attrs_der = signer
        .signed_attrs_der
        .clone()
        .ok_or_else(|| invalid(url, "the countersignature has no signed attributes"))?;
    verify_cms_signer(info, &attrs_der, signature, None, &cert).map_err(|e| invalid(url, e))?;
    check_legacy_eku(&cert).map_err(|e| invalid(url, e))?;
    let time = legacy_signing_time(info)
        .ok_or_else(|| invalid(url, "the countersignature has no signing time"))?;
    check_time(&time, opts.max_clock_skew).map_err(|e| invalid(url, e))?;
    Ok(Stamp {
        protocol: Protocol::Legacy,
        attr_oid: PKCS9_COUNTERSIGNATURE,
        value: Any::from_der(raw).map_err(|e| malformed(e.to_string()))?,
        certs,
        time,
        tsa: cert.tbs_certificate.subject.to_string(),
        url: url.into(),
    })
}

/// Legacy TSA certificates must carry timeStamping; criticality is not required there.
pub fn check_legacy_eku(cert: &Certificate) -> std::result::Result<(), TsaEkuError> {
    match check_tsa_eku(cert) {
        Err(TsaEkuError::NotCritical) => Ok(()),
        other => other,
    }
}

/// The signingTime attribute of a countersignature (UTCTime or GeneralizedTime, with or
/// without a fraction of a second).
pub fn legacy_signing_time(info: &cms::signed_data::SignerInfo) -> Option<Time> {
    let attrs = info.signed_attrs.as_ref()?;
    let a = attrs.iter().find(|a| a.oid == PKCS9_SIGNING_TIME)?;
    let v = a.values.iter().next()?;
    let der = v.to_der().ok()?;
    Time::from_tlv(&asn1::Tlv::exactly(&der).ok()?).ok()
}
