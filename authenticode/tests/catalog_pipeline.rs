//! Catalogs (`.cat`) as a `FileKind` of the format-generic pipeline: `sign_file`,
//! `Verifier::verify_file`, remove / extract / attach, split signing over the CTL, time
//! stamps (RFC 3161 from the local TSA, and a back-dated one on an expired leaf), the
//! stream path, and the verbs that do not apply. Outputs are checked by osslsigncode 2.9 and
//! 2.14 and by signify.
#![allow(clippy::indexing_slicing)]
mod common;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use codeseal_authenticode::{
    attach_signature,
    catalog::{build_catalog, find_file_member, verify_catalog},
    extract_signature,
    formats::catalog::parse_catalog,
    manage::timestamp_file,
    remove_signature, sign_bytes, sign_file,
    split::attach_request_signature,
    timestamp::{Protocol, TimestampOptions},
    AttachOptions, Error, FileKind, OpusInfo, SignOptions, Verifier,
};
use codeseal_signer::DigestAlgorithm;
use common::*;

fn member_files(dir: &Path) -> Vec<PathBuf> {
    let pe = dir.join("pe64.exe");
    std::fs::copy(fixture("pe64.exe"), &pe).expect("copy");
    let ps1 = dir.join("script.ps1");
    std::fs::write(&ps1, "Write-Output 'pipeline'\r\n").expect("write");
    let txt = dir.join("readme.txt");
    std::fs::write(&txt, "catalog member\n").expect("write");
    vec![pe, ps1, txt]
}

/// An unsigned catalog of three member files, written to `dir/name`.
fn unsigned_catalog(dir: &Path, name: &str) -> PathBuf {
    let files = member_files(dir);
    let data = build_catalog(&files, DigestAlgorithm::Sha256).expect("build");
    let cat = dir.join(name);
    std::fs::write(&cat, data).expect("write");
    cat
}

fn anchors(name: &str) -> Vec<x509_cert::Certificate> {
    codeseal_keys::load_certificates(&pki(name)).expect("certs")
}

/// osslsigncode 2.9 and 2.14 and signify accept `cat`.
fn peers_accept(cat: &Path) {
    for bin in [Path::new("osslsigncode"), osslsigncode_new()] {
        let (ok, out) = osslsigncode_verify_with(bin, cat, &root());
        assert!(ok, "{}: {out}", bin.display());
    }
    let (ok, out) = signify_verify(cat, &root());
    assert!(ok, "signify: {out}");
}

/// The CTL bytes of a catalog file.
fn ctl_of(cat: &Path) -> Vec<u8> {
    let data = std::fs::read(cat).expect("read");
    parse_catalog(&data).expect("parse").ctl_der.to_vec()
}

fn signer_count(cat: &Path) -> usize {
    let data = std::fs::read(cat).expect("read");
    parse_catalog(&data)
        .expect("parse")
        .content_info
        .signed_data
        .signer_infos
        .len()
}

#[test]
fn catalog_is_a_file_kind() {
    let dir = tempfile::tempdir().expect("tmp");
    let cat = unsigned_catalog(dir.path(), "a.cat");
    assert_eq!(FileKind::detect(&cat).expect("kind"), FileKind::Catalog);
    // The same bytes named otherwise are not a catalog; a .cat that is not DER is refused.
    let other = dir.path().join("a.bin");
    std::fs::copy(&cat, &other).expect("copy");
    assert!(FileKind::detect(&other).is_err());
    let text = dir.path().join("text.cat");
    std::fs::write(&text, "not a catalog").expect("write");
    let e = FileKind::detect(&text).expect_err("text");
    assert!(e.to_string().contains("catalog"), "{e}");
}

