//! APPX / MSIX packages written by `scripts/make-appx.py` (a manifest, stored and deflated
//! files, a multi-MiB file deflated block by block as makeappx does, an exact block map):
//! signed by osslsigncode 2.9 and 2.14, their signatures must carry the APPX digest blob
//! codeseal computes for the same package; packages signed by codeseal (sign, replace,
//! remove, extract) are accepted by both osslsigncodes and by codeseal, a flipped byte by
//! none.
mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use codeseal_authenticode::{
    extract_signature,
    formats::{
        appx::{self, Zip},
        pkcs7::ParsedSignature,
        spc::sip_guid,
    },
    remove_signature, sign_bytes, sign_file, AppxRefusal, Error, FileKind, FindingCode,
    SignOptions, Verifier, VerifyReport,
};
use codeseal_signer::DigestAlgorithm;
use common::*;

/// The subject of a test leaf, as a manifest's Publisher.
fn publisher(leaf: &str) -> String {
    format!("CN=codeseal test signer ({leaf}), O=codeseal test PKI (throwaway)")
}

/// A fresh work directory under the test environment, removed when the test ends (the
/// packages are megabytes each).
struct Work(PathBuf);

impl std::ops::Deref for Work {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn work(name: &str) -> Work {
    let d = env()
        .fixtures
        .parent()
        .expect("test env")
        .join("appx-tests")
        .join(name);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("work dir");
    Work(d)
}

/// Writes a package with `scripts/make-appx.py`, published by `leaf-rsa2048`.
fn make_appx(out: &Path, big_mib: u32, extra: &[&str]) {
    make_appx_for(out, "leaf-rsa2048", big_mib, extra)
}

/// Writes a package with `scripts/make-appx.py`, published by `leaf`.
fn make_appx_for(out: &Path, leaf: &str, big_mib: u32, extra: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-appx.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(out)
        .arg(publisher(leaf))
        .arg(big_mib.to_string())
        .args(extra)
        .output()
        .expect("python3 (run scripts/setup.sh)");
    assert!(
        o.status.success(),
        "make-appx.py: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn reader_sees_the_generated_package() {
    let d = work("reader");
    let p = d.join("t.appx");
    make_appx(&p, 1, &[]);
    let data = fs::read(&p).expect("read");
    let zip = Zip::parse(&data).expect("parse");
    let names: Vec<&str> = zip.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "AppxManifest.xml",
            "Assets/readme.txt",
            "Assets/big.bin",
            "Assets/zeros.bin",
            "AppxBlockMap.xml",
            "[Content_Types].xml"
        ]
    );
    let big = zip.entry("Assets/big.bin").expect("big");
    assert_eq!(big.method, appx::Method::Deflated);
    assert_eq!(
        zip.read(&data, big, 8 << 20).expect("inflate").len() as u64,
        big.size
    );
    // The inflate limit holds.
    assert!(zip.read(&data, big, big.size - 1).is_err());
    assert!(zip.signature().is_none());
    let (alg, blob) = appx::digest_blob(&data, &zip).expect("blob");
    assert_eq!(alg, DigestAlgorithm::Sha256);
    assert_eq!(blob.len(), 4 + 4 * 36);
    // Every truncation is a typed error, never a panic.
    for cut in [
        0,
        1,
        21,
        22,
        data.len() / 2,
        data.len() - 23,
        data.len() - 1,
    ] {
        assert!(
            Zip::parse(data.get(..cut).unwrap_or_default()).is_err(),
            "cut {cut}"
        );
    }
}

#[test]
fn osslsigncode_signatures_carry_the_digest_blob_codeseal_computes() {
    let d = work("osslsigncode");
    for (h, flags, want) in [
        ("sha256", &[][..], DigestAlgorithm::Sha256),
        ("sha384", &["--sha384"][..], DigestAlgorithm::Sha384),
    ] {
        let p = d.join(format!("t-{h}.appx"));
        make_appx(&p, 1, flags);
        for (label, bin) in [
            ("2.9", Path::new("osslsigncode")),
            ("2.14", osslsigncode_new()),
        ] {
            let s = d.join(format!("signed-{label}-{h}.appx"));
            osslsigncode_sign_with(bin, &p, &s, "leaf-rsa2048", h);
            let (ok, log) = osslsigncode_verify_with(bin, &s, &root());
            assert!(
                ok,
                "osslsigncode {label} rejects its own {h} signature: {log}"
            );
            let data = fs::read(&s).expect("read");
            let zip = Zip::parse(&data).expect("parse signed");
            let sig = zip.signature().expect("signature entry");
            let p7x = zip.read(&data, sig, appx::MAX_PART).expect("p7x");
            let der = appx::p7x_der(&p7x).expect("PKCX");
            let parsed = ParsedSignature::parse(der).expect("their signature parses");
            let (alg, blob) = appx::digest_blob(&data, &zip).expect("blob");
            assert_eq!(alg, want, "the block map's HashMethod");
            assert_eq!(
                parsed.image_digest(),
                &blob[..],
                "osslsigncode {label} -h {h}: digest blob differs"
            );
            let guid = parsed
                .spc
                .data
                .value
                .as_ref()
                .and_then(sip_guid)
                .expect("SpcSipInfo");
            assert_eq!(guid, appx::SIP_APPX);
            // A flipped byte in a file's data changes AXPC.
            let mut bad = data.clone();
            let big = zip.entry("Assets/big.bin").expect("big");
            let at = usize::try_from(big.data_offset).expect("offset") + 1000;
            bad[at] ^= 1;
            let zip2 = Zip::parse(&bad).expect("parse flipped");
            assert_ne!(appx::digest_blob(&bad, &zip2).expect("blob").1, blob);
        }
    }
}

