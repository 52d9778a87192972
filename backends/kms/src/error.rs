//! Errors of the AWS KMS backend.

use std::error::Error as StdError;

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use codeseal_signer::SignError;

/// An error from a KMS call or the SDK, kept as the source of a [`KmsError`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The least-privilege IAM actions the backend needs, for error messages.
pub(crate) const IAM_ACTIONS: &str = "kms:DescribeKey, kms:GetPublicKey and kms:Sign";

/// Why an AWS KMS key could not be used.
///
/// Each message names the key (as given or as its ARN) and what to do; none contains a
/// credential. The SDK's error is kept as the `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// The key reference could not be parsed.
    #[error("invalid AWS KMS key reference {input:?}: {reason}")]
    InvalidKeyRef {
        /// The reference, secrets masked ([`codeseal_signer::redact_uri`]), truncated if very
        /// long.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The options or the AWS configuration are unusable (no region, bad endpoint URL, ...).
    #[error("AWS KMS configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// KMS does not know the key or alias (NotFoundException).
    #[error("AWS KMS key {key} not found in {location} (NotFoundException: {message}); check the key ID or alias, the region and the account")]
    NotFound {
        /// The key as requested.
        key: String,
        /// Region or endpoint that was asked.
        location: String,
        /// The service's message.
        message: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// The caller may not use the key (AccessDeniedException).
    #[error("access denied by AWS KMS for {operation} on key {key} ({message}); the signing identity needs {IAM_ACTIONS} on the key")]
    AccessDenied {
        /// The key as requested.
        key: String,
        /// The KMS operation, e.g. `Sign`.
        operation: &'static str,
        /// The service's message.
        message: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// No usable AWS credentials, or KMS rejected them.
    #[error("AWS credentials for KMS are missing or invalid ({message}); configure them (environment, profile, SSO, web identity or instance role)")]
    Credentials {
        /// What the SDK reported.
        message: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// The key is not enabled: disabled, pending deletion, pending import, unavailable...
    #[error("AWS KMS key {key} cannot sign: it is {state}{hint}")]
    KeyNotEnabled {
        /// The key.
        key: String,
        /// Its state, e.g. `Disabled` or `PendingDeletion`.
        state: String,
        /// What to do about it (starts with "; " when present).
        hint: String,
        /// The SDK error, when the state was reported by a failing call.
        #[source]
        source: Option<BoxError>,
    },
    /// The key is not an asymmetric signing key (e.g. ENCRYPT_DECRYPT).
    #[error("AWS KMS key {key} has key usage {usage}; codeseal needs an asymmetric key with key usage SIGN_VERIFY")]
    WrongKeyUsage {
        /// The key.
        key: String,
        /// Its key usage.
        usage: String,
    },
    /// The key's spec is not one codeseal signs with.
    #[error("AWS KMS key {key} has key spec {spec}; codeseal signs with RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256 and ECC_NIST_P384 keys")]
    UnsupportedKeySpec {
        /// The key.
        key: String,
        /// Its key spec.
        spec: String,
    },
    /// KMS could not be reached (connection refused, DNS, TLS, timeout).
    #[error("cannot reach AWS KMS at {endpoint}: {message}")]
    Connect {
        /// The endpoint or region that was tried.
        endpoint: String,
        /// The innermost cause, in words.
        message: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// KMS kept throttling after the SDK's retries.
    #[error("AWS KMS throttled {operation} on key {key} even after retries (ThrottlingException: {message}); lower the number of parallel signatures, use the adaptive retry mode or ask for a higher quota")]
    Throttled {
        /// The key.
        key: String,
        /// The KMS operation.
        operation: &'static str,
        /// The service's message.
        message: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// Any other failure of a KMS call.
    #[error("AWS KMS {operation} failed for key {key}: {message}")]
    Service {
        /// The key.
        key: String,
        /// The KMS operation.
        operation: &'static str,
        /// The error code, when the service sent one.
        code: Option<String>,
        /// The message.
        message: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// KMS answered something codeseal cannot use (missing or malformed field, other key).
    #[error("AWS KMS returned an unusable {what} for key {key}: {reason}")]
    InvalidResponse {
        /// The key.
        key: String,
        /// What was wrong, e.g. `public key`.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The backend's own runtime failed (could not start, task panicked).
    #[error("AWS KMS backend runtime: {message}")]
    Runtime {
        /// What happened.
        message: String,
    },
}

impl KmsError {
    /// Splits the error into a message and its SDK source, for [`SignError`].
    fn into_parts(self) -> (String, Option<BoxError>) {
        let message = self.to_string();
        let source = match self {
            Self::NotFound { source, .. }
            | Self::AccessDenied { source, .. }
            | Self::Credentials { source, .. }
            | Self::Connect { source, .. }
            | Self::Throttled { source, .. }
            | Self::Service { source, .. } => Some(source),
            Self::KeyNotEnabled { source, .. } => source,
            _ => None,
        };
        (message, source)
    }
}

impl From<KmsError> for SignError {
    /// A [`SignError::Backend`] for `aws-kms` whose message is the [`KmsError`]'s and whose
    /// source is the SDK error (when there is one).
    fn from(e: KmsError) -> Self {
        let (message, source) = e.into_parts();
        SignError::backend(crate::BACKEND, message, source)
    }
}

/// Where a call went, for messages: the endpoint override or the region.
#[derive(Clone, Debug)]
pub(crate) struct CallContext {
    pub key: String,
    pub location: String,
}

/// Turns an SDK error of `operation` into a [`KmsError`].
pub(crate) fn classify<E>(
    err: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
    operation: &'static str,
    cx: &CallContext,
) -> KmsError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let key = cx.key.clone();
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().map(str::to_owned);
            let message = e.message().unwrap_or("no message").to_owned();
            let source: BoxError = Box::new(err);
            match code.as_deref() {
                Some("NotFoundException") => KmsError::NotFound {
                    key,
                    location: cx.location.clone(),
                    message,
                    source,
                },
                Some("AccessDeniedException" | "AccessDenied") => KmsError::AccessDenied {
                    key,
                    operation,
                    message,
                    source,
                },
                Some(
                    "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "ExpiredTokenException"
                    | "InvalidClientTokenId"
                    | "IncompleteSignature"
                    | "MissingAuthenticationToken",
                ) => KmsError::Credentials {
                    message: format!("{}: {message}", code.as_deref().unwrap_or("")),
                    source,
                },
                Some("DisabledException") => KmsError::KeyNotEnabled {
                    key,
                    state: "Disabled".into(),
                    hint: format!("; enable it (kms:EnableKey) or use another key ({message})"),
                    source: Some(source),
                },
                Some("KMSInvalidStateException" | "KeyUnavailableException") => {
                    KmsError::KeyNotEnabled {
                        key,
                        state: "not in a state that allows signing".into(),
                        hint: format!(" ({message})"),
                        source: Some(source),
                    }
                }
                Some("InvalidKeyUsageException") => KmsError::Service {
                    key,
                    operation,
                    code,
                    message: format!(
                        "the key's usage or signing algorithms do not allow this ({message})"
                    ),
                    source,
                },
                Some("ThrottlingException") => KmsError::Throttled {
                    key,
                    operation,
                    message,
                    source,
                },
                _ => KmsError::Service {
                    key,
                    operation,
                    message: match &code {
                        Some(c) => format!("{c}: {message}"),
                        None => message,
                    },
                    code,
                    source,
                },
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            let message = innermost_message(&err);
            let source: BoxError = Box::new(err);
            if find_credentials_error(source.as_ref()) {
                return KmsError::Credentials { message, source };
            }
            KmsError::Connect {
                endpoint: cx.location.clone(),
                message,
                source,
            }
        }
        _ => {
            let message = innermost_message(&err);
            let source: BoxError = Box::new(err);
            if find_credentials_error(source.as_ref()) {
                return KmsError::Credentials { message, source };
            }
            KmsError::Service {
                key,
                operation,
                code: None,
                message,
                source,
            }
        }
    }
}

/// The Display of the deepest error in the chain that says something (the SDK's outer
/// layers say "dispatch failure" and the like).
fn innermost_message(err: &(dyn StdError + 'static)) -> String {
    let mut last = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() {
            last = s;
        }
        cur = e.source();
    }
    last
}

fn find_credentials_error(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        cur = e.source();
    }
    false
}
