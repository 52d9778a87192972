//! Differential tests of the trust policy: our verdict (with trust anchors) against
//! osslsigncode's and signify's on the same files.
mod common;

use std::{fs, path::Path, time::Duration};

use codeseal_authenticode::{
    sign_file,
    timestamp::{Protocol, TimestampOptions},
    FindingCode, SignOptions, Verifier,
};
use codeseal_signer::DigestAlgorithm;
use common::*;

fn anchors(names: &[&str]) -> Vec<x509_cert::Certificate> {
    names
        .iter()
        .flat_map(|n| codeseal_keys::load_certificates(&pki(n)).expect("certs"))
        .collect()
}

fn trusting(roots: &[&str]) -> Verifier {
    Verifier::new(anchors(roots)).expect("anchors")
}

fn ours(file: &Path, roots: &[&str], tsa_roots: &[&str]) -> (bool, String) {
    let r = trusting(roots)
        .with_tsa_anchors(anchors(tsa_roots))
        .verify_file(file)
        .expect("report");
    (r.valid, format!("{r:#?}"))
}

/// (osslsigncode, signify, ours) must agree with `want` for a file under the given roots.
fn agree(file: &Path, root: &str, want: bool, what: &str) {
    let (o, ot) = osslsigncode_verify(file, &pki(root));
    let (s, st) = signify_verify(file, &pki(root));
    let (c, ct) = ours(file, &[root], &[]);
    assert_eq!(o, want, "{what}: osslsigncode says {o}:\n{ot}");
    assert_eq!(s, want, "{what}: signify says {s}:\n{st}");
    assert_eq!(c, want, "{what}: codeseal says {c}:\n{ct}");
}

#[test]
fn verdicts_match_osslsigncode_and_signify() {
    let dir = tempfile::tempdir().expect("tmp");
    let id = |l| identity(l);
    for leaf in ["leaf-rsa2048", "leaf-p256", "leaf-rsa4096"] {
        for d in [
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha384,
            DigestAlgorithm::Sha512,
        ] {
            let out = dir.path().join(format!("{leaf}-{d}.exe"));
            sign_file(
                &id(leaf),
                &fixture("pe64.exe"),
                &out,
                &SignOptions::default().with_digest(d),
            )
            .expect("sign");
            agree(&out, "root.pem", true, &format!("valid {leaf} {d}"));
        }
    }
    let good = dir.path().join("leaf-rsa2048-sha256.exe");
    agree(&good, "other-root.pem", false, "untrusted root");

    // serverAuth-only leaf: refused by all.
    let sa = dir.path().join("serverauth.exe");
    let key = codeseal_local::LocalKey::from_file(&pki("leaf-serverauth.key"), None)
        .expect("key")
        .key;
    let chain = codeseal_keys::load_certificates(&pki("leaf-serverauth-chain.pem")).expect("chain");
    let sid = codeseal_signer::SigningIdentity::new(std::sync::Arc::new(key), chain).expect("id");
    sign_file(&sid, &fixture("pe64.exe"), &sa, &SignOptions::default()).expect("sign");
    agree(&sa, "root.pem", false, "serverAuth-only leaf");

    // Expired leaf, no time stamp: refused by all.
    let ex = dir.path().join("expired.exe");
    let key = codeseal_local::LocalKey::from_file(&pki("leaf-expired.key"), None)
        .expect("key")
        .key;
    let chain = codeseal_keys::load_certificates(&pki("leaf-expired-chain.pem")).expect("chain");
    let eid = codeseal_signer::SigningIdentity::new(std::sync::Arc::new(key), chain).expect("id");
    sign_file(&eid, &fixture("pe64.exe"), &ex, &SignOptions::default()).expect("sign");
    agree(&ex, "root.pem", false, "expired leaf without time stamp");

    // The last byte of the PKCS#7 changed (inside the signature value): refused by all.
    let mut b = fs::read(&good).expect("read");
    let pe = codeseal_authenticode::PeInfo::read(&mut std::io::Cursor::new(&b)).expect("pe");
    let t = pe.cert_table.expect("table");
    let sig = codeseal_authenticode::extract_signature(&good).expect("sig");
    let last = (t.offset + 8) as usize + sig.len() - 1;
    b[last] ^= 0x01;
    let bad = dir.path().join("pkcs7-byte.exe");
    fs::write(&bad, &b).expect("write");
    agree(&bad, "root.pem", false, "last PKCS#7 byte changed");

    // 8 bytes appended after the table: refused by all.
    let mut b = fs::read(&good).expect("read");
    b.extend_from_slice(&[0u8; 8]);
    let app = dir.path().join("appended.exe");
    fs::write(&app, &b).expect("write");
    let (c, ct) = ours(&app, &["root.pem"], &[]);
    assert!(!c, "{ct}");
    assert!(
        !signify_verify(&app, &root()).0,
        "signify accepted bytes after the table"
    );

    // Signed by osslsigncode itself: accepted by us with the same roots.
    let theirs = dir.path().join("ossl.exe");
    osslsigncode_sign(&fixture("pe32.dll"), &theirs, "leaf-p256", "sha256");
    agree(&theirs, "root.pem", true, "signed by osslsigncode");
}

