//! The examples run as another program would run them, with the project's test PKI
//! (`scripts/test-env.sh`): memory-to-memory signing of a PE file and a script (osslsigncode
//! accepts the results), typed findings for a valid, a modified and an unsigned file, async
//! signing with AWS KMS keys (the project's patched moto, started by `scripts/moto.sh` and
//! stopped by its watchdog when this test process ends), split signing in three processes
//! with separate directories, and the service's worker with the example's own object store.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn test_env() -> PathBuf {
    let dir = std::env::var_os("CODESEAL_TEST_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/test-env"));
    let st = Command::new("bash")
        .arg(root().join("scripts/test-env.sh"))
        .arg(&dir)
        .status()
        .expect("scripts/test-env.sh");
    assert!(
        st.success(),
        "scripts/test-env.sh failed (run scripts/setup.sh)"
    );
    dir
}

/// An example binary, built by `cargo test` beside this test's own binary (`cargo test
/// --test examples` alone does not build them: `cargo build --workspace --examples` first).
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("examples").join(name);
    assert!(
        bin.is_file(),
        "{} is not built (cargo build --workspace --examples)",
        bin.display()
    );
    Command::new(bin)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn osslsigncode_ok(file: &Path, root_pem: &Path) -> bool {
    let o = Command::new("osslsigncode")
        .args(["verify", "-CAfile"])
        .arg(root_pem)
        .arg("-in")
        .arg(file)
        .output()
        .expect("osslsigncode (run scripts/setup.sh)");
    o.status.success()
        && String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.trim() == "Succeeded")
}

#[test]
fn memory_to_memory_and_verify_findings() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("deploy.ps1");
    std::fs::write(&script, b"\xef\xbb\xbfWrite-Host 'Hello'\r\n").expect("write");
    for (input, out) in [
        (
            env.join("fixtures/pe64.exe"),
            dir.path().join("pe64-signed.exe"),
        ),
        (script.clone(), dir.path().join("deploy-signed.ps1")),
    ] {
        let o = example("memory_to_memory")
            .arg(pki.join("leaf-rsa2048.key"))
            .arg(pki.join("leaf-rsa2048-chain.pem"))
            .arg(pki.join("root.pem"))
            .arg(&input)
            .arg(&out)
            .output()
            .expect("memory_to_memory");
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            osslsigncode_ok(&out, &pki.join("root.pem")),
            "{}",
            out.display()
        );

        let o = example("verify_findings")
            .arg(pki.join("root.pem"))
            .arg(&out)
            .output()
            .expect("verify_findings");
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(text(&o).contains("valid (Anchors)"), "{}", text(&o));
    }
    // One changed byte in the PE's image: invalid, with the typed code.
    let mut b = std::fs::read(dir.path().join("pe64-signed.exe")).expect("read");
    b[0x400] ^= 1;
    let bad = dir.path().join("bad.exe");
    std::fs::write(&bad, b).expect("write");
    let o = example("verify_findings")
        .arg(pki.join("root.pem"))
        .arg(&bad)
        .output()
        .expect("verify_findings");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("ImageDigestMismatch"), "{}", text(&o));
    // Unsigned: exit 2; a root that did not issue the signer: invalid (Chain).
    let o = example("verify_findings")
        .arg(pki.join("root.pem"))
        .arg(env.join("fixtures/pe64.exe"))
        .output()
        .expect("verify_findings");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = example("verify_findings")
        .arg(pki.join("tsa-root.pem"))
        .arg(dir.path().join("pe64-signed.exe"))
        .arg("--json")
        .output()
        .expect("verify_findings");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["trust"], "anchors");
    assert!(
        v["signatures"][0]["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .any(|f| f["code"] == "chain"),
        "{v}"
    );
}

/// A PE fixture and a PowerShell script, unsigned, in `dir`.
fn inputs(env: &Path, dir: &Path) -> Vec<PathBuf> {
    let pe = dir.join("app.exe");
    std::fs::copy(env.join("fixtures/pe64.exe"), &pe).expect("copy");
    let script = dir.join("deploy.ps1");
    std::fs::write(&script, b"\xef\xbb\xbfWrite-Host 'Hello'\r\n").expect("write");
    vec![pe, script]
}

fn signed_name(input: &Path) -> String {
    let name = input.file_name().and_then(|n| n.to_str()).expect("name");
    format!("signed-{name}")
}

/// The AWS environment of this process's moto (started once, stopped by moto.sh's watchdog
/// when this process exits).
fn moto_env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("moto-examples-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let o = Command::new("bash")
            .arg(root().join("scripts/moto.sh"))
            .arg("start")
            .arg(&dir)
            .env("CODESEAL_MOTO_WATCH_PID", std::process::id().to_string())
            .output()
            .expect("moto.sh");
        assert!(
            o.status.success(),
            "scripts/moto.sh start failed (run scripts/setup.sh): {}",
            text(&o)
        );
        std::fs::read_to_string(dir.join("moto.env"))
            .expect("moto.env")
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

/// `c` with moto's AWS environment and nothing from the caller's AWS setup.
fn with_aws(mut c: Command) -> Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.envs(moto_env());
    c
}

