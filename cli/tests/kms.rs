//! The CLI with AWS KMS keys on moto (the project's patched moto, started here and stopped by
//! moto.sh's watchdog when this test process ends): CSRs, CA-issued certificates, PE files
//! signed through `awskms:` URIs and accepted by osslsigncode and signify, split signing, and
//! the error paths, which leave the input untouched.
mod common;

use common::*;
use std::{
    collections::HashMap,
    path::Path,
    process::{Command, Output},
    sync::OnceLock,
};

/// The AWS environment pointing at this process's moto (started once).
fn moto_env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("moto-cli-{}", std::process::id()));
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

/// A command with the AWS environment of moto (and nothing from the caller's AWS setup).
fn with_aws(mut c: Command) -> Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.envs(moto_env());
    c
}

fn codeseal(args: &[&str]) -> Output {
    let mut c = with_aws(Command::new(env!("CARGO_BIN_EXE_codeseal")));
    c.args(args).output().expect("codeseal")
}

/// Creates KMS keys in moto with boto3 and returns (alias → key id, key id → public key DER).
fn create_keys(specs: &[(&str, &str, &str)]) -> HashMap<String, (String, Vec<u8>)> {
    let script = r#"
import base64, json, os, sys, boto3
kms = boto3.client("kms", region_name=os.environ["AWS_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"])
out = {}
for alias, spec, usage in json.loads(sys.argv[1]):
    k = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
    kms.create_alias(AliasName="alias/" + alias, TargetKeyId=k["KeyId"])
    pub = kms.get_public_key(KeyId=k["KeyId"])["PublicKey"] if usage == "SIGN_VERIFY" else b""
    out[alias] = [k["KeyId"], base64.b64encode(pub).decode()]
print(json.dumps(out))
"#;
    let arg = format!(
        "[{}]",
        specs
            .iter()
            .map(|(a, sp, u)| format!("[\"{a}\",\"{sp}\",\"{u}\"]"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut c = with_aws(Command::new(venv_python()));
    let o = c.arg("-c").arg(script).arg(arg).output().expect("python");
    assert!(o.status.success(), "{}", text(&o));
    let v: HashMap<String, (String, String)> = serde_json::from_slice(&o.stdout).expect("json");
    use base64::Engine;
    v.into_iter()
        .map(|(k, (id, p))| {
            (
                k,
                (
                    id,
                    base64::engine::general_purpose::STANDARD
                        .decode(p)
                        .expect("b64"),
                ),
            )
        })
        .collect()
}

fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("t")
            .subsec_nanos()
    )
}

#[test]
fn kms_keys_make_csrs_and_sign_pe_files_accepted_by_osslsigncode_and_signify() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    let specs = [
        (unique("rsa2048"), "RSA_2048"),
        (unique("rsa4096"), "RSA_4096"),
        (unique("p256"), "ECC_NIST_P256"),
        (unique("p384"), "ECC_NIST_P384"),
    ];
    let keys = create_keys(
        &specs
            .iter()
            .map(|(a, sp)| (a.as_str(), *sp, "SIGN_VERIFY"))
            .collect::<Vec<_>>(),
    );
    let endpoint = moto_env()["AWS_ENDPOINT_URL"]
        .trim_start_matches("http://")
        .to_string();
    for (i, (alias, spec)) in specs.iter().enumerate() {
        // Every reference form works; the CSR uses the cosign-style URI with the endpoint.
        let (key_id, public_der) = &keys[alias];
        let uri = match i % 3 {
            0 => format!("awskms:///alias/{alias}"),
            1 => format!("awskms://{endpoint}/alias/{alias}"),
            _ => format!("awskms:///{key_id}"),
        };
        let csr = dir.path().join(format!("{alias}.csr"));
        let o = codeseal(&[
            "csr",
            "--key",
            &uri,
            "--subject",
            &format!("CN=codeseal KMS {spec},O=codeseal"),
            "--eku-code-signing",
            "-o",
            s(&csr),
        ]);
        assert!(o.status.success(), "{spec}: {}", text(&o));
        let v = Command::new("openssl")
            .args(["req", "-verify", "-noout", "-in", s(&csr)])
            .output()
            .expect("openssl");
        assert!(
            text(&v).contains("verify OK") && !text(&v).contains("failure"),
            "{spec}: {}",
            text(&v)
        );
        let p = Command::new("openssl")
            .args(["req", "-pubkey", "-noout", "-in", s(&csr)])
            .output()
            .expect("openssl");
        let pder = Command::new("openssl")
            .args(["pkey", "-pubin", "-outform", "DER"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().expect("stdin").write_all(&p.stdout)?;
                c.wait_with_output()
            })
            .expect("openssl pkey");
        assert_eq!(
            &pder.stdout, public_der,
            "{spec}: the CSR's public key is not GetPublicKey's"
        );

        let chain = issue(&pki, &csr, dir.path(), alias);
        // P-384 keys sign with SHA-384 (KMS offers only ECDSA_SHA_384 for them).
        let digest = if *spec == "ECC_NIST_P384" {
            "sha384"
        } else {
            "sha256"
        };
        for fx in ["pe64.exe", "pe32.dll"] {
            let input = env.join("fixtures").join(fx);
            let out = dir.path().join(format!("{alias}-{fx}"));
            let o = codeseal(&[
                "sign",
                "--key",
                &uri,
                "--cert",
                s(&chain),
                "--digest",
                digest,
                s(&input),
                "-o",
                s(&out),
            ]);
            assert!(o.status.success(), "{spec} {fx}: {}", text(&o));
            let (ok, t) = osslsigncode_ok(&out, &pki.join("root.pem"));
            assert!(ok, "osslsigncode {spec} {fx}: {t}");
            let (ok, t) = signify_ok(&out, &pki.join("root.pem"));
            assert!(ok, "signify {spec} {fx}: {t}");
        }
        // A PowerShell script with the KMS key.
        let ps1 = write_ps1(dir.path(), &format!("{alias}.ps1"));
        let out = dir.path().join(format!("{alias}-signed.ps1"));
        let o = codeseal(&[
            "sign",
            "--key",
            &uri,
            "--cert",
            s(&chain),
            "--digest",
            digest,
            s(&ps1),
            "-o",
            s(&out),
        ]);
        assert!(o.status.success(), "{spec} ps1: {}", text(&o));
        script_accepted(codeseal, &out, &pki.join("root.pem"));
        if i == 0 {
            split_sign_and_check(
                codeseal,
                &uri,
                &ps1,
                &chain,
                dir.path(),
                "split-ps1",
                &pki.join("root.pem"),
            );
            // Split signing with the KMS key: digest here, sign-digest with only KMS, attach.
            split_sign_and_check(
                codeseal,
                &uri,
                &env.join("fixtures/pe64.exe"),
                &chain,
                dir.path(),
                "split",
                &pki.join("root.pem"),
            );
        }
    }
}

