//! # codeseal-keys
//!
//! Turns a key URI into a [`KeySigner`]: the one place that knows every backend, shared by
//! the CLI and the signing service.
//!
//! | URI | backend |
//! |---|---|
//! | `file:/path/key.pem`, `file:///path/key.p12`, or a plain path | `codeseal-local` |
//! | `awskms:///alias/NAME`, `awskms://HOST:PORT/KEY`, `arn:aws:kms:...` | `codeseal-kms` (feature `kms`) |
//! | `pkcs11:token=..;object=..;id=%01?module-path=/lib.so&pin-source=file:/pin` (RFC 7512) | `codeseal-pkcs11` (feature `pkcs11`) |
//!
//! Both optional backends are default features; `default-features = false` leaves out
//! the AWS SDK (`kms`) or the PKCS#11 loader (`pkcs11`), and a URI for a left-out backend
//! fails with [`KeyError::BackendNotBuilt`], which names the missing feature.
//!
//! A password for an encrypted key or a PKCS#12 file is never part of the URI: it comes from
//! `?password-env=VAR` (an environment variable), `?password-file=PATH` (a file, first line),
//! or, by default, `CODESEAL_KEY_PASSWORD` / `CODESEAL_KEY_PASSWORD_FILE`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::{path::Path, sync::Arc};

use codeseal_local::{LoadError, LocalKey};
/// Masks the secrets a key URI may hold, for messages and logs (one rule for every backend:
/// see [`codeseal_signer::redact`]).
pub use codeseal_signer::redact_uri;
use codeseal_signer::{redact::shown_reference, KeySigner};
use secrecy::SecretString;
use x509_cert::Certificate;
use zeroize::Zeroizing;

/// Environment variable holding a key password, by default.
pub const PASSWORD_ENV: &str = "CODESEAL_KEY_PASSWORD";
/// Environment variable naming a file that holds a key password, by default.
pub const PASSWORD_FILE_ENV: &str = "CODESEAL_KEY_PASSWORD_FILE";

/// Why a key could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The URI is not one we understand.
    #[error("invalid key URI {uri:?}: {reason}")]
    BadUri {
        /// The URI, with any secret masked by [`redact_uri`].
        uri: String,
        /// Why.
        reason: String,
    },
    /// The scheme names no backend codeseal knows.
    #[error("key URI scheme {0:?} is not supported (supported: file:, pkcs11:, awskms:)")]
    UnsupportedScheme(String),
    /// The scheme names a backend that this build leaves out: the crate was built without
    /// the cargo feature `feature`.
    #[error(
        "key URI scheme {scheme:?} needs the {backend} backend, which this build leaves out \
         (codeseal-keys was built without its cargo feature {feature:?})"
    )]
    BackendNotBuilt {
        /// The URI's scheme (`awskms`, `arn` or `pkcs11`).
        scheme: String,
        /// The backend, for people (`AWS KMS`, `PKCS#11`).
        backend: &'static str,
        /// The cargo feature of `codeseal-keys` that adds it (`kms` or `pkcs11`).
        feature: &'static str,
    },
    /// Loading a local key failed.
    #[error(transparent)]
    Local(#[from] LoadError),
    /// Opening a PKCS#11 key failed.
    #[cfg(feature = "pkcs11")]
    #[error(transparent)]
    Pkcs11(#[from] codeseal_pkcs11::Pkcs11Error),
    /// Opening an AWS KMS key failed.
    #[cfg(feature = "kms")]
    #[error(transparent)]
    Kms(#[from] codeseal_kms::KmsError),
    /// Reading the password failed.
    #[error("cannot read the key password: {0}")]
    Password(String),
    /// Reading certificates failed.
    #[error("cannot read certificates from {path}: {reason}")]
    Certificates {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// A key opened from a URI, with the certificates that came with it (PKCS#12 only).
#[derive(Debug, Clone)]
pub struct OpenedKey {
    /// The key.
    pub key: Arc<dyn KeySigner>,
    /// Certificates stored with the key, leaf first (empty unless the key file carries them).
    pub chain: Vec<Certificate>,
}

fn password(query: &[(String, Option<String>)]) -> Result<Option<SecretString>, KeyError> {
    // A password written where its file or variable belongs is not repeated in the message.
    let from_file = |p: &str| -> Result<SecretString, KeyError> {
        let text = Zeroizing::new(std::fs::read_to_string(p).map_err(|e| {
            KeyError::Password(format!("password file {}: {e}", shown_reference(p)))
        })?);
        let line = text.lines().next().unwrap_or_default();
        Ok(SecretString::from(line.to_string()))
    };
    for (k, v) in query {
        let v = v.as_deref().unwrap_or_default();
        match k.as_str() {
            "password-env" => {
                return std::env::var(v)
                    .map(|s| Some(SecretString::from(s)))
                    .map_err(|_| {
                        KeyError::Password(format!(
                            "environment variable {} is not set",
                            shown_reference(v)
                        ))
                    })
            }
            "password-file" => return from_file(v).map(Some),
            _ => {}
        }
    }
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(Some(SecretString::from(p)));
    }
    if let Ok(f) = std::env::var(PASSWORD_FILE_ENV) {
        return from_file(&f).map(Some);
    }
    Ok(None)
}

/// The path and the query items (`NAME=VALUE`, or `NAME` alone: value `None`).
fn split_query(rest: &str) -> (&str, Vec<(String, Option<String>)>) {
    match rest.split_once('?') {
        None => (rest, vec![]),
        Some((path, q)) => (
            path,
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (kv.to_string(), None),
                })
                .collect(),
        ),
    }
}

/// A line about remote-key calls made by this process so far (AWS KMS: DescribeKey,
/// GetPublicKey and Sign counts), or `None` when no remote key was used.
pub fn remote_call_summary() -> Option<String> {
    #[cfg(feature = "kms")]
    {
        let c = codeseal_kms::call_counts();
        if c.describe_key + c.get_public_key + c.sign > 0 {
            return Some(format!(
                "AWS KMS calls: {} DescribeKey, {} GetPublicKey, {} Sign",
                c.describe_key, c.get_public_key, c.sign
            ));
        }
    }
    None
}

/// Options of [`open_key_with`] that only some backends read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenOptions {
    /// AWS KMS: attempts per call, the first included (`None`: the AWS configuration's,
    /// 3 by default). 1 hands every failure, throttling included, to the caller at once
    /// (a caller with its own rate limit and backoff, like the signing service).
    pub kms_max_attempts: Option<u32>,
}

