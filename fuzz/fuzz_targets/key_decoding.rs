//! Fuzz target `key_decoding`: SPKI and signature decoding
//! (`codeseal_authenticode::fuzzing::key_decoding`), plus the key parsers of the backend
//! crates, which must never open anything: AWS KMS key references (`KmsKeyRef::parse`, no
//! SDK call), RFC 7512 `pkcs11:` URIs (`Pkcs11Uri::parse`, no module loaded), URI redaction
//! (`codeseal_keys::redact_uri`), and local key files from memory (PKCS#8 DER, PEM without a
//! password). `authenticode/tests/fuzz_regressions.rs` replays `fuzz/regressions/key_decoding/`
//! through the parts its dependencies reach (all but KMS and PKCS#11).
#![no_main]

use std::hint::black_box;

use codeseal_kms::KmsKeyRef;
use codeseal_local::LocalKey;
use codeseal_pkcs11::Pkcs11Uri;
use codeseal_signer::KeySigner;
use libfuzzer_sys::fuzz_target;

/// Longest reference `KmsKeyRef::parse` accepts (its private `MAX_LEN`).
const KMS_MAX_LEN: usize = 2048;

fn other_crates(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(r) = KmsKeyRef::parse(&text) {
        black_box((r.key_id(), r.form(), r.is_alias(), r.region()));
        black_box(r.endpoint_url());
        let uri = r.to_uri();
        if uri.len() <= KMS_MAX_LEN {
            let again = KmsKeyRef::parse(&uri).expect("to_uri() of a parsed reference parses");
            assert_eq!(again, r, "to_uri() does not round-trip");
        }
    }
    if let Ok(u) = Pkcs11Uri::parse(&text) {
        black_box((u.token_selector(), u.key_selector(), u.has_pin_value()));
        black_box(format!("{u:?}"));
    }
    codeseal_authenticode::fuzzing::assert_secrets_masked(&codeseal_keys::redact_uri(&text));
    if let Ok(k) = LocalKey::from_pkcs8_der(data) {
        black_box((k.key_kind(), k.public_key_der().is_ok()));
    }
    if let Ok(k) = LocalKey::from_pem(&text, None) {
        black_box(k.key_kind());
    }
}

fuzz_target!(|data: &[u8]| {
    codeseal_authenticode::fuzzing::key_decoding(data, &other_crates);
});
