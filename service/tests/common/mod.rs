//! Shared helpers of the service's end-to-end tests: the project's test environment (fixtures
//! and PKI from scripts/test-env.sh), moto started by scripts/moto.sh, the service binary
//! started on 127.0.0.1 and stopped by PID, an HTTP client doing what a real client does, and
//! the independent verifiers (osslsigncode, signify).
#![allow(dead_code)]

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

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

/// The fixtures and test PKI (scripts/test-env.sh, idempotent and locked).
pub fn test_env() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("CODESEAL_TEST_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target/test-env"));
        let st = Command::new("bash")
            .arg(root().join("scripts/test-env.sh"))
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("bash");
        assert!(
            st.success(),
            "scripts/test-env.sh failed: run scripts/setup.sh first"
        );
        dir
    })
    .clone()
}

pub fn venv_python() -> PathBuf {
    std::env::var_os("CODESEAL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/codeseal/venv")
        })
        .join("bin/python")
}

/// `osslsigncode verify -CAfile ROOT`: exit 0 and a `Succeeded` line.
pub fn osslsigncode_ok(file: &Path, root_pem: &Path) -> (bool, String) {
    let o = Command::new("osslsigncode")
        .args(["verify", "-CAfile"])
        .arg(root_pem)
        .arg("-in")
        .arg(file)
        .output()
        .expect("osslsigncode");
    let ok = o.status.success()
        && String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.trim() == "Succeeded");
    (ok, text(&o))
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

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A moto server of this test process (scripts/moto.sh; its watchdog stops it when this
/// process exits). `name` separates independent servers.
pub struct Moto {
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
}

impl Moto {
    pub fn start(name: &str) -> Moto {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("moto-svc-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let o = Command::new("bash")
            .arg(root().join("scripts/moto.sh"))
            .arg("start")
            .arg(&dir)
            .env("CODESEAL_MOTO_WATCH_PID", std::process::id().to_string())
            .output()
            .expect("moto.sh");
        assert!(
            o.status.success(),
            "scripts/moto.sh start failed (run scripts/setup.sh): {}",
            text(&o)
        );
        let env = std::fs::read_to_string(dir.join("moto.env"))
            .expect("moto.env")
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        Moto { dir, env }
    }

    pub fn stop(&self) {
        let o = Command::new("bash")
            .arg(root().join("scripts/moto.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output()
            .expect("moto.sh");
        assert!(o.status.success(), "{}", text(&o));
    }

    pub fn endpoint(&self) -> String {
        self.env["AWS_ENDPOINT_URL"].clone()
    }

    /// A command with this moto's AWS environment and nothing from the caller's AWS setup.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.envs(&self.env);
        c
    }

    /// Runs a boto3 snippet (with `s3`, `ddb`, `kms`, `sqs` clients and `args` = argv[1] parsed as
    /// JSON); returns what it printed as JSON.
    pub fn boto(&self, code: &str, args: Value) -> Value {
        let script = format!(
            "import base64, json, os, sys, boto3\n\
             kw = dict(region_name=os.environ['AWS_REGION'], endpoint_url=os.environ['AWS_ENDPOINT_URL'])\n\
             s3 = boto3.client('s3', **kw)\nddb = boto3.client('dynamodb', **kw)\nkms = boto3.client('kms', **kw)\nsqs = boto3.client('sqs', **kw)\n\
             args = json.loads(sys.argv[1])\n{code}\n"
        );
        let o = self
            .command(venv_python())
            .arg("-c")
            .arg(script)
            .arg(args.to_string())
            .output()
            .expect("python");
        assert!(o.status.success(), "boto3 snippet failed: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if out.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&out).expect("json from boto3 snippet")
        }
    }

    pub fn create_buckets(&self, names: &[&str]) {
        self.boto(
            "for b in args:\n    s3.create_bucket(Bucket=b)\nprint('null')",
            json!(names),
        );
    }

    /// Object keys under `prefix` in `bucket`.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let v = self.boto(
            "r = s3.list_objects_v2(Bucket=args[0], Prefix=args[1])\nprint(json.dumps([o['Key'] for o in r.get('Contents', [])]))",
            json!([bucket, prefix]),
        );
        serde_json::from_value(v).expect("keys")
    }

    /// (ChecksumSHA256 base64, bytes) of an object.
    pub fn get_with_checksum(&self, bucket: &str, key: &str) -> (String, Vec<u8>) {
        let v = self.boto(
            "r = s3.get_object(Bucket=args[0], Key=args[1], ChecksumMode='ENABLED')\n\
             print(json.dumps([r.get('ChecksumSHA256', ''), base64.b64encode(r['Body'].read()).decode()]))",
            json!([bucket, key]),
        );
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD
            .decode(v[1].as_str().expect("b64"))
            .expect("b64");
        (v[0].as_str().unwrap_or_default().to_string(), b)
    }

    /// The DynamoDB item of a job, as boto3 returns it.
    pub fn job_item(&self, table: &str, id: &str) -> Value {
        self.boto(
            "r = ddb.get_item(TableName=args[0], Key={'job_id': {'S': args[1]}}, ConsistentRead=True)\nprint(json.dumps(r.get('Item')))",
            json!([table, id]),
        )
    }

    /// Creates an ECC P-256 KMS signing key with alias `alias` and a certificate for it issued
    /// by the test intermediate; returns the chain file (leaf, intermediate).
    pub fn kms_key_with_cert(&self, alias: &str, dir: &Path) -> PathBuf {
        let v = self.boto(
            "k = kms.create_key(KeySpec='ECC_NIST_P256', KeyUsage='SIGN_VERIFY')['KeyMetadata']\n\
             kms.create_alias(AliasName='alias/' + args[0], TargetKeyId=k['KeyId'])\n\
             print(json.dumps(base64.b64encode(kms.get_public_key(KeyId=k['KeyId'])['PublicKey']).decode()))",
            json!([alias]),
        );
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("pub"))
            .expect("b64");
        let pki = test_env().join("pki");
        let pub_der = dir.join(format!("{alias}.pub.der"));
        std::fs::write(&pub_der, der).expect("write");
        let pub_pem = dir.join(format!("{alias}.pub.pem"));
        let o = Command::new("openssl")
            .args(["pkey", "-pubin", "-inform", "DER", "-in"])
            .arg(&pub_der)
            .arg("-out")
            .arg(&pub_pem)
            .output()
            .expect("openssl");
        assert!(o.status.success(), "{}", text(&o));
        let ext = dir.join("ext.cnf");
        std::fs::write(&ext, "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n").expect("write");
        let cert = dir.join(format!("{alias}.pem"));
        let o = Command::new("openssl")
            .args(["x509", "-new", "-subj"])
            .arg(format!("/CN=codeseal service test {alias}"))
            .arg("-force_pubkey")
            .arg(&pub_pem)
            .arg("-CA")
            .arg(pki.join("intermediate.pem"))
            .arg("-CAkey")
            .arg(pki.join("intermediate.key"))
            .args(["-days", "30", "-sha256", "-extfile"])
            .arg(&ext)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(o.status.success(), "openssl x509 -new: {}", text(&o));
        let chain = dir.join(format!("{alias}-chain.pem"));
        let mut c = std::fs::read(&cert).expect("cert");
        c.extend(std::fs::read(pki.join("intermediate.pem")).expect("intermediate"));
        std::fs::write(&chain, c).expect("chain");
        chain
    }
}

