//! This package holds only examples of embedding codeseal in another Rust program, each
//! using only the crates' public API:
//!
//! - `sign_pe.rs`: sign a file with a key URI;
//! - `kms_async.rs`: sign with an AWS KMS key through the async API, verify against a root;
//! - `verify_findings.rs`: verify against trust anchors and print the typed findings;
//! - `split_signing.rs`: split signing across two machines (`prepare`, `sign`, `finish`);
//! - `memory_to_memory.rs`: sign bytes into bytes and verify them from memory against a root;
//! - `service_worker.rs`: the signing service's workers with a custom object store.
//!
//! Run one with `cargo run -p codeseal-examples --example NAME`; `tests/examples.rs` runs
//! them. The library target is empty.
