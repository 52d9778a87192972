//! The bad-input catalogue (security.md (a), 22 rows): each row has a test here (or names the
//! test elsewhere) producing the typed error or warning. Inputs are crafted from a real signed
//! fixture.
mod common;

use std::{fs, io::Cursor};

use cms::{
    cert::CertificateChoices,
    content_info::ContentInfo,
    signed_data::{SignedData, SignerInfos},
};
use codeseal_authenticode::formats::Error as FormatError;
use codeseal_authenticode::{
    formats::pe::PeInfo,
    formats::pkcs7::ParsedSignature,
    formats::wincert::{build_entry, parse_table},
    sign_file, Error, FindingCode, SignOptions,
};
use codeseal_signer::DigestAlgorithm;
use common::*;
use der::{
    asn1::{Any, OctetString, SetOfVec},
    Decode, Encode,
};

/// A signed PE32+ fixture, its bytes and headers.
fn signed() -> (Vec<u8>, PeInfo, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("s.exe");
    sign_file(
        &identity("leaf-rsa2048"),
        &fixture("pe64.exe"),
        &out,
        &SignOptions::default(),
    )
    .expect("sign");
    let bytes = fs::read(&out).expect("read");
    let pe = PeInfo::read(&mut Cursor::new(&bytes)).expect("pe");
    let sig = codeseal_authenticode::extract_signature(&out).expect("sig");
    (bytes, pe, sig)
}

/// The file with its certificate table replaced by `table` (Security entry patched).
fn with_table(bytes: &[u8], pe: &PeInfo, table: &[u8]) -> Vec<u8> {
    let off = pe.cert_table.expect("signed").offset as usize;
    let mut b = bytes[..off].to_vec();
    b.extend_from_slice(table);
    let d = pe.security_dir_offset as usize;
    b[d..d + 4].copy_from_slice(&(off as u32).to_le_bytes());
    b[d + 4..d + 8].copy_from_slice(&(table.len() as u32).to_le_bytes());
    b
}

/// Re-encodes the signature after `f` changes its SignedData.
fn edit(sig: &[u8], f: impl FnOnce(&mut SignedData)) -> Vec<u8> {
    let ci = ContentInfo::from_der(sig).expect("ci");
    let mut sd: SignedData = ci.content.decode_as().expect("sd");
    f(&mut sd);
    ContentInfo {
        content_type: ci.content_type,
        content: Any::encode_from(&sd).expect("any"),
    }
    .to_der()
    .expect("der")
}

fn report_errors(b: &[u8]) -> String {
    match verify(&mut Cursor::new(b)) {
        Ok(r) => {
            assert!(!r.valid, "accepted: {r:#?}");
            format!(
                "{:?} {:?}",
                r.errors,
                r.signatures.iter().map(|s| &s.errors).collect::<Vec<_>>()
            )
        }
        Err(e) => e.to_string(),
    }
}

// Row 1: bytes inside WIN_CERTIFICATE after the PKCS#7 — sign_verify::damaged_real_files_give_typed_errors
// (more than 7 bytes: error) and trust::padding_bytes_... (non-zero padding: warning, --strict error).
// Row 2: data after the table — sign_verify::damaged_real_files_give_typed_errors.

