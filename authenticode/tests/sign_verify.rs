//! Signing every fixture with every test key, checked by osslsigncode, signify and our verifier.
mod common;

fn pe_checksum_offset(path: &std::path::Path) -> u64 {
    let mut f = std::io::BufReader::new(fs::File::open(path).expect("open"));
    PeInfo::read(&mut f).expect("pe").checksum_offset
}

fn t_end(pe: &PeInfo) -> u64 {
    let t = pe.cert_table.expect("table");
    t.offset + t.size
}

use std::{fs, io::Cursor};

use codeseal_authenticode::formats::Error as FormatError;
use codeseal_authenticode::{
    digest::stream_image, formats::pe::PeInfo, formats::pkcs7::ParsedSignature,
    formats::wincert::parse_table, sign_file, Error, FindingCode, SignOptions,
};
use codeseal_signer::DigestAlgorithm;
use common::*;

fn opts(digest: DigestAlgorithm) -> SignOptions {
    SignOptions::default()
        .with_digest(digest)
        .with_opus(codeseal_authenticode::OpusInfo {
            program_name: Some("codeseal test".into()),
            url: Some("https://example.com/codeseal".into()),
        })
}

fn check_all_accept(path: &std::path::Path) {
    let (ok, out) = osslsigncode_verify(path, &root());
    assert!(ok, "osslsigncode rejected {}:\n{out}", path.display());
    let (ok, out) = signify_verify(path, &root());
    assert!(ok, "signify rejected {}:\n{out}", path.display());
    let trusted = ours_trusting_test_roots(path);
    assert!(
        trusted.valid,
        "codeseal (trusting the test roots) rejected {}: {trusted:#?}",
        path.display()
    );
    let report = verify_file(path).expect("verify");
    assert!(
        report.valid,
        "codeseal rejected {}: {report:#?}",
        path.display()
    );
}

#[test]
fn every_fixture_with_every_leaf_is_accepted_by_osslsigncode_and_signify() {
    let dir = tempfile::tempdir().expect("tmp");
    for fx in FIXTURES {
        let input = fixture(fx);
        let before = sha256_file(&input);
        for leaf in LEAVES {
            let out = dir.path().join(format!("{leaf}-{fx}"));
            let id = identity(leaf);
            let res = sign_file(&id, &input, &out, &opts(DigestAlgorithm::Sha256))
                .unwrap_or_else(|e| panic!("sign {fx} with {leaf}: {e}"));
            assert_eq!(res.output_len, fs::metadata(&out).expect("meta").len());
            check_all_accept(&out);
        }
        assert_eq!(sha256_file(&input), before, "input {fx} was modified");
    }
}

#[test]
fn sha384_and_sha512_are_accepted() {
    let dir = tempfile::tempdir().expect("tmp");
    for (leaf, d) in [
        ("leaf-rsa2048", DigestAlgorithm::Sha384),
        ("leaf-rsa2048", DigestAlgorithm::Sha512),
        ("leaf-p256", DigestAlgorithm::Sha384),
        ("leaf-rsa4096", DigestAlgorithm::Sha512),
    ] {
        let out = dir.path().join(format!("{leaf}-{d}.exe"));
        sign_file(&identity(leaf), &fixture("pe64.exe"), &out, &opts(d)).expect("sign");
        let r = verify_file(&out).expect("verify");
        assert_eq!(r.signatures[0].digest_algorithm, d);
        check_all_accept(&out);
    }
}

/// Our image digest of each unsigned fixture equals the one osslsigncode embeds when it signs it.
#[test]
fn digest_equals_osslsigncodes_for_every_fixture() {
    let dir = tempfile::tempdir().expect("tmp");
    for fx in FIXTURES {
        for d in [
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha1,
            DigestAlgorithm::Sha512,
        ] {
            let input = fixture(fx);
            let theirs = dir.path().join(format!("ossl-{d}-{fx}"));
            osslsigncode_sign(&input, &theirs, "leaf-rsa2048", d.name());
            let mut f = fs::File::open(&theirs).expect("open");
            let pe = PeInfo::read(&mut f).expect("pe");
            let table = {
                let t = pe.cert_table.expect("signed");
                fs::read(&theirs).expect("read")[t.offset as usize..(t.offset + t.size) as usize]
                    .to_vec()
            };
            let (entries, _) = parse_table(&table).expect("table");
            let parsed =
                ParsedSignature::parse(entries[0].data).expect("parse osslsigncode's signature");
            // Ours, over the unsigned input.
            let mut r = fs::File::open(&input).expect("open");
            let pe_in = PeInfo::read(&mut r).expect("pe");
            let pass = stream_image(&mut r, &pe_in, &[d], None).expect("digest");
            assert_eq!(
                hex::encode(pass.digest(d).expect("digest")),
                hex::encode(parsed.image_digest()),
                "{fx} {d}: digest differs from osslsigncode's"
            );
            // And our verifier accepts osslsigncode's signature (files signed by others).
            let report = verify_file(&theirs).expect("verify");
            assert!(report.valid, "{fx} {d}: {report:#?}");
            assert!(
                report
                    .warnings
                    .iter()
                    .all(|w| w.code != FindingCode::ChecksumMismatch)
                    || d == DigestAlgorithm::Sha1
            );
        }
    }
}