/// sign_file → verify_file (trusted, kind catalog) → peers accept; sign again needs
/// --replace; --append and --page-hashes are refused; extract is the file; remove leaves
/// the unsigned catalog of the same CTL; attach puts the extracted signature back; a flipped
/// CTL byte fails.
#[test]
fn catalog_sign_verify_remove_extract_attach() {
    let dir = tempfile::tempdir().expect("tmp");
    let unsigned = unsigned_catalog(dir.path(), "unsigned.cat");
    let e = Verifier::integrity_only()
        .verify_file(&unsigned)
        .expect_err("unsigned");
    assert!(matches!(e, Error::NotSigned), "{e}");
    let signed = dir.path().join("signed.cat");
    let out = sign_file(
        &identity("leaf-rsa2048"),
        &unsigned,
        &signed,
        &SignOptions::default().with_opus(OpusInfo {
            program_name: Some("Catalog".into()),
            url: None,
        }),
    )
    .expect("sign");
    assert_eq!(out.kind, FileKind::Catalog);
    assert!(!out.appended);
    assert_eq!(ctl_of(&signed), ctl_of(&unsigned));
    let r = trusting().verify_file(&signed).expect("verify");
    assert!(r.valid, "{r:#?}");
    assert_eq!(r.kind, FileKind::Catalog);
    assert_eq!(r.signatures.len(), 1);
    assert_eq!(r.signatures[0].program_name.as_deref(), Some("Catalog"));
    peers_accept(&signed);
    // Members still verify against the generically signed catalog.
    let data = std::fs::read(&signed).expect("read");
    let report = verify_catalog(&data, Some(&anchors("root.pem"))).expect("catalog");
    assert_eq!(report.trusted, Some(true), "{:?}", report.chain_errors);
    for f in member_files(dir.path()) {
        assert!(find_file_member(&report, &f).expect("lookup").is_some());
    }
    // Another root: not trusted.
    let r = Verifier::new(anchors("other-root.pem"))
        .expect("anchors")
        .verify_file(&signed)
        .expect("verify");
    assert!(!r.valid);

    // Already signed; append and page hashes do not apply.
    let e = sign_file(
        &identity("leaf-rsa2048"),
        &signed,
        &signed,
        &SignOptions::default(),
    )
    .expect_err("signed");
    assert!(matches!(e, Error::AlreadySigned), "{e}");
    let e = sign_file(
        &identity("leaf-rsa2048"),
        &signed,
        &signed,
        &SignOptions::default().with_append(true),
    )
    .expect_err("append");
    assert!(
        matches!(&e, Error::Usage(m) if m.contains("one signature")),
        "{e}"
    );
    let e = sign_file(
        &identity("leaf-rsa2048"),
        &unsigned,
        &dir.path().join("pages.cat"),
        &SignOptions::default().with_page_hashes(true),
    )
    .expect_err("page hashes");
    assert!(e.to_string().contains("page hashes"), "{e}");
    let replaced = dir.path().join("replaced.cat");
    sign_file(
        &identity("leaf-p256"),
        &signed,
        &replaced,
        &SignOptions::default().with_replace(true),
    )
    .expect("replace");
    assert_eq!(signer_count(&replaced), 1);
    assert!(trusting().verify_file(&replaced).expect("v").valid);
    peers_accept(&replaced);

    // extract: the file itself.
    let sig = extract_signature(&signed).expect("extract");
    assert_eq!(sig, std::fs::read(&signed).expect("read"));
    assert!(matches!(
        extract_signature(&unsigned).expect_err("unsigned"),
        Error::NotSigned
    ));
    // remove: the unsigned catalog of the same CTL.
    let removed = dir.path().join("removed.cat");
    remove_signature(&signed, &removed, false).expect("remove");
    assert_eq!(signer_count(&removed), 0);
    assert_eq!(ctl_of(&removed), ctl_of(&signed));
    assert_eq!(
        std::fs::read(&removed).expect("read"),
        std::fs::read(&unsigned).expect("read"),
        "removing gives what `catalog create` without a key writes"
    );
    assert!(matches!(
        remove_signature(&removed, &dir.path().join("x.cat"), false).expect_err("unsigned"),
        Error::NotSigned
    ));
    // attach: the extracted signature goes back on; the result is the signed file.
    let attached = dir.path().join("attached.cat");
    attach_signature(&removed, &sig, &attached, AttachOptions::default()).expect("attach");
    assert_eq!(
        std::fs::read(&attached).expect("read"),
        std::fs::read(&signed).expect("read")
    );
    peers_accept(&attached);
    // A signature over another catalog's CTL is refused; so is a PE's signature.
    let other_dir = tempfile::tempdir().expect("tmp");
    std::fs::write(other_dir.path().join("readme.txt"), "other\n").expect("write");
    let other = other_dir.path().join("other.cat");
    std::fs::write(
        &other,
        build_catalog(
            &[other_dir.path().join("readme.txt")],
            DigestAlgorithm::Sha256,
        )
        .expect("build"),
    )
    .expect("write");
    // (and a catalog signature is not a PE's).
    let e = attach_elsewhere_refused(&sig, &other, dir.path());
    assert!(e.to_string().contains("not for a PE"), "{e}");
    let pe_signed = dir.path().join("pe.exe");
    sign_file(
        &identity("leaf-rsa2048"),
        &fixture("pe64.exe"),
        &pe_signed,
        &SignOptions::default(),
    )
    .expect("sign pe");
    let pe_sig = extract_signature(&pe_signed).expect("pe sig");
    let e = attach_signature(
        &removed,
        &pe_sig,
        &dir.path().join("z.cat"),
        AttachOptions::default(),
    )
    .expect_err("PE signature");
    assert!(e.to_string().contains("not for a catalog"), "{e}");
    let e = attach_signature(
        &removed,
        &sig,
        &dir.path().join("w.cat"),
        AttachOptions::default().with_append(true),
    )
    .expect_err("append");
    assert!(matches!(e, Error::Usage(_)), "{e}");

    // One flipped byte inside the CTL: invalid (or unreadable), never valid.
    let bytes = std::fs::read(&signed).expect("read");
    let ctl = ctl_of(&signed);
    let at = bytes
        .windows(ctl.len())
        .position(|w| w == ctl.as_slice())
        .expect("ctl in file")
        + ctl.len() / 2;
    let mut bad = bytes.clone();
    bad[at] ^= 0x01;
    let bad_path = dir.path().join("bad.cat");
    std::fs::write(&bad_path, &bad).expect("write");
    match trusting().verify_file(&bad_path) {
        Ok(r) => {
            assert!(!r.valid, "{r:#?}");
            assert!(!r.signatures[0].message_digest_ok);
        }
        Err(e) => assert!(!matches!(e, Error::NotSigned), "{e}"),
    }
    let (ok, _) = osslsigncode_verify_with(Path::new("osslsigncode"), &bad_path, &root());
    assert!(!ok, "osslsigncode accepted the flipped byte");
}

