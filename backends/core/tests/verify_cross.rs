//! Both verification implementations (`Verifier::AwsLc`, `Verifier::RustCrypto`) give the
//! same verdict, and the expected one, on signatures made by OpenSSL (`openssl pkeyutl
//! -sign`, `openssl dgst -sign`) and on broken variants of them: flipped bits in the
//! signature or the digest, the wrong key, RSA signatures of the wrong length, with leading
//! zeros or not below the modulus, ECDSA signatures that are not DER, with a high `s`, with
//! `r` or `s` zero or not below the order, on the wrong curve; SHA-1/256/384/512.
//!
//! Needs `openssl` on the PATH (scripts/setup.sh) and the default feature `aws-lc`.
#![cfg(feature = "aws-lc")]
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use codeseal_signer::{DigestAlgorithm, SignError, Verifier};
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn ossl(d: DigestAlgorithm) -> &'static str {
    match d {
        DigestAlgorithm::Sha1 => "sha1",
        DigestAlgorithm::Sha256 => "sha256",
        DigestAlgorithm::Sha384 => "sha384",
        DigestAlgorithm::Sha512 => "sha512",
    }
}

struct Key {
    name: String,
    pem: PathBuf,
    spki: SubjectPublicKeyInfoOwned,
}

impl Key {
    /// A new RSA key of `bits` bits (public exponent 65537).
    fn rsa(dir: &Path, name: &str, bits: u32) -> Self {
        let bits = format!("rsa_keygen_bits:{bits}");
        Self::new(dir, name, &["-algorithm", "RSA", "-pkeyopt", &bits])
    }

    /// A new EC key on the named curve `curve` (`P-256`, `P-384`), its parameters encoded
    /// as the curve's name.
    fn ec(dir: &Path, name: &str, curve: &str) -> Self {
        let curve = format!("ec_paramgen_curve:{curve}");
        let named = "ec_param_enc:named_curve";
        Self::new(
            dir,
            name,
            &["-algorithm", "EC", "-pkeyopt", &curve, "-pkeyopt", named],
        )
    }

    fn new(dir: &Path, name: &str, genpkey: &[&str]) -> Self {
        let pem = dir.join(format!("{name}.pem"));
        let mut args = vec!["genpkey", "-out", s(&pem)];
        args.extend_from_slice(genpkey);
        openssl(&args);
        let der = openssl(&["pkey", "-in", s(&pem), "-pubout", "-outform", "DER"]);
        Self {
            name: name.into(),
            spki: SubjectPublicKeyInfoOwned::from_der(&der).expect("spki"),
            pem,
        }
    }

    /// `openssl pkeyutl -sign` of the precomputed `digest`.
    fn sign(&self, dir: &Path, d: DigestAlgorithm, digest: &[u8]) -> Vec<u8> {
        let input = dir.join("digest.bin");
        std::fs::write(&input, digest).expect("write");
        let opt = format!("digest:{}", ossl(d));
        openssl(&[
            "pkeyutl",
            "-sign",
            "-inkey",
            s(&self.pem),
            "-in",
            s(&input),
            "-pkeyopt",
            &opt,
        ])
    }
}

/// Every implementation's result, as text (the same checks run first, so even the errors
/// must be the same); panics if they differ.
fn verdict(
    spki: &SubjectPublicKeyInfoOwned,
    d: DigestAlgorithm,
    digest: &[u8],
    sig: &[u8],
    what: &str,
) -> Result<(), String> {
    assert_eq!(Verifier::ALL.len(), 2, "both implementations are built");
    let all: Vec<Result<(), String>> = Verifier::ALL
        .iter()
        .map(|v| {
            v.verify_prehash(spki, d, digest, sig)
                .map_err(|e| format!("{e:?}"))
        })
        .collect();
    assert!(
        all.windows(2).all(|w| w[0] == w[1]),
        "{what}: the implementations disagree: {:?}",
        Verifier::ALL.iter().zip(&all).collect::<Vec<_>>()
    );
    all.into_iter().next().expect("one result")
}

