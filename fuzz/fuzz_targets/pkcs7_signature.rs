//! Fuzz target `pkcs7_signature`: the body is `codeseal_authenticode::fuzzing::pkcs7_signature`, which
//! `authenticode/tests/fuzz_regressions.rs` replays over `fuzz/regressions/pkcs7_signature/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| codeseal_authenticode::fuzzing::pkcs7_signature(data));
