use std::{fmt, path::Path};

use codeseal_signer::{key_kind_of, KeyKind, KeySigner, SignError, SignatureAlgorithm};
use der::{oid::AssociatedOid, Decode, Encode};
use secrecy::{ExposeSecret, SecretString};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use crate::provider::{default_provider, CryptoProvider, KeyType, ProviderKey};

/// Why a key file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Io {
        /// The file (through [`codeseal_signer::redact_uri`]).
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than any key file could be.
    #[error("key file {path} is {size} bytes; a key file is at most {max} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The key is encrypted and no password was given.
    #[error("the key is encrypted: give its password (CODESEAL_KEY_PASSWORD or a password file)")]
    PasswordRequired,
    /// The password is wrong or the encryption scheme is unsupported.
    #[error("cannot decrypt the key: wrong password or unsupported encryption ({0})")]
    Decrypt(String),
    /// The bytes are not a key in a format we know.
    #[error(
        "not a private key in a supported format (PKCS#8, PKCS#1, SEC1 PEM/DER, PKCS#12): {0}"
    )]
    Format(String),
    /// The key parsed but is of a type or size codeseal does not sign with.
    #[error(transparent)]
    Unsupported(#[from] SignError),
    /// A PKCS#12 file holds no private key.
    #[error("the PKCS#12 file holds no private key")]
    NoKeyInPkcs12,
}

/// Largest key file we read (a PKCS#12 with a long chain is a few KiB).
const MAX_KEY_FILE: u64 = 1 << 20;

/// A private key in memory, loaded from a file or generated, in a [`CryptoProvider`]'s form.
pub struct LocalKey {
    inner: Box<dyn ProviderKey>,
    provider: &'static dyn CryptoProvider,
    kind: KeyKind,
    public: SubjectPublicKeyInfoOwned,
    source: String,
}

/// What a PKCS#12 file holds: the key and the certificates, leaf first.
pub struct Pkcs12Contents {
    /// The private key.
    pub key: LocalKey,
    /// The certificate chain stored with the key, leaf first (may be empty).
    pub chain: Vec<Certificate>,
}

impl fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey")
            .field("kind", &self.kind)
            .field("provider", &self.provider.name())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

fn format_error(e: impl fmt::Display) -> LoadError {
    LoadError::Format(e.to_string())
}

/// The key type named by a PKCS#8 `AlgorithmIdentifier`.
fn key_type_of(alg: &spki::AlgorithmIdentifierRef<'_>) -> Result<KeyType, LoadError> {
    if alg.oid == pkcs1::ALGORITHM_OID {
        return Ok(KeyType::Rsa);
    }
    if alg.oid == ID_EC_PUBLIC_KEY {
        let curve = alg
            .parameters
            .and_then(|p| p.decode_as::<der::oid::ObjectIdentifier>().ok());
        match curve {
            Some(c) if c == p256::NistP256::OID => return Ok(KeyType::P256),
            Some(c) if c == p384::NistP384::OID => return Ok(KeyType::P384),
            _ => {}
        }
    }
    Err(SignError::UnsupportedKey(format!(
        "private key algorithm {} (codeseal signs with RSA, P-256 and P-384 keys)",
        alg.oid
    ))
    .into())
}

/// `id-ecPublicKey`.
const ID_EC_PUBLIC_KEY: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// Wraps a bare private key (PKCS#1 `RSAPrivateKey` or SEC1 `ECPrivateKey`) in a PKCS#8
/// `PrivateKeyInfo`, in memory that is cleared when dropped.
fn wrap_pkcs8(
    oid: der::oid::ObjectIdentifier,
    parameters: der::asn1::AnyRef<'_>,
    private_key: &[u8],
) -> Result<Zeroizing<Vec<u8>>, LoadError> {
    let info = pkcs8::PrivateKeyInfo {
        algorithm: spki::AlgorithmIdentifierRef {
            oid,
            parameters: Some(parameters),
        },
        private_key,
        public_key: None,
    };
    let mut out = Zeroizing::new(Vec::new());
    info.encode_to_vec(&mut out).map_err(format_error)?;
    Ok(out)
}

impl LocalKey {
    fn from_provider_key(
        inner: Box<dyn ProviderKey>,
        provider: &'static dyn CryptoProvider,
        source: String,
    ) -> Result<Self, LoadError> {
        let der = inner.public_key_der()?;
        let public = SubjectPublicKeyInfoOwned::from_der(&der).map_err(format_error)?;
        let kind = key_kind_of(&public)?;
        Ok(Self {
            inner,
            provider,
            kind,
            public,
            source,
        })
    }

