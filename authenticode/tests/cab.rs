//! Cabinets (`.cab`) through the format-generic pipeline, on cabinets built by Debian's gcab
//! (`scripts/make-cabs.sh`: stored, MSZIP, 24 nested files, 40 MiB). Every signed cabinet is
//! checked by osslsigncode 2.9 and 2.14 and by codeseal, and still listed and extracted by
//! gcab; cabinets signed by osslsigncode verify in codeseal; sign, replace, append and
//! remove are checked by osslsigncode at every step; bad headers are typed errors.
mod common;

use std::{
    fs,
    io::Cursor,
    path::{Path, PathBuf},
    process::Command,
};

use codeseal_authenticode::{
    attach_signature, extract_signature, formats::cab::CabError, manage::timestamp_file,
    remove_signature, sign_bytes, sign_file, AttachOptions, Error, FileKind, SignOptions, Verifier,
};
use codeseal_signer::DigestAlgorithm;
use common::*;

/// The small cabinets (the large one has its own test).
const SMALL: [&str; 3] = ["stored.cab", "mszip.cab", "several.cab"];

fn cab(name: &str) -> PathBuf {
    env()
        .fixtures
        .parent()
        .expect("test env")
        .join("cabs")
        .join(name)
}

fn gcab(args: &[&str], file: &Path, dir: Option<&Path>) -> String {
    let mut c = Command::new("gcab");
    c.args(args).arg(file);
    if let Some(d) = dir {
        c.arg("-C").arg(d);
    }
    let o = c.output().expect("gcab (run scripts/setup.sh)");
    assert!(
        o.status.success(),
        "gcab {args:?} {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every file gcab extracts from `a` equals the one it extracts from `b`, and there are
/// as many.
fn same_contents(a: &Path, b: &Path, work: &Path) {
    let (da, db) = (work.join("xa"), work.join("xb"));
    for d in [&da, &db] {
        let _ = fs::remove_dir_all(d);
        fs::create_dir_all(d).expect("mkdir");
    }
    gcab(&["-x"], a, Some(&da));
    gcab(&["-x"], b, Some(&db));
    let list = gcab(&["-t"], a, None);
    assert_eq!(list, gcab(&["-t"], b, None), "gcab lists differ");
    assert!(!list.trim().is_empty());
    for name in list.lines() {
        let rel = name.replace('\\', "/");
        let x = fs::read(da.join(&rel)).expect("extracted");
        assert!(
            x == fs::read(db.join(&rel)).expect("extracted"),
            "{rel} differs"
        );
    }
}

/// A copy of `file` with one byte of the cabinet's data (just before `cbCabinet`) flipped.
fn flip_payload(file: &Path, out: &Path) {
    let mut b = fs::read(file).expect("read");
    let cb = u32::from_le_bytes(b[8..12].try_into().expect("4")) as usize;
    b[cb - 5] ^= 0x01;
    fs::write(out, b).expect("write");
}

#[test]
fn codeseal_signed_cabinets_pass_osslsigncode_gcab_and_codeseal() {
    let dir = tempfile::tempdir().expect("tmp");
    for (name, leaf, digest) in [
        ("stored.cab", "leaf-rsa2048", DigestAlgorithm::Sha256),
        ("mszip.cab", "leaf-p256", DigestAlgorithm::Sha256),
        ("several.cab", "leaf-rsa4096", DigestAlgorithm::Sha384),
    ] {
        let input = cab(name);
        let signed = dir.path().join(name);
        let before = fs::read(&input).expect("read");
        let out = sign_file(
            &identity(leaf),
            &input,
            &signed,
            &SignOptions::default().with_digest(digest),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.kind, FileKind::Cab);
        assert_eq!(fs::read(&input).expect("read"), before, "input changed");
        let len = fs::metadata(&signed).expect("meta").len();
        let cb = u64::from(u32::from_le_bytes(
            fs::read(&signed).expect("read")[8..12]
                .try_into()
                .expect("4"),
        ));
        assert_eq!(cb, before.len() as u64 + 24, "{name}: cbCabinet");
        assert_eq!((len - cb) % 8, 0, "{name}: the signature is padded to 8");
        assert_eq!(FileKind::detect(&signed).expect("kind"), FileKind::Cab);
        both_osslsigncodes_accept(&signed, 1);
        let r = trusting().verify_file(&signed).expect("verify");
        assert!(r.valid, "{name}: {r:?}");
        assert_eq!(r.kind, FileKind::Cab);
        assert_eq!(r.signatures.len(), 1);
        assert_eq!(r.file_len, len);
        same_contents(&input, &signed, dir.path());

        let flipped = dir.path().join(format!("flipped-{name}"));
        flip_payload(&signed, &flipped);
        let r = trusting().verify_file(&flipped).expect("verify");
        assert!(!r.valid, "{name}: a flipped byte still verifies");
        assert!(!r.signatures[0].image_digest_ok);
        osslsigncode_rejects(&flipped);
    }
}

#[test]
fn osslsigncode_signed_cabinets_verify_in_codeseal_with_the_same_digest() {
    let dir = tempfile::tempdir().expect("tmp");
    for name in SMALL {
        for (tag, bin) in [
            ("2.9", Path::new("osslsigncode")),
            ("2.14", osslsigncode_new()),
        ] {
            let theirs = dir.path().join(format!("{tag}-{name}"));
            osslsigncode_sign_with(bin, &cab(name), &theirs, "leaf-rsa2048", "sha256");
            let r = trusting().verify_file(&theirs).expect("verify");
            assert!(r.valid, "{tag} {name}: {r:?}");
            let ours = dir.path().join(format!("ours-{tag}-{name}"));
            let out = sign_file(
                &identity("leaf-rsa2048"),
                &cab(name),
                &ours,
                &SignOptions::default(),
            )
            .expect("sign");
            assert_eq!(
                r.signatures[0].signed_digest,
                hex::encode(&out.image_digest),
                "{tag} {name}: the digests differ"
            );
            // The cabinet part (everything before the signature) is byte for byte theirs.
            let (a, b) = (fs::read(&theirs).expect("r"), fs::read(&ours).expect("r"));
            let cb = u32::from_le_bytes(a[8..12].try_into().expect("4")) as usize;
            assert_eq!(a[..48], b[..48], "{tag} {name}");
            assert_eq!(a[52..cb], b[52..cb], "{tag} {name}");
        }
    }
}

#[test]
fn sign_replace_append_remove_each_accepted_by_osslsigncode() {
    let dir = tempfile::tempdir().expect("tmp");
    for name in SMALL {
        let input = cab(name);
        let f = sign_replace_append_remove(
            &input,
            dir.path(),
            name,
            SignOptions::default(),
            SignOptions::default(),
        );
        // Removing gives back the original bytes, as osslsigncode's remove-signature does.
        assert_eq!(
            fs::read(&f.removed).expect("read"),
            fs::read(&input).expect("read")
        );
        let theirs = dir.path().join(format!("ossl-r-{name}"));
        let o = Command::new("osslsigncode")
            .arg("remove-signature")
            .arg("-in")
            .arg(&f.appended)
            .arg("-out")
            .arg(&theirs)
            .output()
            .expect("osslsigncode");
        assert!(o.status.success(), "{o:?}");
        assert_eq!(
            fs::read(&theirs).expect("read"),
            fs::read(&input).expect("read")
        );
        same_contents(&input, &f.appended, dir.path());
    }
}

#[test]
fn appending_to_an_osslsigncode_signed_cabinet() {
    let dir = tempfile::tempdir().expect("tmp");
    let theirs = dir.path().join("theirs.cab");
    osslsigncode_sign(&cab("mszip.cab"), &theirs, "leaf-rsa4096", "sha256");
    let both = dir.path().join("both.cab");
    sign_file(
        &identity("leaf-p256"),
        &theirs,
        &both,
        &SignOptions::default()
            .with_append(true)
            .with_digest(DigestAlgorithm::Sha384),
    )
    .expect("append");
    both_osslsigncodes_accept(&both, 2);
    let r = trusting().verify_file(&both).expect("verify");
    assert!(r.valid && r.signatures.len() == 2, "{r:?}");
    // The kept signature is theirs, byte for byte.
    let kept = extract_signature(&theirs).expect("extract");
    let now = extract_signature(&both).expect("extract");
    assert!(now.len() > kept.len());
}

#[test]
fn extract_attach_and_split_signing() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let input = cab("several.cab");
    sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &p("s.cab"),
        &SignOptions::default(),
    )
    .expect("sign");
    let signed = fs::read(p("s.cab")).expect("read");
    // Extract, then attach to the unsigned cabinet: the signed file byte for byte.
    let der = extract_signature(&p("s.cab")).expect("extract");
    osslsigncode_extracts(&p("s.cab"), &der, dir.path());
    attach_signature(&input, &der, &p("att.cab"), AttachOptions::default()).expect("attach");
    assert!(fs::read(p("att.cab")).expect("read") == signed);
    // Not onto another cabinet, nor onto a PE file.
    let e = attach_elsewhere_refused(&der, &cab("stored.cab"), dir.path());
    assert!(matches!(e, Error::Usage(_)), "{e}");

    // Split signing: request, sign the digest elsewhere, attach.
    split_sign(&input, "leaf-p256", "CAB", &p("split.cab"));
    both_osslsigncodes_accept(&p("split.cab"), 1);
}

