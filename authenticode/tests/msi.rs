//! MSI installers through the format-generic pipeline, on installers built by Debian's wixl
//! (`scripts/make-msis.sh`: one file, 6 components in nested directories, 40 MiB). Every
//! signed installer is checked by osslsigncode 2.9 and 2.14 and by codeseal, still read by
//! msiinfo, and keeps every stream and storage byte for byte; installers signed by
//! osslsigncode (with and without `-add-msi-dse`) verify in codeseal; sign, replace, append
//! and remove are checked by osslsigncode at every step; bad compound files are typed errors.
mod common;

use std::{
    collections::BTreeMap,
    fs,
    io::{Cursor, Read, Write},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use codeseal_authenticode::{
    attach_signature, extract_signature,
    formats::msi::{self, CompoundFile},
    manage::timestamp_file,
    remove_signature, sign_bytes, sign_file, AttachOptions, Error, FileKind, SignOptions, Verifier,
};
use codeseal_signer::DigestAlgorithm;
use common::*;

/// The small installers (the large one has its own test).
const SMALL: [&str; 2] = ["one.msi", "several.msi"];

fn msi_path(name: &str) -> PathBuf {
    env()
        .fixtures
        .parent()
        .expect("test env")
        .join("msis")
        .join(name)
}

/// Every entry of a compound file but the signature streams: streams by path with their
/// content, storages with their CLSID, and every entry's state bits.
fn contents(file: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut cf = CompoundFile::open(fs::File::open(file).expect("open")).expect("cfb");
    let entries: Vec<_> = cf.walk().collect();
    let mut out = BTreeMap::new();
    for e in entries {
        let name = e.path().display().to_string();
        if name == format!("/{}", msi::SIGNATURE_STREAM)
            || name == format!("/{}", msi::SIGNATURE_EX_STREAM)
        {
            continue;
        }
        let data = if e.is_stream() {
            let mut v = Vec::new();
            cf.open_stream(e.path())
                .expect("stream")
                .read_to_end(&mut v)
                .expect("read");
            v
        } else {
            e.clsid().as_bytes().to_vec()
        };
        out.insert(name, (data, e.state_bits()));
    }
    out
}

fn streams_of(file: &Path) -> Vec<String> {
    let cf = CompoundFile::open(fs::File::open(file).expect("open")).expect("cfb");
    cf.read_root_storage()
        .map(|e| e.name().to_string())
        .collect()
}

/// msiinfo still reads the installer's tables and its File table.
fn msiinfo_reads(file: &Path) {
    for args in [vec!["tables"], vec!["export", "File"]] {
        let o = Command::new("msiinfo")
            .arg(args[0])
            .arg(file)
            .args(&args[1..])
            .output()
            .expect("msiinfo (run scripts/setup.sh)");
        assert!(
            o.status.success() && !o.stdout.is_empty(),
            "msiinfo {args:?} {}: {}",
            file.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// The compound file `path`, opened for reading and writing.
fn open_rw(path: &Path) -> CompoundFile<fs::File> {
    CompoundFile::open(
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open"),
    )
    .expect("cfb")
}

/// A copy of `file` with one byte of its largest stream flipped (through cfb, so that the
/// compound file stays well formed).
fn flip_stream_byte(file: &Path, out: &Path) {
    fs::copy(file, out).expect("copy");
    let mut cf = open_rw(out);
    let big = cf
        .walk()
        .filter(|e| e.is_stream() && !e.name().starts_with('\u{5}'))
        .max_by_key(|e| e.len())
        .expect("a stream");
    let mut data = Vec::new();
    cf.open_stream(big.path())
        .expect("open")
        .read_to_end(&mut data)
        .expect("read");
    let at = data.len() / 2;
    data[at] ^= 0x01;
    let mut s = cf.open_stream(big.path()).expect("open");
    s.write_all(&data).expect("write");
    drop(s);
    cf.flush().expect("flush");
}

/// osslsigncode `bin` signs `input` with the test PKI's `leaf` into `out`, with
/// MsiDigitalSignatureEx when `dse`.
fn osslsigncode_sign_msi(
    bin: &Path,
    leaf: &str,
    input: &Path,
    out: &Path,
    dse: bool,
) -> std::process::Output {
    let mut c = Command::new(bin);
    c.arg("sign")
        .arg("-certs")
        .arg(pki(&format!("{leaf}-chain.pem")))
        .arg("-key")
        .arg(pki(&format!("{leaf}.key")));
    if dse {
        c.arg("-add-msi-dse");
    }
    c.arg("-in")
        .arg(input)
        .arg("-out")
        .arg(out)
        .output()
        .expect("osslsigncode")
}

fn sign(leaf: &str, input: &Path, output: &Path, opts: SignOptions) {
    sign_file(&identity(leaf), input, output, &opts)
        .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
}

#[test]
fn codeseal_signed_msis_pass_osslsigncode_msiinfo_and_codeseal() {
    let dir = tempfile::tempdir().expect("tmp");
    for (name, leaf, digest, dse) in [
        ("one.msi", "leaf-rsa2048", DigestAlgorithm::Sha256, false),
        ("one.msi", "leaf-p256", DigestAlgorithm::Sha256, true),
        (
            "several.msi",
            "leaf-rsa4096",
            DigestAlgorithm::Sha384,
            false,
        ),
        ("several.msi", "leaf-rsa2048", DigestAlgorithm::Sha512, true),
    ] {
        let what = format!("{name} {leaf} {digest} dse={dse}");
        let input = msi_path(name);
        let before = fs::read(&input).expect("read");
        let signed = dir.path().join(format!("{leaf}-{dse}-{name}"));
        let out = sign_file(
            &identity(leaf),
            &input,
            &signed,
            &SignOptions::default()
                .with_digest(digest)
                .with_add_msi_dse(dse),
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(out.kind, FileKind::Msi);
        assert_eq!(fs::read(&input).expect("read"), before, "input changed");
        assert_eq!(FileKind::detect(&signed).expect("kind"), FileKind::Msi);
        both_osslsigncodes_accept(&signed, 1);
        let r = trusting().verify_file(&signed).expect("verify");
        assert!(r.valid, "{what}: {r:?}");
        assert_eq!(r.kind, FileKind::Msi);
        // Every stream and storage but the signature streams, byte for byte.
        assert_eq!(contents(&signed), contents(&input), "{what}");
        let names = streams_of(&signed);
        assert!(names.iter().any(|n| n == msi::SIGNATURE_STREAM), "{what}");
        assert_eq!(
            names.iter().any(|n| n == msi::SIGNATURE_EX_STREAM),
            dse,
            "{what}"
        );
        msiinfo_reads(&signed);

        let bad = dir.path().join(format!("bad-{leaf}-{dse}-{name}"));
        flip_stream_byte(&signed, &bad);
        osslsigncode_rejects(&bad);
        let r = trusting().verify_file(&bad).expect("verify");
        assert!(!r.valid, "{what}: a flipped byte is accepted");
    }
}

#[test]
fn osslsigncode_signed_msis_verify_in_codeseal_with_the_same_digest() {
    let dir = tempfile::tempdir().expect("tmp");
    for name in SMALL {
        for (tag, bin) in [
            ("2.9", Path::new("osslsigncode")),
            ("2.14", osslsigncode_new()),
        ] {
            for dse in [false, true] {
                let what = format!("{tag} {name} dse={dse}");
                let theirs = dir.path().join(format!("{tag}-{dse}-{name}"));
                let _ = fs::remove_file(&theirs);
                let o = osslsigncode_sign_msi(bin, "leaf-rsa2048", &msi_path(name), &theirs, dse);
                assert!(o.status.success(), "{what}: {o:?}");
                assert_eq!(
                    streams_of(&theirs).len(),
                    streams_of(&msi_path(name)).len() + 1 + usize::from(dse)
                );
                let r = trusting().verify_file(&theirs).expect("verify");
                assert!(r.valid, "{what}: {r:?}");
                let ours = dir.path().join(format!("ours-{tag}-{dse}-{name}"));
                let out = sign_file(
                    &identity("leaf-rsa2048"),
                    &msi_path(name),
                    &ours,
                    &SignOptions::default().with_add_msi_dse(dse),
                )
                .expect("sign");
                assert_eq!(
                    r.signatures[0].signed_digest,
                    hex::encode(&out.image_digest),
                    "{what}: the digests differ"
                );
                // Their Ex stream holds our pre-hash.
                if dse {
                    let ex = |f: &Path| {
                        let mut cf = msi::open(fs::File::open(f).expect("open")).expect("cfb");
                        msi::read_signatures(&mut cf).expect("read").ex
                    };
                    assert_eq!(ex(&theirs), ex(&ours), "{what}");
                    assert!(ex(&ours).is_some_and(|e| e.len() == 32));
                }
            }
        }
    }
}

/// Metadata covered only by MsiDigitalSignatureEx (a stream's state bits): a change is
/// refused with the Ex stream, unnoticed without it, as osslsigncode sees it.
#[test]
fn msi_digital_signature_ex_covers_the_metadata() {
    let dir = tempfile::tempdir().expect("tmp");
    for dse in [false, true] {
        let signed = dir.path().join(format!("{dse}.msi"));
        sign(
            "leaf-rsa2048",
            &msi_path("several.msi"),
            &signed,
            SignOptions::default().with_add_msi_dse(dse),
        );
        let changed = dir.path().join(format!("changed-{dse}.msi"));
        fs::copy(&signed, &changed).expect("copy");
        {
            let mut cf = CompoundFile::open(
                fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&changed)
                    .expect("open"),
            )
            .expect("cfb");
            let stream = cf
                .read_root_storage()
                .find(|e| e.is_stream() && !e.name().starts_with('\u{5}'))
                .expect("stream");
            cf.set_state_bits(stream.path(), 0x5a5a).expect("bits");
            cf.flush().expect("flush");
        }
        let r = trusting().verify_file(&changed).expect("verify");
        let (ok, log) = osslsigncode_verify_with(Path::new("osslsigncode"), &changed, &root());
        if dse {
            assert!(!r.valid, "{r:?}");
            assert!(format!("{r:?}").contains("MsiDigitalSignatureEx"), "{r:?}");
            assert!(!ok, "{log}");
        } else {
            assert!(r.valid, "{r:?}");
            assert!(ok, "{log}");
        }
    }
}

#[test]
fn sign_replace_append_remove_each_accepted_by_osslsigncode() {
    let dir = tempfile::tempdir().expect("tmp");
    for name in SMALL {
        for dse in [false, true] {
            let input = msi_path(name);
            // Replace (signed twice), with the Ex stream toggled.
            let f = sign_replace_append_remove(
                &input,
                dir.path(),
                &format!("{dse}-{name}"),
                SignOptions::default().with_add_msi_dse(dse),
                SignOptions::default().with_add_msi_dse(!dse),
            );
            assert_eq!(
                streams_of(&f.replaced)
                    .iter()
                    .any(|n| n == msi::SIGNATURE_EX_STREAM),
                !dse
            );
            assert!(streams_of(&f.removed)
                .iter()
                .all(|n| !n.starts_with("\u{5}Digital") && !n.starts_with("\u{5}MsiDigital")));
            assert_eq!(contents(&f.removed), contents(&input));
            msiinfo_reads(&f.removed);
            // And signed again after all that.
            let s4 = dir.path().join(format!("4-{dse}-{name}"));
            sign("leaf-rsa2048", &f.removed, &s4, SignOptions::default());
            both_osslsigncodes_accept(&s4, 1);
            assert_eq!(contents(&s4), contents(&input));
        }
    }
}

#[test]
fn appending_to_osslsigncode_signed_msis() {
    let dir = tempfile::tempdir().expect("tmp");
    for dse in [false, true] {
        let theirs = dir.path().join(format!("theirs-{dse}.msi"));
        let o = osslsigncode_sign_msi(
            osslsigncode_new(),
            "leaf-rsa4096",
            &msi_path("several.msi"),
            &theirs,
            dse,
        );
        assert!(o.status.success(), "{o:?}");
        let both = dir.path().join(format!("both-{dse}.msi"));
        sign(
            "leaf-p256",
            &theirs,
            &both,
            SignOptions::default().with_append(true),
        );
        both_osslsigncodes_accept(&both, 2);
        let r = trusting().verify_file(&both).expect("verify");
        assert!(r.valid && r.signatures.len() == 2, "{r:?}");
        assert_eq!(contents(&both), contents(&theirs));
    }
    // --add-msi-dse cannot be added under a signature made without it.
    let theirs = dir.path().join("theirs-false.msi");
    let e = sign_file(
        &identity("leaf-p256"),
        &theirs,
        &dir.path().join("x.msi"),
        &SignOptions::default()
            .with_append(true)
            .with_add_msi_dse(true),
    )
    .expect_err("dse under a signature without it");
    assert!(e.to_string().contains("MsiDigitalSignatureEx"), "{e}");
}

#[test]
fn extract_attach_and_split_signing() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let input = msi_path("several.msi");
    sign("leaf-rsa2048", &input, &p("s.msi"), SignOptions::default());
    let der = extract_signature(&p("s.msi")).expect("extract");
    osslsigncode_extracts(&p("s.msi"), &der, dir.path());
    attach_signature(&input, &der, &p("att.msi"), AttachOptions::default()).expect("attach");
    both_osslsigncodes_accept(&p("att.msi"), 1);
    assert_eq!(extract_signature(&p("att.msi")).expect("extract"), der);
    let e = attach_elsewhere_refused(&der, &msi_path("one.msi"), dir.path());
    assert!(matches!(e, Error::Usage(_)), "{e}");

    split_sign(&input, "leaf-p256", "MSI", &p("split.msi"));
    both_osslsigncodes_accept(&p("split.msi"), 1);
}

#[test]
fn sign_stream_and_sign_bytes() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = fs::read(msi_path("several.msi")).expect("read");
    let id = identity("leaf-rsa2048");
    let signed = sign_bytes(
        &id,
        FileKind::Msi,
        &input,
        &SignOptions::default().with_add_msi_dse(true),
    )
    .expect("sign");
    let r = Verifier::integrity_only()
        .verify_reader(FileKind::Msi, &mut Cursor::new(&signed), Path::new("mem"))
        .expect("verify");
    assert!(r.valid, "{r:?}");
    let f = dir.path().join("bytes.msi");
    fs::write(&f, &signed).expect("write");
    both_osslsigncodes_accept(&f, 1);
    assert_eq!(contents(&f), contents(&msi_path("several.msi")));

    stream_append_and_refusals(FileKind::Msi, &input, &signed, dir.path());
}

#[test]
fn time_stamps_on_msis() {
    let dir = tempfile::tempdir().expect("tmp");
    let signed = dir.path().join("ts.msi");
    sign(
        "leaf-rsa2048",
        &msi_path("one.msi"),
        &signed,
        SignOptions::default()
            .with_timestamp(Some(ts_options()))
            .with_add_msi_dse(true),
    );
    assert_time_stamped(&signed);

    let plain = dir.path().join("plain.msi");
    sign(
        "leaf-rsa2048",
        &msi_path("several.msi"),
        &plain,
        SignOptions::default(),
    );
    let stamped = dir.path().join("stamped.msi");
    timestamp_file(&plain, &stamped, false, &ts_options()).expect("timestamp");
    assert_time_stamped(&stamped);
    assert_eq!(contents(&stamped), contents(&msi_path("several.msi")));
}

/// A copy of one.msi given storages with CLSIDs, state bits and streams (as embedded
/// transforms are); `nested`: a storage inside a storage too.
fn with_storages(out: &Path, nested: bool) {
    fs::copy(msi_path("one.msi"), out).expect("copy");
    let mut cf = open_rw(out);
    let clsid = |n: u8| uuid::Uuid::from_bytes_le([n; 16]);
    cf.create_storage("/Sub").expect("storage");
    cf.create_storage("/Another").expect("storage");
    cf.set_storage_clsid("/Sub", clsid(0x11)).expect("clsid");
    cf.set_state_bits("/Sub", 7).expect("bits");
    let mut streams = vec![("/Sub/b", 3000usize), ("/Sub/a", 10), ("/Another/y", 70000)];
    if nested {
        cf.create_storage("/Sub/Inner").expect("storage");
        cf.set_storage_clsid("/Sub/Inner", clsid(0x22))
            .expect("clsid");
        streams.push(("/Sub/Inner/x", 5000));
    }
    for (path, n) in streams {
        let data: Vec<u8> = (0..n).map(|i| (i * 7 + path.len()) as u8).collect();
        cf.create_stream(path)
            .expect("stream")
            .write_all(&data)
            .expect("write")
    }
    cf.flush().expect("flush");
}

/// Storages and CLSIDs: installers with storages signed by codeseal are accepted by
/// osslsigncode (nested storages too), and ones signed by osslsigncode verify in codeseal
/// with the same digest, with and without MsiDigitalSignatureEx. (osslsigncode 2.9 and 2.14
/// write a directory they cannot read back themselves, "MSI_ENTRY cycle detected", for a
/// storage inside a storage: that direction is tested with one level.)
#[test]
fn storages_and_clsids_hash_as_osslsigncode_hashes_them() {
    let dir = tempfile::tempdir().expect("tmp");
    for nested in [true, false] {
        let input = dir.path().join(format!("storages-{nested}.msi"));
        with_storages(&input, nested);
        for dse in [false, true] {
            let what = format!("nested={nested} dse={dse}");
            let ours = dir.path().join(format!("ours-{nested}-{dse}.msi"));
            let out = sign_file(
                &identity("leaf-rsa2048"),
                &input,
                &ours,
                &SignOptions::default().with_add_msi_dse(dse),
            )
            .expect("sign");
            both_osslsigncodes_accept(&ours, 1);
            assert_eq!(contents(&ours), contents(&input), "{what}");
            if nested {
                continue;
            }
            let theirs = dir.path().join(format!("theirs-{dse}.msi"));
            let mut c = Command::new("osslsigncode");
            c.arg("sign")
                .arg("-certs")
                .arg(pki("leaf-rsa2048-chain.pem"))
                .arg("-key")
                .arg(pki("leaf-rsa2048.key"));
            if dse {
                c.arg("-add-msi-dse");
            }
            let o = c
                .arg("-in")
                .arg(&input)
                .arg("-out")
                .arg(&theirs)
                .output()
                .expect("osslsigncode");
            assert!(o.status.success(), "{what}: {o:?}");
            both_osslsigncodes_accept(&theirs, 1);
            let r = trusting().verify_file(&theirs).expect("verify");
            assert!(r.valid, "{what}: {r:?}");
            assert_eq!(
                r.signatures[0].signed_digest,
                hex::encode(&out.image_digest),
                "{what}"
            );
        }
    }
}

#[test]
fn large_msi_signs_and_verifies() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = msi_path("large.msi");
    assert!(fs::metadata(&input).expect("meta").len() > 40 << 20);
    let signed = dir.path().join("large.msi");
    sign("leaf-rsa2048", &input, &signed, SignOptions::default());
    both_osslsigncodes_accept(&signed, 1);
    assert!(trusting().verify_file(&signed).expect("verify").valid);
    msiinfo_reads(&signed);
    let removed = dir.path().join("removed.msi");
    remove_signature(&signed, &removed, false).expect("remove");
    assert_eq!(contents(&removed), contents(&input));
}

fn msi_error(dir: &Path, what: &str, bytes: &[u8]) -> Error {
    refused_everywhere(FileKind::Msi, dir, what, bytes)
}

/// Truncated files, FAT and directory sectors pointing outside the file, sector chains that
/// loop, absurd counts: typed errors (`Error::Msi`), no panic, quickly.
#[test]
fn bad_compound_files_are_typed_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let good = fs::read(msi_path("several.msi")).expect("read");
    let patched = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let le = |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let sector = 1usize << u16::from_le_bytes([good[30], good[31]]);
    let first_dir = u32::from_le_bytes(good[48..52].try_into().expect("4")) as usize;
    let first_fat = u32::from_le_bytes(good[76..80].try_into().expect("4")) as usize;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("header only", good[..512].to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("short", good[..100].to_vec()),
        ("FAT sector outside", patched(&|b| le(b, 76, 0x00ff_ffff))),
        ("directory outside", patched(&|b| le(b, 48, 0x00ff_ffff))),
        ("mini-FAT outside", patched(&|b| le(b, 60, 0x00ff_fff0))),
        ("sector shift", patched(&|b| b[30] = 30)),
        (
            // The directory chain loops onto itself.
            "directory chain loops",
            patched(&|b| {
                let at = 512 + first_fat * sector + first_dir * 4;
                le(b, at, first_dir as u32);
            }),
        ),
        (
            "root entry child out of range",
            patched(&|b| {
                let at = 512 + first_dir * sector + 76;
                le(b, at, 0x00ff_0000);
            }),
        ),
    ];
    for (what, bytes) in cases {
        let t = std::time::Instant::now();
        let e = msi_error(d, what, &bytes);
        assert!(
            matches!(e, Error::Msi(_)),
            "{what}: not a typed compound-file error: {e:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(10), "{what}: too slow");
    }
    // A header FAT count far beyond the file: cfb reads the FAT from the sector list and
    // goes on; whatever the outcome, it is quick and typed (no panic, no huge allocation).
    let f = d.join("count.msi");
    fs::write(&f, patched(&|b| le(b, 44, 0x7fff_ffff))).expect("write");
    let t = std::time::Instant::now();
    match Verifier::integrity_only().verify_file(&f) {
        Ok(_) | Err(Error::Msi(_)) | Err(Error::NotSigned) => {}
        Err(e) => panic!("FAT count: {e:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    // Compound files that are not named as installers are refused as such.
    let doc = d.join("letter.doc");
    fs::write(&doc, &good).expect("write");
    let e = FileKind::detect(&doc).expect_err("a .doc");
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    for ext in ["MSI", "msp", "msm", "mst"] {
        let f = d.join(format!("x.{ext}"));
        fs::write(&f, &good).expect("write");
        assert_eq!(FileKind::detect(&f).expect("kind"), FileKind::Msi);
    }
}
