//! The service at fleet scale, against moto (S3, DynamoDB, SQS and KMS on one 127.0.0.1
//! port, started by scripts/moto.sh): queue-driven workers (SQS long polls, S3 event
//! notifications for objects dropped into the bucket), a rate-limiting stand-in in front of
//! moto's KMS (scripts/kms-throttle-proxy.py answers ThrottlingException above its Sign
//! rate, as AWS does above the account's quota), SIGKILLed workers, a poison file in the
//! dead-letter queue, DynamoDB reads per job with 10x more finished jobs in the table, and
//! the per-caller limits (429 + Retry-After).
mod common;

use std::{
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::*;
use serde_json::{json, Value};

const API_KEY: &str = "fleet-test-key";

/// The tests here measure throughput on a shared machine: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
const OTHER_KEY: &str = "fleet-other-key";

/// The moto world of [`AwsWorld`] plus the work queue and its dead-letter queue.
struct Fleet {
    world: AwsWorld,
    queue_url: String,
    dlq_url: String,
}

impl std::ops::Deref for Fleet {
    type Target = AwsWorld;
    fn deref(&self) -> &AwsWorld {
        &self.world
    }
}

fn fleet(name: &str) -> Fleet {
    let world = AwsWorld::new(name, "fleet", &[("tester", API_KEY), ("other", OTHER_KEY)]);
    // The work queue, its dead-letter queue (a redrive policy with a higher count is the
    // backstop), and the uploads bucket's notifications for objects under uploads/.
    let v = world.moto.boto(
        "dlq = sqs.create_queue(QueueName=args[1] + '-dlq')['QueueUrl']\n\
         dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=['QueueArn'])['Attributes']['QueueArn']\n\
         q = sqs.create_queue(QueueName=args[1], Attributes={'VisibilityTimeout': '30',\n\
             'RedrivePolicy': json.dumps({'deadLetterTargetArn': dlq_arn, 'maxReceiveCount': '20'})})['QueueUrl']\n\
         arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=['QueueArn'])['Attributes']['QueueArn']\n\
         s3.put_bucket_notification_configuration(Bucket=args[0], NotificationConfiguration={'QueueConfigurations': [\n\
             {'QueueArn': arn, 'Events': ['s3:ObjectCreated:*'],\n\
              'Filter': {'Key': {'FilterRules': [{'Name': 'prefix', 'Value': 'uploads/'}]}}}]})\n\
         print(json.dumps([q, dlq]))",
        json!([world.uploads, unique("work")]),
    );
    Fleet {
        queue_url: v[0].as_str().expect("queue").to_string(),
        dlq_url: v[1].as_str().expect("dlq").to_string(),
        world,
    }
}

impl Fleet {
    /// [`AwsWorld::base_args`] with the queues (and, for `serve`, the API keys), then
    /// `extra`.
    fn args(&self, cmd: &str, key_uri: &str, extra: &[&str]) -> Vec<String> {
        let mut a = self.base_args(cmd, key_uri, &self.results);
        a.extend([
            "--queue-url".into(),
            self.queue_url.clone(),
            "--dead-letter-queue-url".into(),
            self.dlq_url.clone(),
        ]);
        if cmd == "serve" {
            a.extend(["--api-keys".into(), self.keys_file.display().to_string()]);
        }
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// The API alone (no in-process workers).
    fn api(&self, extra: &[&str]) -> Proc {
        let mut e = vec!["--workers", "0"];
        e.extend_from_slice(extra);
        self.start("api.log", self.args("serve", &self.key_uri(), &e), true)
    }

    /// (visible, in flight) messages of a queue.
    fn queue_counts(&self, url: &str) -> (u64, u64) {
        let v = self.moto.boto(
            "a = sqs.get_queue_attributes(QueueUrl=args[0], AttributeNames=['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'])['Attributes']\n\
             print(json.dumps([int(a['ApproximateNumberOfMessages']), int(a['ApproximateNumberOfMessagesNotVisible'])]))",
            json!([url]),
        );
        (v[0].as_u64().expect("n"), v[1].as_u64().expect("n"))
    }

    /// Waits (bounded) until every message of the work queue is deleted: every job finished.
    fn wait_queue_empty(&self, limit: Duration, logs: &[&Proc]) {
        let t0 = Instant::now();
        loop {
            if self.queue_counts(&self.queue_url) == (0, 0) {
                return;
            }
            assert!(
                t0.elapsed() < limit,
                "queue not empty after {limit:?}: {:?}\n{}",
                self.queue_counts(&self.queue_url),
                logs.iter().map(|p| p.log_text()).collect::<String>()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Every message of the dead-letter queue (bodies parsed as JSON), received once with
    /// a long visibility timeout.
    fn dead_letters(&self) -> Vec<Value> {
        let v = self.moto.boto(
            "out = []\n\
             for _ in range(5):\n    r = sqs.receive_message(QueueUrl=args[0], MaxNumberOfMessages=10, VisibilityTimeout=600, WaitTimeSeconds=1, MessageAttributeNames=['All'])\n    ms = r.get('Messages', [])\n    if not ms: break\n    out += [dict(body=json.loads(m['Body']), attributes={k: v.get('StringValue') for k, v in m.get('MessageAttributes', {}).items()}) for m in ms]\n\
             print(json.dumps(out))",
            json!([self.dlq_url]),
        );
        v.as_array().cloned().unwrap_or_default()
    }

    /// Writes `n` finished jobs straight into the table (history a real table accumulates).
    fn add_finished_jobs(&self, n: usize) {
        self.moto.boto(
            "import secrets\n\
             items = []\n\
             for i in range(args[1]):\n    jid = secrets.token_hex(16)\n    items.append({'PutRequest': {'Item': {'job_id': {'S': jid}, 'status': {'S': 'done'}, 'file_name': {'S': 'old.exe'},\n        'size': {'N': '1024'}, 'caller': {'S': 'history'}, 'upload_key': {'S': 'uploads/' + jid + '/old.exe'},\n        'created_ms': {'N': '1'}, 'updated_ms': {'N': '2'}, 'lease_until_ms': {'N': '0'}, 'attempts': {'N': '1'},\n        'result': {'S': json.dumps({'result_key': 'signed/' + jid + '/a1/old.exe', 'signed_sha256': '', 'signed_size': 1, 'input_sha256': '', 'authenticode_digest': '', 'verify': '{}'})}}}})\n\
             for i in range(0, len(items), 25):\n    ddb.batch_write_item(RequestItems={args[0]: items[i:i + 25]})\n\
             print(json.dumps(ddb.describe_table(TableName=args[0])['Table'].get('ItemCount', 0)))",
            json!([self.table, n]),
        );
    }
}

/// The stand-in for KMS's Sign quota: scripts/kms-throttle-proxy.py in front of moto.
struct KmsProxy {
    child: Child,
    port: u16,
}

impl KmsProxy {
    fn start(f: &Fleet, rate: f64, burst: u32) -> KmsProxy {
        let port_file = f.dir.path().join(format!("proxy-{}.port", unique("p")));
        let child = Command::new(venv_python())
            .arg(root().join("scripts/kms-throttle-proxy.py"))
            .arg("--upstream")
            .arg(f.moto.endpoint())
            .arg("--rate")
            .arg(rate.to_string())
            .arg("--burst")
            .arg(burst.to_string())
            .arg("--port-file")
            .arg(&port_file)
            .arg("--watch-pid")
            .arg(std::process::id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python");
        let mut p = KmsProxy { child, port: 0 };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Some(n) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                p.port = n;
                return p;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the KMS proxy did not start");
    }

    fn key_uri(&self, alias: &str) -> String {
        format!("awskms://127.0.0.1:{}/alias/{alias}", self.port)
    }

    fn stats(&self) -> Value {
        let mut r = ureq::get(&format!("http://127.0.0.1:{}/__proxy/stats", self.port))
            .call()
            .expect("proxy stats");
        serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json")
    }
}

impl Drop for KmsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (reads, scans, writes) a stopped process logged for its job store.
fn store_requests(p: &Proc) -> (u64, u64, u64) {
    let log = p.log_text();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("job store requests"))
        .unwrap_or_else(|| panic!("no request counts logged: {log}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    (field("reads"), field("scans"), field("writes"))
}

fn stop(p: &mut Proc) {
    assert!(
        p.terminate(Duration::from_secs(60)).is_some(),
        "did not stop: {}",
        p.log_text()
    );
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    ["pe32.exe", "pe64.exe", "pe32.dll", "pe64.dll"]
        .iter()
        .map(|f| {
            (
                f.to_string(),
                std::fs::read(test_env().join("fixtures").join(f)).expect("fixture"),
            )
        })
        .collect()
}

/// Every result in the results bucket: one per job, each verified by osslsigncode.
fn assert_results_verified(f: &Fleet, jobs: &[(String, String)]) {
    let stored = f.moto.list(&f.results, "signed/");
    assert_eq!(stored.len(), jobs.len(), "one result per job: {stored:?}");
    let rootpem = test_env().join("pki/root.pem");
    for (id, file) in jobs {
        let key = stored
            .iter()
            .find(|k| k.starts_with(&format!("signed/{id}/")))
            .unwrap_or_else(|| panic!("no result for {id}"));
        assert!(key.ends_with(file.as_str()), "{key} for {file}");
        let (_, bytes) = f.moto.get_with_checksum(&f.results, key);
        let path = f.dir.path().join(format!("check-{id}-{file}"));
        std::fs::write(&path, &bytes).expect("write");
        let (ok, out) = osslsigncode_ok(&path, &rootpem);
        assert!(ok, "{file}: {out}");
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn four_workers_at_the_kms_sign_rate_sign_every_job_once() {
    let _serial = serial();
    // The account's Sign quota as the stand-in enforces it; each worker process is allowed
    // twice its share, so the workers' own buckets do not keep them under the quota: the
    // adaptive backoff on ThrottlingException has to.
    // FLEET_SIGN_RATE overrides the quota (e.g. a high one to see what moto alone allows).
    let quota: f64 = std::env::var("FLEET_SIGN_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4.0);
    const WORKERS: usize = 4;
    const PER_WORKER: usize = 20;
    const DROPPED: usize = 4; // objects put straight into the bucket (S3 notifications)
    let f = fleet("rate");
    // KMS quotas are per second: the stand-in allows a second's worth at once.
    let proxy = KmsProxy::start(&f, quota, quota.ceil() as u32);
    let api = f.api(&[]);
    let client = Client::new(&api.base(), API_KEY);
    let fx = fixtures();
    // The backlog first (queued through the API and through bucket notifications), so that
    // the workers' throughput is bounded by the Sign rate alone.
    let mut jobs: Vec<(String, String)> = Vec::new();
    for i in 0..WORKERS * PER_WORKER - DROPPED {
        let (name, data) = &fx[i % fx.len()];
        let file = format!("{i:03}-{name}");
        jobs.push((client.upload(&file, data), file));
    }
    for i in 0..DROPPED {
        let (name, data) = &fx[i % fx.len()];
        let file = format!("dropped-{i}-{name}");
        let key = format!("uploads/drop{i}/{file}");
        use base64::Engine;
        f.moto.boto(
            "s3.put_object(Bucket=args[0], Key=args[1], Body=base64.b64decode(args[2]))\nprint('null')",
            json!([f.uploads, key, base64::engine::general_purpose::STANDARD.encode(data)]),
        );
        jobs.push((codeseal_service::worker::object_job_id(&key), file));
    }
    let share = format!("{}", quota / WORKERS as f64 * 2.0);
    let t0 = Instant::now();
    // Worker 0 also serves its metrics.
    let mut workers: Vec<Proc> = (0..WORKERS)
        .map(|w| {
            let mut extra = vec![
                "--workers",
                "4",
                "--kms-rate",
                &share,
                "--lease-seconds",
                "30",
            ];
            if w == 0 {
                extra.extend(["--metrics-listen", "127.0.0.1:0"]);
            }
            f.start(
                &format!("w{w}.log"),
                f.args("worker", &proxy.key_uri(&f.alias), &extra),
                w == 0,
            )
        })
        .collect();
    let refs: Vec<&Proc> = workers.iter().collect();
    f.wait_queue_empty(Duration::from_secs(300), &refs);
    let wall = t0.elapsed().as_secs_f64();
    // Worker 0's /metrics: its throttles, queue ages and jobs, as its log tells them.
    let mut r = ureq::get(&format!("{}/metrics", workers[0].base()))
        .call()
        .expect("worker metrics");
    let metrics = r.body_mut().read_to_string().expect("metrics");
    let w0 = workers[0].log_text();
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    let w0_jobs = w0.lines().filter(|l| l.contains("codeseal::audit")).count();
    assert_eq!(metric("codeseal_jobs_succeeded_total") as usize, w0_jobs);
    assert_eq!(
        metric("codeseal_key_throttles_total") as usize,
        w0.matches("key call throttled").count()
    );
    assert!(
        metric("codeseal_queue_age_seconds_count") >= w0_jobs as f64,
        "{metrics}"
    );
    assert!(metric("codeseal_key_rate") > 0.0, "{metrics}");
    for w in &mut workers {
        stop(w);
    }
    let logs: String = workers.iter().map(|w| w.log_text()).collect();

    // Every job done, once: one audit record across the four workers, one result each.
    let admin = Client::new(&api.base(), API_KEY);
    for (id, file) in &jobs {
        let job = if file.starts_with("dropped-") {
            let item = f.moto.job_item(&f.table, id);
            assert_eq!(item["status"]["S"], "done", "{file}: {item}");
            assert_eq!(item["caller"]["S"], "event");
            continue;
        } else {
            admin.wait(id, Duration::from_secs(10))
        };
        assert_eq!(job["status"], "done", "{job}");
        assert_eq!(audits(&logs, id), 1, "job {id} recorded once");
    }
    assert_results_verified(&f, &jobs);
    assert!(
        f.moto.list(&f.uploads, "uploads/").is_empty(),
        "uploads deleted"
    );
    assert!(f.dead_letters().is_empty(), "nothing in the DLQ");

    // One successful Sign call per signed file; the quota was hit and honoured.
    let st = proxy.stats();
    let ok = st["sign_ok"].as_u64().expect("sign_ok") as usize;
    let throttled = st["sign_throttled"].as_u64().expect("throttled");
    assert_eq!(ok, jobs.len(), "one Sign per file: {st}");
    let times: Vec<f64> = st["sign_ok_times"]
        .as_array()
        .expect("times")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let span = times[times.len() - 1] - times[0];
    let rate = (times.len() - 1) as f64 / span;
    let mut per_second = vec![0u32; span as usize + 1];
    for t in &times {
        per_second[(t - times[0]) as usize] += 1;
    }
    println!("successful Sign calls per second: {per_second:?}");
    println!(
        "fleet: {WORKERS} worker processes x 4 jobs, {} jobs ({DROPPED} from bucket notifications), \
         Sign quota {quota}/s (stand-in), per-process bucket {share}/s: {rate:.2} Sign/s = {:.0} % of the quota \
         over {span:.1} s, {throttled} ThrottlingException answers; {wall:.1} s from worker start to an empty queue",
        jobs.len(),
        100.0 * rate / quota
    );
    assert!(throttled > 0, "the quota was never reached: {st}");
    assert!(
        rate >= 0.9 * quota,
        "throughput {rate:.2}/s is under 90 % of the Sign rate {quota}/s"
    );
    // Every throttled answer reached the workers' limiter (no silent SDK retries).
    let seen = logs.matches("key call throttled").count() as u64;
    assert_eq!(seen, throttled, "throttles seen by the workers");
    let mut scans = 0;
    for w in &workers {
        let (_, s, _) = store_requests(w);
        scans += s;
    }
    assert_eq!(scans, 0, "no Scan of the job table");
}

#[test]
fn sigkilled_worker_message_returns_after_the_visibility_timeout_and_the_job_is_done_once() {
    let _serial = serial();
    let f = fleet("sigkill");
    let api = f.api(&[]);
    let client = Client::new(&api.base(), API_KEY);
    // A slow worker (each step sleeps 4 s) with a 3 s lease = visibility timeout.
    let mut slow = f.start(
        "slow.log",
        f.args("worker", &f.key_uri(), SLOW_WORKER),
        false,
    );
    let input = std::fs::read(test_env().join("fixtures/pe64.dll")).expect("fixture");
    let id = client.upload("lib.dll", &input);
    wait_for_status(&client, &id, "signing", &slow);
    slow.kill(); // SIGKILL
    let killed = Instant::now();
    // The message is invisible (held by the dead worker) until its visibility timeout.
    assert_eq!(f.queue_counts(&f.queue_url).1, 1, "in flight");
    let fast = f.start(
        "fast.log",
        f.args(
            "worker",
            &f.key_uri(),
            &["--lease-seconds", "3", "--workers", "1"],
        ),
        false,
    );
    let job = client.wait(&id, Duration::from_secs(120));
    let after = killed.elapsed();
    assert_eq!(job["status"], "done", "{job}\n{}", fast.log_text());
    assert_eq!(job["attempts"], 2, "taken up once more: {job}");
    assert!(
        after >= Duration::from_millis(1500),
        "taken up only once the message came back ({after:?})"
    );
    assert_eq!(f.moto.list(&f.results, &format!("signed/{id}/")).len(), 1);
    assert!(f.moto.list(&f.uploads, "uploads/").is_empty());
    let logs = format!("{}{}", slow.log_text(), fast.log_text());
    assert_eq!(audits(&logs, &id), 1);
    f.wait_queue_empty(Duration::from_secs(30), &[&fast]);
    let (_, bytes) = f.moto.get_with_checksum(
        &f.results,
        &f.moto.list(&f.results, &format!("signed/{id}/"))[0],
    );
    assert_independently_verified(&bytes, f.dir.path(), "recovered.dll");
}

#[test]
fn poison_file_and_unreadable_message_land_in_the_dead_letter_queue_with_their_reason() {
    let _serial = serial();
    let f = fleet("poison");
    let api = f.api(&[]);
    let client = Client::new(&api.base(), API_KEY);
    // A file whose processing kills its worker every time (here: SIGKILL while the worker
    // sits before the key call). With --max-receives 2 the third receive gives up.
    let input = std::fs::read(test_env().join("fixtures/pe32.exe")).expect("fixture");
    let id = client.upload("poison.exe", &input);
    let limits = [
        "--lease-seconds",
        "2",
        "--max-receives",
        "2",
        "--max-attempts",
        "5",
    ];
    for round in 0..2 {
        let mut extra = vec!["--workers", "1", "--key-delay-ms", "60000"];
        extra.extend_from_slice(&limits);
        let mut w = f.start(
            &format!("doomed{round}.log"),
            f.args("worker", &f.key_uri(), &extra),
            false,
        );
        let t0 = Instant::now();
        while !w.log_text().contains("key call delayed") {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "round {round}: {}",
                w.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        w.kill();
    }
    // An unreadable message too.
    f.moto.boto(
        "sqs.send_message(QueueUrl=args[0], MessageBody='this is not a job')\nprint('null')",
        json!([f.queue_url]),
    );
    let mut extra = vec!["--workers", "1"];
    extra.extend_from_slice(&limits);
    let last = f.start("last.log", f.args("worker", &f.key_uri(), &extra), false);
    let job = client.wait(&id, Duration::from_secs(120));
    assert_eq!(job["status"], "failed", "{job}\n{}", last.log_text());
    assert_eq!(job["error_reason"], "attempts", "{job}");
    let error = job["error"].as_str().expect("error");
    assert!(error.contains("received 3 times"), "{error}");
    f.wait_queue_empty(Duration::from_secs(60), &[&last]);
    let dead = f.dead_letters();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let poison = dead
        .iter()
        .find(|d| d["body"]["job_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{dead:?}"));
    assert_eq!(poison["body"]["reason"], "attempts");
    assert_eq!(poison["attributes"]["reason"], "attempts");
    assert_eq!(poison["body"]["error"], error);
    assert_eq!(poison["body"]["receive_count"], 3);
    assert_eq!(
        serde_json::from_str::<Value>(poison["body"]["message"].as_str().expect("message"))
            .expect("json")["job_id"],
        id.as_str()
    );
    let garbage = dead
        .iter()
        .find(|d| d["body"]["reason"] == "unreadable_message")
        .unwrap_or_else(|| panic!("{dead:?}"));
    assert_eq!(garbage["body"]["message"], "this is not a job");
    // Nothing signed, the upload kept for inspection.
    assert!(f.moto.list(&f.results, "signed/").is_empty());
    assert_eq!(f.moto.list(&f.uploads, &format!("uploads/{id}/")).len(), 1);
    assert!(last
        .log_text()
        .contains("message moved to the dead-letter queue"));
}

/// One load run: `clients` clients each uploading and waiting for its jobs, `procs` worker
/// processes of 2 jobs each. Returns (jobs/s, p50 s, p99 s, worker reads/job, API reads/job
/// without the clients' status polls, scans).
fn load_run(
    f: &Fleet,
    procs: usize,
    jobs: usize,
    clients: usize,
) -> (f64, f64, f64, f64, f64, u64) {
    let mut api = f.start(
        &format!("api-{procs}-{}.log", unique("r")),
        f.args("serve", &f.key_uri(), &["--workers", "0"]),
        true,
    );
    let mut workers: Vec<Proc> = (0..procs)
        .map(|w| {
            f.start(
                &format!("load-{procs}-w{w}-{}.log", unique("r")),
                f.args("worker", &f.key_uri(), &["--workers", "2"]),
                false,
            )
        })
        .collect();
    let fx = fixtures();
    let results: Arc<Mutex<Vec<(String, String, f64)>>> = Arc::default();
    let polls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        for c in 0..clients {
            let (results, fx, base, polls) =
                (Arc::clone(&results), &fx, api.base(), Arc::clone(&polls));
            scope.spawn(move || {
                let client = Client::new(&base, API_KEY);
                for i in (c..jobs).step_by(clients) {
                    let (name, data) = &fx[i % fx.len()];
                    let file = format!("{i:03}-{name}");
                    let id = client.upload(&file, data);
                    let queued = Instant::now();
                    loop {
                        polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let (_, v) = client.api("GET", &format!("/jobs/{id}"), None);
                        if v["status"] == "done" {
                            break;
                        }
                        assert_ne!(v["status"], "failed", "{v}");
                        assert!(queued.elapsed() < Duration::from_secs(300), "{v}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    let secs = queued.elapsed().as_secs_f64();
                    results.lock().expect("lock").push((id, file, secs));
                }
            });
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    for w in &mut workers {
        stop(w);
    }
    stop(&mut api);
    let results = Arc::try_unwrap(results)
        .expect("arc")
        .into_inner()
        .expect("lock");
    assert_eq!(results.len(), jobs);
    let logs: String = workers.iter().map(|w| w.log_text()).collect();
    for (id, _, _) in &results {
        assert_eq!(audits(&logs, id), 1, "job {id} done once");
    }
    let (mut wreads, mut scans) = (0, 0);
    for w in &workers {
        let (r, s, _) = store_requests(w);
        wreads += r;
        scans += s;
    }
    let (areads, ascans, _) = store_requests(&api);
    let api_reads = areads - polls.load(std::sync::atomic::Ordering::Relaxed);
    let mut lat: Vec<f64> = results.iter().map(|r| r.2).collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    (
        jobs as f64 / wall,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        wreads as f64 / jobs as f64,
        api_reads as f64 / jobs as f64,
        scans + ascans,
    )
}

#[test]
fn load_table_1_2_4_workers_and_reads_per_job_with_10x_finished_jobs() {
    let _serial = serial();
    const JOBS: usize = 40;
    const CLIENTS: usize = 8;
    let f = fleet("load");
    let mut rows = Vec::new();
    for procs in [1, 2, 4] {
        rows.push((procs, "", load_run(&f, procs, JOBS, CLIENTS)));
    }
    // 10x more finished jobs than the table holds, then the one-worker run again.
    let finished = 3 * JOBS;
    f.add_finished_jobs(10 * finished);
    rows.push((1, " (table x10)", load_run(&f, 1, JOBS, CLIENTS)));
    println!("| worker processes (x 2 jobs) | jobs/s | p50 s | p99 s | DynamoDB reads/job (workers) | reads/job (API, w/o status polls) |");
    println!("|---|---|---|---|---|---|");
    for (procs, note, (rate, p50, p99, wr, ar, _)) in &rows {
        println!("| {procs}{note} | {rate:.2} | {p50:.2} | {p99:.2} | {wr:.2} | {ar:.2} |");
    }
    for (procs, note, (_, _, _, wr, ar, scans)) in &rows {
        assert_eq!(*scans, 0, "{procs}{note}: no Scan");
        // Bounded per job: the API reads the job once at completion (and once more when a
        // notification queued it first); workers read only for the bucket notification of
        // each API upload and for duplicate messages.
        assert!(*ar <= 1.5, "{procs}{note}: API reads per job {ar}");
        assert!(*wr <= 4.0, "{procs}{note}: worker reads per job {wr}");
    }
    // Constant in the table's size: the same run with 10x more finished jobs reads as much.
    let (base, big) = (&rows[0].2, &rows[3].2);
    assert!(
        (big.3 - base.3).abs() <= 0.25 && (big.4 - base.4).abs() <= 0.25,
        "reads per job grew with the table: {base:?} -> {big:?}"
    );
    assert_eq!(f.moto.list(&f.results, "signed/").len(), 4 * JOBS);
}

/// (status, Retry-After, body) of POST /uploads.
fn create(base: &str, key: &str, size: u64) -> (u16, Option<u64>, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .post(&format!("{base}/uploads"))
        .header("Authorization", &format!("Bearer {key}"))
        .header("content-type", "application/json")
        .send(json!({"file_name": "a.exe", "size": size}).to_string())
        .expect("http");
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let status = r.status().as_u16();
    let body = serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
        .unwrap_or(Value::Null);
    (status, retry, body)
}

#[test]
fn per_caller_limits_answer_429_with_retry_after() {
    let _serial = serial();
    let f = fleet("limits");
    let input = std::fs::read(test_env().join("fixtures/pe32.exe")).expect("fixture");
    let size = input.len() as u64;
    // Two jobs in flight per key; 5 files' worth of bytes per day.
    let max_bytes = (5 * size).to_string();
    let mut api = f.api(&[
        "--caller-max-in-flight",
        "2",
        "--caller-max-bytes-per-day",
        &max_bytes,
    ]);
    let client = Client::new(&api.base(), API_KEY);
    let a = client.upload("a.exe", &input);
    let b = client.upload("b.exe", &input);
    // No worker yet: two jobs queued, the third is refused, with Retry-After.
    let (st, retry, body) = create(&api.base(), API_KEY, size);
    assert_eq!(st, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_jobs", "{body}");
    assert_eq!(retry, Some(5));
    // Another key is not affected.
    let other = Client::new(&api.base(), OTHER_KEY);
    let c = other.upload("c.exe", &input);
    // A worker finishes them: the key may start jobs again.
    let w = f.start(
        "worker.log",
        f.args("worker", &f.key_uri(), &["--workers", "2"]),
        false,
    );
    for id in [&a, &b] {
        assert_eq!(client.wait(id, Duration::from_secs(120))["status"], "done");
    }
    assert_eq!(other.wait(&c, Duration::from_secs(120))["status"], "done");
    let d = client.upload("d.exe", &input); // bytes used: 3 files
    assert_eq!(
        client.wait(&d, Duration::from_secs(120))["status"],
        "done",
        "{}",
        w.log_text()
    );
    // Bytes per day: 3 of 5 files used; a 3-file upload would pass the limit.
    let (st, retry, body) = create(&api.base(), API_KEY, 3 * size);
    assert_eq!(st, 429, "{body}");
    assert_eq!(body["error"]["code"], "daily_bytes_exceeded", "{body}");
    let retry = retry.expect("Retry-After");
    assert!((1..=86_400).contains(&retry), "{retry}");
    // A 2-file upload still fits, then nothing more today.
    let (st, _, body) = create(&api.base(), API_KEY, 2 * size);
    assert_eq!(st, 201, "{body}");
    let (st, _, body) = create(&api.base(), API_KEY, 1);
    assert_eq!(st, 429, "{body}");
    let metrics = client.api("GET", "/metrics", None).1;
    let text = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("codeseal_caller_limited_total{limit=\"in_flight\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("codeseal_caller_limited_total{limit=\"bytes_per_day\"} 2"),
        "{text}"
    );
    stop(&mut api);
}
