//! Tests of the KMS backend against an in-process fake KMS (no network, no moto): what the
//! SDK sends, error mapping, concurrency limits, blocking/async use.

mod common;

use std::{sync::Arc, time::Duration};

use codeseal_kms::{KmsError, KmsKey, KmsKeyRef, KmsOptions};
use codeseal_signer::{verify_prehash, DigestAlgorithm, KeyKind, KeySigner, SignError};
use common::fake::{self, FakeKms};

const SECRET: &str = "offline-test-secret-key-0123456789";

fn key_ref(s: &str) -> KmsKeyRef {
    s.parse().expect("key ref")
}

async fn connect(fake: &FakeKms, r: &str, opts: &KmsOptions) -> Result<KmsKey, KmsError> {
    KmsKey::connect_with_sdk_config(&key_ref(r), &fake::sdk_config(fake, SECRET), opts).await
}

async fn connected(fake: &FakeKms, r: &str) -> KmsKey {
    connect(fake, r, &KmsOptions::default())
        .await
        .expect("connect")
}

/// The heart of the backend: Sign carries exactly the digest, as DIGEST, with the mapped
/// algorithm, on the key ARN (even when connected through an alias).
#[tokio::test]
async fn sign_request_carries_exactly_the_digest() {
    for (kind, digests) in [
        (
            KeyKind::Rsa { bits: 2048 },
            &[
                DigestAlgorithm::Sha256,
                DigestAlgorithm::Sha384,
                DigestAlgorithm::Sha512,
            ][..],
        ),
        (KeyKind::EcP256, &[DigestAlgorithm::Sha256][..]),
        (KeyKind::EcP384, &[DigestAlgorithm::Sha384][..]),
    ] {
        let fake = FakeKms::new(kind);
        let key = connected(&fake, fake::ALIAS).await;
        assert_eq!(key.key_kind(), kind);
        for &d in digests {
            let digest = d.digest(format!("payload {kind} {d}").as_bytes());
            let alg = kind.with_digest(d);
            let sig = <dyn KeySigner>::sign_digest_checked_async(&key, alg, &digest)
                .await
                .expect("sign");
            verify_prehash(key.public_key(), d, &digest, &sig).expect("verifies");

            let signs = fake.requests_of("Sign");
            let req = signs.last().expect("a Sign request");
            assert!(
                req.body.contains(r#""MessageType":"DIGEST""#),
                "{}",
                req.body
            );
            assert_eq!(req.json["MessageType"], "DIGEST");
            assert_eq!(
                req.json["Message"].as_str().expect("Message"),
                aws_smithy_types::base64::encode(&digest),
                "the Message is the digest itself, not the message or a hash of it"
            );
            let expected_alg = match (kind, d) {
                (KeyKind::Rsa { .. }, DigestAlgorithm::Sha256) => "RSASSA_PKCS1_V1_5_SHA_256",
                (KeyKind::Rsa { .. }, DigestAlgorithm::Sha384) => "RSASSA_PKCS1_V1_5_SHA_384",
                (KeyKind::Rsa { .. }, DigestAlgorithm::Sha512) => "RSASSA_PKCS1_V1_5_SHA_512",
                (KeyKind::EcP256, _) => "ECDSA_SHA_256",
                _ => "ECDSA_SHA_384",
            };
            assert_eq!(req.json["SigningAlgorithm"], expected_alg);
            assert_eq!(
                req.json["KeyId"],
                fake.key_arn(),
                "signs on the ARN, not the alias"
            );
            let keys: Vec<&str> = req
                .json
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                {
                    let mut k = keys.clone();
                    k.sort_unstable();
                    k
                },
                ["KeyId", "Message", "MessageType", "SigningAlgorithm"],
                "nothing else in the request"
            );
        }
        // DescribeKey and GetPublicKey exactly once, whatever the number of signatures.
        assert_eq!(fake.requests_of("DescribeKey").len(), 1);
        assert_eq!(fake.requests_of("GetPublicKey").len(), 1);
        assert_eq!(
            fake.requests_of("DescribeKey")[0].json["KeyId"],
            fake::ALIAS
        );
        assert_eq!(
            fake.requests_of("GetPublicKey")[0].json["KeyId"],
            fake.key_arn()
        );
    }
}

