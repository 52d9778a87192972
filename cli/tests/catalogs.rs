//! `codeseal catalog create`, `sign X.cat`, `verify X.cat` and `verify --catalog X.cat FILE`
//! end to end: the created catalog is accepted by osslsigncode 2.9; members verify, a changed
//! member and a catalog with a flipped byte do not.
mod common;

use common::*;
use std::process::{Command, Output};

fn codeseal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codeseal"))
        .args(args)
        .env_remove("CODESEAL_KEY_PASSWORD")
        .env_remove("CODESEAL_KEY")
        .env_remove("CODESEAL_CERT")
        .output()
        .expect("run codeseal")
}

#[test]
fn catalog_create_sign_verify_members() {
    let env = test_env();
    let pki = env.join("pki");
    let root_pem = pki.join("root.pem");
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let key = format!("file:{}", pki.join("leaf-rsa2048.key").display());
    let chain = pki.join("leaf-rsa2048-chain.pem");
    std::fs::copy(env.join("fixtures/pe32.exe"), p("app.exe")).expect("copy");
    std::fs::write(p("run.ps1"), "Write-Output 'catalog'\r\n").expect("write");
    std::fs::write(p("notes.txt"), "hello\n").expect("write");

    // create, signed
    let cat = p("signed.cat");
    let o = codeseal(&[
        "catalog",
        "create",
        "-o",
        s(&cat),
        "--key",
        &key,
        "--cert",
        s(&chain),
        s(&p("app.exe")),
        s(&p("run.ps1")),
        s(&p("notes.txt")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (ok, t) = osslsigncode_ok(&cat, &root_pem);
    assert!(ok, "osslsigncode: {t}");
    let o = codeseal(&["verify", "--trust", s(&root_pem), s(&cat)]);
    assert!(o.status.success(), "{}", text(&o));
    for m in ["app.exe", "run.ps1", "notes.txt"] {
        let o = codeseal(&[
            "verify",
            "--trust",
            s(&root_pem),
            "--catalog",
            s(&cat),
            s(&p(m)),
        ]);
        assert!(o.status.success(), "{m}: {}", text(&o));
        assert!(text(&o).contains(&format!("= {m}")), "{}", text(&o));
    }
    // A changed member fails.
    std::fs::write(p("notes.txt"), "hellO\n").expect("write");
    let o = codeseal(&["verify", "--catalog", s(&cat), s(&p("notes.txt"))]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("NOT in the catalog"), "{}", text(&o));
    // A catalog with a flipped byte (in the middle of the CTL) fails.
    let mut bytes = std::fs::read(&cat).expect("read");
    let i = bytes.len() / 4;
    bytes[i] ^= 0x01;
    let bad = p("bad.cat");
    std::fs::write(&bad, &bytes).expect("write");
    let o = codeseal(&["verify", s(&bad)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // create unsigned, then `sign X.cat`; signing again needs --replace.
    let unsigned = p("unsigned.cat");
    let o = codeseal(&["catalog", "create", "-o", s(&unsigned), s(&p("app.exe"))]);
    assert!(o.status.success(), "{}", text(&o));
    let o = codeseal(&["verify", s(&unsigned)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = codeseal(&["sign", "--key", &key, "--cert", s(&chain), s(&unsigned)]);
    assert!(o.status.success(), "{}", text(&o));
    let (ok, t) = osslsigncode_ok(&unsigned, &root_pem);
    assert!(ok, "osslsigncode: {t}");
    let o = codeseal(&["sign", "--key", &key, "--cert", s(&chain), s(&unsigned)]);
    assert!(!o.status.success(), "{}", text(&o));
    let o = codeseal(&[
        "sign",
        "--replace",
        "--key",
        &key,
        "--cert",
        s(&chain),
        s(&unsigned),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = codeseal(&[
        "verify",
        "--trust",
        s(&root_pem),
        "--catalog",
        s(&unsigned),
        s(&p("app.exe")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
}
