//! # codeseal-signer
//!
//! The one boundary between codeseal and a private key, wherever it lives (a local file,
//! AWS KMS, a PKCS#11 token such as AWS CloudHSM).
//!
//! Authenticode, CSRs and CMS all need the same thing from a key: *sign this precomputed
//! digest with algorithm A*, and its public key. That is [`KeySigner`]. Everything else is
//! built on it:
//!
//! - [`SigningIdentity`]: a key and its certificate chain, checked to belong together once,
//!   at construction (cf. rustls `CertifiedKey`).
//! - [`RustCryptoSigner`]: an adapter that gives any [`KeySigner`] the RustCrypto traits
//!   (`signature::Signer`, `signature::hazmat::PrehashSigner`, `signature::Keypair`,
//!   `async_signature::AsyncSigner` (and a non-blocking `sign_async`), `spki::DynSignatureAlgorithmIdentifier`), so that
//!   `x509-cert`'s builders and `cms` take any codeseal key.
//! - [`csr`]: PKCS#10 requests made with any key (to buy a certificate for a KMS/HSM key).
//! - [`verify_prehash`]: checks a signature over a digest with a public key; backends use it
//!   to check every signature a remote key returns before it is used. [`Verifier`] names
//!   the implementation (aws-lc-rs with the default feature `aws-lc`, or RustCrypto).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod algorithm;
pub mod csr;
mod error;
mod identity;
pub mod percent;
pub mod redact;
mod rustcrypto;
mod signer;
mod verify;

pub use algorithm::{DigestAlgorithm, KeyKind, SignatureAlgorithm};
pub use error::SignError;
pub use identity::SigningIdentity;
pub use redact::redact_uri;
pub use rustcrypto::{PublicKey, RustCryptoSigner, Signature};
pub use signer::{run_blocking, BoxFuture, KeySigner};
pub use verify::{key_kind_of, verify_prehash, Verifier, MAX_RSA_BITS, MIN_RSA_BITS};

/// Re-exports of the format crates whose types appear in this crate's API, so that users
/// get exactly the versions codeseal was built with.
pub mod reexports {
    pub use der;
    pub use spki;
    pub use x509_cert;
}

/// The examples of the crate's README, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
