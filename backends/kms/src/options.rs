//! Connection options for [`KmsKey`](crate::KmsKey).

use std::time::Duration;

/// How the AWS SDK retries failed KMS calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryMode {
    /// Exponential backoff with jitter and a retry quota (the SDK's default; 3 attempts).
    #[default]
    Standard,
    /// Standard plus client-side rate limiting that slows down after throttling. Suits a
    /// batch signer hammering one key (KMS's Sign quota is shared by the whole account).
    Adaptive,
}

impl std::str::FromStr for RetryMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "standard" => Ok(Self::Standard),
            "adaptive" => Ok(Self::Adaptive),
            other => Err(format!(
                "unknown retry mode {other:?} (expected standard or adaptive)"
            )),
        }
    }
}

/// Options for connecting to an AWS KMS key.
///
/// Everything left unset comes from the ordinary AWS configuration: environment variables
/// (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL[_KMS]`, `AWS_USE_FIPS_ENDPOINT`,
/// `AWS_RETRY_MODE`, `AWS_MAX_ATTEMPTS`, ...), the shared config and credentials files, and
/// the default credential chain (environment, web identity / OIDC, SSO, `credential_process`,
/// ECS and EC2 instance metadata).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KmsOptions {
    /// Region to use. When unset, the region of an ARN key reference, else the configured
    /// region.
    pub region: Option<String>,
    /// Named profile from the shared config files (otherwise `AWS_PROFILE` or `default`).
    pub profile: Option<String>,
    /// Endpoint URL override (e.g. a VPC endpoint or a local emulator). An `awskms://HOST:PORT/`
    /// key reference takes precedence over it.
    pub endpoint_url: Option<String>,
    /// Use the FIPS endpoint (`kms-fips.REGION.amazonaws.com`). `None` leaves the decision to
    /// the AWS configuration (`AWS_USE_FIPS_ENDPOINT=true`, profile `use_fips_endpoint`).
    pub use_fips: Option<bool>,
    /// Retry mode. `None` keeps the configured one (standard unless `AWS_RETRY_MODE` says
    /// otherwise).
    pub retry_mode: Option<RetryMode>,
    /// Maximum attempts per call, first try included (`None`: configured, default 3).
    pub max_attempts: Option<u32>,
    /// Timeout for establishing a connection (`None`: the SDK's default, 3.1 s).
    pub connect_timeout: Option<Duration>,
    /// Timeout for one attempt of a call, so that a stuck connection cannot hang a signing
    /// run (default [`DEFAULT_ATTEMPT_TIMEOUT`]; `None`: no limit beyond the configured one).
    pub attempt_timeout: Option<Duration>,
    /// Maximum number of Sign calls in flight at once for this key. KMS's Sign quota (RSA
    /// 500 requests/s, ECC 300/s by default) is shared by the whole account and region, so
    /// keep this modest.
    pub max_in_flight: usize,
}

/// Default for [`KmsOptions::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;

/// Default for [`KmsOptions::attempt_timeout`]: a KMS Sign takes milliseconds.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for KmsOptions {
    fn default() -> Self {
        Self {
            region: None,
            profile: None,
            endpoint_url: None,
            use_fips: None,
            retry_mode: None,
            max_attempts: None,
            connect_timeout: None,
            attempt_timeout: Some(DEFAULT_ATTEMPT_TIMEOUT),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

impl KmsOptions {
    /// Sets [`region`](Self::region).
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets [`profile`](Self::profile).
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Sets [`endpoint_url`](Self::endpoint_url).
    pub fn with_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Sets [`use_fips`](Self::use_fips).
    pub fn with_fips(mut self, use_fips: bool) -> Self {
        self.use_fips = Some(use_fips);
        self
    }

    /// Sets [`retry_mode`](Self::retry_mode).
    pub fn with_retry_mode(mut self, mode: RetryMode) -> Self {
        self.retry_mode = Some(mode);
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Sets [`attempt_timeout`](Self::attempt_timeout).
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Sets [`max_in_flight`](Self::max_in_flight) (at least 1; very large values are
    /// capped).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), crate::KmsError> {
        let bad = |m: String| Err(crate::KmsError::Config { message: m });
        if self.max_in_flight == 0 {
            return bad("max in-flight Sign calls must be at least 1".into());
        }
        if self.max_attempts == Some(0) {
            return bad("max attempts must be at least 1".into());
        }
        if let Some(url) = &self.endpoint_url {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://"))
                || url.len() <= "https://".len()
            {
                return bad(format!(
                    "endpoint URL {url:?} must start with http:// or https://"
                ));
            }
        }
        if let Some(r) = &self.region {
            if r.is_empty() || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return bad(format!("invalid region {r:?}"));
            }
        }
        Ok(())
    }
}
