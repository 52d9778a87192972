//! Integration tests against a real moto_server (AWS KMS emulator), started by this test
//! binary through `scripts/moto.sh` once, and stopped by moto.sh's watchdog as soon as this
//! process exits (however it exits: success, panic, abort or kill).
//!
//! moto must come from `scripts/setup.sh` (venv with moto[server]==5.2.5, patched by
//! `scripts/patch-moto.py` so that Sign honours MessageType=DIGEST). Without it these tests
//! FAIL, they do not skip.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use codeseal_kms::{KmsError, KmsKey, KmsKeyRef, KmsOptions};
use codeseal_signer::{verify_prehash, DigestAlgorithm, KeyKind, KeySigner, SignError};
use der::Decode;
use spki::SubjectPublicKeyInfoOwned;

struct Moto {
    dir: PathBuf,
    port: u16,
}

impl Moto {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch_dir(name: &str) -> PathBuf {
    let base = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    remove_stale_scratch_dirs(&base);
    let dir = base.join(format!("moto-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Removes `moto-*-PID` directories of earlier test runs whose process is gone (their
/// moto_server was stopped by the watchdog when that process exited).
fn remove_stale_scratch_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("moto-")
            .and_then(|rest| rest.rsplit_once('-'))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Starts a moto_server through scripts/moto.sh; panics with moto.sh's message (which says
/// to run scripts/setup.sh) when moto is missing.
fn start_moto(name: &str, digest_mode: &str) -> (Moto, HashMap<String, String>) {
    let dir = scratch_dir(name);
    let script = repo_root().join("scripts/moto.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(&dir)
        .env("MOTO_KMS_DIGEST", digest_mode)
        .env("CODESEAL_MOTO_WATCH_PID", std::process::id().to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/moto.sh start failed (moto is part of the test infrastructure: run \
         scripts/setup.sh first):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let env_text = std::fs::read_to_string(dir.join("moto.env")).expect("moto.env");
    let env: HashMap<String, String> = env_text
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let port = env["MOTO_PORT"].parse().expect("port");
    (Moto { dir, port }, env)
}

fn stop_moto(m: &Moto) {
    let _ = Command::new("bash")
        .arg(repo_root().join("scripts/moto.sh"))
        .arg("stop")
        .arg(&m.dir)
        .output();
}

/// The shared, patched moto of this test binary. The first caller starts it and points the
/// AWS environment variables of this process at it (before any test builds an AWS client:
/// every test calls this first).
fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let (m, env) = start_moto("shared", "aws");
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                std::env::remove_var(k);
            }
        }
        for (k, v) in env {
            std::env::set_var(k, v);
        }
        m
    })
}

async fn admin() -> aws_sdk_kms::Client {
    moto();
    aws_sdk_kms::Client::new(
        &aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await,
    )
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

struct TestKey {
    arn: String,
    key_id: String,
    alias: String,
    alias_arn: String,
    spki_der: Vec<u8>,
}

async fn create_key(client: &aws_sdk_kms::Client, spec: KeySpec, usage: KeyUsageType) -> TestKey {
    let meta = client
        .create_key()
        .key_usage(usage.clone())
        .key_spec(spec.clone())
        .description("codeseal test key")
        .send()
        .await
        .expect("CreateKey")
        .key_metadata
        .expect("metadata");
    let arn = meta.arn().expect("arn").to_owned();
    let alias = format!("alias/{}", unique(&spec.as_str().to_ascii_lowercase()));
    client
        .create_alias()
        .alias_name(&alias)
        .target_key_id(meta.key_id())
        .send()
        .await
        .expect("CreateAlias");
    let account = arn.split(':').nth(4).expect("account");
    let alias_arn = format!("arn:aws:kms:us-east-1:{account}:{alias}");
    let spki_der = if usage == KeyUsageType::SignVerify {
        client
            .get_public_key()
            .key_id(&arn)
            .send()
            .await
            .expect("GetPublicKey")
            .public_key
            .expect("public key")
            .into_inner()
    } else {
        Vec::new()
    };
    TestKey {
        arn,
        key_id: meta.key_id().to_owned(),
        alias,
        alias_arn,
        spki_der,
    }
}

fn kref(s: &str) -> KmsKeyRef {
    s.parse().expect("key ref")
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Connects through alias name, alias ARN, key ARN and `awskms://127.0.0.1:PORT/alias/..`,
/// signs every digest the key supports and checks each signature with the public key that
/// GetPublicKey returns.
async fn sign_and_verify_all_forms(spec: KeySpec, kind: KeyKind, digests: &[DigestAlgorithm]) {
    let client = admin().await;
    let m = moto();
    let k = create_key(&client, spec, KeyUsageType::SignVerify).await;
    let spki = SubjectPublicKeyInfoOwned::from_der(&k.spki_der).expect("spki");
    let uri = format!("awskms://127.0.0.1:{}/{}", m.port, k.alias);
    let forms: [(&str, KmsOptions); 4] = [
        (&k.alias, KmsOptions::default()),
        (&k.alias_arn, KmsOptions::default()),
        (&k.arn, KmsOptions::default()),
        // The URI's endpoint must win over the option (which points nowhere).
        (
            &uri,
            KmsOptions::default().with_endpoint_url(format!("http://127.0.0.1:{}", closed_port())),
        ),
    ];
    for (r, opts) in forms {
        let key = KmsKey::connect(&kref(r), &opts)
            .await
            .unwrap_or_else(|e| panic!("connect {r}: {e}"));
        assert_eq!(key.arn(), k.arn, "{r}");
        assert_eq!(key.key_kind(), kind, "{r}");
        assert_eq!(key.public_key(), &spki, "{r}: the SPKI is GetPublicKey's");
        for &d in digests {
            let alg = kind.with_digest(d);
            assert!(key.supports(alg), "{r} {alg}");
            let digest = d.digest(format!("{r} {d}").as_bytes());
            let sig = key
                .sign_digest_async(alg, &digest)
                .await
                .unwrap_or_else(|e| panic!("sign {r} {alg}: {e}"));
            verify_prehash(&spki, d, &digest, &sig)
                .unwrap_or_else(|e| panic!("{r} {alg}: signature does not verify: {e}"));
            // And through the core's checked path.
            let sig = <dyn KeySigner>::sign_digest_checked_async(&key, alg, &digest)
                .await
                .unwrap_or_else(|e| panic!("checked sign {r} {alg}: {e}"));
            verify_prehash(&spki, d, &digest, &sig).expect("verifies");
        }
        for d in DigestAlgorithm::ALL {
            if !digests.contains(&d) {
                assert!(!key.supports(kind.with_digest(d)), "{r} {d}");
            }
        }
    }
}

const RSA_DIGESTS: [DigestAlgorithm; 3] = [
    DigestAlgorithm::Sha256,
    DigestAlgorithm::Sha384,
    DigestAlgorithm::Sha512,
];

#[tokio::test]
async fn rsa_2048_signs_through_every_reference_form() {
    sign_and_verify_all_forms(KeySpec::Rsa2048, KeyKind::Rsa { bits: 2048 }, &RSA_DIGESTS).await;
}

#[tokio::test]
async fn rsa_4096_signs_through_every_reference_form() {
    sign_and_verify_all_forms(KeySpec::Rsa4096, KeyKind::Rsa { bits: 4096 }, &RSA_DIGESTS).await;
}

#[tokio::test]
async fn p256_signs_through_every_reference_form() {
    sign_and_verify_all_forms(
        KeySpec::EccNistP256,
        KeyKind::EcP256,
        &[DigestAlgorithm::Sha256],
    )
    .await;
}

#[tokio::test]
async fn p384_signs_through_every_reference_form() {
    sign_and_verify_all_forms(
        KeySpec::EccNistP384,
        KeyKind::EcP384,
        &[DigestAlgorithm::Sha384],
    )
    .await;
}

/// The blocking constructor and signer from a plain thread (no runtime anywhere).
#[test]
fn blocking_api_from_a_plain_thread() {
    moto();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let k = rt.block_on(async {
        create_key(
            &admin().await,
            KeySpec::EccNistP256,
            KeyUsageType::SignVerify,
        )
        .await
    });
    drop(rt);
    let key = KmsKey::connect_blocking(&kref(&k.alias), &KmsOptions::default()).expect("connect");
    let alg = KeyKind::EcP256.with_digest(DigestAlgorithm::Sha256);
    let digest = DigestAlgorithm::Sha256.digest(b"blocking");
    let sig = key.sign_digest(alg, &digest).expect("sign");
    verify_prehash(key.public_key(), DigestAlgorithm::Sha256, &digest, &sig).expect("verify");
}

/// Many signatures at once, through one key with a small in-flight limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_signatures_all_verify() {
    let k = create_key(&admin().await, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let key = Arc::new(
        KmsKey::connect(&kref(&k.arn), &KmsOptions::default().with_max_in_flight(3))
            .await
            .expect("connect"),
    );
    let alg = KeyKind::Rsa { bits: 2048 }.with_digest(DigestAlgorithm::Sha256);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let key = Arc::clone(&key);
        tasks.push(tokio::spawn(async move {
            let digest = DigestAlgorithm::Sha256.digest(format!("file {i}").as_bytes());
            let sig = <dyn KeySigner>::sign_digest_checked_async(key.as_ref(), alg, &digest)
                .await
                .expect("sign");
            (digest, sig)
        }));
    }
    for t in tasks {
        let (digest, sig) = t.await.expect("join");
        verify_prehash(key.public_key(), DigestAlgorithm::Sha256, &digest, &sig).expect("verify");
    }
}

#[tokio::test]
async fn encrypt_decrypt_key_is_refused_clearly() {
    let k = create_key(
        &admin().await,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    let e = KmsKey::connect(&kref(&k.alias), &KmsOptions::default())
        .await
        .expect_err("symmetric key");
    assert!(matches!(e, KmsError::WrongKeyUsage { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("ENCRYPT_DECRYPT") && msg.contains("SIGN_VERIFY"),
        "{msg}"
    );
    assert!(msg.contains(&k.alias), "{msg}");
}

#[tokio::test]
async fn unknown_alias_is_not_found() {
    moto();
    let alias = format!("alias/{}", unique("missing"));
    let e = KmsKey::connect(&kref(&alias), &KmsOptions::default())
        .await
        .expect_err("unknown alias");
    assert!(matches!(e, KmsError::NotFound { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&alias) && msg.contains("not found"), "{msg}");
}

#[tokio::test]
async fn disabled_and_deleted_keys_are_refused() {
    let client = admin().await;
    let k = create_key(&client, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    // moto answers 500 to DisableKey / ScheduleKeyDeletion on a key ARN: use the key ID.
    client
        .disable_key()
        .key_id(&k.key_id)
        .send()
        .await
        .expect("DisableKey");
    let e = KmsKey::connect(&kref(&k.alias), &KmsOptions::default())
        .await
        .expect_err("disabled");
    assert!(
        matches!(e, KmsError::KeyNotEnabled { ref state, .. } if state == "Disabled"),
        "{e:?}"
    );

    let k = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    client
        .schedule_key_deletion()
        .key_id(&k.key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("ScheduleKeyDeletion");
    let e = KmsKey::connect(&kref(&k.arn), &KmsOptions::default())
        .await
        .expect_err("pending deletion");
    assert!(
        matches!(e, KmsError::KeyNotEnabled { ref state, .. } if state == "PendingDeletion"),
        "{e:?}"
    );
}

#[tokio::test]
async fn ecdsa_asked_of_an_rsa_key_is_unsupported() {
    let k = create_key(&admin().await, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let key: Arc<dyn KeySigner> = Arc::new(
        KmsKey::connect(&kref(&k.alias), &KmsOptions::default())
            .await
            .expect("connect"),
    );
    let ecdsa = KeyKind::EcP256.with_digest(DigestAlgorithm::Sha256);
    let digest = DigestAlgorithm::Sha256.digest(b"x");
    for e in [
        key.sign_digest_async(ecdsa, &digest)
            .await
            .expect_err("ecdsa"),
        key.sign_digest_checked_async(ecdsa, &digest)
            .await
            .expect_err("ecdsa"),
    ] {
        assert!(matches!(e, SignError::UnsupportedAlgorithm { .. }), "{e:?}");
    }
    let sha1 = KeyKind::Rsa { bits: 2048 }.with_digest(DigestAlgorithm::Sha1);
    assert!(matches!(
        key.sign_digest(sha1, &[0; 20]),
        Err(SignError::UnsupportedAlgorithm { .. })
    ));
}

#[tokio::test]
async fn endpoint_down_fails_fast_and_clearly() {
    moto();
    let port = closed_port();
    let opts = KmsOptions::default().with_max_attempts(1);
    let start = Instant::now();
    let e = KmsKey::connect(&kref(&format!("awskms://127.0.0.1:{port}/alias/x")), &opts)
        .await
        .expect_err("nothing listens");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(e, KmsError::Connect { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(
        msg.to_lowercase().contains("refused") || msg.contains("connect"),
        "{msg}"
    );
}

/// The patch is what makes DIGEST signatures right: against a moto with the patch switched
/// off (`MOTO_KMS_DIGEST=stock`), the same code gets signatures that do not verify, and the
/// core's checked signing refuses them.
#[tokio::test]
async fn stock_moto_signatures_do_not_verify() {
    moto();
    let (stock, env) = start_moto("stock", "stock");
    struct Stop<'a>(&'a Moto);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            stop_moto(self.0);
        }
    }
    let _stop = Stop(&stock);
    assert_eq!(env["AWS_ENDPOINT_URL"], stock.endpoint());

    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(stock.endpoint())
        .load()
        .await;
    let client = aws_sdk_kms::Client::new(&sdk);
    let k = create_key(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let key: Arc<dyn KeySigner> = Arc::new(
        KmsKey::connect(
            &kref(&format!("awskms://127.0.0.1:{}/{}", stock.port, k.alias)),
            &KmsOptions::default(),
        )
        .await
        .expect("connect"),
    );
    let alg = KeyKind::EcP256.with_digest(DigestAlgorithm::Sha256);
    let digest = DigestAlgorithm::Sha256.digest(b"stock moto hashes again");
    let sig = key.sign_digest_async(alg, &digest).await.expect("sign");
    assert!(
        verify_prehash(key.public_key(), DigestAlgorithm::Sha256, &digest, &sig).is_err(),
        "stock moto 5.2.5 hashes the digest again; if this verifies, moto was fixed upstream \
         and scripts/patch-moto.py may be obsolete"
    );
    let e = key
        .sign_digest_checked_async(alg, &digest)
        .await
        .expect_err("checked");
    assert!(matches!(e, SignError::BadSignatureFromKey { .. }), "{e:?}");
}

/// The patched moto refuses a digest of the wrong length, as AWS does.
#[tokio::test]
async fn patched_moto_checks_digest_length() {
    let client = admin().await;
    let k = create_key(&client, KeySpec::EccNistP384, KeyUsageType::SignVerify).await;
    let e = client
        .sign()
        .key_id(&k.arn)
        .message(aws_sdk_kms::primitives::Blob::new(vec![0u8; 32]))
        .message_type(aws_sdk_kms::types::MessageType::Digest)
        .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha384)
        .send()
        .await
        .expect_err("32-byte digest for ECDSA_SHA_384");
    let text = format!("{}", aws_sdk_kms::error::DisplayErrorContext(&e));
    assert!(text.contains("ValidationException"), "{text}");
    assert!(text.contains("invalid length"), "{text}");
}
