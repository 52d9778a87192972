//! Replays every saved fuzz input in `fuzz/regressions/<target>/` through the fuzz target's
//! own body (`codeseal_authenticode::fuzzing`), so crashes found by `cargo fuzz` stay fixed
//! under plain `cargo test`. A panic (a parser's, or a failed invariant) fails the test and
//! names the file.
//!
//! To add a case: copy the input (e.g. `fuzz/artifacts/<target>/crash-*`) into
//! `fuzz/regressions/<target>/`. Keep files small (a few KiB).
#![allow(clippy::unwrap_used)]

use std::{
    fs,
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use codeseal_authenticode::fuzzing;
use codeseal_local::LocalKey;
use codeseal_signer::{KeySigner, SigningIdentity};
use der::Encode;

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("fuzz/regressions")
}

/// Runs `body` on every file of `fuzz/regressions/<target>/`; fails listing the files that
/// panicked.
fn replay(target: &str, body: impl Fn(&[u8])) {
    let dir = regressions_dir().join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no regression inputs in {}",
        dir.display()
    );
    let mut failed = Vec::new();
    for f in &files {
        let data = fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failed.push(f.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} regression inputs panicked (replay one with \
         `cargo fuzz run {target} FILE` in fuzz/):\n  {}",
        failed.len(),
        files.len(),
        failed.join("\n  ")
    );
}

fn identity() -> &'static SigningIdentity {
    static ID: OnceLock<SigningIdentity> = OnceLock::new();
    ID.get_or_init(|| {
        let key = LocalKey::from_pkcs8_der(&fuzzing::fuzz_leaf_key_pkcs8()).expect("fuzz key");
        fuzzing::fuzz_identity(Arc::new(key))
    })
}

/// The parts of the `key_decoding` target's extra parsers this crate's test dependencies
/// reach (the fuzz target also runs `KmsKeyRef::parse` and `Pkcs11Uri::parse`).
fn local_key_parsers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    fuzzing::assert_secrets_masked(&codeseal_keys::redact_uri(&text));
    if let Ok(k) = LocalKey::from_pkcs8_der(data) {
        std::hint::black_box((k.key_kind(), k.public_key_der().is_ok()));
    }
    if let Ok(k) = LocalKey::from_pem(&text, None) {
        std::hint::black_box(k.key_kind());
    }
}

#[test]
fn pe_headers() {
    replay("pe_headers", fuzzing::pe_headers);
}

#[test]
fn wincert_table() {
    replay("wincert_table", fuzzing::wincert_table);
}

#[test]
fn pkcs7_signature() {
    replay("pkcs7_signature", fuzzing::pkcs7_signature);
}

#[test]
fn verify_file() {
    replay("verify_file", fuzzing::verify_file);
}

#[test]
fn timestamp_token() {
    replay("timestamp_token", fuzzing::timestamp_token);
}

#[test]
fn key_decoding() {
    replay("key_decoding", |d| {
        fuzzing::key_decoding(d, &local_key_parsers)
    });
}

#[test]
fn sign_roundtrip() {
    replay("sign_roundtrip", |d| {
        fuzzing::sign_roundtrip(d, identity());
    });
}

#[test]
fn script_parse() {
    replay("script_parse", fuzzing::script_parse);
}

#[test]
fn cab_header() {
    replay("cab_header", fuzzing::cab_header);
}

#[test]
fn appx_parse() {
    replay("appx_parse", fuzzing::appx_parse);
}

#[test]
fn catalog_parse() {
    replay("catalog_parse", fuzzing::catalog_parse);
}

#[test]
fn revocation_answers() {
    replay("revocation_answers", fuzzing::revocation_answers);
}

#[test]
fn msi_walk() {
    replay("msi_walk", fuzzing::msi_walk);
}

/// The installer seeds reach the deep checks (an unsigned and a signed one open), and
/// thousands of deterministic mutations of them (bytes flipped in the header, FAT,
/// directory and anywhere else; truncations) are typed errors or reports, never a panic,
/// each within a second.
#[test]
fn msi_walk_seeds_and_mutations() {
    use codeseal_authenticode::formats::msi;
    let dir = regressions_dir().join("msi_walk");
    let mut opened = 0;
    let mut seeds = Vec::new();
    for e in fs::read_dir(&dir).unwrap() {
        let data = fs::read(e.unwrap().path()).unwrap();
        if msi::open(std::io::Cursor::new(&data)).is_ok() {
            opened += 1;
            seeds.push(data);
        }
    }
    assert!(opened >= 2, "{opened} seeds open as compound files");
    let mut x = 0x2545_f491_u32;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as usize
    };
    let mut failures = Vec::new();
    for (k, seed) in seeds.iter().enumerate() {
        for round in 0..1500 {
            let mut m = seed.clone();
            match round % 4 {
                // The header and the first sectors (FAT, directory in wixl's layout).
                0 => {
                    let at = next() % 2048.min(m.len());
                    m[at] ^= 1 << (next() % 8);
                }
                1 => {
                    let at = next() % (m.len() - 4);
                    m[at..at + 4].copy_from_slice(&(next() as u32).to_le_bytes());
                }
                2 => {
                    for _ in 0..8 {
                        let at = next() % m.len();
                        m[at] = next() as u8;
                    }
                }
                _ => m.truncate(next() % m.len()),
            }
            let t = std::time::Instant::now();
            if catch_unwind(AssertUnwindSafe(|| fuzzing::msi_walk(&m))).is_err() {
                let f = std::env::temp_dir().join(format!("msi-walk-panic-{k}-{round}.msi"));
                fs::write(&f, &m).unwrap();
                failures.push(f.display().to_string());
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(1),
                "seed {k} round {round}: {:?}",
                t.elapsed()
            );
        }
    }
    assert!(failures.is_empty(), "panics: {failures:?}");
}

