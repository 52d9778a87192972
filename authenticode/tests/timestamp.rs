//! Time stamps against the project's local TSA: good stamps pass osslsigncode (time-stamp
//! line checked) and signify; every fault gives a clear error and writes nothing.
mod common;

use std::{path::Path, time::Duration};

use codeseal_authenticode::{
    manage::timestamp_file,
    sign_file,
    timestamp::{Protocol, TimestampOptions, UreqTransport},
    Error, SignOptions,
};
use codeseal_signer::DigestAlgorithm;
use common::*;

fn ts(routes: &[&str], protocol: Protocol) -> TimestampOptions {
    TimestampOptions::default()
        .with_urls(routes.iter().map(|r| format!("{}{r}", tsa())).collect())
        .with_protocol(protocol)
        .with_attempts(3)
        .with_retry_wait(Duration::from_millis(50))
        .with_timeout(Duration::from_secs(3))
        .with_budget(Duration::from_secs(30))
}

fn sign_ts(out: &Path, t: TimestampOptions) -> Result<(), Error> {
    let o = SignOptions::default().with_timestamp(Some(t));
    sign_file(&identity("leaf-rsa2048"), &fixture("pe64.exe"), out, &o).map(|_| ())
}

fn all_accept_with_timestamp(out: &Path, protocol: Protocol) {
    let (ok, text) = osslsigncode_verify_ts(out);
    assert!(ok, "osslsigncode:\n{text}");
    let (ok, text) = signify_verify_ts(out);
    assert!(ok, "signify:\n{text}");
    let r = verify_file(out).expect("verify");
    assert!(r.valid, "{r:#?}");
    let t = ours_trusting_test_roots(out);
    assert!(t.valid, "codeseal (trusting the test roots): {t:#?}");
    let t = &r.signatures[0].timestamps;
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].protocol, protocol);
    assert!(t[0].valid && t[0].time.is_some(), "{t:?}");
}

/// RFC 3161 allows genTime with a fraction of a second, and Microsoft's TSAs send one: the
/// client accepts such a reply and every verifier accepts the stamped file.
#[test]
fn a_time_stamp_with_fractional_seconds_is_accepted_everywhere() {
    let dir = tempfile::tempdir().expect("tmp");
    // openssl drops trailing zeros, so a stamp made at exactly .000 has no fraction: try
    // until one has (one in a thousand needs a second try).
    let mut seen_fraction = false;
    for i in 0..5 {
        let out = dir.path().join(format!("fraction-{i}.exe"));
        sign_ts(&out, ts(&["/fraction"], Protocol::Rfc3161)).expect("a fractional genTime");
        all_accept_with_timestamp(&out, Protocol::Rfc3161);
        let r = verify_file(&out).expect("verify");
        let time = r.signatures[0].timestamps[0].time.clone().expect("time");
        // The report keeps the milliseconds: 2026-12-06T09:30:15.123Z.
        if time.len() == "2026-12-06T09:30:15.123Z".len() && time.contains('.') {
            seen_fraction = true;
            break;
        }
    }
    assert!(seen_fraction, "no stamp with a fraction in five tries");
}

#[test]
fn rfc3161_and_legacy_stamps_pass_osslsigncode_and_signify() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = dir.path().join("rfc.exe");
    sign_ts(&a, ts(&["/rfc3161"], Protocol::Rfc3161)).expect("rfc3161");
    all_accept_with_timestamp(&a, Protocol::Rfc3161);
    let b = dir.path().join("legacy.exe");
    sign_ts(&b, ts(&["/legacy"], Protocol::Legacy)).expect("legacy");
    all_accept_with_timestamp(&b, Protocol::Legacy);
    // A SHA-384 imprint works too.
    let c = dir.path().join("rfc384.exe");
    sign_ts(
        &c,
        ts(&["/rfc3161"], Protocol::Rfc3161).with_digest(DigestAlgorithm::Sha384),
    )
    .expect("sha384 imprint");
    all_accept_with_timestamp(&c, Protocol::Rfc3161);
}

#[test]
fn every_fault_is_a_clear_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let before = sha256_file(&fixture("pe64.exe"));
    let cases: &[(&str, Protocol, &str)] = &[
        ("/fail500", Protocol::Rfc3161, "HTTP 500"),
        ("/reject", Protocol::Rfc3161, "refused"),
        ("/garbage", Protocol::Rfc3161, "malformed"),
        ("/slow", Protocol::Rfc3161, "time"),
        ("/wrongnonce", Protocol::Rfc3161, "nonce"),
        ("/wrongimprint", Protocol::Rfc3161, "imprint"),
        ("/noncritical", Protocol::Rfc3161, "not critical"),
        ("/fail500", Protocol::Legacy, "HTTP 500"),
        ("/garbage", Protocol::Legacy, "malformed"),
        // Protocol mix-ups get a hint.
        ("/legacy", Protocol::Rfc3161, "legacy"),
        ("/rfc3161", Protocol::Legacy, "RFC 3161"),
    ];
    for (i, (route, proto, needle)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("{i}.exe"));
        let mut t = ts(&[route], *proto);
        t.attempts = 2;
        t.timeout = Duration::from_secs(1);
        let e = sign_ts(&out, t).expect_err(route);
        let msg = e.to_string();
        assert!(matches!(e, Error::Timestamp(_)), "{route}: {msg}");
        assert!(
            msg.to_lowercase().contains(&needle.to_lowercase()),
            "{route} ({proto:?}): expected {needle:?} in: {msg}"
        );
        assert!(!out.exists(), "{route}: an output was written");
    }
    assert_eq!(sha256_file(&fixture("pe64.exe")), before, "input modified");
    let leftovers = std::fs::read_dir(dir.path()).expect("ls").count();
    assert_eq!(leftovers, 0, "temp files left behind");
}