/// osslsigncode (2.9 and 2.14) rewrites a *stored* `[Content_Types].xml` with deflated data
/// under the method "stored" (`unzip -t`: bad CRC); codeseal's reader refuses the result
/// with a typed error instead of hashing garbage.
#[test]
fn osslsigncode_breaks_a_stored_content_types_and_codeseal_says_so() {
    let d = work("stored-parts");
    let p = d.join("t.appx");
    make_appx(&p, 1, &["--stored-parts"]);
    let data = fs::read(&p).expect("read");
    let zip = Zip::parse(&data).expect("parse");
    appx::digest_blob(&data, &zip).expect("the unsigned package is fine");
    let s = d.join("signed.appx");
    osslsigncode_sign_with(Path::new("osslsigncode"), &p, &s, "leaf-rsa2048", "sha256");
    let data = fs::read(&s).expect("read");
    let zip = Zip::parse(&data).expect("the structure is fine");
    let e = appx::digest_blob(&data, &zip).expect_err("broken content types");
    assert!(e.to_string().contains("[Content_Types].xml"), "{e}");
}

fn trusting() -> Verifier {
    Verifier::new(codeseal_keys::load_certificates(&root()).expect("root")).expect("anchors")
}

fn both_osslsigncodes_accept(file: &Path) {
    for bin in [Path::new("osslsigncode"), osslsigncode_new()] {
        let (ok, log) = osslsigncode_verify_with(bin, file, &root());
        assert!(ok, "{} rejects {}: {log}", bin.display(), file.display());
    }
}

fn osslsigncode_rejects(file: &Path) {
    for bin in [Path::new("osslsigncode"), osslsigncode_new()] {
        let (ok, log) = osslsigncode_verify_with(bin, file, &root());
        assert!(!ok, "{} accepts {}: {log}", bin.display(), file.display());
    }
}

/// Every entry of `a` other than the signature and the content types has the same local
/// record bytes in `b`.
fn entries_kept(a: &Path, b: &Path) {
    let (da, db) = (fs::read(a).expect("read"), fs::read(b).expect("read"));
    let (za, zb) = (Zip::parse(&da).expect("a"), Zip::parse(&db).expect("b"));
    for e in &za.entries {
        if e.name == appx::SIGNATURE_NAME || e.name == appx::CONTENT_TYPES_NAME {
            continue;
        }
        let f = zb
            .entry(&e.name)
            .unwrap_or_else(|| panic!("{} lost", e.name));
        let range =
            |d: &[u8], r: &std::ops::Range<u64>| d[r.start as usize..r.end as usize].to_vec();
        assert_eq!(
            range(&da, &e.local),
            range(&db, &f.local),
            "{} changed",
            e.name
        );
    }
}

#[test]
fn codeseal_signs_replaces_removes_and_extracts_packages() {
    let d = work("codeseal");
    for (flags, digest, leaf) in [
        (&[][..], DigestAlgorithm::Sha256, "leaf-rsa2048"),
        (&["--sha384"][..], DigestAlgorithm::Sha384, "leaf-p256"),
    ] {
        let input = d.join(format!("in-{digest}.appx"));
        // One multi-MiB package (SHA-256); the others stay small.
        let mib = if digest == DigestAlgorithm::Sha256 {
            3
        } else {
            1
        };
        make_appx_for(&input, leaf, mib, flags);
        assert_eq!(FileKind::detect(&input).expect("kind"), FileKind::Appx);
        let signed = d.join(format!("signed-{digest}.appx"));
        let opts = SignOptions::default().with_digest(digest);
        let out = sign_file(&identity(leaf), &input, &signed, &opts).expect("sign");
        assert_eq!(out.kind, FileKind::Appx);
        entries_kept(&input, &signed);
        both_osslsigncodes_accept(&signed);
        let r = trusting().verify_file(&signed).expect("verify");
        assert!(r.valid, "{r:?}");
        assert_eq!(r.kind, FileKind::Appx);
        // The signature entry is the last one, stored; the content types name it.
        let data = fs::read(&signed).expect("read");
        let zip = Zip::parse(&data).expect("parse");
        let last = zip.entries.last().expect("entries");
        assert_eq!(last.name, appx::SIGNATURE_NAME);
        assert_eq!(last.method, appx::Method::Stored);
        let ct = zip
            .read(
                &data,
                zip.entry(appx::CONTENT_TYPES_NAME).expect("ct"),
                1 << 20,
            )
            .expect("ct");
        assert!(String::from_utf8_lossy(&ct).contains(appx::SIGNATURE_OVERRIDE));
        // Signing again is refused; replacing works.
        let again = d.join("again.appx");
        assert!(matches!(
            sign_file(&identity(leaf), &signed, &again, &opts),
            Err(Error::AlreadySigned)
        ));
        let replaced = d.join(format!("replaced-{digest}.appx"));
        sign_file(
            &identity(leaf),
            &signed,
            &replaced,
            &opts.clone().with_replace(true),
        )
        .expect("replace");
        both_osslsigncodes_accept(&replaced);
        assert!(trusting().verify_file(&replaced).expect("verify").valid);
        // Another signer than the manifest's Publisher: refused, unless overridden; then
        // codeseal's verify reports it (osslsigncode does not check it).
        let e = sign_file(
            &identity("leaf-rsa4096"),
            &signed,
            &again,
            &opts.clone().with_replace(true),
        )
        .expect_err("publisher mismatch");
        assert!(e.to_string().contains("Publisher"), "{e}");
        let other_signer = d.join(format!("other-signer-{digest}.appx"));
        sign_file(
            &identity("leaf-rsa4096"),
            &signed,
            &other_signer,
            &opts
                .clone()
                .with_replace(true)
                .with_allow_publisher_mismatch(true),
        )
        .expect("overridden");
        both_osslsigncodes_accept(&other_signer);
        let r = trusting().verify_file(&other_signer).expect("verify");
        assert!(!r.valid, "{r:?}");
        assert!(r.signatures[0].image_digest_ok);
        assert!(
            r.errors
                .iter()
                .any(|f| f.code == FindingCode::PublisherMismatch),
            "{:?}",
            r.errors
        );
        let der = extract_signature(&replaced).expect("extract");
        let z = Zip::parse(&fs::read(&replaced).expect("read")).expect("parse");
        let p7x = z
            .read(
                &fs::read(&replaced).expect("read"),
                z.signature().expect("sig"),
                1 << 20,
            )
            .expect("p7x");
        assert_eq!(&p7x[4..], &der[..]);
        // The wrong digest algorithm for the block map is refused.
        let other = if digest == DigestAlgorithm::Sha256 {
            DigestAlgorithm::Sha384
        } else {
            DigestAlgorithm::Sha256
        };
        let e = sign_file(
            &identity(leaf),
            &input,
            &again,
            &SignOptions::default().with_digest(other),
        )
        .expect_err("wrong algorithm");
        assert!(e.to_string().contains("block map"), "{e}");
        // Removing leaves an unsigned package that signs again.
        let removed = d.join(format!("removed-{digest}.appx"));
        remove_signature(&replaced, &removed, false).expect("remove");
        let z = Zip::parse(&fs::read(&removed).expect("read")).expect("parse");
        assert!(z.signature().is_none());
        entries_kept(&input, &removed);
        assert!(matches!(extract_signature(&removed), Err(Error::NotSigned)));
        let resigned = d.join(format!("resigned-{digest}.appx"));
        sign_file(&identity(leaf), &removed, &resigned, &opts).expect("sign removed");
        both_osslsigncodes_accept(&resigned);
        // A flipped byte in a file is rejected by all three.
        let mut bad = fs::read(&signed).expect("read");
        let big = zip.entry("Assets/big.bin").expect("big");
        bad[big.data_offset as usize + 70_000] ^= 1;
        let flipped = d.join(format!("flipped-{digest}.appx"));
        fs::write(&flipped, &bad).expect("write");
        let r = trusting().verify_file(&flipped).expect("verify");
        assert!(!r.valid && !r.signatures[0].image_digest_ok, "{r:?}");
        osslsigncode_rejects(&flipped);
    }
}