/// The cabinet seeds reach the deep checks: unsigned and signed cabinets are accepted.
#[test]
fn cab_header_seeds_are_cabinets() {
    use codeseal_authenticode::formats::cab::CabHeader;
    let (mut unsigned, mut signed) = (0, 0);
    for e in fs::read_dir(regressions_dir().join("cab_header")).unwrap() {
        let data = fs::read(e.unwrap().path()).unwrap();
        let len = data.len() as u64;
        if let Ok(h) = CabHeader::read(&mut std::io::Cursor::new(data), len) {
            if h.signature().is_some() {
                signed += 1;
            } else {
                unsigned += 1;
            }
        }
    }
    assert!(
        unsigned >= 2 && signed >= 2,
        "{unsigned} unsigned, {signed} signed"
    );
}

/// The committed `script_parse` inputs reach the target's deepest checks: each signed one
/// parses as its kind with a signature block.
#[test]
fn script_parse_seeds_have_blocks() {
    use codeseal_authenticode::formats::script::{Script, ScriptKind};
    let dir = regressions_dir().join("script_parse");
    for name in [
        "signed-utf16.ps1",
        "signed-utf8.js",
        "signed-utf8.mof",
        "signed-cp1252.vbs",
        "signed-utf8.wsf",
    ] {
        let data = fs::read(dir.join(name)).unwrap();
        let kind = ScriptKind::from_path(Path::new(name)).unwrap();
        let s = Script::parse(kind, &data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(s.signature().is_some(), "{name}: no block");
    }
}

/// The template the `sign_roundtrip` target patches signs in every layout the flags select,
/// so that the target's checks are reached at all.
#[test]
fn sign_roundtrip_template_signs() {
    // PE32+/PE32, page hashes, every digest, program name and URL.
    for flags in [0x00u8, 0x01, 0x02, 0x03, 0x04, 0x08, 0x0c, 0x0e, 0x60] {
        for sections in 0..4u8 {
            assert!(
                fuzzing::sign_roundtrip(&[flags, sections, b'a', b'b'], identity()),
                "flags {flags:#04x}, {sections} sections: the template did not sign"
            );
        }
    }
}

/// `fuzz/pki/` (used by `scripts/make-fuzz-corpus.sh` to sign seeds) holds the PKI the
/// fuzz bodies have built in.
#[test]
fn fuzz_pki_files_match_the_built_in_pki() {
    let pki = regressions_dir().parent().expect("fuzz/").join("pki");
    let der_of = |name: &str| {
        let pem = fs::read(pki.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        der::pem::decode_vec(&pem)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .1
    };
    assert_eq!(der_of("root.pem"), fuzzing::fuzz_root().to_der().unwrap());
    assert_eq!(der_of("leaf.pem"), fuzzing::fuzz_leaf().to_der().unwrap());
    assert_eq!(der_of("leaf.key"), fuzzing::fuzz_leaf_key_pkcs8());
    let chain = fs::read_to_string(pki.join("leaf-chain.pem")).unwrap();
    let leaf = fs::read_to_string(pki.join("leaf.pem")).unwrap();
    let root = fs::read_to_string(pki.join("root.pem")).unwrap();
    assert_eq!(chain, leaf + &root);
}

/// The seeds that make the targets reach their deepest checks still do: a token over the fixed
/// imprint and nonce validates with them, and a file signed with the fuzz PKI verifies with
/// the fuzz root trusted.
#[test]
fn deep_seeds_still_pass() {
    use codeseal_authenticode::{timestamp::validate_token, FileKind, Verifier};
    use codeseal_signer::DigestAlgorithm;
    let dir = regressions_dir();
    let token = fs::read(dir.join("timestamp_token/token-fixed-imprint-nonce")).unwrap();
    let imprint = fuzzing::timestamp_imprint();
    validate_token(
        &token,
        Some((DigestAlgorithm::Sha256, &imprint)),
        Some(&fuzzing::TIMESTAMP_NONCE),
        Some(fuzzing::TIMESTAMP_POLICY),
    )
    .expect("the fixed-expectation token validates");
    let verifier = Verifier::new(vec![fuzzing::fuzz_root().clone()]).unwrap();
    for name in [
        "signed-p256",
        "signed-nested",
        "signed-timestamped",
        "signed-pe32-page-hashes",
    ] {
        let file = fs::read(dir.join("verify_file").join(name)).unwrap();
        let report = verifier
            .verify_reader(
                FileKind::Pe,
                &mut std::io::Cursor::new(file),
                std::path::Path::new(name),
            )
            .unwrap();
        assert!(report.valid, "{name}: {report:#?}");
    }
}

/// The package seeds reach the deep checks: they parse, hash (digest blob), pass the
/// block-map check and prepare their unsigned form.
#[test]
fn appx_parse_seeds_are_packages() {
    use codeseal_authenticode::formats::appx::{self, Zip};
    let mut deep = 0;
    for e in fs::read_dir(regressions_dir().join("appx_parse")).unwrap() {
        let data = fs::read(e.unwrap().path()).unwrap();
        let Ok(zip) = Zip::parse(&data) else { continue };
        if appx::digest_blob(&data, &zip).is_ok()
            && appx::check_block_map(&data, &zip).is_ok_and(|p| p.is_empty())
            && zip.prepare_unsigned(&data).is_ok()
        {
            deep += 1;
        }
    }
    assert!(deep >= 2, "{deep} seeds reach the deep checks");
}
