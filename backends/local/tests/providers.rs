//! The crypto providers against OpenSSL and against each other: RSA PKCS#1 v1.5 is
//! deterministic, so both providers must give OpenSSL's exact bytes (known answers); ECDSA
//! signatures are randomized, so OpenSSL verifies them, and a changed digest must not verify.
//! Keys are made by `openssl genpkey` (PKCS#8) and read back in their traditional forms
//! (PKCS#1, SEC1) too.
use std::{path::Path, process::Command};

use codeseal_local::{provider::CryptoProvider, LocalKey};
use codeseal_signer::{DigestAlgorithm, KeyKind, KeySigner};

fn openssl(args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (scripts/setup.sh)");
    out
}

fn openssl_ok(args: &[&str]) {
    let out = openssl(args);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The providers under test: the default one (aws-lc-rs in a default build) and RustCrypto
/// when it is built.
fn providers() -> Vec<&'static dyn CryptoProvider> {
    #[allow(unused_mut)]
    let mut v: Vec<&'static dyn CryptoProvider> =
        vec![codeseal_local::provider::default_provider()];
    #[cfg(feature = "provider-rustcrypto")]
    if v[0].name() != codeseal_local::provider::RUSTCRYPTO.name() {
        v.push(&codeseal_local::provider::RUSTCRYPTO);
    }
    v
}

fn ossl_digest(d: DigestAlgorithm) -> &'static str {
    match d {
        DigestAlgorithm::Sha1 => "sha1",
        DigestAlgorithm::Sha256 => "sha256",
        DigestAlgorithm::Sha384 => "sha384",
        DigestAlgorithm::Sha512 => "sha512",
    }
}

/// Loads `pem` and checks that the traditional form (PKCS#1 / SEC1) gives the same key.
fn load_both_forms(dir: &Path, pem: &Path) -> LocalKey {
    let key = LocalKey::from_file(pem, None).expect("load PKCS#8").key;
    let trad = dir.join("trad.pem");
    openssl_ok(&["pkey", "-in", s(pem), "-traditional", "-out", s(&trad)]);
    let text = std::fs::read_to_string(&trad).expect("read");
    assert!(
        text.contains("BEGIN RSA PRIVATE KEY") || text.contains("BEGIN EC PRIVATE KEY"),
        "{}",
        &text[..40]
    );
    let back = LocalKey::from_file(&trad, None)
        .expect("load traditional")
        .key;
    assert_eq!(back.public_key(), key.public_key());
    key
}

#[test]
fn rsa_pkcs1v15_signatures_equal_openssl_pkeyutl() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bits in [2048u32, 3072, 4096] {
        let pem = dir.path().join(format!("rsa{bits}.pem"));
        openssl_ok(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
            "-out",
            s(&pem),
        ]);
        let key = load_both_forms(dir.path(), &pem);
        assert_eq!(key.key_kind(), KeyKind::Rsa { bits });
        for d in DigestAlgorithm::ALL {
            if !key.supports(key.key_kind().with_digest(d)) {
                // RSA with SHA-1 in a build with aws-lc-rs only: refused, typed.
                assert!(d == DigestAlgorithm::Sha1 && !cfg!(feature = "provider-rustcrypto"));
                assert!(key
                    .sign_digest(key.key_kind().with_digest(d), &d.digest(b"x"))
                    .is_err());
                continue;
            }
            let digest = d.digest(format!("known answer {bits} {d}").as_bytes());
            let (din, sout) = (dir.path().join("digest"), dir.path().join("sig"));
            std::fs::write(&din, &digest).expect("write");
            openssl_ok(&[
                "pkeyutl",
                "-sign",
                "-inkey",
                s(&pem),
                "-pkeyopt",
                &format!("digest:{}", ossl_digest(d)),
                "-in",
                s(&din),
                "-out",
                s(&sout),
            ]);
            let expected = std::fs::read(&sout).expect("read");
            assert_eq!(expected.len() * 8, bits as usize);
            let alg = key.key_kind().with_digest(d);
            for p in providers() {
                let k = key.with_provider(p).expect("convert");
                let sig = k.sign_digest(alg, &digest).expect("sign");
                assert_eq!(
                    sig,
                    expected,
                    "RSA-{bits} {d} through {} ({})",
                    p.name(),
                    k.backend_for(alg)
                );
            }
        }
    }
}