/// sign_bytes / sign_stream (the service's path) give the same kind of catalog.
#[test]
fn catalog_sign_bytes() {
    let dir = tempfile::tempdir().expect("tmp");
    let unsigned = unsigned_catalog(dir.path(), "u.cat");
    let data = std::fs::read(&unsigned).expect("read");
    let signed = sign_bytes(
        &identity("leaf-p256"),
        FileKind::Catalog,
        &data,
        &SignOptions::default(),
    )
    .expect("sign");
    let out = dir.path().join("s.cat");
    std::fs::write(&out, &signed).expect("write");
    assert!(trusting().verify_file(&out).expect("v").valid);
    let r = trusting()
        .verify_reader(
            FileKind::Catalog,
            &mut std::io::Cursor::new(&signed),
            Path::new("s.cat"),
        )
        .expect("reader");
    assert!(r.valid);
    peers_accept(&out);
    let e = sign_bytes(
        &identity("leaf-p256"),
        FileKind::Catalog,
        &signed,
        &SignOptions::default(),
    )
    .expect_err("signed");
    assert!(matches!(e, Error::AlreadySigned), "{e}");
    let e = sign_bytes(
        &identity("leaf-p256"),
        FileKind::Catalog,
        b"\x30\x03\x02\x01\x00",
        &SignOptions::default(),
    )
    .expect_err("not a catalog");
    assert!(!matches!(e, Error::AlreadySigned | Error::NotSigned), "{e}");
}

/// Split signing: the request's digest covers the CTL's content octets; the signed catalog
/// verifies here and in the peers.
#[test]
fn catalog_split_signing() {
    let dir = tempfile::tempdir().expect("tmp");
    let unsigned = unsigned_catalog(dir.path(), "u.cat");
    let id = identity("leaf-rsa2048");
    let out = dir.path().join("split.cat");
    let (req, sig) = split_sign(&unsigned, "leaf-rsa2048", "catalog", &out);
    // The image digest is the hash of the CTL's content octets.
    let ctl = ctl_of(&unsigned);
    let any: der::Any = der::Decode::from_der(&ctl).expect("ctl");
    assert_eq!(
        req.image_digest,
        hex::encode(DigestAlgorithm::Sha256.digest(any.value()))
    );
    assert!(trusting().verify_file(&out).expect("v").valid);
    peers_accept(&out);
    // A request whose kind was changed does not assemble into a catalog signature.
    let mut wrong = req.clone();
    wrong.kind = Some("PE".into());
    assert!(attach_request_signature(
        &unsigned,
        &wrong,
        &sig,
        id.chain(),
        &dir.path().join("wrong.cat"),
        AttachOptions::default(),
    )
    .is_err());
}

