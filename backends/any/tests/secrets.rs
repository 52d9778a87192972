//! A secret written into a key URI, in any place a user could put it, never shows in the
//! errors `open_key` returns: neither in `{}`, `{:?}`, `{:#}` nor `{:#?}` of the error or of
//! any error in its `source()` chain, nor in an `anyhow` report of it (what the CLI and the
//! service print). The errors still name the file, token or key.
//!
//! The PKCS#11 cases use a real SoftHSM2 token made by `scripts/softhsm.sh`; the AWS KMS
//! cases fail before any request is sent, or reach a closed local port.
#![allow(clippy::unwrap_used)]

#[cfg(feature = "pkcs11")]
use std::path::{Path, PathBuf};
use std::{error::Error, process::Command};

use codeseal_keys::{open_key, KeyError};

const S: &str = "S3cr3t-SENTINEL";

/// Every rendering of `e` and of each error in its chain; fails if one holds the sentinel.
/// Returns the `{:#}` of the anyhow report (the CLI's rendering), for content checks.
fn assert_hidden(uri: &str, e: KeyError) -> String {
    let mut cur: Option<&(dyn Error + 'static)> = Some(&e);
    let mut depth = 0;
    while let Some(err) = cur {
        for shown in [
            format!("{err}"),
            format!("{err:?}"),
            format!("{err:#}"),
            format!("{err:#?}"),
        ] {
            assert!(
                !shown.contains(S),
                "{uri:?}: the secret shows in error #{depth} of the chain: {shown}"
            );
        }
        cur = err.source();
        depth += 1;
        assert!(depth < 64, "{uri:?}: error chain does not end");
    }
    let report = anyhow::Error::new(e).context("opening key");
    let full = format!("{report:#}");
    for shown in [format!("{report}"), format!("{report:?}"), full.clone()] {
        assert!(!shown.contains(S), "{uri:?}: the secret shows in {shown}");
    }
    full
}

/// Opens `uri`, which must fail; checks the secret is hidden and that the message still
/// contains `names`.
fn check(uri: &str, names: &str) {
    let e = match open_key(uri) {
        Ok(k) => panic!("{uri:?} opened: {k:?}"),
        Err(e) => e,
    };
    let full = assert_hidden(uri, e);
    assert!(
        full.contains(names),
        "{uri:?}: the error no longer names {names:?}: {full}"
    );
}

#[test]
fn file_uris() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-key.pem");
    let m = missing.display().to_string();
    // An existing key file that needs a password (encrypted PKCS#8).
    let enc = dir.path().join("enc.pem");
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-aes-256-cbc", "-pass", "pass:right-password", "-out"])
        .arg(&enc)
        .status()
        .expect("openssl (scripts/setup.sh installs it)");
    assert!(status.success());
    let e = enc.display().to_string();
    let cases = [
        // Query parameters, each spelling.
        (format!("file:{m}?password={S}"), "missing-key.pem"),
        (format!("file:{m}?PASSWORD={S}"), "missing-key.pem"),
        (format!("file:{m}?passphrase={S}"), "missing-key.pem"),
        (format!("file:{m}?pass%77ord={S}"), "missing-key.pem"),
        (format!("file:{m}?pin-value={S}"), "missing-key.pem"),
        (
            format!("file:{m}?password-file=/x&password={S}"),
            "missing-key.pem",
        ),
        (format!("file:{m}?{S}"), "missing-key.pem"),
        (format!("file:{m}?password={S};a&b"), "missing-key.pem"),
        // A plain path with a query.
        (format!("{m}?password={S}"), "missing-key.pem"),
        // In the path, the fragment, the user information.
        (format!("file:{m};password={S}"), "missing-key.pem"),
        (format!("{m};password={S}"), "missing-key.pem"),
        (format!("file:{m}#{S}"), "missing-key.pem"),
        (format!("file:{m}#password={S}"), "missing-key.pem"),
        (format!("file://user:{S}@localhost{m}"), "missing-key.pem"),
        (format!("file://{S}@localhost{m}"), "missing-key.pem"),
        // The password where its file or variable belongs.
        (format!("file:{e}?password-file={S}"), "password file"),
        (format!("file:{e}?password-env={S}"), "environment variable"),
        (format!("file:{m}?password-file={S}"), "password file"),
    ];
    for (uri, names) in &cases {
        check(uri, names);
    }
    // A wrong password from a file fails without showing it.
    let pw = dir.path().join("pw");
    std::fs::write(&pw, S).unwrap();
    check(
        &format!("file:{e}?password-file={}", pw.display()),
        "cannot decrypt",
    );
}

/// A throwaway SoftHSM2 token of this test alone (so that wrong PINs tried here touch no
/// other test's token).
#[cfg(feature = "pkcs11")]
fn softhsm() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("softhsm-keys-secrets");
    let out = Command::new("bash")
        .arg(root.join("scripts/softhsm.sh"))
        .arg("init")
        .arg(&dir)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "scripts/softhsm.sh init failed (run scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = std::fs::read_to_string(dir.join("env")).unwrap();
    let var = |name: &str| -> PathBuf {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("{name} missing"))
            .into()
    };
    (var("SOFTHSM2_CONF"), var("CODESEAL_PKCS11_MODULE"))
}

