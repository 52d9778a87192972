//! The service on the embedded default (local directories + redb job table, a local key):
//! upload → sign → verify → store → download, API keys, the /sign route, and bad uploads.
mod common;

use std::{path::Path, time::Duration};

use base64::Engine;
use common::*;
use serde_json::json;

struct Embedded {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    proc: Proc,
}

fn start(extra: &[&str]) -> Embedded {
    let pki = test_env().join("pki");
    let key = format!("file:{}", pki.join("leaf-p256.key").display());
    let cert = pki.join("leaf-p256-chain.pem").display().to_string();
    let trust = pki.join("root.pem").display().to_string();
    let mut args = vec!["--key", &key, "--cert", &cert, "--trust", &trust];
    args.extend_from_slice(extra);
    start_with(&args)
}

/// An embedded service with these key, certificate and trust arguments (and any others).
fn start_with(extra: &[&str]) -> Embedded {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut args: Vec<String> = [
        "serve",
        "--embedded",
        "--listen",
        "127.0.0.1:0",
        "--poll-interval-ms",
        "200",
        "--part-size",
        "4096",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("--data-dir".into());
    args.push(data.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let proc = Proc::start(service_bin(), &args, &dir.path().join("service.log"), true);
    Embedded {
        data,
        proc,
        _dir: dir,
    }
}

fn api_key(data: &Path) -> String {
    std::fs::read_to_string(data.join("api-key"))
        .expect("api-key")
        .trim()
        .to_string()
}

/// The failed upload `name` of job `id` is kept, byte for byte.
fn assert_kept(svc: &Embedded, id: &str, name: &str, data: &[u8]) {
    let kept = svc.data.join("objects/uploads").join(id).join(name);
    assert_eq!(std::fs::read(&kept).expect("upload kept"), data);
}

#[test]
fn embedded_upload_sign_verify_download() {
    let svc = start(&[]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    let input = std::fs::read(test_env().join("fixtures/pe64.exe")).expect("fixture");
    let id = client.upload("pe64 app.exe", &input);
    let job = client.wait(&id, Duration::from_secs(60));
    assert_eq!(job["status"], "done", "{job}\n{}", svc.proc.log_text());
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["verify"]["valid"], true);
    assert_eq!(job["verify"]["signatures"][0]["chain_checked"], true);
    let bytes = client.download(job["download_url"].as_str().expect("url"));
    assert_eq!(
        sha256_hex(&bytes),
        job["signed_sha256"].as_str().expect("sha")
    );
    assert_eq!(
        bytes.len() as u64,
        job["signed_size"].as_u64().expect("size")
    );
    assert_ne!(bytes, input);
    let tmp = tempfile::tempdir().expect("tmp");
    assert_independently_verified(&bytes, tmp.path(), "downloaded.exe");

    // The stored object's checksum is the file's SHA-256; the upload is gone.
    let signed_dir = svc.data.join("objects/signed").join(&id);
    let attempt_dir = std::fs::read_dir(&signed_dir)
        .expect("signed dir")
        .next()
        .expect("one attempt")
        .expect("entry")
        .path();
    let sidecar =
        std::fs::read_to_string(attempt_dir.join("pe64 app.exe.sha256")).expect("sidecar");
    assert_eq!(
        sidecar,
        base64::engine::general_purpose::STANDARD
            .encode(hex::decode(job["signed_sha256"].as_str().expect("sha")).expect("hex"))
    );
    assert!(
        !svc.data.join("objects/uploads").join(&id).exists(),
        "upload not deleted"
    );

    // Metrics saw it.
    client.assert_metrics(&[
        "codeseal_jobs_succeeded_total 1",
        "codeseal_sign_duration_seconds_count 1",
    ]);

    // A repeated complete is idempotent; the job stays done.
    let (st, v) = client.api(
        "POST",
        &format!("/uploads/{id}/complete"),
        Some(json!({"parts": []})),
    );
    assert_eq!((st, v["status"].as_str()), (202, Some("done")), "{v}");
}

#[test]
fn embedded_signs_scripts() {
    let svc = start(&[]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    let tmp = tempfile::tempdir().expect("tmp");
    let text = "# caf\u{e9}\r\nWrite-Host \"Hello\"\r\n";
    for (name, data) in [
        (
            "deploy.ps1",
            [&[0xef, 0xbb, 0xbf][..], text.as_bytes()].concat(),
        ),
        ("Module (1).psm1", text.as_bytes().to_vec()),
        ("setup.vbs", b"WScript.Echo \"Hello\"\r\n".to_vec()),
    ] {
        let (_, bytes) = client.signed(name, &data, &svc.proc);
        assert!(bytes.starts_with(&data), "{name}: the text changed");
        if !name.ends_with(".vbs") {
            // osslsigncode 2.9 reads the PowerShell family, not VBScript.
            assert_osslsigncode_accepts(&bytes, tmp.path(), name);
        }
    }
}

/// Cabinets (gcab's, from scripts/make-cabs.sh) are signed like any other type; a cabinet of
/// a multi-cabinet set fails with `malformed_cab` and is kept.
#[test]
fn embedded_signs_cabinets() {
    let svc = start(&[]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    let tmp = tempfile::tempdir().expect("tmp");
    let cabs = test_env().join("cabs");
    for name in ["stored.cab", "several.cab"] {
        let data = std::fs::read(cabs.join(name)).expect("fixture");
        let (_, bytes) = client.signed(name, &data, &svc.proc);
        assert_eq!(&bytes[..4], b"MSCF", "{name}");
        assert_eq!(
            bytes.len() % 8,
            data.len() % 8,
            "{name}: 24 + a padded signature"
        );
        assert_osslsigncode_accepts(&bytes, tmp.path(), name);
    }
    let mut set = std::fs::read(cabs.join("stored.cab")).expect("fixture");
    set[30] |= 2;
    let (id, job) = client.failed("part1.cab", &set, "malformed_cab");
    assert!(
        job["error"]
            .as_str()
            .expect("error")
            .contains("multi-cabinet"),
        "{job}"
    );
    assert_kept(&svc, &id, "part1.cab", &set);
}

/// Catalogs (`.cat`) sign like any other upload: an unsigned catalog made by the library's
/// `build_catalog` comes back with one signer over the same CTL, valid in the job's report
/// and in osslsigncode; the signed one verifies its members; a truncated catalog fails
/// as malformed and is kept.
#[test]
fn embedded_signs_catalogs() {
    use codeseal_authenticode::{
        catalog::{build_catalog, find_file_member, verify_catalog},
        formats::catalog::parse_catalog,
    };
    let svc = start(&[]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    let tmp = tempfile::tempdir().expect("tmp");
    let pe = tmp.path().join("app.exe");
    std::fs::copy(test_env().join("fixtures/pe64.exe"), &pe).expect("copy");
    let txt = tmp.path().join("notes.txt");
    std::fs::write(&txt, "catalog member\n").expect("write");
    let data = build_catalog(
        &[pe.clone(), txt.clone()],
        codeseal_signer::DigestAlgorithm::Sha256,
    )
    .expect("catalog");
    let (_, bytes) = client.signed("drivers.cat", &data, &svc.proc);
    let signed = parse_catalog(&bytes).expect("a catalog");
    assert_eq!(signed.content_info.signed_data.signer_infos.len(), 1);
    assert_eq!(
        signed.ctl_der,
        parse_catalog(&data).expect("input").ctl_der,
        "the CTL is kept byte for byte"
    );
    assert_osslsigncode_accepts(&bytes, tmp.path(), "drivers.cat");
    let anchors = codeseal_keys::load_certificates(&test_env().join("pki/root.pem")).expect("root");
    let report = verify_catalog(&bytes, Some(&anchors)).expect("verify");
    assert_eq!(report.trusted, Some(true), "{:?}", report.chain_errors);
    for f in [&pe, &txt] {
        assert!(find_file_member(&report, f).expect("lookup").is_some());
    }
    // A truncated catalog fails as malformed input, and the upload is kept.
    let cut = &data[..data.len() / 2];
    let (id, _) = client.failed("cut.cat", cut, "malformed_catalog");
    assert_kept(&svc, &id, "cut.cat", cut);
}

/// MSI installers (wixl's) sign like any other upload; the result passes osslsigncode and
/// keeps the MSI header; a truncated compound file fails with `malformed_msi` and is kept.
#[test]
fn embedded_signs_installers() {
    let svc = start(&[]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    let tmp = tempfile::tempdir().expect("tmp");
    let msis = test_env().join("msis");
    for name in ["one.msi", "several.msi"] {
        let data = std::fs::read(msis.join(name)).expect("fixture");
        let (_, bytes) = client.signed(name, &data, &svc.proc);
        assert_eq!(&bytes[..8], &data[..8], "{name}");
        assert_osslsigncode_accepts(&bytes, tmp.path(), name);
    }
    let whole = std::fs::read(msis.join("several.msi")).expect("fixture");
    let cut = whole[..whole.len() / 3].to_vec();
    let (id, _) = client.failed("cut.msi", &cut, "malformed_msi");
    assert_kept(&svc, &id, "cut.msi", &cut);
}

#[test]
fn embedded_rejects_bad_uploads_and_keeps_them() {
    let svc = start(&[]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    let pe = std::fs::read(test_env().join("fixtures/pe32.exe")).expect("fixture");
    let cases: [(&str, Vec<u8>, &[&str]); 3] = [
        (
            "notes.exe",
            b"this is not a PE file at all, just text".repeat(200),
            &["unsupported_type"],
        ),
        (
            "half.exe",
            pe[..pe.len() / 2].to_vec(),
            &["truncated", "not_pe", "malformed_pe"],
        ),
        (
            "broken.ps1",
            b"Write-Host 1\r\n# SIG # Begin signature block\r\n# MIIB\r\n".to_vec(),
            &["malformed_script"],
        ),
    ];
    for (name, data, reasons) in cases {
        let id = client.upload(name, &data);
        let job = client.wait(&id, Duration::from_secs(60));
        assert_eq!(job["status"], "failed", "{job}");
        let reason = job["error_reason"].as_str().expect("reason");
        assert!(reasons.contains(&reason), "{name}: reason {reason}: {job}");
        assert!(!job["error"].as_str().expect("error").is_empty());
        assert!(job["download_url"].is_null());
        // The upload is kept, nothing is in the results.
        assert_kept(&svc, &id, name, &data);
        assert!(!svc.data.join("objects/signed").join(&id).exists());
    }
    client.assert_metrics(&["codeseal_jobs_failed_total{reason=\"unsupported_type\"}"]);
}

#[test]
fn api_keys_and_input_validation() {
    let dir = tempfile::tempdir().expect("tmp");
    let hash = |name: &str, key: &str| {
        let o = service_bin()
            .args(["hash-key", "--name", name])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().expect("stdin").write_all(key.as_bytes())?;
                c.wait_with_output()
            })
            .expect("hash-key");
        assert!(o.status.success());
        String::from_utf8(o.stdout).expect("utf8")
    };
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!(
            "{}{}",
            hash("alice", "alice-secret"),
            hash("bob", "bob-secret")
        ),
    )
    .expect("write");
    assert!(!std::fs::read_to_string(&keys)
        .expect("keys")
        .contains("secret"));
    let svc = start(&["--api-keys", keys.to_str().expect("utf8")]);
    let alice = Client::new(&svc.proc.base(), "alice-secret");
    let bob = Client::new(&svc.proc.base(), "bob-secret");

    // Health needs no key; everything else does.
    assert_eq!(alice.call("GET", "/healthz", None, None).0, 200);
    for (m, p) in [
        ("POST", "/uploads"),
        ("GET", "/metrics"),
        ("POST", "/sign"),
        ("GET", "/jobs/00000000000000000000000000000000"),
    ] {
        let (st, v) = alice.call(m, p, Some(json!({})), None);
        assert_eq!(st, 401, "{m} {p} without a key: {v}");
        assert_eq!(v["error"]["code"], "unauthorized");
        let (st, _) = alice.call(m, p, Some(json!({})), Some("alice-secret "));
        assert_ne!(st, 401, "{m} {p}: a trailing space is trimmed");
        let (st, _) = alice.call(m, p, Some(json!({})), Some("alice-secreT"));
        assert_eq!(st, 401, "{m} {p} with a wrong key");
    }

    // Validation.
    for body in [
        json!({"file_name": "../x.exe", "size": 10}),
        json!({"file_name": "", "size": 10}),
        json!({"file_name": "a.exe", "size": 0}),
        json!({"file_name": "a.exe", "size": 1u64 << 40}),
        json!({"file_name": "a.exe"}),
        json!({"file_name": "a.exe", "size": 10, "extra": 1}),
    ] {
        let (st, v) = alice.api("POST", "/uploads", Some(body.clone()));
        assert!(st == 400 || st == 413, "{body}: {st} {v}");
        assert!(v["error"]["message"].as_str().is_some(), "{v}");
    }

    // Jobs are private to their caller.
    let (st, v) = alice.api(
        "POST",
        "/uploads",
        Some(json!({"file_name": "a.exe", "size": 5000})),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        v["parts"].as_array().expect("parts").len(),
        2,
        "4096-byte parts"
    );
    let id = v["job_id"].as_str().expect("id");
    assert_eq!(alice.api("GET", &format!("/jobs/{id}"), None).0, 200);
    assert_eq!(bob.api("GET", &format!("/jobs/{id}"), None).0, 404);
    // Completing with a wrong part list fails and leaves the job uploading.
    let (st, _) = alice.api(
        "POST",
        &format!("/uploads/{id}/complete"),
        Some(json!({"parts": [{"part_number": 1, "etag": "\"x\""}]})),
    );
    assert_eq!(st, 400);
    assert_eq!(
        alice.api("GET", &format!("/jobs/{id}"), None).1["status"],
        "uploading"
    );
    // A presigned URL with a forged signature is refused.
    let url = v["parts"][0]["url"]
        .as_str()
        .expect("url")
        .replace("sig=", "sig=00");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let st = agent
        .put(&url)
        .send(&b"MZ"[..])
        .expect("put")
        .status()
        .as_u16();
    assert_eq!(st, 400);

    // The /sign route is off by default.
    let (st, v) = alice.api("POST", "/sign", Some(json!({"message": "aGVsbG8="})));
    assert_eq!((st, v["error"]["code"].as_str()), (404, Some("disabled")));
}

#[test]
fn sign_route_signs_digests_and_messages() {
    use der::{DecodePem, Encode};
    let svc = start(&["--enable-sign-route"]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    let b64 = base64::engine::general_purpose::STANDARD;
    let leaf_pem = std::fs::read(test_env().join("pki/leaf-p256.pem")).expect("leaf");
    let leaf = x509_cert::Certificate::from_pem(&leaf_pem).expect("cert");
    let spki = leaf.tbs_certificate.subject_public_key_info.clone();
    let digest = <sha2::Sha256 as sha2::Digest>::digest(b"hello");
    for body in [
        json!({"digest": b64.encode(digest)}),
        json!({"message": b64.encode(b"hello")}),
    ] {
        let (st, v) = client.api("POST", "/sign", Some(body.clone()));
        assert_eq!(st, 200, "{v}");
        let sig = b64
            .decode(v["signature"].as_str().expect("sig"))
            .expect("b64");
        codeseal_signer::verify_prehash(
            &spki,
            codeseal_signer::DigestAlgorithm::Sha256,
            &digest,
            &sig,
        )
        .expect("the signature verifies with the certificate's key");
        assert_eq!(
            v["certificate_sha256"],
            sha256_hex(&leaf.to_der().expect("der"))
        );
    }
    for bad in [
        json!({"digest": b64.encode([0u8; 31])}),
        json!({"digest": "!!"}),
        json!({}),
        json!({"digest": b64.encode(digest), "message": "aA=="}),
        json!({"digest": b64.encode(digest), "digest_algorithm": "md5"}),
    ] {
        let (st, v) = client.api("POST", "/sign", Some(bad.clone()));
        assert_eq!(st, 400, "{bad}: {v}");
    }
    // An audit record per call (2 signed, 5 refused), with the caller, key and certificate.
    let log = svc.proc.log_text();
    let audit: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("codeseal::audit") && l.contains("raw_signature"))
        .collect();
    assert_eq!(audit.len(), 7, "{log}");
    let hex_digest = hex::encode(digest);
    let signed: Vec<&&str> = audit
        .iter()
        .filter(|l| l.contains("result=signed"))
        .collect();
    assert_eq!(signed.len(), 2, "{log}");
    for l in signed {
        assert!(l.contains("caller=local") && l.contains(&hex_digest), "{l}");
        assert!(l.contains("leaf-p256.key"), "the key label: {l}");
    }
    assert_eq!(
        audit
            .iter()
            .filter(|l| l.contains("result=bad_request"))
            .count(),
        5,
        "{log}"
    );
}

#[test]
fn sign_route_is_off_by_default_and_admin_only_when_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!(
            "{}\n{} admin\n",
            codeseal_service::auth::hash_line("ci", "ci-secret"),
            codeseal_service::auth::hash_line("ops", "ops-secret")
        ),
    )
    .expect("write");
    let keys = keys.to_str().expect("utf8");
    let b64 = base64::engine::general_purpose::STANDARD;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(b"release manifest");
    let body = json!({"digest": b64.encode(digest)});

    // Default: off, for admin keys too, and nothing is signed or audited.
    let off = start(&["--api-keys", keys]);
    for key in ["ops-secret", "ci-secret"] {
        let (st, v) = Client::new(&off.proc.base(), key).api("POST", "/sign", Some(body.clone()));
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (404, Some("disabled")),
            "{v}"
        );
    }
    assert!(!off.proc.log_text().contains("codeseal::audit"));

    // On: admin keys only; every call leaves one audit record naming the key, not its secret.
    let on = start(&["--api-keys", keys, "--enable-sign-route"]);
    let ci = Client::new(&on.proc.base(), "ci-secret");
    let ops = Client::new(&on.proc.base(), "ops-secret");
    let (st, v) = ci.api("POST", "/sign", Some(body.clone()));
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    assert!(v.get("signature").is_none());
    let (st, v) = ops.api("POST", "/sign", Some(body.clone()));
    assert_eq!(st, 200, "{v}");
    let leaf_pem = std::fs::read(test_env().join("pki/leaf-p256.pem")).expect("leaf");
    let leaf = <x509_cert::Certificate as der::DecodePem>::from_pem(&leaf_pem).expect("cert");
    codeseal_signer::verify_prehash(
        &leaf.tbs_certificate.subject_public_key_info,
        codeseal_signer::DigestAlgorithm::Sha256,
        &digest,
        &b64.decode(v["signature"].as_str().expect("sig"))
            .expect("b64"),
    )
    .expect("the signature verifies");
    let log = on.proc.log_text();
    let audit: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("codeseal::audit"))
        .collect();
    assert_eq!(audit.len(), 2, "{log}");
    assert!(
        audit[0].contains("caller=ci") && audit[0].contains("result=forbidden"),
        "{}",
        audit[0]
    );
    let hex_digest = hex::encode(digest);
    assert!(
        audit[1].contains("caller=ops")
            && audit[1].contains("result=signed")
            && audit[1].contains(&format!("digest={hex_digest}"))
            && audit[1].contains("leaf-p256.key")
            && audit[1].contains("event=\"raw_signature\""),
        "{}",
        audit[1]
    );
    assert!(!log.contains("ops-secret") && !log.contains("ci-secret"));
}

