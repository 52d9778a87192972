//! The service against moto (S3, DynamoDB and KMS on one 127.0.0.1 port, started by
//! scripts/moto.sh): the full flow with a KMS key, faults (KMS down, results bucket missing),
//! a worker killed with SIGKILL mid-job, and a load run of 200 uploads from 16 clients.
mod common;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine;
use common::*;

/// moto with the buckets, a KMS key and the API key of these tests.
type Setup = AwsWorld;

const API_KEY: &str = "moto-test-key";

fn setup(name: &str) -> Setup {
    AwsWorld::new(name, "svc", &[("tester", API_KEY)])
}

/// The arguments of this file's runs: [`AwsWorld::base_args`], the API keys (not for
/// workers: they serve no HTTP), a 200 ms poll interval, and `extra`.
trait Args {
    fn args(&self, cmd: &str, key_uri: &str, results: &str, extra: &[&str]) -> Vec<String>;
}

impl Args for Setup {
    fn args(&self, cmd: &str, key_uri: &str, results: &str, extra: &[&str]) -> Vec<String> {
        let mut a = self.base_args(cmd, key_uri, results);
        if !cmd.ends_with("worker") {
            a.extend(["--api-keys".into(), self.keys_file.display().to_string()]);
        }
        a.extend(["--poll-interval-ms".into(), "200".into()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }
}

/// A PE bigger than one 5 MiB part: a fixture with 6 MiB of overlay appended.
fn big_pe() -> Vec<u8> {
    let mut pe = std::fs::read(test_env().join("fixtures/pe64.exe")).expect("fixture");
    pe.extend((0..(6u32 << 20)).map(|i| (i % 251) as u8));
    pe
}

fn ddb_status(s: &Setup, id: &str) -> String {
    s.moto.job_item(&s.table, id)["status"]["S"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn moto_multipart_upload_kms_sign_store_download() {
    let s = setup("flow");
    let svc = s.start(
        "serve.log",
        s.args("serve", &s.key_uri(), &s.results, &[]),
        true,
    );
    let client = Client::new(&svc.base(), API_KEY);
    let input = big_pe();
    let id = client.upload("big app.exe", &input);
    let job = client.wait(&id, Duration::from_secs(120));
    assert_eq!(job["status"], "done", "{job}\n{}", svc.log_text());
    let url = job["download_url"].as_str().expect("url");
    assert!(url.contains("X-Amz-Signature"), "a presigned S3 URL: {url}");
    let bytes = client.download(url);
    let sha = sha256_hex(&bytes);
    assert_eq!(sha, job["signed_sha256"].as_str().expect("sha"));
    assert_independently_verified(&bytes, s.dir.path(), "downloaded.exe");

    // The stored object's ChecksumSHA256 is the file's SHA-256.
    let keys = s.moto.list(&s.results, &format!("signed/{id}/"));
    assert_eq!(keys.len(), 1, "{keys:?}");
    let (checksum, stored) = s.moto.get_with_checksum(&s.results, &keys[0]);
    assert_eq!(stored, bytes);
    assert_eq!(
        checksum,
        base64::engine::general_purpose::STANDARD.encode(hex::decode(&sha).expect("hex"))
    );
    // The upload is gone; DynamoDB says done.
    assert!(s.moto.list(&s.uploads, "uploads/").is_empty());
    assert_eq!(ddb_status(&s, &id), "done");
    // One audit record for the signature, naming the KMS key and the job.
    let log = svc.log_text();
    let audit: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("codeseal::audit") && l.contains(&id))
        .collect();
    assert_eq!(audit.len(), 1, "{log}");
    assert!(
        audit[0].contains(&s.alias) && audit[0].contains(&sha),
        "{}",
        audit[0]
    );
}

#[test]
fn moto_faults_leave_the_upload_and_no_result() {
    let s = setup("faults");
    let input = std::fs::read(test_env().join("fixtures/pe32.exe")).expect("fixture");

    // 1. KMS down: the key lives on a second moto, stopped once the service has started.
    let kms = Moto::start("faults-kms");
    let kms_alias = unique("down");
    let kms_chain = kms.kms_key_with_cert(&kms_alias, s.dir.path());
    let authority = kms.endpoint().trim_start_matches("http://").to_string();
    let uri = format!("awskms://{authority}/alias/{kms_alias}");
    let mut args = s.args("serve", &uri, &s.results, &[]);
    let pos = args.iter().position(|a| a == "--cert").expect("--cert") + 1;
    args[pos] = kms_chain.display().to_string();
    let svc = s.start("kms-down.log", args, true);
    kms.stop();
    let client = Client::new(&svc.base(), API_KEY);
    let id = client.upload("app.exe", &input);
    let job = client.wait(&id, Duration::from_secs(180));
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_reason"], "signing", "{job}");
    // Our message only: no SDK text, no endpoint.
    assert_eq!(
        job["error"], "signing failed: the signing key could not be used; try again later",
        "{job}"
    );
    assert!(!job.to_string().contains(&authority), "{job}");
    assert_eq!(
        s.moto.list(&s.uploads, &format!("uploads/{id}/")).len(),
        1,
        "upload kept"
    );
    assert!(s.moto.list(&s.results, &format!("signed/{id}/")).is_empty());
    assert_eq!(ddb_status(&s, &id), "failed");
    drop(svc);

    // 2. The results bucket does not exist.
    let missing = unique("no-such-bucket");
    let svc = s.start(
        "no-results.log",
        s.args("serve", &s.key_uri(), &missing, &[]),
        true,
    );
    let client = Client::new(&svc.base(), API_KEY);
    let id = client.upload("app.exe", &input);
    let job = client.wait(&id, Duration::from_secs(120));
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_reason"], "results_store", "{job}");
    // The S3 error reaches the log, not the client.
    assert_eq!(job["error"], "the signed file could not be stored", "{job}");
    let text = job.to_string();
    for sdk in ["NoSuchBucket", "service error", &missing] {
        assert!(!text.contains(sdk), "{sdk} in {text}");
    }
    assert!(svc.log_text().contains("NoSuchBucket"));
    assert_eq!(
        s.moto.list(&s.uploads, &format!("uploads/{id}/")).len(),
        1,
        "upload kept"
    );
    assert!(s.moto.list(&s.results, &format!("signed/{id}/")).is_empty());
    // An API call S3 refuses (a part list naming parts never sent): our code and message.
    let (st, v) = client.api(
        "POST",
        "/uploads",
        Some(serde_json::json!({"file_name": "c.exe", "size": 10})),
    );
    assert_eq!(st, 201, "{v}");
    let (st, v) = client.api(
        "POST",
        &format!("/uploads/{}/complete", v["job_id"].as_str().expect("id")),
        Some(serde_json::json!({"parts": [{"part_number": 1, "etag": "\"0123\""}]})),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad_request", "{v}");
    assert_eq!(
        v["error"]["message"],
        "the part list does not match the uploaded parts (part numbers and ETags)",
        "{v}"
    );
    assert!(!v.to_string().contains("InvalidPart"), "{v}");
    drop(svc);

    // 3. The key is gone (KMS answers NotFoundException): a permanent failure, not retried.
    let kms = Moto::start("faults-kms-gone");
    let gone_alias = unique("gone");
    let gone_chain = kms.kms_key_with_cert(&gone_alias, s.dir.path());
    let authority = kms.endpoint().trim_start_matches("http://").to_string();
    let uri = format!("awskms://{authority}/alias/{gone_alias}");
    let mut args = s.args("serve", &uri, &s.results, &[]);
    let pos = args.iter().position(|a| a == "--cert").expect("--cert") + 1;
    args[pos] = gone_chain.display().to_string();
    let svc = s.start("kms-gone.log", args, true);
    // moto's reset forgets every key of that server.
    let reset = ureq::post(&format!("{}/moto-api/reset", kms.endpoint()))
        .send_empty()
        .expect("moto reset");
    assert_eq!(reset.status().as_u16(), 200);
    let client = Client::new(&svc.base(), API_KEY);
    let t0 = Instant::now();
    let id = client.upload("app.exe", &input);
    let job = client.wait(&id, Duration::from_secs(120));
    assert_eq!(job["status"], "failed", "{job}\n{}", svc.log_text());
    assert_eq!(job["error_reason"], "key_not_found", "{job}");
    assert_eq!(
        job["error"], "signing failed: the service's signing key was not found",
        "{job}"
    );
    assert_eq!(job["attempts"], 1, "{job}");
    let log = svc.log_text();
    assert!(!log.contains("transient failure, retrying"), "{log}");
    assert!(
        log.contains("NotFoundException"),
        "the detail is logged: {log}"
    );
    println!(
        "permanent key failure reported in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    kms.stop();
}

#[test]
fn sigkilled_worker_job_is_taken_up_after_its_lease_and_done_once() {
    let s = setup("sigkill");
    // API only, and a slow worker (each step sleeps 4 s) with a 3 s lease.
    let api = s.start(
        "api.log",
        s.args("serve", &s.key_uri(), &s.results, &["--workers", "0"]),
        true,
    );
    let client = Client::new(&api.base(), API_KEY);
    let slow_args = s.args("worker", &s.key_uri(), &s.results, SLOW_WORKER);
    let mut slow = s.start("slow-worker.log", slow_args, false);
    let input = std::fs::read(test_env().join("fixtures/pe64.dll")).expect("fixture");
    let id = client.upload("lib.dll", &input);
    wait_for_status(&client, &id, "signing", &slow);
    slow.kill(); // SIGKILL
    assert_eq!(
        ddb_status(&s, &id),
        "signing",
        "the dead worker's lease stays until it expires"
    );
    let fast = s.start(
        "fast-worker.log",
        s.args(
            "worker",
            &s.key_uri(),
            &s.results,
            &["--lease-seconds", "3", "--workers", "1"],
        ),
        false,
    );
    let job = client.wait(&id, Duration::from_secs(120));
    assert_eq!(job["status"], "done", "{job}\n{}", fast.log_text());
    assert_eq!(
        job["attempts"], 2,
        "taken up once more after the lease: {job}"
    );
    // Exactly one result, one audit record, the upload gone.
    assert_eq!(s.moto.list(&s.results, &format!("signed/{id}/")).len(), 1);
    assert!(s.moto.list(&s.uploads, "uploads/").is_empty());
    let audits = fast
        .log_text()
        .lines()
        .filter(|l| l.contains("codeseal::audit") && l.contains(&id))
        .count()
        + slow
            .log_text()
            .lines()
            .filter(|l| l.contains("codeseal::audit"))
            .count();
    assert_eq!(audits, 1);
    let bytes = client.download(job["download_url"].as_str().expect("url"));
    assert_independently_verified(&bytes, s.dir.path(), "recovered.dll");
}

/// (job id, file name, seconds from upload start to done, final job view).
type Finished = (String, String, f64, serde_json::Value);

#[test]
fn load_200_uploads_16_clients_server_and_two_workers() {
    const UPLOADS: usize = 200;
    const CLIENTS: usize = 16;
    let s = setup("load");
    let api = s.start(
        "api.log",
        s.args("serve", &s.key_uri(), &s.results, &["--workers", "0"]),
        true,
    );
    let w1 = s.start(
        "w1.log",
        s.args("worker", &s.key_uri(), &s.results, &["--workers", "4"]),
        false,
    );
    let w2 = s.start(
        "w2.log",
        s.args("worker", &s.key_uri(), &s.results, &["--workers", "4"]),
        false,
    );
    let fixtures: Vec<(String, Vec<u8>)> = ["pe32.exe", "pe64.exe", "pe32.dll", "pe64.dll"]
        .iter()
        .map(|f| {
            (
                f.to_string(),
                std::fs::read(test_env().join("fixtures").join(f)).expect("fixture"),
            )
        })
        .collect();
    let results: Arc<Mutex<Vec<Finished>>> = Arc::default();
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        for c in 0..CLIENTS {
            let (results, fixtures, base) = (Arc::clone(&results), &fixtures, api.base());
            scope.spawn(move || {
                let client = Client::new(&base, API_KEY);
                for i in (c..UPLOADS).step_by(CLIENTS) {
                    let (name, data) = &fixtures[i % fixtures.len()];
                    let started = Instant::now();
                    let file = format!("{i:03}-{name}");
                    let id = client.upload(&file, data);
                    let job = client.wait(&id, Duration::from_secs(600));
                    let secs = started.elapsed().as_secs_f64();
                    results.lock().expect("lock").push((id, file, secs, job));
                }
            });
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let results = Arc::try_unwrap(results)
        .expect("arc")
        .into_inner()
        .expect("lock");
    assert_eq!(results.len(), UPLOADS);
    let mut ids: Vec<&str> = results.iter().map(|r| r.0.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), UPLOADS, "no duplicated job ids");
    // Done exactly once: one audit record (written only by the worker whose conditional
    // "done" write won) per job across both workers.
    let logs = format!("{}{}", w1.log_text(), w2.log_text());
    let mut reclaimed = 0;
    for (id, _, _, job) in &results {
        assert_eq!(job["status"], "done", "{job}");
        assert_eq!(job["verify"]["valid"], true);
        let audits = logs
            .lines()
            .filter(|l| l.contains("codeseal::audit") && l.contains(id.as_str()))
            .count();
        assert_eq!(audits, 1, "job {id} recorded {audits} times");
        if job["attempts"] != 1 {
            reclaimed += 1;
        }
    }
    // 200 results, one per job; no upload left.
    let stored = s.moto.list(&s.results, "signed/");
    assert_eq!(stored.len(), UPLOADS, "one result per job");
    for (id, file, _, _) in &results {
        assert!(stored
            .iter()
            .any(|k| k.starts_with(&format!("signed/{id}/")) && k.ends_with(file)));
    }
    assert!(s.moto.list(&s.uploads, "uploads/").is_empty());
    // Every result verifies with osslsigncode (signify on a sample: it is slower).
    let root = test_env().join("pki/root.pem");
    let client = Client::new(&api.base(), API_KEY);
    for (n, (_, file, _, job)) in results.iter().enumerate() {
        let bytes = client.download(job["download_url"].as_str().expect("url"));
        assert_eq!(
            sha256_hex(&bytes),
            job["signed_sha256"].as_str().expect("sha")
        );
        let f: PathBuf = s.dir.path().join(file);
        std::fs::write(&f, &bytes).expect("write");
        let (ok, out) = osslsigncode_ok(&f, &root);
        assert!(ok, "{file}: {out}");
        if n % 40 == 0 {
            let (ok, out) = signify_ok(&f, &root);
            assert!(ok, "{file}: {out}");
        }
        let _ = std::fs::remove_file(Path::new(&f));
    }
    let mut lat: Vec<f64> = results.iter().map(|r| r.2).collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "service load: {UPLOADS} uploads, {CLIENTS} clients, API + 2 workers x 4 jobs on moto: \
         {wall:.1} s wall, {:.1} jobs/s; per-job latency (create upload -> done seen by the client) \
         p50 {:.2} s, p99 {:.2} s, max {:.2} s; jobs claimed more than once: {reclaimed}",
        UPLOADS as f64 / wall,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
}

fn s3_event(bucket: &str, key: &str) -> serde_json::Value {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key.replace(' ', "+"), "size": 1}}
    }]})
}