fn accepted(
    spki: &SubjectPublicKeyInfoOwned,
    d: DigestAlgorithm,
    digest: &[u8],
    sig: &[u8],
    what: &str,
) {
    if let Err(e) = verdict(spki, d, digest, sig, what) {
        panic!("{what}: refused: {e}");
    }
}

fn refused(
    spki: &SubjectPublicKeyInfoOwned,
    d: DigestAlgorithm,
    digest: &[u8],
    sig: &[u8],
    what: &str,
) {
    assert!(
        verdict(spki, d, digest, sig, what).is_err(),
        "{what}: accepted"
    );
}

fn flipped(v: &[u8], at: usize) -> Vec<u8> {
    let mut v = v.to_vec();
    v[at] ^= 0x01;
    v
}

/// Distinct digests of every length, without a random generator.
fn digest_for(d: DigestAlgorithm, n: u32) -> Vec<u8> {
    d.digest(format!("codeseal cross-check {n}").as_bytes())
}

/// Checks shared by every key type, over every digest algorithm the key signs with.
fn common_cases(dir: &Path, key: &Key, other: &Key, rounds: u32) {
    for d in DigestAlgorithm::ALL {
        if key.name.starts_with("p384") && d == DigestAlgorithm::Sha1 {
            continue;
        }
        for round in 0..rounds {
            let digest = digest_for(d, round);
            let sig = key.sign(dir, d, &digest);
            let what = format!("{} {d} #{round}", key.name);
            accepted(&key.spki, d, &digest, &sig, &what);
            for at in [0, sig.len() / 2, sig.len() - 1] {
                refused(
                    &key.spki,
                    d,
                    &digest,
                    &flipped(&sig, at),
                    &format!("{what}: signature bit at {at}"),
                );
            }
            // ECDSA uses the digest's leftmost bytes up to the order's length: a change
            // beyond them is not seen (by either implementation, nor by OpenSSL).
            let used = match key.name.get(..4) {
                Some("p256") => 32,
                Some("p384") => 48,
                _ => digest.len(),
            }
            .min(digest.len());
            for at in [0, used - 1] {
                refused(
                    &key.spki,
                    d,
                    &flipped(&digest, at),
                    &sig,
                    &format!("{what}: digest bit at {at}"),
                );
            }
            if used < digest.len() {
                accepted(
                    &key.spki,
                    d,
                    &flipped(&digest, used),
                    &sig,
                    &format!("{what}: digest bit at {used}, beyond the order's length"),
                );
            }
            refused(&other.spki, d, &digest, &sig, &format!("{what}: other key"));
            // The same digest bytes under another algorithm of the same length do not exist
            // here (all four lengths differ); a digest of the wrong length is a typed error.
            let e = codeseal_signer::verify_prehash(&key.spki, d, &digest[1..], &sig)
                .expect_err("short digest");
            assert!(matches!(e, SignError::DigestLength { .. }), "{e:?}");
        }
    }
}