/// A running `codeseal-service` process, killed (by PID) when dropped.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub port: Option<u16>,
}

impl Proc {
    /// Starts `codeseal-service ARGS` with `cmd`'s environment; for `serve`, waits for the
    /// port file.
    pub fn start(mut cmd: Command, args: &[String], log: &Path, serve: bool) -> Proc {
        let port_file = log.with_extension("port");
        let _ = std::fs::remove_file(&port_file);
        let mut all: Vec<String> = args.to_vec();
        if serve {
            all.push("--port-file".into());
            all.push(port_file.display().to_string());
        }
        let f = std::fs::File::create(log).expect("log");
        let child = cmd
            .args(&all)
            .env("RUST_LOG", "info,codeseal=debug")
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("codeseal-service");
        let mut p = Proc {
            child,
            log: log.to_path_buf(),
            port: None,
        };
        if serve {
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(60) {
                if let Ok(s) = std::fs::read_to_string(&port_file) {
                    if let Ok(n) = s.trim().parse() {
                        p.port = Some(n);
                        break;
                    }
                }
                if let Ok(Some(st)) = p.child.try_wait() {
                    panic!("service exited ({st}): {}", p.log_text());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(p.port.is_some(), "service did not start: {}", p.log_text());
        }
        p
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port.expect("port"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn service_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_codeseal-service"))
}

/// An API client.
pub struct Client {
    pub base: String,
    pub key: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str, key: &str) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Client {
            base: base.to_string(),
            key: key.to_string(),
            agent,
        }
    }

    /// (status, JSON body) of an API call; `key` None sends no Authorization header.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut resp = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (_, b) => {
                let mut r = self.agent.post(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.header("content-type", "application/json")
                    .send(b.unwrap_or(json!({})).to_string())
            }
        }
        .expect("http");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, body, Some(&self.key.clone()))
    }

    /// POST /uploads, PUT every part to its presigned URL, POST complete. Returns the job id.
    pub fn upload(&self, name: &str, data: &[u8]) -> String {
        let (st, v) = self.api(
            "POST",
            "/uploads",
            Some(json!({"file_name": name, "size": data.len()})),
        );
        assert_eq!(st, 201, "POST /uploads: {v}");
        let id = v["job_id"].as_str().expect("job_id").to_string();
        let part_size = v["part_size"].as_u64().expect("part_size") as usize;
        let mut etags = vec![];
        for (i, p) in v["parts"].as_array().expect("parts").iter().enumerate() {
            let url = p["url"].as_str().expect("url");
            let chunk = &data[i * part_size..((i + 1) * part_size).min(data.len())];
            let resp = self.agent.put(url).send(chunk).expect("PUT part");
            assert_eq!(resp.status().as_u16(), 200, "PUT part {}", i + 1);
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|e| e.to_str().ok())
                .expect("ETag")
                .to_string();
            etags.push(json!({"part_number": i + 1, "etag": etag}));
        }
        let (st, v) = self.api(
            "POST",
            &format!("/uploads/{id}/complete"),
            Some(json!({"parts": etags})),
        );
        assert_eq!(st, 202, "complete: {v}");
        id
    }

    /// Polls GET /jobs/ID until done or failed (bounded).
    pub fn wait(&self, id: &str, limit: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let (st, v) = self.api("GET", &format!("/jobs/{id}"), None);
            assert_eq!(st, 200, "GET /jobs: {v}");
            let s = v["status"].as_str().unwrap_or_default();
            // "done" without its result was seen once under load against moto (aws.rs,
            // 200 uploads, two workers): the worker's final UpdateItem sets both in one
            // expression, which DynamoDB applies atomically, so this is most likely moto
            // letting a read see the item between the two SET actions. Read it again: a
            // job that really stayed "done" without a result still fails, by the limit.
            let torn = s == "done" && v["verify"].is_null();
            if (s == "done" && !torn) || s == "failed" {
                return v;
            }
            assert!(
                t0.elapsed() < limit,
                "job {id} still {s} after {limit:?}: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET a presigned URL (no API key).
    pub fn download(&self, url: &str) -> Vec<u8> {
        let mut resp = self.agent.get(url).call().expect("download");
        assert_eq!(resp.status().as_u16(), 200, "download {url}");
        resp.body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .expect("body")
    }
}

impl Client {
    /// Uploads `data` as `name` and waits (60 s at most) for the job: it must be done with a
    /// valid verify report (`log` is shown when not). Returns the job and the signed file.
    pub fn signed(&self, name: &str, data: &[u8], log: &Proc) -> (Value, Vec<u8>) {
        let id = self.upload(name, data);
        let job = self.wait(&id, Duration::from_secs(60));
        assert_eq!(job["status"], "done", "{name}: {job}\n{}", log.log_text());
        assert_eq!(job["verify"]["valid"], true, "{name}: {job}");
        let bytes = self.download(job["download_url"].as_str().expect("url"));
        (job, bytes)
    }

    /// Uploads `data` as `name` and waits (60 s at most) for the job: it must fail with
    /// `reason`. Returns the job id and the job.
    pub fn failed(&self, name: &str, data: &[u8], reason: &str) -> (String, Value) {
        let id = self.upload(name, data);
        let job = self.wait(&id, Duration::from_secs(60));
        assert_eq!(job["status"], "failed", "{name}: {job}");
        assert_eq!(job["error_reason"], reason, "{name}: {job}");
        (id, job)
    }
}

impl Client {
    /// GET /metrics (200) has every line of `lines` in its text.
    pub fn assert_metrics(&self, lines: &[&str]) {
        let (st, m) = self.api("GET", "/metrics", None);
        assert_eq!(st, 200, "{m}");
        let m = m.as_str().expect("text");
        for l in lines {
            assert!(m.contains(l), "{l} not in: {m}");
        }
    }
}

/// Worker arguments of the SIGKILL tests: one worker, each step slowed by 4 s, a 3 s lease
/// (so that it is killed mid-job and its lease or message expires before it would finish).
pub const SLOW_WORKER: &[&str] = &[
    "--step-delay-ms",
    "4000",
    "--lease-seconds",
    "3",
    "--workers",
    "1",
];

/// `bytes`, written to `dir/name`, pass osslsigncode trusting only the test root.
pub fn assert_osslsigncode_accepts(bytes: &[u8], dir: &Path, name: &str) {
    let f = dir.join(name);
    std::fs::write(&f, bytes).expect("write");
    let (ok, t) = osslsigncode_ok(&f, &test_env().join("pki/root.pem"));
    assert!(ok, "osslsigncode rejected {name}: {t}");
}

/// Names unique to this test run.
pub fn unique(name: &str) -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .subsec_nanos();
    format!("{name}-{}-{ns}", std::process::id())
}

