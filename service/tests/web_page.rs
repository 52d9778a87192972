//! The web page end to end: `codeseal-service serve --embedded` on 127.0.0.1, headless Chromium
//! (service/tests/web/page.mjs, playwright-core) enters the API key, uploads a PE fixture in
//! several parts, waits for the job to be done and downloads the signed file; osslsigncode and
//! signify must accept it, trusting only the test root, and its SHA-256 must be the one the page
//! showed.
//!
//! Needs Chromium, Node >= 20 and the page test's node modules: scripts/web-setup.sh installs
//! them (scripts/setup.sh calls it); a missing tool fails the test. With
//! `CODESEAL_UPDATE_SCREENSHOT=1` the page's screenshot is copied to docs/img/service-page.png.

use std::{
    fs,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

mod common;
use common::{osslsigncode_ok, root, signify_ok, test_env, text};

/// How long the page may take for the job (the script's own wait).
const JOB_SECONDS: u64 = 120;
/// A hard limit for the whole browser run (the script also stops itself before this).
const NODE_LIMIT: Duration = Duration::from_secs(JOB_SECONDS + 240);
/// How long the service may take to bind and write its port file.
const START_LIMIT: Duration = Duration::from_secs(60);
/// A small part size, so that the page sends the fixture in several parts (three at a time).
const PART_SIZE: u64 = 16 * 1024;

/// The end of a log file, for failure messages.
fn tail(path: &Path) -> String {
    let t = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Chromium, Node and the node modules (scripts/web-setup.sh: installs what it may, checks all).
fn web_setup() {
    let o = Command::new("bash")
        .arg(root().join("scripts/web-setup.sh"))
        .output()
        .expect("bash");
    assert!(
        o.status.success(),
        "scripts/web-setup.sh failed: the web page test needs Chromium (/usr/bin/chromium, Debian's \
         chromium package), Node >= 20 with npm, and `npm ci --prefix service/tests/web`:\n{}",
        text(&o)
    );
}

/// A child process that is killed and reaped when dropped, also when the test panics.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Reaped {
    /// Waits at most `limit`; `None` if it was still running (it is then killed).
    fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.0.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = self.0.kill();
                let _ = self.0.wait();
                return None;
            }
            sleep(Duration::from_millis(100));
        }
    }
}

