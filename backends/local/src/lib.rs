//! # codeseal-local
//!
//! Keys held in local files, for tests, demos and teams that keep a key on disk:
//! PEM (PKCS#8, encrypted PKCS#8, PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`), DER
//! PKCS#8, and PKCS#12 (`.p12`/`.pfx`, which also carry the certificate chain).
//!
//! Passwords are [`secrecy::SecretString`]s: never printed, zeroized on drop. They come from
//! the environment or a file (see `codeseal-keys`), never from the command line by default.
//!
//! Note: the `rsa` crate's private-key operation is not constant-time (RUSTSEC-2023-0071).
//! That is acceptable for local test and CI keys; keys for a network-exposed signer belong in
//! KMS or an HSM.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod key;
mod throwaway;

pub use key::{LoadError, LocalKey, Pkcs12Contents};
pub use throwaway::{ThrowawayError, ThrowawayPki};

/// The examples of the crate's README, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
