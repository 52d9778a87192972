//! The peers of the revocation tests, shared by authenticode/tests/revocation.rs and
//! cli/tests/revocation.rs (included with `#[path]`): a CA run by `openssl ca`
//! (scripts/revocation-pki.sh), its CRL and `openssl ocsp` answers served on 127.0.0.1 by
//! scripts/revocation-server.py, and a hostile server of the test's own (garbage, a huge
//! body, a slow body; it counts connections). Everything is stopped (by PID / flag) and
//! removed when the `World` is dropped.
#![allow(dead_code)]

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
    time::{Duration, SystemTime, UNIX_EPOCH},
};

pub const DAY: u64 = 86400;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root")
        .to_path_buf()
}

pub fn now() -> u64 {
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
pub struct Hostile {
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
    /// What /replay answers (an OCSP answer the test captured).
    pub replay: Arc<std::sync::Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

fn serve_hostile(mut s: TcpStream, stop: &AtomicBool, replay: &[u8]) {
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
        "/replay" => {
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: {}\r\n\r\n",
                    replay.len()
                )
                .as_bytes(),
            );
            let _ = s.write_all(replay);
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
        let replay = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, st, rp) = (connections.clone(), stop.clone(), replay.clone());
        let thread = thread::spawn(move || {
            // Polls until stopped (each test stops its server when it ends).
            while !st.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        c.fetch_add(1, Ordering::SeqCst);
                        let _ = s.set_nonblocking(false);
                        let st2 = st.clone();
                        let bytes = rp.lock().map(|b| b.clone()).unwrap_or_default();
                        thread::spawn(move || serve_hostile(s, &st2, &bytes));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            connections,
            replay,
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
pub struct World {
    pub dir: tempfile::TempDir,
    server: Child,
    pub port: u16,
    pub hostile: Hostile,
    pub revoked_before_at: u64,
    pub revoked_after_at: u64,
    input: PathBuf,
    /// Numbers the signed outputs: two calls in one second must not share a name.
    signed: AtomicUsize,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl World {
    /// A new CA and its servers; files are signed from `input` (a PE).
    pub fn new(input: &Path) -> Self {
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
            input: input.to_path_buf(),
            signed: AtomicUsize::new(0),
        }
    }

    pub fn pki(&self, name: &str) -> PathBuf {
        self.dir.path().join("pki").join(name)
    }

    /// pe64.exe signed by `leaf`, time-stamped at `stamp` (Unix seconds) when given.
    pub fn sign(&self, leaf: &str, stamp: Option<u64>) -> PathBuf {
        let out = self.dir.path().join(format!(
            "{leaf}-{}-{}.exe",
            stamp.map_or("unstamped".to_string(), |s| s.to_string()),
            self.signed.fetch_add(1, Ordering::SeqCst)
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
            .arg(&self.input)
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

    /// Requests the CRL/OCSP server has answered, per path.
    pub fn hits(&self, path: &str) -> usize {
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