#[test]
fn lambda_worker_handles_sqs_s3_events_once_and_lambda_api_serves_jobs() {
    let s = setup("lambda");
    // A file put straight into the uploads bucket (no API), as the seed pipeline does.
    let input = std::fs::read(test_env().join("fixtures/pe32.exe")).expect("fixture");
    let key = "uploads/direct/my tool.exe";
    s.moto.boto(
        "s3.put_object(Bucket=args[0], Key=args[1], Body=base64.b64decode(args[2]))\nprint('null')",
        serde_json::json!([
            s.uploads,
            key,
            base64::engine::general_purpose::STANDARD.encode(&input)
        ]),
    );
    let sqs = |msg: &str, body: serde_json::Value| serde_json::json!({"Records": [{"messageId": msg, "eventSource": "aws:sqs", "body": body.to_string()}]});
    let events = vec![
        sqs("m1", s3_event(&s.uploads, key)),
        // The same notification delivered again: nothing is signed twice.
        sqs("m2", s3_event(&s.uploads, key)),
        // An object outside uploads/ and another bucket's object are ignored.
        s3_event(&s.uploads, "elsewhere/x.exe"),
        s3_event("another-bucket", key),
    ];
    let rt = FakeRuntime::start(events);
    let mut cmd = s.moto.command(env!("CARGO_BIN_EXE_codeseal-service"));
    rt.env(&mut cmd);
    let _worker = Proc::start(
        cmd,
        &s.args("lambda-worker", &s.key_uri(), &s.results, &[]),
        &s.dir.path().join("lambda-worker.log"),
        false,
    );
    for i in 0..4 {
        let (id, kind, body) = rt.next(Duration::from_secs(120));
        assert_eq!(
            (id.as_str(), kind.as_str()),
            (format!("req-{i}").as_str(), "response"),
            "{body}"
        );
        assert_eq!(
            body["batchItemFailures"],
            serde_json::json!([]),
            "event {i}: {body}"
        );
    }
    let results = s.moto.list(&s.results, "signed/");
    assert_eq!(results.len(), 1, "signed once: {results:?}");
    assert!(results[0].ends_with("/my tool.exe"));
    assert!(
        s.moto.list(&s.uploads, "uploads/").is_empty(),
        "upload deleted"
    );
    let job_id = results[0].split('/').nth(1).expect("job id").to_string();
    let item = s.moto.job_item(&s.table, &job_id);
    assert_eq!(item["status"]["S"], "done", "{item}");
    assert_eq!(item["caller"]["S"], "event");
    assert_eq!(item["attempts"]["N"], "1");
    let (_, signed) = s.moto.get_with_checksum(&s.results, &results[0]);
    assert_independently_verified(&signed, s.dir.path(), "lambda.exe");

    // The API as a Lambda function behind API Gateway (HTTP API, payload 2.0).
    let apigw = |path: &str, auth: Option<&str>| {
        let mut headers = serde_json::json!({"host": "api.example", "user-agent": "test"});
        if let Some(a) = auth {
            headers["authorization"] = serde_json::json!(format!("Bearer {a}"));
        }
        serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": headers, "isBase64Encoded": false,
            "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.example",
                "domainPrefix": "api", "requestId": "r", "routeKey": "$default", "stage": "$default",
                "time": "24/Nov/2026:00:00:00 +0000", "timeEpoch": 1795478400000u64,
                "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"}}
        })
    };
    // Events (caller "event") are visible to admin keys only.
    let keys = s.dir.path().join("admin-keys");
    std::fs::write(
        &keys,
        format!(
            "{} admin\n",
            codeseal_service::auth::hash_line("ops", API_KEY)
        ),
    )
    .expect("write");
    let rt = FakeRuntime::start(vec![
        apigw("/healthz", None),
        apigw(&format!("/jobs/{job_id}"), None),
        apigw(&format!("/jobs/{job_id}"), Some(API_KEY)),
    ]);
    let mut cmd = s.moto.command(env!("CARGO_BIN_EXE_codeseal-service"));
    rt.env(&mut cmd);
    let mut args = s.args("lambda-api", &s.key_uri(), &s.results, &[]);
    let pos = args
        .iter()
        .position(|a| a == "--api-keys")
        .expect("--api-keys")
        + 1;
    args[pos] = keys.display().to_string();
    let _api = Proc::start(cmd, &args, &s.dir.path().join("lambda-api.log"), false);
    let status_body = |v: &serde_json::Value| {
        let body: serde_json::Value =
            serde_json::from_str(v["body"].as_str().unwrap_or("null")).unwrap_or_default();
        (v["statusCode"].as_u64().unwrap_or(0), body)
    };
    let (_, _, health) = rt.next(Duration::from_secs(60));
    assert_eq!(status_body(&health).0, 200, "{health}");
    let (_, _, unauth) = rt.next(Duration::from_secs(60));
    assert_eq!(status_body(&unauth).0, 401, "{unauth}");
    let (_, _, job) = rt.next(Duration::from_secs(60));
    let (code, body) = status_body(&job);
    assert_eq!(code, 200, "{job}");
    assert_eq!(body["status"], "done", "{body}");
    let url = body["download_url"].as_str().expect("url");
    assert_eq!(
        sha256_hex(&Client::new("", "").download(url)),
        sha256_hex(&signed)
    );
}