fn text_offset(path: &std::path::Path) -> u64 {
    let mut f = fs::File::open(path).expect("open");
    let pe = PeInfo::read(&mut f).expect("pe");
    let text = pe
        .sections
        .iter()
        .find(|s| s.name == ".text")
        .expect(".text");
    u64::from(text.raw_offset) + 16
}

#[test]
fn one_flipped_byte_in_text_is_rejected_by_all_and_checksum_change_is_not() {
    let dir = tempfile::tempdir().expect("tmp");
    let signed = dir.path().join("signed.exe");
    sign_file(
        &identity("leaf-rsa2048"),
        &fixture("pe64.exe"),
        &signed,
        &opts(DigestAlgorithm::Sha256),
    )
    .expect("sign");
    check_all_accept(&signed);

    let mut bytes = fs::read(&signed).expect("read");
    let at = text_offset(&signed) as usize;
    bytes[at] ^= 0x01;
    let flipped = dir.path().join("flipped.exe");
    fs::write(&flipped, &bytes).expect("write");
    assert!(
        !osslsigncode_verify(&flipped, &root()).0,
        "osslsigncode accepted a modified .text"
    );
    assert!(
        !signify_verify(&flipped, &root()).0,
        "signify accepted a modified .text"
    );
    let r = verify_file(&flipped).expect("report");
    assert!(!r.valid);
    assert!(!r.signatures[0].image_digest_ok);
    assert!(
        r.signatures[0].signature_ok,
        "the signature itself is intact"
    );

    let mut bytes = fs::read(&signed).expect("read");
    let pe = PeInfo::read(&mut Cursor::new(&bytes)).expect("pe");
    let c = pe.checksum_offset as usize;
    bytes[c] ^= 0x5a;
    let cks = dir.path().join("checksum.exe");
    fs::write(&cks, &bytes).expect("write");
    check_all_accept(&cks);
    let r = verify_file(&cks).expect("report");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.code == FindingCode::ChecksumMismatch
                && w.offset == Some(pe_checksum_offset(&cks))),
        "{:?}",
        r.warnings
    );
}

#[test]
fn our_checksum_is_the_one_osslsigncode_computes() {
    let dir = tempfile::tempdir().expect("tmp");
    for fx in FIXTURES {
        let signed = dir.path().join(fx);
        sign_file(
            &identity("leaf-p256"),
            &fixture(fx),
            &signed,
            &opts(DigestAlgorithm::Sha256),
        )
        .expect("sign");
        let r = verify_file(&signed).expect("verify");
        assert!(
            r.checksum_in_header.is_some(),
            "{fx}: a PE report has checksums"
        );
        assert_eq!(r.checksum_in_header, r.checksum_computed, "{fx}");
        let (_, out) = osslsigncode_verify(&signed, &root());
        let line = out
            .lines()
            .find(|l| l.starts_with("PE checksum"))
            .expect("checksum line");
        assert!(
            line.to_ascii_lowercase()
                .contains(&format!("{:08x}", r.checksum_in_header.unwrap_or_default())),
            "{fx}: {line}"
        );
        assert!(
            !out.contains("Calculated PE checksum"),
            "{fx}: osslsigncode disagrees:\n{out}"
        );
    }
}