#[test]
fn graceful_shutdown_releases_in_flight_jobs() {
    // Each worker step sleeps 3 s; the grace period is 0 s: SIGTERM must release the job
    // (back to queued, no owner) instead of leaving it leased.
    let mut svc = start(&["--step-delay-ms", "3000", "--shutdown-grace", "0"]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    let input = std::fs::read(test_env().join("fixtures/pe32.dll")).expect("fixture");
    let id = client.upload("lib.dll", &input);
    let t0 = std::time::Instant::now();
    loop {
        let (_, v) = client.api("GET", &format!("/jobs/{id}"), None);
        if v["status"] == "signing" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "never claimed: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = svc
        .proc
        .terminate(Duration::from_secs(20))
        .expect("exited after SIGTERM");
    assert!(st.success(), "exit status {st}: {}", svc.proc.log_text());
    assert!(
        svc.proc.log_text().contains("job released (shutdown)"),
        "{}",
        svc.proc.log_text()
    );
    // Restart on the same data: the job is taken up again and finishes.
    let p2 = restart(&svc);
    let client = Client::new(&p2.base(), &api_key(&svc.data));
    let job = client.wait(&id, Duration::from_secs(60));
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["attempts"], 2);
}

#[test]
fn released_job_does_not_call_the_key_after_shutdown() {
    // The signing thread waits 3 s right before the key call; SIGTERM arrives meanwhile with
    // no grace: the job is released, and the key must not be called for it afterwards.
    let mut svc = start(&["--key-delay-ms", "3000", "--shutdown-grace", "0"]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    let input = std::fs::read(test_env().join("fixtures/pe64.exe")).expect("fixture");
    let id = client.upload("app.exe", &input);
    let t0 = std::time::Instant::now();
    while !svc.proc.log_text().contains("key call delayed") {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never reached the key call: {}",
            svc.proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = svc
        .proc
        .terminate(Duration::from_secs(30))
        .expect("exited after SIGTERM");
    assert!(st.success(), "exit status {st}: {}", svc.proc.log_text());
    let log = svc.proc.log_text();
    assert!(log.contains("job released (shutdown)"), "{log}");
    assert!(
        log.contains("the job was released: the key is not called"),
        "{log}"
    );
    assert!(!log.contains("calling the key"), "{log}");
    assert!(!log.contains("codeseal::audit"), "{log}");
    // Restarted on the same data (no delay), the job is signed once, by the new process.
    let p2 = restart(&svc);
    let client = Client::new(&p2.base(), &api_key(&svc.data));
    let job = client.wait(&id, Duration::from_secs(60));
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["attempts"], 2);
    // The marker the first process must not have written is written for a real key call.
    assert!(
        p2.log_text().contains("calling the key"),
        "{}",
        p2.log_text()
    );
}

#[test]
fn dropped_uploads_with_control_or_bidi_names_fail_with_bad_file_name() {
    let svc = start(&[]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    let input = std::fs::read(test_env().join("fixtures/pe32.exe")).expect("fixture");
    let names = ["tool\u{1b}[2Kname.exe", "invoice\u{202e}exe.scr"];
    let mut ids = vec![];
    for (i, name) in names.iter().enumerate() {
        let dir = svc.data.join(format!("objects/uploads/dropped{i}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(name), &input).expect("write");
        ids.push(codeseal_service::worker::object_job_id(&format!(
            "uploads/dropped{i}/{name}"
        )));
    }
    for (id, name) in ids.iter().zip(names) {
        let t0 = std::time::Instant::now();
        let job = loop {
            let (st, v) = client.api("GET", &format!("/jobs/{id}"), None);
            if st == 200 && (v["status"] == "failed" || v["status"] == "done") {
                break v;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no job for {name:?}: {st} {v}\n{}",
                svc.proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["error_reason"], "bad_file_name", "{job}");
        let shown = job["file_name"].as_str().expect("file_name");
        assert!(
            !shown.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{shown:?}"
        );
        assert_eq!(job["attempts"], 0, "never claimed: {job}");
    }
    // Nothing was signed; the uploads are kept.
    assert!(walk(&svc.data.join("objects/signed")).is_empty());
    for (i, name) in names.iter().enumerate() {
        assert!(svc
            .data
            .join(format!("objects/uploads/dropped{i}"))
            .join(name)
            .is_file());
    }
    client.assert_metrics(&["codeseal_jobs_failed_total{reason=\"bad_file_name\"} 2"]);
}

#[test]
fn store_faults_show_clients_only_our_codes_and_messages() {
    let svc = start(&[]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    let data_dir = svc.data.display().to_string();
    // 1. The results store is missing: the job fails with our reason and message only.
    std::fs::remove_dir_all(svc.data.join("objects/signed")).expect("rm signed");
    let input = std::fs::read(test_env().join("fixtures/pe32.exe")).expect("fixture");
    let id = client.upload("app.exe", &input);
    let job = client.wait(&id, Duration::from_secs(60));
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_reason"], "results_store", "{job}");
    assert_eq!(job["error"], "the signed file could not be stored", "{job}");
    let text = job.to_string();
    assert!(
        !text.contains(&data_dir) && !text.contains("does not exist"),
        "{text}"
    );
    // The detail is in the log, for the operator.
    assert!(svc.proc.log_text().contains("does not exist"));

    // 2. The multipart area is broken: the API answers with our code and message.
    std::fs::remove_dir_all(svc.data.join("multipart")).expect("rm multipart");
    std::fs::write(svc.data.join("multipart"), b"not a directory").expect("write");
    let (st, v) = client.api(
        "POST",
        "/uploads",
        Some(json!({"file_name": "b.exe", "size": 10})),
    );
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "store_unavailable", "{v}");
    assert_eq!(
        v["error"]["message"], "the storage backend failed; try again",
        "{v}"
    );
    let text = v.to_string();
    assert!(
        !text.contains(&data_dir) && !text.contains("os error") && !text.contains("multipart"),
        "{text}"
    );
}

#[test]
fn abandoned_uploads_expire_after_the_upload_ttl() {
    let svc = start(&["--upload-ttl-seconds", "2"]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    // Started, one of two parts sent, never completed.
    let (st, v) = client.api(
        "POST",
        "/uploads",
        Some(json!({"file_name": "gone.exe", "size": 5000})),
    );
    assert_eq!(st, 201, "{v}");
    let id = v["job_id"].as_str().expect("id").to_string();
    let upload_id = v["upload_id"].as_str().expect("upload id").to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let put = |n: usize, body: &[u8]| {
        agent
            .put(v["parts"][n]["url"].as_str().expect("url"))
            .send(body)
            .expect("put")
            .status()
            .as_u16()
    };
    assert_eq!(put(0, &[7u8; 4096]), 200);
    let parts_dir = svc.data.join("multipart").join(&upload_id);
    assert!(parts_dir.join("1.part").is_file());
    let t0 = std::time::Instant::now();
    let job = loop {
        let (_, j) = client.api("GET", &format!("/jobs/{id}"), None);
        if j["status"] != "uploading" {
            break j;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "not expired: {j}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let waited = t0.elapsed();
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_reason"], "expired", "{job}");
    assert!(
        waited >= Duration::from_millis(1500),
        "expired early: {waited:?}"
    );
    assert!(!parts_dir.exists(), "the parts are deleted");
    // The rest of the upload goes nowhere, and completing it changes nothing.
    assert_eq!(put(1, &[7u8; 904]), 404);
    let (st, c) = client.api(
        "POST",
        &format!("/uploads/{id}/complete"),
        Some(json!({"parts": []})),
    );
    assert_eq!((st, c["status"].as_str()), (202, Some("failed")), "{c}");
    // An upload completed in time is not touched.
    let pe = std::fs::read(test_env().join("fixtures/pe32.dll")).expect("fixture");
    let ok = client.upload("kept.dll", &pe);
    let done = client.wait(&ok, Duration::from_secs(60));
    assert_eq!(done["status"], "done", "{done}");
    client.assert_metrics(&["codeseal_jobs_failed_total{reason=\"expired\"} 1"]);
}

#[test]
fn uploads_that_arrive_without_the_api_are_found_by_the_poll_fallback() {
    let svc = start(&[]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    // A file dropped straight into the uploads "bucket" (as an S3 upload without the API).
    let input = std::fs::read(test_env().join("fixtures/pe64.dll")).expect("fixture");
    let dir = svc.data.join("objects/uploads/dropped");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("plugin.dll.tmp"), &input).expect("write");
    std::fs::rename(dir.join("plugin.dll.tmp"), dir.join("plugin.dll")).expect("rename");
    let t0 = std::time::Instant::now();
    let signed = loop {
        let found: Vec<_> = walk(&svc.data.join("objects/signed"))
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "plugin.dll"))
            .collect();
        if let Some(p) = found.first() {
            break p.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not picked up: {}",
            svc.proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Give the worker a moment to delete the upload after recording the job.
    let t1 = std::time::Instant::now();
    while dir.join("plugin.dll").exists() && t1.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !dir.join("plugin.dll").exists(),
        "upload deleted after the result was stored"
    );
    let job_id = signed
        .strip_prefix(svc.data.join("objects/signed"))
        .expect("under signed")
        .components()
        .next()
        .expect("job id")
        .as_os_str()
        .to_string_lossy()
        .to_string();
    let job = client.wait(&job_id, Duration::from_secs(30));
    assert_eq!(job["status"], "done", "{job}");
    let bytes = std::fs::read(&signed).expect("signed");
    assert_eq!(
        sha256_hex(&bytes),
        job["signed_sha256"].as_str().expect("sha")
    );
    let tmp = tempfile::tempdir().expect("tmp");
    assert_independently_verified(&bytes, tmp.path(), "plugin.dll");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A second `serve --embedded` on the data directory of `svc` (no fault flags), logging to
/// `service2.log` beside the first one's log.
fn restart(svc: &Embedded) -> Proc {
    let pki = test_env().join("pki");
    let args: Vec<String> = vec![
        "serve".into(),
        "--embedded".into(),
        "--data-dir".into(),
        svc.data.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--poll-interval-ms".into(),
        "200".into(),
        "--part-size".into(),
        "4096".into(),
        "--key".into(),
        format!("file:{}", pki.join("leaf-p256.key").display()),
        "--cert".into(),
        pki.join("leaf-p256-chain.pem").display().to_string(),
        "--trust".into(),
        pki.join("root.pem").display().to_string(),
    ];
    let log2 = svc.proc.log.with_file_name("service2.log");
    Proc::start(service_bin(), &args, &log2, true)
}

/// APPX packages are signed like any other type (the manifest's Publisher is the service
/// leaf's subject); a package published by someone else fails with the Publisher reason and
/// is kept.
#[test]
fn embedded_signs_appx_packages() {
    let svc = start(&[]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    let tmp = tempfile::tempdir().expect("tmp");
    let make = |name: &str, publisher: &str| {
        let out = tmp.path().join(name);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-appx.py");
        let o = std::process::Command::new("python3")
            .arg(script)
            .arg(&out)
            .arg(publisher)
            .arg("1")
            .output()
            .expect("python3");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(&out).expect("package")
    };
    let ours = "CN=codeseal test signer (leaf-p256), O=codeseal test PKI (throwaway)";
    let data = make("app.msix", ours);
    let (_, bytes) = client.signed("app.msix", &data, &svc.proc);
    assert_osslsigncode_accepts(&bytes, tmp.path(), "signed.msix");

    let theirs = make("other.appx", "CN=Someone Else");
    let (_, job) = client.failed("other.appx", &theirs, "publisher_mismatch");
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Publisher"),
        "{job}"
    );
    // The same package with one byte of a file changed no longer matches its block map.
    let mut lying = data.clone();
    let at = lying
        .windows(8)
        .position(|w| w == b"Assets/b")
        .expect("an entry name")
        + 400;
    lying[at] ^= 0x55;
    client.failed("lying.appx", &lying, "malformed_appx");
}

/// The verify step takes the trust and revocation options: a signing certificate on the
/// --deny list, or revoked in a --crl (an `openssl ca` CRL, scripts/revocation-pki.sh), fails
/// the job as `verify` and no result is stored; a certificate the CRL does not list passes.
#[test]
fn the_verify_step_checks_deny_lists_and_revocation() {
    let pe = std::fs::read(test_env().join("fixtures/pe64.exe")).expect("fixture");
    let pki = test_env().join("pki");
    let leaf = pki.join("leaf-p256.pem").display().to_string();
    let svc = start(&["--deny", &leaf]);
    let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
    let (_, job) = client.failed("app.exe", &pe, "verify");
    assert!(job["download_url"].is_null(), "{job}");
    drop(svc);

    // A CA with a real `openssl ca` database; nothing listens on the ports its leaves name,
    // so only the --crl file can answer.
    let dir = tempfile::tempdir().expect("tmp");
    let ca = dir.path().join("ca");
    let port = |_: u8| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port().to_string())
            .expect("port")
    };
    let o = std::process::Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/revocation-pki.sh"))
        .arg(&ca)
        .args([port(0), port(1), port(2)])
        .output()
        .expect("bash");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let crl = ca.join("www/ca.crl").display().to_string();
    let trust = ca.join("ca.pem").display().to_string();
    for (leaf, want) in [("revoked-before", "failed"), ("good", "done")] {
        let key = format!("file:{}", ca.join(format!("{leaf}.key")).display());
        let cert = ca.join(format!("{leaf}-chain.pem")).display().to_string();
        let svc = start_with(&[
            "--key",
            &key,
            "--cert",
            &cert,
            "--trust",
            &trust,
            "--crl",
            &crl,
            "--revocation",
            "soft",
        ]);
        let client = Client::new(&svc.proc.base(), &api_key(&svc.data));
        let id = client.upload("app.exe", &pe);
        let job = client.wait(&id, Duration::from_secs(60));
        assert_eq!(
            job["status"],
            want,
            "{leaf}: {job}\n{}",
            svc.proc.log_text()
        );
        if want == "failed" {
            assert_eq!(job["error_reason"], "verify", "{job}");
            assert!(
                job["error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("revoked"),
                "{job}"
            );
        } else {
            assert_eq!(job["verify"]["valid"], true, "{job}");
        }
    }
}
