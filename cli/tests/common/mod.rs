//! Shared helpers of the CLI end-to-end tests: the test environment made by the project's
//! scripts, and the independent verifiers.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

mod every_verb;
pub use every_verb::*;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root")
        .to_path_buf()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run")
}

/// The fixtures and test PKI (scripts/test-env.sh, idempotent and locked).
pub fn test_env() -> PathBuf {
    let dir = std::env::var_os("CODESEAL_TEST_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/test-env"));
    let st = Command::new("bash")
        .arg(root().join("scripts/test-env.sh"))
        .arg(&dir)
        .status()
        .expect("bash");
    assert!(
        st.success(),
        "scripts/test-env.sh failed: run scripts/setup.sh first"
    );
    dir
}

/// The Python of the venv scripts/setup.sh makes (signify, moto).
pub fn venv_python() -> PathBuf {
    std::env::var_os("CODESEAL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/codeseal/venv")
        })
        .join("bin/python")
}

/// `osslsigncode verify -CAfile ROOT`: success is exit 0 and a `Succeeded` line.
pub fn osslsigncode_ok(file: &Path, root_pem: &Path) -> (bool, String) {
    let o = Command::new("osslsigncode")
        .args(["verify", "-CAfile"])
        .arg(root_pem)
        .arg("-in")
        .arg(file)
        .output()
        .expect("osslsigncode");
    (
        o.status.success()
            && String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == "Succeeded"),
        text(&o),
    )
}

/// signify, strict, trusting only `root_pem`.
pub fn signify_ok(file: &Path, root_pem: &Path) -> (bool, String) {
    let o = Command::new(venv_python())
        .arg(root().join("scripts/signify-verify.py"))
        .arg(file)
        .arg("--trust")
        .arg(root_pem)
        .output()
        .expect("python");
    (o.status.success(), text(&o))
}

/// Issues a code-signing certificate for `csr` from the test intermediate; returns the chain
/// file (leaf, intermediate).
pub fn issue(pki: &Path, csr: &Path, dir: &Path, name: &str) -> PathBuf {
    let ext = dir.join("ext.cnf");
    std::fs::write(&ext, "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n")
        .expect("write");
    let cert = dir.join(format!("{name}.pem"));
    let o = Command::new("openssl")
        .args([
            "x509",
            "-req",
            "-days",
            "30",
            "-sha256",
            "-in",
            s(csr),
            "-CA",
        ])
        .arg(pki.join("intermediate.pem"))
        .arg("-CAkey")
        .arg(pki.join("intermediate.key"))
        .arg("-CAcreateserial")
        .arg("-CAserial")
        .arg(dir.join("serial"))
        .args(["-extfile", s(&ext), "-out", s(&cert)])
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", text(&o));
    let chain = dir.join(format!("{name}-chain.pem"));
    let mut c = std::fs::read(&cert).expect("cert");
    c.extend(std::fs::read(pki.join("intermediate.pem")).expect("intermediate"));
    std::fs::write(&chain, c).expect("chain");
    chain
}