/// Waits until the service has written its port file; fails if it exits or takes too long.
fn wait_port(server: &mut Reaped, port_file: &Path, log: &Path) -> u16 {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if let Some(port) = fs::read_to_string(port_file)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
        {
            return port;
        }
        if let Some(st) = server.0.try_wait().expect("try_wait") {
            panic!(
                "codeseal-service exited ({st}) before it was ready:\n{}",
                tail(log)
            );
        }
        assert!(
            Instant::now() < deadline,
            "codeseal-service wrote no port file within {START_LIMIT:?}:\n{}",
            tail(log)
        );
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn web_page_uploads_signs_and_downloads() {
    web_setup();
    let env = test_env();
    let pki = env.join("pki");
    // 115 KiB: eight parts.
    let fixture = env.join("fixtures/unstripped.exe");
    let root_pem = pki.join("root.pem");

    let tmp = tempfile::Builder::new()
        .prefix("codeseal-web-")
        .tempdir()
        .expect("tempdir");
    let data = tmp.path().join("data");
    fs::create_dir(&data).expect("data dir");
    let port_file = tmp.path().join("port");
    let server_log = tmp.path().join("server.log");
    let out = tmp.path().join("out");

    let log = fs::File::create(&server_log).expect("server log");
    let mut server = Reaped(
        Command::new(env!("CARGO_BIN_EXE_codeseal-service"))
            .arg("serve")
            .arg("--embedded")
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--port-file"])
            .arg(&port_file)
            .arg("--key")
            .arg(format!(
                "file:{}",
                pki.join("leaf-p256.key").to_str().expect("utf8")
            ))
            .arg("--cert")
            .arg(pki.join("leaf-p256-chain.pem"))
            .arg("--trust")
            .arg(&root_pem)
            .arg("--part-size")
            .arg(PART_SIZE.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start codeseal-service"),
    );
    let port = wait_port(&mut server, &port_file, &server_log);
    let base = format!("http://127.0.0.1:{port}/");
    let key_file = data.join("api-key");
    assert!(
        fs::read_to_string(&key_file)
            .map(|k| !k.trim().is_empty())
            .unwrap_or(false),
        "--embedded without --api-keys wrote no API key to {}:\n{}",
        key_file.display(),
        tail(&server_log)
    );

    // The page served is the one in the source tree, as HTML.
    let mut res = ureq::get(&base).call().expect("GET /");
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/html"),
        "GET / content-type: {content_type}"
    );
    let served = res.body_mut().read_to_string().expect("page body");
    assert_eq!(
        served,
        include_str!("../static/index.html"),
        "GET / is not service/static/index.html"
    );

    // The browser run.
    let shot = tmp.path().join("service-page.png");
    let node_log = tmp.path().join("node.log");
    let nlog = fs::File::create(&node_log).expect("node log");
    let mut node = Reaped(
        Command::new("node")
            .arg(root().join("service/tests/web/page.mjs"))
            .arg(&base)
            .arg(&fixture)
            .arg(&out)
            .arg(&shot)
            .env("CODESEAL_API_KEY_FILE", &key_file)
            .env("CODESEAL_PAGE_TIMEOUT", JOB_SECONDS.to_string())
            .stdin(Stdio::null())
            .stdout(nlog.try_clone().expect("log"))
            .stderr(nlog)
            .spawn()
            .expect("node (run scripts/web-setup.sh)"),
    );
    let status = node.wait_for(NODE_LIMIT);
    let node_out = fs::read_to_string(&node_log).unwrap_or_default();
    println!("{node_out}");
    assert!(
        status.is_some_and(|s| s.success()),
        "page.mjs {}:\n{node_out}\n--- service log:\n{}",
        status.map_or_else(
            || format!("still running after {NODE_LIMIT:?}"),
            |s| s.to_string()
        ),
        tail(&server_log)
    );

    // What came down is signed, valid for both verifiers, and the file the page described.
    let downloaded = out.join("downloaded.exe");
    let bytes = fs::read(&downloaded).expect("downloaded.exe");
    let original = fs::read(&fixture).expect("fixture");
    assert!(
        bytes.len() > original.len(),
        "the download ({} bytes) is not larger than the unsigned fixture ({} bytes)",
        bytes.len(),
        original.len()
    );
    let (ok, t) = osslsigncode_ok(&downloaded, &root_pem);
    assert!(ok, "osslsigncode: {t}");
    let (ok, t) = signify_ok(&downloaded, &root_pem);
    assert!(ok, "signify: {t}");

    let shown: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("page.json")).expect("page.json"))
            .expect("page.json is JSON");
    assert_eq!(shown["status"], "done");
    let parts = (original.len() as u64).div_ceil(PART_SIZE);
    assert!(
        parts > 1 && shown["part_puts"].as_u64().unwrap_or(0) >= parts,
        "the page sent {} part PUTs for {parts} parts",
        shown["part_puts"]
    );
    assert_eq!(
        shown["sha256"].as_str().map(str::to_ascii_lowercase),
        Some(hex::encode(Sha256::digest(&bytes))),
        "the page's #sha256 is not the SHA-256 of the downloaded file"
    );
    let digest = shown["authenticode_digest"].as_str().unwrap_or_default();
    assert!(
        digest.len() >= 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
        "the page shows no Authenticode digest: {digest:?}"
    );
    let report = shown["report"].as_str().unwrap_or_default();
    assert!(
        report.contains("valid") && !report.contains("NOT valid"),
        "the page's verify report: {report}"
    );

    assert!(
        fs::metadata(&shot).map(|m| m.len() > 0).unwrap_or(false),
        "no screenshot at {}",
        shot.display()
    );
    if std::env::var_os("CODESEAL_UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        let docs = root().join("docs/img/service-page.png");
        fs::create_dir_all(docs.parent().expect("docs/img")).expect("docs/img");
        fs::copy(&shot, &docs).expect("copy screenshot");
        println!("screenshot copied to {}", docs.display());
    }

    drop(server);
}
