//! The aws-lc-rs provider: constant-time RSA and ECDSA from AWS-LC.
#[cfg(feature = "provider-rustcrypto")]
use std::sync::OnceLock;

use aws_lc_rs::{
    digest,
    encoding::AsDer,
    rsa::KeySize,
    signature::{self as lc, EcdsaKeyPair, KeyPair, RsaKeyPair},
};
use codeseal_signer::{DigestAlgorithm, KeyKind, SignError, SignatureAlgorithm};
use zeroize::Zeroizing;

#[cfg(feature = "provider-rustcrypto")]
use super::rustcrypto;
use super::{signing_failed, CryptoProvider, KeyType, ProviderKey};
use crate::LoadError;

/// The aws-lc-rs provider (see the [module](super) documentation).
#[derive(Debug, Clone, Copy)]
pub struct AwsLc;

/// The aws-lc-rs provider.
pub static AWS_LC: AwsLc = AwsLc;

const NAME: &str = "aws-lc-rs";

enum Key {
    Rsa {
        key: RsaKeyPair,
        /// The RustCrypto form, made on first use for RSA with SHA-1 (aws-lc-rs signs
        /// PKCS#1 v1.5 digests with SHA-256/384/512 only).
        #[cfg(feature = "provider-rustcrypto")]
        sha1: OnceLock<Box<rsa::RsaPrivateKey>>,
    },
    Ec {
        key: EcdsaKeyPair,
        /// The curve's own digest, the one aws-lc-rs signs with this key.
        digest: &'static digest::Algorithm,
    },
    /// A key aws-lc-rs does not take (RSA above 8192 bits), in RustCrypto's form.
    #[cfg(feature = "provider-rustcrypto")]
    Fallback(rustcrypto::Key),
}

fn rejected(e: impl std::fmt::Display) -> LoadError {
    LoadError::Format(e.to_string())
}

fn lc_digest(d: DigestAlgorithm) -> Option<&'static digest::Algorithm> {
    match d {
        DigestAlgorithm::Sha1 => None,
        DigestAlgorithm::Sha256 => Some(&digest::SHA256),
        DigestAlgorithm::Sha384 => Some(&digest::SHA384),
        DigestAlgorithm::Sha512 => Some(&digest::SHA512),
    }
}

/// `digest` converted for ECDSA on a curve whose order has `len` bytes: the leftmost `len`
/// bytes of a longer digest, a shorter one left-padded with zeros (the same integer).
fn for_curve(digest: &[u8], len: usize) -> Vec<u8> {
    if digest.len() >= len {
        digest[..len].to_vec()
    } else {
        let mut v = vec![0u8; len - digest.len()];
        v.extend_from_slice(digest);
        v
    }
}

impl Key {
    fn ec(key_type: KeyType, der: &[u8]) -> Result<Self, LoadError> {
        let (alg, digest) = match key_type {
            KeyType::P256 => (&lc::ECDSA_P256_SHA256_ASN1_SIGNING, &digest::SHA256),
            _ => (&lc::ECDSA_P384_SHA384_ASN1_SIGNING, &digest::SHA384),
        };
        Ok(Self::Ec {
            key: EcdsaKeyPair::from_pkcs8(alg, der).map_err(rejected)?,
            digest,
        })
    }

    fn rsa(key: RsaKeyPair) -> Self {
        Self::Rsa {
            key,
            #[cfg(feature = "provider-rustcrypto")]
            sha1: OnceLock::new(),
        }
    }

    /// RSA with SHA-1, through the RustCrypto form made on first use.
    #[cfg(feature = "provider-rustcrypto")]
    fn sign_rsa_sha1(
        &self,
        cell: &OnceLock<Box<rsa::RsaPrivateKey>>,
        digest: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        let legacy = match cell.get() {
            Some(k) => k,
            None => {
                let der = self.to_pkcs8_der().map_err(|e| signing_failed(&e))?;
                let k = match rustcrypto::Key::load(KeyType::Rsa, &der) {
                    Ok(rustcrypto::Key::Rsa(k)) => k,
                    Ok(_) => return Err(signing_failed(&"not an RSA key")),
                    Err(e) => return Err(signing_failed(&e)),
                };
                cell.get_or_init(|| k)
            }
        };
        rustcrypto::Key::sign_rsa(legacy, DigestAlgorithm::Sha1, digest)
    }
}

impl ProviderKey for Key {
    fn public_key_der(&self) -> Result<Vec<u8>, LoadError> {
        let der = match self {
            Self::Rsa { key, .. } => key.public_key().as_der(),
            Self::Ec { key, .. } => key.public_key().as_der(),
            #[cfg(feature = "provider-rustcrypto")]
            Self::Fallback(k) => return k.public_key_der(),
        }
        .map_err(rejected)?;
        Ok(der.as_ref().to_vec())
    }

