//! Tests that change process environment variables (AWS credentials, FIPS): one test
//! function in its own binary, so no other test reads the environment meanwhile.
//!
//! Every test that lets the default credential chain run must set
//! AWS_EC2_METADATA_DISABLED=true first: otherwise the chain probes the EC2 instance
//! metadata service (169.254.169.254), which is off limits for tests.

mod common;

use std::time::Duration;

use codeseal_kms::{load_sdk_config, KmsError, KmsKey, KmsKeyRef, KmsOptions};
use codeseal_signer::{DigestAlgorithm, KeyKind, KeySigner};
use common::fake::{self, FakeKms};

const SENTINEL_ID: &str = "AKIASENTINEL7777ABCD";
const SENTINEL_SECRET: &str = "SENTINEL-secret/Do+Not+Print-4f1c2e9a8b";
const PROFILE_SECRET: &str = "SENTINEL-profile-secret-77e1d0c3";

/// Every string that must never show a secret.
fn assert_clean(what: &str, text: &str) {
    for s in [SENTINEL_SECRET, PROFILE_SECRET] {
        assert!(!text.contains(s), "{what} contains a secret key:\n{text}");
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("{e}\n{e:?}");
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(&format!("\n{s}\n{s:?}"));
        cur = s.source();
    }
    out
}

fn clear_aws_env() {
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            std::env::remove_var(k);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_leak_and_env_settings_apply() {
    clear_aws_env();
    let dir = std::env::temp_dir().join(format!("codeseal-kms-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    // No shared files of the machine: our own, with a profile holding another sentinel.
    std::fs::write(
        dir.join("config"),
        "[profile sentinel]\nregion = us-east-1\n",
    )
    .expect("config");
    std::fs::write(
        dir.join("credentials"),
        format!(
            "[sentinel]\naws_access_key_id = AKIAPROFILE0000ABCD\naws_secret_access_key = {PROFILE_SECRET}\n"
        ),
    )
    .expect("credentials");
    std::env::set_var("AWS_CONFIG_FILE", dir.join("config"));
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials"));
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_ACCESS_KEY_ID", SENTINEL_ID);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SENTINEL_SECRET);
    std::env::set_var("AWS_REGION", "us-east-1");

    let logs = fake::LogBuffer::default();
    let _guard = tracing::subscriber::set_default(fake::capture_logs(&logs));

    // 1. The production path (default chain from the environment), against a closed port:
    //    the error must be clear and clean.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let r: KmsKeyRef = format!("awskms://127.0.0.1:{port}/alias/release")
        .parse()
        .expect("ref");
    let opts = KmsOptions::default()
        .with_max_attempts(1)
        .with_connect_timeout(Duration::from_secs(2));
    let e = KmsKey::connect(&r, &opts).await.expect_err("closed port");
    assert!(matches!(e, KmsError::Connect { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("http://127.0.0.1:{port}")), "{msg}");
    assert_clean("connect error", &error_chain(&e));
    let se: codeseal_signer::SignError = e.into();
    assert_clean("SignError", &error_chain(&se));
    // The blocking constructor, called inside this (tokio) runtime: no panic, no hang.
    let e = KmsKey::connect_blocking(&r, &opts).expect_err("closed port");
    assert!(matches!(e, KmsError::Connect { .. }), "{e:?}");
    assert_clean("connect_blocking error", &error_chain(&e));

    // 2. The default chain's credentials, a working (fake) KMS: the key's Debug, describe,
    //    signatures and logs never show the secret, though the credentials are used.
    let fake = FakeKms::new(KeyKind::EcP256).with_error(
        "Sign",
        400,
        "AccessDeniedException",
        "not authorized to perform kms:Sign",
    );
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(fake.clone())
        .load()
        .await;
    let key = KmsKey::connect_with_sdk_config(&fake::ALIAS.parse().expect("ref"), &sdk, &opts)
        .await
        .expect("connect");
    let auth = fake.requests()[0]
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone())
        .expect("signed request");
    assert!(
        auth.contains(SENTINEL_ID),
        "the sentinel credentials were the ones used: {auth}"
    );
    assert_clean("Debug", &format!("{key:?}"));
    assert_clean("describe", &key.describe());
    let e = key
        .sign_digest_async(
            KeyKind::EcP256.with_digest(DigestAlgorithm::Sha256),
            &[5; 32],
        )
        .await
        .expect_err("denied");
    assert!(e.to_string().contains("access denied"), "{e}");
    assert_clean("sign error", &error_chain(&e));
    for r in fake.requests() {
        assert_clean("request", &format!("{r:?}"));
    }

    // 3. A named profile from the shared files (env credentials removed).
    std::env::remove_var("AWS_ACCESS_KEY_ID");
    std::env::remove_var("AWS_SECRET_ACCESS_KEY");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .profile_name("sentinel")
        .http_client(fake.clone())
        .load()
        .await;
    let key = KmsKey::connect_with_sdk_config(&fake::ALIAS.parse().expect("ref"), &sdk, &opts)
        .await
        .expect("connect");
    assert_clean("Debug", &format!("{key:?}"));
    let e = KmsKey::connect(&r, &opts.clone().with_profile("sentinel"))
        .await
        .expect_err("closed port");
    assert_clean("connect error (profile)", &error_chain(&e));

    // 4. Logs: something was captured (so the check means something), no secret in it.
    let text = logs.contents();
    assert!(
        text.contains("kms_sign"),
        "no sign span in the logs:\n{text}"
    );
    assert!(
        text.contains("DescribeKey") || text.contains("describe"),
        "{text}"
    );
    assert_clean("logs", &text);

    // 5. AWS_USE_FIPS_ENDPOINT=true is honoured through aws-config.
    std::env::set_var("AWS_PROFILE", "sentinel");
    std::env::set_var("AWS_USE_FIPS_ENDPOINT", "true");
    let loaded = load_sdk_config(&KmsOptions::default()).await;
    assert_eq!(loaded.use_fips(), Some(true));
    let fake = FakeKms::new(KeyKind::EcP256);
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(fake.clone())
        .load()
        .await;
    KmsKey::connect_with_sdk_config(
        &fake::ALIAS.parse().expect("ref"),
        &sdk,
        &KmsOptions::default(),
    )
    .await
    .expect("connect");
    assert!(
        fake.requests()[0]
            .uri
            .starts_with("https://kms-fips.us-east-1.amazonaws.com"),
        "{}",
        fake.requests()[0].uri
    );
    // An explicit option beats the environment.
    let loaded = load_sdk_config(&KmsOptions::default().with_fips(false)).await;
    assert_eq!(loaded.use_fips(), Some(false));
    std::env::remove_var("AWS_USE_FIPS_ENDPOINT");

    let _ = std::fs::remove_dir_all(&dir);
}
