//! 8 threads sign 200 PE files in total through one PKCS#11 context and key; all verify.
mod common;

use std::{str::FromStr, sync::Arc, time::Duration};

use codeseal_authenticode::{sign_file, verify_file, SignOptions};
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
        let r = verify_file(&p).expect("verify");
        assert!(r.valid, "{}: {r:#?}", p.display());
        n += 1;
    }
    assert_eq!(n, 200);
    eprintln!("200 PE files signed by 8 threads through one PKCS#11 context in {elapsed:?}");
}
