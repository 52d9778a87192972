//! The CLI on APPX packages and bundles written by `scripts/make-appx.py`: sign, verify,
//! info (text and JSON: kind, entries, block-map hash, Publisher, signer), timestamp on the
//! existing signature and split signing (digest / sign-digest / attach-digest-signature);
//! each result is accepted by osslsigncode 2.9 and `codeseal verify --trust`, and a copy
//! with one flipped byte is rejected.
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

const PUBLISHER: &str = "CN=codeseal test signer (leaf-rsa2048), O=codeseal test PKI (throwaway)";

fn make_appx(out: &Path, flags: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-appx.py");
    let o = run(Command::new("python3")
        .arg(script)
        .arg(out)
        .arg(PUBLISHER)
        .arg("1")
        .args(flags));
    assert!(o.status.success(), "make-appx.py: {}", text(&o));
}

/// Accepted by osslsigncode and `codeseal verify --trust`; one flipped byte in the middle
/// of the first entry's data is rejected by both.
fn package_accepted(file: &Path, root_pem: &Path) {
    let (ok, t) = osslsigncode_ok(file, root_pem);
    assert!(ok, "osslsigncode ({}): {t}", file.display());
    let o = codeseal(&["verify", "--trust", s(root_pem), s(file)]);
    assert!(o.status.success(), "codeseal verify: {}", text(&o));
    let mut bytes = std::fs::read(file).expect("read");
    bytes[100_000] ^= 0x01;
    let bad = file.with_file_name("flipped.appx");
    std::fs::write(&bad, bytes).expect("write");
    let (ok, _) = osslsigncode_ok(&bad, root_pem);
    assert!(!ok, "osslsigncode accepts a changed package");
    let o = codeseal(&["verify", "--trust", s(root_pem), s(&bad)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn every_verb_on_packages_and_bundles() {
    let env = test_env();
    let pki = env.join("pki");
    let root_pem = pki.join("root.pem");
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let key = format!("file:{}", pki.join("leaf-rsa2048.key").display());
    let chain = pki.join("leaf-rsa2048-chain.pem");
    let tsa = local_tsa(&pki);
    for (name, flags, kind) in [
        ("app.msix", &[][..], "APPX / MSIX package"),
        ("app.msixbundle", &["--bundle"][..], "APPX / MSIX bundle"),
    ] {
        let input = p(name);
        make_appx(&input, flags);
        // info on the unsigned package.
        let o = codeseal(&["info", "--json", s(&input)]);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(v["appx"]["bundle"], flags.contains(&"--bundle"), "{v}");
        assert_eq!(v["appx"]["block_map_hash"], "sha256", "{v}");
        assert_eq!(v["appx"]["publisher"], PUBLISHER, "{v}");
        assert_eq!(v["appx"]["signature"], serde_json::Value::Null, "{v}");
        assert!(v["appx"]["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e == "AppxBlockMap.xml"));
        // sign, verify, info.
        let signed = p(&format!("signed-{name}"));
        let o = codeseal(&[
            "sign",
            "--key",
            &key,
            "--cert",
            s(&chain),
            s(&input),
            "-o",
            s(&signed),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        package_accepted(&signed, &root_pem);
        let o = codeseal(&["info", s(&signed)]);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(t.contains(kind), "{t}");
        assert!(t.contains("AppxBlockMap.xml (sha256)"), "{t}");
        assert!(t.contains(&format!("Publisher:       {PUBLISHER}")), "{t}");
        assert!(t.contains("AppxSignature.p7x"), "{t}");
        assert!(t.contains("codeseal test signer (leaf-rsa2048)"), "{t}");
        // timestamp the existing signature, in place.
        let o = codeseal(&["timestamp", s(&signed), "--ts", &format!("{tsa}/rfc3161")]);
        assert!(o.status.success(), "{}", text(&o));
        let (ok, t) = osslsigncode_ts_ok(&signed, &root_pem, &pki.join("tsa-root.pem"));
        assert!(ok, "{t}");
        // split signing.
        split_sign_and_check(codeseal, &key, &input, &chain, dir.path(), name, &root_pem);
        let ext = input.extension().and_then(|e| e.to_str()).expect("ext");
        package_accepted(&p(&format!("{name}-split.{ext}")), &root_pem);
    }
}