fn ts() -> TimestampOptions {
    ts_options()
        .with_timeout(Duration::from_secs(3))
        .with_budget(Duration::from_secs(30))
}

/// A time stamp added to an existing catalog signature (RFC 3161 and legacy) and one made
/// while signing: osslsigncode (time-stamp line checked) and signify accept them; the
/// report lists the stamp; stamping twice is refused.
#[test]
fn catalog_time_stamps() {
    let dir = tempfile::tempdir().expect("tmp");
    let unsigned = unsigned_catalog(dir.path(), "u.cat");
    let signed = dir.path().join("s.cat");
    sign_file(
        &identity("leaf-rsa2048"),
        &unsigned,
        &signed,
        &SignOptions::default(),
    )
    .expect("sign");
    for (route, protocol) in [
        ("/rfc3161", Protocol::Rfc3161),
        ("/legacy", Protocol::Legacy),
    ] {
        let stamped = dir.path().join(format!("t{}.cat", &route[1..]));
        let opts = ts()
            .with_urls(vec![format!("{}{route}", tsa())])
            .with_protocol(protocol);
        timestamp_file(&signed, &stamped, false, &opts).expect("timestamp");
        assert_eq!(ctl_of(&stamped), ctl_of(&signed));
        let (ok, text) = osslsigncode_verify_ts(&stamped);
        assert!(ok, "osslsigncode:\n{text}");
        let (ok, text) = signify_verify_ts(&stamped);
        assert!(ok, "signify:\n{text}");
        let r = ours_trusting_test_roots(&stamped);
        assert!(r.valid, "{r:#?}");
        let t = &r.signatures[0].timestamps;
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].protocol, protocol);
        assert!(t[0].valid && t[0].time.is_some(), "{t:?}");
        let data = std::fs::read(&stamped).expect("read");
        let report = verify_catalog(&data, Some(&anchors("root.pem"))).expect("catalog");
        assert_eq!(report.timestamps.len(), 1);
        let e = timestamp_file(&stamped, &stamped, false, &opts).expect_err("twice");
        assert!(e.to_string().contains("already"), "{e}");
    }
    // Stamped while signing (the shared path).
    let out = dir.path().join("signed-ts.cat");
    sign_file(
        &identity("leaf-p256"),
        &unsigned,
        &out,
        &SignOptions::default().with_timestamp(Some(ts())),
    )
    .expect("sign with a time stamp");
    let (ok, text) = osslsigncode_verify_ts(&out);
    assert!(ok, "osslsigncode:\n{text}");
    let r = ours_trusting_test_roots(&out);
    assert!(r.valid && r.signatures[0].timestamps.len() == 1, "{r:#?}");
    // An unsigned catalog has nothing to stamp.
    let e = timestamp_file(&unsigned, &dir.path().join("n.cat"), false, &ts()).expect_err("u");
    assert!(matches!(e, Error::NotSigned), "{e}");
}