#[test]
fn rsa_verdicts_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let keys = [
        Key::rsa(d, "rsa2048", 2048),
        Key::new(
            d,
            "rsa3072-e3",
            &[
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:3072",
                "-pkeyopt",
                "rsa_keygen_pubexp:3",
            ],
        ),
        Key::rsa(d, "rsa4096", 4096),
    ];
    for (i, key) in keys.iter().enumerate() {
        let other = &keys[(i + 1) % keys.len()];
        common_cases(d, key, other, 2);
    }

    let key = &keys[0];
    let alg = DigestAlgorithm::Sha256;
    // `openssl dgst -sign` over a message: the same as signing its digest.
    let msg = d.join("message.bin");
    std::fs::write(&msg, b"a message signed by openssl dgst").expect("write");
    let sig = openssl(&["dgst", "-sha256", "-sign", s(&key.pem), s(&msg)]);
    accepted(
        &key.spki,
        alg,
        &alg.digest(b"a message signed by openssl dgst"),
        &sig,
        "dgst -sign",
    );

    let digest = digest_for(alg, 0);
    let sig = key.sign(d, alg, &digest);
    assert_eq!(sig.len(), 256);
    // Shorter, longer (a leading zero added), the leading byte dropped.
    refused(
        &key.spki,
        alg,
        &digest,
        &sig[1..],
        "signature one byte short",
    );
    let mut longer = vec![0u8];
    longer.extend_from_slice(&sig);
    refused(
        &key.spki,
        alg,
        &digest,
        &longer,
        "signature with a zero byte in front",
    );
    let mut padded = sig.clone();
    padded.push(0);
    refused(&key.spki, alg, &digest, &padded, "signature one byte long");
    refused(&key.spki, alg, &digest, &[], "empty signature");

    // Not below the modulus: the modulus itself, the modulus + 1, all ones.
    let spki_bytes = key.spki.subject_public_key.raw_bytes();
    let parts = rsa::pkcs1::RsaPublicKey::from_der(spki_bytes).expect("pkcs1");
    let n = parts.modulus.as_bytes().to_vec();
    assert_eq!(n.len(), 256);
    refused(&key.spki, alg, &digest, &n, "signature = n");
    let mut n1 = n.clone();
    n1[255] = n1[255].wrapping_add(1); // n is odd: no carry
    refused(&key.spki, alg, &digest, &n1, "signature = n + 1");
    refused(
        &key.spki,
        alg,
        &digest,
        &[0xff; 256],
        "signature = 2^2048 - 1",
    );
    refused(&key.spki, alg, &digest, &[0; 256], "signature = 0");
    let mut one = [0u8; 256];
    one[255] = 1;
    refused(&key.spki, alg, &digest, &one, "signature = 1");

    // A valid signature that starts with a zero byte (its integer is shorter than the
    // modulus): kept at the modulus' length it verifies, without the zero it does not.
    let mut found = false;
    for round in 1..3000 {
        let digest = digest_for(alg, round);
        let sig = key.sign(d, alg, &digest);
        if sig[0] == 0 {
            accepted(
                &key.spki,
                alg,
                &digest,
                &sig,
                "signature with a leading zero byte",
            );
            refused(
                &key.spki,
                alg,
                &digest,
                &sig[1..],
                "signature with its leading zero stripped",
            );
            found = true;
            break;
        }
    }
    assert!(
        found,
        "no signature with a leading zero in 3000 (odds about 1e-5)"
    );
}

/// Re-encodes an ECDSA signature with the given DER INTEGER bodies for r and s.
fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, r.len() as u8];
    body.extend_from_slice(r);
    body.extend_from_slice(&[0x02, s.len() as u8]);
    body.extend_from_slice(s);
    let mut out = vec![0x30, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

/// The minimal DER INTEGER body of the unsigned big-endian `v`.
fn der_uint(v: &[u8]) -> Vec<u8> {
    let start = v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1);
    let mut out = Vec::new();
    if v[start] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&v[start..]);
    out
}

/// (r, s) of a DER ECDSA signature, as unsigned big-endian bytes.
fn split(sig: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let parsed = der::asn1::SequenceOf::<der::asn1::UintRef<'_>, 2>::from_der(sig).expect("der");
    let mut it = parsed.iter();
    let r = it.next().expect("r").as_bytes().to_vec();
    let s = it.next().expect("s").as_bytes().to_vec();
    (r, s)
}

/// `a - b` for big-endian unsigned numbers of the same length, `a >= b`.
fn sub(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut v = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = 0;
        if v < 0 {
            v += 256;
            borrow = 1;
        }
        out[i] = v as u8;
    }
    out
}

fn left_pad(v: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len - v.len()];
    out.extend_from_slice(v);
    out
}

