//! Revocation checking against real peers: a CA run by `openssl ca` (scripts/revocation-pki.sh),
//! its CRL served over HTTP and OCSP answered by `openssl ocsp` from the same database
//! (scripts/revocation-server.py), both on 127.0.0.1; files signed by osslsigncode with
//! leaves of that CA and time-stamped by osslsigncode's built-in TSA with a TSA certificate of
//! the same CA (so the time-stamp chain is checked too). A hostile server of this test answers
//! garbage, a huge body or slowly, and counts connections.
mod common;

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use codeseal_authenticode::{
    revocation::{RevocationOptions, RevocationPolicy, RevocationSource, RevocationState},
    verify::VerifyReport,
    FindingCode, Verifier,
};
use common::*;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root")
        .to_path_buf()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The test's hostile HTTP server: /garbage, /huge, /slow; counts every connection.
struct Hostile {
    port: u16,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

fn serve_hostile(mut s: TcpStream, stop: &AtomicBool) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = vec![0u8; 8192];
    let mut got = 0;
    // Read the request head (bounded).
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..got]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    match path.as_str() {
        "/huge" => {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: 104857600\r\n\r\n",
            );
            let chunk = vec![0x30u8; 64 << 10];
            // At most 100 MiB, until the client hangs up.
            for _ in 0..1600 {
                if stop.load(Ordering::Relaxed) || s.write_all(&chunk).is_err() {
                    break;
                }
            }
        }
        "/slow" => {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: 100\r\n\r\n",
            );
            // One byte every 500 ms: 50 s for the body, far beyond the client's timeout.
            for _ in 0..100 {
                if stop.load(Ordering::Relaxed) || s.write_all(b"0").is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(500));
            }
        }
        _ => {
            let body = b"\x30\x82\xff\xffthis is not an OCSP response or a CRL";
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            let _ = s.write_all(body);
        }
    }
}