fn venv_python() -> PathBuf {
    std::env::var_os("CODESEAL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/codeseal/venv")
        })
        .join("bin/python")
}

/// Creates a KMS signing key of `spec` in moto with boto3, names it `alias/ALIAS`, and writes
/// its public key (PEM) to `pub_pem`.
fn create_kms_key(alias: &str, spec: &str, pub_pem: &Path) {
    let script = r#"
import base64, os, sys, textwrap, boto3
alias, spec, out = sys.argv[1:4]
kms = boto3.client("kms", region_name=os.environ["AWS_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"])
k = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
kms.create_alias(AliasName="alias/" + alias, TargetKeyId=k["KeyId"])
der = kms.get_public_key(KeyId=k["KeyId"])["PublicKey"]
b64 = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
open(out, "w").write("-----BEGIN PUBLIC KEY-----\n" + b64 + "\n-----END PUBLIC KEY-----\n")
"#;
    let o = with_aws(Command::new(venv_python()))
        .arg("-c")
        .arg(script)
        .args([alias, spec])
        .arg(pub_pem)
        .output()
        .expect("python (run scripts/setup.sh)");
    assert!(o.status.success(), "{}", text(&o));
}

/// A code-signing certificate for the public key in `pub_pem`, issued by the test PKI's
/// intermediate CA; writes the chain (leaf, intermediate) to `chain`.
fn issue_code_signing_cert(pki: &Path, pub_pem: &Path, cn: &str, chain: &Path) {
    let dir = chain.parent().expect("dir");
    let ext = dir.join("codesign.ext");
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n",
    )
    .expect("write");
    let leaf = dir.join(format!("{cn}.pem"));
    let o = Command::new("openssl")
        .args(["x509", "-new", "-force_pubkey"])
        .arg(pub_pem)
        .args([
            "-subj",
            &format!("/CN={cn}/O=codeseal examples"),
            "-days",
            "30",
        ])
        .arg("-CA")
        .arg(pki.join("intermediate.pem"))
        .arg("-CAkey")
        .arg(pki.join("intermediate.key"))
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&leaf)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", text(&o));
    let mut pem = std::fs::read(&leaf).expect("leaf");
    pem.extend(std::fs::read(pki.join("intermediate.pem")).expect("intermediate"));
    std::fs::write(chain, pem).expect("chain");
}

#[test]
fn kms_async_signs_pe_and_script_with_kms_keys() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    let files = inputs(&env, dir.path());
    let mut aliases = vec![];
    for spec in ["RSA_2048", "ECC_NIST_P256"] {
        let alias = format!(
            "examples-{}-{}-{}",
            spec.to_lowercase().replace('_', "-"),
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time")
                .subsec_nanos()
        );
        let pub_pem = dir.path().join(format!("{alias}.pub.pem"));
        let chain = dir.path().join(format!("{alias}-chain.pem"));
        create_kms_key(&alias, spec, &pub_pem);
        issue_code_signing_cert(&pki, &pub_pem, &alias, &chain);
        aliases.push(alias.clone());
        for input in &files {
            let out = dir.path().join(format!("{spec}-{}", signed_name(input)));
            let o = with_aws(example("kms_async"))
                .arg(format!("awskms:///alias/{alias}"))
                .arg(&chain)
                .arg(pki.join("root.pem"))
                .arg(input)
                .arg(&out)
                .output()
                .expect("kms_async");
            assert!(
                o.status.success(),
                "{spec} {}: {}",
                input.display(),
                text(&o)
            );
            assert!(text(&o).contains("valid against the root"), "{}", text(&o));
            assert!(
                osslsigncode_ok(&out, &pki.join("root.pem")),
                "{spec}: {}",
                out.display()
            );
        }
    }
    // A certificate that is not the KMS key's: refused before anything is signed.
    let out = dir.path().join("refused.exe");
    let o = with_aws(example("kms_async"))
        .arg(format!("awskms:///alias/{}", aliases[0]))
        .arg(pki.join("leaf-rsa2048-chain.pem"))
        .arg(pki.join("root.pem"))
        .arg(&files[0])
        .arg(&out)
        .output()
        .expect("kms_async");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("does not belong to this key"),
        "{}",
        text(&o)
    );
    assert!(!out.exists());
}

/// One machine: a directory of its own and a process per step.
fn split_step(args: &[&Path], cwd: &Path) -> Output {
    example("split_signing")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("split_signing")
}

