//! The `codeseal` binary never prints a secret written into a key URI: `sign`, `csr` and
//! `sign-digest` with a key that cannot be opened fail with a message that names the key
//! without the secret, and `--help` does not show a key URI taken from the environment.
mod common;

use common::*;
use std::process::{Command, Output};

const S: &str = "S3cr3t-SENTINEL";

fn codeseal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codeseal"))
        .args(args)
        .env_remove("CODESEAL_KEY")
        .env_remove("CODESEAL_KEY_PASSWORD")
        .env_remove("CODESEAL_KEY_PASSWORD_FILE")
        .env_remove("CODESEAL_PKCS11_PIN")
        .env_remove("CODESEAL_PKCS11_PIN_FILE")
        .output()
        .expect("run codeseal")
}

#[test]
fn key_uri_secrets_are_not_printed() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let missing = d.join("missing-key.pem");
    let m = s(&missing);
    let input = d.join("in.exe");
    std::fs::write(&input, b"MZ").expect("write");
    let cert = d.join("cert.pem");
    let request = d.join("req.json");
    std::fs::write(&request, b"{}").expect("write");
    let keys = [
        (format!("file:{m}?password={S}"), "missing-key.pem"),
        (format!("file:{m};password={S}"), "missing-key.pem"),
        (format!("file:{m}#{S}"), "missing-key.pem"),
        (format!("file://user:{S}@localhost{m}"), "missing-key.pem"),
        (format!("{m}?PASSWORD={S}"), "missing-key.pem"),
        (format!("file:{m}?password-file={S}"), "password file"),
        (
            format!("pkcs11:token=t;object=k?module-path=/nonexistent/m.so&pin-value={S}"),
            "token=t",
        ),
        (
            format!("pkcs11:token=t;object=k?module-path=/nonexistent/m.so&pin%2Dvalue={S}"),
            "token=t",
        ),
        (
            format!("pkcs11:token=t;object=k?module-path=/nonexistent/m.so&pin-source={S}"),
            "token=t",
        ),
        (
            format!("pkcs11:token=t;object=k?module-path=/nonexistent/m.so&x-pin={S}"),
            "/nonexistent/m.so",
        ),
        (format!("awskms:///alias/k?password={S}"), "alias/k"),
        (format!("awskms://user:{S}@127.0.0.1:9/alias/k"), "alias/k"),
    ];
    for (key, names) in &keys {
        for args in [
            vec![
                "sign",
                "--key",
                key,
                "--cert",
                s(&cert),
                s(&input),
                "-o",
                s(&d.join("out.exe")),
            ],
            vec!["csr", "--key", key, "--subject", "CN=x"],
            vec!["sign-digest", "--key", key, s(&request)],
        ] {
            let o = codeseal(&args);
            let stderr = String::from_utf8_lossy(&o.stderr);
            let all = text(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {all}");
            assert!(!all.contains(S), "{args:?}: the secret is printed: {all}");
            assert!(
                stderr.contains("opening key") && stderr.contains(names),
                "{args:?}: the error does not name the key ({names}): {stderr}"
            );
        }
    }
}

#[test]
fn help_does_not_show_the_key_from_the_environment() {
    for sub in ["sign", "csr", "sign-digest"] {
        let o = Command::new(env!("CARGO_BIN_EXE_codeseal"))
            .args([sub, "--help"])
            .env(
                "CODESEAL_KEY",
                format!("pkcs11:object=k?module-path=/m.so&pin-value={S}"),
            )
            .output()
            .expect("run codeseal");
        let all = text(&o);
        assert!(o.status.success(), "{sub} --help: {all}");
        assert!(all.contains("--key"), "{sub} --help: {all}");
        assert!(!all.contains(S), "{sub} --help shows the key: {all}");
    }
}