#[test]
fn time_stamps_with_trusted_and_untrusted_tsa_roots() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("ts.exe");
    let ts = TimestampOptions::default()
        .with_urls(vec![format!("{}/rfc3161", tsa())])
        .with_protocol(Protocol::Rfc3161)
        .with_retry_wait(Duration::from_millis(50));
    sign_file(
        &identity("leaf-rsa2048"),
        &fixture("pe64.exe"),
        &out,
        &SignOptions::default().with_timestamp(Some(ts)),
    )
    .expect("sign");
    // TSA root trusted: valid everywhere.
    assert!(osslsigncode_verify_ts(&out).0);
    assert!(signify_verify_ts(&out).0);
    let (c, ct) = ours(&out, &["root.pem"], &["tsa-root.pem"]);
    assert!(c, "{ct}");
    // TSA root not trusted: signify refuses; osslsigncode exits 0 but says the time-stamp
    // check failed (a known osslsigncode quirk) — we follow signify.
    let (_, ot) = osslsigncode_verify(&out, &root());
    assert!(
        ot.contains("Timestamp Server Signature verification: failed"),
        "{ot}"
    );
    assert!(!signify_verify(&out, &root()).0);
    let (c, ct) = ours(&out, &["root.pem"], &["other-root.pem"]);
    assert!(!c, "{ct}");
}

#[test]
fn leaf_pin_and_sha1_policy() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("pin.exe");
    sign_file(
        &identity("leaf-p256"),
        &fixture("pe32.exe"),
        &out,
        &SignOptions::default(),
    )
    .expect("sign");
    let leaf_der = fs::read(pki("leaf-p256.pem")).expect("pem");
    let leaf = codeseal_keys::load_certificates(&pki("leaf-p256.pem")).expect("c");
    let _ = leaf_der;
    let good = DigestAlgorithm::Sha256.digest(&der::Encode::to_der(&leaf[0]).expect("der"));
    let pinned = trusting(&["root.pem"]).require_leaf_hash(DigestAlgorithm::Sha256, good.clone());
    assert!(pinned.verify_file(&out).expect("r").valid);
    let mut wrong = good;
    wrong[0] ^= 1;
    let pinned = trusting(&["root.pem"]).require_leaf_hash(DigestAlgorithm::Sha256, wrong);
    assert!(!pinned.verify_file(&out).expect("r").valid);
    // SHA-1: a warning by default, an error with reject_sha1.
    let s1 = dir.path().join("sha1.exe");
    sign_file(
        &identity("leaf-rsa2048"),
        &fixture("pe32.exe"),
        &s1,
        &SignOptions::default()
            .with_digest(DigestAlgorithm::Sha1)
            .with_allow_sha1(true),
    )
    .expect("sign");
    let r = trusting(&["root.pem"]).verify_file(&s1).expect("r");
    assert!(
        r.valid
            && r.signatures[0]
                .warnings
                .iter()
                .any(|w| w.code == FindingCode::WeakDigest),
        "{r:#?}"
    );
    let r = trusting(&["root.pem"])
        .reject_sha1(true)
        .verify_file(&s1)
        .expect("r");
    assert!(!r.valid);
}

