//! Every verb of the CLI on scripts: sign, verify, info, extract, remove, attach, timestamp,
//! split signing and `--recursive` batches that mix PE files and scripts; each signed script
//! is checked by osslsigncode 2.9 (it verifies the PowerShell family and .mof).
mod common;

use common::*;
use std::process::{Command, Output};

fn codeseal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codeseal"))
        .args(args)
        .env_remove("CODESEAL_KEY_PASSWORD")
        .output()
        .expect("run codeseal")
}

#[test]
fn every_verb_on_a_powershell_script() {
    let env = test_env();
    let pki = env.join("pki");
    let root_pem = pki.join("root.pem");
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let key = format!("file:{}", pki.join("leaf-rsa2048.key").display());
    let chain = pki.join("leaf-rsa2048-chain.pem");
    let input = write_ps1(dir.path(), "exec.ps1");
    let original = std::fs::read(&input).expect("read");

    // sign + verify + info
    let o = codeseal(&[
        "sign",
        "--key",
        &key,
        "--cert",
        s(&chain),
        s(&input),
        "-o",
        s(&p("signed.ps1")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    script_accepted(codeseal, &p("signed.ps1"), &root_pem);
    let o = codeseal(&[
        "verify",
        "--json",
        "--trust",
        s(&root_pem),
        s(&p("signed.ps1")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["kind"], "PowerShell", "{v}");
    assert_eq!(v["checksum_in_header"], serde_json::Value::Null);
    let o = codeseal(&["info", s(&p("signed.ps1"))]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("PowerShell script") && t.contains("UTF-8 with BOM"),
        "{t}"
    );
    assert!(
        t.contains("Signature block: bytes") && t.contains("Succeeded"),
        "{t}"
    );

    // extract, remove, attach: back to the same bytes.
    let o = codeseal(&["extract", s(&p("signed.ps1")), "-o", s(&p("sig.p7"))]);
    assert!(o.status.success(), "{}", text(&o));
    let o = codeseal(&["remove", s(&p("signed.ps1")), "-o", s(&p("removed.ps1"))]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(p("removed.ps1")).expect("read"), original);
    let o = codeseal(&[
        "attach",
        s(&p("removed.ps1")),
        s(&p("sig.p7")),
        "-o",
        s(&p("att.ps1")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(p("att.ps1")).expect("read"),
        std::fs::read(p("signed.ps1")).expect("read")
    );

    // timestamp an already signed script, in place.
    let tsa = local_tsa(&pki);
    let o = codeseal(&[
        "timestamp",
        s(&p("att.ps1")),
        "--ts",
        &format!("{tsa}/rfc3161"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (ok, t) = osslsigncode_ts_ok(&p("att.ps1"), &root_pem, &pki.join("tsa-root.pem"));
    assert!(ok, "{t}");

    // sign with --append (nested) and a time stamp; one block.
    let key2 = format!("file:{}", pki.join("leaf-p256.key").display());
    let chain2 = pki.join("leaf-p256-chain.pem");
    let o = codeseal(&[
        "sign",
        "--key",
        &key2,
        "--cert",
        s(&chain2),
        "--append",
        "--digest",
        "sha384",
        "--ts",
        &format!("{tsa}/rfc3161"),
        s(&p("signed.ps1")),
        "-o",
        s(&p("dual.ps1")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (ok, t) = osslsigncode_ok(&p("dual.ps1"), &root_pem);
    assert!(ok, "{t}");
    let o = codeseal(&["verify", "--json", s(&p("dual.ps1"))]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["signatures"].as_array().map(Vec::len), Some(2), "{v}");

    // split signing.
    split_sign_and_check(
        codeseal,
        &key,
        &input,
        &chain,
        dir.path(),
        "split",
        &root_pem,
    );

    // An unsupported file: a clear error, nothing written.
    std::fs::write(p("notes.txt"), b"hello").expect("write");
    let o = codeseal(&[
        "sign",
        "--key",
        &key,
        "--cert",
        s(&chain),
        s(&p("notes.txt")),
        "-o",
        s(&p("n.txt")),
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o).contains("not a script extension codeseal signs"),
        "{}",
        text(&o)
    );
    assert!(!p("n.txt").exists());
    let o = codeseal(&["verify", s(&p("notes.txt"))]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("unsupported file"), "{}", text(&o));
}

#[test]
fn recursive_batch_picks_up_scripts_and_pe_files() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
    std::fs::copy(env.join("fixtures/pe64.exe"), tree.join("app.exe")).expect("copy");
    write_ps1(&tree, "install.ps1");
    write_ps1(&tree.join("sub"), "module.psm1");
    std::fs::write(tree.join("sub/setup.vbs"), b"WScript.Echo \"Hi\"\r\n").expect("write");
    std::fs::write(tree.join("sub/readme.txt"), b"not signed").expect("write");
    let out = dir.path().join("out");
    let key = format!("file:{}", pki.join("leaf-rsa2048.key").display());
    let o = codeseal(&[
        "sign",
        "--key",
        &key,
        "--cert",
        s(&pki.join("leaf-rsa2048-chain.pem")),
        "--recursive",
        "--out-dir",
        s(&out),
        s(&tree),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["app.exe", "install.ps1", "module.psm1", "setup.vbs"]
    );
    for n in &names {
        let o = codeseal(&[
            "verify",
            "--trust",
            s(&pki.join("root.pem")),
            s(&out.join(n)),
        ]);
        assert!(o.status.success(), "{n}: {}", text(&o));
    }
    let (ok, t) = osslsigncode_ok(&out.join("module.psm1"), &pki.join("root.pem"));
    assert!(ok, "{t}");
}
