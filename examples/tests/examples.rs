//! The examples run as another program would run them, with the project's test PKI
//! (`scripts/test-env.sh`): memory-to-memory signing of a PE file and a script (osslsigncode
//! accepts the results), and typed findings for a valid, a modified and an unsigned file.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn test_env() -> PathBuf {
    let dir = std::env::var_os("CODESEAL_TEST_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/test-env"));
    let st = Command::new("bash")
        .arg(root().join("scripts/test-env.sh"))
        .arg(&dir)
        .status()
        .expect("scripts/test-env.sh");
    assert!(
        st.success(),
        "scripts/test-env.sh failed (run scripts/setup.sh)"
    );
    dir
}

/// An example binary, built by `cargo test` beside this test's own binary.
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    Command::new(dir.join("examples").join(name))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn osslsigncode_ok(file: &Path, root_pem: &Path) -> bool {
    let o = Command::new("osslsigncode")
        .args(["verify", "-CAfile"])
        .arg(root_pem)
        .arg("-in")
        .arg(file)
        .output()
        .expect("osslsigncode (run scripts/setup.sh)");
    o.status.success()
        && String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.trim() == "Succeeded")
}

#[test]
fn memory_to_memory_and_verify_findings() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("deploy.ps1");
    std::fs::write(&script, b"\xef\xbb\xbfWrite-Host 'Hello'\r\n").expect("write");
    for (input, out) in [
        (
            env.join("fixtures/pe64.exe"),
            dir.path().join("pe64-signed.exe"),
        ),
        (script.clone(), dir.path().join("deploy-signed.ps1")),
    ] {
        let o = example("memory_to_memory")
            .arg(pki.join("leaf-rsa2048.key"))
            .arg(pki.join("leaf-rsa2048-chain.pem"))
            .arg(pki.join("root.pem"))
            .arg(&input)
            .arg(&out)
            .output()
            .expect("memory_to_memory");
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            osslsigncode_ok(&out, &pki.join("root.pem")),
            "{}",
            out.display()
        );

        let o = example("verify_findings")
            .arg(pki.join("root.pem"))
            .arg(&out)
            .output()
            .expect("verify_findings");
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(text(&o).contains("valid (Anchors)"), "{}", text(&o));
    }
    // One changed byte in the PE's image: invalid, with the typed code.
    let mut b = std::fs::read(dir.path().join("pe64-signed.exe")).expect("read");
    b[0x400] ^= 1;
    let bad = dir.path().join("bad.exe");
    std::fs::write(&bad, b).expect("write");
    let o = example("verify_findings")
        .arg(pki.join("root.pem"))
        .arg(&bad)
        .output()
        .expect("verify_findings");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("ImageDigestMismatch"), "{}", text(&o));
    // Unsigned: exit 2; a root that did not issue the signer: invalid (Chain).
    let o = example("verify_findings")
        .arg(pki.join("root.pem"))
        .arg(env.join("fixtures/pe64.exe"))
        .output()
        .expect("verify_findings");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = example("verify_findings")
        .arg(pki.join("tsa-root.pem"))
        .arg(dir.path().join("pe64-signed.exe"))
        .arg("--json")
        .output()
        .expect("verify_findings");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["trust"], "anchors");
    assert!(
        v["signatures"][0]["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .any(|f| f["code"] == "chain"),
        "{v}"
    );
}
