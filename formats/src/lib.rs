//! # codeseal-formats
//!
//! The file formats and data structures of Windows Authenticode, without file-system or
//! network I/O: readers take any `Read + Seek` (or bytes) and check every offset and length
//! against the input; builders produce DER. `codeseal-authenticode` builds signing and
//! verification on top of it (staging, atomic output, time stamps, trust).
//!
//! - [`pe`]: a checked reader of the PE headers Authenticode needs ([`pe::PeInfo`]);
//! - [`wincert`]: the certificate table (`WIN_CERTIFICATE` entries);
//! - [`digest`]: one hasher for every supported algorithm, and the PE checksum;
//! - [`pagehash`]: page-hash tables (`SpcSerializedObject` of per-page digests);
//! - [`spc`]: Microsoft's ASN.1 types (`SpcIndirectDataContent`, `SpcSpOpusInfo`, ...);
//! - [`pkcs7`]: build and parse the Authenticode SignedData (nesting, unsigned attributes);
//! - [`script`]: scripts' encodings, signature blocks and digest input;
//! - [`cab`]: cabinets' header, signature reserve and digest input;
//! - [`appx`]: APPX / MSIX packages (ZIP): a checked reader and the digest blob;
//! - [`catalog`]: certificate trust lists, the content of catalog files (`.cat`);
//! - [`msi`]: MSI installers (OLE compound files): the digest walks and signature streams;
//! - [`asn1`]: a bounded, non-recursive DER/BER walker for the lenient parts of real files;
//! - [`oid`]: every object identifier used, from `const_oid::db` where it has them.
//!
//! ```
//! use codeseal_formats::pe::PeInfo;
//! // Not a PE file: a typed error, never a panic.
//! let e = PeInfo::read(&mut std::io::Cursor::new(b"MZ\0\0")).unwrap_err();
//! assert!(matches!(e, codeseal_formats::Error::Truncated { .. } | codeseal_formats::Error::MalformedPe { .. }));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::indexing_slicing)]

pub mod appx;
pub mod asn1;
pub mod cab;
pub mod catalog;
pub mod digest;
mod error;
pub mod msi;
pub mod oid;
pub mod pagehash;
pub mod pe;
pub mod pkcs7;
pub mod script;
pub mod spc;
pub mod wincert;

pub use error::{Error, Result};
