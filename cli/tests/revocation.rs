//! `codeseal verify` with revocation and trust-store options, against the real peers of
//! authenticode/tests/common/revocation_world.rs (an `openssl ca` CA, its CRL over HTTP and
//! `openssl ocsp` on 127.0.0.1, and a hostile server counting connections).
mod common;
#[path = "../../authenticode/tests/common/revocation_world.rs"]
mod world;

use std::{
    path::Path,
    process::{Command, Output},
    sync::atomic::Ordering,
};

use common::*;
use serde_json::Value;
use world::{now, World, DAY};

fn new_world() -> World {
    World::new(&test_env().join("fixtures/pe64.exe"))
}

/// `codeseal verify ARGS FILE` with its cache under `cache_home` (XDG_CACHE_HOME).
fn verify(w: &World, file: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codeseal"))
        .env("XDG_CACHE_HOME", w.dir.path().join("xdg"))
        .arg("verify")
        .args(args)
        .arg(file)
        .output()
        .expect("codeseal")
}

/// The JSON report; the exit status must agree with `.valid`.
fn json(w: &World, file: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json", "--revocation-timeout", "2"];
    a.extend_from_slice(args);
    let o = verify(w, file, &a);
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {}", text(&o)));
    let valid = v["valid"] == Value::Bool(true);
    assert_eq!(o.status.success(), valid, "{}", text(&o));
    v
}