#[tokio::test]
async fn accessors_debug_and_describe() {
    let fake = FakeKms::new(KeyKind::EcP256);
    let key = connected(&fake, &format!("awskms:///{}", fake::ALIAS)).await;
    let arn = fake.key_arn();
    assert_eq!(key.arn(), arn);
    assert_eq!(key.key_spec().as_str(), "ECC_NIST_P256");
    assert_eq!(key.describe(), format!("awskms:///{arn}"));
    assert_eq!(key.requested_ref().key_id(), fake::ALIAS);
    assert_eq!(key.pinned_ref().key_id(), arn);
    let dbg = format!("{key:?}");
    assert_eq!(dbg, format!("KmsKey {{ arn: {arn:?}, kind: EcP256, .. }}"));
    assert!(!dbg.contains(SECRET));
    assert!(key.supports(KeyKind::EcP256.with_digest(DigestAlgorithm::Sha256)));
    assert!(!key.supports(KeyKind::EcP256.with_digest(DigestAlgorithm::Sha384)));
    assert!(!key.supports(KeyKind::EcP256.with_digest(DigestAlgorithm::Sha1)));
    assert!(!key.supports(KeyKind::EcP384.with_digest(DigestAlgorithm::Sha384)));
}

#[tokio::test]
async fn supports_follows_the_keys_signing_algorithms() {
    let rsa = KeyKind::Rsa { bits: 2048 };
    let fake = FakeKms::new(rsa).with_spec(|s| {
        s.signing_algorithms = vec!["RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PSS_SHA_256"]
    });
    let key = connected(&fake, fake::KEY_ID).await;
    assert!(key.supports(rsa.with_digest(DigestAlgorithm::Sha256)));
    assert!(!key.supports(rsa.with_digest(DigestAlgorithm::Sha384)));
    assert!(!key.supports(rsa.with_digest(DigestAlgorithm::Sha512)));
    assert!(!key.supports(rsa.with_digest(DigestAlgorithm::Sha1)));
    assert!(!key.supports(KeyKind::Rsa { bits: 4096 }.with_digest(DigestAlgorithm::Sha256)));
}

#[tokio::test]
async fn refused_requests_never_reach_kms() {
    let rsa = KeyKind::Rsa { bits: 2048 };
    let fake = FakeKms::new(rsa);
    let key = connected(&fake, fake::KEY_ID).await;
    let d = DigestAlgorithm::Sha256.digest(b"x");
    let ecdsa = KeyKind::EcP256.with_digest(DigestAlgorithm::Sha256);
    assert!(matches!(
        key.sign_digest(ecdsa, &d),
        Err(SignError::UnsupportedAlgorithm { .. })
    ));
    assert!(matches!(
        key.sign_digest_async(ecdsa, &d).await,
        Err(SignError::UnsupportedAlgorithm { .. })
    ));
    assert!(matches!(
        key.sign_digest(rsa.with_digest(DigestAlgorithm::Sha1), &[0; 20]),
        Err(SignError::UnsupportedAlgorithm { .. })
    ));
    assert!(matches!(
        key.sign_digest(rsa.with_digest(DigestAlgorithm::Sha384), &d),
        Err(SignError::DigestLength {
            expected: 48,
            actual: 32,
            ..
        })
    ));
    assert!(fake.requests_of("Sign").is_empty());
}

