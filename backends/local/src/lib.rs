//! # codeseal-local
//!
//! Keys held in local files, for tests, demos and teams that keep a key on disk:
//! PEM (PKCS#8, encrypted PKCS#8, PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`), DER
//! PKCS#8, and PKCS#12 (`.p12`/`.pfx`, which also carry the certificate chain).
//!
//! Passwords are [`secrecy::SecretString`]s: never printed, zeroized on drop. They come from
//! the environment or a file (see `codeseal-keys`), never from the command line by default.
//!
//! Every key is parsed once, when it is loaded, into the form of a [`provider::CryptoProvider`]:
//! by default aws-lc-rs (feature `provider-aws-lc`: constant-time RSA and ECDSA), or the
//! pure-Rust RustCrypto crates without it (`--no-default-features`, for targets where C does
//! not build). The `rsa` crate's private-key operation is not constant-time
//! (RUSTSEC-2023-0071); with the default provider it signs only RSA with SHA-1
//! (`--allow-sha1`) and RSA keys above 8192 bits (see [`provider`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod key;
pub mod provider;
mod throwaway;

pub use key::{LoadError, LocalKey, Pkcs12Contents};
pub use throwaway::{ThrowawayError, ThrowawayPki};

/// The examples of the crate's README, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
