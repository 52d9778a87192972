//! Every verb of the CLI on MSI installers (wixl's, from `scripts/make-msis.sh`): sign (with
//! and without `--add-msi-dse`), verify, info, extract, remove, attach, timestamp, append,
//! replace, split signing and `--recursive` batches; each signed installer is checked by
//! osslsigncode 2.9, and memory stays flat on a 40 MiB one.
mod common;

use common::*;
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn codeseal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codeseal"))
        .args(args)
        .env_remove("CODESEAL_KEY_PASSWORD")
        .output()
        .expect("run codeseal")
}

fn msi(env: &Path, name: &str) -> PathBuf {
    env.join("msis").join(name)
}

/// A signed installer accepted by osslsigncode and `codeseal verify --trust`; a copy with
/// one flipped byte inside its embedded cabinet stream rejected by both.
fn msi_accepted(file: &Path, root_pem: &Path) {
    let (ok, t) = osslsigncode_ok(file, root_pem);
    assert!(ok, "osslsigncode ({}): {t}", file.display());
    let o = codeseal(&["verify", "--trust", s(root_pem), s(file)]);
    assert!(o.status.success(), "codeseal verify: {}", text(&o));
    let mut bytes = std::fs::read(file).expect("read");
    let cab = bytes
        .windows(4)
        .position(|w| w == b"MSCF")
        .expect("the embedded cabinet stream");
    bytes[cab + 200] ^= 0x80;
    let bad = file.with_extension("bad.msi");
    std::fs::write(&bad, bytes).expect("write");
    let (ok, _) = osslsigncode_ok(&bad, root_pem);
    assert!(!ok, "osslsigncode accepts a changed installer");
    let o = codeseal(&["verify", s(&bad)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn every_verb_on_an_installer() {
    let env = test_env();
    let pki = env.join("pki");
    let root_pem = pki.join("root.pem");
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let key = format!("file:{}", pki.join("leaf-rsa2048.key").display());
    let chain = pki.join("leaf-rsa2048-chain.pem");
    let input = msi(&env, "several.msi");

    // sign (with MsiDigitalSignatureEx) + verify + info
    let o = codeseal(&[
        "sign",
        "--key",
        &key,
        "--cert",
        s(&chain),
        "--add-msi-dse",
        s(&input),
        "-o",
        s(&p("signed.msi")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    msi_accepted(&p("signed.msi"), &root_pem);
    let o = codeseal(&[
        "verify",
        "--json",
        "--trust",
        s(&root_pem),
        s(&p("signed.msi")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["kind"], "MSI", "{v}");
    assert_eq!(v["valid"], true, "{v}");
    let o = codeseal(&["info", s(&p("signed.msi"))]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("MSI (OLE compound file)"), "{t}");
    assert!(
        t.contains("with MsiDigitalSignatureEx") && t.contains("Succeeded"),
        "{t}"
    );
    let o = codeseal(&["info", "--json", s(&input)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["msi"]["signature"], serde_json::Value::Null, "{v}");
    assert!(v["msi"]["streams"].as_u64().is_some_and(|n| n > 10), "{v}");

    // extract, remove, attach (without the Ex stream: attach writes a plain signature).
    let o = codeseal(&[
        "sign",
        "--key",
        &key,
        "--cert",
        s(&chain),
        s(&input),
        "-o",
        s(&p("plain.msi")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    msi_accepted(&p("plain.msi"), &root_pem);
    let o = codeseal(&["extract", s(&p("plain.msi")), "-o", s(&p("sig.p7"))]);
    assert!(o.status.success(), "{}", text(&o));
    let o = codeseal(&["remove", s(&p("signed.msi")), "-o", s(&p("removed.msi"))]);
    assert!(o.status.success(), "{}", text(&o));
    let o = codeseal(&["verify", s(&p("removed.msi"))]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let o = codeseal(&[
        "attach",
        s(&p("removed.msi")),
        s(&p("sig.p7")),
        "-o",
        s(&p("att.msi")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    msi_accepted(&p("att.msi"), &root_pem);

    // timestamp an already signed installer, in place.
    let tsa = local_tsa(&pki);
    let o = codeseal(&[
        "timestamp",
        s(&p("att.msi")),
        "--ts",
        &format!("{tsa}/rfc3161"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (ok, t) = osslsigncode_ts_ok(&p("att.msi"), &root_pem, &pki.join("tsa-root.pem"));
    assert!(ok, "{t}");

    // --append (nested) with a time stamp onto the Ex-signed one, then --replace.
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
        s(&p("signed.msi")),
        "-o",
        s(&p("dual.msi")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (ok, t) = osslsigncode_ok(&p("dual.msi"), &root_pem);
    assert!(ok, "{t}");
    let o = codeseal(&["verify", "--json", s(&p("dual.msi"))]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["signatures"].as_array().map(Vec::len), Some(2), "{v}");
    let o = codeseal(&[
        "sign",
        "--key",
        &key,
        "--cert",
        s(&chain),
        "--replace",
        s(&p("dual.msi")),
        "-o",
        s(&p("replaced.msi")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    msi_accepted(&p("replaced.msi"), &root_pem);

    split_sign_and_check(
        codeseal,
        &key,
        &input,
        &chain,
        dir.path(),
        "split",
        &root_pem,
    );

    // A truncated compound file: a clear error, nothing written.
    let bytes = std::fs::read(&input).expect("read");
    std::fs::write(p("cut.msi"), &bytes[..bytes.len() / 3]).expect("write");
    let o = codeseal(&[
        "sign",
        "--key",
        &key,
        "--cert",
        s(&chain),
        s(&p("cut.msi")),
        "-o",
        s(&p("cut-signed.msi")),
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("compound file"), "{}", text(&o));
    assert!(!p("cut-signed.msi").exists());
}

#[test]
fn recursive_batch_picks_up_installers() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
    std::fs::copy(env.join("fixtures/pe64.exe"), tree.join("app.exe")).expect("copy");
    std::fs::copy(msi(&env, "one.msi"), tree.join("setup.msi")).expect("copy");
    std::fs::copy(msi(&env, "several.msi"), tree.join("sub/More.MSI")).expect("copy");
    std::fs::copy(msi(&env, "one.msi"), tree.join("sub/letter.doc")).expect("copy");
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
    assert_eq!(names, ["More.MSI", "app.exe", "setup.msi"]);
    for n in ["More.MSI", "setup.msi"] {
        msi_accepted(&out.join(n), &pki.join("root.pem"));
    }
}

/// Runs codeseal under `/usr/bin/time -f %M`: its output and its peak RSS in KiB.
fn codeseal_rss(args: &[&str]) -> (Output, u64) {
    let o = Command::new("/usr/bin/time")
        .args(["-f", "rss_kib=%M", env!("CARGO_BIN_EXE_codeseal")])
        .args(args)
        .env_remove("CODESEAL_KEY_PASSWORD")
        .output()
        .expect("run /usr/bin/time (Debian package `time`, installed by scripts/setup.sh)");
    let err = String::from_utf8_lossy(&o.stderr);
    let rss = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS from /usr/bin/time: {err}"));
    (o, rss)
}

/// The 40 MiB installer signs (with MsiDigitalSignatureEx), verifies and loses its
/// signature in memory that does not grow with its size: the peak RSS stays within a few
/// MiB of the peak on a 9 KiB installer.
#[test]
fn a_40_mib_installer_in_flat_memory() {
    let env = test_env();
    let pki = env.join("pki");
    let root_pem = pki.join("root.pem");
    let key = format!("file:{}", pki.join("leaf-rsa2048.key").display());
    let chain = pki.join("leaf-rsa2048-chain.pem");
    let dir = tempfile::tempdir().expect("tmp");
    let mut rss = Vec::new();
    for name in ["one.msi", "large.msi"] {
        let input = msi(&env, name);
        let signed = dir.path().join(format!("signed-{name}"));
        let removed = dir.path().join(format!("removed-{name}"));
        let (o, sign_rss) = codeseal_rss(&[
            "sign",
            "--key",
            &key,
            "--cert",
            s(&chain),
            "--add-msi-dse",
            s(&input),
            "-o",
            s(&signed),
        ]);
        assert!(o.status.success(), "{name} sign: {}", text(&o));
        let (o, verify_rss) = codeseal_rss(&["verify", "--trust", s(&root_pem), s(&signed)]);
        assert!(o.status.success(), "{name} verify: {}", text(&o));
        let (o, remove_rss) = codeseal_rss(&["remove", s(&signed), "-o", s(&removed)]);
        assert!(o.status.success(), "{name} remove: {}", text(&o));
        let (ok, log) = osslsigncode_ok(&signed, &root_pem);
        assert!(ok, "osslsigncode rejects {name}: {log}");
        eprintln!(
            "{name}: peak RSS sign {sign_rss} KiB, verify {verify_rss} KiB, remove {remove_rss} KiB"
        );
        rss.push(sign_rss.max(verify_rss).max(remove_rss));
    }
    let (small, big) = (rss[0], rss[1]);
    assert!(
        big < small + (8 << 10),
        "peak RSS grows with the installer: {small} KiB at 9 KiB, {big} KiB at 40 MiB"
    );
}
