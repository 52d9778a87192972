//! Split (digest-only) signing across processes, SignTool `.dig` files, and batch signing.
mod common;

use common::*;
use std::{
    path::PathBuf,
    process::{Command, Output},
};

fn codeseal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codeseal"))
        .args(args)
        .output()
        .expect("run codeseal")
}

#[test]
fn split_signing_in_three_steps_is_accepted() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    for (leaf, ph) in [("leaf-rsa2048", false), ("leaf-p256", true)] {
        let input = env.join("fixtures/pe64.dll");
        let req = dir.path().join(format!("{leaf}.json"));
        let chain = pki.join(format!("{leaf}-chain.pem"));
        let mut args = vec![
            "digest",
            s(&input),
            "--cert",
            s(&chain),
            "-o",
            s(&req),
            "--name",
            "Split",
        ];
        if ph {
            args.push("--page-hashes");
        }
        let o = codeseal(&args);
        assert!(o.status.success(), "{}", text(&o));
        // Step 2 "on another machine": only the key and the request.
        let key = pki.join(format!("{leaf}.key"));
        let o = codeseal(&["sign-digest", "--key", s(&key), s(&req)]);
        assert!(o.status.success(), "{}", text(&o));
        let sig = PathBuf::from(format!("{}.sig", req.display()));
        assert!(sig.exists());
        // Step 3: assemble and attach.
        let out = dir.path().join(format!("{leaf}.dll"));
        let o = codeseal(&[
            "attach-digest-signature",
            s(&input),
            s(&req),
            s(&sig),
            "--cert",
            s(&chain),
            "-o",
            s(&out),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            osslsigncode_ok(&out, &pki.join("root.pem")).0,
            "osslsigncode rejected {leaf}"
        );
        assert!(
            signify_ok(&out, &pki.join("root.pem")).0,
            "signify rejected {leaf}"
        );
        // A signature by another key, or for another certificate, is refused.
        let other = pki.join("leaf-rsa4096-chain.pem");
        let bad = dir.path().join(format!("{leaf}-bad.dll"));
        let o = codeseal(&[
            "attach-digest-signature",
            s(&input),
            s(&req),
            s(&sig),
            "--cert",
            s(&other),
            "-o",
            s(&bad),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(!bad.exists());
        // The request does not fit another file.
        let o = codeseal(&[
            "attach-digest-signature",
            s(&env.join("fixtures/pe32.exe")),
            s(&req),
            s(&sig),
            "--cert",
            s(&chain),
            "-o",
            s(&bad),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("another file"), "{}", text(&o));
    }
}

#[test]
fn signtool_dig_files_are_signed_like_signtool_ds() {
    use base64::Engine;
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    for leaf in ["leaf-rsa2048", "leaf-p256"] {
        let digest = codeseal_signer::DigestAlgorithm::Sha256.digest(leaf.as_bytes());
        let dig = dir.path().join(format!("{leaf}.dig"));
        std::fs::write(
            &dig,
            base64::engine::general_purpose::STANDARD.encode(&digest),
        )
        .expect("write");
        let o = codeseal(&[
            "sign-digest",
            "--key",
            s(&pki.join(format!("{leaf}.key"))),
            s(&dig),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let signed = PathBuf::from(format!("{}.signed", dig.display()));
        let sig = base64::engine::general_purpose::STANDARD
            .decode(std::fs::read_to_string(&signed).expect("read").trim())
            .expect("base64");
        // openssl checks the signature over the digest with the certificate's public key.
        let (d, sg, pubk) = (
            dir.path().join("d.bin"),
            dir.path().join("s.bin"),
            dir.path().join("pub.pem"),
        );
        std::fs::write(&d, &digest).expect("w");
        std::fs::write(&sg, &sig).expect("w");
        let o = Command::new("openssl")
            .args(["x509", "-pubkey", "-noout", "-in"])
            .arg(pki.join(format!("{leaf}.pem")))
            .output()
            .expect("openssl");
        std::fs::write(&pubk, &o.stdout).expect("w");
        let o = Command::new("openssl")
            .args([
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                s(&pubk),
                "-pkeyopt",
                "digest:sha256",
                "-in",
                s(&d),
                "-sigfile",
                s(&sg),
            ])
            .output()
            .expect("openssl");
        assert!(
            text(&o).contains("Signature Verified Successfully"),
            "{leaf}: {}",
            text(&o)
        );
    }
    // A .dig with the wrong length for the algorithm is a clear error.
    let dig = dir.path().join("short.dig");
    std::fs::write(&dig, "AAAA").expect("w");
    let o = codeseal(&[
        "sign-digest",
        "--key",
        s(&pki.join("leaf-p256.key")),
        s(&dig),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("/fd"), "{}", text(&o));
}

#[test]
fn batch_of_200_with_one_corrupt_file() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    let inputs = dir.path().join("in");
    let outputs = dir.path().join("out");
    std::fs::create_dir_all(inputs.join("sub")).expect("mkdir");
    let sample = std::fs::read(env.join("fixtures/pe32.exe")).expect("read");
    for i in 0..200 {
        let p = if i % 2 == 0 {
            inputs.join(format!("f{i:03}.exe"))
        } else {
            inputs.join(format!("sub/f{i:03}.dll"))
        };
        if i == 137 {
            std::fs::write(&p, &sample[..100]).expect("write");
        } else {
            std::fs::write(&p, &sample).expect("write");
        }
    }
    let o = codeseal(&[
        "sign",
        "--key",
        s(&pki.join("leaf-p256.key")),
        "--cert",
        s(&pki.join("leaf-p256-chain.pem")),
        "--recursive",
        "--jobs",
        "4",
        "--out-dir",
        s(&outputs),
        s(&inputs),
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("199 signed, 1 failed"), "{t}");
    assert!(
        t.contains("FAILED") && t.contains("f137.dll") && t.to_lowercase().contains("truncated"),
        "{t}"
    );
    let mut n = 0;
    for e in std::fs::read_dir(&outputs).expect("ls") {
        let p = e.expect("e").path();
        assert!(
            codeseal_authenticode::Verifier::integrity_only()
                .verify_file(&p)
                .expect("verify")
                .valid,
            "{}",
            p.display()
        );
        assert!(
            osslsigncode_ok(&p, &pki.join("root.pem")).0,
            "{}",
            p.display()
        );
        n += 1;
    }
    assert_eq!(n, 199);
    // The inputs were not touched.
    assert_eq!(
        std::fs::read(inputs.join("f000.exe")).expect("read"),
        sample
    );
}

/// A batch with a local RSA key signs on every core (no --jobs: two workers per CPU), in place, in three
/// directories: every output is a valid signature of its own file (codeseal checks all,
/// osslsigncode a sample), and the renames are made durable by one directory sync per
/// directory, not one per file (counted by CODESEAL_TIMINGS).
#[test]
fn batch_of_600_in_place_with_a_local_rsa_key_on_every_core() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    let sample = std::fs::read(env.join("fixtures/pe64.exe")).expect("read");
    let dirs = ["a", "b", "c/d"];
    let mut files = Vec::new();
    for d in dirs {
        std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
    }
    for i in 0..600usize {
        let p = dir.path().join(dirs[i % 3]).join(format!("f{i:03}.exe"));
        // Each file differs (a byte of its overlay), so each has its own digest.
        let mut bytes = sample.clone();
        bytes.extend_from_slice(&(i as u32).to_le_bytes());
        std::fs::write(&p, &bytes).expect("write");
        files.push(p);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_codeseal"))
        .env("CODESEAL_TIMINGS", "1")
        .args([
            "sign",
            "--key",
            s(&pki.join("leaf-rsa2048.key")),
            "--cert",
            s(&pki.join("leaf-rsa2048-chain.pem")),
            "--recursive",
            s(dir.path()),
        ])
        .output()
        .expect("run codeseal");
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("600 signed, 0 failed"), "{t}");
    let workers = (2 * std::thread::available_parallelism().map_or(2, |n| n.get())).min(64);
    assert!(t.contains(&format!("summed over {workers} workers")), "{t}");
    let count = |phase: &str| -> u64 {
        let line = t
            .lines()
            .find(|l| l.starts_with(phase))
            .unwrap_or_else(|| panic!("no {phase} line in {t}"));
        line[phase.len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"))
    };
    assert_eq!(count("fsync file"), 600, "{t}");
    assert_eq!(count("key (sign + check)"), 600, "{t}");
    assert_eq!(count("fsync directory"), 3, "{t}");
    let mut digests = std::collections::HashSet::new();
    for (i, p) in files.iter().enumerate() {
        let report = codeseal_authenticode::Verifier::integrity_only()
            .verify_file(p)
            .expect("verify");
        assert!(report.valid, "{}", p.display());
        assert!(t.contains(&format!("signed {} -> {}", p.display(), p.display())));
        digests.insert(report.signatures[0].signed_digest.clone());
        if i % 37 == 0 {
            let (ok, out) = osslsigncode_ok(p, &pki.join("root.pem"));
            assert!(ok, "{}: {out}", p.display());
        }
    }
    assert_eq!(digests.len(), 600, "every file has its own digest");
    // No temp file is left behind.
    for d in dirs {
        for e in std::fs::read_dir(dir.path().join(d)).expect("ls") {
            let name = e.expect("e").file_name();
            assert!(
                !name.to_string_lossy().starts_with(".codeseal-"),
                "{name:?}"
            );
        }
    }
}