#[test]
fn a_rejection_is_not_retried_but_transport_errors_fall_back_to_the_next_url() {
    let dir = tempfile::tempdir().expect("tmp");
    // Fallback: the first URL fails (500), the second answers.
    let out = dir.path().join("fallback.exe");
    sign_ts(&out, ts(&["/fail500", "/rfc3161"], Protocol::Rfc3161)).expect("fallback");
    all_accept_with_timestamp(&out, Protocol::Rfc3161);
    // Retry on the same URL: /flaky fails every other request.
    let key = format!("/flaky/{}", std::process::id());
    let out = dir.path().join("flaky.exe");
    sign_ts(&out, ts(&[&key], Protocol::Rfc3161)).expect("retry");
    all_accept_with_timestamp(&out, Protocol::Rfc3161);
    // A URL speaking the other protocol (HTTP 4xx) is dropped; the next URL is used.
    let out = dir.path().join("wrong-then-good.exe");
    sign_ts(&out, ts(&["/legacy", "/rfc3161"], Protocol::Rfc3161)).expect("4xx then good");
    all_accept_with_timestamp(&out, Protocol::Rfc3161);
    // A validated rejection stops at once: one attempt, even with a good URL behind it.
    let out = dir.path().join("rejected.exe");
    let e = sign_ts(&out, ts(&["/reject", "/rfc3161"], Protocol::Rfc3161)).expect_err("rejected");
    assert!(e.to_string().contains("refused"), "{e}");
    assert!(!out.exists());
}

#[test]
fn timestamp_an_existing_signature_and_a_nested_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let signed = dir.path().join("s.exe");
    sign_file(
        &identity("leaf-p256"),
        &fixture("pe32.exe"),
        &signed,
        &SignOptions::default(),
    )
    .expect("sign");
    let stamped = dir.path().join("t.exe");
    let stamp = timestamp_file(
        &signed,
        &stamped,
        false,
        &ts(&["/rfc3161"], Protocol::Rfc3161),
    )
    .expect("timestamp");
    assert!(stamp.tsa.contains("TSA") || !stamp.tsa.is_empty());
    all_accept_with_timestamp(&stamped, Protocol::Rfc3161);
    let e = timestamp_file(
        &stamped,
        &stamped,
        false,
        &ts(&["/rfc3161"], Protocol::Rfc3161),
    )
    .expect_err("twice");
    assert!(e.to_string().contains("already"), "{e}");
    // Append a time-stamped SHA-256 signature to a SHA-1 one.
    let dual = dir.path().join("dual.exe");
    let o = SignOptions::default()
        .with_digest(DigestAlgorithm::Sha1)
        .with_allow_sha1(true);
    sign_file(&identity("leaf-rsa2048"), &fixture("pe64.exe"), &dual, &o).expect("sha1");
    let o = SignOptions::default()
        .with_append(true)
        .with_timestamp(Some(ts(&["/rfc3161"], Protocol::Rfc3161)));
    sign_file(&identity("leaf-rsa2048"), &dual, &dual, &o).expect("append");
    let (ok, text) = osslsigncode_verify_ts(&dual);
    assert!(
        ok && text.contains("Number of verified signatures: 2"),
        "{text}"
    );
    let (ok, text) = signify_verify_ts(&dual);
    assert!(ok, "{text}");
    let r = verify_file(&dual).expect("v");
    assert_eq!(r.signatures[1].timestamps.len(), 1);
}

/// The time-stamp transport is the caller's to replace: a counting transport that forwards to
/// the real one is used for the one request signing makes, and a transport that fails makes
/// signing fail with a time-stamp error and write nothing.
#[test]
fn callers_can_replace_the_transport() {
    use codeseal_authenticode::timestamp::{HttpReply, Transport};
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    struct Counting(Arc<AtomicUsize>);
    impl Transport for Counting {
        fn post(
            &self,
            url: &str,
            content_type: &str,
            body: &[u8],
            timeout: Duration,
        ) -> Result<HttpReply, String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            UreqTransport.post(url, content_type, body, timeout)
        }
    }
    struct Refusing;
    impl Transport for Refusing {
        fn post(&self, _: &str, _: &str, _: &[u8], _: Duration) -> Result<HttpReply, String> {
            Err("no network in this test double".into())
        }
    }

    let dir = tempfile::tempdir().expect("tmp");
    let calls = Arc::new(AtomicUsize::new(0));
    let out = dir.path().join("counted.exe");
    let o = SignOptions::default().with_timestamp(
        ts(&["/rfc3161"], Protocol::Rfc3161).with_transport(Counting(Arc::clone(&calls))),
    );
    sign_file(&identity("leaf-rsa2048"), &fixture("pe64.exe"), &out, &o).expect("sign");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    all_accept_with_timestamp(&out, Protocol::Rfc3161);

    let out = dir.path().join("refused.exe");
    let o = SignOptions::default()
        .with_timestamp(ts(&["/rfc3161"], Protocol::Rfc3161).with_transport(Refusing));
    let e = sign_file(&identity("leaf-rsa2048"), &fixture("pe64.exe"), &out, &o)
        .expect_err("the transport refuses");
    assert!(matches!(e, Error::Timestamp(_)), "{e}");
    assert!(
        e.to_string().contains("no network in this test double"),
        "{e}"
    );
    assert!(!out.exists());
}
