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

/// A PowerShell script of `mib` MiB (UTF-8 with BOM, CRLF, non-ASCII on every line),
/// written a line at a time.
fn write_big_ps1(path: &std::path::Path, mib: usize) {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    w.write_all(&[0xef, 0xbb, 0xbf]).expect("write");
    let mut n = 3;
    let mut i = 0u64;
    while n < mib << 20 {
        let line = format!(
            "Write-Host \"line {i}: Gr\u{fc}\u{df}e \u{2014} \u{65e5}\u{672c} \u{1f600}\"\r\n"
        );
        w.write_all(line.as_bytes()).expect("write");
        n += line.len();
        i += 1;
    }
    w.flush().expect("flush");
}

/// The same bytes, compared a buffer at a time.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::io::Read;
    let (mut x, mut y) = (
        std::fs::File::open(a).expect("open"),
        std::fs::File::open(b).expect("open"),
    );
    let (mut p, mut q) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = x.read(&mut p).expect("read");
        if n == 0 {
            return y.read(&mut q).expect("read") == 0;
        }
        if y.read_exact(&mut q[..n]).is_err() || p[..n] != q[..n] {
            return false;
        }
    }
}

/// Issue #15: a 256 MiB script signs, verifies (codeseal and osslsigncode) and loses its
/// signature again in memory that does not grow with its size: codeseal's peak RSS on a
/// 256 MiB script stays within a few MiB of its peak on an 8 MiB one (it held the whole
/// script, about three times over, before). No timing is asserted.
#[test]
fn a_256_mib_script_signs_and_verifies_in_flat_memory() {
    let env = test_env();
    let pki = env.join("pki");
    let root_pem = pki.join("root.pem");
    let key = format!("file:{}", pki.join("leaf-rsa2048.key").display());
    let chain = pki.join("leaf-rsa2048-chain.pem");
    let dir = tempfile::tempdir().expect("tmp");
    let mut rss = Vec::new();
    for mib in [8usize, 256] {
        let input = dir.path().join(format!("big{mib}.ps1"));
        let signed = dir.path().join(format!("big{mib}-signed.ps1"));
        let removed = dir.path().join(format!("big{mib}-removed.ps1"));
        write_big_ps1(&input, mib);
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
        assert!(o.status.success(), "{mib} MiB sign: {}", text(&o));
        let (o, verify_rss) = codeseal_rss(&["verify", "--trust", s(&root_pem), s(&signed)]);
        assert!(o.status.success(), "{mib} MiB verify: {}", text(&o));
        let (o, remove_rss) = codeseal_rss(&["remove", s(&signed), "-o", s(&removed)]);
        assert!(o.status.success(), "{mib} MiB remove: {}", text(&o));
        assert!(
            same_file(&input, &removed),
            "{mib} MiB: remove did not give the input back"
        );
        if mib == 256 {
            let (ok, log) = osslsigncode_ok(&signed, &root_pem);
            assert!(ok, "osslsigncode rejects the 256 MiB script: {log}");
        }
        eprintln!("{mib} MiB: peak RSS sign {sign_rss} KiB, verify {verify_rss} KiB, remove {remove_rss} KiB");
        rss.push((mib, sign_rss.max(verify_rss).max(remove_rss)));
        for p in [&input, &signed, &removed] {
            std::fs::remove_file(p).expect("rm");
        }
    }
    let (small, big) = (rss[0].1, rss[1].1);
    assert!(
        big < 64 << 10,
        "peak RSS {big} KiB on a 256 MiB script: the script is held in memory"
    );
    assert!(
        big < small + (8 << 10),
        "peak RSS grows with the script: {small} KiB at 8 MiB, {big} KiB at 256 MiB"
    );
}