#[test]
fn split_signing_across_two_machines() {
    let env = test_env();
    let pki = env.join("pki");
    let a = tempfile::tempdir().expect("machine A");
    let b = tempfile::tempdir().expect("machine B");
    // A: the file and the certificates, no key. B: only the key.
    let chain = a.path().join("chain.pem");
    std::fs::copy(pki.join("leaf-rsa2048-chain.pem"), &chain).expect("copy");
    let root_pem = a.path().join("root.pem");
    std::fs::copy(pki.join("root.pem"), &root_pem).expect("copy");
    let key = b.path().join("signing.key");
    std::fs::copy(pki.join("leaf-rsa2048.key"), &key).expect("copy");
    let p = |s: &str| PathBuf::from(s);

    for input in inputs(&env, a.path()) {
        let out = a.path().join(signed_name(&input));
        let request = a.path().join("request.json");
        let o = split_step(&[&p("prepare"), &input, &chain, &request], a.path());
        assert!(o.status.success(), "prepare: {}", text(&o));
        // A -> B: the request only.
        let b_request = b.path().join("request.json");
        std::fs::copy(&request, &b_request).expect("to B");
        let b_sig = b.path().join("request.sig");
        let o = split_step(&[&p("sign"), &key, &b_request, &b_sig], b.path());
        assert!(o.status.success(), "sign: {}", text(&o));
        // B -> A: the signature only.
        let sig = a.path().join("request.sig");
        std::fs::copy(&b_sig, &sig).expect("to A");
        let o = split_step(
            &[
                &p("finish"),
                &input,
                &request,
                &sig,
                &chain,
                &root_pem,
                &out,
            ],
            a.path(),
        );
        assert!(o.status.success(), "finish: {}", text(&o));
        assert!(osslsigncode_ok(&out, &root_pem), "{}", out.display());
    }

    // A request changed on its way to B (one byte of the digest to sign): B signs what it
    // got, and A's finish, with A's own request, refuses the signature and writes nothing.
    let input = a.path().join("app.exe");
    let request = a.path().join("request.json");
    let o = split_step(&[&p("prepare"), &input, &chain, &request], a.path());
    assert!(o.status.success(), "prepare: {}", text(&o));
    let mut req: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&request).expect("read")).expect("json");
    let digest = req["digest_to_sign"].as_str().expect("digest").to_string();
    // Base64 of 32 bytes: changing the first character changes the first byte.
    let first = if digest.starts_with('A') { "B" } else { "A" };
    req["digest_to_sign"] = format!("{first}{}", &digest[1..]).into();
    let b_request = b.path().join("tampered.json");
    std::fs::write(&b_request, serde_json::to_vec(&req).expect("json")).expect("write");
    let b_sig = b.path().join("tampered.sig");
    let o = split_step(&[&p("sign"), &key, &b_request, &b_sig], b.path());
    assert!(o.status.success(), "sign: {}", text(&o));
    let sig = a.path().join("tampered.sig");
    std::fs::copy(&b_sig, &sig).expect("to A");
    let out = a.path().join("tampered-signed.exe");
    let o = split_step(
        &[
            &p("finish"),
            &input,
            &request,
            &sig,
            &chain,
            &root_pem,
            &out,
        ],
        a.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("does not verify with the certificate's key"),
        "{}",
        text(&o)
    );
    assert!(!out.exists(), "finish left an output");
    // The tampered request itself is refused too: its digest no longer matches its
    // signed attributes.
    let o = split_step(
        &[
            &p("finish"),
            &input,
            &b_request,
            &sig,
            &chain,
            &root_pem,
            &out,
        ],
        a.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("does not match the signed attributes"),
        "{}",
        text(&o)
    );
    assert!(!out.exists(), "finish left an output");
}

#[test]
fn service_worker_signs_into_its_own_object_store() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    for (key, chain) in [
        ("leaf-rsa2048.key", "leaf-rsa2048-chain.pem"),
        ("leaf-p256.key", "leaf-p256-chain.pem"),
    ] {
        for input in inputs(&env, dir.path()) {
            let out = dir.path().join(format!("{key}-{}", signed_name(&input)));
            let o = example("service_worker")
                .arg(pki.join(key))
                .arg(pki.join(chain))
                .arg(pki.join("root.pem"))
                .arg(&input)
                .arg(&out)
                .output()
                .expect("service_worker");
            assert!(
                o.status.success(),
                "{key} {}: {}",
                input.display(),
                text(&o)
            );
            assert!(text(&o).contains("done"), "{}", text(&o));
            assert!(
                osslsigncode_ok(&out, &pki.join("root.pem")),
                "{}",
                out.display()
            );
        }
    }
    // A file the worker cannot sign: the job fails with the worker's reason, no output.
    let bad = dir.path().join("notes.exe");
    std::fs::write(&bad, b"not a PE file").expect("write");
    let out = dir.path().join("notes-signed.exe");
    let o = example("service_worker")
        .arg(pki.join("leaf-rsa2048.key"))
        .arg(pki.join("leaf-rsa2048-chain.pem"))
        .arg(pki.join("root.pem"))
        .arg(&bad)
        .arg(&out)
        .output()
        .expect("service_worker");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("failed: unsupported file"),
        "{}",
        text(&o)
    );
    assert!(!out.exists());
}
