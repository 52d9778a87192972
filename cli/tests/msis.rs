//! Every verb of the CLI on MSI installers (wixl's, from `scripts/make-msis.sh`): sign (with
//! and without `--add-msi-dse`), verify, info, extract, remove, attach, timestamp, append,
//! replace, split signing and `--recursive` batches; each signed installer is checked by
//! osslsigncode 2.9, and memory stays flat on a 40 MiB one.
//! The scenario is common::every_verb; this file holds what is specific to installers.
mod common;

use common::*;
use std::path::{Path, PathBuf};

fn msi(env: &Path, name: &str) -> PathBuf {
    env.join("msis").join(name)
}

/// A signed installer accepted by osslsigncode and `codeseal verify --trust`; a copy with
/// one flipped byte inside its embedded cabinet stream rejected by both.
fn msi_accepted(file: &Path, root_pem: &Path) {
    accepted_and_tamper_rejected(codeseal, file, root_pem, |bytes| {
        let cab = bytes
            .windows(4)
            .position(|w| w == b"MSCF")
            .expect("the embedded cabinet stream");
        bytes[cab + 200] ^= 0x80;
    });
}

#[test]
fn every_verb_on_an_installer() {
    let env = test_env();
    let pki = Pki::new(&env);
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let input = msi(&env, "several.msi");
    // signed with MsiDigitalSignatureEx; attach writes a plain signature.
    every_verb(
        &Format {
            ext: "msi",
            sign_args: &["--add-msi-dse"],
            kind: "MSI",
            verify_json: &[],
            info: &["MSI (OLE compound file)", "with MsiDigitalSignatureEx"],
            info_json: &|v| {
                assert_eq!(v["msi"]["signature"], serde_json::Value::Null, "{v}");
                assert!(v["msi"]["streams"].as_u64().is_some_and(|n| n > 10), "{v}");
            },
            accepted: &msi_accepted,
            round_trip: RoundTrip::ViaPlainSignature,
            nested: true,
            replace: true,
        },
        &pki,
        &input,
        dir.path(),
    );

    // A truncated compound file: a clear error, nothing written.
    let bytes = std::fs::read(&input).expect("read");
    std::fs::write(p("cut.msi"), &bytes[..bytes.len() / 3]).expect("write");
    sign_fails_clearly(&pki, &p("cut.msi"), &p("cut-signed.msi"), "compound file");
}

#[test]
fn recursive_batch_picks_up_installers() {
    let env = test_env();
    let pki = Pki::new(&env);
    let dir = tempfile::tempdir().expect("tmp");
    let out = recursive_batch(
        &pki,
        dir.path(),
        |tree| {
            std::fs::copy(env.join("fixtures/pe64.exe"), tree.join("app.exe")).expect("copy");
            std::fs::copy(msi(&env, "one.msi"), tree.join("setup.msi")).expect("copy");
            std::fs::copy(msi(&env, "several.msi"), tree.join("sub/More.MSI")).expect("copy");
            std::fs::copy(msi(&env, "one.msi"), tree.join("sub/letter.doc")).expect("copy");
        },
        &["More.MSI", "app.exe", "setup.msi"],
    );
    for n in ["More.MSI", "setup.msi"] {
        msi_accepted(&out.join(n), &pki.root_pem);
    }
}

/// The 40 MiB installer signs (with MsiDigitalSignatureEx), verifies and loses its
/// signature in memory that does not grow with its size: the peak RSS stays within a few
/// MiB of the peak on a 9 KiB installer.
#[test]
fn a_40_mib_installer_in_flat_memory() {
    let env = test_env();
    let pki = Pki::new(&env);
    let dir = tempfile::tempdir().expect("tmp");
    flat_memory(
        &pki,
        dir.path(),
        [&msi(&env, "one.msi"), &msi(&env, "large.msi")],
        &["--add-msi-dse"],
        |input, signed, _| {
            let (ok, log) = osslsigncode_ok(signed, &pki.root_pem);
            assert!(ok, "osslsigncode rejects {}: {log}", input.display());
        },
        "installer (9 KiB, 40 MiB)",
    );
}
