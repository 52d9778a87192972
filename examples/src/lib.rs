//! This package holds only examples of embedding codeseal in another Rust program, each
//! using only the crates' public API: `sign_pe.rs` (sign a file with a key URI),
//! `memory_to_memory.rs` (sign bytes into bytes and verify them from memory against a root),
//! `verify_findings.rs` (verify against trust anchors and print the typed findings). Run
//! one with `cargo run -p codeseal-examples --example NAME`; `tests/examples.rs` runs them.
//! The library target is empty.