#[test]
fn osslsigncode_signed_packages_verify_in_codeseal() {
    let d = work("theirs");
    let input = d.join("in.appx");
    make_appx(&input, 1, &[]);
    for (label, bin) in [
        ("2.9", Path::new("osslsigncode")),
        ("2.14", osslsigncode_new()),
    ] {
        let s = d.join(format!("theirs-{label}.appx"));
        osslsigncode_sign_with(bin, &input, &s, "leaf-rsa2048", "sha256");
        let r = trusting().verify_file(&s).expect("verify");
        assert!(r.valid, "osslsigncode {label}: {r:?}");
        // Replacing their signature with codeseal's.
        let ours = d.join(format!("ours-{label}.appx"));
        sign_file(
            &identity("leaf-rsa2048"),
            &s,
            &ours,
            &SignOptions::default().with_replace(true),
        )
        .expect("replace theirs");
        both_osslsigncodes_accept(&ours);
    }
}

/// A block map that lies about one block of one file: osslsigncode signs and accepts it
/// (it does not check the block map); codeseal refuses to sign it and reports it invalid,
/// naming the block, as Windows refuses to install it.
#[test]
fn a_block_map_that_lies_is_invalid_and_not_signed() {
    let d = work("lie");
    let input = d.join("lie.appx");
    make_appx(&input, 1, &["--lie"]);
    let data = fs::read(&input).expect("read");
    let zip = Zip::parse(&data).expect("parse");
    let problems = appx::check_block_map(&data, &zip).expect("check");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("block 1 of \"Assets/big.bin\""),
        "{problems:?}"
    );
    let e = sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &d.join("out.appx"),
        &SignOptions::default(),
    )
    .expect_err("lying block map");
    assert!(e.to_string().contains("block map"), "{e}");
    assert!(!d.join("out.appx").exists());
    let theirs = d.join("theirs.appx");
    osslsigncode_sign_with(
        Path::new("osslsigncode"),
        &input,
        &theirs,
        "leaf-rsa2048",
        "sha256",
    );
    both_osslsigncodes_accept(&theirs);
    let r = trusting().verify_file(&theirs).expect("verify");
    assert!(!r.valid, "{r:?}");
    assert!(
        r.signatures[0].image_digest_ok,
        "the signature itself is fine"
    );
    assert!(
        r.errors
            .iter()
            .any(|f| f.code == FindingCode::BlockMapMismatch),
        "{:?}",
        r.errors
    );
    // The honest package passes the same check.
    let honest = d.join("honest.appx");
    make_appx(&honest, 1, &[]);
    let data = fs::read(&honest).expect("read");
    let zip = Zip::parse(&data).expect("parse");
    assert!(appx::check_block_map(&data, &zip)
        .expect("check")
        .is_empty());
    assert_eq!(
        appx::manifest_publisher(&data, &zip).expect("publisher"),
        publisher("leaf-rsa2048")
    );
}

/// ZIP64 end records and data descriptors: osslsigncode's digest blob equals codeseal's,
/// and codeseal's signatures are accepted by both osslsigncodes (the ZIP64 records are
/// rewritten with the new counts, sizes and offsets).
#[test]
fn zip64_end_records_and_data_descriptors() {
    let d = work("variants");
    for flag in ["--zip64", "--descriptors"] {
        let input = d.join(format!("in{flag}.appx"));
        make_appx(&input, 1, &[flag]);
        let data = fs::read(&input).expect("read");
        let zip = Zip::parse(&data).expect("parse");
        assert_eq!(zip.zip64_eocd.is_some(), flag == "--zip64");
        assert!(appx::check_block_map(&data, &zip)
            .expect("check")
            .is_empty());
        for (label, bin) in [
            ("2.9", Path::new("osslsigncode")),
            ("2.14", osslsigncode_new()),
        ] {
            let s = d.join(format!("theirs-{label}{flag}.appx"));
            osslsigncode_sign_with(bin, &input, &s, "leaf-rsa2048", "sha256");
            let r = trusting().verify_file(&s).expect("verify");
            assert!(r.valid, "{flag}: osslsigncode {label}: {r:?}");
        }
        let ours = d.join(format!("ours{flag}.appx"));
        sign_file(
            &identity("leaf-rsa2048"),
            &input,
            &ours,
            &SignOptions::default(),
        )
        .expect("sign");
        both_osslsigncodes_accept(&ours);
        assert!(trusting().verify_file(&ours).expect("verify").valid);
        let data = fs::read(&ours).expect("read");
        let zip = Zip::parse(&data).expect("parse");
        assert_eq!(zip.zip64_eocd.is_some(), flag == "--zip64");
        entries_kept(&input, &ours);
    }
}