#[test]
fn sign_stream_and_sign_bytes() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = fs::read(cab("mszip.cab")).expect("read");
    let id = identity("leaf-rsa2048");
    let signed = sign_bytes(&id, FileKind::Cab, &input, &SignOptions::default()).expect("sign");
    let r = Verifier::integrity_only()
        .verify_reader(FileKind::Cab, &mut Cursor::new(&signed), Path::new("mem"))
        .expect("verify");
    assert!(r.valid, "{r:?}");
    let f = dir.path().join("bytes.cab");
    fs::write(&f, &signed).expect("write");
    both_osslsigncodes_accept(&f, 1);
    // The same cabinet as the file path writes, but for the signature.
    let via_file = dir.path().join("file.cab");
    sign_file(&id, &cab("mszip.cab"), &via_file, &SignOptions::default()).expect("sign");
    let cb = input.len() + 24;
    assert_eq!(signed[..48], fs::read(&via_file).expect("read")[..48]);
    assert_eq!(signed[52..cb], fs::read(&via_file).expect("read")[52..cb]);

    // Append through the stream, and refusals.
    stream_append_and_refusals(FileKind::Cab, &input, &signed, dir.path());
}

#[test]
fn time_stamps_on_cabinets() {
    let dir = tempfile::tempdir().expect("tmp");
    let signed = dir.path().join("ts.cab");
    sign_file(
        &identity("leaf-rsa2048"),
        &cab("stored.cab"),
        &signed,
        &SignOptions::default().with_timestamp(Some(ts_options())),
    )
    .expect("sign");
    assert_time_stamped(&signed);

    // Time-stamping afterwards.
    let plain = dir.path().join("plain.cab");
    sign_file(
        &identity("leaf-rsa2048"),
        &cab("mszip.cab"),
        &plain,
        &SignOptions::default(),
    )
    .expect("sign");
    let stamped = dir.path().join("stamped.cab");
    timestamp_file(&plain, &stamped, false, &ts_options()).expect("timestamp");
    assert_time_stamped(&stamped);
    let e = timestamp_file(
        &stamped,
        &dir.path().join("again.cab"),
        false,
        &ts_options(),
    )
    .expect_err("already stamped");
    assert!(e.to_string().contains("already has a time stamp"), "{e}");
}

