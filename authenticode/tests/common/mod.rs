//! Shared set-up for integration tests: the project's fixtures and test PKI (made by
//! `scripts/test-env.sh`), and the independent verifiers (osslsigncode, signify).
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, OnceLock},
};

use codeseal_local::LocalKey;
use codeseal_signer::SigningIdentity;

mod pipeline;
#[allow(unused_imports)] // not every suite uses the pipeline scenarios
pub use pipeline::*;

pub struct TestEnv {
    pub fixtures: PathBuf,
    pub pki: PathBuf,
    pub python: PathBuf,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The test environment, built on first use by `scripts/test-env.sh` (idempotent, locked).
pub fn env() -> &'static TestEnv {
    static ENV: OnceLock<TestEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let root = workspace_root();
        let dir = std::env::var_os("CODESEAL_TEST_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/test-env"));
        let st = Command::new("bash")
            .arg(root.join("scripts/test-env.sh"))
            .arg(&dir)
            .status()
            .expect("running scripts/test-env.sh (needs bash, openssl, mingw-w64: run scripts/setup.sh)");
        assert!(st.success(), "scripts/test-env.sh failed: run scripts/setup.sh first");
        let venv = std::env::var_os("CODESEAL_VENV").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/codeseal/venv")
        });
        let python = venv.join("bin/python");
        assert!(
            python.exists(),
            "no Python venv with signify at {}: run scripts/setup.sh",
            venv.display()
        );
        TestEnv {
            fixtures: dir.join("fixtures"),
            pki: dir.join("pki"),
            python,
        }
    })
}

pub const FIXTURES: [&str; 7] = [
    "pe32.exe",
    "pe64.exe",
    "pe32.dll",
    "pe64.dll",
    "overlay.exe",
    "oddsize.exe",
    "unstripped.exe",
];
pub const LEAVES: [&str; 3] = ["leaf-rsa2048", "leaf-rsa4096", "leaf-p256"];

pub fn fixture(name: &str) -> PathBuf {
    env().fixtures.join(name)
}

pub fn pki(name: &str) -> PathBuf {
    env().pki.join(name)
}

pub fn root() -> PathBuf {
    pki("root.pem")
}

/// The signing identity of a test leaf (key file + chain file).
pub fn identity(leaf: &str) -> SigningIdentity {
    let key = LocalKey::from_file(&pki(&format!("{leaf}.key")), None)
        .expect("key")
        .key;
    let chain =
        codeseal_keys::load_certificates(&pki(&format!("{leaf}-chain.pem"))).expect("chain");
    SigningIdentity::new(Arc::new(key), chain).expect("identity")
}

/// Runs `cmd` and returns its status and its stdout + stderr as text.
fn run_text(cmd: &mut Command, what: &str) -> (std::process::ExitStatus, String) {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (run scripts/setup.sh)"));
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status, out)
}

/// `osslsigncode verify -CAfile ROOT`: success is exit 0 *and* a `Succeeded` line.
pub fn osslsigncode_verify(file: &Path, root: &Path) -> (bool, String) {
    osslsigncode_verify_with(Path::new("osslsigncode"), file, root)
}

/// The newer osslsigncode (>= 2.10, which signs JScript) that `scripts/setup.sh` builds
/// from Debian's source package into `~/.cache/codeseal/osslsigncode-2.14` beside the
/// system's 2.9 (`scripts/build-osslsigncode-new.sh`); `CODESEAL_OSSLSIGNCODE_NEW` names
/// another binary. Missing or too old: the test fails (as with a missing osslsigncode).
pub fn osslsigncode_new() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = std::env::var_os("CODESEAL_OSSLSIGNCODE_NEW")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                    .join(".cache/codeseal/osslsigncode-2.14/bin/osslsigncode")
            });
        let hint = "run scripts/setup.sh (scripts/build-osslsigncode-new.sh builds \
                    osslsigncode 2.14 there) or set CODESEAL_OSSLSIGNCODE_NEW";
        let out = Command::new(&bin)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "osslsigncode >= 2.10 not found at {}: {e}: {hint}",
                    bin.display()
                )
            });
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let version: Vec<u32> = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("osslsigncode "))
            .and_then(|l| l.split([',', ' ']).next())
            .map(|v| v.split('.').filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default();
        assert!(
            version >= vec![2, 10],
            "{} is not osslsigncode >= 2.10 (JScript signing) but {:?}: {hint}",
            bin.display(),
            text.lines().next()
        );
        bin
    })
}

/// `BIN verify -CAfile ROOT` with a given osslsigncode binary.
pub fn osslsigncode_verify_with(bin: &Path, file: &Path, root: &Path) -> (bool, String) {
    let (st, out) = run_text(
        Command::new(bin)
            .args(["verify", "-CAfile"])
            .arg(root)
            .arg("-in")
            .arg(file),
        "osslsigncode",
    );
    (
        st.success() && out.lines().any(|l| l.trim() == "Succeeded"),
        out,
    )
}

/// signify, strict, trusting only `root`.
pub fn signify_verify(file: &Path, root: &Path) -> (bool, String) {
    signify_trusting(file, &[root.to_path_buf()])
}

/// signify, strict, trusting only `roots`.
fn signify_trusting(file: &Path, roots: &[PathBuf]) -> (bool, String) {
    let mut cmd = Command::new(&env().python);
    cmd.arg(workspace_root().join("scripts/signify-verify.py"))
        .arg(file);
    for r in roots {
        cmd.arg("--trust").arg(r);
    }
    let (st, out) = run_text(&mut cmd, "python");
    assert_ne!(st.code(), Some(2), "signify-verify usage error: {out}");
    (st.success(), out)
}