#[test]
fn kms_error_paths_are_clear_and_leave_the_input_untouched() {
    let env = test_env();
    let pki = env.join("pki");
    let dir = tempfile::tempdir().expect("tmp");
    let enc = unique("enc");
    let rsa = unique("rsa");
    let p256 = unique("p256e");
    create_keys(&[
        (&enc, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        (&rsa, "RSA_2048", "SIGN_VERIFY"),
        (&p256, "ECC_NIST_P256", "SIGN_VERIFY"),
    ]);
    let input = dir.path().join("in.exe");
    std::fs::copy(env.join("fixtures/pe64.exe"), &input).expect("copy");
    let before = std::fs::read(&input).expect("read");
    let chain = pki.join("leaf-rsa2048-chain.pem");
    let out = dir.path().join("out.exe");
    let cases: Vec<(String, Vec<&str>, &str)> = vec![
        (format!("awskms:///alias/{enc}"), vec![], "SIGN_VERIFY"),
        (
            "awskms:///alias/no-such-alias".to_string(),
            vec![],
            "not found",
        ),
        (
            format!("awskms:///alias/{rsa}"),
            vec![],
            "does not belong to this key",
        ),
    ];
    for (uri, extra, needle) in &cases {
        let mut args = vec!["sign", "--key", uri.as_str(), "--cert", s(&chain)];
        args.extend(extra.iter().copied());
        args.extend([s(&input), "-o", s(&out)]);
        let o = codeseal(&args);
        assert!(!o.status.success(), "{uri}: succeeded");
        assert!(
            text(&o).contains(needle),
            "{uri}: expected {needle:?} in {}",
            text(&o)
        );
        assert!(!out.exists(), "{uri}: an output was written");
    }
    // An algorithm the key does not offer (KMS gives P-256 keys ECDSA_SHA_256 only).
    let csr = dir.path().join("x.csr");
    let o = codeseal(&[
        "csr",
        "--key",
        &format!("awskms:///alias/{p256}"),
        "--subject",
        "CN=x",
        "--digest",
        "sha384",
        "-o",
        s(&csr),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("cannot sign with"), "{}", text(&o));
    assert!(!csr.exists());
    // KMS endpoint down (connection refused on a closed port).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut c = with_aws(Command::new(env!("CARGO_BIN_EXE_codeseal")));
    let o = c
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_MAX_ATTEMPTS", "1")
        .args([
            "sign",
            "--key",
            &format!("awskms:///alias/{rsa}"),
            "--cert",
            s(&chain),
            s(&input),
            "-o",
            s(&out),
        ])
        .output()
        .expect("codeseal");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o).to_lowercase();
    assert!(
        t.contains("connect") || t.contains("refused") || t.contains("unreachable"),
        "{t}"
    );
    assert!(!out.exists());
    assert_eq!(
        std::fs::read(&input).expect("read"),
        before,
        "the input was modified"
    );
    // Credentials never appear in output.
    assert!(!text(&o).contains("testing"), "{}", text(&o));
}