#[test]
fn ecdsa_verdicts_agree() {
    // The group orders (SEC 2).
    const N256: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
    const N384: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let keys = [
        Key::ec(d, "p256", "P-256"),
        Key::ec(d, "p384", "P-384"),
        Key::ec(d, "p256-b", "P-256"),
    ];
    common_cases(d, &keys[0], &keys[2], 3);
    common_cases(d, &keys[1], &keys[0], 2);
    // Wrong curve: P-256 signatures under the P-384 key are refused (by both: checked above
    // as "other key" for P-384's; here the other way round).

    for (key, n_hex, other_curve) in [(&keys[0], N256, &keys[1]), (&keys[1], N384, &keys[0])] {
        let n = hex_decode(n_hex);
        let len = n.len();
        let alg = DigestAlgorithm::Sha256;
        let digest = digest_for(alg, 7);
        let sig = key.sign(d, alg, &digest);
        let name = &key.name;
        accepted(&key.spki, alg, &digest, &sig, &format!("{name} valid"));
        refused(
            &other_curve.spki,
            alg,
            &digest,
            &sig,
            &format!("{name}: wrong curve"),
        );
        let (r, s_) = split(&sig);

        // High S and low S: n - s verifies as well as s (ECDSA as FIPS 186-5 and RFC 5480
        // define it has no low-S rule; OpenSSL accepts both, checked below).
        let s_neg = sub(&n, &left_pad(&s_, len));
        let other_s = ecdsa_der(&der_uint(&r), &der_uint(&s_neg));
        accepted(
            &key.spki,
            alg,
            &digest,
            &other_s,
            &format!("{name}: s replaced by n - s"),
        );
        // ...and OpenSSL agrees.
        let (pub_pem, sig_file, dig_file) =
            (d.join("pub.pem"), d.join("sig.bin"), d.join("dig.bin"));
        std::fs::write(&pub_pem, openssl(&["pkey", "-in", s(&key.pem), "-pubout"])).expect("write");
        std::fs::write(&sig_file, &other_s).expect("write");
        std::fs::write(&dig_file, &digest).expect("write");
        openssl(&[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            s(&pub_pem),
            "-in",
            s(&dig_file),
            "-sigfile",
            s(&sig_file),
        ]);

        // r or s zero, equal to n, above n.
        let zero = [0u8];
        let mut n_plus = n.clone();
        n_plus[len - 1] = n_plus[len - 1].wrapping_add(1);
        for (what, rr, ss) in [
            ("r = 0", der_uint(&zero), der_uint(&s_)),
            ("s = 0", der_uint(&r), der_uint(&zero)),
            ("r = n", der_uint(&n), der_uint(&s_)),
            ("s = n", der_uint(&r), der_uint(&n)),
            ("r = n + 1", der_uint(&n_plus), der_uint(&s_)),
            ("s = n + 1", der_uint(&r), der_uint(&n_plus)),
            ("r + n", der_uint(&add_n(&r, &n)), der_uint(&s_)),
        ] {
            refused(
                &key.spki,
                alg,
                &digest,
                &ecdsa_der(&rr, &ss),
                &format!("{name}: {what}"),
            );
        }

        // Not DER: a long-form length, trailing bytes, a non-minimal INTEGER, a negative
        // INTEGER, r ‖ s without DER, BER indefinite length.
        let mut long_len = vec![0x30, 0x81, sig[1]];
        long_len.extend_from_slice(&sig[2..]);
        refused(
            &key.spki,
            alg,
            &digest,
            &long_len,
            &format!("{name}: long-form length"),
        );
        let mut trailing = sig.clone();
        trailing.push(0);
        refused(
            &key.spki,
            alg,
            &digest,
            &trailing,
            &format!("{name}: trailing byte"),
        );
        let mut padded_r = vec![0u8];
        padded_r.extend_from_slice(&der_uint(&r));
        refused(
            &key.spki,
            alg,
            &digest,
            &ecdsa_der(&padded_r, &der_uint(&s_)),
            &format!("{name}: non-minimal r"),
        );
        let unsigned_r = r.clone(); // without the 0x00 a high first bit needs
        if unsigned_r[0] & 0x80 != 0 {
            refused(
                &key.spki,
                alg,
                &digest,
                &ecdsa_der(&unsigned_r, &der_uint(&s_)),
                &format!("{name}: negative r"),
            );
        }
        let mut fixed = left_pad(&r, len);
        fixed.extend_from_slice(&left_pad(&s_, len));
        refused(&key.spki, alg, &digest, &fixed, &format!("{name}: r ‖ s"));
        let mut indefinite = vec![0x30, 0x80];
        indefinite.extend_from_slice(&sig[2..]);
        indefinite.extend_from_slice(&[0, 0]);
        refused(
            &key.spki,
            alg,
            &digest,
            &indefinite,
            &format!("{name}: indefinite length"),
        );
        refused(&key.spki, alg, &digest, &[], &format!("{name}: empty"));
    }

    // P-384 with SHA-1: refused by both, as the key cannot sign it (KeyKind::can_sign).
    let digest = digest_for(DigestAlgorithm::Sha1, 1);
    let sig = keys[0].sign(d, DigestAlgorithm::Sha1, &digest);
    let e = verdict(
        &keys[1].spki,
        DigestAlgorithm::Sha1,
        &digest,
        &sig,
        "p384 sha1",
    )
    .expect_err("refused");
    assert!(e.contains("UnsupportedAlgorithm"), "{e}");
}

