use std::error::Error as StdError;

use crate::{KeyKind, SignatureAlgorithm};

/// Everything that can go wrong when a key signs, or when a key and a chain are put together.
///
/// Each variant reads as a sentence a user can act on. Errors from a backend's SDK are kept
/// as the `source`, not flattened into a string.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The key cannot sign with the requested algorithm (e.g. ECDSA requested of an RSA key).
    #[error("the {key} key cannot sign with {requested}")]
    UnsupportedAlgorithm {
        /// What the key is.
        key: KeyKind,
        /// What was asked of it.
        requested: SignatureAlgorithm,
    },
    /// The digest handed to the key does not have the length of the algorithm's hash.
    #[error("a {algorithm} digest must be {expected} bytes, got {actual}")]
    DigestLength {
        /// The hash algorithm.
        algorithm: crate::DigestAlgorithm,
        /// Its output length.
        expected: usize,
        /// What was given.
        actual: usize,
    },
    /// The leaf certificate's public key is not the key's public key.
    #[error("the certificate {subject} does not belong to this key (its public key differs from the key's)")]
    KeyMismatch {
        /// Subject of the leaf certificate.
        subject: String,
    },
    /// A signing identity needs at least the leaf certificate.
    #[error("no certificate was given for the key")]
    EmptyChain,
    /// The signature a key returned does not verify with its public key.
    #[error("the signature returned by {backend} does not verify with the key's public key (faulty or re-pointed key?)")]
    BadSignatureFromKey {
        /// Which backend returned it.
        backend: String,
    },
    /// A public key, certificate or signature could not be parsed.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The key type is not one codeseal can sign with.
    #[error("unsupported key type: {0}")]
    UnsupportedKey(String),
    /// The backend (KMS, HSM, ...) failed.
    #[error("{backend}: {message}")]
    Backend {
        /// Which backend, e.g. `aws-kms` or `pkcs11`.
        backend: &'static str,
        /// What failed, in words.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn StdError + Send + Sync>>,
    },
}

impl SignError {
    /// A backend failure with a message and an optional source error.
    pub fn backend(
        backend: &'static str,
        message: impl Into<String>,
        source: Option<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::Backend {
            backend,
            message: message.into(),
            source,
        }
    }

    /// A parse failure.
    pub fn malformed(what: &'static str, reason: impl ToString) -> Self {
        Self::Malformed {
            what,
            reason: reason.to_string(),
        }
    }
}