#[test]
fn large_cabinet_signs_and_verifies() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = cab("large.cab");
    assert!(fs::metadata(&input).expect("meta").len() > 40 << 20);
    let signed = dir.path().join("large.cab");
    sign_file(
        &identity("leaf-rsa2048"),
        &input,
        &signed,
        &SignOptions::default(),
    )
    .expect("sign");
    both_osslsigncodes_accept(&signed, 1);
    assert!(trusting().verify_file(&signed).expect("verify").valid);
    assert_eq!(gcab(&["-t"], &signed, None).trim(), "large.bin");
    let removed = dir.path().join("removed.cab");
    remove_signature(&signed, &removed, false).expect("remove");
    assert!(fs::read(&removed).expect("read") == fs::read(&input).expect("read"));
}

/// A cabinet's bytes with a change.
fn patched(name: &str, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = fs::read(cab(name)).expect("read");
    f(&mut b);
    b
}

fn cab_error(dir: &Path, bytes: &[u8]) -> Error {
    refused_everywhere(FileKind::Cab, dir, "a bad cabinet", bytes)
}

#[test]
fn bad_cabinets_are_typed_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let is = |e: &Error, want: fn(&CabError) -> bool| matches!(e, Error::Cab(c) if want(c));
    // Part of a set (next, previous).
    for flag in [1u8, 2] {
        let e = cab_error(d, &patched("stored.cab", |b| b[30] |= flag));
        assert!(
            is(&e, |c| matches!(c, CabError::MultiCabinet { .. })),
            "{e}"
        );
        assert!(e.to_string().contains("multi-cabinet"), "{e}");
    }
    // Reserve data of another kind: cbCFHeader 4, no signature tag.
    let e = cab_error(
        d,
        &patched("stored.cab", |b| {
            b[30] |= 4;
            b.splice(36..36, [4, 0, 0, 0, 1, 2, 3, 4]);
        }),
    );
    assert!(
        is(&e, |c| matches!(c, CabError::ForeignReserve { .. })),
        "{e}"
    );
    // Wrong offsets, trailing data, a truncated file, another version.
    let bad: [(&str, Vec<u8>); 5] = [
        ("coffFiles", patched("stored.cab", |b| b[16] += 8)),
        (
            "folder offset",
            patched("mszip.cab", |b| {
                b[36..40].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f])
            }),
        ),
        (
            "trailing data",
            patched("stored.cab", |b| b.extend_from_slice(b"extra")),
        ),
        (
            "truncated",
            patched("mszip.cab", |b| b.truncate(b.len() - 100)),
        ),
        ("version", patched("stored.cab", |b| b[25] = 2)),
    ];
    for (what, bytes) in bad {
        let e = cab_error(d, &bytes);
        assert!(
            is(&e, |c| matches!(
                c,
                CabError::Malformed { .. } | CabError::Truncated { .. }
            )),
            "{what}: {e}"
        );
    }
    // A signed cabinet whose reserve points elsewhere, or that was cut short.
    let signed = d.join("s.cab");
    sign_file(
        &identity("leaf-rsa2048"),
        &cab("stored.cab"),
        &signed,
        &SignOptions::default(),
    )
    .expect("sign");
    let s = fs::read(&signed).expect("read");
    let mut moved = s.clone();
    moved[44] ^= 8;
    let mut cut = s.clone();
    cut.truncate(s.len() - 8);
    for bytes in [moved, cut] {
        let f = d.join("bad-signed.cab");
        fs::write(&f, &bytes).expect("write");
        let e = verify_file(&f).expect_err("bad reserve");
        assert!(matches!(e, Error::Cab(_)), "{e}");
        let e = remove_signature(&f, &d.join("o.cab"), false).expect_err("bad reserve");
        assert!(matches!(e, Error::Cab(_)), "{e}");
    }
    // Every prefix of a cabinet's header is an error, never a panic.
    let full = fs::read(cab("stored.cab")).expect("read");
    for n in 0..200 {
        let r = Verifier::integrity_only().verify_reader(
            FileKind::Cab,
            &mut Cursor::new(&full[..n]),
            Path::new("x"),
        );
        assert!(r.is_err(), "{n}");
    }
}

