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

mod retry;
mod transport;
mod validate;

pub use retry::stamp;
#[cfg(feature = "tsa-http")]
pub use transport::UreqTransport;
pub use transport::{HttpReply, Transport};
pub use validate::{
    check_legacy_eku, check_tsa_eku, legacy_signing_time, validate_token, TokenInfo, TsaEkuError,
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
    /// The built-in HTTP client (feature `tsa-http`); without it, a transport that refuses
    /// every request with a message saying how to give one.
    fn default() -> Self {
        #[cfg(feature = "tsa-http")]
        return Self(std::sync::Arc::new(UreqTransport));
        #[cfg(not(feature = "tsa-http"))]
        return Self(std::sync::Arc::new(transport::NoTransport));
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
