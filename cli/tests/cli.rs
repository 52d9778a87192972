//! The `codeseal` binary end to end: demo, sign, verify exit codes, clear errors.
mod common;

use common::*;
use std::{
    path::Path,
    process::{Command, Output},
};

fn codeseal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codeseal"))
        .args(args)
        .env_remove("CODESEAL_KEY_PASSWORD")
        .output()
        .expect("run codeseal")
}

#[test]
fn demo_signs_and_verifies_and_osslsigncode_agrees() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = codeseal(&["demo", "--dir", dir.path().to_str().expect("utf8")]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("Succeeded"), "{t}");
    assert!(
        t.contains("osslsigncode verify -CAfile root.pem: Succeeded"),
        "{t}"
    );
    // The demo's output verifies on its own too, and fails once modified.
    let signed = dir.path().join("sample-signed.exe");
    assert!(codeseal(&["verify", signed.to_str().expect("utf8")])
        .status
        .success());
    let mut b = std::fs::read(&signed).expect("read");
    b[0x400] ^= 0xff;
    let bad = dir.path().join("bad.exe");
    std::fs::write(&bad, b).expect("write");
    let o = codeseal(&["verify", bad.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("Failed"));
}

#[test]
fn sign_verify_json_and_errors() {
    let env = test_env();
    let dir = tempfile::tempdir().expect("tmp");
    let pki = env.join("pki");
    let key = format!("file:{}", pki.join("leaf-rsa2048.key").display());
    let chain = pki.join("leaf-rsa2048-chain.pem");
    let input = env.join("fixtures/pe32.dll");
    let out = dir.path().join("out.dll");
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let o = codeseal(&[
        "sign",
        "--key",
        &key,
        "--cert",
        &s(&chain),
        "--name",
        "Test",
        &s(&input),
        "-o",
        &s(&out),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = codeseal(&["verify", "--json", &s(&out)]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["valid"], true);
    assert_eq!(v["signatures"][0]["program_name"], "Test");
    assert_eq!(v["signatures"][0]["digest_algorithm"], "sha256");
    // Existing output: refused without --force.
    let o = codeseal(&[
        "sign",
        "--key",
        &key,
        "--cert",
        &s(&chain),
        &s(&input),
        "-o",
        &s(&out),
    ]);
    // A file that fails to sign is exit status 1 (as in a batch); setup errors are 2.
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("--force"), "{}", text(&o));
    // Wrong certificate for the key.
    let other = pki.join("leaf-p256-chain.pem");
    let o = codeseal(&[
        "sign",
        "--key",
        &key,
        "--cert",
        &s(&other),
        &s(&input),
        "-o",
        &s(&dir.path().join("x.dll")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("does not belong to this key"),
        "{}",
        text(&o)
    );
    // Unsigned file: verify says so, exit 1.
    let o = codeseal(&["verify", &s(&input)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("not signed"), "{}", text(&o));
    // A PKCS#12 key without its password: a clear message, no secret on argv needed.
    let p12 = format!("file:{}", pki.join("leaf-rsa2048.p12").display());
    let o = codeseal(&[
        "sign",
        "--key",
        &p12,
        &s(&input),
        "-o",
        &s(&dir.path().join("y.dll")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("CODESEAL_KEY_PASSWORD"), "{}", text(&o));
    // With the password from a file named in the URI, and the chain from the PKCS#12.
    let p12 = format!("{p12}?password-file={}", pki.join("p12-pass.txt").display());
    let y = dir.path().join("y.dll");
    let o = codeseal(&["sign", "--key", &p12, &s(&input), "-o", &s(&y)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = codeseal(&["info", &s(&y)]);
    assert!(
        o.status.success() && text(&o).contains("DLL") && text(&o).contains("Succeeded"),
        "{}",
        text(&o)
    );
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl")
}

#[test]
fn csr_from_local_keys_verifies_with_openssl_and_carries_the_key() {
    let env = test_env();
    let dir = tempfile::tempdir().expect("tmp");
    for leaf in ["leaf-rsa2048", "leaf-p256"] {
        let key = env.join(format!("pki/{leaf}.key"));
        let csr = dir.path().join(format!("{leaf}.csr"));
        let o = codeseal(&[
            "csr",
            "--key",
            key.to_str().expect("utf8"),
            "--subject",
            "CN=codeseal CSR test,O=codeseal,C=US",
            "--eku-code-signing",
            "--key-usage",
            "-o",
            csr.to_str().expect("utf8"),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        // `openssl req -verify` exits 0 even on a bad signature: read its words.
        let v = openssl(&[
            "req",
            "-verify",
            "-noout",
            "-text",
            "-in",
            csr.to_str().expect("utf8"),
        ]);
        let t = text(&v);
        assert!(
            t.contains("verify OK") || t.contains("Certificate request self-signature verify OK"),
            "{leaf}: {t}"
        );
        assert!(!t.contains("verify failure"), "{leaf}: {t}");
        assert!(t.contains("Code Signing"), "{leaf}: {t}");
        assert!(
            t.contains("CN=codeseal CSR test") || t.contains("CN = codeseal CSR test"),
            "{t}"
        );
        let from_csr = openssl(&[
            "req",
            "-pubkey",
            "-noout",
            "-in",
            csr.to_str().expect("utf8"),
        ]);
        let from_key = openssl(&["pkey", "-pubout", "-in", key.to_str().expect("utf8")]);
        assert_eq!(
            from_csr.stdout, from_key.stdout,
            "{leaf}: CSR public key differs from the key's"
        );
        // Tampering with the CSR is detected by openssl.
        let mut der =
            openssl(&["req", "-in", csr.to_str().expect("utf8"), "-outform", "DER"]).stdout;
        let n = der.len();
        der[n - 5] ^= 1;
        let bad = dir.path().join("bad.der");
        std::fs::write(&bad, der).expect("write");
        let t = text(&openssl(&[
            "req",
            "-verify",
            "-noout",
            "-inform",
            "DER",
            "-in",
            bad.to_str().expect("utf8"),
        ]));
        assert!(
            !t.contains("verify OK") || t.contains("failure"),
            "{leaf}: tampered CSR verified: {t}"
        );
    }
}
