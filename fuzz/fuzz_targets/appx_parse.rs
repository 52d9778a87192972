//! Fuzz target `appx_parse`: the body is `codeseal_authenticode::fuzzing::appx_parse`, which
//! `authenticode/tests/fuzz_regressions.rs` replays over `fuzz/regressions/appx_parse/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| codeseal_authenticode::fuzzing::appx_parse(data));
