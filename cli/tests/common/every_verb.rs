//! The "every verb" CLI scenario shared by the per-format suites (cabs.rs, msis.rs,
//! scripts.rs, catalogs.rs): one implementation of sign, verify, info, extract, remove,
//! attach, timestamp, nested signing, replace and split signing, driven by a [`Format`]
//! that holds only what differs per file kind. Also the `--recursive` batch and the
//! flat-memory runs those suites share.

use super::*;
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// `codeseal ARGS` with the key and certificate environment variables removed.
pub fn codeseal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codeseal"))
        .args(args)
        .env_remove("CODESEAL_KEY_PASSWORD")
        .env_remove("CODESEAL_KEY")
        .env_remove("CODESEAL_CERT")
        .output()
        .expect("run codeseal")
}

/// The test PKI's paths and the two leaf keys every scenario signs with.
pub struct Pki {
    pub dir: PathBuf,
    pub root_pem: PathBuf,
    /// `file:` URI of the RSA-2048 leaf key, and its chain.
    pub key: String,
    pub chain: PathBuf,
    /// `file:` URI of the P-256 leaf key (the nested signature), and its chain.
    pub key2: String,
    pub chain2: PathBuf,
}

impl Pki {
    pub fn new(env: &Path) -> Self {
        let dir = env.join("pki");
        Self {
            root_pem: dir.join("root.pem"),
            key: format!("file:{}", dir.join("leaf-rsa2048.key").display()),
            chain: dir.join("leaf-rsa2048-chain.pem"),
            key2: format!("file:{}", dir.join("leaf-p256.key").display()),
            chain2: dir.join("leaf-p256-chain.pem"),
            dir,
        }
    }

    pub fn tsa_root(&self) -> PathBuf {
        self.dir.join("tsa-root.pem")
    }

    /// The arguments of `codeseal sign --key KEY --cert CHAIN EXTRA INPUT -o OUT` with the
    /// RSA-2048 leaf.
    pub fn sign_args<'a>(
        &'a self,
        extra: &[&'a str],
        input: &'a Path,
        out: &'a Path,
    ) -> Vec<&'a str> {
        [
            &["sign", "--key", &self.key, "--cert", s(&self.chain)][..],
            extra,
            &[s(input), "-o", s(out)][..],
        ]
        .concat()
    }
}

/// A signed `file` is accepted by osslsigncode and `codeseal verify --trust`; a copy
/// changed by `tamper` (written beside it as `*.bad.EXT`) is rejected by osslsigncode and
/// by `codeseal verify` (exit 1), with and without `--trust`.
pub fn accepted_and_tamper_rejected(
    codeseal: impl Fn(&[&str]) -> Output,
    file: &Path,
    root_pem: &Path,
    tamper: impl Fn(&mut Vec<u8>),
) {
    let (ok, t) = osslsigncode_ok(file, root_pem);
    assert!(ok, "osslsigncode ({}): {t}", file.display());
    let o = codeseal(&["verify", "--trust", s(root_pem), s(file)]);
    assert!(o.status.success(), "codeseal verify: {}", text(&o));
    let mut bytes = std::fs::read(file).expect("read");
    tamper(&mut bytes);
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("bin");
    let bad = file.with_extension(format!("bad.{ext}"));
    std::fs::write(&bad, bytes).expect("write");
    let (ok, _) = osslsigncode_ok(&bad, root_pem);
    assert!(!ok, "osslsigncode accepts a changed {}", bad.display());
    for trust in [&[][..], &["--trust", s(root_pem)][..]] {
        let o = codeseal(&[&["verify"][..], trust, &[s(&bad)][..]].concat());
        assert_eq!(o.status.code(), Some(1), "{trust:?}: {}", text(&o));
    }
}

/// How extract, remove and attach are checked.
pub enum RoundTrip {
    /// remove gives the input back byte for byte, and attaching the extracted signature
    /// to it gives the signed file back byte for byte.
    SameBytes,
    /// The first signature carries extra state that attach does not write (MSI's
    /// `--add-msi-dse`): a second, plain signature is made (`plain.EXT`, accepted) and
    /// extracted; the removed file no longer verifies; attaching the plain signature to it
    /// gives a file that is accepted.
    ViaPlainSignature,
}