/// Signs with osslsigncode itself (for digest comparisons and "files signed by others").
pub fn osslsigncode_sign(input: &Path, output: &Path, leaf: &str, digest: &str) {
    osslsigncode_sign_with(Path::new("osslsigncode"), input, output, leaf, digest)
}

/// Signs with a given osslsigncode binary.
pub fn osslsigncode_sign_with(bin: &Path, input: &Path, output: &Path, leaf: &str, digest: &str) {
    run_osslsigncode_sign(bin, input, output, leaf, digest, None)
}

/// Signs with osslsigncode (SHA-256), its built-in TSA time-stamping the signature at
/// `stamp` (Unix seconds) with the test TSA's key: back-dated stamps from an independent
/// signer.
pub fn osslsigncode_sign_stamped(input: &Path, output: &Path, leaf: &str, stamp: u64) {
    run_osslsigncode_sign(
        Path::new("osslsigncode"),
        input,
        output,
        leaf,
        "sha256",
        Some(stamp),
    )
}

fn run_osslsigncode_sign(
    bin: &Path,
    input: &Path,
    output: &Path,
    leaf: &str,
    digest: &str,
    stamp: Option<u64>,
) {
    let _ = std::fs::remove_file(output);
    let mut cmd = Command::new(bin);
    cmd.arg("sign")
        .arg("-certs")
        .arg(pki(&format!("{leaf}-chain.pem")))
        .arg("-key")
        .arg(pki(&format!("{leaf}.key")))
        .args(["-h", digest]);
    if let Some(t) = stamp {
        cmd.arg("-TSA-certs")
            .arg(pki("tsa-chain.pem"))
            .arg("-TSA-key")
            .arg(pki("tsa.key"))
            .arg("-TSA-time")
            .arg(t.to_string());
    }
    let o = cmd
        .arg("-in")
        .arg(input)
        .arg("-out")
        .arg(output)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", bin.display()));
    assert!(
        o.status.success(),
        "osslsigncode sign failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

pub fn sha256_file(p: &Path) -> Vec<u8> {
    codeseal_signer::DigestAlgorithm::Sha256.digest(&std::fs::read(p).expect("read"))
}

/// The base URL (`http://127.0.0.1:PORT`) of the project's local test TSA
/// (`scripts/tsa-server.py`), started once per test process; it stops by itself when the
/// test process is gone.
pub fn tsa() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let e = env();
        let work = tempfile::Builder::new()
            .prefix("codeseal-tsa-")
            .tempdir()
            .expect("tmp")
            .keep();
        let port_file = work.join("port");
        let log = std::fs::File::create(work.join("tsa.log")).expect("log");
        // Kept for the life of the test process; the server exits when the process is gone.
        static CHILD: OnceLock<std::sync::Mutex<std::process::Child>> = OnceLock::new();
        let child = Command::new(&e.python)
            .arg(workspace_root().join("scripts/tsa-server.py"))
            .arg("--pki")
            .arg(&e.pki)
            .arg("--workdir")
            .arg(&work)
            .args(["--port", "0", "--slow-seconds", "20", "--exit-with-parent"])
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
}

/// `osslsigncode verify` with the TSA root trusted too; success requires the time-stamp
/// line to say ok (osslsigncode exits 0 when only the TSA chain fails).
pub fn osslsigncode_verify_ts(file: &Path) -> (bool, String) {
    let (st, out) = run_text(
        Command::new("osslsigncode")
            .args(["verify", "-CAfile"])
            .arg(root())
            .arg("-TSA-CAfile")
            .arg(pki("tsa-root.pem"))
            .arg("-in")
            .arg(file),
        "osslsigncode",
    );
    let ok = st.success()
        && out.lines().any(|l| l.trim() == "Succeeded")
        && out.contains("Timestamp Server Signature verification: ok")
        && !out.contains("Timestamp Server Signature verification: failed");
    (ok, out)
}

/// signify, trusting the test root and the TSA root.
pub fn signify_verify_ts(file: &Path) -> (bool, String) {
    signify_trusting(file, &[root(), pki("tsa-root.pem")])
}

/// Our verdict with the test roots trusted (signers: root.pem; TSAs: tsa-root.pem).
pub fn ours_trusting_test_roots(file: &Path) -> codeseal_authenticode::VerifyReport {
    let load = |n: &str| codeseal_keys::load_certificates(&pki(n)).expect("certs");
    codeseal_authenticode::Verifier::new(load("root.pem"))
        .expect("anchors")
        .with_tsa_anchors(load("tsa-root.pem"))
        .verify_file(file)
        .expect("verify")
}

/// Integrity-only verification (digests and signatures, no trust decision), as the tests of
/// structure need it.
pub fn verify_file(
    file: &Path,
) -> codeseal_authenticode::Result<codeseal_authenticode::VerifyReport> {
    codeseal_authenticode::Verifier::integrity_only().verify_file(file)
}

/// Integrity-only verification of a PE file in memory.
pub fn verify<R: std::io::Read + std::io::Seek>(
    r: &mut R,
) -> codeseal_authenticode::Result<codeseal_authenticode::VerifyReport> {
    codeseal_authenticode::Verifier::integrity_only().verify_reader(
        codeseal_authenticode::FileKind::Pe,
        r,
        Path::new("input"),
    )
}
