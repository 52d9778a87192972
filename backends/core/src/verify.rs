//! Signature verification with a public key: the public-key side of codeseal's crypto
//! providers ([`Verifier`]).
use const_oid::db::rfc5912;
use der::{asn1::Null, Decode, Encode};
use rsa::{pkcs1, pkcs8::DecodePublicKey, BigUint, Pkcs1v15Sign, RsaPublicKey};
use signature::hazmat::PrehashVerifier;
use spki::SubjectPublicKeyInfoOwned;

use crate::{DigestAlgorithm, KeyKind, SignError};

/// The smallest RSA modulus codeseal accepts, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus codeseal accepts, in bits.
pub const MAX_RSA_BITS: usize = 16384;

/// An implementation of signature verification: the code that does the public-key
/// arithmetic after codeseal's checks.
///
/// The checks are made once, before either implementation runs, so both give the same
/// verdict (`backends/core/tests/verify_cross.rs` checks that on OpenSSL's signatures):
/// RSA moduli of [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits with the public exponent the
/// `rsa` crate accepts (odd, 3 to 2^33 − 1, below the modulus) and NULL parameters; EC keys
/// on the named curves P-256 and P-384 only (never explicit parameters: CVE-2020-0601), on
/// the curve, compressed or not; RSA signatures exactly as long as the modulus; ECDSA
/// signatures in strict DER with `r` and `s` in 1..n−1 (a high `s` is accepted: ECDSA as
/// FIPS 186-5 and RFC 5480 define it has no low-S rule, OpenSSL accepts one, and Windows
/// documents none; Windows itself is not tested here); ECDSA on P-384
/// not with SHA-1 (its digest is shorter than half the order, [`KeyKind::can_sign`]).
///
/// [`verify_prehash`] uses [`Verifier::default()`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verifier {
    /// aws-lc-rs (feature `aws-lc`, on by default): 10–40 times faster than the pure-Rust
    /// code (docs/performance.md). RSA keys above 8192 bits, which aws-lc-rs does not take,
    /// are verified by the RustCrypto code.
    #[cfg(feature = "aws-lc")]
    AwsLc,
    /// The `rsa`, `p256` and `p384` crates: pure Rust.
    RustCrypto,
}

impl Verifier {
    /// Every implementation in this build, the default first.
    pub const ALL: &'static [Verifier] = &[
        #[cfg(feature = "aws-lc")]
        Verifier::AwsLc,
        Verifier::RustCrypto,
    ];

    /// A short name: `aws-lc-rs` or `rustcrypto`.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "aws-lc")]
            Self::AwsLc => "aws-lc-rs",
            Self::RustCrypto => "rustcrypto",
        }
    }

    /// Verifies `signature` over the precomputed `digest` (made with `digest_alg`) with the
    /// public key `spki`: RSASSA-PKCS1-v1_5 for RSA keys, DER-encoded ECDSA for EC keys.
    pub fn verify_prehash(
        self,
        spki: &SubjectPublicKeyInfoOwned,
        digest_alg: DigestAlgorithm,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<(), SignError> {
        if digest.len() != digest_alg.output_len() {
            return Err(SignError::DigestLength {
                algorithm: digest_alg,
                expected: digest_alg.output_len(),
                actual: digest.len(),
            });
        }
        let key = decode(spki)?;
        let kind = key.kind();
        if !kind.can_sign(digest_alg) {
            return Err(SignError::UnsupportedAlgorithm {
                key: kind,
                requested: kind.with_digest(digest_alg),
            });
        }
        let verified = match key {
            Pub::Rsa { key, pkcs1, bits } => {
                if signature.len() != bits.div_ceil(8) {
                    return Err(bad());
                }
                self.rsa(&key, pkcs1, bits, digest_alg, digest, signature)
            }
            Pub::P256(k) => {
                let sig = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|e| SignError::malformed("ECDSA signature", e))?;
                self.p256(&k, digest, &sig)
            }
            Pub::P384(k) => {
                let sig = p384::ecdsa::Signature::from_der(signature)
                    .map_err(|e| SignError::malformed("ECDSA signature", e))?;
                self.p384(&k, digest, &sig)
            }
        };
        if verified {
            Ok(())
        } else {
            Err(bad())
        }
    }

    fn rsa(
        self,
        key: &RsaPublicKey,
        pkcs1: &[u8],
        bits: usize,
        digest_alg: DigestAlgorithm,
        digest: &[u8],
        signature: &[u8],
    ) -> bool {
        #[cfg(feature = "aws-lc")]
        if self == Self::AwsLc && bits <= aws_lc::MAX_RSA_BITS {
            return aws_lc::rsa(pkcs1, digest_alg, digest, signature);
        }
        let _ = (self, pkcs1, bits);
        let scheme = match digest_alg {
            DigestAlgorithm::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
            DigestAlgorithm::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
            DigestAlgorithm::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
            DigestAlgorithm::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
        };
        key.verify(scheme, digest, signature).is_ok()
    }

    fn p256(
        self,
        key: &p256::ecdsa::VerifyingKey,
        digest: &[u8],
        sig: &p256::ecdsa::Signature,
    ) -> bool {
        match self {
            #[cfg(feature = "aws-lc")]
            Self::AwsLc => aws_lc::ecdsa(
                aws_lc::Curve::P256,
                key.to_encoded_point(false).as_bytes(),
                digest,
                &sig.to_bytes(),
            ),
            Self::RustCrypto => key.verify_prehash(digest, sig).is_ok(),
        }
    }

    fn p384(
        self,
        key: &p384::ecdsa::VerifyingKey,
        digest: &[u8],
        sig: &p384::ecdsa::Signature,
    ) -> bool {
        match self {
            #[cfg(feature = "aws-lc")]
            Self::AwsLc => aws_lc::ecdsa(
                aws_lc::Curve::P384,
                key.to_encoded_point(false).as_bytes(),
                digest,
                &sig.to_bytes(),
            ),
            Self::RustCrypto => key.verify_prehash(digest, sig).is_ok(),
        }
    }
}

