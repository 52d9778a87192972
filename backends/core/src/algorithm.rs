use std::fmt;

use const_oid::{db::rfc5912, ObjectIdentifier};
use der::asn1::Null;
use digest::Digest;
use serde::{Deserialize, Serialize};
use spki::AlgorithmIdentifierOwned;

/// ecdsa-with-SHA1 (RFC 3279); not in const-oid's RFC 5912 table.
const ECDSA_WITH_SHA_1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");

/// A hash function used for Authenticode digests and for signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgorithm {
    /// SHA-1: legacy only (dual signing for old Windows); never the default.
    Sha1,
    /// SHA-256: the default.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// All algorithms, strongest last.
    pub const ALL: [DigestAlgorithm; 4] = [Self::Sha1, Self::Sha256, Self::Sha384, Self::Sha512];

    /// The object identifier of the hash function.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => rfc5912::ID_SHA_1,
            Self::Sha256 => rfc5912::ID_SHA_256,
            Self::Sha384 => rfc5912::ID_SHA_384,
            Self::Sha512 => rfc5912::ID_SHA_512,
        }
    }

    /// The algorithm whose OID is `oid`, if it is one we know.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.oid() == *oid)
    }

    /// The AlgorithmIdentifier as Windows and OpenSSL write it (parameters NULL).
    pub fn algorithm_identifier(self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters: Some(Null.into()),
        }
    }

    /// Length of the digest in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// Hashes `data` in one call.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Self::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// The lower-case name used on the command line (`sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    /// Whether this hash is considered weak (SHA-1).
    pub fn is_weak(self) -> bool {
        matches!(self, Self::Sha1)
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DigestAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "sha1" => Ok(Self::Sha1),
            "sha256" => Ok(Self::Sha256),
            "sha384" => Ok(Self::Sha384),
            "sha512" => Ok(Self::Sha512),
            other => Err(format!(
                "unknown digest algorithm {other:?} (expected sha256, sha384, sha512 or sha1)"
            )),
        }
    }
}

/// The kind of a key: what it can sign with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyKind {
    /// An RSA key of the given modulus size in bits.
    Rsa {
        /// Modulus size in bits.
        bits: u32,
    },
    /// An ECDSA key on NIST P-256.
    EcP256,
    /// An ECDSA key on NIST P-384.
    EcP384,
}

impl KeyKind {
    /// The signature algorithm this key uses by default with `digest`.
    pub fn with_digest(self, digest: DigestAlgorithm) -> SignatureAlgorithm {
        SignatureAlgorithm { key: self, digest }
    }

    /// Whether a key of this kind can sign a digest made with `digest`. ECDSA on P-384
    /// needs a digest of at least 24 bytes, so SHA-1 is out there.
    pub fn can_sign(self, digest: DigestAlgorithm) -> bool {
        !matches!((self, digest), (Self::EcP384, DigestAlgorithm::Sha1))
    }

    /// The digest codeseal uses with this key when none is asked for: SHA-384 for P-384
    /// (what AWS KMS offers for it), SHA-256 otherwise.
    pub fn default_digest(self) -> DigestAlgorithm {
        match self {
            Self::EcP384 => DigestAlgorithm::Sha384,
            _ => DigestAlgorithm::Sha256,
        }
    }

    /// Whether this is an RSA key.
    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa { .. })
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { bits } => write!(f, "RSA-{bits}"),
            Self::EcP256 => f.write_str("ECDSA P-256"),
            Self::EcP384 => f.write_str("ECDSA P-384"),
        }
    }
}

/// A signature algorithm: a key kind and the hash whose digest it signs.
///
/// RSA keys sign with RSASSA-PKCS1-v1_5; EC keys with ECDSA, and the signature is the DER
/// `Ecdsa-Sig-Value` (what CMS and X.509 carry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignatureAlgorithm {
    /// The key kind.
    pub key: KeyKind,
    /// The hash function whose output is signed.
    pub digest: DigestAlgorithm,
}

impl SignatureAlgorithm {
    /// The X.509 signature AlgorithmIdentifier (e.g. sha256WithRSAEncryption with NULL
    /// parameters, ecdsa-with-SHA256 with none), as used in certificates and CSRs.
    pub fn x509_algorithm_identifier(self) -> AlgorithmIdentifierOwned {
        use DigestAlgorithm::*;
        if self.key.is_rsa() {
            let oid = match self.digest {
                Sha1 => rfc5912::SHA_1_WITH_RSA_ENCRYPTION,
                Sha256 => rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                Sha384 => rfc5912::SHA_384_WITH_RSA_ENCRYPTION,
                Sha512 => rfc5912::SHA_512_WITH_RSA_ENCRYPTION,
            };
            AlgorithmIdentifierOwned {
                oid,
                parameters: Some(Null.into()),
            }
        } else {
            let oid = match self.digest {
                Sha1 => ECDSA_WITH_SHA_1,
                Sha256 => rfc5912::ECDSA_WITH_SHA_256,
                Sha384 => rfc5912::ECDSA_WITH_SHA_384,
                Sha512 => rfc5912::ECDSA_WITH_SHA_512,
            };
            AlgorithmIdentifierOwned {
                oid,
                parameters: None,
            }
        }
    }

    /// The AlgorithmIdentifier for a CMS SignerInfo's `signatureAlgorithm`. For RSA this is
    /// rsaEncryption (what SignTool and osslsigncode write); for ECDSA the X.509 identifier.
    pub fn cms_signature_algorithm(self) -> AlgorithmIdentifierOwned {
        if self.key.is_rsa() {
            AlgorithmIdentifierOwned {
                oid: rfc5912::RSA_ENCRYPTION,
                parameters: Some(Null.into()),
            }
        } else {
            self.x509_algorithm_identifier()
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key {
            KeyKind::Rsa { .. } => write!(f, "RSASSA-PKCS1-v1_5 with {}", self.digest),
            KeyKind::EcP256 => write!(f, "ECDSA P-256 with {}", self.digest),
            KeyKind::EcP384 => write!(f, "ECDSA P-384 with {}", self.digest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_lengths_match_output() {
        for a in DigestAlgorithm::ALL {
            assert_eq!(a.digest(b"abc").len(), a.output_len(), "{a}");
            assert_eq!(DigestAlgorithm::from_oid(&a.oid()), Some(a));
            assert_eq!(a.name().parse::<DigestAlgorithm>(), Ok(a));
        }
        assert!("md5".parse::<DigestAlgorithm>().is_err());
    }

    #[test]
    fn sha256_known_answer() {
        let d = DigestAlgorithm::Sha256.digest(b"abc");
        assert_eq!(
            d[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(abc) starts with ba7816bf"
        );
    }
}
