//! This package holds only examples of embedding codeseal in another Rust program (see
//! `sign_pe.rs`; run it with `cargo run -p codeseal-examples --example sign_pe`); the
//! library target is empty.
