use const_oid::db::rfc5912;
use der::Encode;
use rsa::{pkcs8::DecodePublicKey, traits::PublicKeyParts, Pkcs1v15Sign, RsaPublicKey};
use signature::hazmat::PrehashVerifier;
use spki::SubjectPublicKeyInfoOwned;

use crate::{DigestAlgorithm, KeyKind, SignError};

/// The smallest RSA modulus codeseal accepts, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus codeseal accepts, in bits.
pub const MAX_RSA_BITS: usize = 16384;

enum Pub {
    Rsa(RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

fn decode(spki: &SubjectPublicKeyInfoOwned) -> Result<Pub, SignError> {
    let der = spki
        .to_der()
        .map_err(|e| SignError::malformed("public key", e))?;
    let oid = spki.algorithm.oid;
    if oid == rfc5912::RSA_ENCRYPTION {
        let k = RsaPublicKey::from_public_key_der(&der)
            .map_err(|e| SignError::malformed("RSA public key", e))?;
        let bits = k.n().bits();
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(SignError::UnsupportedKey(format!(
                "RSA key of {bits} bits (codeseal accepts {MIN_RSA_BITS} to {MAX_RSA_BITS})"
            )));
        }
        return Ok(Pub::Rsa(k));
    }
    if oid == rfc5912::ID_EC_PUBLIC_KEY {
        // Only named curves: the decoders below reject explicit curve parameters
        // (CVE-2020-0601 "CurveBall" came from trusting those).
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
        return match curve {
            Some(c) if c == rfc5912::SECP_256_R_1 => {
                p256::ecdsa::VerifyingKey::from_public_key_der(&der)
                    .map(Pub::P256)
                    .map_err(|e| SignError::malformed("P-256 public key", e))
            }
            Some(c) if c == rfc5912::SECP_384_R_1 => {
                p384::ecdsa::VerifyingKey::from_public_key_der(&der)
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
    Ok(match decode(spki)? {
        Pub::Rsa(k) => KeyKind::Rsa {
            bits: u32::try_from(k.n().bits()).unwrap_or(u32::MAX),
        },
        Pub::P256(_) => KeyKind::EcP256,
        Pub::P384(_) => KeyKind::EcP384,
    })
}

/// Verifies `signature` over the precomputed `digest` (made with `digest_alg`) with the
/// public key `spki`: RSASSA-PKCS1-v1_5 for RSA keys, DER-encoded ECDSA for EC keys.
pub fn verify_prehash(
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
    let bad = |_| SignError::Malformed {
        what: "signature",
        reason: "does not verify".into(),
    };
    match decode(spki)? {
        Pub::Rsa(k) => {
            let scheme = match digest_alg {
                DigestAlgorithm::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
                DigestAlgorithm::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
                DigestAlgorithm::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
                DigestAlgorithm::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
            };
            k.verify(scheme, digest, signature).map_err(|_| bad(()))
        }
        Pub::P256(k) => {
            let sig = p256::ecdsa::Signature::from_der(signature)
                .map_err(|e| SignError::malformed("ECDSA signature", e))?;
            k.verify_prehash(digest, &sig).map_err(|_| bad(()))
        }
        Pub::P384(k) => {
            let sig = p384::ecdsa::Signature::from_der(signature)
                .map_err(|e| SignError::malformed("ECDSA signature", e))?;
            k.verify_prehash(digest, &sig).map_err(|_| bad(()))
        }
    }
}