#[tokio::test]
async fn connect_errors_are_typed_and_clear() {
    let rsa = KeyKind::Rsa { bits: 2048 };

    // Unknown alias.
    let fake = FakeKms::new(rsa);
    let e = connect(&fake, "alias/nope", &KmsOptions::default())
        .await
        .expect_err("unknown alias");
    assert!(matches!(e, KmsError::NotFound { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("alias/nope") && msg.contains("not found"),
        "{msg}"
    );
    assert!(std::error::Error::source(&e).is_some());

    // Access denied (modelled by KMS as an unmodelled error code).
    let fake = FakeKms::new(rsa).with_error(
        "DescribeKey",
        400,
        "AccessDeniedException",
        "User: arn:aws:iam::111122223333:user/ci is not authorized to perform: kms:DescribeKey",
    );
    let e = connect(&fake, fake::ALIAS, &KmsOptions::default())
        .await
        .expect_err("denied");
    assert!(
        matches!(
            e,
            KmsError::AccessDenied {
                operation: "DescribeKey",
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("kms:DescribeKey, kms:GetPublicKey and kms:Sign"),
        "{msg}"
    );
    assert!(msg.contains("not authorized"), "{msg}");

    // Access denied on GetPublicKey only.
    let fake = FakeKms::new(rsa).with_error("GetPublicKey", 400, "AccessDeniedException", "no");
    let e = connect(&fake, fake::ALIAS, &KmsOptions::default())
        .await
        .expect_err("denied");
    assert!(
        matches!(
            e,
            KmsError::AccessDenied {
                operation: "GetPublicKey",
                ..
            }
        ),
        "{e:?}"
    );

    // Bad credentials.
    let fake = FakeKms::new(rsa).with_error(
        "DescribeKey",
        400,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    );
    let e = connect(&fake, fake::ALIAS, &KmsOptions::default())
        .await
        .expect_err("bad creds");
    assert!(matches!(e, KmsError::Credentials { .. }), "{e:?}");

    // Disabled and pending-deletion keys (moto cannot show these: its disabled keys sign).
    for state in ["Disabled", "PendingDeletion"] {
        let fake = FakeKms::new(rsa).with_spec(|s| s.key_state = state);
        let e = connect(&fake, fake::ALIAS, &KmsOptions::default())
            .await
            .expect_err("not enabled");
        assert!(matches!(e, KmsError::KeyNotEnabled { .. }), "{e:?}");
        assert!(e.to_string().contains(state), "{e}");
    }

    // A symmetric ENCRYPT_DECRYPT key.
    let fake = FakeKms::new(rsa).with_spec(|s| {
        s.key_usage = "ENCRYPT_DECRYPT";
        s.key_spec = "SYMMETRIC_DEFAULT";
        s.signing_algorithms = vec![];
    });
    let e = connect(&fake, fake::ALIAS, &KmsOptions::default())
        .await
        .expect_err("encrypt key");
    assert!(matches!(e, KmsError::WrongKeyUsage { .. }), "{e:?}");

    // An unsupported key spec.
    let fake = FakeKms::new(KeyKind::EcP256).with_spec(|s| s.key_spec = "ECC_SECG_P256K1");
    let e = connect(&fake, fake::ALIAS, &KmsOptions::default())
        .await
        .expect_err("secp256k1");
    assert!(matches!(e, KmsError::UnsupportedKeySpec { .. }), "{e:?}");

    // GetPublicKey returns a key that does not match the key spec.
    let fake = FakeKms::new(rsa).with_public_key_of(fake::local_key(KeyKind::EcP256));
    let e = connect(&fake, fake::ALIAS, &KmsOptions::default())
        .await
        .expect_err("mismatch");
    assert!(matches!(e, KmsError::InvalidResponse { .. }), "{e:?}");
    assert!(e.to_string().contains("RSA_2048"), "{e}");

    // Invalid options fail before any request.
    let fake = FakeKms::new(rsa);
    for opts in [
        KmsOptions::default().with_max_in_flight(0),
        KmsOptions::default().with_max_attempts(0),
        KmsOptions::default().with_endpoint_url("127.0.0.1:5000"),
        KmsOptions::default().with_region("us east"),
    ] {
        let e = connect(&fake, fake::ALIAS, &opts)
            .await
            .expect_err("bad options");
        assert!(matches!(e, KmsError::Config { .. }), "{e:?}");
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn sign_errors_keep_the_sdk_error_as_source() {
    let fake = FakeKms::new(KeyKind::EcP256).with_error(
        "Sign",
        400,
        "DisabledException",
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab is disabled.",
    );
    let key = connected(&fake, fake::ALIAS).await;
    let alg = KeyKind::EcP256.with_digest(DigestAlgorithm::Sha256);
    let e = key
        .sign_digest_async(alg, &[7; 32])
        .await
        .expect_err("disabled");
    let SignError::Backend {
        backend,
        ref message,
        ref source,
    } = e
    else {
        panic!("expected a backend error, got {e:?}")
    };
    assert_eq!(backend, "aws-kms");
    assert!(
        message.contains("Disabled") && message.contains("kms:EnableKey"),
        "{message}"
    );
    let source = source.as_ref().expect("the SDK error is kept");
    assert!(
        source
            .downcast_ref::<aws_sdk_kms::error::SdkError<
                aws_sdk_kms::operation::sign::SignError,
                aws_sdk_kms::config::http::HttpResponse,
            >>()
            .is_some(),
        "source is the SDK error: {source:?}"
    );

    let fake = FakeKms::new(KeyKind::EcP256).with_error(
        "Sign",
        400,
        "AccessDeniedException",
        "not authorized to perform: kms:Sign",
    );
    let key = connected(&fake, fake::ALIAS).await;
    let e = key.sign_digest(alg, &[7; 32]).expect_err("denied");
    assert!(
        e.to_string().contains("for Sign on key arn:aws:kms:"),
        "{e}"
    );
}

/// A KMS that signs with another key is caught by the core's checked signing.
#[tokio::test]
async fn wrong_signature_from_kms_is_caught() {
    let fake = FakeKms::new(KeyKind::EcP256).signing_with(Arc::new(
        codeseal_local::LocalKey::generate(KeyKind::EcP256).expect("key"),
    ));
    let key: Arc<dyn KeySigner> = Arc::new(connected(&fake, fake::ALIAS).await);
    let alg = KeyKind::EcP256.with_digest(DigestAlgorithm::Sha256);
    let e = key
        .sign_digest_checked_async(alg, &[1; 32])
        .await
        .expect_err("bad signature");
    assert!(matches!(e, SignError::BadSignatureFromKey { .. }), "{e:?}");
}

#[tokio::test]
async fn in_flight_sign_calls_are_bounded() {
    let fake = FakeKms::new(KeyKind::EcP256).with_delay(Duration::from_millis(50));
    let key = Arc::new(
        connect(
            &fake,
            fake::ALIAS,
            &KmsOptions::default().with_max_in_flight(3),
        )
        .await
        .expect("connect"),
    );
    let alg = KeyKind::EcP256.with_digest(DigestAlgorithm::Sha256);
    let mut tasks = Vec::new();
    for i in 0..12u8 {
        let key = Arc::clone(&key);
        tasks.push(tokio::spawn(async move {
            key.sign_digest_async(alg, &[i; 32]).await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("sign");
    }
    assert_eq!(fake.requests_of("Sign").len(), 12);
    assert_eq!(
        fake.max_in_flight(),
        3,
        "at most 3 Sign calls at once, and 3 used"
    );
}

/// Blocking signing works from a plain thread, from a current-thread runtime (whose only
/// thread is the one that blocks) and from a multi-thread runtime; and a key can be
/// dropped inside async code.
#[test]
fn blocking_sign_works_everywhere() {
    let fake = FakeKms::new(KeyKind::EcP384);
    let sdk = fake::sdk_config(&fake, SECRET);
    let alg = KeyKind::EcP384.with_digest(DigestAlgorithm::Sha384);
    let digest = DigestAlgorithm::Sha384.digest(b"blocking");

    // Connect from a plain thread with no runtime at all.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let key = Arc::new(
        rt.block_on(KmsKey::connect_with_sdk_config(
            &key_ref(fake::ALIAS),
            &sdk,
            &KmsOptions::default(),
        ))
        .expect("connect"),
    );
    drop(rt); // the key outlives the runtime it was connected from

    let sig = key.sign_digest(alg, &digest).expect("plain thread");
    verify_prehash(key.public_key(), DigestAlgorithm::Sha384, &digest, &sig).expect("verify");

    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let k = Arc::clone(&key);
    let d = digest.clone();
    current
        .block_on(async move { k.sign_digest(alg, &d) })
        .expect("inside a current-thread runtime");

    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let k = Arc::clone(&key);
    let d = digest.clone();
    multi.block_on(async move {
        let blocking = k
            .sign_digest(alg, &d)
            .expect("blocking in multi-thread runtime");
        let nonblocking = k.sign_digest_async(alg, &d).await.expect("async");
        (blocking, nonblocking)
    });

    // Dropping the last handle of a key inside async code must not panic.
    let k = Arc::clone(&key);
    drop(key);
    multi.block_on(async move { drop(k) });
    assert_eq!(fake.requests_of("Sign").len(), 4);
}

#[tokio::test]
async fn endpoint_region_and_fips_choices_reach_the_request() {
    let rsa = KeyKind::Rsa { bits: 2048 };

    // Default: the regional endpoint of the configured region.
    let fake = FakeKms::new(rsa);
    connected(&fake, fake::ALIAS).await;
    assert!(
        fake.requests()[0]
            .uri
            .starts_with("https://kms.us-east-1.amazonaws.com"),
        "{}",
        fake.requests()[0].uri
    );

    // FIPS.
    let fake = FakeKms::new(rsa);
    connect(&fake, fake::ALIAS, &KmsOptions::default().with_fips(true))
        .await
        .expect("connect");
    assert!(
        fake.requests()[0]
            .uri
            .starts_with("https://kms-fips.us-east-1.amazonaws.com"),
        "{}",
        fake.requests()[0].uri
    );

    // The region of a key ARN wins over the configured one...
    let fake = FakeKms::in_region(rsa, "eu-west-1");
    let key = connected(&fake, &fake.key_arn()).await;
    assert!(
        fake.requests()[0]
            .uri
            .starts_with("https://kms.eu-west-1.amazonaws.com"),
        "{}",
        fake.requests()[0].uri
    );
    key.sign_digest(rsa.with_digest(DigestAlgorithm::Sha256), &[3; 32])
        .expect("sign");
    assert!(fake.requests_of("Sign")[0]
        .uri
        .starts_with("https://kms.eu-west-1.amazonaws.com"));
    // ...and an explicit region wins over the ARN's.
    let fake = FakeKms::in_region(rsa, "eu-west-1");
    let _ = connect(
        &fake,
        &fake.key_arn(),
        &KmsOptions::default().with_region("ap-south-1"),
    )
    .await;
    assert!(fake.requests()[0]
        .uri
        .starts_with("https://kms.ap-south-1.amazonaws.com"));

    // awskms://HOST:PORT/ beats the endpoint option.
    let fake = FakeKms::new(rsa);
    connect(
        &fake,
        &format!("awskms://127.0.0.1:4566/{}", fake::ALIAS),
        &KmsOptions::default().with_endpoint_url("https://vpce.example.com"),
    )
    .await
    .expect("connect");
    assert!(
        fake.requests()[0].uri.starts_with("http://127.0.0.1:4566"),
        "{}",
        fake.requests()[0].uri
    );
    let fake = FakeKms::new(rsa);
    connect(
        &fake,
        fake::ALIAS,
        &KmsOptions::default().with_endpoint_url("https://vpce.example.com"),
    )
    .await
    .expect("connect");
    assert!(fake.requests()[0]
        .uri
        .starts_with("https://vpce.example.com"));
}

#[tokio::test]
async fn sign_is_traced_with_key_algorithm_and_request_id() {
    let logs = fake::LogBuffer::default();
    let _guard = tracing::subscriber::set_default(fake::capture_logs(&logs));
    let fake = FakeKms::new(KeyKind::EcP256);
    let key = connected(&fake, fake::ALIAS).await;
    key.sign_digest_async(
        KeyKind::EcP256.with_digest(DigestAlgorithm::Sha256),
        &[9; 32],
    )
    .await
    .expect("sign");
    let text = logs.contents();
    let line = text
        .lines()
        .find(|l| l.contains(" kms_sign{") && l.contains("codeseal_kms") && l.contains("close"))
        .unwrap_or_else(|| panic!("no kms_sign span close in:\n{text}"));
    assert!(line.contains(&fake.key_arn()), "{line}");
    assert!(line.contains("ECDSA_SHA_256"), "{line}");
    assert!(
        line.contains("request_id=\"fake-request-") || line.contains("request_id=fake-request-"),
        "{line}"
    );
    assert!(line.contains("duration_ms="), "{line}");
    assert!(
        text.contains(&"09".repeat(32)),
        "the digest is logged for audit: {text}"
    );
    assert!(!text.contains(SECRET));
}
