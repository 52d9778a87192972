//! Crypto providers for local keys: the one seam through which a private key held in memory
//! signs a precomputed digest.
//!
//! A [`CryptoProvider`] turns a PKCS#8 `PrivateKeyInfo` into a [`ProviderKey`] once, when
//! the key is loaded; every signature then goes through that key. Two providers exist:
//!
//! - [`AWS_LC`] (feature `provider-aws-lc`, on by default): `aws-lc-rs`, constant-time RSA
//!   (blinded, CRT) and ECDSA, several times faster than the pure-Rust code. Combinations it
//!   has no API for are signed by the RustCrypto code instead, and say so in
//!   [`ProviderKey::backend_for`]: RSA with SHA-1 (`--allow-sha1` only) and RSA keys larger
//!   than 8192 bits. ECDSA with a digest other than the curve's own (P-256 with SHA-1,
//!   SHA-384 or SHA-512; P-384 with SHA-256 or SHA-512) stays in aws-lc: ECDSA signs the
//!   digest converted to an integer of the curve order's size (FIPS 186-5 6.4.1, SEC 1
//!   4.1.3: the leftmost bits of a longer digest, a shorter digest as it is), so the digest
//!   is truncated or left-padded with zeros to the curve's length first, which gives the
//!   same integer.
//!   Without the `provider-rustcrypto` feature those two RSA cases are refused
//!   (`UnsupportedAlgorithm`, or the key is rejected when loaded).
//! - `RUSTCRYPTO` (feature `provider-rustcrypto`, on by default): the `rsa`, `p256` and
//!   `p384` crates, pure Rust, for targets where C does not build
//!   (`--no-default-features --features provider-rustcrypto`). The `rsa` crate's
//!   private-key operation is not constant-time (RUSTSEC-2023-0071).
//!
//! [`default_provider`] is aws-lc when it is built, RustCrypto otherwise. At least one of the
//! two features must be on.
use std::fmt;

use codeseal_signer::{KeyKind, SignError, SignatureAlgorithm};
use zeroize::Zeroizing;

use crate::LoadError;

#[cfg(not(any(feature = "provider-aws-lc", feature = "provider-rustcrypto")))]
compile_error!(
    "codeseal-local needs a crypto provider: enable `provider-aws-lc` or `provider-rustcrypto`"
);

#[cfg(feature = "provider-aws-lc")]
mod aws_lc;
#[cfg(feature = "provider-rustcrypto")]
mod rustcrypto;

#[cfg(feature = "provider-aws-lc")]
pub use aws_lc::{AwsLc, AWS_LC};
#[cfg(feature = "provider-rustcrypto")]
pub use rustcrypto::{RustCrypto, RUSTCRYPTO};

/// The algorithm of a private key, as named by its PKCS#8 `AlgorithmIdentifier`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// `rsaEncryption`.
    Rsa,
    /// `id-ecPublicKey` on P-256.
    P256,
    /// `id-ecPublicKey` on P-384.
    P384,
}

/// Makes private keys in one implementation's form (see the [module](self) documentation).
pub trait CryptoProvider: Send + Sync + fmt::Debug {
    /// A short name for logs and `Debug`: `aws-lc-rs` or `rustcrypto`.
    fn name(&self) -> &'static str;

    /// Parses an unencrypted PKCS#8 `PrivateKeyInfo` (DER) of type `key_type`, checking that
    /// its parts are consistent.
    fn load_pkcs8(
        &self,
        key_type: KeyType,
        pkcs8_der: &[u8],
    ) -> Result<Box<dyn ProviderKey>, LoadError>;

    /// Generates a new random key (for throwaway test PKIs).
    fn generate(&self, kind: KeyKind) -> Result<Box<dyn ProviderKey>, LoadError>;
}

/// A private key parsed by a [`CryptoProvider`]. Its memory is cleared when it is dropped.
pub trait ProviderKey: Send + Sync {
    /// The public key as a DER SubjectPublicKeyInfo.
    fn public_key_der(&self) -> Result<Vec<u8>, LoadError>;

    /// Signs the precomputed `digest` (already checked against `algorithm` and the key by
    /// the caller): raw RSASSA-PKCS1-v1_5 for RSA, DER `Ecdsa-Sig-Value` for ECDSA.
    fn sign_digest(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, SignError>;

    /// The implementation that signs with `algorithm`: the provider's name, or that of its
    /// fallback for a combination the provider cannot sign.
    fn backend_for(&self, algorithm: SignatureAlgorithm) -> &'static str;

    /// Whether this build can sign with `algorithm` (which fits the key): `false` only for
    /// a combination the provider lacks and no fallback was built for.
    fn can_sign(&self, algorithm: SignatureAlgorithm) -> bool {
        let _ = algorithm;
        true
    }

    /// The key as an unencrypted PKCS#8 `PrivateKeyInfo` (DER), in memory that is cleared
    /// when dropped.
    fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, LoadError>;
}

/// The provider local keys use unless told otherwise: aws-lc-rs when the `provider-aws-lc`
/// feature is on (the default), RustCrypto otherwise. With both built, the environment
/// variable `CODESEAL_CRYPTO_PROVIDER=rustcrypto` (read once) selects RustCrypto, for
/// before/after measurements.
pub fn default_provider() -> &'static dyn CryptoProvider {
    #[cfg(all(feature = "provider-aws-lc", feature = "provider-rustcrypto"))]
    {
        static CHOSEN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let rustcrypto = *CHOSEN.get_or_init(|| {
            std::env::var_os("CODESEAL_CRYPTO_PROVIDER").is_some_and(|v| v == "rustcrypto")
        });
        if rustcrypto {
            return &RUSTCRYPTO;
        }
    }
    #[cfg(feature = "provider-aws-lc")]
    {
        &AWS_LC
    }
    #[cfg(all(not(feature = "provider-aws-lc"), feature = "provider-rustcrypto"))]
    {
        &RUSTCRYPTO
    }
}

pub(crate) fn signing_failed(e: &dyn fmt::Display) -> SignError {
    SignError::backend("local", format!("signing failed: {e}"), None)
}
