//! Fuzz target `pe_headers`: the body is `codeseal_authenticode::fuzzing::pe_headers`, which
//! `authenticode/tests/fuzz_regressions.rs` replays over `fuzz/regressions/pe_headers/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| codeseal_authenticode::fuzzing::pe_headers(data));