/// A file the block map does not list: a finding, and signing is refused.
#[test]
fn a_file_missing_from_the_block_map() {
    let d = work("extra");
    let input = d.join("extra.appx");
    make_appx(&input, 1, &["--extra"]);
    let data = fs::read(&input).expect("read");
    let zip = Zip::parse(&data).expect("parse");
    let problems = appx::check_block_map(&data, &zip).expect("check");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("Assets/extra.txt") && problems[0].contains("not in the block map")
    );
    let e = sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &d.join("o.appx"),
        &SignOptions::default(),
    )
    .expect_err("extra file");
    assert!(e.to_string().contains("Assets/extra.txt"), "{e}");
    let theirs = d.join("theirs.appx");
    osslsigncode_sign_with(
        Path::new("osslsigncode"),
        &input,
        &theirs,
        "leaf-rsa2048",
        "sha256",
    );
    let r = trusting().verify_file(&theirs).expect("verify");
    assert!(!r.valid);
    assert!(r
        .errors
        .iter()
        .any(|f| f.code == FindingCode::BlockMapMismatch));
}

/// Every single-byte change in the end records and central directory of a signed package,
/// and every truncation there, gives a typed result (no panic) from the reader, the digest
/// and the block-map check.
#[test]
fn hostile_headers_never_panic() {
    let d = work("hostile");
    let input = d.join("in.appx");
    make_appx(&input, 0, &["--zip64"]);
    let signed = d.join("signed.appx");
    sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &signed,
        &SignOptions::default(),
    )
    .expect("sign");
    let data = fs::read(&signed).expect("read");
    let zip = Zip::parse(&data).expect("parse");
    let from = zip.central_dir.start as usize;
    let mut typed_errors = 0;
    for i in from..data.len() {
        for v in [0x00u8, 0xFF, data[i] ^ 0x80] {
            let mut b = data.clone();
            b[i] = v;
            match Zip::parse(&b) {
                Ok(z) => {
                    let _ = appx::digest_blob(&b, &z);
                    let _ = appx::check_block_map(&b, &z);
                }
                Err(_) => typed_errors += 1,
            }
        }
    }
    for cut in from..data.len() {
        assert!(Zip::parse(&data[..cut]).is_err(), "cut at {cut} parses");
    }
    assert!(typed_errors > 100, "{typed_errors}");
}

/// A package named as a bundle (or the reverse) is refused: the SIP GUID follows the
/// content (a bundle manifest), and the name must agree with it.
#[test]
fn a_package_named_as_a_bundle_is_refused() {
    let d = work("bundle-name");
    let input = d.join("app.appxbundle");
    make_appx(&input, 0, &[]);
    assert_eq!(
        FileKind::detect(&input).expect("kind"),
        FileKind::AppxBundle
    );
    let e = sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &d.join("o.appxbundle"),
        &SignOptions::default(),
    )
    .expect_err("not a bundle");
    assert!(e.to_string().contains("no bundle manifest"), "{e}");
    let zip_named = d.join("app.zip");
    fs::copy(&input, &zip_named).expect("copy");
    assert!(matches!(
        FileKind::detect(&zip_named),
        Err(Error::Unsupported(_))
    ));
}

/// Packages sign from bytes into bytes (`sign_bytes`, the stream path the
/// service uses): the result equals what `sign_file` writes for the same key apart from the
/// signature, both osslsigncodes and codeseal accept it, and the Publisher check and the
/// block-map check apply as on the file path.
#[test]
fn packages_sign_from_bytes_to_bytes() {
    let d = work("bytes");
    let input = d.join("in.appx");
    make_appx(&input, 1, &[]);
    let data = fs::read(&input).expect("read");
    let opts = SignOptions::default();
    let signed =
        sign_bytes(&identity("leaf-rsa2048"), FileKind::Appx, &data, &opts).expect("sign_bytes");
    let out = d.join("signed.appx");
    fs::write(&out, &signed).expect("write");
    entries_kept(&input, &out);
    both_osslsigncodes_accept(&out);
    let r = trusting().verify_file(&out).expect("verify");
    assert!(r.valid, "{r:?}");
    // The same package signed through the file path has the same entries and digest blob.
    let by_file = d.join("by-file.appx");
    sign_file(&identity("leaf-rsa2048"), &input, &by_file, &opts).expect("sign_file");
    let digest = |p: &Path| {
        let b = fs::read(p).expect("read");
        let z = Zip::parse(&b).expect("zip");
        appx::digest_blob(&b, &z).expect("blob")
    };
    assert_eq!(digest(&out), digest(&by_file));
    // Signed input: refused unless replacing.
    assert!(matches!(
        sign_bytes(&identity("leaf-rsa2048"), FileKind::Appx, &signed, &opts),
        Err(Error::AlreadySigned)
    ));
    let replaced = sign_bytes(
        &identity("leaf-rsa2048"),
        FileKind::Appx,
        &signed,
        &opts.clone().with_replace(true),
    )
    .expect("replace");
    assert_ne!(replaced, data);
    // Another signer than the Publisher: refused, unless overridden.
    let e = sign_bytes(&identity("leaf-p256"), FileKind::Appx, &data, &opts)
        .expect_err("publisher mismatch");
    assert!(e.to_string().contains("Publisher"), "{e}");
    sign_bytes(
        &identity("leaf-p256"),
        FileKind::Appx,
        &data,
        &opts.clone().with_allow_publisher_mismatch(true),
    )
    .expect("override");
    // A package passed as a bundle is refused.
    assert!(matches!(
        sign_bytes(
            &identity("leaf-rsa2048"),
            FileKind::AppxBundle,
            &data,
            &opts
        ),
        Err(Error::Unsupported(_))
    ));
}