/// What the every-verb scenario needs to know about one kind of file.
pub struct Format<'a> {
    /// The extension of the files written (`signed.EXT`, ...).
    pub ext: &'a str,
    /// Extra arguments of the first `sign`.
    pub sign_args: &'a [&'a str],
    /// `kind` in `verify --json`.
    pub kind: &'a str,
    /// Further `(field, value)` pairs `verify --json` must show on the signed file.
    pub verify_json: &'a [(&'a str, Value)],
    /// Lines (substrings) `codeseal info` must print on the signed file.
    pub info: &'a [&'a str],
    /// Checks on `codeseal info --json` of the unsigned input.
    pub info_json: &'a dyn Fn(&Value),
    /// The independent verifiers run on each signed file, with the tamper check
    /// (`file`, `root_pem`); usually [`accepted_and_tamper_rejected`] with the format's
    /// tamper.
    pub accepted: &'a dyn Fn(&Path, &Path),
    pub round_trip: RoundTrip,
    /// `--append` gives a nested signature (with a time stamp, SHA-384, the P-256 key);
    /// false for formats that hold one signature (the suite checks the error itself).
    pub nested: bool,
    /// `--replace` over the nested one is checked too.
    pub replace: bool,
}

/// Runs every verb on `input` in `dir`: sign, verify (--json), info (text and --json on
/// the input), extract / remove / attach, timestamp in place, `--append` and `--replace`
/// (when the format takes them) and split signing. Leaves `signed.EXT` (one signature),
/// `sig.p7`, `removed.EXT`, `att.EXT` (time-stamped) and, with `nested`, `dual.EXT` in
/// `dir` for the suite's own checks.
pub fn every_verb(f: &Format, pki: &Pki, input: &Path, dir: &Path) {
    let p = |n: &str| dir.join(format!("{n}.{}", f.ext));
    let original = std::fs::read(input).expect("read");
    let (key, chain, root_pem) = (&pki.key, &pki.chain, &pki.root_pem);

    // sign + verify + info
    let signed = p("signed");
    let o = codeseal(&pki.sign_args(f.sign_args, input, &signed));
    assert!(o.status.success(), "{}", text(&o));
    (f.accepted)(&signed, root_pem);
    let o = codeseal(&["verify", "--json", "--trust", s(root_pem), s(&signed)]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["kind"], f.kind, "{v}");
    assert_eq!(v["valid"], true, "{v}");
    for (field, want) in f.verify_json {
        assert_eq!(&v[field], want, "{field}: {v}");
    }
    let o = codeseal(&["info", s(&signed)]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for line in f.info {
        assert!(t.contains(line), "{line:?} not in: {t}");
    }
    assert!(t.contains("Succeeded"), "{t}");
    let o = codeseal(&["info", "--json", s(input)]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    (f.info_json)(&v);

    // extract, remove, attach.
    let sig = dir.join("sig.p7");
    let (removed, att) = (p("removed"), p("att"));
    let extract_from = match f.round_trip {
        RoundTrip::SameBytes => signed.clone(),
        RoundTrip::ViaPlainSignature => {
            let plain = p("plain");
            let o = codeseal(&pki.sign_args(&[], input, &plain));
            assert!(o.status.success(), "{}", text(&o));
            (f.accepted)(&plain, root_pem);
            plain
        }
    };
    let o = codeseal(&["extract", s(&extract_from), "-o", s(&sig)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = codeseal(&["remove", s(&signed), "-o", s(&removed)]);
    assert!(o.status.success(), "{}", text(&o));
    match f.round_trip {
        RoundTrip::SameBytes => {
            assert_eq!(std::fs::read(&removed).expect("read"), original);
        }
        RoundTrip::ViaPlainSignature => {
            let o = codeseal(&["verify", s(&removed)]);
            assert_ne!(o.status.code(), Some(0), "{}", text(&o));
        }
    }
    let o = codeseal(&["attach", s(&removed), s(&sig), "-o", s(&att)]);
    assert!(o.status.success(), "{}", text(&o));
    match f.round_trip {
        RoundTrip::SameBytes => assert_eq!(
            std::fs::read(&att).expect("read"),
            std::fs::read(&signed).expect("read")
        ),
        RoundTrip::ViaPlainSignature => (f.accepted)(&att, root_pem),
    }

    // timestamp an already signed file, in place.
    let tsa = format!("{}/rfc3161", local_tsa(&pki.dir));
    let o = codeseal(&["timestamp", s(&att), "--ts", &tsa]);
    assert!(o.status.success(), "{}", text(&o));
    let (ok, t) = osslsigncode_ts_ok(&att, root_pem, &pki.tsa_root());
    assert!(ok, "{t}");

    if f.nested {
        // --append (nested) with a time stamp, then --replace.
        let dual = p("dual");
        let o = codeseal(&[
            "sign",
            "--key",
            &pki.key2,
            "--cert",
            s(&pki.chain2),
            "--append",
            "--digest",
            "sha384",
            "--ts",
            &tsa,
            s(&signed),
            "-o",
            s(&dual),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let (ok, t) = osslsigncode_ok(&dual, root_pem);
        assert!(ok, "{t}");
        let o = codeseal(&["verify", "--json", s(&dual)]);
        let v: Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(v["signatures"].as_array().map(Vec::len), Some(2), "{v}");
        if f.replace {
            let replaced = p("replaced");
            let o = codeseal(&pki.sign_args(&["--replace"], &dual, &replaced));
            assert!(o.status.success(), "{}", text(&o));
            (f.accepted)(&replaced, root_pem);
        }
    }

    split_sign_and_check(codeseal, key, input, chain, dir, "split", root_pem);
}

/// Signing `input` fails with an error that says `message`, and writes nothing at `out`.
pub fn sign_fails_clearly(pki: &Pki, input: &Path, out: &Path, message: &str) {
    let o = codeseal(&pki.sign_args(&[], input, out));
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains(message), "{}", text(&o));
    assert!(!out.exists());
}

/// `sign --recursive --out-dir OUT TREE` signs what it should: the tree is made by
/// `make_tree`; the sorted names in OUT must be `expected`. Returns OUT.
pub fn recursive_batch(
    pki: &Pki,
    dir: &Path,
    make_tree: impl FnOnce(&Path),
    expected: &[&str],
) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
    make_tree(&tree);
    let out = dir.join("out");
    let o = codeseal(&[
        "sign",
        "--key",
        &pki.key,
        "--cert",
        s(&pki.chain),
        "--recursive",
        "--out-dir",
        s(&out),
        s(&tree),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, expected);
    out
}

/// Runs codeseal under `/usr/bin/time -f %M`: its output and its peak RSS in KiB.
pub fn codeseal_rss(args: &[&str]) -> (Output, u64) {
    let o = Command::new("/usr/bin/time")
        .args(["-f", "rss_kib=%M", env!("CARGO_BIN_EXE_codeseal")])
        .args(args)
        .env_remove("CODESEAL_KEY_PASSWORD")
        .output()
        .expect("run /usr/bin/time (Debian package `time`, installed by scripts/setup.sh)");
    let err = String::from_utf8_lossy(&o.stderr);
    let rss = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS from /usr/bin/time: {err}"));
    (o, rss)
}

/// Signs `input` to `signed` (with `sign_args`), verifies it (`--trust`) and removes the
/// signature to `removed`, each under `/usr/bin/time`; every run must succeed. Returns the
/// highest peak RSS of the three, in KiB.
pub fn sign_verify_remove_rss(
    pki: &Pki,
    sign_args: &[&str],
    input: &Path,
    signed: &Path,
    removed: &Path,
) -> u64 {
    let name = input.display();
    let (o, sign_rss) = codeseal_rss(&pki.sign_args(sign_args, input, signed));
    assert!(o.status.success(), "{name} sign: {}", text(&o));
    let (o, verify_rss) = codeseal_rss(&["verify", "--trust", s(&pki.root_pem), s(signed)]);
    assert!(o.status.success(), "{name} verify: {}", text(&o));
    let (o, remove_rss) = codeseal_rss(&["remove", s(signed), "-o", s(removed)]);
    assert!(o.status.success(), "{name} remove: {}", text(&o));
    eprintln!(
        "{name}: peak RSS sign {sign_rss} KiB, verify {verify_rss} KiB, remove {remove_rss} KiB"
    );
    sign_rss.max(verify_rss).max(remove_rss)
}

/// Signs, verifies and removes the signature of the small and the large `inputs` (files
/// `signed-NAME` and `removed-NAME` in `dir`) under `/usr/bin/time`; `check(input, signed,
/// removed)` runs on each. The peak RSS on the large one must stay within 8 MiB of the peak
/// on the small one (`what` names them in the message).
pub fn flat_memory(
    pki: &Pki,
    dir: &Path,
    inputs: [&Path; 2],
    sign_args: &[&str],
    check: impl Fn(&Path, &Path, &Path),
    what: &str,
) {
    let mut rss = Vec::new();
    for input in inputs {
        let name = input.file_name().and_then(|n| n.to_str()).expect("name");
        let signed = dir.join(format!("signed-{name}"));
        let removed = dir.join(format!("removed-{name}"));
        rss.push(sign_verify_remove_rss(
            pki, sign_args, input, &signed, &removed,
        ));
        check(input, &signed, &removed);
    }
    let (small, big) = (rss[0], rss[1]);
    assert!(
        big < small + (8 << 10),
        "peak RSS grows with the {what}: {small} KiB, {big} KiB"
    );
}