#[test]
fn already_signed_existing_output_and_replace() {
    let dir = tempfile::tempdir().expect("tmp");
    let id = identity("leaf-rsa2048");
    let signed = dir.path().join("a.exe");
    sign_file(&id, &fixture("pe32.exe"), &signed, &SignOptions::default()).expect("sign");
    // Output exists.
    let e =
        sign_file(&id, &fixture("pe32.exe"), &signed, &SignOptions::default()).expect_err("exists");
    assert!(matches!(e, Error::OutputExists(_)), "{e}");
    // Already signed.
    let again = dir.path().join("b.exe");
    let e = sign_file(&id, &signed, &again, &SignOptions::default()).expect_err("signed");
    assert!(matches!(e, Error::AlreadySigned), "{e}");
    assert!(!again.exists());
    // Replace with another key, in place.
    let before = verify_file(&signed).expect("v").signatures[0]
        .computed_digest
        .clone();
    let o = SignOptions::default().with_replace(true);
    sign_file(&identity("leaf-p256"), &signed, &signed, &o).expect("replace");
    let r = verify_file(&signed).expect("v");
    assert_eq!(r.signatures.len(), 1);
    assert_eq!(
        r.signatures[0].computed_digest, before,
        "digest stable across re-signing"
    );
    assert!(
        r.signatures[0]
            .signer
            .as_ref()
            .expect("signer")
            .subject
            .contains("p256")
            || r.valid
    );
    check_all_accept(&signed);
    // No temp files left behind.
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".codeseal-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn key_certificate_mismatch_is_refused() {
    let key = codeseal_local::LocalKey::from_file(&pki("leaf-rsa2048.key"), None)
        .expect("key")
        .key;
    let chain = codeseal_keys::load_certificates(&pki("leaf-p256-chain.pem")).expect("chain");
    let e = codeseal_signer::SigningIdentity::new(std::sync::Arc::new(key), chain)
        .expect_err("mismatch");
    assert!(
        matches!(e, codeseal_signer::SignError::KeyMismatch { .. }),
        "{e}"
    );
}

#[test]
fn every_key_format_signs() {
    let dir = tempfile::tempdir().expect("tmp");
    let pw = secrecy::SecretString::from(
        fs::read_to_string(pki("p12-pass.txt"))
            .expect("pw")
            .trim()
            .to_string(),
    );
    let p12 =
        codeseal_local::LocalKey::from_file(&pki("leaf-rsa2048.p12"), Some(&pw)).expect("p12");
    assert!(p12.chain.len() >= 2, "PKCS#12 carries the chain");
    let pkcs1 =
        codeseal_local::LocalKey::from_file(&pki("leaf-rsa2048-pkcs1.key"), None).expect("pkcs1");
    let sec1 = codeseal_local::LocalKey::from_file(&pki("leaf-p256-sec1.key"), None).expect("sec1");
    let p12_no_pw = codeseal_local::LocalKey::from_file(&pki("leaf-rsa2048.p12"), None);
    assert!(matches!(
        p12_no_pw,
        Err(codeseal_local::LoadError::PasswordRequired)
    ));
    let bad_pw = secrecy::SecretString::from("wrong".to_string());
    assert!(codeseal_local::LocalKey::from_file(&pki("leaf-rsa2048.p12"), Some(&bad_pw)).is_err());
    for (name, key, chain) in [
        ("p12", p12.key, p12.chain),
        (
            "pkcs1",
            pkcs1.key,
            codeseal_keys::load_certificates(&pki("leaf-rsa2048-chain.pem")).expect("c"),
        ),
        (
            "sec1",
            sec1.key,
            codeseal_keys::load_certificates(&pki("leaf-p256-chain.pem")).expect("c"),
        ),
    ] {
        let id =
            codeseal_signer::SigningIdentity::new(std::sync::Arc::new(key), chain).expect(name);
        let out = dir.path().join(format!("{name}.exe"));
        sign_file(&id, &fixture("pe64.dll"), &out, &SignOptions::default()).expect(name);
        check_all_accept(&out);
    }
}

