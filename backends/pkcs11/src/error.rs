use std::{path::PathBuf, time::Duration};

use codeseal_signer::SignError;
use cryptoki::error::{Error as CkError, RvError};

/// Everything that can go wrong when a PKCS#11 key is opened or used.
///
/// Each message says what to do about it. No variant ever holds a PIN: a URI shown in an
/// error has its `pin-value` redacted, and PINs are never formatted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// The `pkcs11:` URI is malformed or uses an attribute codeseal does not support.
    #[error("invalid pkcs11: URI {uri:?}: {reason}")]
    BadUri {
        /// The URI, with any `pin-value` redacted.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URI carries `pin-value` and the caller did not allow it.
    #[error(
        "pin-value in a pkcs11: URI is refused: a PIN in a URI ends up in shell history, process \
         lists and logs. Use pin-source=file:/path/to/pin or pin-source=env:VAR in the URI, or set \
         CODESEAL_PKCS11_PIN_FILE or CODESEAL_PKCS11_PIN"
    )]
    PinValueRefused,
    /// No module (shared library) was named.
    #[error(
        "no PKCS#11 module given: add ?module-path=/path/to/module.so to the URI or set \
         CODESEAL_PKCS11_MODULE (AWS CloudHSM: /opt/cloudhsm/lib/libcloudhsm_pkcs11.so){hint}"
    )]
    NoModule {
        /// Extra advice (e.g. that `module-name` is not supported).
        hint: String,
    },
    /// The module path does not exist or is not a PKCS#11 library.
    #[error("{} is not a PKCS#11 library: {reason}", path.display())]
    NotAModule {
        /// The path as given.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
        /// The loader's error, if there was one.
        #[source]
        source: Option<CkError>,
    },
    /// C_Initialize failed.
    #[error("cannot initialize the PKCS#11 library {} (C_Initialize returned {rv})", path.display())]
    ModuleInit {
        /// The library.
        path: PathBuf,
        /// The return value, as a CKR_ name.
        rv: String,
        /// The cryptoki error.
        #[source]
        source: CkError,
    },
    /// The PIN could not be read from where it was said to be.
    #[error("cannot read the PKCS#11 PIN: {0}")]
    Pin(String),
    /// The token needs a login and no PIN was given.
    #[error(
        "token {token:?} requires a PIN: add pin-source=file:/path or pin-source=env:VAR to the \
         URI, or set CODESEAL_PKCS11_PIN_FILE or CODESEAL_PKCS11_PIN"
    )]
    PinRequired {
        /// The token label.
        token: String,
    },
    /// No token matches the URI.
    #[error("no token matches {selector} in {} (initialized tokens: {})", module.display(), list_or_none(available))]
    TokenNotFound {
        /// The token attributes of the URI.
        selector: String,
        /// The module searched.
        module: PathBuf,
        /// Labels (and serials) of the tokens that are there.
        available: Vec<String>,
    },
    /// Several tokens match the URI.
    #[error("{} tokens match {selector} in {} ({}): narrow the URI with token=, serial= or slot-id=", available.len(), module.display(), available.join(", "))]
    AmbiguousToken {
        /// The token attributes of the URI.
        selector: String,
        /// The module searched.
        module: PathBuf,
        /// The matching tokens.
        available: Vec<String>,
    },
    /// C_Login returned CKR_PIN_INCORRECT.
    #[error(
        "wrong PIN for token {token:?} (CKR_PIN_INCORRECT). It was tried once and is not retried, \
         so that the token is not locked. For AWS CloudHSM the PIN is USER:PASSWORD (the crypto \
         user's name and password, separated by a colon)"
    )]
    WrongPin {
        /// The token label.
        token: String,
    },
    /// C_Login returned CKR_PIN_LOCKED, or the token reports its user PIN locked.
    #[error(
        "the user PIN of token {token:?} is locked: the token's security officer must unlock it"
    )]
    PinLocked {
        /// The token label.
        token: String,
    },
    /// The PIN was rejected earlier in this process; it is not tried again.
    #[error(
        "the PIN for token {token:?} was rejected earlier in this process; not trying it again \
         (re-open the key with the right PIN)"
    )]
    PinRejectedEarlier {
        /// The token label.
        token: String,
    },
    /// The URI names no key.
    #[error("the pkcs11: URI names no key: add object=LABEL and/or id=%XX (e.g. id=%01)")]
    NoKeySelector,
    /// No private key matches.
    #[error("no private key {selector} on token {token:?}{hint}")]
    KeyNotFound {
        /// The token label.
        token: String,
        /// The key attributes of the URI.
        selector: String,
        /// What is there instead, or how to fix the URI.
        hint: String,
    },
    /// Several private keys match.
    #[error(
        "{count} private keys match {selector} on token {token:?}: add id= or object= to pick one"
    )]
    AmbiguousKey {
        /// The token label.
        token: String,
        /// The key attributes of the URI.
        selector: String,
        /// How many matched.
        count: usize,
    },
    /// The key is not RSA (2048..16384 bits) or EC on P-256/P-384.
    #[error("unsupported key {selector} on token {token:?}: {reason}")]
    UnsupportedKey {
        /// The token label.
        token: String,
        /// The key attributes of the URI.
        selector: String,
        /// What the key is.
        reason: String,
    },
    /// Neither a public-key object nor a certificate gives the key's public key.
    #[error(
        "no public key for {selector} on token {token:?}: there is no public-key object and no \
         certificate with the key's id/label"
    )]
    PublicKeyNotFound {
        /// The token label.
        token: String,
        /// The key attributes.
        selector: String,
    },
    /// An attribute read from the token could not be parsed.
    #[error("malformed {what} from the token: {reason}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The public key found for the key does not verify the key's signatures.
    #[error(
        "the public key found for {key} does not verify its signatures: the public-key object or \
         certificate with the same id/label belongs to another key"
    )]
    PublicKeyMismatch {
        /// The key.
        key: String,
    },
    /// A PKCS#11 call failed.
    #[error("{op} failed on token {token:?}: {rv}")]
    Call {
        /// The PKCS#11 function, e.g. `C_Sign`.
        op: &'static str,
        /// The token label (empty before a token is chosen).
        token: String,
        /// The return value, as a CKR_ name.
        rv: String,
        /// The cryptoki error.
        #[source]
        source: CkError,
    },
    /// A signature did not complete in time.
    #[error(
        "the PKCS#11 signature with {key} did not complete within {after:?}; the session it uses \
         is quarantined (closed when the module returns, never reused)"
    )]
    Timeout {
        /// The key.
        key: String,
        /// The time limit.
        after: Duration,
    },
    /// No session became free in time.
    #[error(
        "no PKCS#11 session for {key} became free within {after:?} ({in_use} in use, including \
         any still stuck in the module after a time-out)"
    )]
    Busy {
        /// The key.
        key: String,
        /// The time limit.
        after: Duration,
        /// Sessions in use.
        in_use: usize,
    },
    /// A worker thread could not be started or died.
    #[error("PKCS#11 worker thread: {0}")]
    Worker(String),
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The CKR_ name of a return value, e.g. `CKR_PIN_INCORRECT`.
pub(crate) fn rv_name(rv: &RvError) -> String {
    let dbg = format!("{rv:?}");
    let (name, rest) = match dbg.find('(') {
        Some(i) => dbg.split_at(i),
        None => (dbg.as_str(), ""),
    };
    let mut out = String::from("CKR");
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out.push_str(rest);
    out
}