/// The `p` quantile (0..=1) of sorted samples, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Audit records in `logs` that name job `id`.
pub fn audits(logs: &str, id: &str) -> usize {
    logs.lines()
        .filter(|l| l.contains("codeseal::audit") && l.contains(id))
        .count()
}

/// Polls GET /jobs/ID until its status is `status` (60 s at most; `log` is shown when not).
pub fn wait_for_status(client: &Client, id: &str, status: &str, log: &Proc) {
    let t0 = Instant::now();
    loop {
        let (_, v) = client.api("GET", &format!("/jobs/{id}"), None);
        if v["status"] == status {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "never {status}: {v}\n{}",
            log.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The AWS side of a service run against moto: an uploads and a results bucket, a job
/// table name, a KMS P-256 key (alias) with a certificate from the test intermediate, and
/// an API keys file; the service binary started with moto's environment.
pub struct AwsWorld {
    pub moto: Moto,
    pub dir: tempfile::TempDir,
    pub uploads: String,
    pub results: String,
    pub table: String,
    pub chain: PathBuf,
    pub keys_file: PathBuf,
    pub alias: String,
}

impl AwsWorld {
    /// Starts moto (`name`), makes the buckets and the key (alias `alias_prefix-...`), and
    /// writes `api_keys` (caller, key) hashed into the keys file.
    pub fn new(name: &str, alias_prefix: &str, api_keys: &[(&str, &str)]) -> AwsWorld {
        let moto = Moto::start(name);
        let dir = tempfile::tempdir().expect("tmp");
        let (uploads, results, table) = (unique("up"), unique("res"), unique("jobs"));
        moto.create_buckets(&[&uploads, &results]);
        let alias = unique(alias_prefix);
        let chain = moto.kms_key_with_cert(&alias, dir.path());
        let keys_file = dir.path().join("api-keys");
        let lines: String = api_keys
            .iter()
            .map(|(caller, key)| format!("{}\n", codeseal_service::auth::hash_line(caller, key)))
            .collect();
        std::fs::write(&keys_file, lines).expect("write");
        AwsWorld {
            moto,
            dir,
            uploads,
            results,
            table,
            chain,
            keys_file,
            alias,
        }
    }

    pub fn key_uri(&self) -> String {
        format!("awskms:///alias/{}", self.alias)
    }

    /// `cmd` with the stores (results in `results`), the table (created), the key, the
    /// certificate, the test root as trust and 5 MiB parts; `serve` listens on 127.0.0.1.
    pub fn base_args(&self, cmd: &str, key_uri: &str, results: &str) -> Vec<String> {
        let root = test_env().join("pki/root.pem");
        let mut a: Vec<String> = vec![
            cmd.into(),
            "--uploads-bucket".into(),
            self.uploads.clone(),
            "--results-bucket".into(),
            results.into(),
            "--jobs-table".into(),
            self.table.clone(),
            "--create-table".into(),
            "--key".into(),
            key_uri.into(),
            "--cert".into(),
            self.chain.display().to_string(),
            "--trust".into(),
            root.display().to_string(),
            "--part-size".into(),
            (5u64 << 20).to_string(),
        ];
        if cmd == "serve" {
            a.extend(["--listen".into(), "127.0.0.1:0".into()]);
        }
        a
    }

    /// Starts `codeseal-service ARGS` with moto's environment, logging to `dir/log`.
    pub fn start(&self, log: &str, args: Vec<String>, serve: bool) -> Proc {
        let cmd = self.moto.command(env!("CARGO_BIN_EXE_codeseal-service"));
        Proc::start(cmd, &args, &self.dir.path().join(log), serve)
    }
}

/// The downloaded file passes osslsigncode and signify trusting only the test root.
pub fn assert_independently_verified(bytes: &[u8], dir: &Path, name: &str) {
    let f = dir.join(name);
    std::fs::write(&f, bytes).expect("write");
    let root_pem = test_env().join("pki/root.pem");
    let (ok, out) = osslsigncode_ok(&f, &root_pem);
    assert!(ok, "osslsigncode rejected {name}: {out}");
    let (ok, out) = signify_ok(&f, &root_pem);
    assert!(ok, "signify rejected {name}: {out}");
}

/// A stand-in for the AWS Lambda Runtime API (the HTTP protocol a function's runtime speaks
/// to Lambda): hands out `events` one by one on `GET .../invocation/next` and collects what
/// the function posts to `.../response` or `.../error`. After the last event it stops
/// answering (as Lambda does while no event is waiting).
pub struct FakeRuntime {
    pub addr: String,
    pub responses: std::sync::mpsc::Receiver<(String, String, Value)>,
}

fn read_request(
    r: &mut std::io::BufReader<std::net::TcpStream>,
) -> Option<(String, String, Vec<u8>)> {
    use std::io::{BufRead, Read};
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let (mut len, mut chunked) = (0usize, false);
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(len.min(16 << 20), 0);
        r.read_exact(&mut body).ok()?;
    }
    Some((method, path, body))
}

impl FakeRuntime {
    pub fn start(events: Vec<Value>) -> FakeRuntime {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        // Each connection on its own thread (the runtime client may open a second one while
        // the first sits in its pool); the events are shared.
        let events = std::sync::Arc::new(std::sync::Mutex::new(events.into_iter().enumerate()));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (events, tx) = (std::sync::Arc::clone(&events), tx.clone());
                std::thread::spawn(move || {
                    let mut w = stream.try_clone().expect("clone");
                    let mut r = std::io::BufReader::new(stream);
                    while let Some((method, path, body)) = read_request(&mut r) {
                        if method == "GET" && path.ends_with("/invocation/next") {
                            let next = events.lock().expect("events").next();
                            let Some((i, ev)) = next else {
                                // No more events: hold the connection like Lambda does.
                                std::thread::sleep(Duration::from_secs(3600));
                                return;
                            };
                            let body = ev.to_string();
                            let deadline = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .expect("time")
                                .as_millis()
                                + 300_000;
                            let _ = write!(
                                w,
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: req-{i}\r\n\
                                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:codeseal\r\n\
                                 Content-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                        } else {
                            let kind = path.rsplit('/').next().unwrap_or_default().to_string();
                            let id = path.split('/').rev().nth(1).unwrap_or_default().to_string();
                            let v = serde_json::from_slice(&body).unwrap_or_else(|_| {
                                Value::String(String::from_utf8_lossy(&body).into())
                            });
                            let _ = tx.send((id, kind, v));
                            let _ =
                                write!(w, "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{{}}");
                        }
                        let _ = w.flush();
                    }
                });
            }
        });
        FakeRuntime {
            addr,
            responses: rx,
        }
    }

    /// The next (request id, `response`|`error`, body), waiting at most `limit`.
    pub fn next(&self, limit: Duration) -> (String, String, Value) {
        self.responses
            .recv_timeout(limit)
            .expect("the function answered the invocation in time")
    }

    /// Lambda's environment for a function using this runtime API.
    pub fn env(&self, cmd: &mut Command) {
        cmd.env("AWS_LAMBDA_RUNTIME_API", &self.addr)
            .env("AWS_LAMBDA_FUNCTION_NAME", "codeseal")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test-stream")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/codeseal");
    }
}
