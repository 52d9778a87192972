//! The CLI with keys made on a SoftHSM2 token (the stand-in for AWS CloudHSM): CSR from the
//! token key, a certificate from the test CA, PE files signed through `pkcs11:` URIs and
//! accepted by osslsigncode and signify.
mod common;

use common::*;
use std::{path::Path, process::Command};

#[test]
fn sign_with_token_keys_through_pkcs11_uris() {
    let env = test_env();
    let pki = env.join("pki");
    let hsm = Path::new(env!("CARGO_TARGET_TMPDIR")).join("softhsm-cli");
    let o = run(Command::new("bash")
        .arg(root().join("scripts/softhsm.sh"))
        .arg("init")
        .arg(&hsm));
    assert!(
        o.status.success(),
        "softhsm.sh (run scripts/setup.sh): {}",
        text(&o)
    );
    let conf = hsm.join("softhsm2.conf");
    let pin = hsm.join("pin");
    let module = "/usr/lib/softhsm/libsofthsm2.so";
    let dir = tempfile::tempdir().expect("tmp");
    let codeseal = |args: &[&str]| {
        run(Command::new(env!("CARGO_BIN_EXE_codeseal"))
            .args(args)
            .env("SOFTHSM2_CONF", &conf)
            .env_remove("CODESEAL_PKCS11_PIN"))
    };
    // keys: lists the token's keys after login.
    let o = codeseal(&[
        "keys",
        "--module",
        module,
        "--token",
        "codeseal-test",
        "--pin-file",
        pin.to_str().expect("utf8"),
    ]);
    assert!(
        o.status.success() && text(&o).contains("rsa2048") && text(&o).contains("p256"),
        "{}",
        text(&o)
    );

    for (label, id) in [("rsa2048", "%01"), ("p256", "%03")] {
        let uri = format!(
            "pkcs11:token=codeseal-test;object={label};id={id}?module-path={module}&pin-source=file:{}",
            pin.display()
        );
        // CSR with the token key, then a code-signing certificate from the test intermediate.
        let csr = dir.path().join(format!("{label}.csr"));
        let o = codeseal(&[
            "csr",
            "--key",
            &uri,
            "--subject",
            &format!("CN=codeseal HSM {label}"),
            "-o",
            csr.to_str().expect("utf8"),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let chain = issue(&pki, &csr, dir.path(), label);

        for fx in ["pe64.exe", "pe32.dll"] {
            let out = dir.path().join(format!("{label}-{fx}"));
            let o = codeseal(&[
                "sign",
                "--key",
                &uri,
                "--cert",
                chain.to_str().expect("utf8"),
                env.join("fixtures").join(fx).to_str().expect("utf8"),
                "-o",
                out.to_str().expect("utf8"),
            ]);
            assert!(o.status.success(), "{}", text(&o));
            let (ok, t) = osslsigncode_ok(&out, &pki.join("root.pem"));
            assert!(ok, "osslsigncode: {t}");
            let (ok, t) = signify_ok(&out, &pki.join("root.pem"));
            assert!(ok, "signify: {t}");
        }
        // A PowerShell script with the token key (the CloudHSM walkthrough's
        // `signtool sign /fd sha256 ... exec.ps1`), whole and split.
        let ps1 = write_ps1(dir.path(), &format!("{label}-exec.ps1"));
        let out = dir.path().join(format!("{label}-signed.ps1"));
        let o = codeseal(&[
            "sign",
            "--key",
            &uri,
            "--cert",
            chain.to_str().expect("utf8"),
            ps1.to_str().expect("utf8"),
            "-o",
            out.to_str().expect("utf8"),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        script_accepted(codeseal, &out, &pki.join("root.pem"));
        split_sign_and_check(
            codeseal,
            &uri,
            &ps1,
            &chain,
            dir.path(),
            &format!("{label}-ps1"),
            &pki.join("root.pem"),
        );
        // Split signing with the token key: digest here, sign-digest with only the token,
        // attach here.
        split_sign_and_check(
            codeseal,
            &uri,
            &env.join("fixtures/pe64.exe"),
            &chain,
            dir.path(),
            label,
            &pki.join("root.pem"),
        );

        // The certificate of another key is refused before anything is signed.
        let other = pki.join("leaf-rsa2048-chain.pem");
        let out = dir.path().join(format!("{label}-mismatch.exe"));
        let o = codeseal(&[
            "sign",
            "--key",
            &uri,
            "--cert",
            other.to_str().expect("utf8"),
            env.join("fixtures/pe64.exe").to_str().expect("utf8"),
            "-o",
            out.to_str().expect("utf8"),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            text(&o).contains("does not belong to this key"),
            "{}",
            text(&o)
        );
        assert!(!out.exists());
    }
    // pin-value in a URI is refused by default: no secrets on argv.
    let o = codeseal(&[
        "sign",
        "--key",
        &format!("pkcs11:token=codeseal-test;object=p256?module-path={module}&pin-value=1234"),
        "--cert",
        pki.join("leaf-p256-chain.pem").to_str().expect("utf8"),
        env.join("fixtures/pe64.exe").to_str().expect("utf8"),
        "-o",
        dir.path().join("x.exe").to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        !text(&o).contains("1234"),
        "the PIN was echoed: {}",
        text(&o)
    );
}