impl OpenOptions {
    /// Sets [`kms_max_attempts`](Self::kms_max_attempts).
    pub fn with_kms_max_attempts(mut self, attempts: u32) -> Self {
        self.kms_max_attempts = Some(attempts);
        self
    }
}

/// Opens the key named by `uri`.
pub fn open_key(uri: &str) -> Result<OpenedKey, KeyError> {
    open_key_with(uri, &OpenOptions::default())
}

/// Opens the key named by `uri` with `opts`.
pub fn open_key_with(uri: &str, opts: &OpenOptions) -> Result<OpenedKey, KeyError> {
    #[cfg(not(feature = "kms"))]
    let _ = opts;
    let bad = |reason: &str| KeyError::BadUri {
        uri: redact_uri(uri),
        reason: reason.to_string(),
    };
    let (scheme, rest, scheme_given) = match uri.split_once(':') {
        // A Windows drive letter or a plain path is a file.
        Some((s, r)) if s.len() > 1 && s.chars().all(|c| c.is_ascii_alphanumeric()) => (s, r, true),
        _ => ("file", uri, false),
    };
    match scheme {
        "file" => {
            let rest = match rest.strip_prefix("//") {
                // RFC 8089: file://HOST/PATH; only the local host.
                Some(after) => {
                    let (host, path) = after.split_at(after.find('/').unwrap_or(after.len()));
                    if !(host.is_empty() || host.eq_ignore_ascii_case("localhost")) {
                        return Err(bad(
                            "a file: URI names a local file: file:/PATH, file:///PATH or file://localhost/PATH",
                        ));
                    }
                    path
                }
                None => rest,
            };
            if scheme_given && rest.contains('#') {
                return Err(bad(
                    "a file: URI has no #fragment (for a file name with # in it, give the plain path)",
                ));
            }
            let (path, query) = split_query(rest);
            if let Some((k, v)) = query
                .iter()
                .find(|(k, _)| !matches!(k.as_str(), "password-env" | "password-file"))
            {
                const USE: &str = "passwords are never accepted in a URI; use password-env=VAR or password-file=PATH";
                return Err(bad(&match v {
                    // A bare item may be a password pasted after `?`: not repeated.
                    None => format!("a query item without a value ({USE})"),
                    Some(_) if codeseal_signer::redact::is_secret_name(k) => {
                        format!("parameter {k:?} is refused ({USE})")
                    }
                    Some(_) => format!("unknown parameter {k:?} ({USE})"),
                }));
            }
            if path.is_empty() {
                return Err(bad("no path"));
            }
            let pw = password(&query)?;
            let loaded = LocalKey::from_file(Path::new(path), pw.as_ref())?;
            Ok(OpenedKey {
                key: Arc::new(loaded.key),
                chain: loaded.chain,
            })
        }
        #[cfg(feature = "pkcs11")]
        "pkcs11" => {
            let key = codeseal_pkcs11::open_uri(uri)?;
            Ok(OpenedKey {
                key: Arc::new(key),
                chain: vec![],
            })
        }
        #[cfg(feature = "kms")]
        "awskms" | "arn" => {
            let key_ref = codeseal_kms::KmsKeyRef::parse(uri)?;
            let mut kms = codeseal_kms::KmsOptions::default();
            if let Some(n) = opts.kms_max_attempts {
                kms = kms.with_max_attempts(n.max(1));
            }
            let key = codeseal_kms::KmsKey::connect_blocking(&key_ref, &kms)?;
            Ok(OpenedKey {
                key: Arc::new(key),
                chain: vec![],
            })
        }
        #[cfg(not(feature = "pkcs11"))]
        "pkcs11" => Err(KeyError::BackendNotBuilt {
            scheme: scheme.to_string(),
            backend: "PKCS#11",
            feature: "pkcs11",
        }),
        #[cfg(not(feature = "kms"))]
        "awskms" | "arn" => Err(KeyError::BackendNotBuilt {
            scheme: scheme.to_string(),
            backend: "AWS KMS",
            feature: "kms",
        }),
        other => Err(KeyError::UnsupportedScheme(other.to_string())),
    }
}

