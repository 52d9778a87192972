//! Fuzz target `verify_file`: the body is `codeseal_authenticode::fuzzing::verify_file`, which
//! `authenticode/tests/fuzz_regressions.rs` replays over `fuzz/regressions/verify_file/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| codeseal_authenticode::fuzzing::verify_file(data));
