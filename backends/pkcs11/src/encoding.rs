//! Byte formats between PKCS#11 and X.509: DigestInfo for CKM_RSA_PKCS, raw r‖s → DER for
//! CKM_ECDSA, and SubjectPublicKeyInfo from token attributes.
use codeseal_signer::{DigestAlgorithm, KeyKind};
use const_oid::{db::rfc5912, ObjectIdentifier};
use der::{
    asn1::{BitString, Null, OctetStringRef, UintRef},
    Decode, Encode,
};
use p256::pkcs8::EncodePublicKey;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use crate::Pkcs11Error;

/// The DER prefix of `DigestInfo ::= SEQUENCE { AlgorithmIdentifier (with NULL parameters),
/// OCTET STRING digest }` for each hash (RFC 8017 section 9.2, note 1). CKM_RSA_PKCS over
/// prefix‖digest gives the same signature as CKM_SHA*_RSA_PKCS over the message.
pub(crate) fn digest_info_prefix(alg: DigestAlgorithm) -> &'static [u8] {
    match alg {
        DigestAlgorithm::Sha1 => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        DigestAlgorithm::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        DigestAlgorithm::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        DigestAlgorithm::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}

/// The DER DigestInfo of `digest`.
pub(crate) fn digest_info(alg: DigestAlgorithm, digest: &[u8]) -> Vec<u8> {
    let prefix = digest_info_prefix(alg);
    let mut out = Vec::with_capacity(prefix.len() + digest.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(digest);
    out
}

/// Byte length of a field element (and of r and s) of an EC key kind.
pub(crate) fn ec_field_len(kind: KeyKind) -> Option<usize> {
    match kind {
        KeyKind::EcP256 => Some(32),
        KeyKind::EcP384 => Some(48),
        KeyKind::Rsa { .. } => None,
    }
}

/// The DER `Ecdsa-Sig-Value` for a CKM_ECDSA output (raw r‖s, PKCS#11 section 2.3.1).
/// A token that already returns DER is accepted too.
pub(crate) fn ecdsa_raw_to_der(kind: KeyKind, raw: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
    let malformed = |reason: String| Pkcs11Error::Malformed {
        what: "ECDSA signature",
        reason,
    };
    let fl = ec_field_len(kind).ok_or_else(|| malformed("not an EC key".into()))?;
    let is_raw = raw.len() == 2 * fl;
    match kind {
        KeyKind::EcP256 => {
            let sig = if is_raw {
                p256::ecdsa::Signature::from_slice(raw)
            } else {
                p256::ecdsa::Signature::from_der(raw)
            }
            .map_err(|e| malformed(format!("{} bytes: {e}", raw.len())))?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
        KeyKind::EcP384 => {
            let sig = if is_raw {
                p384::ecdsa::Signature::from_slice(raw)
            } else {
                p384::ecdsa::Signature::from_der(raw)
            }
            .map_err(|e| malformed(format!("{} bytes: {e}", raw.len())))?;
            Ok(sig.to_der().as_bytes().to_vec())
        }
        KeyKind::Rsa { .. } => Err(malformed("not an EC key".into())),
    }
}

/// The SPKI of an RSA key from CKA_MODULUS and CKA_PUBLIC_EXPONENT (big-endian bytes).
pub(crate) fn rsa_spki(
    modulus: &[u8],
    exponent: &[u8],
) -> Result<SubjectPublicKeyInfoOwned, Pkcs11Error> {
    let malformed = |e: der::Error| Pkcs11Error::Malformed {
        what: "RSA public key",
        reason: e.to_string(),
    };
    let key = pkcs1::RsaPublicKey {
        modulus: UintRef::new(modulus).map_err(malformed)?,
        public_exponent: UintRef::new(exponent).map_err(malformed)?,
    };
    let der = key.to_der().map_err(malformed)?;
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: rfc5912::RSA_ENCRYPTION,
            parameters: Some(Null.into()),
        },
        subject_public_key: BitString::from_bytes(&der).map_err(malformed)?,
    })
}

/// The curve named by CKA_EC_PARAMS (DER `ECParameters`; only namedCurve is accepted).
pub(crate) fn ec_curve(params: &[u8]) -> Result<KeyKind, String> {
    let oid = ObjectIdentifier::from_der(params).map_err(|_| {
        "CKA_EC_PARAMS is not a named-curve OID (explicit curve parameters are refused)".to_string()
    })?;
    if oid == rfc5912::SECP_256_R_1 {
        Ok(KeyKind::EcP256)
    } else if oid == rfc5912::SECP_384_R_1 {
        Ok(KeyKind::EcP384)
    } else {
        Err(format!(
            "EC key on curve {oid} (codeseal signs with P-256 and P-384)"
        ))
    }
}