#[test]
fn damaged_real_files_give_typed_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let signed = dir.path().join("s.exe");
    sign_file(
        &identity("leaf-p256"),
        &fixture("pe64.exe"),
        &signed,
        &SignOptions::default(),
    )
    .expect("sign");
    let bytes = fs::read(&signed).expect("read");
    let pe = PeInfo::read(&mut Cursor::new(&bytes)).expect("pe");
    // Truncated anywhere: an error, never a panic. Cut inside the table: the table runs past EOF.
    for cut in [0, 10, 64, 100, 300, 1024, bytes.len() / 2, bytes.len() - 1] {
        let r = verify(&mut Cursor::new(&bytes[..cut]));
        assert!(
            r.is_err() || !r.as_ref().map(|x| x.valid).unwrap_or(false),
            "cut {cut}"
        );
    }
    let r = verify(&mut Cursor::new(&bytes[..bytes.len() - 4]));
    assert!(
        matches!(r, Err(Error::Format(FormatError::CertTable(_)))),
        "{r:?}"
    );
    // e_lfanew past EOF.
    let mut b = bytes.clone();
    b[0x3c..0x40].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    assert!(matches!(
        verify(&mut Cursor::new(&b)),
        Err(Error::Format(FormatError::Truncated { .. }))
    ));
    // Absurd section count.
    let mut b = bytes.clone();
    let nsec = pe.pe_offset as usize + 6;
    b[nsec..nsec + 2].copy_from_slice(&0xffffu16.to_le_bytes());
    assert!(matches!(
        verify(&mut Cursor::new(&b)),
        Err(Error::Format(FormatError::Truncated { .. }))
    ));
    // Certificate table pointing past EOF.
    let mut b = bytes.clone();
    let dir_at = pe.security_dir_offset as usize;
    b[dir_at..dir_at + 4].copy_from_slice(&(bytes.len() as u32 - 8).to_le_bytes());
    assert!(matches!(
        verify(&mut Cursor::new(&b)),
        Err(Error::Format(FormatError::CertTable(_)))
    ));
    // Data appended after the table: invalid (CVE-2012-0151 shape).
    let mut b = bytes.clone();
    b.extend_from_slice(&[0u8; 8]);
    let r = verify(&mut Cursor::new(&b)).expect("report");
    assert!(
        !r.valid
            && r.errors
                .iter()
                .any(|e| e.code == FindingCode::DataAfterCertificateTable
                    && e.offset == Some(t_end(&pe)))
    );
    // Garbage inside the PKCS#7: a typed signature error in the report.
    let mut b = bytes.clone();
    let t = pe.cert_table.expect("table");
    b[t.offset as usize + 8] = 0x04;
    let r = verify(&mut Cursor::new(&b)).expect("report");
    assert!(!r.valid && !r.errors.is_empty());
    // Bytes smuggled inside the WIN_CERTIFICATE after the PKCS#7 (CVE-2013-3900 shape), with
    // dwLength and the Security entry grown to cover them: invalid in ours, as in signify.
    let mut b = bytes.clone();
    let t = pe.cert_table.expect("table");
    let extra = [0x41u8; 16];
    b.extend_from_slice(&extra);
    let start = t.offset as usize;
    let len = u32::from_le_bytes(b[start..start + 4].try_into().expect("4")) + extra.len() as u32;
    b[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let dir_at = pe.security_dir_offset as usize;
    b[dir_at + 4..dir_at + 8].copy_from_slice(&(t.size as u32 + extra.len() as u32).to_le_bytes());
    let smuggled = dir.path().join("smuggled.exe");
    fs::write(&smuggled, &b).expect("write");
    let r = verify(&mut Cursor::new(&b)).expect("report");
    assert!(!r.valid, "smuggled bytes accepted: {r:#?}");
    assert!(
        r.signatures[0]
            .errors
            .iter()
            .any(|e| e.code == FindingCode::UnsignedBytesInEntry
                && e.signature.as_deref() == Some("0")),
        "{r:#?}"
    );
    // Unsigned file: NotSigned.
    assert!(matches!(
        verify_file(&fixture("pe64.exe")),
        Err(Error::NotSigned)
    ));
}

/// Both crypto providers of local keys (aws-lc-rs, the default, and RustCrypto) make PE
/// signatures that osslsigncode, signify and codeseal accept, with RSA and ECDSA leaves and
/// every SHA-2 digest.
#[test]
fn both_local_key_providers_sign_pes_that_osslsigncode_and_signify_accept() {
    use codeseal_local::{provider, provider::CryptoProvider, LocalKey};
    let dir = tempfile::tempdir().expect("tmp");
    let mut providers: Vec<&'static dyn provider::CryptoProvider> =
        vec![provider::default_provider()];
    if providers[0].name() != provider::RUSTCRYPTO.name() {
        providers.push(&provider::RUSTCRYPTO);
    }
    for p in providers {
        for (leaf, d) in [
            ("leaf-rsa2048", DigestAlgorithm::Sha256),
            ("leaf-rsa4096", DigestAlgorithm::Sha384),
            ("leaf-p256", DigestAlgorithm::Sha256),
            ("leaf-p256", DigestAlgorithm::Sha512),
        ] {
            let key = LocalKey::from_file(&pki(&format!("{leaf}.key")), None)
                .expect("key")
                .key
                .with_provider(p)
                .expect("provider");
            assert_eq!(key.provider().name(), p.name());
            let chain = codeseal_keys::load_certificates(&pki(&format!("{leaf}-chain.pem")))
                .expect("chain");
            let id = codeseal_signer::SigningIdentity::new(std::sync::Arc::new(key), chain)
                .expect("identity");
            let out = dir.path().join(format!("{}-{leaf}-{d}.exe", p.name()));
            sign_file(&id, &fixture("pe64.exe"), &out, &opts(d))
                .unwrap_or_else(|e| panic!("{} {leaf} {d}: {e}", p.name()));
            check_all_accept(&out);
        }
    }
}
