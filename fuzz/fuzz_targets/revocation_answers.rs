//! Fuzz target `revocation_answers`: the body is
//! `codeseal_authenticode::fuzzing::revocation_answers`, which
//! `authenticode/tests/fuzz_regressions.rs` replays over `fuzz/regressions/revocation_answers/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| codeseal_authenticode::fuzzing::revocation_answers(data));