#[test]
fn compressed_ec_keys_and_small_exponents_verify_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let key = Key::ec(d, "p256", "P-256");
    let der = openssl(&[
        "pkey",
        "-in",
        s(&key.pem),
        "-pubout",
        "-outform",
        "DER",
        "-ec_conv_form",
        "compressed",
    ]);
    let compressed = SubjectPublicKeyInfoOwned::from_der(&der).expect("spki");
    assert_eq!(compressed.subject_public_key.raw_bytes().len(), 33);
    let alg = DigestAlgorithm::Sha384;
    let digest = digest_for(alg, 3);
    let sig = key.sign(d, alg, &digest);
    accepted(&compressed, alg, &digest, &sig, "compressed P-256 key");
    refused(
        &compressed,
        alg,
        &flipped(&digest, 5),
        &sig,
        "compressed P-256 key, other digest",
    );

    // A point off the curve: the last byte of y changed.
    let mut bad = key.spki.clone();
    let mut point = key.spki.subject_public_key.raw_bytes().to_vec();
    let last = point.len() - 1;
    point[last] ^= 1;
    bad.subject_public_key = der::asn1::BitString::from_bytes(&point).expect("bits");
    refused(&bad, alg, &digest, &sig, "point off the curve");

    // RSA keys codeseal refuses, whichever implementation: 1024 bits, an even exponent.
    let small = Key::rsa(d, "rsa1024", 1024);
    let digest = digest_for(DigestAlgorithm::Sha256, 1);
    let sig = small.sign(d, DigestAlgorithm::Sha256, &digest);
    let e = verdict(
        &small.spki,
        DigestAlgorithm::Sha256,
        &digest,
        &sig,
        "rsa1024",
    )
    .expect_err("refused");
    assert!(e.contains("UnsupportedKey"), "{e}");
    let rsa = Key::rsa(d, "rsa2048", 2048);
    let parts =
        rsa::pkcs1::RsaPublicKey::from_der(rsa.spki.subject_public_key.raw_bytes()).expect("pkcs1");
    let even = rsa::pkcs1::RsaPublicKey {
        modulus: parts.modulus,
        public_exponent: der::asn1::UintRef::new(&[0x01, 0x00, 0x00]).expect("uint"),
    };
    let mut even_spki = rsa.spki.clone();
    even_spki.subject_public_key =
        der::asn1::BitString::from_bytes(&even.to_der().expect("der")).expect("bits");
    let sig = rsa.sign(d, DigestAlgorithm::Sha256, &digest);
    accepted(&rsa.spki, DigestAlgorithm::Sha256, &digest, &sig, "rsa2048");
    refused(
        &even_spki,
        DigestAlgorithm::Sha256,
        &digest,
        &sig,
        "even exponent",
    );
}

fn add_n(r: &[u8], n: &[u8]) -> Vec<u8> {
    let a = left_pad(r, n.len());
    let mut out = vec![0u8; n.len() + 1];
    let mut carry = 0u16;
    for i in (0..n.len()).rev() {
        let v = u16::from(a[i]) + u16::from(n[i]) + carry;
        out[i + 1] = v as u8;
        carry = v >> 8;
    }
    out[0] = carry as u8;
    out
}

