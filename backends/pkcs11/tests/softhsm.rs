//! codeseal-pkcs11 against a real SoftHSM2 token (scripts/softhsm.sh). Fails, does not
//! skip, when SoftHSM2/OpenSC are missing: run scripts/setup.sh.
mod common;

use std::{
    process::Command,
    str::FromStr,
    sync::Arc,
    time::{Duration, Instant},
};

use codeseal_pkcs11::{
    list_tokens_and_keys, module_stats, open_uri, open_uri_with, Pkcs11Error, Pkcs11Key,
    Pkcs11Options,
};
use codeseal_signer::{
    csr::{build_csr, CsrOptions},
    verify_prehash, DigestAlgorithm, KeyKind, KeySigner, RustCryptoSigner, Signature,
};
use common::{hsm, KEYS, TOKEN};
use der::{Decode, Encode, EncodePem};
use spki::SubjectPublicKeyInfoOwned;

fn open(path_attrs: &str) -> Pkcs11Key {
    let uri = hsm().uri(path_attrs);
    open_uri(&uri).unwrap_or_else(|e| panic!("open {uri}: {e}"))
}

fn open_err(uri: &str) -> Pkcs11Error {
    match open_uri(uri) {
        Ok(k) => panic!("{uri}: expected an error, opened {k:?}"),
        Err(e) => e,
    }
}

/// Signs with every digest the key supports and checks each signature with the public key
/// read from the token (and that a changed digest fails).
fn sign_and_verify_all(key: &Pkcs11Key) {
    let dynkey: &dyn KeySigner = key;
    for d in DigestAlgorithm::ALL {
        let alg = key.key_kind().with_digest(d);
        let digest = d.digest(format!("message for {}", key.uri()).as_bytes());
        if !key.supports(alg) {
            assert!(
                key.sign_digest(alg, &digest).is_err(),
                "{alg} must be refused"
            );
            continue;
        }
        let sig = dynkey
            .sign_digest_checked(alg, &digest)
            .unwrap_or_else(|e| panic!("{} {alg}: {e}", key.uri()));
        verify_prehash(key.public_key(), d, &digest, &sig).expect("verify");
        let mut other = digest.clone();
        other[0] ^= 1;
        assert!(verify_prehash(key.public_key(), d, &other, &sig).is_err());
        if let KeyKind::Rsa { bits } = key.key_kind() {
            assert_eq!(sig.len(), bits as usize / 8);
        }
    }
    // Wrong length and wrong algorithm are refused before the token is asked.
    let alg = key.key_kind().with_digest(DigestAlgorithm::Sha256);
    assert!(key.sign_digest(alg, &[0u8; 31]).is_err());
    let other_kind = if key.key_kind().is_rsa() {
        KeyKind::EcP256
    } else {
        KeyKind::Rsa { bits: 2048 }
    };
    assert!(key
        .sign_digest(other_kind.with_digest(DigestAlgorithm::Sha256), &[0u8; 32])
        .is_err());
}

#[test]
fn opens_every_key_by_label_id_and_both_and_signs_every_digest() {
    for (label, id, kind) in KEYS {
        for attrs in [
            format!("object={label}"),
            format!("id=%{id:02X}"),
            format!("object={label};id=%{id:02x}"),
        ] {
            let key = open(&attrs);
            assert_eq!(key.key_kind(), kind, "{attrs}");
            assert_eq!(key.key_label(), Some(label));
            assert_eq!(key.key_id(), &[id]);
            assert_eq!(key.token_label(), TOKEN);
            assert_eq!(
                key.uri(),
                format!("pkcs11:token={TOKEN};object={label};id=%{id:02X}")
            );
            sign_and_verify_all(&key);
        }
    }
}