/// The SEC1 point inside CKA_EC_POINT: PKCS#11 says DER OCTET STRING around the point, some
/// tokens return the bare point.
fn ec_point_bytes(point: &[u8], field_len: usize) -> Result<&[u8], String> {
    let bare_uncompressed = point.len() == 1 + 2 * field_len && point.first() == Some(&0x04);
    let bare_compressed =
        point.len() == 1 + field_len && matches!(point.first(), Some(&0x02) | Some(&0x03));
    if bare_uncompressed || bare_compressed {
        return Ok(point);
    }
    OctetStringRef::from_der(point)
        .map(|o| o.as_bytes())
        .map_err(|e| format!("CKA_EC_POINT is neither a DER OCTET STRING nor a SEC1 point: {e}"))
}

/// The SPKI of an EC key from CKA_EC_PARAMS and CKA_EC_POINT.
pub(crate) fn ec_spki(params: &[u8], point: &[u8]) -> Result<SubjectPublicKeyInfoOwned, String> {
    let kind = ec_curve(params)?;
    let fl = ec_field_len(kind).unwrap_or(32);
    let sec1 = ec_point_bytes(point, fl)?;
    let doc = match kind {
        KeyKind::EcP256 => p256::PublicKey::from_sec1_bytes(sec1)
            .map_err(|e| format!("P-256 point: {e}"))?
            .to_public_key_der(),
        _ => p384::PublicKey::from_sec1_bytes(sec1)
            .map_err(|e| format!("P-384 point: {e}"))?
            .to_public_key_der(),
    }
    .map_err(|e| e.to_string())?;
    SubjectPublicKeyInfoOwned::from_der(doc.as_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use codeseal_signer::key_kind_of;

    use super::*;

    #[test]
    fn digest_info_prefixes_match_der() {
        for alg in DigestAlgorithm::ALL {
            let digest = alg.digest(b"x");
            // DigestInfo built with the der crate from the algorithm's own identifier.
            let ai = alg.algorithm_identifier();
            let mut inner = ai.to_der().expect("ai");
            inner.extend(
                OctetStringRef::new(&digest)
                    .expect("os")
                    .to_der()
                    .expect("os der"),
            );
            let mut want = vec![0x30, u8::try_from(inner.len()).expect("short")];
            want.extend(inner);
            assert_eq!(digest_info(alg, &digest), want, "{alg}");
        }
    }

    #[test]
    fn ec_point_forms() {
        let key = p256::SecretKey::from_slice(&[7u8; 32]).expect("key");
        let point = key.public_key().to_sec1_bytes();
        let params = rfc5912::SECP_256_R_1.to_der().expect("oid");
        let wrapped = OctetStringRef::new(&point)
            .expect("os")
            .to_der()
            .expect("der");
        let a = ec_spki(&params, &point).expect("bare");
        let b = ec_spki(&params, &wrapped).expect("wrapped");
        assert_eq!(a, b);
        assert_eq!(key_kind_of(&a).expect("kind"), KeyKind::EcP256);
        let p384 = rfc5912::SECP_384_R_1.to_der().expect("oid");
        assert!(ec_spki(&p384, &point).is_err(), "P-256 point on P-384");
        let secp256k1 = ObjectIdentifier::new_unwrap("1.3.132.0.10")
            .to_der()
            .expect("oid");
        assert!(ec_spki(&secp256k1, &point)
            .expect_err("k1")
            .contains("1.3.132.0.10"));
        assert!(ec_spki(&[0x30, 0x00], &point)
            .expect_err("explicit")
            .contains("named"));
        assert!(ec_spki(&params, &[1, 2, 3]).is_err());
    }

    #[test]
    fn rsa_spki_from_attributes() {
        let mut n = vec![0u8]; // a leading zero, as some tokens return
        n.push(0xc5);
        n.extend(std::iter::repeat_n(0x5a, 254));
        n.push(0x5b); // odd
        let spki = rsa_spki(&n, &[0x01, 0x00, 0x01]).expect("spki");
        assert_eq!(
            key_kind_of(&spki).expect("kind"),
            KeyKind::Rsa { bits: 2048 }
        );
    }

    #[test]
    fn raw_ecdsa_to_der() {
        let mut raw = [0u8; 64];
        raw[31] = 1;
        raw[63] = 2;
        let der = ecdsa_raw_to_der(KeyKind::EcP256, &raw).expect("der");
        assert_eq!(der, [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02]);
        // Already DER: passes through.
        assert_eq!(ecdsa_raw_to_der(KeyKind::EcP256, &der).expect("der"), der);
        let mut raw = [0u8; 96];
        raw[0] = 0x80; // high bit: DER adds a zero byte
        raw[95] = 3;
        let der = ecdsa_raw_to_der(KeyKind::EcP384, &raw).expect("der");
        assert_eq!(&der[..4], &[0x30, 0x36, 0x02, 0x31]);
        assert!(
            ecdsa_raw_to_der(KeyKind::EcP256, &[0u8; 64]).is_err(),
            "r = 0"
        );
        assert!(
            ecdsa_raw_to_der(KeyKind::EcP384, &[1u8; 64]).is_err(),
            "wrong length"
        );
    }
}