impl Default for Verifier {
    /// aws-lc-rs when it is built (feature `aws-lc`), RustCrypto otherwise. With aws-lc-rs
    /// built, the environment variable `CODESEAL_CRYPTO_PROVIDER=rustcrypto` (read once, the
    /// variable that picks the provider of local keys too) selects RustCrypto, for
    /// before/after measurements.
    fn default() -> Self {
        #[cfg(feature = "aws-lc")]
        {
            static CHOSEN: std::sync::OnceLock<Verifier> = std::sync::OnceLock::new();
            *CHOSEN.get_or_init(|| {
                if std::env::var_os("CODESEAL_CRYPTO_PROVIDER").is_some_and(|v| v == "rustcrypto") {
                    Self::RustCrypto
                } else {
                    Self::AwsLc
                }
            })
        }
        #[cfg(not(feature = "aws-lc"))]
        {
            Self::RustCrypto
        }
    }
}

fn bad() -> SignError {
    SignError::Malformed {
        what: "signature",
        reason: "does not verify".into(),
    }
}

/// A public key that passed codeseal's checks, in the forms the implementations take.
enum Pub<'a> {
    Rsa {
        key: RsaPublicKey,
        /// The DER `RSAPublicKey` (PKCS#1) of the SubjectPublicKeyInfo.
        pkcs1: &'a [u8],
        bits: usize,
    },
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl Pub<'_> {
    fn kind(&self) -> KeyKind {
        match self {
            Self::Rsa { bits, .. } => KeyKind::Rsa {
                bits: u32::try_from(*bits).unwrap_or(u32::MAX),
            },
            Self::P256(_) => KeyKind::EcP256,
            Self::P384(_) => KeyKind::EcP384,
        }
    }
}

/// The number of bits of the big-endian unsigned integer `be`.
fn bit_len(be: &[u8]) -> usize {
    let be = match be.iter().position(|&b| b != 0) {
        Some(i) => &be[i..],
        None => return 0,
    };
    let top = be.first().map_or(0, |b| 8 - b.leading_zeros() as usize);
    (be.len() - 1) * 8 + top
}

fn decode_rsa(spki: &SubjectPublicKeyInfoOwned) -> Result<Pub<'_>, SignError> {
    let malformed = |e: &dyn std::fmt::Display| SignError::malformed("RSA public key", e);
    // As the `rsa` crate decodes an SPKI: the parameters are NULL, the key whole bytes.
    if spki
        .algorithm
        .parameters
        .as_ref()
        .map_or(true, |p| p.decode_as::<Null>().is_err())
    {
        return Err(malformed(&"the algorithm parameters are not NULL"));
    }
    let pkcs1 = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| malformed(&"the key is not a whole number of bytes"))?;
    let parts = pkcs1::RsaPublicKey::from_der(pkcs1).map_err(|e| malformed(&e))?;
    let bits = bit_len(parts.modulus.as_bytes());
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(SignError::UnsupportedKey(format!(
            "RSA key of {bits} bits (codeseal accepts {MIN_RSA_BITS} to {MAX_RSA_BITS})"
        )));
    }
    // The `rsa` crate's checks of the exponent and modulus (odd n, odd e in 3..2^33, e < n).
    let key = RsaPublicKey::new_with_max_size(
        BigUint::from_bytes_be(parts.modulus.as_bytes()),
        BigUint::from_bytes_be(parts.public_exponent.as_bytes()),
        MAX_RSA_BITS,
    )
    .map_err(|e| malformed(&e))?;
    Ok(Pub::Rsa { key, pkcs1, bits })
}