#[test]
fn row3_broken_win_certificate_chains() {
    let (bytes, pe, sig) = signed();
    let entry = build_entry(&sig).expect("entry");
    // dwLength 0, < 8, past the table, revision and unknown type.
    for (i, patch) in [0u32, 5, 8, entry.len() as u32 + 64].iter().enumerate() {
        let mut e = entry.clone();
        e[..4].copy_from_slice(&patch.to_le_bytes());
        let msg = report_errors(&with_table(&bytes, &pe, &e));
        assert!(
            msg.contains("certificate table") || msg.contains("dwLength"),
            "case {i}: {msg}"
        );
    }
    // An entry that is not a revision-2.0 PKCS#7 entry is not a signature (as osslsigncode
    // and signify read it): alone, the file is not signed; beside a real one, it is reported.
    for (at, value) in [(4usize, 0x0100u16), (6, 0x0001)] {
        let mut e = entry.clone();
        e[at..at + 2].copy_from_slice(&value.to_le_bytes());
        let r = verify(&mut Cursor::new(with_table(&bytes, &pe, &e)));
        assert!(
            matches!(r, Err(codeseal_authenticode::Error::NotSigned)),
            "field at {at} = {value:#x}: {r:#?}"
        );
        let mut two = entry.clone();
        two.extend_from_slice(&e);
        let r = verify(&mut Cursor::new(with_table(&bytes, &pe, &two))).expect("report");
        assert!(r.valid, "{r:#?}");
        assert_eq!(r.signatures.len(), 1, "{r:#?}");
        let w = r
            .warnings
            .iter()
            .find(|w| w.code == FindingCode::NotASignatureEntry)
            .expect("the second entry is reported");
        assert_eq!(
            w.offset,
            Some(pe.cert_table.expect("table").offset + entry.len() as u64),
            "{w:?}"
        );
    }
    // Table size that does not add up (stray bytes at the end of the table).
    let mut t = entry.clone();
    t.extend_from_slice(&[0u8; 4]);
    let msg = report_errors(&with_table(&bytes, &pe, &t));
    assert!(msg.contains("stray"), "{msg}");
}

#[test]
fn row4_several_entries_are_all_reported() {
    let (bytes, pe, sig) = signed();
    let mut t = build_entry(&sig).expect("entry");
    t.extend(build_entry(&sig).expect("entry"));
    let r = verify(&mut Cursor::new(with_table(&bytes, &pe, &t))).expect("report");
    assert_eq!(r.signatures.len(), 2, "{r:#?}");
    assert!(r.valid, "{r:#?}");
    let (entries, _) = parse_table(&t).expect("table");
    assert_eq!(entries.len(), 2);
}

#[test]
fn row5_nesting_is_depth_capped() {
    let (bytes, pe, sig) = signed();
    let mut cur = sig.clone();
    for _ in 0..(codeseal_authenticode::formats::pkcs7::MAX_NESTING + 2) {
        cur = codeseal_authenticode::formats::pkcs7::nest_signature(&sig, &cur).expect("nest");
    }
    let msg = report_errors(&with_table(&bytes, &pe, &build_entry(&cur).expect("entry")));
    assert!(msg.contains("nested deeper"), "{msg}");
}

// Row 6: unsigned attributes and extra certificates — trust::padding_bytes_unknown_unsigned_attributes_and_extra_certificates.

#[test]
fn row7_overlay_and_unstripped_images_hash_like_osslsigncode() {
    // sign_verify::digest_equals_osslsigncodes_for_every_fixture covers overlay.exe and
    // unstripped.exe (a COFF symbol table after the sections) against osslsigncode; here,
    // overlapping sections cannot be described by page hashes and are refused for them.
    let (bytes, pe, _) = signed();
    let mut b = bytes.clone();
    let table = pe.pe_offset as usize + 24 + 240; // PE32+ section table
    let second = table + 40;
    let first_raw = u32::from_le_bytes(b[table + 20..table + 24].try_into().expect("4"));
    b[second + 20..second + 24].copy_from_slice(&first_raw.to_le_bytes());
    let pe2 = PeInfo::read(&mut Cursor::new(&b)).expect("pe");
    let e =
        codeseal_authenticode::formats::pagehash::PageHasher::new(&pe2, DigestAlgorithm::Sha256)
            .expect_err("overlap");
    assert!(e.to_string().contains("overlap"), "{e}");
}

// Row 8: size not a multiple of 8 — sign_verify (oddsize.exe against osslsigncode).
// Row 9: stale CheckSum — sign_verify::one_flipped_byte_..._and_checksum_change_is_not (warning).
// Row 10: lying headers — pe::tests::bad_inputs_are_typed_errors and sign_verify::damaged_real_files.

#[test]
fn row10_small_optional_header_and_few_directories() {
    let (bytes, pe, _) = signed();
    let mut b = bytes.clone();
    let opt_len_at = pe.pe_offset as usize + 20;
    b[opt_len_at..opt_len_at + 2].copy_from_slice(&60u16.to_le_bytes());
    assert!(matches!(
        verify(&mut Cursor::new(&b)),
        Err(Error::Format(FormatError::MalformedPe { .. }))
    ));
}