    fn sign_digest(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        let fail = |e: aws_lc_rs::error::Unspecified| signing_failed(&e);
        match self {
            Self::Rsa { key, .. } => {
                let (encoding, lc_alg): (&'static dyn lc::RsaEncoding, _) = match algorithm.digest {
                    DigestAlgorithm::Sha256 => (&lc::RSA_PKCS1_SHA256, &digest::SHA256),
                    DigestAlgorithm::Sha384 => (&lc::RSA_PKCS1_SHA384, &digest::SHA384),
                    DigestAlgorithm::Sha512 => (&lc::RSA_PKCS1_SHA512, &digest::SHA512),
                    DigestAlgorithm::Sha1 => {
                        #[cfg(feature = "provider-rustcrypto")]
                        if let Self::Rsa { sha1, .. } = self {
                            return self.sign_rsa_sha1(sha1, digest);
                        }
                        return Err(SignError::UnsupportedAlgorithm {
                            key: codeseal_signer::KeyKind::Rsa {
                                bits: u32::try_from(key.public_modulus_len() * 8)
                                    .unwrap_or(u32::MAX),
                            },
                            requested: algorithm,
                        });
                    }
                };
                let d = digest::Digest::import_less_safe(digest, lc_alg).map_err(fail)?;
                let mut sig = vec![0u8; key.public_modulus_len()];
                key.sign_digest(encoding, &d, &mut sig).map_err(fail)?;
                Ok(sig)
            }
            Self::Ec { key, digest: own } => {
                let fitted = for_curve(digest, own.output_len());
                let d = digest::Digest::import_less_safe(&fitted, own).map_err(fail)?;
                Ok(key.sign_digest(&d).map_err(fail)?.as_ref().to_vec())
            }
            #[cfg(feature = "provider-rustcrypto")]
            Self::Fallback(k) => k.sign_digest(algorithm, digest),
        }
    }

    fn backend_for(&self, algorithm: SignatureAlgorithm) -> &'static str {
        match self {
            Self::Rsa { .. } if lc_digest(algorithm.digest).is_none() => "rustcrypto",
            #[cfg(feature = "provider-rustcrypto")]
            Self::Fallback(_) => "rustcrypto",
            _ => NAME,
        }
    }

    fn can_sign(&self, algorithm: SignatureAlgorithm) -> bool {
        cfg!(feature = "provider-rustcrypto")
            || !matches!(self, Self::Rsa { .. } if lc_digest(algorithm.digest).is_none())
    }

    fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, LoadError> {
        // aws-lc-rs clears its own buffer (`Pkcs8V1Der`, `Document`) on drop.
        let bytes = match self {
            Self::Rsa { key, .. } => {
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                    key.as_der().map_err(rejected)?;
                der.as_ref().to_vec()
            }
            Self::Ec { key, .. } => key.to_pkcs8v1().map_err(rejected)?.as_ref().to_vec(),
            #[cfg(feature = "provider-rustcrypto")]
            Self::Fallback(k) => return k.to_pkcs8_der(),
        };
        Ok(Zeroizing::new(bytes))
    }
}

impl CryptoProvider for AwsLc {
    fn name(&self) -> &'static str {
        NAME
    }

    fn load_pkcs8(
        &self,
        key_type: KeyType,
        pkcs8_der: &[u8],
    ) -> Result<Box<dyn ProviderKey>, LoadError> {
        Ok(Box::new(match key_type {
            KeyType::Rsa => match RsaKeyPair::from_pkcs8(pkcs8_der) {
                Ok(k) => Key::rsa(k),
                // Outside aws-lc's 2048..=8192 bits (or malformed): the RustCrypto form,
                // whose errors and size checks are the ones codeseal has always given.
                #[cfg(feature = "provider-rustcrypto")]
                Err(_) => Key::Fallback(rustcrypto::Key::load(key_type, pkcs8_der)?),
                #[cfg(not(feature = "provider-rustcrypto"))]
                Err(e) => return Err(rejected(e)),
            },
            KeyType::P256 | KeyType::P384 => Key::ec(key_type, pkcs8_der)?,
        }))
    }

    fn generate(&self, kind: KeyKind) -> Result<Box<dyn ProviderKey>, LoadError> {
        let fail = |e: aws_lc_rs::error::Unspecified| LoadError::Format(e.to_string());
        Ok(Box::new(match kind {
            KeyKind::Rsa { bits } => {
                let size = match bits {
                    2048 => KeySize::Rsa2048,
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    8192 => KeySize::Rsa8192,
                    #[cfg(feature = "provider-rustcrypto")]
                    _ => return super::RUSTCRYPTO.generate(kind),
                    #[cfg(not(feature = "provider-rustcrypto"))]
                    _ => {
                        return Err(codeseal_signer::SignError::UnsupportedKey(format!(
                            "RSA key of {bits} bits (aws-lc-rs makes 2048, 3072, 4096 and 8192)"
                        ))
                        .into())
                    }
                };
                Key::rsa(RsaKeyPair::generate(size).map_err(fail)?)
            }
            KeyKind::EcP256 => Key::Ec {
                key: EcdsaKeyPair::generate(&lc::ECDSA_P256_SHA256_ASN1_SIGNING).map_err(fail)?,
                digest: &digest::SHA256,
            },
            KeyKind::EcP384 => Key::Ec {
                key: EcdsaKeyPair::generate(&lc::ECDSA_P384_SHA384_ASN1_SIGNING).map_err(fail)?,
                digest: &digest::SHA384,
            },
        }))
    }
}
