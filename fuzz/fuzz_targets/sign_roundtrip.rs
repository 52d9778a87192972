//! Fuzz target `sign_roundtrip`: the input is patched into a minimal PE, signed with the fuzz
//! test leaf's P-256 key (loaded once), verified, stripped and signed again; see
//! `codeseal_authenticode::fuzzing::sign_roundtrip` (replayed by
//! `authenticode/tests/fuzz_regressions.rs` over `fuzz/regressions/sign_roundtrip/`).
#![no_main]

use std::sync::{Arc, OnceLock};

use codeseal_authenticode::fuzzing;
use codeseal_local::LocalKey;
use codeseal_signer::SigningIdentity;
use libfuzzer_sys::fuzz_target;

fn identity() -> &'static SigningIdentity {
    static ID: OnceLock<SigningIdentity> = OnceLock::new();
    ID.get_or_init(|| {
        let key = LocalKey::from_pkcs8_der(&fuzzing::fuzz_leaf_key_pkcs8()).expect("fuzz key");
        fuzzing::fuzz_identity(Arc::new(key))
    })
}

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(fuzzing::sign_roundtrip(data, identity()));
});
