//! Nested signatures, page hashes, remove / extract / attach, checked by osslsigncode and signify.
mod common;

use std::fs;

use codeseal_authenticode::{
    attach_signature, extract_signature, remove_signature, sign_file, AttachOptions, Error,
    SignOptions,
};
use codeseal_signer::DigestAlgorithm;
use common::*;

fn sign(leaf: &str, input: &std::path::Path, output: &std::path::Path, o: SignOptions) {
    sign_file(&identity(leaf), input, output, &o)
        .unwrap_or_else(|e| panic!("sign {}: {e}", output.display()));
}

fn accepted(path: &std::path::Path) -> String {
    let (ok, out) = osslsigncode_verify(path, &root());
    assert!(ok, "osslsigncode rejected {}:\n{out}", path.display());
    let (ok, s) = signify_verify(path, &root());
    assert!(ok, "signify rejected {}:\n{s}", path.display());
    let r = verify_file(path).expect("verify");
    assert!(r.valid, "codeseal rejected {}: {r:#?}", path.display());
    let r = ours_trusting_test_roots(path);
    assert!(
        r.valid,
        "codeseal (trusting the test roots) rejected {}: {r:#?}",
        path.display()
    );
    out
}

#[test]
fn nested_sha1_and_sha256_and_rsa_plus_ecdsa() {
    let dir = tempfile::tempdir().expect("tmp");
    // SHA-1 first, SHA-256 appended (classic dual signing).
    let dual = dir.path().join("dual.exe");
    sign(
        "leaf-rsa2048",
        &fixture("pe64.exe"),
        &dual,
        SignOptions::default()
            .with_digest(DigestAlgorithm::Sha1)
            .with_allow_sha1(true),
    );
    sign(
        "leaf-rsa2048",
        &dual,
        &dual,
        SignOptions::default().with_append(true),
    );
    let out = accepted(&dual);
    assert!(out.contains("Number of verified signatures: 2"), "{out}");
    let r = verify_file(&dual).expect("verify");
    assert_eq!(r.signatures.len(), 2);
    assert_eq!(r.signatures[1].index, "0.1");
    assert!(r.signatures[1].nested);
    assert_eq!(r.signatures[0].digest_algorithm, DigestAlgorithm::Sha1);
    assert_eq!(r.signatures[1].digest_algorithm, DigestAlgorithm::Sha256);

    // RSA primary, ECDSA nested, into a new output.
    let a = dir.path().join("a.dll");
    let b = dir.path().join("b.dll");
    sign(
        "leaf-rsa4096",
        &fixture("pe32.dll"),
        &a,
        SignOptions::default(),
    );
    sign(
        "leaf-p256",
        &a,
        &b,
        SignOptions::default()
            .with_append(true)
            .with_digest(DigestAlgorithm::Sha384),
    );
    let out = accepted(&b);
    assert!(out.contains("Number of verified signatures: 2"), "{out}");
    // Appending to an unsigned file is refused.
    let e = sign_file(
        &identity("leaf-p256"),
        &fixture("pe32.dll"),
        &dir.path().join("c.dll"),
        &SignOptions::default().with_append(true),
    )
    .expect_err("unsigned");
    assert!(matches!(e, Error::NotSigned), "{e}");
}

#[test]
fn page_hashes_verify_in_osslsigncode_and_signify_and_match_osslsigncodes() {
    let dir = tempfile::tempdir().expect("tmp");
    for fx in ["pe64.exe", "pe32.exe", "pe64.dll"] {
        for (d, ossl) in [
            (DigestAlgorithm::Sha256, "sha256"),
            (DigestAlgorithm::Sha1, "sha1"),
        ] {
            let out = dir.path().join(format!("ph-{d}-{fx}"));
            sign(
                "leaf-rsa2048",
                &fixture(fx),
                &out,
                SignOptions::default()
                    .with_page_hashes(true)
                    .with_digest(d)
                    .with_allow_sha1(true),
            );
            let text = accepted(&out);
            assert!(
                text.contains("Page hash"),
                "osslsigncode did not see page hashes:\n{text}"
            );
            let r = verify_file(&out).expect("v");
            assert_eq!(r.signatures[0].page_hashes_ok, Some(true));
            // The same table osslsigncode computes.
            let theirs = dir.path().join(format!("ossl-ph-{d}-{fx}"));
            let _ = fs::remove_file(&theirs);
            let st = std::process::Command::new("osslsigncode")
                .args(["sign", "-ph", "-h", ossl, "-certs"])
                .arg(pki("leaf-rsa2048-chain.pem"))
                .arg("-key")
                .arg(pki("leaf-rsa2048.key"))
                .arg("-in")
                .arg(fixture(fx))
                .arg("-out")
                .arg(&theirs)
                .output()
                .expect("osslsigncode");
            assert!(st.status.success());
            let (ours_der, their_der) = (
                extract_signature(&out).expect("x"),
                extract_signature(&theirs).expect("x"),
            );
            let ours = codeseal_authenticode::formats::pkcs7::ParsedSignature::parse(&ours_der)
                .expect("p");
            let their = codeseal_authenticode::formats::pkcs7::ParsedSignature::parse(&their_der)
                .expect("p");
            assert_eq!(
                codeseal_authenticode::formats::pkcs7::page_hashes_of(&ours.spc).expect("ours"),
                codeseal_authenticode::formats::pkcs7::page_hashes_of(&their.spc).expect("theirs"),
                "{fx} {d}: page-hash table differs from osslsigncode's"
            );
            let r = verify_file(&theirs).expect("v");
            assert!(
                r.valid && r.signatures[0].page_hashes_ok == Some(true),
                "{r:#?}"
            );
        }
    }
}

