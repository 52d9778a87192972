//! Every verb of the CLI on scripts: sign, verify, info, extract, remove, attach, timestamp,
//! split signing and `--recursive` batches that mix PE files and scripts; each signed script
//! is checked by osslsigncode 2.9 (it verifies the PowerShell family and .mof).
mod common;

use common::*;

#[test]
fn every_verb_on_a_powershell_script() {
    let env = test_env();
    let pki = Pki::new(&env);
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let input = write_ps1(dir.path(), "exec.ps1");
    every_verb(
        &Format {
            ext: "ps1",
            sign_args: &[],
            kind: "PowerShell",
            verify_json: &[("checksum_in_header", serde_json::Value::Null)],
            info: &[
                "PowerShell script",
                "UTF-8 with BOM",
                "Signature block: bytes",
            ],
            info_json: &|_| {},
            accepted: &|file, root_pem| script_accepted(codeseal, file, root_pem),
            round_trip: RoundTrip::SameBytes,
            nested: true,
            replace: false,
        },
        &pki,
        &input,
        dir.path(),
    );

    // An unsupported file: a clear error, nothing written.
    std::fs::write(p("notes.txt"), b"hello").expect("write");
    sign_fails_clearly(
        &pki,
        &p("notes.txt"),
        &p("n.txt"),
        "not a script extension codeseal signs",
    );
    let o = codeseal(&["verify", s(&p("notes.txt"))]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("unsupported file"), "{}", text(&o));
}

#[test]
fn recursive_batch_picks_up_scripts_and_pe_files() {
    let env = test_env();
    let pki = Pki::new(&env);
    let dir = tempfile::tempdir().expect("tmp");
    let names = ["app.exe", "install.ps1", "module.psm1", "setup.vbs"];
    let out = recursive_batch(
        &pki,
        dir.path(),
        |tree| {
            std::fs::copy(env.join("fixtures/pe64.exe"), tree.join("app.exe")).expect("copy");
            write_ps1(tree, "install.ps1");
            write_ps1(&tree.join("sub"), "module.psm1");
            std::fs::write(tree.join("sub/setup.vbs"), b"WScript.Echo \"Hi\"\r\n").expect("write");
            std::fs::write(tree.join("sub/readme.txt"), b"not signed").expect("write");
        },
        &names,
    );
    for n in &names {
        let o = codeseal(&["verify", "--trust", s(&pki.root_pem), s(&out.join(n))]);
        assert!(o.status.success(), "{n}: {}", text(&o));
    }
    let (ok, t) = osslsigncode_ok(&out.join("module.psm1"), &pki.root_pem);
    assert!(ok, "{t}");
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
    let pki = Pki::new(&env);
    let dir = tempfile::tempdir().expect("tmp");
    let mut rss = Vec::new();
    for mib in [8usize, 256] {
        let input = dir.path().join(format!("big{mib}.ps1"));
        let signed = dir.path().join(format!("big{mib}-signed.ps1"));
        let removed = dir.path().join(format!("big{mib}-removed.ps1"));
        write_big_ps1(&input, mib);
        let peak = sign_verify_remove_rss(&pki, &[], &input, &signed, &removed);
        assert!(
            same_file(&input, &removed),
            "{mib} MiB: remove did not give the input back"
        );
        if mib == 256 {
            let (ok, log) = osslsigncode_ok(&signed, &pki.root_pem);
            assert!(ok, "osslsigncode rejects the 256 MiB script: {log}");
        }
        rss.push((mib, peak));
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
