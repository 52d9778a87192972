//! 8 threads sign 200 PE files in total through one PKCS#11 context and key; all verify.
mod common;

use std::{str::FromStr, sync::Arc, time::Duration};

use codeseal_authenticode::{sign_file, SignOptions, Verifier};
use codeseal_signer::{DigestAlgorithm, KeySigner, RustCryptoSigner, SigningIdentity};
use common::hsm;
use x509_cert::{
    builder::{Builder, CertificateBuilder, Profile},
    name::Name,
    serial_number::SerialNumber,
    time::Validity,
};

#[test]
fn eight_threads_sign_200_files_through_one_context() {
    let h = hsm();
    let key: Arc<dyn KeySigner> =
        Arc::new(codeseal_pkcs11::open_uri(&h.uri("object=p256")).expect("open"));
    // A self-signed certificate for the token key, made with the token key itself.
    let alg = key.key_kind().with_digest(DigestAlgorithm::Sha256);
    let signer = RustCryptoSigner::new(Arc::clone(&key), alg).expect("adapter");
    let cert = CertificateBuilder::new(
        Profile::Root,
        SerialNumber::new(&[7]).expect("serial"),
        Validity::from_now(Duration::from_secs(3600)).expect("validity"),
        Name::from_str("CN=codeseal pkcs11 batch").expect("name"),
        key.public_key().clone(),
        &signer,
    )
    .expect("builder")
    .build::<codeseal_signer::Signature>()
    .expect("cert");
    let identity = SigningIdentity::new(Arc::clone(&key), vec![cert]).expect("identity");

    // A small PE to sign: the sample the CLI bundles.
    let sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cli/assets/sample.exe");
    let dir = tempfile::tempdir().expect("tmp");
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for t in 0..8 {
            let identity = identity.clone();
            let (dir, sample) = (dir.path().to_path_buf(), sample.clone());
            s.spawn(move || {
                for i in 0..25 {
                    let out = dir.join(format!("t{t}-{i}.exe"));
                    sign_file(&identity, &sample, &out, &SignOptions::default()).expect("sign");
                }
            });
        }
    });
    let elapsed = start.elapsed();
    let mut n = 0;
    for e in std::fs::read_dir(dir.path()).expect("ls") {
        let p = e.expect("entry").path();
        let r = Verifier::integrity_only().verify_file(&p).expect("verify");
        assert!(r.valid, "{}: {r:#?}", p.display());
        n += 1;
    }
    assert_eq!(n, 200);
    eprintln!("200 PE files signed by 8 threads through one PKCS#11 context in {elapsed:?}");
}

/// A minimal executor: polls a future on this thread, parking until woken.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "async signature never completed"
        );
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

#[test]
fn async_signing_runs_off_the_executor_thread() {
    let h = hsm();
    let key: Arc<dyn KeySigner> =
        Arc::new(codeseal_pkcs11::open_uri(&h.uri("object=rsa2048")).expect("open"));
    let alg = key.key_kind().with_digest(DigestAlgorithm::Sha256);
    // Each signature runs on its own thread; the executor thread only waits for the wake-up.
    let digests: Vec<Vec<u8>> = (0..8u8)
        .map(|i| DigestAlgorithm::Sha256.digest(&[i]))
        .collect();
    let futures: Vec<_> = digests
        .iter()
        .map(|d| key.sign_digest_checked_async(alg, d))
        .collect();
    for (f, d) in futures.into_iter().zip(&digests) {
        let sig = block_on(f).expect("async sign");
        codeseal_signer::verify_prehash(key.public_key(), DigestAlgorithm::Sha256, d, &sig)
            .expect("verify");
    }
}
