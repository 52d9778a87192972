//! Fuzz target `timestamp_token`: the body is `codeseal_authenticode::fuzzing::timestamp_token`, which
//! `authenticode/tests/fuzz_regressions.rs` replays over `fuzz/regressions/timestamp_token/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| codeseal_authenticode::fuzzing::timestamp_token(data));