#[test]
fn padding_bytes_unknown_unsigned_attributes_and_extra_certificates() {
    use der::{asn1::OctetString, Decode};
    let dir = tempfile::tempdir().expect("tmp");
    let good = dir.path().join("good.exe");
    sign_file(
        &identity("leaf-rsa2048"),
        &fixture("pe64.exe"),
        &good,
        &SignOptions::default(),
    )
    .expect("sign");

    // A WIN_CERTIFICATE padding byte changed (inside dwLength, after the PKCS#7 DER).
    let mut tried_padding = false;
    for (i, (leaf, fx)) in [
        ("leaf-rsa2048", "pe64.exe"),
        ("leaf-p256", "pe32.exe"),
        ("leaf-p256", "pe64.dll"),
        ("leaf-rsa4096", "pe32.dll"),
    ]
    .into_iter()
    .enumerate()
    {
        let f = dir.path().join(format!("pad-src-{i}.exe"));
        sign_file(&identity(leaf), &fixture(fx), &f, &SignOptions::default()).expect("sign");
        let sig = codeseal_authenticode::extract_signature(&f).expect("sig");
        let mut b = fs::read(&f).expect("read");
        let pe = codeseal_authenticode::PeInfo::read(&mut std::io::Cursor::new(&b)).expect("pe");
        let t = pe.cert_table.expect("table");
        let pad_at = (t.offset + 8) as usize + sig.len();
        if pad_at >= (t.offset + t.size) as usize {
            continue;
        }
        tried_padding = true;
        b[pad_at] = 0x5a;
        let p = dir.path().join(format!("padding-{i}.exe"));
        fs::write(&p, &b).expect("write");
        // osslsigncode and signify accept non-zero padding; so do we by default, with a
        // warning; the strict policy (Windows' EnableCertPaddingCheck) refuses it.
        let (c, ct) = ours(&p, &["root.pem"], &[]);
        let (o, ot) = osslsigncode_verify(&p, &root());
        let (s, st) = signify_verify(&p, &root());
        assert!(
            o && s && c,
            "padding byte: osslsigncode={o} {ot}\nsignify={s} {st}\ncodeseal={c} {ct}"
        );
        let r = trusting(&["root.pem"])
            .strict(true)
            .verify_file(&p)
            .expect("r");
        assert!(!r.valid, "strict accepted non-zero padding");
        assert!(
            r.signatures[0]
                .errors
                .iter()
                .any(|e| e.code == FindingCode::NonZeroPadding),
            "{r:#?}"
        );
    }
    assert!(tried_padding, "no signature with padding to test");
    let sig = codeseal_authenticode::extract_signature(&good).expect("sig");

    // An unknown unsigned attribute and an extra certificate, added after signing: still valid
    // (the signature does not cover them) but reported.
    let extra = codeseal_keys::load_certificates(&pki("other-root.pem")).expect("c");
    let tag = der::asn1::Any::from_der(
        &der::Encode::to_der(&OctetString::new(b"installer tag".as_slice()).expect("o"))
            .expect("der"),
    )
    .expect("any");
    let oid = const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.1");
    let tagged =
        codeseal_authenticode::formats::pkcs7::add_unsigned_attr_and_certs(&sig, oid, tag, &extra)
            .expect("add");
    let out = dir.path().join("tagged.exe");
    codeseal_authenticode::attach_signature(
        &good,
        &tagged,
        &out,
        codeseal_authenticode::AttachOptions::default().with_replace(true),
    )
    .expect("attach");
    assert!(osslsigncode_verify(&out, &root()).0);
    assert!(signify_verify(&out, &root()).0);
    let r = trusting(&["root.pem"]).verify_file(&out).expect("r");
    assert!(r.valid, "{r:#?}");
    let w = &r.signatures[0].warnings;
    assert!(
        w.iter()
            .any(|w| w.code == FindingCode::UnknownUnsignedAttribute
                && w.message.contains("1.3.6.1.4.1.99999.1")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|w| w.code == FindingCode::UnusedCertificates),
        "{w:?}"
    );
}

#[test]
fn expired_leaf_with_a_back_dated_time_stamp_inside_its_validity() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("expired-ts.exe");
    // osslsigncode's built-in TSA makes the back-dated RFC 3161 stamp (an independent signer).
    osslsigncode_sign_stamped(
        &fixture("pe64.exe"),
        &out,
        "leaf-expired",
        unix_now() - 5 * 24 * 3600,
    );
    let (ot_ok, ot) = osslsigncode_verify_ts(&out);
    let (s_ok, st) = signify_verify_ts(&out);
    let (c_ok, ct) = ours(&out, &["root.pem"], &["tsa-root.pem"]);
    assert!(ot_ok, "osslsigncode: {ot}");
    assert!(s_ok, "signify: {st}");
    assert!(c_ok, "codeseal: {ct}");
    // Ignoring the time stamp, the expired leaf fails.
    let v = trusting(&["root.pem"])
        .with_tsa_anchors(anchors(&["tsa-root.pem"]))
        .ignore_timestamp(true);
    assert!(!v.verify_file(&out).expect("r").valid);
}