// Row 11: looping directories — codeseal reads no directory but Security.

#[test]
fn row12_page_hash_tables_with_absurd_values() {
    let (bytes, pe, _) = signed();
    let mut b = bytes.clone();
    let opt = pe.pe_offset as usize + 24;
    b[opt + 32..opt + 36].copy_from_slice(&0x8000_0000u32.to_le_bytes()); // SectionAlignment 2 GiB
    let pe2 = PeInfo::read(&mut Cursor::new(&b)).expect("pe");
    let e =
        codeseal_authenticode::formats::pagehash::PageHasher::new(&pe2, DigestAlgorithm::Sha256)
            .expect_err("align");
    assert!(e.to_string().contains("SectionAlignment"), "{e}");
}

#[test]
fn row13_image_digest_longer_than_the_hash() {
    let (bytes, pe, sig) = signed();
    let p = ParsedSignature::parse(&sig).expect("parse");
    let mut spc = p.spc.clone();
    spc.message_digest.digest = OctetString::new(vec![0x41u8; 4096]).expect("o");
    let bad = edit(&sig, |sd| {
        sd.encap_content_info.econtent = Some(Any::encode_from(&spc).expect("any"))
    });
    let msg = report_errors(&with_table(&bytes, &pe, &build_entry(&bad).expect("entry")));
    assert!(msg.contains("image digest is 4096 bytes"), "{msg}");
}

#[test]
fn row14_pkcs7_shape() {
    let (bytes, pe, sig) = signed();
    let check = |bad: Vec<u8>, needle: &str| {
        let msg = report_errors(&with_table(&bytes, &pe, &build_entry(&bad).expect("entry")));
        assert!(msg.contains(needle), "expected {needle:?}: {msg}");
    };
    // Two SignerInfos.
    check(
        edit(&sig, |sd| {
            let one = sd.signer_infos.0.iter().next().cloned().expect("si");
            let mut two = one.clone();
            two.signature = OctetString::new(vec![1u8; 8]).expect("o");
            let mut set = SetOfVec::new();
            set.insert(one).expect("i");
            set.insert(two).expect("i");
            sd.signer_infos = SignerInfos(set);
        }),
        "SignerInfos",
    );
    // Digest algorithm mismatch between SignerInfo and SpcIndirectData.
    check(
        edit(&sig, |sd| {
            let mut one = sd.signer_infos.0.iter().next().cloned().expect("si");
            one.digest_alg = DigestAlgorithm::Sha512.algorithm_identifier();
            let mut set = SetOfVec::new();
            set.insert(one).expect("i");
            sd.signer_infos = SignerInfos(set);
        }),
        "differs",
    );
    // Content type not SpcIndirectData.
    check(
        edit(&sig, |sd| {
            sd.encap_content_info.econtent_type = const_oid::db::rfc5911::ID_DATA
        }),
        "not SpcIndirectDataContent",
    );
    // Missing messageDigest.
    check(
        edit(&sig, |sd| {
            let mut one = sd.signer_infos.0.iter().next().cloned().expect("si");
            let attrs: Vec<_> = one
                .signed_attrs
                .take()
                .expect("attrs")
                .into_vec()
                .into_iter()
                .filter(|a| a.oid != codeseal_authenticode::formats::oid::PKCS9_MESSAGE_DIGEST)
                .collect();
            one.signed_attrs = Some(SetOfVec::try_from(attrs).expect("set"));
            let mut set = SetOfVec::new();
            set.insert(one).expect("i");
            sd.signer_infos = SignerInfos(set);
        }),
        "messageDigest",
    );
    // No certificates.
    check(
        edit(&sig, |sd| sd.certificates = None),
        "certificate is not in the signature",
    );
    // A non-X.509 certificate choice only.
    check(
        edit(&sig, |sd| {
            let mut set = SetOfVec::new();
            set.insert(CertificateChoices::Other(
                cms::cert::OtherCertificateFormat {
                    other_cert_format: const_oid::db::rfc5911::ID_DATA,
                    other_cert: Any::encode_from(&OctetString::new(vec![1u8]).expect("o"))
                        .expect("any"),
                },
            ))
            .expect("i");
            sd.certificates = Some(cms::signed_data::CertificateSet(set));
        }),
        "certificate is not in the signature",
    );
}

