//! # codeseal-authenticode
//!
//! Authenticode for PE files (exe, dll, sys, efi; PE32 and PE32+; any machine), scripts
//! (PowerShell, MOF, JScript, VBScript, WSF) and CAB cabinets, through one pipeline with one
//! implementation per format ([`format`](mod@format)):
//!
//! - [`format`](mod@format): detection ([`FileKind`]), what each format hashes, signs and stores;
//! - [`pe`]: a checked reader of the headers Authenticode needs;
//! - [`script`]: scripts' encodings, signature blocks and digest input;
//! - [`cab`]: cabinets' header, signature reserve and digest input (`FileKind::Cab`);
//! - [`digest`]: the image digest and PE checksum in one streaming pass (constant memory);
//! - [`spc`]: Microsoft's ASN.1 types; [`pkcs7`]: build and parse the SignedData;
//! - [`wincert`]: the certificate table; [`sign`]: sign a file; [`verify`](mod@verify): verify one;
//! - [`sign_stream`] / [`sign_bytes`]: sign without a file system (any `Read + Seek` into any
//!   `Write`, or bytes to bytes); [`Verifier::verify_reader`] verifies from any reader.
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

pub mod asn1;
pub mod cab;
pub mod chain;
pub mod digest;
mod error;
pub mod finding;
pub mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod manage;
pub mod pagehash;
pub mod pe;
pub mod pkcs7;
pub mod script;
pub mod sign;
pub mod spc;
pub mod split;
pub(crate) mod stage;
pub(crate) mod stream;
pub mod timestamp;
pub mod verify;
pub mod wincert;

pub use error::{Error, Result};
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