/// A catalog signed by osslsigncode with an expired leaf and a time stamp back-dated into
/// its validity (osslsigncode's built-in TSA, an independent signer): valid in codeseal as a
/// PE would be (the chain is checked at the time-stamp time), invalid when the time stamp is
/// ignored; osslsigncode and signify agree.
#[test]
fn catalog_expired_leaf_with_a_back_dated_time_stamp() {
    let dir = tempfile::tempdir().expect("tmp");
    let unsigned = unsigned_catalog(dir.path(), "u.cat");
    let out = dir.path().join("expired-ts.cat");
    osslsigncode_sign_stamped(&unsigned, &out, "leaf-expired", unix_now() - 5 * 24 * 3600);
    let (ok, text) = osslsigncode_verify_ts(&out);
    assert!(ok, "osslsigncode: {text}");
    let (ok, text) = signify_verify_ts(&out);
    assert!(ok, "signify: {text}");
    let r = ours_trusting_test_roots(&out);
    assert!(r.valid, "{r:#?}");
    assert_eq!(r.kind, FileKind::Catalog);
    let v = trusting().with_tsa_anchors(anchors("tsa-root.pem"));
    let data = std::fs::read(&out).expect("read");
    let report = v.verify_catalog(&data).expect("catalog");
    assert_eq!(report.trusted, Some(true), "{:?}", report.chain_errors);
    // Ignoring the time stamp, the expired leaf fails (here and in verify_catalog).
    let v = v.ignore_timestamp(true);
    assert!(!v.verify_file(&out).expect("r").valid);
    let report = v.verify_catalog(&data).expect("catalog");
    assert_eq!(report.trusted, Some(false));
    // Without a time stamp the expired leaf fails too.
    let plain = dir.path().join("expired.cat");
    let o = std::process::Command::new("osslsigncode")
        .arg("sign")
        .arg("-certs")
        .arg(pki("leaf-expired-chain.pem"))
        .arg("-key")
        .arg(pki("leaf-expired.key"))
        .args(["-h", "sha256", "-in"])
        .arg(&unsigned)
        .arg("-out")
        .arg(&plain)
        .output()
        .expect("osslsigncode");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!ours_trusting_test_roots(&plain).valid);
}

/// Catalog-level attributes (`CAT_NAMEVALUE` in `ctlExtensions`, as makecat's `CATATTR`
/// lines): read back by codeseal, decoded by signify's own CTL and `NameValue` structures
/// (an independent reader), and the signed catalog is accepted by osslsigncode 2.9 / 2.14
/// and signify.
#[test]
fn catalog_attributes_read_by_signify() {
    use codeseal_authenticode::{
        catalog::{build_catalog_with, sign_catalog},
        formats::catalog::CatalogAttribute,
    };
    let dir = tempfile::tempdir().expect("tmp");
    let files = member_files(dir.path());
    let attrs = vec![
        CatalogAttribute::text("OSAttr", "2:6.1,2:10.0"),
        CatalogAttribute::text("HWID1", "pci\\ven_8086&dev_1234"),
        CatalogAttribute::text("Comment", "café ☕"),
    ];
    let unsigned = build_catalog_with(&files, DigestAlgorithm::Sha256, &attrs).expect("build");
    let back = parse_catalog(&unsigned)
        .expect("parse")
        .ctl
        .catalog_attributes()
        .expect("attributes");
    assert_eq!(back, attrs);
    assert_eq!(back[0].flags, 0x1001_0001);
    // No attributes: no ctlExtensions at all.
    let plain = build_catalog(&files, DigestAlgorithm::Sha256).expect("build");
    assert!(parse_catalog(&plain).expect("p").ctl.extensions.is_none());
    // An empty name is refused.
    assert!(build_catalog_with(
        &files,
        DigestAlgorithm::Sha256,
        &[CatalogAttribute::text("", "x")]
    )
    .is_err());

    let signed = sign_catalog(
        &identity("leaf-rsa2048"),
        &unsigned,
        &SignOptions::default(),
    )
    .expect("sign");
    let cat = dir.path().join("attrs.cat");
    std::fs::write(&cat, &signed).expect("write");
    peers_accept(&cat);
    assert!(trusting().verify_file(&cat).expect("v").valid);
    let script = dir.path().join("attrs.py");
    std::fs::write(
        &script,
        r#"import sys
from signify.asn1 import ctl
from asn1crypto import cms
ci = cms.ContentInfo.load(open(sys.argv[1], "rb").read())
content = ci["content"]["encap_content_info"]["content"]
assert isinstance(content, ctl.CertificateTrustList), type(content)
for e in content["ctl_extensions"]:
    nv = ctl.NameValue.load(e["extn_value"].native)
    print("%s|%s|%d|%s" % (e["extn_id"].dotted, nv["refname"].native, nv["typeaction"].native, nv["value"].native))
"#,
    )
    .expect("script");
    let o = std::process::Command::new(&env().python)
        .arg(&script)
        .arg(&cat)
        .output()
        .expect("python");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![
            "1.3.6.1.4.1.311.12.2.1|OSAttr|268500993|2:6.1,2:10.0",
            "1.3.6.1.4.1.311.12.2.1|HWID1|268500993|pci\\ven_8086&dev_1234",
            "1.3.6.1.4.1.311.12.2.1|Comment|268500993|café ☕",
        ]
    );
}