/// A bundle of two packages (`make-appx.py --bundle`: stored inner packages, the bundle
/// manifest with their offsets and sizes, the bundle's block map): codeseal signs it with
/// the bundle SIP, both osslsigncodes accept it, codeseal verifies it and rejects a flipped
/// byte in an inner package; bundles signed by both osslsigncodes carry the same digest
/// blob and verify in codeseal.
#[test]
fn bundles_sign_and_verify_everywhere() {
    let d = work("bundle");
    let input = d.join("in.appxbundle");
    make_appx(&input, 1, &["--bundle"]);
    assert_eq!(
        FileKind::detect(&input).expect("kind"),
        FileKind::AppxBundle
    );
    let data = fs::read(&input).expect("read");
    let zip = Zip::parse(&data).expect("parse");
    assert!(appx::check_block_map(&data, &zip)
        .expect("check")
        .is_empty());
    // The bundle manifest's offsets and sizes point at the stored inner packages.
    let manifest = zip
        .read(
            &data,
            zip.entry(appx::BUNDLE_MANIFEST_NAME)
                .expect("bundle manifest"),
            1 << 20,
        )
        .expect("manifest");
    let manifest = String::from_utf8(manifest).expect("utf-8");
    let mut inner = 0;
    for e in zip.entries.iter().filter(|e| e.name.ends_with(".appx")) {
        assert_eq!(e.method, appx::Method::Stored);
        assert!(
            manifest.contains(&format!(
                "FileName=\"{}\" Offset=\"{}\" Size=\"{}\"",
                e.name, e.data_offset, e.size
            )),
            "{manifest}"
        );
        let pkg = zip.read(&data, e, 64 << 20).expect("inner");
        let z = Zip::parse(&pkg).expect("inner package");
        assert!(appx::check_block_map(&pkg, &z).expect("inner").is_empty());
        inner += 1;
    }
    assert_eq!(inner, 2);
    let (_, blob) = appx::digest_blob(&data, &zip).expect("blob");
    let signed = d.join("signed.appxbundle");
    let out = sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &signed,
        &SignOptions::default(),
    )
    .expect("sign");
    assert_eq!(out.kind, FileKind::AppxBundle);
    entries_kept(&input, &signed);
    both_osslsigncodes_accept(&signed);
    let r = trusting().verify_file(&signed).expect("verify");
    assert!(r.valid, "{r:?}");
    assert_eq!(r.kind, FileKind::AppxBundle);
    let der = extract_signature(&signed).expect("extract");
    let parsed = ParsedSignature::parse(&der).expect("parse");
    let guid = parsed
        .spc
        .data
        .value
        .as_ref()
        .and_then(sip_guid)
        .expect("SpcSipInfo");
    assert_eq!(guid, appx::SIP_APPX_BUNDLE);
    // A flipped byte in the first inner package.
    let mut bad = fs::read(&signed).expect("read");
    let z = Zip::parse(&bad).expect("parse");
    let first = z.entries.first().expect("entries");
    bad[first.data_offset as usize + 300_000] ^= 1;
    let flipped = d.join("flipped.appxbundle");
    fs::write(&flipped, &bad).expect("write");
    let r = trusting().verify_file(&flipped).expect("verify");
    assert!(!r.valid && !r.signatures[0].image_digest_ok, "{r:?}");
    osslsigncode_rejects(&flipped);
    // Signed by osslsigncode: the same blob (over the package with the Override), and
    // codeseal verifies it.
    for (label, bin) in [
        ("2.9", Path::new("osslsigncode")),
        ("2.14", osslsigncode_new()),
    ] {
        let s = d.join(format!("theirs-{label}.appxbundle"));
        osslsigncode_sign_with(bin, &input, &s, "leaf-rsa2048", "sha256");
        let r = trusting().verify_file(&s).expect("verify");
        assert!(r.valid, "osslsigncode {label}: {r:?}");
        let theirs = ParsedSignature::parse(&extract_signature(&s).expect("extract"))
            .expect("parse")
            .spc
            .data
            .value
            .as_ref()
            .and_then(sip_guid)
            .expect("SpcSipInfo");
        assert_eq!(theirs, appx::SIP_APPX_BUNDLE, "osslsigncode {label}");
    }
    assert_eq!(blob.len(), 4 + 4 * 36, "no AXCI in this bundle");
}