#[test]
fn row15_signed_attributes_are_verified_over_their_original_bytes() {
    // The verifier never re-encodes: flip a byte inside the signed attributes' program name
    // (original bytes) and the signature fails, although the attributes still parse.
    let (bytes, pe, sig) = signed();
    let p = ParsedSignature::parse(&sig).expect("parse");
    let pos = sig
        .windows(p.signed_attrs_der.len() - 2)
        .position(|w| w == &p.signed_attrs_der[2..])
        .expect("attrs");
    let mut bad = sig.clone();
    bad[pos + p.signed_attrs_der.len() - 4] ^= 0x01;
    let r = verify(&mut Cursor::new(with_table(
        &bytes,
        &pe,
        &build_entry(&bad).expect("e"),
    )))
    .expect("report");
    assert!(!r.valid && !r.signatures[0].signature_ok, "{r:#?}");
}

#[test]
fn row16_explicit_curve_parameters_are_refused() {
    // An EC public key with explicit parameters (not a named curve) is refused.
    use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ID_EC_PUBLIC_KEY,
            parameters: Some(Any::encode_from(&der::asn1::Null).expect("null")),
        },
        subject_public_key: der::asn1::BitString::from_bytes(&[4u8; 65]).expect("bits"),
    };
    let e = codeseal_signer::key_kind_of(&spki).expect_err("explicit");
    assert!(
        e.to_string().contains("explicit") || e.to_string().contains("curve"),
        "{e}"
    );
}

#[test]
fn row17_18_weak_digests_and_small_keys() {
    // SHA-1 signing needs an explicit flag.
    let dir = tempfile::tempdir().expect("tmp");
    let e = sign_file(
        &identity("leaf-rsa2048"),
        &fixture("pe64.exe"),
        &dir.path().join("x.exe"),
        &SignOptions::default().with_digest(DigestAlgorithm::Sha1),
    )
    .expect_err("sha1");
    assert!(e.to_string().contains("SHA-1"), "{e}");
    // RSA keys below 2048 bits are refused.
    let small = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).expect("key");
    let der = rsa::pkcs8::EncodePublicKey::to_public_key_der(&small.to_public_key()).expect("der");
    let spki = spki::SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).expect("spki");
    let e = codeseal_signer::key_kind_of(&spki).expect_err("small");
    assert!(e.to_string().contains("1024"), "{e}");
}

// Row 19: signer without codeSigning EKU — trust::verdicts_match_osslsigncode_and_signify (serverAuth leaf).
// Row 20: crafted files fed to the signer — fuzz target sign_roundtrip; here: a truncated input.
#[test]
fn row20_the_signer_refuses_crafted_inputs_without_writing() {
    let (bytes, _, _) = signed();
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("crafted.exe");
    fs::write(&input, &bytes[..bytes.len() / 3]).expect("write");
    let out = dir.path().join("out.exe");
    let e = sign_file(
        &identity("leaf-p256"),
        &input,
        &out,
        &SignOptions::default().with_replace(true),
    )
    .expect_err("crafted");
    assert!(
        matches!(
            e,
            Error::Format(FormatError::CertTable(_)) | Error::Format(FormatError::Truncated { .. })
        ),
        "{e}"
    );
    assert!(!out.exists());
    assert_eq!(
        fs::read_dir(dir.path()).expect("ls").count(),
        1,
        "temp files left"
    );
}

// Row 21: a remote key returning a wrong signature — codeseal-local faulty_backend_tests and
// codeseal-kms offline tests (BadSignatureFromKey); key/certificate mismatch — sign_verify.
// Row 22: never modify the input in place — every signing test compares the input's hash;
// timestamp::every_fault_is_a_clear_error_and_nothing_is_written.