#[test]
fn ecdsa_signatures_verify_in_openssl() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (curve, kind) in [("P-256", KeyKind::EcP256), ("P-384", KeyKind::EcP384)] {
        let pem = dir.path().join(format!("{curve}.pem"));
        let public = dir.path().join(format!("{curve}.pub.pem"));
        openssl_ok(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{curve}"),
            "-out",
            s(&pem),
        ]);
        openssl_ok(&["pkey", "-in", s(&pem), "-pubout", "-out", s(&public)]);
        let key = load_both_forms(dir.path(), &pem);
        assert_eq!(key.key_kind(), kind);
        for d in DigestAlgorithm::ALL
            .into_iter()
            .filter(|d| kind.can_sign(*d))
        {
            let alg = kind.with_digest(d);
            let digest = d.digest(format!("ecdsa {curve} {d}").as_bytes());
            let mut other = digest.clone();
            other[0] ^= 0x80;
            let (din, dother, sig_path) = (
                dir.path().join("digest"),
                dir.path().join("other"),
                dir.path().join("sig"),
            );
            std::fs::write(&din, &digest).expect("write");
            std::fs::write(&dother, &other).expect("write");
            for p in providers() {
                let k = key.with_provider(p).expect("convert");
                let sig = k.sign_digest(alg, &digest).expect("sign");
                // DER Ecdsa-Sig-Value: SEQUENCE { r INTEGER, s INTEGER }.
                assert_eq!(sig[0], 0x30, "{curve} {d} {}: not DER", p.name());
                std::fs::write(&sig_path, &sig).expect("write");
                let verify = |input: &Path| {
                    openssl(&[
                        "pkeyutl",
                        "-verify",
                        "-pubin",
                        "-inkey",
                        s(&public),
                        "-in",
                        s(input),
                        "-sigfile",
                        s(&sig_path),
                    ])
                };
                let good = verify(&din);
                assert!(
                    good.status.success(),
                    "{curve} {d} through {} ({}): {}",
                    p.name(),
                    k.backend_for(alg),
                    String::from_utf8_lossy(&good.stdout)
                );
                assert!(
                    !verify(&dother).status.success(),
                    "{curve} {d}: a changed digest verified"
                );
            }
        }
    }
}

/// Verifies with aws-lc-rs (ring's API: the raw public key, not the SPKI).
#[cfg(all(feature = "provider-aws-lc", feature = "provider-rustcrypto"))]
fn verify_aws_lc(key: &LocalKey, d: DigestAlgorithm, digest: &[u8], sig: &[u8]) -> bool {
    use aws_lc_rs::{digest as lcd, signature as lc};
    let lc_digest = match d {
        DigestAlgorithm::Sha1 => &lcd::SHA1_FOR_LEGACY_USE_ONLY,
        DigestAlgorithm::Sha256 => &lcd::SHA256,
        DigestAlgorithm::Sha384 => &lcd::SHA384,
        DigestAlgorithm::Sha512 => &lcd::SHA512,
    };
    let alg: &'static dyn lc::VerificationAlgorithm = match (key.key_kind(), d) {
        (KeyKind::Rsa { .. }, DigestAlgorithm::Sha1) => {
            &lc::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        (KeyKind::Rsa { .. }, DigestAlgorithm::Sha256) => &lc::RSA_PKCS1_2048_8192_SHA256,
        (KeyKind::Rsa { .. }, DigestAlgorithm::Sha384) => &lc::RSA_PKCS1_2048_8192_SHA384,
        (KeyKind::Rsa { .. }, DigestAlgorithm::Sha512) => &lc::RSA_PKCS1_2048_8192_SHA512,
        (KeyKind::EcP256, DigestAlgorithm::Sha1) => &lc::ECDSA_P256_SHA1_ASN1,
        (KeyKind::EcP256, DigestAlgorithm::Sha256) => &lc::ECDSA_P256_SHA256_ASN1,
        (KeyKind::EcP256, DigestAlgorithm::Sha384) => &lc::ECDSA_P256_SHA384_ASN1,
        (KeyKind::EcP256, DigestAlgorithm::Sha512) => &lc::ECDSA_P256_SHA512_ASN1,
        (KeyKind::EcP384, DigestAlgorithm::Sha256) => &lc::ECDSA_P384_SHA256_ASN1,
        (KeyKind::EcP384, DigestAlgorithm::Sha384) => &lc::ECDSA_P384_SHA384_ASN1,
        (KeyKind::EcP384, DigestAlgorithm::Sha512) => &lc::ECDSA_P384_SHA512_ASN1,
        other => panic!("no aws-lc verifier for {other:?}"),
    };
    let raw = key.public_key().subject_public_key.raw_bytes();
    let imported = lcd::Digest::import_less_safe(digest, lc_digest).expect("digest length");
    lc::UnparsedPublicKey::new(alg, raw)
        .verify_digest(&imported, sig)
        .is_ok()
}

