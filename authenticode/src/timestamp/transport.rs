//! How a time-stamp request reaches a TSA: the [`Transport`] trait (replace it for a proxy,
//! custom TLS or a test double) and the built-in HTTP client ([`UreqTransport`], feature
//! `tsa-http`).
#[allow(clippy::wildcard_imports)]
use super::*;

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

/// Sends one POST. The default is the built-in HTTP client (feature `tsa-http`); callers may
/// plug in their own (a proxy, custom TLS, a test double).
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

/// HTTP(S) through `ureq` (feature `tsa-http`, on by default).
#[cfg(feature = "tsa-http")]
#[derive(Clone, Copy, Debug, Default)]
pub struct UreqTransport;

#[cfg(feature = "tsa-http")]
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

/// The default transport when the crate is built without `tsa-http`: every request fails,
/// saying how to give one.
#[cfg(not(feature = "tsa-http"))]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct NoTransport;

#[cfg(not(feature = "tsa-http"))]
impl Transport for NoTransport {
    fn post(
        &self,
        url: &str,
        _content_type: &str,
        _body: &[u8],
        _timeout: Duration,
    ) -> std::result::Result<HttpReply, String> {
        Err(format!(
            "no HTTP client built in (feature `tsa-http` is off): cannot reach {url}; \
             give a transport with TimestampOptions::with_transport"
        ))
    }
}