impl Hostile {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let port = l.local_addr().expect("addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, st) = (connections.clone(), stop.clone());
        let thread = thread::spawn(move || {
            // Polls until stopped (each test stops its server when it ends).
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        c.fetch_add(1, Ordering::SeqCst);
                        let _ = s.set_nonblocking(false);
                        let st2 = st.clone();
                        thread::spawn(move || serve_hostile(s, &st2));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            connections,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The CA, its server and the hostile server; everything stopped and removed on drop.
struct World {
    dir: tempfile::TempDir,
    server: Child,
    port: u16,
    hostile: Hostile,
    revoked_before_at: u64,
    revoked_after_at: u64,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl World {
    fn new() -> Self {
        let _ = env(); // the fixtures
        let dir = tempfile::Builder::new()
            .prefix("codeseal-revocation-")
            .tempdir()
            .expect("tmp");
        let pki = dir.path().join("pki");
        std::fs::create_dir_all(&pki).expect("mkdir");
        let port_file = dir.path().join("port");
        let mut server = Command::new("python3")
            .arg(workspace_root().join("scripts/revocation-server.py"))
            .arg("--dir")
            .arg(&pki)
            .arg("--port-file")
            .arg(&port_file)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3");
        let mut port = None;
        for _ in 0..200 {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                port = p.trim().parse::<u16>().ok();
                break;
            }
            thread::sleep(Duration::from_millis(25));
        }
        let Some(port) = port else {
            let _ = server.kill();
            panic!("scripts/revocation-server.py did not start");
        };
        let hostile = Hostile::start();
        let dead = free_port();
        let o = Command::new("bash")
            .arg(workspace_root().join("scripts/revocation-pki.sh"))
            .arg(&pki)
            .arg(port.to_string())
            .arg(dead.to_string())
            .arg(hostile.port.to_string())
            .output()
            .expect("bash");
        if !o.status.success() {
            let _ = server.kill();
            panic!(
                "scripts/revocation-pki.sh failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let times = std::fs::read_to_string(pki.join("times.env")).expect("times.env");
        let get = |k: &str| -> u64 {
            times
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{k} in times.env"))
        };
        World {
            revoked_before_at: get("REVOKED_BEFORE_AT"),
            revoked_after_at: get("REVOKED_AFTER_AT"),
            dir,
            server,
            port,
            hostile,
        }
    }

    fn pki(&self, name: &str) -> PathBuf {
        self.dir.path().join("pki").join(name)
    }

    /// pe64.exe signed by `leaf`, time-stamped at `stamp` (Unix seconds) when given.
    fn sign(&self, leaf: &str, stamp: Option<u64>) -> PathBuf {
        let out = self.dir.path().join(format!(
            "{leaf}-{}.exe",
            stamp.map_or("unstamped".to_string(), |s| s.to_string())
        ));
        let mut cmd = Command::new("osslsigncode");
        cmd.arg("sign")
            .arg("-certs")
            .arg(self.pki(&format!("{leaf}-chain.pem")))
            .arg("-key")
            .arg(self.pki(&format!("{leaf}.key")))
            .args(["-h", "sha256"]);
        if let Some(t) = stamp {
            cmd.arg("-TSA-certs")
                .arg(self.pki("tsa-chain.pem"))
                .arg("-TSA-key")
                .arg(self.pki("tsa.key"))
                .arg("-TSA-time")
                .arg(t.to_string());
        }
        let o = cmd
            .arg("-in")
            .arg(fixture("pe64.exe"))
            .arg("-out")
            .arg(&out)
            .output()
            .expect("osslsigncode");
        assert!(
            o.status.success(),
            "osslsigncode: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    }

    fn ca(&self) -> Vec<x509_cert::Certificate> {
        codeseal_keys::load_certificates(&self.pki("ca.pem")).expect("ca")
    }

    fn verifier(&self, rev: RevocationOptions) -> Verifier {
        Verifier::new(self.ca())
            .expect("anchors")
            .with_revocation(rev.with_timeout(Duration::from_secs(2)))
    }

    fn verify(&self, file: &Path, policy: RevocationPolicy) -> VerifyReport {
        self.verifier(RevocationOptions::new(policy))
            .verify_file(file)
            .expect("report")
    }

    /// Requests the CRL/OCSP server has answered, per path.
    fn hits(&self, path: &str) -> usize {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.write_all(b"GET /hits HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("write");
        let mut t = String::new();
        s.read_to_string(&mut t).expect("read");
        let body = t.split("\r\n\r\n").nth(1).unwrap_or_default();
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{path} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

fn codes(r: &VerifyReport) -> (Vec<FindingCode>, Vec<FindingCode>) {
    let s = &r.signatures[0];
    (
        s.errors.iter().map(|f| f.code).collect(),
        s.warnings.iter().map(|f| f.code).collect(),
    )
}

const DAY: u64 = 86400;

#[test]
fn good_revoked_before_and_after_the_time_stamp() {
    let w = World::new();
    // Good: OCSP answers first (delegated responder), for the leaf and for the TSA.
    let good = w.sign("good", Some(now() - DAY));
    for policy in [RevocationPolicy::Hard, RevocationPolicy::Soft] {
        let r = w.verify(&good, policy);
        assert!(r.valid, "{r:#?}");
        let chain = r.signatures[0].chain.as_ref().expect("chain");
        assert_eq!(chain.revocation.len(), 1, "{chain:#?}");
        let rv = &chain.revocation[0];
        assert_eq!(rv.state, RevocationState::Good);
        assert_eq!(rv.source, Some(RevocationSource::Ocsp));
        assert_eq!(
            rv.origin.as_deref(),
            Some(format!("http://127.0.0.1:{}/ocsp", w.port).as_str())
        );
        let tsa_chain = r.signatures[0].timestamps[0]
            .chain
            .as_ref()
            .expect("TSA chain");
        assert_eq!(tsa_chain.revocation.len(), 1);
        assert_eq!(tsa_chain.revocation[0].state, RevocationState::Good);
    }
    // Revoked 3 days ago, stamped 1 day ago: invalid under both policies.
    let before = w.sign("revoked-before", Some(now() - DAY));
    for policy in [RevocationPolicy::Hard, RevocationPolicy::Soft] {
        let r = w.verify(&before, policy);
        assert!(!r.valid, "{r:#?}");
        assert!(codes(&r).0.contains(&FindingCode::Revoked), "{r:#?}");
        let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
        assert_eq!(rv.state, RevocationState::Revoked);
        assert_eq!(rv.revoked_at_unix, Some(w.revoked_before_at));
        assert_eq!(rv.reason.as_deref(), Some("keyCompromise"));
        assert!(
            rv.verdict.contains("before the trusted time stamp"),
            "{rv:#?}"
        );
    }
    // Revoked 1 day ago, stamped 5 days ago: Windows' rule keeps it valid, with a warning.
    let after = w.sign("revoked-after", Some(now() - 5 * DAY));
    for policy in [RevocationPolicy::Hard, RevocationPolicy::Soft] {
        let r = w.verify(&after, policy);
        assert!(r.valid, "{r:#?}");
        assert!(
            codes(&r).1.contains(&FindingCode::RevokedAfterTimestamp),
            "{r:#?}"
        );
        let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
        assert_eq!(rv.revoked_at_unix, Some(w.revoked_after_at));
    }
    // The same leaf without a time stamp: invalid.
    let unstamped = w.sign("revoked-after", None);
    let r = w.verify(&unstamped, RevocationPolicy::Soft);
    assert!(!r.valid, "{r:#?}");
    assert!(codes(&r).0.contains(&FindingCode::Revoked));
    // A time stamp ignored by the caller is no trusted time either.
    let r = w
        .verifier(RevocationOptions::new(RevocationPolicy::Soft))
        .ignore_timestamp(true)
        .verify_file(&after)
        .expect("report");
    assert!(!r.valid, "{r:#?}");
}

#[test]
fn ocsp_only_crl_only_and_a_ca_signed_responder() {
    let w = World::new();
    let t = Some(now() - DAY);
    // Only OCSP knows (no distribution point).
    let r = w.verify(&w.sign("ocsp-only", t), RevocationPolicy::Soft);
    assert!(!r.valid);
    let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
    assert_eq!(
        (rv.state, rv.source),
        (RevocationState::Revoked, Some(RevocationSource::Ocsp))
    );
    // Only the CRL knows (no responder).
    let r = w.verify(&w.sign("crl-only", t), RevocationPolicy::Hard);
    assert!(!r.valid);
    let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
    assert_eq!(
        (rv.state, rv.source),
        (RevocationState::Revoked, Some(RevocationSource::Crl))
    );
    assert_eq!(
        rv.origin.as_deref(),
        Some(format!("http://127.0.0.1:{}/ca.crl", w.port).as_str())
    );
    // Answers signed by the issuer itself.
    let r = w.verify(&w.sign("ocsp-by-ca", t), RevocationPolicy::Hard);
    assert!(r.valid, "{r:#?}");
    assert_eq!(
        r.signatures[0].chain.as_ref().expect("chain").revocation[0].source,
        Some(RevocationSource::Ocsp)
    );
}

#[test]
fn responder_down_hard_fails_soft_warns() {
    let w = World::new();
    let f = w.sign("down", Some(now() - DAY));
    let r = w.verify(&f, RevocationPolicy::Hard);
    assert!(!r.valid, "{r:#?}");
    assert!(codes(&r).0.contains(&FindingCode::RevocationUnknown));
    let r = w.verify(&f, RevocationPolicy::Soft);
    assert!(r.valid, "{r:#?}");
    assert!(codes(&r).1.contains(&FindingCode::RevocationUnknown));
    let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
    assert_eq!(rv.state, RevocationState::Unknown);
    assert!(!rv.problems.is_empty());
    // A CRL the caller gives answers without the network.
    let crl = std::fs::read(w.pki("www/ca.crl")).expect("crl");
    let r = w
        .verifier(
            RevocationOptions::new(RevocationPolicy::Hard)
                .with_crl("ca.crl", &crl)
                .expect("crl"),
        )
        .verify_file(&f)
        .expect("report");
    assert!(r.valid, "{r:#?}");
    let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
    assert_eq!(rv.origin.as_deref(), Some("file:ca.crl"));
}

#[test]
fn hostile_responders_are_bounded_and_typed() {
    let w = World::new();
    for (leaf, want) in [
        ("garbage", "malformed"),
        ("huge", "exceeds 65536 bytes"),
        ("slow", "no complete answer within 2000 ms"),
    ] {
        let f = w.sign(leaf, Some(now() - DAY));
        let t0 = Instant::now();
        let r = w.verify(&f, RevocationPolicy::Hard);
        let took = t0.elapsed();
        assert!(!r.valid, "{leaf}: {r:#?}");
        let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
        assert_eq!(rv.state, RevocationState::Unknown);
        assert!(
            rv.problems.iter().any(|p| p.contains(want)),
            "{leaf}: {:?}",
            rv.problems
        );
        assert!(took < Duration::from_secs(8), "{leaf}: took {took:?}");
        // Soft: accepted with the same problem as a warning.
        let r = w.verify(&f, RevocationPolicy::Soft);
        assert!(r.valid, "{leaf}: {r:#?}");
    }
}

#[test]
fn off_makes_no_connection_and_urls_are_fetched_once() {
    let w = World::new();
    let f = w.sign("counted", Some(now() - DAY));
    let before = w.hostile.connections.load(Ordering::SeqCst);
    let r = w.verify(&f, RevocationPolicy::Off);
    assert!(r.valid, "{r:#?}");
    assert!(r.signatures[0]
        .chain
        .as_ref()
        .expect("chain")
        .revocation
        .is_empty());
    // The default is off too.
    let r = Verifier::new(w.ca())
        .expect("anchors")
        .verify_file(&f)
        .expect("report");
    assert!(r.valid);
    assert_eq!(w.hostile.connections.load(Ordering::SeqCst), before);
    // The same file under soft does connect (the counter works): OCSP, then the CRL.
    let r = w.verify(&f, RevocationPolicy::Soft);
    assert!(r.valid, "{r:#?}");
    assert_eq!(w.hostile.connections.load(Ordering::SeqCst), before + 2);

    // One verifier, a batch of files sharing a CRL URL: one fetch.
    let files: Vec<PathBuf> = (0..3)
        .map(|i| w.sign("crl-only", Some(now() - DAY - i)))
        .collect();
    let v = w.verifier(RevocationOptions::new(RevocationPolicy::Soft));
    for f in &files {
        assert!(!v.verify_file(f).expect("report").valid);
    }
    // The TSA chain's CRL is never needed (OCSP answers); the leaf's is fetched once.
    assert_eq!(w.hits("/ca.crl"), 1);

    // The cache: a second run with the same directory does not fetch.
    let cache = w.dir.path().join("cache");
    let ocsp_before = w.hits("/ocsp");
    let good = w.sign("good", Some(now() - DAY));
    let run = || {
        w.verifier(RevocationOptions::new(RevocationPolicy::Hard).with_cache_dir(&cache))
            .verify_file(&good)
            .expect("report")
    };
    let r1 = run();
    assert!(r1.valid);
    let after_first = w.hits("/ocsp");
    assert_eq!(after_first, ocsp_before + 2, "leaf + TSA");
    let r2 = run();
    assert!(r2.valid, "{r2:#?}");
    assert_eq!(w.hits("/ocsp"), after_first, "answered from the cache");
    assert!(r2.signatures[0].chain.as_ref().expect("chain").revocation[0].cached);
}