#[cfg(all(feature = "provider-aws-lc", feature = "provider-rustcrypto"))]
#[test]
fn each_providers_signatures_verify_with_the_others_verifier() {
    use codeseal_local::provider::{AWS_LC, RUSTCRYPTO};
    for kind in [
        KeyKind::Rsa { bits: 2048 },
        KeyKind::EcP256,
        KeyKind::EcP384,
    ] {
        let key = LocalKey::generate_with(kind, &AWS_LC).expect("generate");
        for d in DigestAlgorithm::ALL
            .into_iter()
            .filter(|d| kind.can_sign(*d))
        {
            let alg = kind.with_digest(d);
            let digest = d.digest(format!("cross {kind} {d}").as_bytes());
            let mut other = digest.clone();
            other[1] ^= 1;
            for p in [&AWS_LC as &'static dyn CryptoProvider, &RUSTCRYPTO] {
                let k = key.with_provider(p).expect("convert");
                let sig = k.sign_digest(alg, &digest).expect("sign");
                // RustCrypto's verifier (the one codeseal checks every signature with) ...
                codeseal_signer::verify_prehash(key.public_key(), d, &digest, &sig)
                    .expect("rustcrypto verifies");
                assert!(
                    codeseal_signer::verify_prehash(key.public_key(), d, &other, &sig).is_err()
                );
                // ... and aws-lc's.
                assert!(
                    verify_aws_lc(&key, d, &digest, &sig),
                    "{kind} {d} from {}: aws-lc does not verify",
                    p.name()
                );
                assert!(!verify_aws_lc(&key, d, &other, &sig));
            }
        }
    }
}

/// Which implementation signs what, as documented in `codeseal_local::provider`.
#[cfg(all(feature = "provider-aws-lc", feature = "provider-rustcrypto"))]
#[test]
fn aws_lc_signs_everything_but_rsa_sha1() {
    use codeseal_local::provider::AWS_LC;
    let rsa = LocalKey::generate_with(KeyKind::Rsa { bits: 2048 }, &AWS_LC).expect("generate");
    let p256 = LocalKey::generate_with(KeyKind::EcP256, &AWS_LC).expect("generate");
    let p384 = LocalKey::generate_with(KeyKind::EcP384, &AWS_LC).expect("generate");
    for d in DigestAlgorithm::ALL {
        let want = if d == DigestAlgorithm::Sha1 {
            "rustcrypto"
        } else {
            "aws-lc-rs"
        };
        assert_eq!(rsa.backend_for(rsa.key_kind().with_digest(d)), want, "{d}");
        assert_eq!(
            p256.backend_for(KeyKind::EcP256.with_digest(d)),
            "aws-lc-rs"
        );
        assert_eq!(
            p384.backend_for(KeyKind::EcP384.with_digest(d)),
            "aws-lc-rs"
        );
    }
    assert_eq!(rsa.provider().name(), "aws-lc-rs");
    let dbg = format!("{rsa:?}");
    assert!(
        dbg.contains("aws-lc-rs") && !dbg.contains("PRIVATE"),
        "{dbg}"
    );
}