    /// Makes a new random key of `kind` (for throwaway test PKIs), with the default provider.
    pub fn generate(kind: KeyKind) -> Result<Self, LoadError> {
        Self::generate_with(kind, default_provider())
    }

    /// Makes a new random key of `kind` with `provider`.
    pub fn generate_with(
        kind: KeyKind,
        provider: &'static dyn CryptoProvider,
    ) -> Result<Self, LoadError> {
        let inner = provider.generate(kind)?;
        Self::from_provider_key(inner, provider, format!("generated {kind}"))
    }

    /// The same key in another provider's form (the public key is checked to be the same).
    pub fn with_provider(&self, provider: &'static dyn CryptoProvider) -> Result<Self, LoadError> {
        let der = self.inner.to_pkcs8_der()?;
        let k = Self::from_pkcs8_der_in(&der, self.source.clone(), provider)?;
        if k.public != self.public {
            return Err(LoadError::Format(
                "the key changed between providers".into(),
            ));
        }
        Ok(k)
    }

    /// The provider that holds this key.
    pub fn provider(&self) -> &'static dyn CryptoProvider {
        self.provider
    }

    /// The implementation that signs with `algorithm`: the provider, or its fallback for a
    /// combination the provider cannot sign (see [`crate::provider`]).
    pub fn backend_for(&self, algorithm: SignatureAlgorithm) -> &'static str {
        self.inner.backend_for(algorithm)
    }

    /// Decodes a PKCS#8 `PrivateKeyInfo` in DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, LoadError> {
        Self::from_pkcs8_der_named(der, "PKCS#8 DER".into())
    }

    fn from_pkcs8_der_named(der: &[u8], source: String) -> Result<Self, LoadError> {
        Self::from_pkcs8_der_in(der, source, default_provider())
    }

    fn from_pkcs8_der_in(
        der: &[u8],
        source: String,
        provider: &'static dyn CryptoProvider,
    ) -> Result<Self, LoadError> {
        let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(format_error)?;
        let key_type = key_type_of(&info.algorithm)?;
        let inner = provider.load_pkcs8(key_type, der)?;
        Self::from_provider_key(inner, provider, source)
    }

    /// Decodes a PEM private key: `PRIVATE KEY` (PKCS#8), `ENCRYPTED PRIVATE KEY` (needs
    /// `password`), `RSA PRIVATE KEY` (PKCS#1) or `EC PRIVATE KEY` (SEC1).
    pub fn from_pem(pem: &str, password: Option<&SecretString>) -> Result<Self, LoadError> {
        Self::from_pem_named(pem, password, "PEM".into())
    }

    fn from_pem_named(
        pem: &str,
        password: Option<&SecretString>,
        source: String,
    ) -> Result<Self, LoadError> {
        let (label, der) = der::pem::decode_vec(pem.as_bytes())
            .map_err(|e| LoadError::Format(format!("PEM: {e}")))?;
        let der = Zeroizing::new(der);
        match label {
            "PRIVATE KEY" => Self::from_pkcs8_der_named(&der, source),
            "ENCRYPTED PRIVATE KEY" => {
                let pw = password.ok_or(LoadError::PasswordRequired)?;
                let enc = pkcs8::EncryptedPrivateKeyInfo::from_der(&der).map_err(format_error)?;
                let doc = enc
                    .decrypt(pw.expose_secret().as_bytes())
                    .map_err(|e| LoadError::Decrypt(e.to_string()))?;
                Self::from_pkcs8_der_named(doc.as_bytes(), source)
            }
            "RSA PRIVATE KEY" => {
                // Checked to be an RSAPrivateKey before it is wrapped.
                pkcs1::RsaPrivateKey::from_der(&der).map_err(format_error)?;
                let wrapped = wrap_pkcs8(pkcs1::ALGORITHM_OID, der::asn1::AnyRef::NULL, &der)?;
                Self::from_pkcs8_der_named(&wrapped, source)
            }
            "EC PRIVATE KEY" => {
                let ec = sec1::EcPrivateKey::from_der(&der).map_err(format_error)?;
                let curve = ec.parameters.and_then(|p| p.named_curve());
                match curve {
                    Some(c) if c == p256::NistP256::OID || c == p384::NistP384::OID => {
                        let param = der::asn1::AnyRef::from(&c);
                        let wrapped = wrap_pkcs8(ID_EC_PUBLIC_KEY, param, &der)?;
                        Self::from_pkcs8_der_named(&wrapped, source)
                    }
                    _ => Err(SignError::UnsupportedKey(
                        "SEC1 EC key on a curve other than P-256/P-384".into(),
                    )
                    .into()),
                }
            }
            other => Err(LoadError::Format(format!(
                "PEM block {other:?} is not a private key"
            ))),
        }
    }

    /// Decodes a PKCS#12 file (`.p12`/`.pfx`) with its password: the key and the chain.
    pub fn from_pkcs12(der: &[u8], password: &SecretString) -> Result<Pkcs12Contents, LoadError> {
        Self::from_pkcs12_named(der, password, "PKCS#12".into())
    }

    fn from_pkcs12_named(
        der: &[u8],
        password: &SecretString,
        source: String,
    ) -> Result<Pkcs12Contents, LoadError> {
        let store = p12_keystore::KeyStore::from_pkcs12(der, password.expose_secret())
            .map_err(|e| LoadError::Decrypt(e.to_string()))?;
        let (_, chain) = store.private_key_chain().ok_or(LoadError::NoKeyInPkcs12)?;
        let key = Self::from_pkcs8_der_named(chain.key(), source)?;
        let certs = chain
            .chain()
            .iter()
            .map(|c| {
                Certificate::from_der(c.as_der()).map_err(|e| LoadError::Format(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pkcs12Contents { key, chain: certs })
    }

    /// Reads a key file, detecting the format: PKCS#12 by extension (`.p12`, `.pfx`) or
    /// content, else PEM, else DER PKCS#8.
    pub fn from_file(
        path: &Path,
        password: Option<&SecretString>,
    ) -> Result<Pkcs12Contents, LoadError> {
        // Shown in errors and Debug: a secret pasted into the path by mistake is masked.
        let shown = codeseal_signer::redact_uri(&path.display().to_string());
        let io = |source| LoadError::Io {
            path: shown.clone(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_KEY_FILE {
            return Err(LoadError::TooLarge {
                path: shown,
                size,
                max: MAX_KEY_FILE,
            });
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(io)?);
        let source = format!("file:{shown}");
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let is_p12 = matches!(ext.as_deref(), Some("p12" | "pfx"));
        if let Ok(text) = std::str::from_utf8(&bytes) {
            if !is_p12 && text.contains("-----BEGIN") {
                let key = Self::from_pem_named(text, password, source)?;
                return Ok(Pkcs12Contents { key, chain: vec![] });
            }
        }
        if !is_p12 {
            if let Ok(key) = Self::from_pkcs8_der_named(&bytes, source.clone()) {
                return Ok(Pkcs12Contents { key, chain: vec![] });
            }
        }
        let empty = SecretString::from(String::new());
        let pw = password.unwrap_or(&empty);
        match Self::from_pkcs12_named(&bytes, pw, source) {
            Err(LoadError::Decrypt(_)) if password.is_none() => Err(LoadError::PasswordRequired),
            other => other,
        }
    }

    /// The key as unencrypted PKCS#8 PEM (for writing throwaway test keys).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, LoadError> {
        let der = self.inner.to_pkcs8_der()?;
        let pem = der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &der)
            .map_err(format_error)?;
        Ok(Zeroizing::new(pem))
    }

    /// The public key's DER.
    pub fn public_key_der(&self) -> Result<Vec<u8>, SignError> {
        self.public
            .to_der()
            .map_err(|e| SignError::malformed("public key", e))
    }
}

impl KeySigner for LocalKey {
    fn key_kind(&self) -> KeyKind {
        self.kind
    }

    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public
    }

    fn describe(&self) -> String {
        self.source.clone()
    }

    fn signs_locally(&self) -> bool {
        true
    }

    fn supports(&self, algorithm: SignatureAlgorithm) -> bool {
        algorithm.key == self.kind
            && algorithm.key.can_sign(algorithm.digest)
            && self.inner.can_sign(algorithm)
    }

    fn sign_digest(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        if !self.supports(algorithm) {
            return Err(SignError::UnsupportedAlgorithm {
                key: self.kind,
                requested: algorithm,
            });
        }
        if digest.len() != algorithm.digest.output_len() {
            return Err(SignError::DigestLength {
                algorithm: algorithm.digest,
                expected: algorithm.digest.output_len(),
                actual: digest.len(),
            });
        }
        self.inner.sign_digest(algorithm, digest)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use codeseal_signer::{verify_prehash, RustCryptoSigner};

    use super::*;
    use codeseal_signer::DigestAlgorithm;

    #[test]
    fn generated_keys_sign_and_verify_every_digest() {
        for kind in [
            KeyKind::EcP256,
            KeyKind::EcP384,
            KeyKind::Rsa { bits: 2048 },
        ] {
            let key = LocalKey::generate(kind).expect("generate");
            for d in DigestAlgorithm::ALL {
                if !kind.can_sign(d) {
                    assert!(key
                        .sign_digest(kind.with_digest(d), &d.digest(b"m"))
                        .is_err());
                    continue;
                }
                let digest = d.digest(b"message");
                let sig = key.sign_digest(kind.with_digest(d), &digest).expect("sign");
                verify_prehash(key.public_key(), d, &digest, &sig).expect("verify");
                let mut other = digest.clone();
                other[0] ^= 1;
                assert!(verify_prehash(key.public_key(), d, &other, &sig).is_err());
            }
        }
    }

    #[test]
    fn wrong_algorithm_and_length_are_typed_errors() {
        let key = LocalKey::generate(KeyKind::EcP256).expect("generate");
        let rsa = KeyKind::Rsa { bits: 2048 }.with_digest(DigestAlgorithm::Sha256);
        assert!(matches!(
            key.sign_digest(rsa, &[0; 32]),
            Err(SignError::UnsupportedAlgorithm { .. })
        ));
        let alg = KeyKind::EcP256.with_digest(DigestAlgorithm::Sha256);
        assert!(matches!(
            key.sign_digest(alg, &[0; 31]),
            Err(SignError::DigestLength {
                expected: 32,
                actual: 31,
                ..
            })
        ));
    }

    #[test]
    fn pem_round_trip_and_debug_hides_key() {
        let key = LocalKey::generate(KeyKind::EcP256).expect("generate");
        let pem = key.to_pkcs8_pem().expect("pem");
        let back = LocalKey::from_pem(&pem, None).expect("parse");
        assert_eq!(back.public_key(), key.public_key());
        let dbg = format!("{back:?}");
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
        let scalar = &pem[40..80];
        assert!(!dbg.contains(scalar));
    }

    #[test]
    fn garbage_is_a_format_error() {
        assert!(matches!(
            LocalKey::from_pem(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                None
            ),
            Err(LoadError::Format(_))
        ));
        assert!(LocalKey::from_pkcs8_der(b"\x30\x03\x02\x01\x00").is_err());
    }

    #[test]
    fn rustcrypto_adapter_signs_messages() {
        use signature::{Keypair, Signer};
        let key = Arc::new(LocalKey::generate(KeyKind::EcP256).expect("generate"));
        let alg = KeyKind::EcP256.with_digest(DigestAlgorithm::Sha256);
        let s = RustCryptoSigner::new(key.clone(), alg).expect("adapter");
        let sig = s.try_sign(b"hello").expect("sign");
        let d = DigestAlgorithm::Sha256.digest(b"hello");
        verify_prehash(
            &s.verifying_key().0,
            DigestAlgorithm::Sha256,
            &d,
            sig.as_bytes(),
        )
        .expect("verify");
        let rsa = KeyKind::Rsa { bits: 2048 }.with_digest(DigestAlgorithm::Sha256);
        assert!(RustCryptoSigner::new(key, rsa).is_err());
    }
}

#[cfg(test)]
mod faulty_backend_tests {
    use codeseal_signer::{KeySigner, SignError};

    use super::*;
    use codeseal_signer::DigestAlgorithm;

    /// A fake backend in addition to the real ones: a key whose signatures are corrupted,
    /// as a faulty HSM or a re-pointed KMS alias would return.
    #[derive(Debug)]
    struct Faulty(LocalKey);

    impl KeySigner for Faulty {
        fn key_kind(&self) -> KeyKind {
            self.0.key_kind()
        }
        fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
            self.0.public_key()
        }
        fn describe(&self) -> String {
            "faulty test key".into()
        }
        fn sign_digest(&self, a: SignatureAlgorithm, d: &[u8]) -> Result<Vec<u8>, SignError> {
            let mut s = self.0.sign_digest(a, d)?;
            if let Some(b) = s.last_mut() {
                *b ^= 1;
            }
            Ok(s)
        }
    }

    #[test]
    fn checked_signing_catches_a_bad_signature_from_the_key() {
        for kind in [KeyKind::EcP256, KeyKind::Rsa { bits: 2048 }] {
            let k: Box<dyn KeySigner> = Box::new(Faulty(LocalKey::generate(kind).expect("gen")));
            let alg = kind.with_digest(DigestAlgorithm::Sha256);
            let e = k
                .sign_digest_checked(alg, &[7; 32])
                .expect_err("must be caught");
            assert!(matches!(e, SignError::BadSignatureFromKey { .. }), "{e}");
            let good: Box<dyn KeySigner> = Box::new(LocalKey::generate(kind).expect("gen"));
            good.sign_digest_checked(alg, &[7; 32]).expect("good key");
        }
    }
}
