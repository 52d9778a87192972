//! The format-generic pipeline scenarios shared by the per-format suites (cab.rs, msi.rs,
//! catalog_pipeline.rs): sign / replace / append / remove, extract and attach, split
//! signing, sign_stream appends and refusals, and time stamps, each checked by codeseal and
//! by osslsigncode 2.9 and 2.14. A suite passes its file kind's specifics and checks what
//! only its format has on the files these leave behind.

use super::*;
use codeseal_authenticode::{
    attach_signature, remove_signature, sign_bytes, sign_file, sign_stream,
    split::{attach_request_signature, make_request, sign_request, DigestRequest},
    timestamp::{Protocol, TimestampOptions},
    AttachOptions, Error, FileKind, OpusInfo, SignOptions, Verifier,
};
use codeseal_signer::DigestAlgorithm;
use std::{
    fs,
    io::Cursor,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

/// A verifier trusting the test root only.
pub fn trusting() -> Verifier {
    Verifier::new(codeseal_keys::load_certificates(&root()).expect("root")).expect("anchors")
}

/// osslsigncode 2.9 and 2.14 both accept `file`, with `n` signatures.
pub fn both_osslsigncodes_accept(file: &Path, n: usize) {
    for bin in [Path::new("osslsigncode"), osslsigncode_new()] {
        let (ok, log) = osslsigncode_verify_with(bin, file, &root());
        assert!(ok, "{} rejects {}: {log}", bin.display(), file.display());
        assert!(
            log.contains(&format!("Number of verified signatures: {n}")),
            "{}: {log}",
            bin.display()
        );
    }
}

/// osslsigncode 2.9 and 2.14 both reject `file`.
pub fn osslsigncode_rejects(file: &Path) {
    for bin in [Path::new("osslsigncode"), osslsigncode_new()] {
        let (ok, log) = osslsigncode_verify_with(bin, file, &root());
        assert!(!ok, "{} accepts {}: {log}", bin.display(), file.display());
    }
}

/// The files [`sign_replace_append_remove`] leaves: signed once, replaced, appended to (two
/// signatures), and the signature removed again.
pub struct Signed {
    pub once: PathBuf,
    pub replaced: PathBuf,
    pub appended: PathBuf,
    pub removed: PathBuf,
}

/// Signs `input` (leaf-rsa2048, `first`), refuses to sign it again, replaces the signature
/// (leaf-p256, `replace` plus `with_replace`), appends a nested one (leaf-rsa4096, SHA-512)
/// and removes them all; every signed step is accepted by both osslsigncodes with its number
/// of signatures, codeseal finds two valid signatures (the second nested), and removing from
/// the removed file is `NotSigned`. Files are `dir/{1,2,3,r}-{tag}`.
pub fn sign_replace_append_remove(
    input: &Path,
    dir: &Path,
    tag: &str,
    first: SignOptions,
    replace: SignOptions,
) -> Signed {
    let p = |step: &str| dir.join(format!("{step}-{tag}"));
    let ext = input.extension().and_then(|e| e.to_str()).unwrap_or("bin");
    let once = p("1");
    sign_file(&identity("leaf-rsa2048"), input, &once, &first)
        .unwrap_or_else(|e| panic!("sign {}: {e}", input.display()));
    both_osslsigncodes_accept(&once, 1);
    let e = sign_file(
        &identity("leaf-rsa2048"),
        &once,
        &dir.join(format!("x.{ext}")),
        &SignOptions::default(),
    )
    .expect_err("already signed");
    assert!(matches!(e, Error::AlreadySigned), "{e}");

    let replaced = p("2");
    sign_file(
        &identity("leaf-p256"),
        &once,
        &replaced,
        &replace.with_replace(true),
    )
    .expect("replace");
    both_osslsigncodes_accept(&replaced, 1);

    let appended = p("3");
    sign_file(
        &identity("leaf-rsa4096"),
        &replaced,
        &appended,
        &SignOptions::default()
            .with_append(true)
            .with_digest(DigestAlgorithm::Sha512),
    )
    .expect("append");
    both_osslsigncodes_accept(&appended, 2);
    let r = trusting().verify_file(&appended).expect("verify");
    assert!(r.valid && r.signatures.len() == 2, "{r:?}");
    assert!(r.signatures[1].nested);

    let removed = p("r");
    remove_signature(&appended, &removed, false).expect("remove");
    let e =
        remove_signature(&removed, &dir.join(format!("rr.{ext}")), false).expect_err("not signed");
    assert!(matches!(e, Error::NotSigned), "{e}");
    Signed {
        once,
        replaced,
        appended,
        removed,
    }
}

/// `osslsigncode extract-signature` on `signed` gives `der`, byte for byte.
pub fn osslsigncode_extracts(signed: &Path, der: &[u8], dir: &Path) {
    let out = dir.join("theirs.p7");
    let o = Command::new("osslsigncode")
        .arg("extract-signature")
        .arg("-in")
        .arg(signed)
        .arg("-out")
        .arg(&out)
        .output()
        .expect("osslsigncode");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(fs::read(&out).expect("read"), der);
}

/// The signature `der` does not go onto `other` (another file of the same kind: "another
/// file"); the error of attaching it to a PE file is returned for the suite to check.
pub fn attach_elsewhere_refused(der: &[u8], other: &Path, dir: &Path) -> Error {
    let ext = other.extension().and_then(|e| e.to_str()).unwrap_or("bin");
    let e = attach_signature(
        other,
        der,
        &dir.join(format!("o.{ext}")),
        AttachOptions::default(),
    )
    .expect_err("another file");
    assert!(e.to_string().contains("another file"), "{e}");
    attach_signature(
        &fixture("pe64.exe"),
        der,
        &dir.join("o.exe"),
        AttachOptions::default(),
    )
    .expect_err("this kind's signature on a PE file")
}

/// Split signing with `leaf`: the request for `input` (its kind is `kind`; a page-hash
/// request is refused), the digest signed with the key alone, the signature attached to
/// `out`. Returns the request and the signature.
pub fn split_sign(input: &Path, leaf: &str, kind: &str, out: &Path) -> (DigestRequest, Vec<u8>) {
    let id = identity(leaf);
    let req = make_request(
        input,
        id.leaf(),
        DigestAlgorithm::Sha256,
        &OpusInfo::default(),
        false,
    )
    .expect("request");
    assert_eq!(req.kind.as_deref(), Some(kind));
    assert!(make_request(
        input,
        id.leaf(),
        DigestAlgorithm::Sha256,
        &OpusInfo::default(),
        true
    )
    .is_err());
    let sig = sign_request(id.key().as_ref(), &req).expect("sign digest");
    attach_request_signature(input, &req, &sig, id.chain(), out, AttachOptions::default())
        .expect("attach");
    (req, sig)
}

/// `signed` (one signature, made by sign_bytes from `input`) takes a nested signature
/// through sign_stream (both osslsigncodes accept the two); sign_bytes refuses to sign it
/// again, to append to the unsigned `input`, and page hashes (PE only).
pub fn stream_append_and_refusals(kind: FileKind, input: &[u8], signed: &[u8], dir: &Path) {
    let id = identity("leaf-rsa2048");
    let mut out = Vec::new();
    let o = sign_stream(
        &identity("leaf-p256"),
        kind,
        &mut Cursor::new(signed),
        &mut out,
        &SignOptions::default().with_append(true),
    )
    .expect("append");
    assert!(o.appended && o.output_len == out.len() as u64);
    let f = dir.join(format!("appended.{}", kind_ext(kind)));
    fs::write(&f, &out).expect("write");
    both_osslsigncodes_accept(&f, 2);
    let e = sign_bytes(&id, kind, signed, &SignOptions::default()).expect_err("signed");
    assert!(matches!(e, Error::AlreadySigned), "{e}");
    let e = sign_bytes(&id, kind, input, &SignOptions::default().with_append(true))
        .expect_err("nothing to append to");
    assert!(matches!(e, Error::NotSigned), "{e}");
    let e = sign_bytes(
        &id,
        kind,
        input,
        &SignOptions::default().with_page_hashes(true),
    )
    .expect_err("page hashes");
    assert!(e.to_string().contains("only for PE"), "{e}");
}

/// `bytes` of `kind` that are bad (`what`): written to `dir/bad.EXT`, sign_file refuses
/// them and writes nothing, the verifier and sign_bytes refuse them too. Returns
/// sign_file's error for the suite to check.
pub fn refused_everywhere(kind: FileKind, dir: &Path, what: &str, bytes: &[u8]) -> Error {
    let ext = kind_ext(kind);
    let f = dir.join(format!("bad.{ext}"));
    let out = dir.join(format!("out.{ext}"));
    fs::write(&f, bytes).expect("write");
    let e = sign_file(&identity("leaf-rsa2048"), &f, &out, &SignOptions::default())
        .map(|_| what)
        .expect_err("a bad input signs");
    assert!(!out.exists(), "{what}");
    // The verifier, the stream path and the reader agree it is bad.
    assert!(
        Verifier::integrity_only().verify_file(&f).is_err(),
        "{what}"
    );
    assert!(
        sign_bytes(
            &identity("leaf-rsa2048"),
            kind,
            bytes,
            &SignOptions::default()
        )
        .is_err(),
        "{what}"
    );
    e
}

fn kind_ext(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Cab => "cab",
        FileKind::Msi => "msi",
        _ => "bin",
    }
}

/// RFC 3161 time stamps from the project's local TSA, three attempts.
pub fn ts_options() -> TimestampOptions {
    TimestampOptions::default()
        .with_urls(vec![format!("{}/rfc3161", tsa())])
        .with_protocol(Protocol::Rfc3161)
        .with_attempts(3)
        .with_retry_wait(Duration::from_millis(50))
}

/// `file` carries one time stamp: osslsigncode checks it (time-stamp line included) and
/// codeseal, trusting the test roots, finds the file valid with one valid time stamp.
pub fn assert_time_stamped(file: &Path) {
    let (ok, log) = osslsigncode_verify_ts(file);
    assert!(ok, "{log}");
    let r = ours_trusting_test_roots(file);
    assert!(r.valid, "{r:?}");
    let t = &r.signatures[0].timestamps;
    assert!(t.len() == 1 && t[0].valid, "{r:?}");
}