/// `AppxMetadata/CodeIntegrity.cat` (a catalog built by `catalog::build_catalog`) is hashed
/// as AXCI: osslsigncode's blob for the same package has the same AXCI, and
/// codeseal's signature is accepted by both osslsigncodes.
#[test]
fn a_code_integrity_catalog_is_hashed_as_axci() {
    let d = work("axci");
    let cat = d.join("CodeIntegrity.cat");
    let catalog = codeseal_authenticode::catalog::build_catalog(
        &[fixture("pe64.exe"), fixture("pe32.exe")],
        DigestAlgorithm::Sha256,
    )
    .expect("catalog");
    fs::write(&cat, &catalog).expect("write");
    let input = d.join("in.appx");
    make_appx(
        &input,
        1,
        &["--code-integrity", cat.to_str().expect("utf-8")],
    );
    let data = fs::read(&input).expect("read");
    let zip = Zip::parse(&data).expect("parse");
    let entry = zip.entry(appx::CODE_INTEGRITY_NAME).expect("catalog entry");
    assert_eq!(zip.read(&data, entry, 1 << 20).expect("cat"), catalog);
    assert!(appx::check_block_map(&data, &zip)
        .expect("check")
        .is_empty());
    let signed = d.join("signed.appx");
    sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &signed,
        &SignOptions::default(),
    )
    .expect("sign");
    let der = extract_signature(&signed).expect("extract");
    let blob = ParsedSignature::parse(&der)
        .expect("parse")
        .image_digest()
        .to_vec();
    assert_eq!(blob.len(), 4 + 5 * 36);
    assert_eq!(&blob[4 + 4 * 36..4 + 4 * 36 + 4], b"AXCI");
    assert_eq!(
        &blob[4 + 4 * 36 + 4..],
        &DigestAlgorithm::Sha256.digest(&catalog)[..]
    );
    both_osslsigncodes_accept(&signed);
    assert!(trusting().verify_file(&signed).expect("verify").valid);
    for (label, bin) in [
        ("2.9", Path::new("osslsigncode")),
        ("2.14", osslsigncode_new()),
    ] {
        let s = d.join(format!("theirs-{label}.appx"));
        osslsigncode_sign_with(bin, &input, &s, "leaf-rsa2048", "sha256");
        let theirs = ParsedSignature::parse(&extract_signature(&s).expect("extract"))
            .expect("parse")
            .image_digest()
            .to_vec();
        // Their blob is over their package (the content types deflated their way, so AXPC
        // differs from codeseal's); its AXCI is codeseal's.
        let td = fs::read(&s).expect("read");
        let (_, computed) = appx::digest_blob(&td, &Zip::parse(&td).expect("parse")).expect("blob");
        assert_eq!(
            theirs, computed,
            "osslsigncode {label}: the digest blob differs"
        );
        assert_eq!(
            &theirs[4 + 4 * 36..],
            &blob[4 + 4 * 36..],
            "osslsigncode {label}: AXCI differs"
        );
        both_osslsigncodes_accept(&s);
        assert!(trusting().verify_file(&s).expect("verify").valid);
    }
    // A changed catalog byte changes AXCI only.
    let mut bad = fs::read(&signed).expect("read");
    let z = Zip::parse(&bad).expect("parse");
    let e = z.entry(appx::CODE_INTEGRITY_NAME).expect("cat");
    assert_eq!(e.method, appx::Method::Deflated);
    let r = trusting().verify_file(&signed).expect("verify");
    assert!(r.valid);
    bad[e.data_offset as usize + 10] ^= 0x20;
    let flipped = d.join("flipped.appx");
    fs::write(&flipped, &bad).expect("write");
    assert!(!trusting()
        .verify_file(&flipped)
        .map(|r| r.valid)
        .unwrap_or(false));
}

/// `timestamp` on a package's existing signature rewrites AppxSignature.p7x with the token
/// (local TSA); `sign --ts` stamps while signing; both are accepted by osslsigncode with
/// the time stamp checked, and by codeseal. `--append` is refused.
#[test]
fn packages_are_time_stamped() {
    use codeseal_authenticode::{
        manage::timestamp_file,
        timestamp::{Protocol, TimestampOptions},
    };
    let ts = || {
        TimestampOptions::default()
            .with_urls(vec![format!("{}/rfc3161", tsa())])
            .with_protocol(Protocol::Rfc3161)
            .with_attempts(3)
            .with_retry_wait(std::time::Duration::from_millis(50))
            .with_timeout(std::time::Duration::from_secs(3))
            .with_budget(std::time::Duration::from_secs(30))
    };
    let d = work("timestamp");
    let input = d.join("in.appx");
    make_appx(&input, 1, &[]);
    let signed = d.join("signed.appx");
    sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &signed,
        &SignOptions::default(),
    )
    .expect("sign");
    let stamped = d.join("stamped.appx");
    timestamp_file(&signed, &stamped, false, &ts()).expect("timestamp");
    entries_kept(&signed, &stamped);
    let check = |f: &Path| {
        let (ok, text) = osslsigncode_verify_ts(f);
        assert!(ok, "osslsigncode 2.9: {text}");
        let (ok, text) = osslsigncode_verify_with(osslsigncode_new(), f, &root());
        assert!(ok, "osslsigncode 2.14: {text}");
        let r = ours_trusting_test_roots(f);
        assert!(r.valid, "{r:?}");
        let t = &r.signatures[0].timestamps;
        assert_eq!(t.len(), 1, "{t:?}");
        assert!(t[0].valid && t[0].time.is_some(), "{t:?}");
    };
    check(&stamped);
    // The signature is the same one, with the token added.
    let (before, after) = (
        extract_signature(&signed).expect("x"),
        extract_signature(&stamped).expect("x"),
    );
    let before = ParsedSignature::parse(&before).expect("p");
    let after = ParsedSignature::parse(&after).expect("p");
    assert_eq!(
        before.signer_info.signature.as_bytes(),
        after.signer_info.signature.as_bytes()
    );
    let e = timestamp_file(&stamped, &stamped, false, &ts()).expect_err("twice");
    assert!(e.to_string().contains("already"), "{e}");
    assert!(matches!(
        timestamp_file(&input, &d.join("x.appx"), false, &ts()),
        Err(Error::NotSigned)
    ));
    // sign --ts.
    let with_ts = d.join("with-ts.appx");
    sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &with_ts,
        &SignOptions::default().with_timestamp(Some(ts())),
    )
    .expect("sign --ts");
    check(&with_ts);
    // A flipped byte still fails with the time stamp.
    let mut bad = fs::read(&stamped).expect("read");
    let z = Zip::parse(&bad).expect("parse");
    let big = z.entry("Assets/big.bin").expect("big");
    bad[big.data_offset as usize + 5] ^= 1;
    let flipped = d.join("flipped.appx");
    fs::write(&flipped, &bad).expect("write");
    assert!(!trusting().verify_file(&flipped).expect("verify").valid);
    // Nesting is refused.
    let e = sign_file(
        &identity("leaf-rsa2048"),
        &signed,
        &d.join("nested.appx"),
        &SignOptions::default().with_append(true),
    )
    .expect_err("append");
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
}

