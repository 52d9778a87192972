//! The pure-Rust provider: the `rsa`, `p256` and `p384` crates.
use codeseal_signer::{DigestAlgorithm, KeyKind, SignError, SignatureAlgorithm};
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use signature::hazmat::PrehashSigner;
use zeroize::Zeroizing;

use super::{signing_failed, CryptoProvider, KeyType, ProviderKey};
use crate::LoadError;

/// The RustCrypto provider (see the [module](super) documentation).
#[derive(Debug, Clone, Copy)]
pub struct RustCrypto;

/// The RustCrypto provider.
pub static RUSTCRYPTO: RustCrypto = RustCrypto;

pub(crate) enum Key {
    Rsa(Box<RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

fn format(e: impl std::fmt::Display) -> LoadError {
    LoadError::Format(e.to_string())
}

impl Key {
    pub(crate) fn load(key_type: KeyType, der: &[u8]) -> Result<Self, LoadError> {
        Ok(match key_type {
            KeyType::Rsa => Self::Rsa(Box::new(
                RsaPrivateKey::from_pkcs8_der(der).map_err(format)?,
            )),
            KeyType::P256 => {
                Self::P256(p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(format)?)
            }
            KeyType::P384 => {
                Self::P384(p384::ecdsa::SigningKey::from_pkcs8_der(der).map_err(format)?)
            }
        })
    }

    /// RSASSA-PKCS1-v1_5 with the `rsa` crate (also the aws-lc provider's fallback).
    pub(crate) fn sign_rsa(
        k: &RsaPrivateKey,
        digest_alg: DigestAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        let scheme = match digest_alg {
            DigestAlgorithm::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
            DigestAlgorithm::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
            DigestAlgorithm::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
            DigestAlgorithm::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
        };
        k.sign(scheme, digest).map_err(|e| signing_failed(&e))
    }
}

impl ProviderKey for Key {
    fn public_key_der(&self) -> Result<Vec<u8>, LoadError> {
        let doc = match self {
            Self::Rsa(k) => k.to_public_key().to_public_key_der(),
            Self::P256(k) => k.verifying_key().to_public_key_der(),
            Self::P384(k) => k.verifying_key().to_public_key_der(),
        }
        .map_err(format)?;
        Ok(doc.into_vec())
    }

    fn sign_digest(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        match self {
            Self::Rsa(k) => Self::sign_rsa(k, algorithm.digest, digest),
            Self::P256(k) => {
                let sig: p256::ecdsa::Signature =
                    k.sign_prehash(digest).map_err(|e| signing_failed(&e))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Self::P384(k) => {
                let sig: p384::ecdsa::Signature =
                    k.sign_prehash(digest).map_err(|e| signing_failed(&e))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    }

    fn backend_for(&self, _algorithm: SignatureAlgorithm) -> &'static str {
        "rustcrypto"
    }

    fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, LoadError> {
        let doc = match self {
            Self::Rsa(k) => k.to_pkcs8_der(),
            Self::P256(k) => k.to_pkcs8_der(),
            Self::P384(k) => k.to_pkcs8_der(),
        }
        .map_err(format)?;
        // `SecretDocument` clears itself on drop; this copy is cleared too.
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }
}

impl CryptoProvider for RustCrypto {
    fn name(&self) -> &'static str {
        "rustcrypto"
    }

    fn load_pkcs8(
        &self,
        key_type: KeyType,
        pkcs8_der: &[u8],
    ) -> Result<Box<dyn ProviderKey>, LoadError> {
        Ok(Box::new(Key::load(key_type, pkcs8_der)?))
    }

    fn generate(&self, kind: KeyKind) -> Result<Box<dyn ProviderKey>, LoadError> {
        let mut rng = rand_core::OsRng;
        Ok(Box::new(match kind {
            KeyKind::Rsa { bits } => Key::Rsa(Box::new(
                RsaPrivateKey::new(&mut rng, bits as usize).map_err(format)?,
            )),
            KeyKind::EcP256 => Key::P256(p256::ecdsa::SigningKey::random(&mut rng)),
            KeyKind::EcP384 => Key::P384(p384::ecdsa::SigningKey::random(&mut rng)),
        }))
    }
}