#[test]
fn a_modified_page_fails_the_page_hash_check() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("ph.exe");
    sign(
        "leaf-p256",
        &fixture("pe64.exe"),
        &out,
        SignOptions::default().with_page_hashes(true),
    );
    let mut b = fs::read(&out).expect("read");
    b[0x500] ^= 1;
    let bad = dir.path().join("bad.exe");
    fs::write(&bad, b).expect("write");
    let r = verify_file(&bad).expect("v");
    assert!(!r.valid);
    assert_eq!(r.signatures[0].page_hashes_ok, Some(false));
}

#[test]
fn remove_restores_the_digest_and_extract_attach_round_trips() {
    let dir = tempfile::tempdir().expect("tmp");
    for fx in ["pe64.exe", "oddsize.exe", "overlay.exe"] {
        let signed = dir.path().join(format!("s-{fx}"));
        sign(
            "leaf-rsa2048",
            &fixture(fx),
            &signed,
            SignOptions::default(),
        );
        let before = verify_file(&signed).expect("v").signatures[0]
            .computed_digest
            .clone();
        let sig = extract_signature(&signed).expect("extract");

        let removed = dir.path().join(format!("r-{fx}"));
        remove_signature(&signed, &removed, false).expect("remove");
        assert!(matches!(verify_file(&removed), Err(Error::NotSigned)));
        let o = std::process::Command::new("osslsigncode")
            .args(["verify", "-in"])
            .arg(&removed)
            .output()
            .expect("osslsigncode");
        assert!(
            !o.status.success(),
            "osslsigncode found a signature after remove"
        );
        // Same Authenticode digest as the signed file.
        let mut f = fs::File::open(&removed).expect("open");
        let pe = codeseal_authenticode::PeInfo::read(&mut f).expect("pe");
        let pass = codeseal_authenticode::digest::stream_image(
            &mut f,
            &pe,
            &[DigestAlgorithm::Sha256],
            None,
        )
        .expect("digest");
        assert_eq!(
            hex::encode(pass.digest(DigestAlgorithm::Sha256).expect("d")),
            before,
            "{fx}"
        );
        // The removed file equals the input up to the 8-byte zero padding.
        let orig = fs::read(fixture(fx)).expect("read");
        let rem = fs::read(&removed).expect("read");
        assert_eq!(rem.len(), orig.len().div_ceil(8) * 8);
        assert!(rem[orig.len()..].iter().all(|&b| b == 0));

        // attach the extracted signature to the stripped file.
        let attached = dir.path().join(format!("a-{fx}"));
        attach_signature(&removed, &sig, &attached, AttachOptions::default()).expect("attach");
        accepted(&attached);
        // attach refuses a signature made for another file.
        let other = dir.path().join(format!("o-{fx}"));
        let e = attach_signature(&fixture("pe32.dll"), &sig, &other, AttachOptions::default())
            .expect_err("mismatch");
        assert!(e.to_string().contains("another file"), "{e}");
        assert!(!other.exists());
    }
}

#[test]
fn attach_accepts_pem_and_osslsigncode_extracted_signatures() {
    let dir = tempfile::tempdir().expect("tmp");
    let theirs = dir.path().join("ossl.exe");
    osslsigncode_sign(&fixture("pe32.exe"), &theirs, "leaf-p256", "sha256");
    let pem = dir.path().join("sig.pem");
    let o = std::process::Command::new("osslsigncode")
        .args(["extract-signature", "-pem", "-in"])
        .arg(&theirs)
        .arg("-out")
        .arg(&pem)
        .output()
        .expect("osslsigncode");
    assert!(o.status.success());
    let out = dir.path().join("attached.exe");
    attach_signature(
        &fixture("pe32.exe"),
        &fs::read(&pem).expect("pem"),
        &out,
        AttachOptions::default(),
    )
    .expect("attach");
    accepted(&out);
}