#[test]
fn public_key_equals_pkcs11_tool_output() {
    let h = hsm();
    let dir = tempfile::tempdir().expect("tmp");
    // OpenSC 0.23's pkcs11-tool cannot export a P-384 public key ("cannot create
    // EVP_PKEY"); P-384 is compared with the CKA_EC_POINT it lists instead (below).
    for (label, id, _) in KEYS.iter().filter(|k| k.0 != "p384") {
        let key = open(&format!("object={label}"));
        let out = dir.path().join(format!("{label}.der"));
        let st = h
            .pkcs11_tool()
            .args(["--read-object", "--type", "pubkey", "--id"])
            .arg(format!("{id:02x}"))
            .arg("-o")
            .arg(&out)
            .output()
            .expect("pkcs11-tool");
        assert!(
            st.status.success(),
            "pkcs11-tool --read-object: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let from_tool = std::fs::read(&out).expect("read");
        let ours = key.public_key().to_der().expect("der");
        assert_eq!(
            hex::encode(&ours),
            hex::encode(&from_tool),
            "{label}: SPKI differs from pkcs11-tool's"
        );
    }
    let key = open("object=p384");
    let out = h
        .pkcs11_tool()
        .arg("--list-objects")
        .output()
        .expect("pkcs11-tool");
    let listing = String::from_utf8_lossy(&out.stdout);
    // One block per object: a header line, then indented attribute lines.
    let mut blocks: Vec<String> = vec![];
    for line in listing.lines() {
        match blocks.last_mut() {
            Some(b) if line.starts_with(' ') => {
                b.push('\n');
                b.push_str(line);
            }
            _ => blocks.push(line.to_string()),
        }
    }
    let block = blocks
        .iter()
        .find(|b| {
            b.starts_with("Public Key Object") && b.lines().any(|l| l.trim() == "label:      p384")
        })
        .unwrap_or_else(|| panic!("p384 public key not listed: {listing}"));
    let point_hex = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("EC_POINT:"))
        .expect("EC_POINT line")
        .trim()
        .to_string();
    // CKA_EC_POINT is the DER OCTET STRING around the uncompressed point.
    let point = key.public_key().subject_public_key.raw_bytes();
    let wrapped = der::asn1::OctetStringRef::new(point)
        .expect("octet string")
        .to_der()
        .expect("der");
    assert_eq!(point_hex, hex::encode(wrapped), "p384 EC_POINT");
}

#[test]
fn csr_verifies_with_openssl_and_carries_the_token_key() {
    let dir = tempfile::tempdir().expect("tmp");
    for (label, _, _) in KEYS {
        let key: Arc<dyn KeySigner> = Arc::new(open(&format!("object={label}")));
        let opts = CsrOptions {
            code_signing_eku: true,
            digital_signature_key_usage: true,
            ..CsrOptions::default()
        };
        let csr = build_csr(&key, "CN=codeseal pkcs11 test,O=codeseal,C=US", &opts)
            .unwrap_or_else(|e| panic!("{label}: CSR: {e}"));
        let path = dir.path().join(format!("{label}.csr"));
        std::fs::write(&path, csr.to_pem(der::pem::LineEnding::LF).expect("pem")).expect("write");

        let out = Command::new("openssl")
            .args(["req", "-verify", "-noout", "-in"])
            .arg(&path)
            .output()
            .expect("openssl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("verify OK") && !text.contains("verify failure"),
            "{label}: openssl req -verify: {text}"
        );

        let out = Command::new("openssl")
            .args(["req", "-noout", "-pubkey", "-in"])
            .arg(&path)
            .output()
            .expect("openssl");
        assert!(out.status.success());
        let pem = String::from_utf8(out.stdout).expect("utf8");
        let (_, der) = der::pem::decode_vec(pem.as_bytes()).expect("pem");
        let spki = SubjectPublicKeyInfoOwned::from_der(&der).expect("spki");
        assert_eq!(&spki, key.public_key(), "{label}: CSR public key");
    }
}

fn throughput(key: &Arc<Pkcs11Key>, threads: usize, per_thread: usize) -> f64 {
    let alg = key.key_kind().with_digest(DigestAlgorithm::Sha256);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let key = Arc::clone(key);
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let digest = DigestAlgorithm::Sha256.digest(format!("{t}/{i}").as_bytes());
                    let sig = key.sign_digest(alg, &digest).expect("sign");
                    verify_prehash(key.public_key(), DigestAlgorithm::Sha256, &digest, &sig)
                        .expect("verify");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
}

