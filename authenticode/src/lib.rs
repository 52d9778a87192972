//! # codeseal-authenticode
//!
//! Authenticode signing and verification for PE files (exe, dll, sys, efi; PE32 and PE32+;
//! any machine), scripts (PowerShell, MOF, JScript, VBScript, WSF), CAB cabinets and MSI installers, through one pipeline
//! with one implementation per format ([`format`](mod@format)). The formats themselves (PE
//! reader, certificate table, SPC and PKCS#7 structures, digest maths, script text rules)
//! are in [`codeseal_formats`], without I/O; this crate adds staging, atomic
//! output, the key call, time stamps and trust.
//!
//! - [`sign_file`] / `sign_file_async` (feature `async`): sign a file, written through a
//!   temp file that is checked, fsynced and renamed over the output;
//! - [`sign_stream`] / [`sign_bytes`]: sign without a file system (any `Read + Seek` into
//!   any `Write`, or bytes to bytes);
//! - [`Verifier`]: verification from trust anchors ([`Verifier::new`]) or integrity only
//!   ([`Verifier::integrity_only`]), with typed [`Finding`]s;
//! - [`manage`]: remove, extract, attach, add a time stamp; [`split`]: split signing;
//! - [`timestamp`]: RFC 3161 and legacy time stamps, with a replaceable
//!   [`timestamp::Transport`] (the built-in HTTP client is feature `tsa-http`, on by default).
//!
//! ```no_run
//! use std::{path::Path, sync::Arc};
//! use codeseal_authenticode::{sign_file, SignOptions, Verifier};
//! use codeseal_signer::SigningIdentity;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let key: Arc<dyn codeseal_signer::KeySigner> = unimplemented!();
//! # let chain = vec![];
//! let identity = SigningIdentity::new(key, chain)?; // checks key == leaf certificate
//! sign_file(&identity, Path::new("app.exe"), Path::new("app-signed.exe"), &SignOptions::default())?;
//! // Verification starts from trust anchors: who may sign, not only "was it changed".
//! let roots = codeseal_keys::load_certificates(Path::new("root.pem"))?;
//! assert!(Verifier::new(roots)?.verify_file(Path::new("app-signed.exe"))?.valid);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::indexing_slicing)]

pub mod catalog;
pub mod chain;
pub mod digest;
mod error;
pub mod finding;
pub mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod manage;
pub mod revocation;
pub mod sign;
pub mod split;
pub(crate) mod stage;
pub(crate) mod stream;
pub mod timestamp;
pub mod timing;
pub mod trust;
pub mod verify;

// The format layer (no I/O) lives in its own crate; these names keep paths short inside
// this one. Users reach it as `codeseal_formats`, re-exported as [`formats`].
/// The format layer: PE, certificate table, SPC, PKCS#7, scripts, digest maths, OIDs.
pub use codeseal_formats as formats;
pub(crate) use codeseal_formats::{asn1, cab, msi, oid, pagehash, pe, pkcs7, script, spc, wincert};

pub use error::{AppxRefusal, Error, Result};
pub use finding::{Finding, FindingCode};
pub use format::FileKind;
pub use manage::{attach_signature, extract_signature, remove_signature, AttachOptions};
pub use pe::PeInfo;
pub use pkcs7::OpusInfo;
#[cfg(feature = "async")]
pub use sign::sign_file_async;
pub use sign::{sign_file, PreparedSigning, SignOptions, SignOutcome};
pub use stream::{sign_bytes, sign_stream, StreamOutcome};
pub use verify::{TrustCheck, Verifier, VerifyReport};

/// The workspace README's library example, compiled as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
