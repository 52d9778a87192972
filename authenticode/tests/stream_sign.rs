//! Signing without a file system: `sign_bytes` / `sign_stream` produce the same bytes as the
//! file path (RSA PKCS#1 v1.5 signatures and the signed attributes are deterministic), for
//! every PE fixture and a script, fresh, replaced and appended, and osslsigncode accepts them.
mod common;

use std::{fs, io::Cursor};

use codeseal_authenticode::{sign_bytes, sign_file, sign_stream, Error, FileKind, SignOptions};
use codeseal_signer::DigestAlgorithm;
use common::*;

#[test]
fn bytes_and_streams_sign_exactly_as_files_do() {
    let dir = tempfile::tempdir().expect("tmp");
    let id = identity("leaf-rsa2048");
    for fx in FIXTURES {
        let input = fs::read(fixture(fx)).expect("fixture");
        let via_file = dir.path().join(fx);
        sign_file(&id, &fixture(fx), &via_file, &SignOptions::default()).expect("sign_file");
        let via_bytes =
            sign_bytes(&id, FileKind::Pe, &input, &SignOptions::default()).expect("sign_bytes");
        assert!(
            fs::read(&via_file).expect("read") == via_bytes,
            "{fx}: sign_bytes differs from sign_file"
        );
        // Page hashes too, through sign_stream into a Vec.
        let o = SignOptions::default().with_page_hashes(true);
        let paged_file = dir.path().join(format!("paged-{fx}"));
        sign_file(&id, &fixture(fx), &paged_file, &o).expect("sign_file");
        let mut out = Vec::new();
        let r = sign_stream(&id, FileKind::Pe, &mut Cursor::new(&input), &mut out, &o)
            .expect("sign_stream");
        assert_eq!(r.output_len, out.len() as u64);
        assert!(
            fs::read(&paged_file).expect("read") == out,
            "{fx}: page hashes"
        );
    }
    let s = dir.path().join("stream.exe");
    fs::write(
        &s,
        sign_bytes(
            &id,
            FileKind::Pe,
            &fs::read(fixture("pe32.dll")).expect("fixture"),
            &SignOptions::default(),
        )
        .expect("sign"),
    )
    .expect("write");
    let (ok, log) = osslsigncode_verify(&s, &root());
    assert!(ok, "{log}");
}

#[test]
fn append_replace_and_scripts_in_memory() {
    let id = identity("leaf-rsa2048");
    let pe = fs::read(fixture("pe64.exe")).expect("fixture");
    let once = sign_bytes(&id, FileKind::Pe, &pe, &SignOptions::default()).expect("sign");
    let e = sign_bytes(&id, FileKind::Pe, &once, &SignOptions::default()).expect_err("signed");
    assert!(matches!(e, Error::AlreadySigned), "{e}");
    let twice = sign_bytes(
        &identity("leaf-p256"),
        FileKind::Pe,
        &once,
        &SignOptions::default()
            .with_append(true)
            .with_digest(DigestAlgorithm::Sha384),
    )
    .expect("append");
    let r = verify(&mut Cursor::new(&twice)).expect("verify");
    assert!(r.valid && r.signatures.len() == 2, "{r:?}");
    let replaced = sign_bytes(
        &id,
        FileKind::Pe,
        &twice,
        &SignOptions::default().with_replace(true),
    )
    .expect("replace");
    assert_eq!(replaced, once, "replacing gives the single signature back");

    // A script, compared with the file path.
    let dir = tempfile::tempdir().expect("tmp");
    let text = b"\xef\xbb\xbfWrite-Host 'caf\xc3\xa9'\r\n".to_vec();
    let input = dir.path().join("a.ps1");
    fs::write(&input, &text).expect("write");
    let via_file = dir.path().join("b.ps1");
    sign_file(&id, &input, &via_file, &SignOptions::default()).expect("sign_file");
    let kind = FileKind::detect(&input).expect("kind");
    let via_bytes = sign_bytes(&id, kind, &text, &SignOptions::default()).expect("sign_bytes");
    assert!(fs::read(&via_file).expect("read") == via_bytes);
    let e = sign_bytes(
        &id,
        kind,
        &text,
        &SignOptions::default().with_page_hashes(true),
    )
    .expect_err("page hashes");
    assert!(e.to_string().contains("page hashes"), "{e}");
}
