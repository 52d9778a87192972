//! # codeseal-kms
//!
//! A [`KeySigner`](codeseal_signer::KeySigner) for asymmetric keys in AWS KMS.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use codeseal_kms::{KmsKey, KmsKeyRef, KmsOptions};
//! use codeseal_signer::{DigestAlgorithm, KeySigner};
//!
//! let key_ref: KmsKeyRef = "alias/release-signing".parse()?;
//! let key = KmsKey::connect(&key_ref, &KmsOptions::default()).await?;
//! let digest = DigestAlgorithm::Sha256.digest(b"to be signed");
//! let alg = key.key_kind().with_digest(DigestAlgorithm::Sha256);
//! let signature = key.sign_digest_async(alg, &digest).await?;
//! # let _ = signature; Ok(()) }
//! ```
//!
//! - Key references ([`KmsKeyRef`]): key ID, key ARN, `alias/NAME`, alias ARN, and cosign's
//!   `awskms:///KEY` / `awskms://HOST:PORT/KEY`.
//! - Credentials and configuration come from the full AWS default chain (environment,
//!   profiles, SSO, web identity / OIDC, `credential_process`, ECS, EC2 instance metadata);
//!   [`KmsOptions`] overrides region, profile, endpoint, FIPS, retries and timeouts.
//! - [`KmsKey::connect`] calls DescribeKey and GetPublicKey once and fails with a clear
//!   [`KmsError`] for keys that cannot sign. Signing is `Sign` with `MessageType=DIGEST`:
//!   only the digest leaves the machine.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod key;
mod key_ref;
mod metadata;
mod options;
mod rt;

pub use error::{BoxError, KmsError};
pub use key::{call_counts, load_sdk_config, CallCounts, KmsKey};
pub use key_ref::{KeyIdForm, KmsKeyRef, AWSKMS_SCHEME};
pub use metadata::{check_key_metadata, key_kind_of_spec, signing_algorithm_spec, KeyFacts};
pub use options::{KmsOptions, RetryMode, DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_MAX_IN_FLIGHT};

/// The backend name used in [`SignError::Backend`](codeseal_signer::SignError::Backend).
pub const BACKEND: &str = "aws-kms";

/// The AWS crates whose types appear in this crate's API.
pub mod reexports {
    pub use aws_config;
    pub use aws_sdk_kms;
}

/// The examples of the crate's README, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
