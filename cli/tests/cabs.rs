//! Every verb of the CLI on cabinets (gcab's, from `scripts/make-cabs.sh`): sign, verify,
//! info, extract, remove, attach, timestamp, split signing and `--recursive` batches; each
//! signed cabinet is checked by osslsigncode 2.9, and memory stays flat on a 40 MiB one.
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

fn cab(env: &Path, name: &str) -> PathBuf {
    env.join("cabs").join(name)
}

/// A signed cabinet accepted by osslsigncode and `codeseal verify --trust`; a copy with one
/// flipped data byte rejected by both.
fn cab_accepted(file: &Path, root_pem: &Path) {
    let (ok, t) = osslsigncode_ok(file, root_pem);
    assert!(ok, "osslsigncode ({}): {t}", file.display());
    let o = codeseal(&["verify", "--trust", s(root_pem), s(file)]);
    assert!(o.status.success(), "codeseal verify: {}", text(&o));
    let mut bytes = std::fs::read(file).expect("read");
    let cb = u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize;
    bytes[cb - 3] ^= 0x80;
    let bad = file.with_extension("bad.cab");
    std::fs::write(&bad, bytes).expect("write");
    let (ok, _) = osslsigncode_ok(&bad, root_pem);
    assert!(!ok, "osslsigncode accepts a changed cabinet");
    let o = codeseal(&["verify", s(&bad)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn every_verb_on_a_cabinet() {
    let env = test_env();
    let pki = env.join("pki");
    let root_pem = pki.join("root.pem");
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let key = format!("file:{}", pki.join("leaf-rsa2048.key").display());
    let chain = pki.join("leaf-rsa2048-chain.pem");
    let input = cab(&env, "mszip.cab");
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
        s(&p("signed.cab")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    cab_accepted(&p("signed.cab"), &root_pem);
    let o = codeseal(&[
        "verify",
        "--json",
        "--trust",
        s(&root_pem),
        s(&p("signed.cab")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["kind"], "CAB", "{v}");
    assert_eq!(v["valid"], true, "{v}");
    let o = codeseal(&["info", s(&p("signed.cab"))]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("CAB cabinet") && t.contains("Files:           3"),
        "{t}"
    );
    assert!(t.contains("Signature:") && t.contains("Succeeded"), "{t}");
    let o = codeseal(&["info", "--json", s(&input)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["cab"]["signature"], serde_json::Value::Null, "{v}");
    assert_eq!(v["cab"]["size"], original.len(), "{v}");

    // extract, remove, attach: back to the same bytes.
    let o = codeseal(&["extract", s(&p("signed.cab")), "-o", s(&p("sig.p7"))]);
    assert!(o.status.success(), "{}", text(&o));
    let o = codeseal(&["remove", s(&p("signed.cab")), "-o", s(&p("removed.cab"))]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(p("removed.cab")).expect("read"), original);
    let o = codeseal(&[
        "attach",
        s(&p("removed.cab")),
        s(&p("sig.p7")),
        "-o",
        s(&p("att.cab")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(p("att.cab")).expect("read"),
        std::fs::read(p("signed.cab")).expect("read")
    );

    // timestamp an already signed cabinet, in place.
    let tsa = local_tsa(&pki);
    let o = codeseal(&[
        "timestamp",
        s(&p("att.cab")),
        "--ts",
        &format!("{tsa}/rfc3161"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (ok, t) = osslsigncode_ts_ok(&p("att.cab"), &root_pem, &pki.join("tsa-root.pem"));
    assert!(ok, "{t}");

    // --append (nested) with a time stamp, then --replace.
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
        s(&p("signed.cab")),
        "-o",
        s(&p("dual.cab")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (ok, t) = osslsigncode_ok(&p("dual.cab"), &root_pem);
    assert!(ok, "{t}");
    let o = codeseal(&["verify", "--json", s(&p("dual.cab"))]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["signatures"].as_array().map(Vec::len), Some(2), "{v}");
    let o = codeseal(&[
        "sign",
        "--key",
        &key,
        "--cert",
        s(&chain),
        "--replace",
        s(&p("dual.cab")),
        "-o",
        s(&p("replaced.cab")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    cab_accepted(&p("replaced.cab"), &root_pem);

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

    // A cabinet of a multi-cabinet set: a clear error, nothing written.
    let mut set = original.clone();
    set[30] |= 2;
    std::fs::write(p("set.cab"), set).expect("write");
    let o = codeseal(&[
        "sign",
        "--key",
        &key,
        "--cert",
        s(&chain),
        s(&p("set.cab")),
        "-o",
        s(&p("set-signed.cab")),
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("multi-cabinet set"), "{}", text(&o));
    assert!(!p("set-signed.cab").exists());
}

#[test]
fn recursive_batch_picks_up_cabinets() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
    std::fs::copy(env.join("fixtures/pe64.exe"), tree.join("app.exe")).expect("copy");
    std::fs::copy(cab(&env, "stored.cab"), tree.join("data.cab")).expect("copy");
    std::fs::copy(cab(&env, "several.cab"), tree.join("sub/More.CAB")).expect("copy");
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
    assert_eq!(names, ["More.CAB", "app.exe", "data.cab"]);
    for n in ["More.CAB", "data.cab"] {
        cab_accepted(&out.join(n), &pki.join("root.pem"));
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

/// The 40 MiB cabinet signs, verifies and loses its signature in memory that does not grow
/// with its size: the peak RSS stays within a few MiB of the peak on a 70 KiB cabinet.
#[test]
fn a_40_mib_cabinet_in_flat_memory() {
    let env = test_env();
    let pki = env.join("pki");
    let root_pem = pki.join("root.pem");
    let key = format!("file:{}", pki.join("leaf-rsa2048.key").display());
    let chain = pki.join("leaf-rsa2048-chain.pem");
    let dir = tempfile::tempdir().expect("tmp");
    let mut rss = Vec::new();
    for name in ["stored.cab", "large.cab"] {
        let input = cab(&env, name);
        let signed = dir.path().join(format!("signed-{name}"));
        let removed = dir.path().join(format!("removed-{name}"));
        let (o, sign_rss) = codeseal_rss(&[
            "sign",
            "--key",
            &key,
            "--cert",
            s(&chain),
            s(&input),
            "-o",
            s(&signed),
        ]);
        assert!(o.status.success(), "{name} sign: {}", text(&o));
        let (o, verify_rss) = codeseal_rss(&["verify", "--trust", s(&root_pem), s(&signed)]);
        assert!(o.status.success(), "{name} verify: {}", text(&o));
        let (o, remove_rss) = codeseal_rss(&["remove", s(&signed), "-o", s(&removed)]);
        assert!(o.status.success(), "{name} remove: {}", text(&o));
        assert!(
            std::fs::read(&removed).expect("read") == std::fs::read(&input).expect("read"),
            "{name}: remove did not give the input back"
        );
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
        "peak RSS grows with the cabinet: {small} KiB at 70 KiB, {big} KiB at 40 MiB"
    );
}