/// A short description of a cryptoki error: the CKR_ name for a PKCS#11 return value.
pub(crate) fn ck_name(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, _) => rv_name(rv),
        other => other.to_string(),
    }
}

/// The PKCS#11 return value inside a cryptoki error, if it is one.
pub(crate) fn rv_of(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

impl Pkcs11Error {
    pub(crate) fn call(op: &'static str, token: &str, source: CkError) -> Self {
        Self::Call {
            op,
            token: token.to_string(),
            rv: ck_name(&source),
            source,
        }
    }

    /// The PKCS#11 return value behind this error, if it came from a PKCS#11 call.
    pub fn return_value(&self) -> Option<RvError> {
        match self {
            Self::Call { source, .. } | Self::ModuleInit { source, .. } => rv_of(source),
            Self::WrongPin { .. } => Some(RvError::PinIncorrect),
            Self::PinLocked { .. } => Some(RvError::PinLocked),
            _ => None,
        }
    }
}

impl From<Pkcs11Error> for SignError {
    /// Keeps the message; the cryptoki error, when there is one, stays the `source`.
    fn from(e: Pkcs11Error) -> Self {
        let message = e.to_string();
        match e {
            Pkcs11Error::UnsupportedKey { .. } => SignError::UnsupportedKey(message),
            Pkcs11Error::Call { source, .. } | Pkcs11Error::ModuleInit { source, .. } => {
                SignError::backend("pkcs11", message, Some(Box::new(source)))
            }
            Pkcs11Error::NotAModule {
                source: Some(source),
                ..
            } => SignError::backend("pkcs11", message, Some(Box::new(source))),
            _ => SignError::backend("pkcs11", message, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ckr_names() {
        assert_eq!(rv_name(&RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(rv_name(&RvError::DeviceError), "CKR_DEVICE_ERROR");
        assert_eq!(
            rv_name(&RvError::CryptokiAlreadyInitialized),
            "CKR_CRYPTOKI_ALREADY_INITIALIZED"
        );
    }

    #[test]
    fn sign_error_keeps_the_cryptoki_source() {
        let e = Pkcs11Error::call(
            "C_Sign",
            "tok",
            CkError::Pkcs11(RvError::DeviceError, cryptoki::context::Function::Sign),
        );
        let s: SignError = e.into();
        assert!(s.to_string().contains("C_Sign failed"), "{s}");
        assert!(s.to_string().contains("CKR_DEVICE_ERROR"), "{s}");
        let src = std::error::Error::source(&s).expect("source");
        assert!(src.downcast_ref::<CkError>().is_some());
    }
}
