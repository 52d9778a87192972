//! Fuzz target `cab_header`: the body is `codeseal_authenticode::fuzzing::cab_header`, which
//! `authenticode/tests/fuzz_regressions.rs` replays over `fuzz/regressions/cab_header/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| codeseal_authenticode::fuzzing::cab_header(data));