/// Split signing in three `codeseal` runs (digest, sign-digest with only the key, attach),
/// then the result must pass osslsigncode and signify trusting `root_pem`.
pub fn split_sign_and_check(
    codeseal: impl Fn(&[&str]) -> Output,
    key: &str,
    input: &Path,
    chain: &Path,
    work: &Path,
    name: &str,
    root_pem: &Path,
) {
    let req = work.join(format!("{name}.json"));
    let o = codeseal(&["digest", s(input), "--cert", s(chain), "-o", s(&req)]);
    assert!(o.status.success(), "digest: {}", text(&o));
    let sig = work.join(format!("{name}.sig"));
    let o = codeseal(&["sign-digest", "--key", key, s(&req), "-o", s(&sig)]);
    assert!(o.status.success(), "sign-digest: {}", text(&o));
    let ext = input.extension().and_then(|e| e.to_str()).unwrap_or("exe");
    let out = work.join(format!("{name}-split.{ext}"));
    let o = codeseal(&[
        "attach-digest-signature",
        s(input),
        s(&req),
        s(&sig),
        "--cert",
        s(chain),
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "attach-digest-signature: {}", text(&o));
    let (ok, t) = osslsigncode_ok(&out, root_pem);
    assert!(ok, "osslsigncode (split): {t}");
    // signify reads PE files only.
    if matches!(ext, "exe" | "dll" | "sys" | "efi") {
        let (ok, t) = signify_ok(&out, root_pem);
        assert!(ok, "signify (split): {t}");
    }
}

/// A PowerShell script (UTF-8 with BOM, CRLF, non-ASCII text) at `dir/name`.
pub fn write_ps1(dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    let text = "# Gr\u{fc}\u{df}e \u{2014} caf\u{e9}\r\nparam([string]$Name = 'x')\r\nWrite-Host \"Hello $Name\"\r\n";
    std::fs::write(&p, [&[0xef, 0xbb, 0xbf][..], text.as_bytes()].concat()).expect("write");
    p
}

/// A signed script accepted by osslsigncode (trusting `root_pem`) and by `codeseal verify
/// --trust`, and a copy with one character changed rejected by both.
pub fn script_accepted(codeseal: impl Fn(&[&str]) -> Output, file: &Path, root_pem: &Path) {
    accepted_and_tamper_rejected(codeseal, file, root_pem, |bytes| {
        let i = bytes.iter().position(|&b| b == b'H').expect("an H");
        bytes[i] = b'J';
    });
}

/// signify, strict, trusting only the given roots (signers and TSAs alike).
pub fn signify_trusting(file: &Path, roots: &[&Path]) -> (bool, String) {
    let mut cmd = Command::new(venv_python());
    cmd.arg(root().join("scripts/signify-verify.py")).arg(file);
    for r in roots {
        cmd.arg("--trust").arg(r);
    }
    let o = cmd.output().expect("python");
    (o.status.success(), text(&o))
}

/// `osslsigncode verify -ignore-crl` with signer roots `ca` and TSA roots `tsa_ca`. Success
/// is exit 0, a `Succeeded` line, at least one time-stamp line saying ok and none saying
/// failed (osslsigncode exits 0 when only the time-stamp chain fails).
pub fn osslsigncode_ts_ok(file: &Path, ca: &Path, tsa_ca: &Path) -> (bool, String) {
    let o = Command::new("osslsigncode")
        .args(["verify", "-ignore-crl", "-CAfile"])
        .arg(ca)
        .arg("-TSA-CAfile")
        .arg(tsa_ca)
        .arg("-in")
        .arg(file)
        .output()
        .expect("osslsigncode");
    let out = String::from_utf8_lossy(&o.stdout);
    let ok = o.status.success()
        && out.lines().any(|l| l.trim() == "Succeeded")
        && out.contains("Timestamp Server Signature verification: ok")
        && !out.contains("Timestamp Server Signature verification: failed");
    (ok, text(&o))
}

/// The base URL (`http://127.0.0.1:PORT`) of the project's local test TSA
/// (scripts/tsa-server.py with the test PKI's tsa.pem), started once per test process; it
/// stops by itself when the test process is gone.
pub fn local_tsa(pki: &Path) -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let work = tempfile::Builder::new()
            .prefix("codeseal-cli-tsa-")
            .tempdir()
            .expect("tmp")
            .keep();
        let port_file = work.join("port");
        let log = std::fs::File::create(work.join("tsa.log")).expect("log");
        // Kept for the life of the test process; the server exits when the process is gone
        // (--exit-with-parent).
        static CHILD: std::sync::OnceLock<std::sync::Mutex<std::process::Child>> =
            std::sync::OnceLock::new();
        let child = Command::new(venv_python())
            .arg(root().join("scripts/tsa-server.py"))
            .arg("--pki")
            .arg(pki)
            .arg("--workdir")
            .arg(&work)
            .args(["--port", "0", "--exit-with-parent"])
            .arg(std::process::id().to_string())
            .arg("--port-file")
            .arg(&port_file)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting scripts/tsa-server.py");
        let _ = CHILD.set(std::sync::Mutex::new(child));
        for _ in 0..100 {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                if !p.trim().is_empty() {
                    return format!("http://127.0.0.1:{}", p.trim());
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "the test TSA did not start; see {}",
            work.join("tsa.log").display()
        );
    })
    .clone()
}