/// The CFDATA checksum (MS-CAB): the little-endian 32-bit words XORed, the 1 to 3 bytes
/// left over taken most significant first.
fn cfdata_checksum(data: &[u8], seed: u32) -> u32 {
    let mut sum = seed;
    let words = data.chunks_exact(4);
    let rest = words.remainder();
    for w in words {
        sum ^= u32::from_le_bytes(w.try_into().expect("4"));
    }
    sum ^ rest.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
}

/// A stored cabinet with one folder per file (gcab writes one folder only): every folder's
/// data offset must move with the reserve.
fn multi_folder_cab(files: &[(&str, &[u8])]) -> Vec<u8> {
    let n = files.len();
    let coff_files = 36 + 8 * n;
    let entries: usize = files.iter().map(|(name, _)| 16 + name.len() + 1).sum();
    let mut data_at = coff_files + entries;
    let total = data_at + files.iter().map(|(_, d)| 8 + d.len()).sum::<usize>();
    let mut c = Vec::new();
    c.extend_from_slice(b"MSCF");
    c.extend_from_slice(&0u32.to_le_bytes());
    c.extend_from_slice(&(total as u32).to_le_bytes());
    c.extend_from_slice(&0u32.to_le_bytes());
    c.extend_from_slice(&(coff_files as u32).to_le_bytes());
    c.extend_from_slice(&0u32.to_le_bytes());
    c.extend_from_slice(&[3, 1]);
    c.extend_from_slice(&(n as u16).to_le_bytes());
    c.extend_from_slice(&(n as u16).to_le_bytes());
    c.extend_from_slice(&0u16.to_le_bytes()); // flags
    c.extend_from_slice(&0x4242u16.to_le_bytes()); // setID
    c.extend_from_slice(&0u16.to_le_bytes()); // iCabinet
    for (_, d) in files {
        c.extend_from_slice(&(data_at as u32).to_le_bytes());
        c.extend_from_slice(&1u16.to_le_bytes()); // one data block
        c.extend_from_slice(&0u16.to_le_bytes()); // stored
        data_at += 8 + d.len();
    }
    for (k, (name, d)) in files.iter().enumerate() {
        c.extend_from_slice(&(d.len() as u32).to_le_bytes());
        c.extend_from_slice(&0u32.to_le_bytes());
        c.extend_from_slice(&(k as u16).to_le_bytes()); // iFolder
        c.extend_from_slice(&[0x21, 0x58, 0x60, 0x18, 0x20, 0]); // date, time, attribs
        c.extend_from_slice(name.as_bytes());
        c.push(0);
    }
    for (_, d) in files {
        let sizes = [
            (d.len() as u16).to_le_bytes(),
            (d.len() as u16).to_le_bytes(),
        ]
        .concat();
        let sum = cfdata_checksum(&sizes, cfdata_checksum(d, 0));
        c.extend_from_slice(&sum.to_le_bytes());
        c.extend_from_slice(&sizes);
        c.extend_from_slice(d);
    }
    assert_eq!(c.len(), total);
    c
}

