//! Fuzz target `wincert_table`: the body is `codeseal_authenticode::fuzzing::wincert_table`, which
//! `authenticode/tests/fuzz_regressions.rs` replays over `fuzz/regressions/wincert_table/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| codeseal_authenticode::fuzzing::wincert_table(data));