fn hex_decode(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect()
}

/// RSA keys of 8192 bits (aws-lc-rs's largest) and 10240 bits (above it: the RustCrypto code
/// verifies for both implementations). The keys take minutes to make, so their public keys
/// and a signature are in tests/data, made by:
///
/// ```text
/// openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:BITS -out rsaBITS.pem
/// openssl pkey -in rsaBITS.pem -pubout -outform DER -out rsaBITS.pub.der
/// printf 'codeseal large RSA key' | openssl dgst -sha256 -binary > digest.bin
/// openssl pkeyutl -sign -inkey rsaBITS.pem -in digest.bin -pkeyopt digest:sha256 \
///   -out rsaBITS.sha256.sig
/// ```
#[test]
fn large_rsa_keys_verify_alike() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let alg = DigestAlgorithm::Sha256;
    let digest = alg.digest(b"codeseal large RSA key");
    for bits in [8192u32, 10240] {
        let read = |ext: &str| std::fs::read(data.join(format!("rsa{bits}.{ext}"))).expect("read");
        let spki = SubjectPublicKeyInfoOwned::from_der(&read("pub.der")).expect("spki");
        let sig = read("sha256.sig");
        assert_eq!(
            codeseal_signer::key_kind_of(&spki).expect("kind"),
            codeseal_signer::KeyKind::Rsa { bits }
        );
        let what = format!("rsa{bits}");
        accepted(&spki, alg, &digest, &sig, &what);
        refused(
            &spki,
            alg,
            &flipped(&digest, 9),
            &sig,
            &format!("{what}: other digest"),
        );
        for at in [0, sig.len() / 3, sig.len() - 1] {
            refused(
                &spki,
                alg,
                &digest,
                &flipped(&sig, at),
                &format!("{what}: signature bit {at}"),
            );
        }
        refused(
            &spki,
            alg,
            &digest,
            &vec![0xff; sig.len()],
            &format!("{what}: above n"),
        );
        refused(&spki, alg, &digest, &sig[1..], &format!("{what}: short"));
    }
}

/// Random mutations of OpenSSL's signatures (bytes changed, set to 0x00 / 0x80 / 0xff,
/// inserted, removed, the end cut), a deterministic sequence: both implementations must
/// agree on every one, and the unchanged signature must verify. A small in-test version of
/// the `key_decoding` fuzz target's differential check.
#[test]
fn mutated_signatures_get_the_same_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let keys = [Key::rsa(d, "rsa2048", 2048), Key::ec(d, "p256", "P-256")];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % bound as u64).expect("fits")
    };
    let (mut accepted_n, mut refused_n) = (0, 0);
    for key in &keys {
        for alg in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha1] {
            let digest = digest_for(alg, 11);
            let sig = key.sign(d, alg, &digest);
            accepted(
                &key.spki,
                alg,
                &digest,
                &sig,
                &format!("{} {alg}", key.name),
            );
            for round in 0..400 {
                let mut m = sig.clone();
                for _ in 0..1 + next(3) {
                    let at = next(m.len().max(1));
                    match next(6) {
                        0 if !m.is_empty() => m[at] ^= 1 << next(8),
                        1 if !m.is_empty() => m[at] = [0x00, 0x80, 0xff][next(3)],
                        2 => m.insert(at, [0x00, 0x02, 0x30][next(3)]),
                        3 if !m.is_empty() => {
                            m.remove(at);
                        }
                        4 => m.truncate(at),
                        _ => {}
                    }
                }
                let what = format!("{} {alg} mutation {round}", key.name);
                match verdict(&key.spki, alg, &digest, &m, &what) {
                    Ok(()) => accepted_n += 1,
                    Err(_) => refused_n += 1,
                }
            }
        }
    }
    // Most mutations break the signature; the few no-ops leave it valid.
    assert!(
        refused_n > 1000,
        "{refused_n} refused, {accepted_n} accepted"
    );
}