/// Split signing: the request's digest is the APPX digest blob of the package as signing
/// stages it; the attached package is the one `sign` writes apart from the signature
/// (removing both gives the same bytes), and it is accepted by both osslsigncodes and by
/// codeseal. A signed package needs --replace; a bundle works too.
#[test]
fn packages_are_split_signed() {
    use codeseal_authenticode::{
        split::{attach_request_signature, make_request, sign_request},
        AttachOptions, OpusInfo,
    };
    let d = work("split");
    for (name, flags) in [("in.appx", &[][..]), ("in.appxbundle", &["--bundle"][..])] {
        let input = d.join(name);
        make_appx(&input, 1, flags);
        let id = identity("leaf-rsa2048");
        let req = make_request(
            &input,
            id.leaf(),
            DigestAlgorithm::Sha256,
            &OpusInfo::default(),
            false,
        )
        .expect("request");
        let data = fs::read(&input).expect("read");
        let unsigned = Zip::parse(&data)
            .expect("parse")
            .prepare_unsigned(&data)
            .expect("unsigned");
        let (_, blob) =
            appx::digest_blob(&unsigned, &Zip::parse(&unsigned).expect("parse")).expect("blob");
        assert_eq!(req.image_digest, hex::encode(&blob));
        let sig = sign_request(id.key().as_ref(), &req).expect("sign digest");
        let attached = d.join(format!("attached-{name}"));
        attach_request_signature(
            &input,
            &req,
            &sig,
            id.chain(),
            &attached,
            AttachOptions::default(),
        )
        .expect("attach");
        both_osslsigncodes_accept(&attached);
        let r = trusting().verify_file(&attached).expect("verify");
        assert!(r.valid, "{r:?}");
        let signed = d.join(format!("signed-{name}"));
        sign_file(&id, &input, &signed, &SignOptions::default()).expect("sign");
        let (ra, rs) = (d.join("ra"), d.join("rs"));
        remove_signature(&attached, &ra, true).expect("remove");
        remove_signature(&signed, &rs, true).expect("remove");
        assert_eq!(
            fs::read(&ra).expect("read"),
            fs::read(&rs).expect("read"),
            "attach and sign write the same package"
        );
        // The request of a signed package is the same; attaching to it needs --replace.
        let again = make_request(
            &signed,
            id.leaf(),
            DigestAlgorithm::Sha256,
            &OpusInfo::default(),
            false,
        )
        .expect("request");
        assert_eq!(again.image_digest, req.image_digest);
        assert!(matches!(
            attach_request_signature(
                &signed,
                &req,
                &sig,
                id.chain(),
                &d.join("x"),
                AttachOptions::default()
            ),
            Err(Error::AlreadySigned)
        ));
        let replaced = d.join(format!("replaced-{name}"));
        attach_request_signature(
            &signed,
            &req,
            &sig,
            id.chain(),
            &replaced,
            AttachOptions::default().with_replace(true),
        )
        .expect("attach --replace");
        assert!(trusting().verify_file(&replaced).expect("verify").valid);
        // Another certificate than the Publisher: refused at `digest` time, unless allowed.
        let other_leaf = identity("leaf-p256");
        let e = make_request(
            &input,
            other_leaf.leaf(),
            DigestAlgorithm::Sha256,
            &OpusInfo::default(),
            false,
        )
        .expect_err("publisher mismatch");
        assert!(e.to_string().contains("Publisher"), "{e}");
        codeseal_authenticode::split::make_request_with(
            &input,
            other_leaf.leaf(),
            DigestAlgorithm::Sha256,
            &OpusInfo::default(),
            false,
            true,
        )
        .expect("allowed");
        // A request for another package is refused at attach.
        let other = d.join(format!("other-{name}"));
        make_appx(&other, 0, flags);
        let e = attach_request_signature(
            &other,
            &req,
            &sig,
            id.chain(),
            &d.join("y"),
            AttachOptions::default(),
        )
        .expect_err("another package");
        assert!(e.to_string().contains("another file"), "{e}");
    }
}

/// A bundle whose inner package's block map lies about one block (the bundle's own block
/// map is honest): osslsigncode signs it and accepts it; codeseal refuses to sign it and
/// reports it invalid, naming the inner package and the block.
#[test]
fn a_bundle_whose_inner_package_lies_is_invalid() {
    let d = work("bundle-lie");
    let input = d.join("lie.appxbundle");
    make_appx(&input, 1, &["--bundle", "--lie"]);
    let data = fs::read(&input).expect("read");
    let zip = Zip::parse(&data).expect("parse");
    assert!(
        appx::check_block_map(&data, &zip)
            .expect("check")
            .is_empty(),
        "the bundle's own block map is honest"
    );
    let e = sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &d.join("out.appxbundle"),
        &SignOptions::default(),
    )
    .expect_err("lying inner block map");
    let msg = e.to_string();
    assert!(
        msg.contains("inner package \"Codeseal.Test_1.0.0.0_x64.appx\"")
            && msg.contains("block 1 of \"Assets/big.bin\""),
        "{msg}"
    );
    let (theirs, r) = signed_by_osslsigncode_and_invalid(&d, &input);
    both_osslsigncodes_accept(&theirs);
    assert!(
        r.errors
            .iter()
            .any(|f| f.code == FindingCode::BlockMapMismatch && f.message.contains("x64.appx")),
        "{:?}",
        r.errors
    );
}

