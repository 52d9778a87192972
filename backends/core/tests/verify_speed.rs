#![cfg(feature = "aws-lc")]
//! Verification speed, RustCrypto (`rsa`, `p256`, `p384`) against aws-lc-rs, for a signature
//! over a precomputed SHA-256/384 digest, through codeseal's `Verifier` (its checks and the
//! key decoding included) and each library alone. Not a criterion bench: an ignored test
//! that prints. Needs the default feature `aws-lc`.
//!
//! ```text
//! cargo test --workspace --test verify_speed -- --ignored --nocapture
//! ```
//!
//! (dependencies are built with opt-level 3 in the dev profile; see the workspace Cargo.toml).
use std::time::{Duration, Instant};

use aws_lc_rs::{
    digest,
    encoding::AsDer,
    rsa::KeySize,
    signature::{
        self as lc, EcdsaKeyPair, KeyPair, ParsedPublicKey, RsaKeyPair, UnparsedPublicKey,
    },
};
use codeseal_signer::{DigestAlgorithm, Verifier};
use der::{Decode, Encode};
use rsa::{pkcs8::DecodePublicKey, Pkcs1v15Sign, RsaPublicKey};
use signature::hazmat::PrehashVerifier;
use spki::SubjectPublicKeyInfoOwned;

/// Calls `f` until `budget` has passed (at least 20 times); verifications per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u32;
    while n < 20 || start.elapsed() < budget {
        f();
        n += 1;
    }
    f64::from(n) / start.elapsed().as_secs_f64()
}

struct Case {
    name: &'static str,
    spki: SubjectPublicKeyInfoOwned,
    alg: DigestAlgorithm,
    digest: Vec<u8>,
    sig: Vec<u8>,
    lc_alg: &'static dyn lc::VerificationAlgorithm,
    lc_digest: &'static digest::Algorithm,
}

fn rsa_case(name: &'static str, size: KeySize) -> Case {
    let key = RsaKeyPair::generate(size).expect("generate");
    let digest = DigestAlgorithm::Sha256.digest(b"codeseal verify bench");
    let d = digest::Digest::import_less_safe(&digest, &digest::SHA256).expect("digest");
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign_digest(&lc::RSA_PKCS1_SHA256, &d, &mut sig)
        .expect("sign");
    let spki_der = key.public_key().as_der().expect("der");
    Case {
        name,
        spki: SubjectPublicKeyInfoOwned::from_der(spki_der.as_ref()).expect("spki"),
        alg: DigestAlgorithm::Sha256,
        digest,
        sig,
        lc_alg: &lc::RSA_PKCS1_2048_8192_SHA256,
        lc_digest: &digest::SHA256,
    }
}

fn ec_case(
    name: &'static str,
    signing: &'static lc::EcdsaSigningAlgorithm,
    lc_alg: &'static dyn lc::VerificationAlgorithm,
    alg: DigestAlgorithm,
    lc_digest: &'static digest::Algorithm,
) -> Case {
    let key = EcdsaKeyPair::generate(signing).expect("generate");
    let digest = alg.digest(b"codeseal verify bench");
    let d = digest::Digest::import_less_safe(&digest, lc_digest).expect("digest");
    let sig = key.sign_digest(&d).expect("sign").as_ref().to_vec();
    let spki_der = key.public_key().as_der().expect("der");
    Case {
        name,
        spki: SubjectPublicKeyInfoOwned::from_der(spki_der.as_ref()).expect("spki"),
        alg,
        digest,
        sig,
        lc_alg,
        lc_digest,
    }
}

#[test]
#[ignore = "prints a measurement; run with --ignored --nocapture"]
fn verify_speed() {
    let budget = Duration::from_millis(
        std::env::var("CODESEAL_BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(700),
    );
    let cases = [
        rsa_case("RSA-2048", KeySize::Rsa2048),
        rsa_case("RSA-4096", KeySize::Rsa4096),
        ec_case(
            "P-256",
            &lc::ECDSA_P256_SHA256_ASN1_SIGNING,
            &lc::ECDSA_P256_SHA256_ASN1,
            DigestAlgorithm::Sha256,
            &digest::SHA256,
        ),
        ec_case(
            "P-384",
            &lc::ECDSA_P384_SHA384_ASN1_SIGNING,
            &lc::ECDSA_P384_SHA384_ASN1,
            DigestAlgorithm::Sha384,
            &digest::SHA384,
        ),
    ];
    println!(
        "| key | codeseal, RustCrypto | codeseal, aws-lc-rs | RustCrypto alone, key parsed once | aws-lc-rs UnparsedPublicKey::verify_digest | aws-lc-rs ParsedPublicKey (parsed once) |"
    );
    println!("|---|---|---|---|---|---|");
    for c in &cases {
        let spki_der = c.spki.to_der().expect("der");
        let raw = c.spki.subject_public_key.raw_bytes().to_vec();
        let d = digest::Digest::import_less_safe(&c.digest, c.lc_digest).expect("digest");
        // Every variant must accept the signature, or the numbers mean nothing.
        for v in Verifier::ALL {
            v.verify_prehash(&c.spki, c.alg, &c.digest, &c.sig)
                .expect("codeseal verifies");
        }
        UnparsedPublicKey::new(c.lc_alg, &raw)
            .verify_digest(&d, &c.sig)
            .expect("aws-lc verifies");
        let parsed = ParsedPublicKey::new(c.lc_alg, &raw).expect("parse");
        parsed
            .verify_digest_sig(&d, &c.sig)
            .expect("aws-lc verifies");

        let codeseal = rate(budget, || {
            Verifier::RustCrypto
                .verify_prehash(&c.spki, c.alg, &c.digest, &c.sig)
                .expect("verify");
        });
        let codeseal_lc = rate(budget, || {
            Verifier::AwsLc
                .verify_prehash(&c.spki, c.alg, &c.digest, &c.sig)
                .expect("verify");
        });
        let rc_once: f64 = if c.name.starts_with("RSA") {
            let k = RsaPublicKey::from_public_key_der(&spki_der).expect("key");
            rate(budget, || {
                k.verify(Pkcs1v15Sign::new::<sha2::Sha256>(), &c.digest, &c.sig)
                    .expect("verify");
            })
        } else if c.name == "P-256" {
            let k = p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der).expect("key");
            rate(budget, || {
                let s = p256::ecdsa::Signature::from_der(&c.sig).expect("sig");
                k.verify_prehash(&c.digest, &s).expect("verify");
            })
        } else {
            let k = p384::ecdsa::VerifyingKey::from_public_key_der(&spki_der).expect("key");
            rate(budget, || {
                let s = p384::ecdsa::Signature::from_der(&c.sig).expect("sig");
                k.verify_prehash(&c.digest, &s).expect("verify");
            })
        };
        let lc_unparsed = rate(budget, || {
            UnparsedPublicKey::new(c.lc_alg, &raw)
                .verify_digest(&d, &c.sig)
                .expect("verify");
        });
        let lc_parsed = rate(budget, || {
            parsed.verify_digest_sig(&d, &c.sig).expect("verify");
        });
        println!(
            "| {} | {codeseal:.0}/s | {codeseal_lc:.0}/s | {rc_once:.0}/s | {lc_unparsed:.0}/s | {lc_parsed:.0}/s |",
            c.name
        );
    }
}