/// Reads every PEM certificate in a file (leaf first, as given), or one DER certificate.
pub fn load_certificates(path: &Path) -> Result<Vec<Certificate>, KeyError> {
    let err = |reason: String| KeyError::Certificates {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = if bytes.starts_with(b"-----") || bytes.windows(10).any(|w| w == b"-----BEGIN") {
        Certificate::load_pem_chain(&bytes).map_err(|e| err(e.to_string()))?
    } else {
        use der::Decode;
        vec![Certificate::from_der(&bytes).map_err(|e| err(e.to_string()))?]
    };
    if certs.is_empty() {
        return Err(err("no certificate found".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_is_the_signer_crates() {
        // The rule of every backend (codeseal_signer::redact), re-exported.
        assert_eq!(
            redact_uri("pkcs11:object=a?module-path=/m.so&PIN-VALUE=1234&x-a=1"),
            "pkcs11:object=a?module-path=/m.so&PIN-VALUE=***&x-a=1"
        );
        assert_eq!(redact_uri("file:/k.pem"), "file:/k.pem");
    }

    #[test]
    fn uri_forms() {
        assert!(
            matches!(open_key("gcpkms://projects/p/keys/k"), Err(KeyError::UnsupportedScheme(s)) if s == "gcpkms")
        );
        assert!(matches!(open_key("file:"), Err(KeyError::BadUri { .. })));
        assert!(matches!(
            open_key("file:/k.pem?pin-value=1234"),
            Err(KeyError::BadUri { .. })
        ));
        let e = open_key("/nonexistent/key.pem").expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/key.pem"), "{e}");
    }

    #[test]
    fn opens_a_pem_file_by_every_uri_form() {
        let dir = tempfile::tempdir().expect("tmp");
        let key = LocalKey::generate(codeseal_signer::KeyKind::EcP256).expect("gen");
        let path = dir.path().join("k.pem");
        std::fs::write(&path, key.to_pkcs8_pem().expect("pem").as_bytes()).expect("write");
        let p = path.display().to_string();
        for uri in [p.clone(), format!("file:{p}"), format!("file://{p}")] {
            let k = open_key(&uri).expect(&uri);
            assert_eq!(
                k.key.public_key(),
                codeseal_signer::KeySigner::public_key(&key)
            );
        }
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    /// A sentinel password must never show up in errors or Debug output.
    #[test]
    fn password_never_leaks() {
        const SENTINEL: &str = "SENTINEL-pw-7f3a9c";
        let dir = tempfile::tempdir().expect("tmp");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, SENTINEL).expect("write");
        // An encrypted-looking file that is not a key: the loader fails after reading the password.
        let p12 = dir.path().join("x.p12");
        std::fs::write(&p12, b"\x30\x03\x02\x01\x03").expect("write");
        let e = open_key(&format!(
            "file:{}?password-file={}",
            p12.display(),
            pwfile.display()
        ))
        .expect_err("not a p12");
        assert!(!format!("{e} {e:?}").contains(SENTINEL));
        let key = LocalKey::generate(codeseal_signer::KeyKind::EcP256).expect("gen");
        let path = dir.path().join("k.pem");
        std::fs::write(&path, key.to_pkcs8_pem().expect("pem").as_bytes()).expect("write");
        let opened = open_key(&format!(
            "file:{}?password-file={}",
            path.display(),
            pwfile.display()
        ))
        .expect("open");
        assert!(!format!("{opened:?}").contains(SENTINEL));
        assert!(!format!("{opened:?}").contains("PRIVATE KEY"));
    }
}

/// The examples of the crate's README, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
