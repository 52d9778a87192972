//! Fuzz target `catalog_parse`: the body is `codeseal_authenticode::fuzzing::catalog_parse`,
//! which `authenticode/tests/fuzz_regressions.rs` replays over `fuzz/regressions/catalog_parse/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| codeseal_authenticode::fuzzing::catalog_parse(data));
