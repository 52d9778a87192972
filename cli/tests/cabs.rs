//! Every verb of the CLI on cabinets (gcab's, from `scripts/make-cabs.sh`): sign, verify,
//! info, extract, remove, attach, timestamp, split signing and `--recursive` batches; each
//! signed cabinet is checked by osslsigncode 2.9, and memory stays flat on a 40 MiB one.
//! The scenario is common::every_verb; this file holds what is specific to cabinets.
mod common;

use common::*;
use std::path::{Path, PathBuf};

fn cab(env: &Path, name: &str) -> PathBuf {
    env.join("cabs").join(name)
}

/// A signed cabinet accepted by osslsigncode and `codeseal verify --trust`; a copy with one
/// flipped data byte rejected by both.
fn cab_accepted(file: &Path, root_pem: &Path) {
    accepted_and_tamper_rejected(codeseal, file, root_pem, |bytes| {
        let cb = u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize;
        bytes[cb - 3] ^= 0x80;
    });
}

#[test]
fn every_verb_on_a_cabinet() {
    let env = test_env();
    let pki = Pki::new(&env);
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let input = cab(&env, "mszip.cab");
    let original = std::fs::read(&input).expect("read");
    let size = original.len();
    every_verb(
        &Format {
            ext: "cab",
            sign_args: &[],
            kind: "CAB",
            verify_json: &[],
            info: &["CAB cabinet", "Files:           3", "Signature:"],
            info_json: &|v| {
                assert_eq!(v["cab"]["signature"], serde_json::Value::Null, "{v}");
                assert_eq!(v["cab"]["size"], size, "{v}");
            },
            accepted: &cab_accepted,
            round_trip: RoundTrip::SameBytes,
            nested: true,
            replace: true,
        },
        &pki,
        &input,
        dir.path(),
    );

    // A cabinet of a multi-cabinet set: a clear error, nothing written.
    let mut set = original.clone();
    set[30] |= 2;
    std::fs::write(p("set.cab"), set).expect("write");
    sign_fails_clearly(
        &pki,
        &p("set.cab"),
        &p("set-signed.cab"),
        "multi-cabinet set",
    );
}

#[test]
fn recursive_batch_picks_up_cabinets() {
    let env = test_env();
    let pki = Pki::new(&env);
    let dir = tempfile::tempdir().expect("tmp");
    let out = recursive_batch(
        &pki,
        dir.path(),
        |tree| {
            std::fs::copy(env.join("fixtures/pe64.exe"), tree.join("app.exe")).expect("copy");
            std::fs::copy(cab(&env, "stored.cab"), tree.join("data.cab")).expect("copy");
            std::fs::copy(cab(&env, "several.cab"), tree.join("sub/More.CAB")).expect("copy");
            std::fs::write(tree.join("sub/readme.txt"), b"not signed").expect("write");
        },
        &["More.CAB", "app.exe", "data.cab"],
    );
    for n in ["More.CAB", "data.cab"] {
        cab_accepted(&out.join(n), &pki.root_pem);
    }
}

/// The 40 MiB cabinet signs, verifies and loses its signature in memory that does not grow
/// with its size: the peak RSS stays within a few MiB of the peak on a 70 KiB cabinet.
#[test]
fn a_40_mib_cabinet_in_flat_memory() {
    let env = test_env();
    let pki = Pki::new(&env);
    let dir = tempfile::tempdir().expect("tmp");
    flat_memory(
        &pki,
        dir.path(),
        [&cab(&env, "stored.cab"), &cab(&env, "large.cab")],
        &[],
        |input, signed, removed| {
            assert!(
                std::fs::read(removed).expect("read") == std::fs::read(input).expect("read"),
                "{}: remove did not give the input back",
                input.display()
            );
            let (ok, log) = osslsigncode_ok(signed, &pki.root_pem);
            assert!(ok, "osslsigncode rejects {}: {log}", input.display());
        },
        "cabinet (70 KiB, 40 MiB)",
    );
}