#[test]
fn concurrent_signatures_through_one_context() {
    let h = hsm();
    for label in ["rsa2048", "p256"] {
        let key = Arc::new(open(&format!("object={label}")));
        let one = throughput(&key, 1, 200);
        let eight = throughput(&key, 8, 25);
        eprintln!(
            "pkcs11 throughput ({label}, SoftHSM2, sign + verify, {} CPUs): 1 thread {one:.0} sig/s, 8 threads {eight:.0} sig/s (200 signatures each)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
    let stats = module_stats(&h.module).expect("module loaded");
    assert_eq!(stats.initialize_calls, 1, "{stats:?}");
    assert!(stats.signatures >= 800, "{stats:?}");
}

#[test]
fn lists_tokens_and_keys() {
    let h = hsm();
    let pin = secrecy::SecretString::from(common::PIN);
    let tokens = list_tokens_and_keys(&h.module, Some(TOKEN), Some(&pin)).expect("list");
    assert_eq!(tokens.len(), 1);
    let t = &tokens[0];
    assert_eq!(t.label, TOKEN);
    assert!(t.logged_in && t.login_required);
    assert!(!t.serial.is_empty());
    let keys: Vec<_> = t
        .keys
        .iter()
        .map(|k| (k.label.as_deref(), k.id_hex(), k.kind, k.private))
        .collect();
    for (label, id, kind) in KEYS {
        assert!(
            keys.contains(&(Some(label), format!("{id:02x}"), Some(kind), true)),
            "{label} missing from {keys:?}"
        );
    }
    let p256 = t
        .keys
        .iter()
        .find(|k| k.label.as_deref() == Some("p256"))
        .expect("p256");
    assert_eq!(p256.description, "ECDSA P-256");
    assert_eq!(p256.uri, format!("pkcs11:token={TOKEN};object=p256;id=%03"));
    // Without a PIN: the public keys.
    let tokens = list_tokens_and_keys(&h.module, None, None).expect("list");
    let t = tokens.iter().find(|t| t.label == TOKEN).expect("token");
    assert!(!t.logged_in);
    assert!(t.keys.len() >= 4 && t.keys.iter().all(|k| !k.private && k.kind.is_some()));
}

#[test]
fn certificate_from_the_token() {
    let h = hsm();
    let key = open("object=rsa2048");
    assert!(key.certificate_from_token().expect("read").is_none());

    // Store a self-signed certificate for p384 (once: the token persists between runs).
    let key = open("object=p384");
    if key.certificate_from_token().expect("read").is_none() {
        use x509_cert::{
            builder::{Builder, CertificateBuilder, Profile},
            name::Name,
            serial_number::SerialNumber,
            time::Validity,
        };
        let k: Arc<dyn KeySigner> = Arc::new(key.clone());
        let signer = RustCryptoSigner::new(
            Arc::clone(&k),
            KeyKind::EcP384.with_digest(DigestAlgorithm::Sha384),
        )
        .expect("signer");
        let cert = CertificateBuilder::new(
            Profile::Root,
            SerialNumber::from(7u32),
            Validity::from_now(Duration::from_secs(86400)).expect("validity"),
            Name::from_str("CN=codeseal pkcs11 p384").expect("name"),
            key.public_key().clone(),
            &signer,
        )
        .expect("builder")
        .build::<Signature>()
        .expect("cert");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("p384.der");
        std::fs::write(&path, cert.to_der().expect("der")).expect("write");
        let out = h
            .pkcs11_tool()
            .args([
                "--login",
                "--pin",
                "env:CODESEAL_TEST_PIN",
                "--write-object",
            ])
            .arg(&path)
            .args(["--type", "cert", "--id", "04", "--label", "p384"])
            .output()
            .expect("pkcs11-tool");
        assert!(
            out.status.success(),
            "pkcs11-tool --write-object: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cert = key
        .certificate_from_token()
        .expect("read")
        .expect("the certificate stored with id 04");
    assert_eq!(
        &cert.tbs_certificate.subject_public_key_info,
        key.public_key()
    );
}

#[test]
fn missing_token_key_and_module_are_clear_errors() {
    let h = hsm();
    let e = open_err(
        &h.uri("object=rsa2048")
            .replace("token=codeseal-test", "token=nope"),
    );
    assert!(matches!(e, Pkcs11Error::TokenNotFound { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("token=\"nope\"") && msg.contains("codeseal-test"),
        "{msg}"
    );

    let e = open_err(&h.uri("object=nope"));
    assert!(matches!(e, Pkcs11Error::KeyNotFound { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("object=\"nope\"") && msg.contains("rsa2048"),
        "{msg}"
    );

    // id=01 is the bytes "01", not 0x01: the message says how to write it.
    let e = open_err(&h.uri("id=01"));
    assert!(e.to_string().contains("id=%01"), "{e}");

    let e = open_err(&h.uri("object=rsa2048;serial=0000"));
    assert!(matches!(e, Pkcs11Error::TokenNotFound { .. }), "{e:?}");

    for module in ["/bin/ls", "/nonexistent/libpkcs11.so"] {
        let uri = format!("pkcs11:object=rsa2048?module-path={module}");
        let e = open_err(&uri);
        assert!(
            matches!(e, Pkcs11Error::NotAModule { .. }),
            "{module}: {e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(module) && msg.contains("is not a PKCS#11 library"),
            "{msg}"
        );
    }
    let dir = tempfile::tempdir().expect("tmp");
    let text = dir.path().join("lib.so");
    std::fs::write(&text, "not a library").expect("write");
    let e = open_err(&format!("pkcs11:object=x?module-path={}", text.display()));
    assert!(matches!(e, Pkcs11Error::NotAModule { .. }), "{e:?}");

    let e = open_err(
        &h.uri("object=rsa2048")
            .replace("pin-source", "pin-value=1234&x-was"),
    );
    assert!(matches!(e, Pkcs11Error::PinValueRefused), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("1234"));

    let e = open_err(&format!(
        "pkcs11:token={TOKEN}?module-path={}",
        h.module.display()
    ));
    assert!(matches!(e, Pkcs11Error::NoKeySelector), "{e:?}");

    let e = open_err(&format!(
        "pkcs11:object=rsa2048?module-path={}&pin-source=file:/nonexistent/pin",
        h.module.display()
    ));
    assert!(
        matches!(&e, Pkcs11Error::Pin(m) if m.contains("/nonexistent/pin")),
        "{e:?}"
    );
}

#[test]
fn time_limit_gives_up_and_quarantines_the_session() {
    let h = hsm();
    // An RSA-4096 signature takes milliseconds in SoftHSM: 1 ms is too short.
    let opts = Pkcs11Options {
        timeout: Some(Duration::from_millis(1)),
        self_test: false,
        ..Default::default()
    };
    let key = open_uri_with(&h.uri("object=rsa4096"), &opts).expect("open");
    let digest = DigestAlgorithm::Sha256.digest(b"slow");
    let alg = key.key_kind().with_digest(DigestAlgorithm::Sha256);
    let mut timed_out = 0;
    for _ in 0..20 {
        match key.sign_digest(alg, &digest) {
            Err(e) if e.to_string().contains("did not complete within 1ms") => timed_out += 1,
            // Still waiting for the (busy or starting) worker at the deadline.
            Err(e) if e.to_string().contains("became free within") => {}
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(timed_out > 0, "no signature timed out");
    // A generous limit: the same kind of call completes (on a fresh session: the ones that
    // timed out were closed, not reused).
    let opts = Pkcs11Options {
        timeout: Some(Duration::from_secs(30)),
        ..Default::default()
    };
    let key = open_uri_with(&h.uri("object=rsa4096"), &opts).expect("open");
    let sig = key.sign_digest(alg, &digest).expect("sign");
    verify_prehash(key.public_key(), DigestAlgorithm::Sha256, &digest, &sig).expect("verify");
}
