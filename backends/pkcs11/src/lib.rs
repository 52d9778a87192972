//! # codeseal-pkcs11
//!
//! A [`KeySigner`](codeseal_signer::KeySigner) for private keys on PKCS#11 tokens: AWS
//! CloudHSM (Client SDK 5) in production, SoftHSM2 in tests, any conforming module in
//! principle. Built on [`cryptoki`].
//!
//! ```no_run
//! # fn main() -> Result<(), codeseal_pkcs11::Pkcs11Error> {
//! let key = codeseal_pkcs11::open_uri(
//!     "pkcs11:token=hsm1;object=codesign?module-path=/opt/cloudhsm/lib/libcloudhsm_pkcs11.so\
//!      &pin-source=file:/run/secrets/cloudhsm-pin",
//! )?;
//! # Ok(()) }
//! ```
//!
//! ## Naming a key
//!
//! Keys are named by RFC 7512 URIs ([`Pkcs11Uri`]): `object` is the key's label, `id` its
//! CKA_ID as percent-encoded bytes (`id=%01` for the id pkcs11-tool shows as `01`); `token`,
//! `serial`, `slot-id` etc. pick the token (needed only when the module has several).
//! The module comes from `?module-path=`, else `CODESEAL_PKCS11_MODULE`.
//!
//! ## The PIN
//!
//! From [`Pkcs11Options::pin`], else `?pin-source=file:/path` (first line of the file) or
//! `?pin-source=env:VAR`, else `CODESEAL_PKCS11_PIN`, else `CODESEAL_PKCS11_PIN_FILE`.
//! `?pin-value=` is refused unless [`Pkcs11Options::allow_pin_value`] is set: a PIN in a
//! URI ends up in shell history, `ps` output and logs. The PIN is held in a
//! [`secrecy::SecretString`] (zeroized on drop, redacted in `Debug`), is never logged or
//! put in an error, and is kept only to log in again after a lost session.
//!
//! **AWS CloudHSM**: the PIN is `USER:PASSWORD` (the crypto user's name, a colon, the
//! password), passed to C_Login as is; the password alone gives CKR_PIN_INCORRECT. The
//! module is `/opt/cloudhsm/lib/libcloudhsm_pkcs11.so`, the token label `hsm1`.
//!
//! A wrong PIN is reported when the key is opened, after exactly one C_Login; it is never
//! retried (a retry loop would lock the token), and once the token has rejected the PIN a
//! key never sends it again. Login state is per token and process in PKCS#11: when another
//! key on the same token is already logged in in this process, no C_Login is made, so the
//! PIN of the second key is not checked.
//!
//! ## Sessions, retries and time-outs
//!
//! - One `C_Initialize` per module path per process, shared by every key (a global registry;
//!   never per signature). Modules are not finalized.
//! - Each key signs on at most [`Pkcs11Options::max_sessions`] long-lived worker threads
//!   (started on demand), each owning one session (read/write: CloudHSM SDK 5 has no
//!   read-only sessions): one session per concurrent signature and per thread, as CloudHSM
//!   recommends. A new session logs in only when the token is not logged in yet
//!   (CKR_USER_ALREADY_LOGGED_IN counts as success) and looks the key up again: handles are
//!   not assumed to carry over between sessions.
//! - Templates are minimal: CKA_CLASS plus CKA_LABEL and/or CKA_ID.
//! - On CKR_USER_NOT_LOGGED_IN, CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
//!   CKR_OBJECT_HANDLE_INVALID, CKR_KEY_HANDLE_INVALID or CKR_OPERATION_ACTIVE the session is
//!   closed and the signature retried once on a new session (log in, find the key again).
//!   On CKR_DEVICE_ERROR, CKR_FUNCTION_FAILED or CKR_DEVICE_MEMORY (CloudHSM under load or
//!   throttling) it is retried up to three times after 50, 200 and 800 ms, on a new
//!   session. Nothing else is retried; a session that saw a failed call is never reused.
//! - Time-out ([`Pkcs11Options::timeout`], 60 s by default, covering the wait for a free
//!   worker and the retries): a blocking C call cannot be interrupted, so the caller waits
//!   for the worker's answer and stops at the deadline with [`Pkcs11Error::Timeout`] (or
//!   [`Pkcs11Error::Busy`] if every worker was still busy). The stuck call keeps its worker
//!   and session; if it ever returns, the session is closed, not reused (quarantine), and
//!   the worker serves again. At most `max_sessions` calls can be stuck at once.
//! - `sign_digest_async` is the trait's default (it blocks in place until the worker
//!   answers): run it on a blocking pool (e.g. `tokio::task::spawn_blocking`) in async code.
//!
//! ## Signing
//!
//! RSA keys sign with CKM_RSA_PKCS over the DER DigestInfo of the digest (identical to
//! CKM_SHA*_RSA_PKCS over the message, and what CloudHSM needs: single-part only); EC keys
//! with CKM_ECDSA over the digest (truncated to the curve size), and the raw r‖s the token
//! returns is converted to a DER `Ecdsa-Sig-Value`. The public key is read from the token
//! (public-key object, else certificate, else an RSA private key's modulus/exponent) and,
//! by default, checked with one test signature when the key is opened. Callers should use
//! `sign_digest_checked`, which verifies every signature with that public key.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod encoding;
mod error;
mod key;
mod list;
mod module;
mod objects;
mod pin;
mod uri;
mod workers;

pub use error::Pkcs11Error;
pub use key::{Pkcs11Key, Pkcs11Options};
pub use list::{list_tokens_and_keys, KeyListing, TokenListing};
pub use module::{module_stats, ModuleStats};
pub use uri::{PinSource, Pkcs11Uri};

/// Environment variable naming the PKCS#11 module when the URI has no `module-path`.
pub const MODULE_ENV: &str = "CODESEAL_PKCS11_MODULE";
/// Environment variable holding the PIN (when the URI has no `pin-source`).
pub const PIN_ENV: &str = "CODESEAL_PKCS11_PIN";
/// Environment variable naming a file whose first line is the PIN.
pub const PIN_FILE_ENV: &str = "CODESEAL_PKCS11_PIN_FILE";

/// Opens the key named by a `pkcs11:` URI with the default options.
pub fn open_uri(uri: &str) -> Result<Pkcs11Key, Pkcs11Error> {
    open_uri_with(uri, &Pkcs11Options::default())
}

/// Opens the key named by a `pkcs11:` URI.
pub fn open_uri_with(uri: &str, options: &Pkcs11Options) -> Result<Pkcs11Key, Pkcs11Error> {
    Pkcs11Key::open(&Pkcs11Uri::parse(uri)?, options)
}

/// The examples of the crate's README, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