/// `input` signed by osslsigncode, which does not look inside a bundle's packages: in
/// codeseal the bundle's own digest holds and the bundle is invalid. The signed copy and
/// codeseal's report.
fn signed_by_osslsigncode_and_invalid(d: &Path, input: &Path) -> (PathBuf, VerifyReport) {
    let theirs = d.join("theirs.appxbundle");
    osslsigncode_sign(input, &theirs, "leaf-rsa2048", "sha256");
    let r = trusting().verify_file(&theirs).expect("verify");
    assert!(!r.valid && r.signatures[0].image_digest_ok, "{r:?}");
    (theirs, r)
}

/// A bundle whose x86 inner package names another Publisher than the bundle (makeappx
/// refuses to bundle packages of different package families, and the Publisher is part of
/// the family name): signing refuses it, naming the inner package, unless the Publisher
/// check is overridden; verify reports it and the bundle is invalid, its own signature
/// being fine.
#[test]
fn a_bundle_whose_inner_package_has_another_publisher() {
    let d = work("bundle-inner-publisher");
    let input = d.join("other.appxbundle");
    make_appx(
        &input,
        0,
        &["--bundle", "--inner-publisher", &publisher("leaf-p256")],
    );
    let out = d.join("out.appxbundle");
    let e = sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &out,
        &SignOptions::default(),
    )
    .expect_err("inner Publisher");
    assert!(
        matches!(&e, Error::Appx(AppxRefusal::InnerPublisher { package, .. })
            if package == "Codeseal.Test_1.0.0.0_x86.appx"),
        "{e}"
    );
    assert!(!out.exists());
    sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &out,
        &SignOptions::default().with_allow_publisher_mismatch(true),
    )
    .expect("the override signs");
    let r = trusting().verify_file(&out).expect("verify");
    assert!(
        !r.valid && r.signatures[0].image_digest_ok && r.signatures[0].signature_ok,
        "{r:?}"
    );
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(
        r.errors[0].code == FindingCode::PublisherMismatch
            && r.errors[0].message.contains("x86.appx"),
        "{:?}",
        r.errors
    );
}

/// A bundle holding a package signed by codeseal: the inner signature is verified with
/// the bundle (valid, and both osslsigncodes accept the signed bundle). The same inner
/// package with one byte of a local header changed (its modification time: covered by the
/// inner signature's AXPC, by no block map): signing the bundle is refused, and the bundle
/// signed by osslsigncode (which does not look inside) is invalid in codeseal, with one
/// finding naming the inner package.
#[test]
fn a_bundle_checks_the_signature_its_inner_package_carries() {
    let d = work("bundle-inner-signed");
    let inner = d.join("inner.appx");
    make_appx(&inner, 1, &[]);
    let signed_inner = d.join("inner-signed.appx");
    sign_file(
        &identity("leaf-rsa2048"),
        &inner,
        &signed_inner,
        &SignOptions::default(),
    )
    .expect("sign the inner package");
    let bundle_with = |inner: &Path, out: &Path| {
        let arg = inner.to_str().expect("utf-8 path");
        make_appx(out, 0, &["--bundle", "--inner", arg]);
    };
    let input = d.join("b.appxbundle");
    bundle_with(&signed_inner, &input);
    let out = d.join("out.appxbundle");
    sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &out,
        &SignOptions::default(),
    )
    .expect("sign the bundle");
    let r = trusting().verify_file(&out).expect("verify");
    assert!(r.valid, "{r:?}");
    both_osslsigncodes_accept(&out);

    let mut bytes = fs::read(&signed_inner).expect("read");
    assert_eq!(&bytes[..4], b"PK\x03\x04");
    bytes[10] ^= 0x01; // the first local header's modification time
    let tampered = d.join("inner-tampered.appx");
    fs::write(&tampered, &bytes).expect("write");
    let input = d.join("t.appxbundle");
    bundle_with(&tampered, &input);
    let e = sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &d.join("t-out.appxbundle"),
        &SignOptions::default(),
    )
    .expect_err("tampered inner package");
    assert!(
        matches!(&e, Error::Appx(AppxRefusal::InnerSignature(p))
            if p.len() == 1 && p[0].contains("x64.appx")),
        "{e}"
    );
    let (_, r) = signed_by_osslsigncode_and_invalid(&d, &input);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(
        r.errors[0].code == FindingCode::InnerPackageSignature
            && r.errors[0].message.contains("x64.appx"),
        "{:?}",
        r.errors
    );
}

/// The streamed block-map check does not depend on how the bytes are cut: fed in chunks of
/// 1, 7, 4096 and 65,537 bytes, an honest package (deflated, stored, data descriptors) has
/// no problem and the digest blob computed in the pass is `digest_blob`'s; a lying one gives
/// the same problems as the in-memory check.
#[test]
fn the_streamed_check_does_not_depend_on_chunk_boundaries() {
    let d = work("chunks");
    for (name, flags) in [
        ("honest.appx", &["--descriptors"][..]),
        ("lie.appx", &["--lie"][..]),
    ] {
        let input = d.join(name);
        make_appx(&input, 1, flags);
        let data = fs::read(&input).expect("read");
        let zip = Zip::parse(&data).expect("parse");
        let want = appx::check_block_map(&data, &zip).expect("check");
        assert_eq!(want.is_empty(), name == "honest.appx", "{want:?}");
        let (_, blob) = appx::digest_blob(&data, &zip).expect("blob");
        let end = usize::try_from(zip.central_dir.start).expect("size");
        for step in [1usize, 7, 4096, 65_537] {
            if step == 1 && name == "lie.appx" {
                continue; // one byte at a time once is enough
            }
            let mut src = appx::SliceSource(&data);
            let mut check = appx::PackageCheck::new(&mut src, &zip, true, false).expect("new");
            for (i, c) in data[..end].chunks(step).enumerate() {
                check.feed((i * step) as u64, c);
            }
            let r = check.finish();
            assert_eq!(r.problems, want, "{name}, chunks of {step}");
            assert_eq!(
                r.digest.as_ref().map(|d| &d.1),
                Some(&blob),
                "{name}, chunks of {step}"
            );
        }
    }
}