fn decode(spki: &SubjectPublicKeyInfoOwned) -> Result<Pub<'_>, SignError> {
    let oid = spki.algorithm.oid;
    if oid == rfc5912::RSA_ENCRYPTION {
        return decode_rsa(spki);
    }
    if oid == rfc5912::ID_EC_PUBLIC_KEY {
        // Only named curves: the decoders below reject explicit curve parameters
        // (CVE-2020-0601 "CurveBall" came from trusting those).
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
        let der = || {
            spki.to_der()
                .map_err(|e| SignError::malformed("public key", e))
        };
        return match curve {
            Some(c) if c == rfc5912::SECP_256_R_1 => {
                p256::ecdsa::VerifyingKey::from_public_key_der(&der()?)
                    .map(Pub::P256)
                    .map_err(|e| SignError::malformed("P-256 public key", e))
            }
            Some(c) if c == rfc5912::SECP_384_R_1 => {
                p384::ecdsa::VerifyingKey::from_public_key_der(&der()?)
                    .map(Pub::P384)
                    .map_err(|e| SignError::malformed("P-384 public key", e))
            }
            _ => Err(SignError::UnsupportedKey(
                "EC key on a curve other than P-256 or P-384 (or with explicit parameters)".into(),
            )),
        };
    }
    Err(SignError::UnsupportedKey(format!(
        "public key algorithm {oid}"
    )))
}

/// The kind of the key in a SubjectPublicKeyInfo.
pub fn key_kind_of(spki: &SubjectPublicKeyInfoOwned) -> Result<KeyKind, SignError> {
    Ok(decode(spki)?.kind())
}

/// Verifies `signature` over the precomputed `digest` (made with `digest_alg`) with the
/// public key `spki`: RSASSA-PKCS1-v1_5 for RSA keys, DER-encoded ECDSA for EC keys, with
/// the fastest implementation built ([`Verifier::default()`]).
pub fn verify_prehash(
    spki: &SubjectPublicKeyInfoOwned,
    digest_alg: DigestAlgorithm,
    digest: &[u8],
    signature: &[u8],
) -> Result<(), SignError> {
    Verifier::default().verify_prehash(spki, digest_alg, digest, signature)
}

/// The arithmetic in aws-lc-rs, on inputs [`Verifier::verify_prehash`] has checked.
#[cfg(feature = "aws-lc")]
mod aws_lc {
    use aws_lc_rs::{
        digest::{self, Digest},
        signature::{self as lc, UnparsedPublicKey},
    };

    use crate::DigestAlgorithm;

    /// The largest RSA modulus aws-lc-rs verifies with (`RSA_PKCS1_2048_8192_*`).
    pub(super) const MAX_RSA_BITS: usize = 8192;

    pub(super) enum Curve {
        P256,
        P384,
    }

    /// RSASSA-PKCS1-v1_5 with the DER `RSAPublicKey` `pkcs1` of 2048 to 8192 bits.
    pub(super) fn rsa(
        pkcs1: &[u8],
        digest_alg: DigestAlgorithm,
        digest: &[u8],
        signature: &[u8],
    ) -> bool {
        let (alg, d): (&'static lc::RsaParameters, _) = match digest_alg {
            DigestAlgorithm::Sha1 => (
                &lc::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                &digest::SHA1_FOR_LEGACY_USE_ONLY,
            ),
            DigestAlgorithm::Sha256 => (&lc::RSA_PKCS1_2048_8192_SHA256, &digest::SHA256),
            DigestAlgorithm::Sha384 => (&lc::RSA_PKCS1_2048_8192_SHA384, &digest::SHA384),
            DigestAlgorithm::Sha512 => (&lc::RSA_PKCS1_2048_8192_SHA512, &digest::SHA512),
        };
        Digest::import_less_safe(digest, d).is_ok_and(|d| {
            UnparsedPublicKey::new(alg, pkcs1)
                .verify_digest(&d, signature)
                .is_ok()
        })
    }

    /// ECDSA with the uncompressed `point` and the signature `r ‖ s` (`fixed`). ECDSA
    /// verifies the digest as an integer of the order's size (FIPS 186-5 6.4.2, SEC 1 4.1.4:
    /// the leftmost bits of a longer digest, a shorter one as it is), so a digest of another
    /// length than the curve's own is cut to its leftmost bytes or left-padded with zeros,
    /// which is the same integer, and verified as the curve's own digest.
    pub(super) fn ecdsa(curve: Curve, point: &[u8], digest: &[u8], fixed: &[u8]) -> bool {
        let (alg, d) = match curve {
            Curve::P256 => (&lc::ECDSA_P256_SHA256_FIXED, &digest::SHA256),
            Curve::P384 => (&lc::ECDSA_P384_SHA384_FIXED, &digest::SHA384),
        };
        let len = d.output_len();
        let mut fitted = [0u8; 64];
        let Some(out) = fitted.get_mut(..len) else {
            return false;
        };
        if digest.len() >= len {
            out.copy_from_slice(&digest[..len]);
        } else {
            out[len - digest.len()..].copy_from_slice(digest);
        }
        Digest::import_less_safe(out, d).is_ok_and(|d| {
            UnparsedPublicKey::new(alg, point)
                .verify_digest(&d, fixed)
                .is_ok()
        })
    }
}