fn codes(v: &Value, list: &str) -> Vec<String> {
    v["signatures"][0][list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["code"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn revocation_flags_json_and_text() {
    let w = new_world();
    let ca = w.pki("ca.pem");
    let trust = ["--trust", s(&ca)];
    let t = Some(now() - DAY);
    // Good under hard: the JSON chain says which check decided.
    let good = w.sign("good", t);
    let v = json(&w, &good, &[&trust[..], &["--revocation", "hard"]].concat());
    assert_eq!(v["valid"], true, "{v:#}");
    let rv = &v["signatures"][0]["chain"]["revocation"][0];
    assert_eq!(rv["state"], "good", "{rv:#}");
    assert_eq!(rv["source"], "ocsp");
    assert_eq!(
        rv["origin"],
        format!("http://127.0.0.1:{}/ocsp", w.port).as_str()
    );
    let tsa_rv = &v["signatures"][0]["timestamps"][0]["chain"]["revocation"][0];
    assert_eq!(tsa_rv["state"], "good", "{tsa_rv:#}");
    assert_eq!(v["revocation"], "hard");
    // The default with --trust is soft: revoked fails, no answer warns.
    let v = json(&w, &w.sign("revoked-before", t), &trust);
    assert_eq!(v["revocation"], "soft");
    assert_eq!(v["valid"], false);
    assert!(
        codes(&v, "errors").contains(&"revoked".to_string()),
        "{v:#}"
    );
    let rv = &v["signatures"][0]["chain"]["revocation"][0];
    assert_eq!(rv["state"], "revoked");
    assert_eq!(rv["reason"], "keyCompromise");
    assert_eq!(rv["revoked_at_unix"], w.revoked_before_at);
    let down = w.sign("down", t);
    let v = json(&w, &down, &trust);
    assert_eq!(v["valid"], true, "{v:#}");
    assert!(codes(&v, "warnings").contains(&"revocation_unknown".to_string()));
    let v = json(&w, &down, &[&trust[..], &["--revocation", "hard"]].concat());
    assert_eq!(v["valid"], false);
    // --crl answers without the network.
    let crl = w.pki("www/ca.crl");
    let v = json(
        &w,
        &down,
        &[&trust[..], &["--revocation", "hard", "--crl", s(&crl)]].concat(),
    );
    assert_eq!(v["valid"], true, "{v:#}");
    assert_eq!(
        v["signatures"][0]["chain"]["revocation"][0]["origin"],
        format!("file:{}", crl.display()).as_str()
    );
    // Revoked after the trusted time stamp: valid, and the text report says why.
    let after = w.sign("revoked-after", Some(now() - 5 * DAY));
    let o = verify(
        &w,
        &after,
        &[&trust[..], &["--revocation", "hard"]].concat(),
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("after the trusted time stamp"), "{out}");
    assert!(out.contains("Revocation:"), "{out}");
    // --revocation off: no connection at all.
    let counted = w.sign("counted", t);
    let before = w.hostile.connections.load(Ordering::SeqCst);
    let v = json(
        &w,
        &counted,
        &[&trust[..], &["--revocation", "off"]].concat(),
    );
    assert_eq!(v["valid"], true);
    assert_eq!(w.hostile.connections.load(Ordering::SeqCst), before);
    let _ = json(&w, &counted, &trust);
    assert!(w.hostile.connections.load(Ordering::SeqCst) > before);
    // The cache: the default directory (under XDG_CACHE_HOME), then an explicit one.
    let hits = w.hits("/ocsp");
    let _ = json(&w, &good, &trust);
    let _ = json(&w, &good, &trust);
    assert_eq!(w.hits("/ocsp"), hits, "answered from the default cache");
    let default_dir = w.dir.path().join("xdg/codeseal/revocation");
    assert!(
        std::fs::read_dir(&default_dir).expect("cache dir").count() >= 2,
        "{}",
        default_dir.display()
    );
    let mine = w.dir.path().join("mine");
    let _ = json(
        &w,
        &good,
        &[&trust[..], &["--revocation-cache", s(&mine)]].concat(),
    );
    let _ = json(
        &w,
        &good,
        &[&trust[..], &["--revocation-cache", s(&mine)]].concat(),
    );
    assert_eq!(w.hits("/ocsp"), hits + 2, "leaf + TSA, once");
    // Without trust anchors the default is off.
    let v = json(&w, &good, &[]);
    assert_eq!(
        (&v["revocation"], &v["trust"]),
        (&"off".into(), &"integrity_only".into())
    );
    // Without trust anchors, a policy other than off is refused.
    let o = verify(&w, &good, &["--revocation", "hard"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("needs trust anchors"), "{}", text(&o));
}

#[test]
fn deny_lists_and_the_system_bundle() {
    let w = new_world();
    let ca = w.pki("ca.pem");
    let good = w.sign("good", Some(now() - DAY));
    let base = ["--trust", s(&ca), "--revocation", "off"];
    let v = json(&w, &good, &base);
    assert_eq!(v["valid"], true);
    // A denied certificate (the leaf, as PEM).
    let leaf = w.pki("good.pem");
    let v = json(&w, &good, &[&base[..], &["--deny", s(&leaf)]].concat());
    assert_eq!(v["valid"], false);
    assert!(
        v["signatures"][0]["chain"]["errors"]
            .to_string()
            .contains("deny list"),
        "{v:#}"
    );
    // A denied public key (the CA's SPKI SHA-256, from openssl).
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum",
            ca.display()
        ))
        .output()
        .expect("openssl");
    let hash = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .expect("hash")
        .to_string();
    let list = w.dir.path().join("deny.txt");
    std::fs::write(&list, format!("# the test CA\n{hash}\n")).expect("write");
    let v = json(&w, &good, &[&base[..], &["--deny", s(&list)]].concat());
    assert_eq!(v["valid"], false, "{v:#}");
    // A hash of another key denies nothing.
    std::fs::write(&list, format!("{}\n", "00".repeat(32))).expect("write");
    let v = json(&w, &good, &[&base[..], &["--deny", s(&list)]].concat());
    assert_eq!(v["valid"], true);
    // Microsoft's disallowedcert.stl form: a CTL naming the CA by the SHA-1 of its DER.
    let stl = w.dir.path().join("disallowedcert.stl");
    std::fs::write(&stl, disallowed_stl(&ca)).expect("write");
    let v = json(&w, &good, &[&base[..], &["--deny", s(&stl)]].concat());
    assert_eq!(v["valid"], false, "{v:#}");
    let other = disallowed_stl(&w.pki("ocsp.pem"));
    std::fs::write(&stl, other).expect("write");
    let v = json(&w, &good, &[&base[..], &["--deny", s(&stl)]].concat());
    assert_eq!(v["valid"], true, "{v:#}");
    // The operating system's bundle loads, and does not know the test CA.
    if Path::new("/etc/ssl/certs/ca-certificates.crt").is_file() {
        let v = json(&w, &good, &["--trust", "system", "--revocation", "off"]);
        assert_eq!(v["valid"], false);
        assert_eq!(v["trust"], "anchors");
        let v = json(
            &w,
            &good,
            &[
                "--trust",
                "system",
                "--trust",
                s(&ca),
                "--revocation",
                "off",
            ],
        );
        assert_eq!(v["valid"], true, "{v:#}");
    }
}

/// An unsigned SignedData holding a CTL whose one subject is the SHA-1 of `cert_pem`'s DER,
/// the shape of Microsoft's disallowedcert.stl.
fn disallowed_stl(cert_pem: &Path) -> Vec<u8> {
    use codeseal_authenticode::formats::{
        asn1::{tag, wrap},
        catalog::{CertificateTrustList, TrustedSubject},
    };
    use der::{asn1::OctetString, Decode, Encode};
    let pem = std::fs::read_to_string(cert_pem).expect("pem");
    let (_, der) = der::pem::decode_vec(pem.as_bytes()).expect("PEM");
    let _ = x509_cert::Certificate::from_der(&der).expect("certificate");
    let sha1 = {
        let o = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
            .arg(cert_pem)
            .output()
            .expect("openssl");
        let t = String::from_utf8_lossy(&o.stdout).to_string();
        hex::decode(
            t.trim()
                .rsplit('=')
                .next()
                .expect("fingerprint")
                .replace(':', ""),
        )
        .expect("hex")
    };
    let oid = |s: &str| der::asn1::ObjectIdentifier::new_unwrap(s);
    let ctl = CertificateTrustList {
        version: None,
        subject_usage: vec![oid("1.3.6.1.4.1.311.10.3.30")],
        list_identifier: None,
        sequence_number: None,
        this_update: x509_cert::time::Time::try_from(std::time::SystemTime::now()).expect("time"),
        next_update: None,
        subject_algorithm: spki::AlgorithmIdentifierOwned {
            oid: oid("1.3.14.3.2.26"),
            parameters: None,
        },
        trusted_subjects: Some(vec![TrustedSubject {
            identifier: OctetString::new(sha1).expect("octets"),
            attributes: None,
        }]),
        extensions: None,
    }
    .to_der()
    .expect("CTL");
    let ms_ctl = oid("1.3.6.1.4.1.311.10.1").to_der().expect("oid");
    let signed_data_oid = oid("1.2.840.113549.1.7.2").to_der().expect("oid");
    let version = [tag::INTEGER, 1, 1];
    let encap = wrap(tag::SEQUENCE, &[&ms_ctl, &wrap(tag::context(0), &[&ctl])]);
    let sd = wrap(
        tag::SEQUENCE,
        &[&version, &wrap(tag::SET, &[]), &encap, &wrap(tag::SET, &[])],
    );
    wrap(
        tag::SEQUENCE,
        &[&signed_data_oid, &wrap(tag::context(0), &[&sd])],
    )
}