#[cfg(feature = "pkcs11")]
#[test]
fn pkcs11_uris() {
    let (conf, module) = softhsm();
    // SoftHSM reads its configuration at C_Initialize; this is the only test of this
    // binary that loads a module, and the variable is set before it does.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    std::env::set_var("CODESEAL_TEST_WRONG_PIN", S);
    let dir = tempfile::tempdir().unwrap();
    let wrong_pin = dir.path().join("wrong-pin");
    std::fs::write(&wrong_pin, S).unwrap();
    let md = module.display();
    let q = format!("module-path={md}");
    let tok = "token=codeseal-test;object=p256";
    let cases = [
        // pin-value in any case, percent-encoded, misspelt, in the path.
        (format!("pkcs11:{tok}?{q}&pin-value={S}"), "pin-value"),
        (format!("pkcs11:{tok}?{q}&PIN-VALUE={S}"), "pin-value"),
        (format!("pkcs11:{tok}?{q}&Pin-Value={S}"), "pin-value"),
        (format!("pkcs11:{tok}?{q}&pin%2Dvalue={S}"), "codeseal-test"),
        (format!("pkcs11:{tok}?{q}&pin%2dVALUE={S}"), "codeseal-test"),
        (format!("pkcs11:{tok}?{q}&pin_value={S}"), "codeseal-test"),
        (format!("pkcs11:{tok}?{q}&pin={S}"), "codeseal-test"),
        (format!("pkcs11:{tok}?{q}&x-pin={S}"), "codeseal-test"),
        (format!("pkcs11:{tok};pin-value={S}?{q}"), "codeseal-test"),
        (format!("pkcs11:pin-value={S};{tok}?{q}"), "codeseal-test"),
        (format!("pkcs11:{tok}?{q}&pin-value={S};x&y"), "pin-value"),
        // A PIN where its source belongs.
        (format!("pkcs11:{tok}?{q}&pin-source={S}"), "codeseal-test"),
        (
            format!("pkcs11:{tok}?{q}&pin-source=file:{S}"),
            "codeseal-test",
        ),
        (
            format!("pkcs11:{tok}?{q}&pin-source=env:{S}"),
            "environment variable",
        ),
        // Bare items, fragment.
        (format!("pkcs11:{tok}?{q}&{S}"), "codeseal-test"),
        (format!("pkcs11:{tok};{S}?{q}"), "no NAME=VALUE"),
        (format!("pkcs11:{tok}?{q}#{S}"), "codeseal-test"),
        (format!("pkcs11:{tok}?{q}#pin-value={S}"), "codeseal-test"),
        // Past the URI: the module loads, the token is found, the PIN is wrong.
        (
            format!("pkcs11:{tok}?{q}&pin-source=file:{}", wrong_pin.display()),
            "wrong PIN",
        ),
        (
            format!("pkcs11:{tok}?{q}&pin-source=env:CODESEAL_TEST_WRONG_PIN"),
            "wrong PIN",
        ),
        // No such token or module, with a secret in the URI.
        (
            format!("pkcs11:token=nope;object=p256?{q}&x-pin-value={S}"),
            "nope",
        ),
        (
            format!("pkcs11:{tok}?module-path=/nonexistent/lib.so&x-password={S}"),
            "/nonexistent/lib.so",
        ),
    ];
    for (uri, names) in &cases {
        check(uri, names);
    }
}

#[cfg(feature = "kms")]
#[test]
fn kms_uris() {
    for (uri, names) in &kms_cases() {
        check(uri, names);
    }
}

/// Without the `kms` feature the same URIs fail with a typed error naming the feature, and
/// the secret is not shown either.
#[cfg(not(feature = "kms"))]
#[test]
fn kms_uris_without_the_kms_feature() {
    for (uri, _) in &kms_cases() {
        assert!(
            matches!(
                open_key(uri),
                Err(KeyError::BackendNotBuilt { feature: "kms", .. })
            ),
            "{uri:?}"
        );
        check(uri, "feature \"kms\"");
    }
}

/// Without the `pkcs11` feature a PKCS#11 URI fails with a typed error naming the feature,
/// before anything is loaded, and the secret is not shown.
#[cfg(not(feature = "pkcs11"))]
#[test]
fn pkcs11_uris_without_the_pkcs11_feature() {
    for uri in [
        format!("pkcs11:token=t;object=k?module-path=/nonexistent/lib.so&pin-value={S}"),
        format!("pkcs11:pin-value={S};object=k"),
    ] {
        assert!(
            matches!(
                open_key(&uri),
                Err(KeyError::BackendNotBuilt {
                    feature: "pkcs11",
                    ..
                })
            ),
            "{uri:?}"
        );
        check(&uri, "feature \"pkcs11\"");
    }
}

/// AWS KMS key URIs with a secret in them, and what the error must still name.
fn kms_cases() -> Vec<(String, &'static str)> {
    vec![
        (format!("awskms:///alias/k?password={S}"), "alias/k"),
        (
            format!("awskms:///alias/k?X-Amz-Security-Token={S}"),
            "alias/k",
        ),
        (
            format!("awskms:///alias/k?secret_access_key={S}"),
            "alias/k",
        ),
        (format!("awskms:///alias/k&password={S}"), "alias/k"),
        (format!("awskms:///alias/k;pin={S}"), "alias/k"),
        (format!("awskms:///alias/k#{S}"), "alias/k"),
        (format!("awskms:///alias/k?{S}"), "alias/k"),
        (format!("awskms://user:{S}@127.0.0.1:9/alias/k"), "alias/k"),
        (format!("awskms://{S}@127.0.0.1:9/alias/k"), "alias/k"),
        (
            format!("awskms://127.0.0.1:9/alias/k?password={S}"),
            "alias/k",
        ),
        (
            format!("arn:aws:kms:us-east-1:111122223333:alias/k?password={S}"),
            "alias/k",
        ),
        (
            format!("arn:aws:kms:us-east-1:111122223333:alias/k#{S}"),
            "alias/k",
        ),
    ]
}

#[test]
fn other_schemes() {
    check(&format!("gcpkms://projects/p?password={S}"), "gcpkms");
}
