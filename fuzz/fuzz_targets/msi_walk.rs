//! Fuzz target `msi_walk`: the body is `codeseal_authenticode::fuzzing::msi_walk`, which
//! `authenticode/tests/fuzz_regressions.rs` replays over `fuzz/regressions/msi_walk/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| codeseal_authenticode::fuzzing::msi_walk(data));
