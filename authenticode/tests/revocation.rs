//! Revocation checking against real peers: a CA run by `openssl ca` (scripts/revocation-pki.sh),
//! its CRL served over HTTP and OCSP answered by `openssl ocsp` from the same database
//! (scripts/revocation-server.py), both on 127.0.0.1; files signed by osslsigncode with
//! leaves of that CA and time-stamped by osslsigncode's built-in TSA with a TSA certificate of
//! the same CA (so the time-stamp chain is checked too). A hostile server of this test answers
//! garbage, a huge body or slowly, and counts connections.
mod common;
#[path = "common/revocation_world.rs"]
mod world;

use std::{
    path::{Path, PathBuf},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use codeseal_authenticode::{
    revocation::{RevocationOptions, RevocationPolicy, RevocationSource, RevocationState},
    verify::VerifyReport,
    FindingCode, Verifier,
};
use common::*;
use world::{now, World, DAY};

/// The verifier side of the world.
trait Verifying {
    fn ca(&self) -> Vec<x509_cert::Certificate>;
    fn verifier(&self, rev: RevocationOptions) -> Verifier;
    fn verify(&self, file: &Path, policy: RevocationPolicy) -> VerifyReport;
}

impl Verifying for World {
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
}

fn new_world() -> World {
    World::new(&fixture("pe64.exe"))
}

fn codes(r: &VerifyReport) -> (Vec<FindingCode>, Vec<FindingCode>) {
    let s = &r.signatures[0];
    (
        s.errors.iter().map(|f| f.code).collect(),
        s.warnings.iter().map(|f| f.code).collect(),
    )
}

#[test]
fn good_revoked_before_and_after_the_time_stamp() {
    let w = new_world();
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
    let w = new_world();
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
    let w = new_world();
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
    let w = new_world();
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
    // A total budget of 1 s: the slow responder takes all of it (the request's timeout is
    // cut to what is left); later URLs are not fetched at all.
    let v = w.verifier(
        RevocationOptions::new(RevocationPolicy::Soft).with_budget(Duration::from_secs(1)),
    );
    let t0 = Instant::now();
    let r = v
        .verify_file(&w.sign("slow", Some(now() - DAY)))
        .expect("report");
    let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
    assert!(
        rv.problems
            .iter()
            .any(|p| p.contains("no complete answer within")),
        "{:?}",
        rv.problems
    );
    let r = v
        .verify_file(&w.sign("garbage", Some(now() - DAY)))
        .expect("report");
    let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
    assert!(
        rv.problems
            .iter()
            .any(|p| p.contains("budget of 1 s is spent")),
        "{:?}",
        rv.problems
    );
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
}

#[test]
fn off_makes_no_connection_and_urls_are_fetched_once() {
    let w = new_world();
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

/// `file` with `crl` added to its SignedData's `crls` field (not covered by the signature).
fn with_embedded_crl(w: &World, file: &Path, crl_der: &[u8], name: &str) -> PathBuf {
    use cms::{
        content_info::ContentInfo,
        revocation::{RevocationInfoChoice, RevocationInfoChoices},
        signed_data::SignedData,
    };
    use der::{asn1::SetOfVec, Decode, Encode};
    let der = codeseal_authenticode::extract_signature(file).expect("extract");
    let mut ci = ContentInfo::from_der(&der).expect("ContentInfo");
    let mut sd: SignedData = ci.content.decode_as().expect("SignedData");
    let crl = x509_cert::crl::CertificateList::from_der(crl_der).expect("CRL");
    sd.crls = Some(RevocationInfoChoices(
        SetOfVec::try_from(vec![RevocationInfoChoice::Crl(crl)]).expect("set"),
    ));
    ci.content = der::Any::encode_from(&sd).expect("encode");
    let out = w.dir.path().join(format!("{name}.exe"));
    codeseal_authenticode::attach_signature(
        file,
        &ci.to_der().expect("DER"),
        &out,
        codeseal_authenticode::AttachOptions::default().with_replace(true),
    )
    .expect("attach");
    out
}

#[test]
fn crls_carried_in_the_signature() {
    let w = new_world();
    let crl = std::fs::read(w.pki("www/ca.crl")).expect("crl");
    // The responder is down; the CRL in the signature answers (hard policy).
    let down = w.sign("down", Some(now() - DAY));
    assert!(!w.verify(&down, RevocationPolicy::Hard).valid);
    let f = with_embedded_crl(&w, &down, &crl, "down-crl");
    let r = w.verify(&f, RevocationPolicy::Hard);
    assert!(r.valid, "{r:#?}");
    let chain = r.signatures[0].chain.as_ref().expect("chain");
    assert_eq!(chain.revocation[0].origin.as_deref(), Some("signature"));
    assert_eq!(chain.revocation[0].state, RevocationState::Good);
    // The TSA certificate is answered by the same CRL.
    let tsa = r.signatures[0].timestamps[0]
        .chain
        .as_ref()
        .expect("TSA chain");
    assert_eq!(tsa.revocation[0].origin.as_deref(), Some("signature"));
    // A revoked leaf: the embedded CRL says so without the network.
    let hits = w.hits("/ca.crl") + w.hits("/ocsp");
    let f = with_embedded_crl(
        &w,
        &w.sign("revoked-before", Some(now() - DAY)),
        &crl,
        "revoked-crl",
    );
    let r = w.verify(&f, RevocationPolicy::Soft);
    assert!(!r.valid);
    let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
    assert_eq!(
        (rv.state, rv.origin.as_deref()),
        (RevocationState::Revoked, Some("signature"))
    );
    assert_eq!(w.hits("/ca.crl") + w.hits("/ocsp"), hits);
    // A CRL signed by another key is not used (the leaf's own sources answer instead).
    let mut forged = crl.clone();
    let n = forged.len();
    forged[n - 3] ^= 0x01; // inside the signature value
    let f = with_embedded_crl(&w, &down, &forged, "down-forged-crl");
    let r = w.verify(&f, RevocationPolicy::Hard);
    assert!(!r.valid, "{r:#?}");
    let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
    assert!(
        rv.problems.iter().any(|p| p.contains("bad signature")),
        "{rv:#?}"
    );
}

#[test]
fn stale_and_future_crls_and_an_unauthorised_responder_are_refused() {
    let w = new_world();
    let down = w.sign("down", Some(now() - DAY));
    for (name, want) in [("stale.crl", "stale"), ("future.crl", "in the future")] {
        let crl = std::fs::read(w.pki(&format!("www/{name}"))).expect("crl");
        let r = w
            .verifier(
                RevocationOptions::new(RevocationPolicy::Hard)
                    .with_crl(name, &crl)
                    .expect("crl"),
            )
            .verify_file(&down)
            .expect("report");
        assert!(!r.valid, "{name}: {r:#?}");
        let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
        assert_eq!(rv.state, RevocationState::Unknown);
        assert!(
            rv.problems.iter().any(|p| p.contains(want)),
            "{name}: {:?}",
            rv.problems
        );
    }
    // Answers signed by a leaf of the CA without id-kp-OCSPSigning have no authority.
    let f = w.sign("ocsp-by-leaf", Some(now() - DAY));
    let r = w.verify(&f, RevocationPolicy::Hard);
    assert!(!r.valid, "{r:#?}");
    let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
    assert!(
        rv.problems
            .iter()
            .any(|p| p.contains("lacks id-kp-OCSPSigning")),
        "{:?}",
        rv.problems
    );
    assert_eq!(w.hits("/ocsp-leaf"), 1);
}

#[test]
fn a_replayed_ocsp_answer_fails_the_nonce_check() {
    let w = new_world();
    // A genuine answer about the `replayed` leaf, fetched with openssl's own nonce from the
    // real responder, then served for every request by the hostile server.
    let req = w.dir.path().join("req.der");
    let resp = w.dir.path().join("resp.der");
    let o = std::process::Command::new("openssl")
        .args(["ocsp", "-issuer"])
        .arg(w.pki("ca.pem"))
        .arg("-cert")
        .arg(w.pki("replayed.pem"))
        .arg("-reqout")
        .arg(&req)
        .arg("-respout")
        .arg(&resp)
        .arg("-url")
        .arg(format!("http://127.0.0.1:{}/ocsp", w.port))
        .args(["-noverify"])
        .output()
        .expect("openssl ocsp");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    *w.hostile.replay.lock().expect("lock") = std::fs::read(&resp).expect("answer");
    let f = w.sign("replayed", Some(now() - DAY));
    let r = w.verify(&f, RevocationPolicy::Hard);
    assert!(!r.valid, "{r:#?}");
    let rv = &r.signatures[0].chain.as_ref().expect("chain").revocation[0];
    assert!(
        rv.problems.iter().any(|p| p.contains("nonce")),
        "{:?}",
        rv.problems
    );
    // A pre-produced answer that echoes no nonce (RFC 5019) is accepted while current.
    // Without the nonce extension in the request openssl's responder sends none back.
    let o = std::process::Command::new("openssl")
        .args(["ocsp", "-no_nonce", "-issuer"])
        .arg(w.pki("ca.pem"))
        .arg("-cert")
        .arg(w.pki("replayed.pem"))
        .arg("-respout")
        .arg(&resp)
        .arg("-url")
        .arg(format!("http://127.0.0.1:{}/ocsp", w.port))
        .args(["-noverify"])
        .output()
        .expect("openssl ocsp");
    assert!(o.status.success());
    *w.hostile.replay.lock().expect("lock") = std::fs::read(&resp).expect("answer");
    let r = w.verify(&f, RevocationPolicy::Hard);
    assert!(
        r.valid,
        "an answer without a nonce (RFC 5019 style): {r:#?}"
    );
}

#[test]
fn catalog_signatures_are_checked_for_revocation() {
    use codeseal_authenticode::catalog::{build_catalog, sign_catalog};
    let w = new_world();
    let identity = |leaf: &str| {
        let key = codeseal_local::LocalKey::from_file(&w.pki(&format!("{leaf}.key")), None)
            .expect("key")
            .key;
        let chain =
            codeseal_keys::load_certificates(&w.pki(&format!("{leaf}-chain.pem"))).expect("chain");
        codeseal_signer::SigningIdentity::new(std::sync::Arc::new(key), chain).expect("identity")
    };
    let unsigned = build_catalog(
        &[fixture("pe64.exe")],
        codeseal_signer::DigestAlgorithm::Sha256,
    )
    .expect("catalog");
    let opts = codeseal_authenticode::SignOptions::default();
    let good = sign_catalog(&identity("good"), &unsigned, &opts).expect("sign");
    let revoked = sign_catalog(&identity("revoked-after"), &unsigned, &opts).expect("sign");
    let v = w.verifier(RevocationOptions::new(RevocationPolicy::Hard));
    let r = v.verify_catalog(&good).expect("report");
    assert_eq!(r.trusted, Some(true), "{:?}", r.chain_errors);
    assert_eq!(r.revocation[0].state, RevocationState::Good);
    // No time stamp on a catalog signature: any revocation makes it untrusted.
    let r = v.verify_catalog(&revoked).expect("report");
    assert_eq!(r.trusted, Some(false));
    assert!(
        r.chain_errors.iter().any(|e| e.contains("revoked")),
        "{:?}",
        r.chain_errors
    );
    // Off: no check, trusted.
    let r = w
        .verifier(RevocationOptions::new(RevocationPolicy::Off))
        .verify_catalog(&revoked)
        .expect("report");
    assert_eq!(r.trusted, Some(true));
    assert!(r.revocation.is_empty());
}
