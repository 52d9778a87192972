//! How CRLs and OCSP answers are fetched: the [`RevocationTransport`] trait (replace it for a
//! proxy, a test double or an offline mirror) and the built-in HTTP client
//! ([`UreqRevocationTransport`], feature `tsa-http`, the same `ureq` client as the time-stamp
//! transport). Every request has a timeout covering connection, headers and body, and a cap
//! on the body; only `http://` URLs are fetched (CRL and OCSP answers are signed, and
//! `https://` distribution points would loop on their own revocation checks).
use std::time::Duration;

/// Why a fetch gave no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Only `http://` URLs are fetched.
    #[error("{0}: only http:// URLs are fetched")]
    NotHttp(String),
    /// No connection, DNS failure, connection reset.
    #[error("{url}: {why}")]
    Connect {
        /// The URL.
        url: String,
        /// What went wrong.
        why: String,
    },
    /// The request took longer than the timeout.
    #[error("{url}: no complete answer within {millis} ms")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout, in milliseconds.
        millis: u128,
    },
    /// The body is larger than allowed.
    #[error("{url}: the answer exceeds {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        limit: u64,
    },
    /// A status other than 200.
    #[error("{url}: HTTP status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The run's total time for fetches is spent (earlier requests were slow or timed out).
    #[error("{url}: not fetched: the run's network budget of {secs} s is spent")]
    BudgetSpent {
        /// The URL.
        url: String,
        /// The budget, in seconds.
        secs: u64,
    },
    /// No HTTP client is built in (feature `tsa-http` off) and none was given.
    #[error("{0}: no HTTP client (feature `tsa-http` is off; give a RevocationTransport)")]
    NoClient(String),
}

/// Fetches CRLs (GET) and OCSP answers (POST).
pub trait RevocationTransport: Send + Sync + std::fmt::Debug {
    /// GETs `url`: the body of a 200 answer, at most `limit` bytes, within `timeout`.
    fn get(&self, url: &str, timeout: Duration, limit: u64) -> Result<Vec<u8>, FetchError>;
    /// POSTs `body` (of `content_type`) to `url`: the body of a 200 answer, at most `limit`
    /// bytes, within `timeout`.
    fn post(
        &self,
        url: &str,
        content_type: &str,
        body: &[u8],
        timeout: Duration,
        limit: u64,
    ) -> Result<Vec<u8>, FetchError>;
}

/// HTTP through `ureq` (feature `tsa-http`, on by default).
#[cfg(feature = "tsa-http")]
#[derive(Clone, Copy, Debug, Default)]
pub struct UreqRevocationTransport;

#[cfg(feature = "tsa-http")]
impl UreqRevocationTransport {
    fn run(
        url: &str,
        timeout: Duration,
        limit: u64,
        send: impl FnOnce(&ureq::Agent) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Vec<u8>, FetchError> {
        if !url.starts_with("http://") {
            return Err(FetchError::NotHttp(url.to_string()));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(3)
            .build()
            .into();
        let map = |e: ureq::Error| match e {
            ureq::Error::Timeout(_) => FetchError::Timeout {
                url: url.to_string(),
                millis: timeout.as_millis(),
            },
            ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge {
                url: url.to_string(),
                limit,
            },
            e => FetchError::Connect {
                url: url.to_string(),
                why: e.to_string(),
            },
        };
        let mut resp = send(&agent).map_err(map)?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status {
                url: url.to_string(),
                status,
            });
        }
        resp.body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(map)
    }
}

#[cfg(feature = "tsa-http")]
impl RevocationTransport for UreqRevocationTransport {
    fn get(&self, url: &str, timeout: Duration, limit: u64) -> Result<Vec<u8>, FetchError> {
        Self::run(url, timeout, limit, |a| a.get(url).call())
    }

    fn post(
        &self,
        url: &str,
        content_type: &str,
        body: &[u8],
        timeout: Duration,
        limit: u64,
    ) -> Result<Vec<u8>, FetchError> {
        Self::run(url, timeout, limit, |a| {
            a.post(url).header("Content-Type", content_type).send(body)
        })
    }
}

/// The default transport without `tsa-http`: every request fails, saying why.
#[cfg(not(feature = "tsa-http"))]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NoRevocationTransport;

#[cfg(not(feature = "tsa-http"))]
impl RevocationTransport for NoRevocationTransport {
    fn get(&self, url: &str, _: Duration, _: u64) -> Result<Vec<u8>, FetchError> {
        Err(FetchError::NoClient(url.to_string()))
    }
    fn post(
        &self,
        url: &str,
        _: &str,
        _: &[u8],
        _: Duration,
        _: u64,
    ) -> Result<Vec<u8>, FetchError> {
        Err(FetchError::NoClient(url.to_string()))
    }
}