#[test]
fn cabinets_with_several_folders() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = |n: &str| dir.path().join(n);
    let big: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let files: [(&str, &[u8]); 3] = [
        ("one.txt", b"first folder\r\n"),
        ("two.bin", &big),
        ("three.txt", b"third folder\r\n"),
    ];
    fs::write(p("in.cab"), multi_folder_cab(&files)).expect("write");
    // gcab reads the hand-made cabinet.
    let x = p("x-in");
    fs::create_dir_all(&x).expect("mkdir");
    gcab(&["-x"], &p("in.cab"), Some(&x));
    sign_file(
        &identity("leaf-rsa2048"),
        &p("in.cab"),
        &p("s.cab"),
        &SignOptions::default(),
    )
    .expect("sign");
    both_osslsigncodes_accept(&p("s.cab"), 1);
    assert!(trusting().verify_file(&p("s.cab")).expect("verify").valid);
    let x = p("x-signed");
    fs::create_dir_all(&x).expect("mkdir");
    gcab(&["-x"], &p("s.cab"), Some(&x));
    for (name, data) in files {
        assert!(fs::read(x.join(name)).expect("extracted") == data, "{name}");
    }
    // Each folder's offset moved by 24.
    let (a, b) = (
        fs::read(p("in.cab")).expect("r"),
        fs::read(p("s.cab")).expect("r"),
    );
    for k in 0..3 {
        let at = |v: &[u8], o: usize| u32::from_le_bytes(v[o..o + 4].try_into().expect("4"));
        assert_eq!(at(&b, 60 + 8 * k), at(&a, 36 + 8 * k) + 24, "folder {k}");
    }
    // osslsigncode's signed layout is the same, and both remove back to the input.
    for (tag, bin) in [
        ("2.9", Path::new("osslsigncode")),
        ("2.14", osslsigncode_new()),
    ] {
        let theirs = p(&format!("theirs-{tag}.cab"));
        osslsigncode_sign_with(bin, &p("in.cab"), &theirs, "leaf-rsa2048", "sha256");
        let t = fs::read(&theirs).expect("read");
        let cb = a.len() + 24;
        assert_eq!(t[..48], b[..48], "{tag}");
        assert_eq!(t[52..cb], b[52..cb], "{tag}");
        assert!(
            trusting().verify_file(&theirs).expect("verify").valid,
            "{tag}"
        );
    }
    remove_signature(&p("s.cab"), &p("r.cab"), false).expect("remove");
    assert_eq!(fs::read(p("r.cab")).expect("read"), a);
}
