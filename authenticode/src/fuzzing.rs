//! Bodies of the cargo-fuzz targets in `fuzz/`, one function per target, shared with the
//! regression replay test `tests/fuzz_regressions.rs` so that a saved input is replayed by
//! plain `cargo test` through exactly the code the fuzzer ran.
//!
//! Not a supported API. Every function takes arbitrary bytes and only calls public functions
//! of this crate and of `codeseal-signer`; none opens a network connection (TSA replies come
//! from an in-memory transport) and the only files touched are temporary ones
//! ([`sign_roundtrip`]). A panic means a bug: either a parser panicked, or an invariant checked
//! here (with `assert!`) does not hold. The throwaway PKI below is public test material.
use std::{
    hint::black_box,
    io::Cursor,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::Duration,
};

use codeseal_signer::{key_kind_of, verify_prehash, DigestAlgorithm, KeySigner, SigningIdentity};
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

use codeseal_formats::digest::PeChecksum;

use crate::{
    chain::{check_leaf_purpose, issued_by, verify_chain, Purpose},
    digest::{stream_image, stream_image_with_pages},
    oid::{PKCS9_COUNTERSIGNATURE, SPC_RFC3161_TIMESTAMP},
    pagehash::PageHasher,
    pe::PeInfo,
    pkcs7::{nest_signature, page_hashes_of, parse_content_info, ParsedSignature, SignerInfoRef},
    sign::{sign_file, SignOptions},
    timestamp::{
        check_tsa_eku, legacy_signing_time, stamp, validate_token, HttpReply, Protocol,
        TimestampOptions, Transport,
    },
    verify::{verify_file_with, verify_with, CertSummary, VerifyOptions},
    wincert::{build_entry, parse_table, MAX_ENTRIES},
    OpusInfo,
};

/// DER (hex) of the fuzz test root: P-256, CA, valid 2020 to 2099 (`fuzz/pki/root.pem`).
pub const FUZZ_ROOT_CERT_HEX: &str = concat!(
    "3082019c30820143a003020102020101300a06082a8648ce3d040302303531163014060355040a0c0d636f6465736561",
    "6c2066757a7a311b301906035504030c12636f64657365616c2066757a7a20726f6f743020170d323030313031303030",
    "3030305a180f32303939313233313233353935395a303531163014060355040a0c0d636f64657365616c2066757a7a31",
    "1b301906035504030c12636f64657365616c2066757a7a20726f6f743059301306072a8648ce3d020106082a8648ce3d",
    "03010703420004c17cc685782c76791343a2f055e5a369d6199e3c1f37981dafb4798330e02b44edf4457537c4db77dc",
    "b3d7be7858ff395fc0f75b0988c93dd04162732388c694a3423040300f0603551d130101ff040530030101ff300e0603",
    "551d0f0101ff040403020106301d0603551d0e041604147c412a180b04a06b535fefe09fbc0de4de4bc44e300a06082a",
    "8648ce3d0403020347003044022060a13429a4192406348b142c08cc7c24166ff8e0dc9ae44fbf12154026c55fd50220",
    "74ee2973b600375735e8e96b20d56cf969764849afd1f6c09d30719894dc518d",
);
/// DER (hex) of the fuzz test leaf, issued by the root: P-256, codeSigning (`fuzz/pki/leaf.pem`).
pub const FUZZ_LEAF_CERT_HEX: &str = concat!(
    "308201d130820176a003020102020102300a06082a8648ce3d040302303531163014060355040a0c0d636f6465736561",
    "6c2066757a7a311b301906035504030c12636f64657365616c2066757a7a20726f6f743020170d323030313031303030",
    "3030305a180f32303939313233313233353935395a303531163014060355040a0c0d636f64657365616c2066757a7a31",
    "1b301906035504030c12636f64657365616c2066757a7a206c6561663059301306072a8648ce3d020106082a8648ce3d",
    "03010703420004fea929f5cc02bf4584f4f2d08da89069ae7678bfc70edbbd34ce8f54083a1ccab45a16ac6f557e55ab",
    "8d114330470b08161cbefa4d75349842be5c140674c4d4a3753073300c0603551d130101ff04023000300e0603551d0f",
    "0101ff04040302078030130603551d25040c300a06082b06010505070303301d0603551d0e0416041438ad8e246099a2",
    "7da84f43f49e31f07c6edf657a301f0603551d230418301680147c412a180b04a06b535fefe09fbc0de4de4bc44e300a",
    "06082a8648ce3d0403020349003046022100a3dfcf0ff78fb8fbe3ee15e5ee671ebea6f9274a940ef9adbe21a07971c4",
    "c5e9022100a16950eead1cf2763220760ff7952f0fdac27b1e726a17bd9904304151ed1f0d",
);
/// PKCS#8 DER (hex) of the leaf's private key (`fuzz/pki/leaf.key`). Public test material: never trust this root.
pub const FUZZ_LEAF_KEY_PKCS8_HEX: &str = concat!(
    "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b02010104209216f7c1bd07d0393a465859",
    "7f3a3cda7acce62c4c51bc140edd8c283383663ca14403420004fea929f5cc02bf4584f4f2d08da89069ae7678bfc70e",
    "dbbd34ce8f54083a1ccab45a16ac6f557e55ab8d114330470b08161cbefa4d75349842be5c140674c4d4",
);
/// A fixed P-384 SubjectPublicKeyInfo (DER, hex), for signature decoding.
pub const P384_SPKI_HEX: &str = concat!(
    "3076301006072a8648ce3d020106052b8104002203620004dbdb8b020474af1825546caab648f02365b5092566a7cc1d",
    "55d77bfb575fc0083221f4046abaa85739908e79685990a62a93cb8f89a303db317edec3e15ba3ee13b681d480423978",
    "78e3c11d585984d851d713d2694487017ac4964db0bbc54a",
);
/// A fixed RSA-2048 SubjectPublicKeyInfo (DER, hex), for signature decoding.
pub const RSA2048_SPKI_HEX: &str = concat!(
    "30820122300d06092a864886f70d01010105000382010f003082010a0282010100a9deb79942c660579caeae6b927f77",
    "a7ef3dc26841d27bb08209c52682ab769f1f6de5c011bdafc76d3bd2d9e6c9053c954ee960d541539123e6eebafe1be5",
    "8af5b612f2f1562cb71b9a66982133c70f9503431fb797cfda3b969283ab588fc854fabda269f2f4beb4cd944613a3d4",
    "25c4cfa0fea61fc5c8322dad772fcf0bdc48f920f215c0ac91ac2b337e52fffa9c3b5caafcfc7144a739f789e6afc23c",
    "289a48d6afda9b718098526e2f13e347b20cd4206b052f1b95767925678bc117340ba166839cc2dee275cb1914caf6b2",
    "7e64f37271f84473ce52383a3aa91aa789368d63138ed2d3277525e67c938bbe7c87c7e62b20561a708064f86c6382f6",
    "d30203010001",
);

/// The message imprint [`timestamp_token`] requires in its second pass: SHA-256 of
/// `codeseal fuzz` (`scripts/make-fuzz-corpus.sh` makes tokens over it).
pub fn timestamp_imprint() -> Vec<u8> {
    DigestAlgorithm::Sha256.digest(b"codeseal fuzz")
}

/// The nonce [`timestamp_token`] requires in its second pass.
pub const TIMESTAMP_NONCE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];

/// The TSA policy [`timestamp_token`] requires in its second pass (`openssl ts`'s example).
pub const TIMESTAMP_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.3.4.1");

fn cert_from_hex(hex_der: &str) -> Certificate {
    let der = hex::decode(hex_der).expect("fuzz PKI constant is hex");
    Certificate::from_der(&der).expect("fuzz PKI constant is a certificate")
}

fn spki_from_hex(hex_der: &str) -> SubjectPublicKeyInfoOwned {
    let der = hex::decode(hex_der).expect("fuzz key constant is hex");
    SubjectPublicKeyInfoOwned::from_der(&der).expect("fuzz key constant is an SPKI")
}

/// The fuzz test root.
pub fn fuzz_root() -> &'static Certificate {
    static C: OnceLock<Certificate> = OnceLock::new();
    C.get_or_init(|| cert_from_hex(FUZZ_ROOT_CERT_HEX))
}

/// The fuzz test leaf (its key is [`fuzz_leaf_key_pkcs8`]).
pub fn fuzz_leaf() -> &'static Certificate {
    static C: OnceLock<Certificate> = OnceLock::new();
    C.get_or_init(|| cert_from_hex(FUZZ_LEAF_CERT_HEX))
}

/// The leaf's private key, PKCS#8 DER (load it with `codeseal_local::LocalKey::from_pkcs8_der`).
pub fn fuzz_leaf_key_pkcs8() -> Vec<u8> {
    hex::decode(FUZZ_LEAF_KEY_PKCS8_HEX).expect("fuzz key constant is hex")
}

/// The leaf and root as a signing identity for `key` (which must be the leaf's key).
pub fn fuzz_identity(key: Arc<dyn KeySigner>) -> SigningIdentity {
    SigningIdentity::new(key, vec![fuzz_leaf().clone(), fuzz_root().clone()])
        .expect("the fuzz key matches the fuzz leaf certificate")
}

fn fixed_keys() -> &'static [SubjectPublicKeyInfoOwned; 3] {
    static K: OnceLock<[SubjectPublicKeyInfoOwned; 3]> = OnceLock::new();
    K.get_or_init(|| {
        [
            fuzz_leaf().tbs_certificate.subject_public_key_info.clone(),
            spki_from_hex(P384_SPKI_HEX),
            spki_from_hex(RSA2048_SPKI_HEX),
        ]
    })
}

/// Reads a little-endian `u16` at `at`, if there.
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

// ---------------------------------------------------------------------------------------
// pe_headers

/// `PeInfo::read`, then one streaming pass with every digest, the sink and the page-hash
/// tables that can be planned, checked against a plain pass, the input and the reference
/// checksum.
pub fn pe_headers(data: &[u8]) {
    let mut r = Cursor::new(data);
    let pe = match PeInfo::read(&mut r) {
        Ok(pe) => pe,
        Err(e) => {
            black_box(e.to_string());
            return;
        }
    };
    assert_eq!(pe.file_len, data.len() as u64);
    let end = pe.image_end();
    assert!(end <= pe.file_len);
    assert!(pe.checksum_offset + 4 <= pe.file_len);
    assert!(pe.security_dir_offset + 8 <= pe.file_len);
    black_box((pe.machine_name(), pe.is_dll(), pe.bytes_after_cert_table()));

    let mut pages: Vec<PageHasher> = [DigestAlgorithm::Sha1, DigestAlgorithm::Sha256]
        .into_iter()
        .filter_map(|a| PageHasher::new(&pe, a).ok())
        .collect();
    let mut sink: Vec<u8> = Vec::new();
    let pass = stream_image_with_pages(
        &mut r,
        &pe,
        &DigestAlgorithm::ALL,
        Some(&mut sink),
        &mut pages,
    )
    .expect("an in-memory file whose headers were read streams");
    assert_eq!(pass.image_len, end);
    assert!(pass.padding < 8);
    assert_eq!((pass.image_len + pass.padding) % 8, 0);
    assert_eq!(sink.len() as u64, pass.image_len + pass.padding);
    let image = usize::try_from(end).expect("in-memory length");
    assert_eq!(sink.get(..image), data.get(..image));
    assert!(sink
        .get(image..)
        .unwrap_or_default()
        .iter()
        .all(|&b| b == 0));
    for (alg, d) in &pass.digests {
        assert_eq!(d.len(), alg.output_len());
    }
    for table in pages.into_iter().map(PageHasher::finish) {
        black_box(table);
    }
    let plain = stream_image(&mut r, &pe, &[DigestAlgorithm::Sha256], None)
        .expect("second pass over the same file");
    assert_eq!(
        plain.digest(DigestAlgorithm::Sha256),
        pass.digest(DigestAlgorithm::Sha256)
    );
    // With no certificate table the Security entry is all zero, so the pass's checksum is the
    // reference algorithm's over the whole file (which skips only an even-aligned CheckSum).
    if pe.cert_table.is_none() && pe.checksum_offset % 2 == 0 {
        let at = usize::try_from(pe.checksum_offset).expect("in-memory offset");
        assert_eq!(
            pass.checksum.finish(pe.file_len),
            PeChecksum::of_file(data, at),
            "streamed checksum differs from the reference"
        );
    }
}

// ---------------------------------------------------------------------------------------
// wincert_table

/// `wincert::parse_table`; every entry found is delimited inside the table, aligned, and
/// survives `build_entry` and a second parse.
pub fn wincert_table(data: &[u8]) {
    let (entries, notes) = match parse_table(data) {
        Ok(x) => x,
        Err(e) => {
            black_box(e.to_string());
            return;
        }
    };
    assert!(!entries.is_empty() && entries.len() <= MAX_ENTRIES);
    let mut prev_end = 0usize;
    for e in &entries {
        let len = e.length as usize;
        assert_eq!(e.offset % 8, 0, "entry not 8-byte aligned");
        assert!(e.offset >= prev_end, "entries overlap");
        assert!(len > 8 && e.offset + len <= data.len());
        assert_eq!(e.data.len() + 8, len);
        prev_end = e.offset + len;
        black_box((e.revision, e.cert_type));
        let built = build_entry(e.data).expect("an entry read from memory fits again");
        let (again, again_notes) = parse_table(&built).expect("a built entry parses");
        assert_eq!(again.len(), 1);
        assert!(again_notes.is_empty(), "{again_notes:?}");
        assert!(again.first().is_some_and(|a| a.data.starts_with(e.data)));
    }
    black_box(notes);
}

// ---------------------------------------------------------------------------------------
// pkcs7_signature

/// `ParsedSignature::parse` and everything read from a parsed signature (nested signatures,
/// opus info, page hashes, certificates, time stamps, the signer's signature), plus
/// `parse_content_info` and `nest_signature`.
pub fn pkcs7_signature(data: &[u8]) {
    let parsed = parsed_signature(data, 0);
    if let Ok(ci) = parse_content_info(data) {
        let sd = &ci.signed_data;
        black_box((sd.certificates.len(), sd.signer_infos.len(), &sd.content));
    }
    black_box(crate::manage::digest_algorithms(data).is_ok());
    if let Ok(nested) = nest_signature(data, data) {
        // Adding an unsigned attribute keeps the signature readable and finds the new value.
        if let Some(primary) = parsed {
            let again = ParsedSignature::parse(&nested).expect("a nested-into signature parses");
            assert_eq!(again.image_digest(), primary.image_digest());
            assert_eq!(again.signed_attrs_der, primary.signed_attrs_der);
            let want = der::asn1::Any::from_der(data)
                .and_then(|a| a.to_der())
                .expect("nest_signature read it");
            assert!(again.nested_der().contains(&want.as_slice()));
        }
    }
}

fn parsed_signature(data: &[u8], depth: usize) -> Option<ParsedSignature<'_>> {
    let sig = match ParsedSignature::parse(data) {
        Ok(s) => s,
        Err(e) => {
            black_box(e.to_string());
            return None;
        }
    };
    assert_eq!(sig.der_len + sig.trailing_len, data.len());
    assert_eq!(sig.image_digest().len(), sig.digest_algorithm.output_len());
    black_box(sig.message_digest_attr().is_ok());
    if let Some(opus) = sig.opus_info() {
        black_box(opus.program_name.as_ref().map(|n| n.to_text()));
        black_box(&opus.more_info);
    }
    black_box(
        page_hashes_of(&sig.spc)
            .map(|t| t.map(|(a, t)| (a, t.len())))
            .is_ok(),
    );
    let pool: Vec<Certificate> = sig.certificates().take(8).cloned().collect();
    for c in &pool {
        black_box(CertSummary::of(c));
        black_box(check_tsa_eku(c).is_ok());
    }
    if let Some(leaf) = sig.signer_certificate() {
        let alg = sig.digest_algorithm;
        black_box(
            verify_prehash(
                &leaf.tbs_certificate.subject_public_key_info,
                alg,
                &alg.digest(&sig.signed_attrs_der),
                sig.signer_info.signature.as_bytes(),
            )
            .is_ok(),
        );
        black_box(check_leaf_purpose(leaf, Purpose::CodeSigning).is_ok());
        for c in pool.iter().take(4) {
            black_box(issued_by(leaf, c).is_ok());
        }
        let report = verify_chain(
            leaf,
            &pool,
            std::slice::from_ref(fuzz_root()),
            Duration::from_secs(1_700_000_000),
            Purpose::CodeSigning,
        );
        black_box(report);
    }
    for v in sig
        .unsigned_values(SPC_RFC3161_TIMESTAMP)
        .into_iter()
        .take(2)
    {
        black_box(validate_token(v, None, None, None).is_ok());
    }
    for v in sig
        .unsigned_values(PKCS9_COUNTERSIGNATURE)
        .into_iter()
        .take(2)
    {
        if let Ok(info) = crate::asn1::Tlv::exactly(v)
            .map_err(codeseal_formats::Error::from)
            .and_then(SignerInfoRef::parse)
        {
            black_box(legacy_signing_time(&info.info));
        }
    }
    if depth < 3 {
        for n in sig.nested_der().iter().take(4) {
            parsed_signature(n, depth + 1);
        }
    }
    Some(sig)
}

// ---------------------------------------------------------------------------------------
// verify_file

/// `verify_with` on the input as a file: default options, then the fuzz root as trust anchor
/// (strict, SHA-1 refused), then a fixed time and a leaf pin. Policies only add errors: a
/// file valid under one is valid with the defaults, and all three agree on `Ok`/`Err`.
pub fn verify_file(data: &[u8]) {
    let plain = verify_with(&mut Cursor::new(data), &VerifyOptions::default());
    let anchors = vec![fuzz_root().clone()];
    let strict = VerifyOptions {
        trust_anchors: anchors.clone(),
        strict: true,
        reject_sha1: true,
        require_timestamp: data.len() % 2 == 1,
        ..VerifyOptions::default()
    };
    let pinned = VerifyOptions {
        trust_anchors: anchors,
        at_time: Some(1_700_000_000),
        ignore_timestamp: true,
        require_leaf_hash: Some((
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha256.digest(&fuzz_leaf().to_der().expect("encodes")),
        )),
        ..VerifyOptions::default()
    };
    let with_policy = [
        verify_with(&mut Cursor::new(data), &strict),
        verify_with(&mut Cursor::new(data), &pinned),
    ];
    match &plain {
        Ok(r) => {
            assert!(!r.valid || (r.errors.is_empty() && !r.signatures.is_empty()));
            for s in &r.signatures {
                black_box((s.is_valid(), &s.signer, &s.timestamps, &s.program_name));
            }
        }
        Err(e) => {
            black_box(e.to_string());
        }
    }
    for other in &with_policy {
        assert_eq!(other.is_ok(), plain.is_ok(), "policy changed Ok/Err");
        if let (Ok(o), Ok(p)) = (other, &plain) {
            assert!(
                !o.valid || p.valid,
                "valid under a policy but not by default"
            );
            assert_eq!(o.signatures.len(), p.signatures.len());
        }
    }
}

// ---------------------------------------------------------------------------------------
// timestamp_token

/// A transport that answers every request with the same HTTP 200 reply.
struct CannedReply(Vec<u8>);

impl Transport for CannedReply {
    fn post(
        &self,
        _url: &str,
        _content_type: &str,
        _body: &[u8],
        _timeout: Duration,
    ) -> std::result::Result<HttpReply, String> {
        Ok(HttpReply {
            status: 200,
            content_type: None,
            body: self.0.clone(),
        })
    }
}

/// `validate_token` without expectations and with the fixed imprint, nonce and policy; then
/// the input as a TSA's reply body (RFC 3161 `TimeStampResp`, and legacy base64 PKCS#7),
/// through an in-memory transport (one attempt, no sleeping, no network).
pub fn timestamp_token(data: &[u8]) {
    match validate_token(data, None, None, None) {
        Ok(info) => {
            black_box((&info.time, &info.tsa_subject, info.certs.len()));
            let imprint = timestamp_imprint();
            let strict = validate_token(
                data,
                Some((DigestAlgorithm::Sha256, &imprint)),
                Some(&TIMESTAMP_NONCE),
                Some(TIMESTAMP_POLICY),
            );
            if let Ok(s) = strict {
                assert_eq!(s.imprint, imprint);
                assert_eq!(s.imprint_algorithm, Some(DigestAlgorithm::Sha256));
            }
        }
        Err(e) => {
            black_box(e);
            // Expectations only add checks.
            let imprint = timestamp_imprint();
            assert!(validate_token(
                data,
                Some((DigestAlgorithm::Sha256, &imprint)),
                Some(&TIMESTAMP_NONCE),
                None
            )
            .is_err());
        }
    }
    let transport = CannedReply(data.to_vec());
    for protocol in [Protocol::Rfc3161, Protocol::Legacy] {
        let opts = TimestampOptions {
            urls: vec!["http://tsa.invalid/".into()],
            protocol,
            attempts: 1,
            retry_wait: Duration::ZERO,
            ..TimestampOptions::default()
        };
        match stamp(b"codeseal fuzz signature", &opts, &transport) {
            Ok(s) => {
                black_box((&s.time, &s.tsa, s.certs.len()));
            }
            Err(e) => {
                black_box(e.to_string());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// key_decoding

/// Key material decoding in `codeseal-signer`: `key_kind_of` on the input as an SPKI (and a
/// signature check with it), `verify_prehash` of the input as a signature under fixed P-256,
/// P-384 and RSA-2048 keys (each check through every verification implementation built:
/// aws-lc-rs and RustCrypto must give the same verdict), and the digest OID table. `more` gets the input too: the fuzz
/// target passes the parsers of the other crates there (KMS key references, PKCS#11 URIs,
/// local key files), which this crate does not depend on.
pub fn key_decoding(data: &[u8], more: &dyn Fn(&[u8])) {
    if let Ok(spki) = SubjectPublicKeyInfoOwned::from_der(data) {
        if let Ok(kind) = key_kind_of(&spki) {
            black_box(kind.to_string());
            let sig = [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01];
            black_box(same_verdict(&spki, DigestAlgorithm::Sha256, &[0u8; 32], &sig).is_ok());
        }
    }
    // The signature: the input; the digest: taken from its head (so that the fuzzer can aim
    // at length checks too), or zeros.
    let selector = data.first().copied().unwrap_or(0);
    let alg = DigestAlgorithm::ALL
        .get(usize::from(selector % 4))
        .copied()
        .unwrap_or(DigestAlgorithm::Sha256);
    let digest_len = if selector & 0x80 != 0 {
        usize::from(selector & 0x3f)
    } else {
        alg.output_len()
    };
    let digest = vec![0x5au8; digest_len];
    for key in fixed_keys() {
        match same_verdict(key, alg, &digest, data) {
            Ok(()) => black_box(()),
            Err(e) => {
                black_box(e);
            }
        }
    }
    if let Ok(oid) = ObjectIdentifier::from_bytes(data) {
        black_box(DigestAlgorithm::from_oid(&oid));
    }
    if let Some(n) = u16_at(data, 0) {
        black_box(n);
    }
    more(data);
}

/// `verify_prehash` through every verification implementation built (aws-lc-rs and
/// RustCrypto): panics if their verdicts differ (even the error text, as the same checks
/// run before either), else returns the verdict.
fn same_verdict(
    spki: &SubjectPublicKeyInfoOwned,
    alg: DigestAlgorithm,
    digest: &[u8],
    signature: &[u8],
) -> std::result::Result<(), String> {
    let mut first: Option<std::result::Result<(), String>> = None;
    for v in codeseal_signer::Verifier::ALL {
        let r = v
            .verify_prehash(spki, alg, digest, signature)
            .map_err(|e| e.to_string());
        match &first {
            None => first = Some(r),
            Some(f) => assert_eq!(f, &r, "{} disagrees with the first verifier", v.name()),
        }
    }
    first.unwrap_or(Ok(()))
}

/// Checks what a URI redaction (`codeseal_keys::redact_uri`) returned: every secret-bearing
/// parameter (`pin-value=`, `password=`, in any case: `pkcs11:` attribute names are
/// case-insensitive) is followed by the mask `***` or by nothing.
pub fn assert_secrets_masked(redacted: &str) {
    let lower = redacted.to_ascii_lowercase();
    for key in ["pin-value=", "password="] {
        for (at, _) in lower.match_indices(key) {
            let value = lower.get(at + key.len()..).unwrap_or_default();
            assert!(
                value.is_empty() || value.starts_with("***"),
                "a {key} value is left unmasked in {redacted:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// sign_roundtrip

/// The PE template [`sign_roundtrip`] patches: a valid image with `sections` (0 to 3) sections
/// of 0x200 bytes, SectionAlignment 0x1000, FileAlignment and SizeOfHeaders 0x200, so that
/// page hashes can be planned.
pub fn pe_template(pe32_plus: bool, sections: u8) -> Vec<u8> {
    let n = usize::from(sections.min(3));
    let mut f = vec![0u8; 0x200 * (n + 1)];
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(dst) = f.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    };
    put(0, b"MZ");
    put(0x3c, &0x80u32.to_le_bytes());
    put(0x40, b"This program cannot be run in DOS mode.");
    put(0x80, b"PE\0\0");
    let machine: u16 = if pe32_plus { 0x8664 } else { 0x14c };
    put(0x84, &machine.to_le_bytes());
    put(0x86, &(n as u16).to_le_bytes());
    let opt_len: u16 = if pe32_plus { 240 } else { 224 };
    put(0x94, &opt_len.to_le_bytes());
    put(0x96, &0x0022u16.to_le_bytes());
    let opt = 0x98;
    let magic: u16 = if pe32_plus { 0x20b } else { 0x10b };
    put(opt, &magic.to_le_bytes());
    put(opt + 16, &0x1000u32.to_le_bytes()); // AddressOfEntryPoint
    put(opt + 32, &0x1000u32.to_le_bytes()); // SectionAlignment
    put(opt + 36, &0x200u32.to_le_bytes()); // FileAlignment
    put(opt + 56, &(0x1000u32 * (n as u32 + 1)).to_le_bytes()); // SizeOfImage
    put(opt + 60, &0x200u32.to_le_bytes()); // SizeOfHeaders
    put(opt + 68, &3u16.to_le_bytes()); // Subsystem: console
    let n_dirs_at = if pe32_plus { 108 } else { 92 };
    put(opt + n_dirs_at, &16u32.to_le_bytes());
    let names: [&[u8]; 3] = [b".text", b".rdata", b".data"];
    for (i, name) in names.iter().enumerate().take(n) {
        let sec = opt + usize::from(opt_len) + 40 * i;
        put(sec, name);
        put(sec + 8, &0x200u32.to_le_bytes()); // VirtualSize
        put(sec + 12, &(0x1000u32 * (i as u32 + 1)).to_le_bytes()); // VirtualAddress
        put(sec + 16, &0x200u32.to_le_bytes()); // SizeOfRawData
        put(sec + 20, &(0x200u32 * (i as u32 + 1)).to_le_bytes()); // PointerToRawData
        put(sec + 36, &0x6000_0020u32.to_le_bytes()); // code | execute | read
    }
    for (i, b) in f.iter_mut().enumerate().skip(0x200) {
        *b = (i as u8).wrapping_mul(37).wrapping_add((i >> 8) as u8);
    }
    f
}

/// What [`sign_roundtrip`] reads from its input.
#[derive(Debug)]
struct SignCase {
    file: Vec<u8>,
    opts: SignOptions,
}

/// Input layout: byte 0 flags (bit 0 PE32 instead of PE32+, bit 1 page hashes, bits 2-3 the
/// digest SHA-256/384/512/SHA-1, bit 4 `--replace`, bit 5 a program name, bit 6 a URL),
/// byte 1 the section count (mod 4), then records: `tag` with bit 7 set appends the rest of
/// the input as an overlay; otherwise `off: u16 LE` (mod the file length) and `tag & 31`
/// bytes written there.
fn decode_sign_case(data: &[u8]) -> SignCase {
    let flags = data.first().copied().unwrap_or(0);
    let sections = data.get(1).copied().unwrap_or(1) % 4;
    let mut file = pe_template(flags & 1 == 0, sections);
    let digest = match (flags >> 2) & 3 {
        0 => DigestAlgorithm::Sha256,
        1 => DigestAlgorithm::Sha384,
        2 => DigestAlgorithm::Sha512,
        _ => DigestAlgorithm::Sha1,
    };
    let mut rest = data.get(2..).unwrap_or_default();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut opus = OpusInfo::default();
    if flags & 0x20 != 0 {
        let (name, r) = rest.split_at(rest.len().min(16));
        opus.program_name = Some(text(name));
        rest = r;
    }
    if flags & 0x40 != 0 {
        let (url, r) = rest.split_at(rest.len().min(16));
        opus.url = Some(format!("https://example.invalid/{}", text(url)));
        rest = r;
    }
    while let Some((&tag, r)) = rest.split_first() {
        if tag & 0x80 != 0 {
            file.extend_from_slice(r);
            break;
        }
        let Some(off) = u16_at(r, 0) else { break };
        let len = usize::from(tag & 31).min(r.len().saturating_sub(2));
        let bytes = r.get(2..2 + len).unwrap_or_default();
        let at = usize::from(off) % file.len();
        for (dst, &b) in file.iter_mut().skip(at).zip(bytes) {
            *dst = b;
        }
        rest = r.get(2 + len..).unwrap_or_default();
    }
    SignCase {
        file,
        opts: SignOptions {
            digest,
            opus,
            replace: flags & 0x10 != 0,
            page_hashes: flags & 2 != 0,
            force: true,
            allow_sha1: true,
            ..SignOptions::default()
        },
    }
}

fn scratch_dir() -> tempfile::TempDir {
    // Signing fsyncs its output: on tmpfs that costs nothing.
    let base = std::env::var_os("CODESEAL_FUZZ_TMP")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(std::env::temp_dir);
    tempfile::tempdir_in(base).expect("a scratch directory")
}

fn assert_valid(path: &Path, opts: &VerifyOptions, what: &str) {
    let report =
        verify_file_with(path, opts).unwrap_or_else(|e| panic!("{what}: verify failed: {e}"));
    assert!(report.valid, "{what}: not valid: {report:#?}");
}

/// Patches the input into [`pe_template`] and signs it with `identity` (use
/// [`fuzz_identity`]). When signing succeeds: the result verifies (integrity, and chained to
/// the fuzz root), the extracted signature carries the image digest signing reported,
/// `remove_signature` succeeds, and signing the stripped file again gives the same image
/// digest and page hashes. Returns whether the input was signed.
pub fn sign_roundtrip(data: &[u8], identity: &SigningIdentity) -> bool {
    let case = decode_sign_case(data);
    let dir = scratch_dir();
    let input = dir.path().join("in.exe");
    let signed = dir.path().join("signed.exe");
    let stripped = dir.path().join("stripped.exe");
    let resigned = dir.path().join("resigned.exe");
    std::fs::write(&input, &case.file).expect("writing the scratch input");
    let first = match sign_file(identity, &input, &signed, &case.opts) {
        Ok(o) => o,
        Err(e) => {
            black_box(e.to_string());
            return false;
        }
    };
    let anchored = VerifyOptions {
        trust_anchors: vec![fuzz_root().clone()],
        ..VerifyOptions::default()
    };
    assert_valid(&signed, &VerifyOptions::default(), "signed");
    assert_valid(&signed, &anchored, "signed, anchored");
    let der = crate::manage::extract_signature(&signed).expect("extracting the signature");
    let p1 = ParsedSignature::parse(&der).expect("the extracted signature parses");
    assert_eq!(p1.image_digest(), first.image_digest.as_slice());
    assert_eq!(p1.digest_algorithm, case.opts.digest);
    let pages1 = page_hashes_of(&p1.spc).expect("page hashes readable");
    assert_eq!(pages1.is_some(), case.opts.page_hashes);

    crate::manage::remove_signature(&signed, &stripped, true).expect("removing the signature");
    let again = sign_file(identity, &stripped, &resigned, &case.opts)
        .expect("signing the stripped file again");
    assert_eq!(
        again.image_digest, first.image_digest,
        "remove + re-sign changed the image digest"
    );
    assert_valid(&resigned, &anchored, "re-signed, anchored");
    let der2 = crate::manage::extract_signature(&resigned).expect("extracting the signature");
    let p2 = ParsedSignature::parse(&der2).expect("the extracted signature parses");
    let pages2 = page_hashes_of(&p2.spc).expect("page hashes readable");
    assert_eq!(pages1, pages2, "remove + re-sign changed the page hashes");
    true
}

// ---------------------------------------------------------------------------------------
// script_parse

/// A DER SEQUENCE standing in for a PKCS#7 in [`script_parse`] (the script module checks
/// only the outer element).
fn script_fake_pkcs7() -> Vec<u8> {
    let mut v = vec![0x30, 68];
    v.extend((2..70usize).map(|i| (i * 37 % 251) as u8));
    v
}

/// A sink that keeps the digest input.
#[derive(Clone, Default)]
struct ScriptCollect(Vec<u8>);

impl codeseal_formats::digest::Sink for ScriptCollect {
    fn feed(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
    }
}

/// The streaming reader ([`crate::script::ScriptLayout`], with small pages and reads picked
/// from the input's length so that the search and the decoding are cut at many offsets)
/// agrees with [`crate::script::Script::parse`] (`mem`): the same error, block, encoding,
/// digest input, head copy and unsigned output; and, given `p7`, the same signed output.
fn script_stream_agrees(
    kind: crate::script::ScriptKind,
    data: &[u8],
    mem: &crate::script::Result<crate::script::Script<'_>>,
    p7: Option<&Vec<u8>>,
) {
    use crate::script::ScriptLayout;
    let n = data.len() as u64;
    let page = if n > 1 << 16 { 4096 } else { 2 } + 2 * (n % 7);
    let chunk = if n > 1 << 16 { 4096 } else { 1 } + (n % 13) as usize;
    let mut c = std::io::Cursor::new(data);
    let lay = ScriptLayout::read_tuned_for_fuzzing(kind, &mut c, page, chunk);
    let l = match (mem, lay) {
        (Err(e), Err(f)) => {
            assert_eq!(*e, f, "{kind:?}: streamed error");
            return;
        }
        (Err(e), Ok(l)) => {
            let r = l.stream(&mut c, &mut ScriptCollect::default(), None);
            assert_eq!(r.err().as_ref(), Some(e), "{kind:?}: streamed text error");
            return;
        }
        (Ok(_), Err(f)) => panic!("{kind:?}: parses in memory, not streamed: {f:?}"),
        (Ok(_), Ok(l)) => l,
    };
    let Ok(s) = mem else { return };
    assert!(l.signature() == s.signature(), "{kind:?}: streamed block");
    let mut want = Vec::new();
    let want_r = s.digest_input(|d| want.extend_from_slice(d));
    let mut sink = ScriptCollect::default();
    let mut out = Vec::new();
    let got_r = l.stream(&mut c, &mut sink, Some(&mut out));
    match (want_r, got_r) {
        (Ok(()), Ok(enc)) => {
            assert_eq!(enc, s.encoding(), "{kind:?}: streamed encoding");
            assert!(sink.0 == want, "{kind:?}: streamed digest input");
        }
        (a, b) => panic!("{kind:?}: digest input {a:?}, streamed {b:?}"),
    }
    let head = l.head();
    let head_bytes = usize::try_from(head.end)
        .ok()
        .and_then(|e| data.get(..e))
        .unwrap_or_default();
    assert!(out == head_bytes, "{kind:?}: streamed head copy");
    if let Some(p7) = p7 {
        match (s.signed_bytes(p7), l.write_rest(&mut c, &mut out, Some(p7))) {
            (Ok(a), Ok(_)) => assert!(out == a, "{kind:?}: streamed signed output"),
            (Err(a), Err(b)) => assert_eq!(a, b, "{kind:?}: streamed signing error"),
            (a, b) => panic!("{kind:?}: signed {:?}, streamed {b:?}", a.map(|v| v.len())),
        }
    }
    let mut unsigned = Vec::new();
    l.write_signed(&mut c, &mut unsigned, None)
        .unwrap_or_else(|e| panic!("{kind:?}: streamed unsigned output: {e}"));
    assert!(
        unsigned == s.unsigned_bytes(),
        "{kind:?}: streamed unsigned output"
    );
}

/// `script::Script::parse` as every kind of script, and for every file that parses: the
/// signature block lies inside the file and splits it into the unsigned parts; the digest
/// input is produced (at most two bytes per input byte, plus the length). For one kind (the
/// input's length modulo 6, so that a 1 MiB input stays well inside the fuzzers' 2 s):
/// writing a new block with `signed_bytes` gives a file that parses back to the same
/// encoding, unsigned bytes and digest input, with the new block. For every kind, the
/// streaming reader (`ScriptLayout`) agrees with `Script::parse` (see
/// `script_stream_agrees`).
pub fn script_parse(data: &[u8]) {
    use crate::script::{Script, ScriptError, ScriptKind};
    let p7 = script_fake_pkcs7();
    let round_trip = ScriptKind::ALL
        .get(data.len() % ScriptKind::ALL.len())
        .copied();
    for kind in ScriptKind::ALL {
        let parsed = Script::parse(kind, data);
        script_stream_agrees(
            kind,
            data,
            &parsed,
            (round_trip == Some(kind)).then_some(&p7),
        );
        let s = match parsed {
            Ok(s) => s,
            Err(e) => {
                black_box(e.to_string());
                continue;
            }
        };
        let (before, after) = s.unsigned_parts();
        match s.signature() {
            None => assert_eq!(before.len(), data.len(), "{kind:?}: no block, all text"),
            Some(b) => {
                assert!(b.range.start <= b.range.end && b.range.end <= data.len());
                assert_eq!(before, data.get(..b.range.start).unwrap_or_default());
                assert_eq!(after, data.get(b.range.end..).unwrap_or_default());
                assert!(!b.pkcs7.is_empty());
            }
        }
        let unsigned = s.unsigned_bytes();
        assert_eq!(unsigned.len(), before.len() + after.len());
        let mut input = Vec::new();
        s.digest_input(|c| input.extend_from_slice(c))
            .unwrap_or_else(|e| panic!("{kind:?}: digest input of a parsed script: {e}"));
        assert!(
            input.len() <= 2 * data.len() + 4,
            "{kind:?}: digest input too long"
        );
        assert_eq!(input.len() % 2, 0);
        if round_trip != Some(kind) {
            continue;
        }
        let signed = match s.signed_bytes(&p7) {
            Ok(v) => v,
            Err(ScriptError::NoJobElement) if kind == ScriptKind::Wsf => continue,
            Err(e) => panic!("{kind:?}: signed_bytes of a parsed script: {e}"),
        };
        let t = Script::parse(kind, &signed)
            .unwrap_or_else(|e| panic!("{kind:?}: a file signed by signed_bytes: {e}"));
        assert_eq!(
            t.encoding(),
            s.encoding(),
            "{kind:?}: encoding changed by signing"
        );
        assert_eq!(
            t.signature().map(|b| b.pkcs7.as_slice()),
            Some(p7.as_slice()),
            "{kind:?}: the new block is not found"
        );
        assert_eq!(
            t.unsigned_bytes(),
            unsigned,
            "{kind:?}: unsigned bytes changed"
        );
        let mut again = Vec::new();
        t.digest_input(|c| again.extend_from_slice(c))
            .unwrap_or_else(|e| panic!("{kind:?}: digest input of the signed file: {e}"));
        assert!(again == input, "{kind:?}: signing changed the digest input");
    }
}

/// Digest input collected by the `cab_header` target.
struct CabCollect(Vec<u8>);

impl codeseal_formats::digest::Sink for CabCollect {
    fn feed(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
    }
}

/// `cab::CabHeader::read` on the input as a cabinet, and for every header it accepts: the
/// offsets are ordered inside the file (`coffFiles` ≤ `cbCabinet` ≤ length; the signature
/// exactly fills the rest); one pass writes the unsigned layout (an unsigned input comes
/// back byte for byte) and its digest input is at most the file's length; the signed layout
/// (with an 8-byte signature) gives the same digest input, reads back as signed there, and
/// its unsigned layout is the same bytes again.
pub fn cab_header(data: &[u8]) {
    use crate::cab::{CabHeader, Layout};
    let len = data.len() as u64;
    let mut r = Cursor::new(data);
    let h = match CabHeader::read(&mut r, len) {
        Ok(h) => h,
        Err(e) => {
            black_box(e.to_string());
            return;
        }
    };
    let cab = u64::from(h.cb_cabinet);
    assert!(h.folders_start() <= u64::from(h.coff_files));
    assert!(u64::from(h.coff_files) <= cab && cab <= len);
    match h.signature() {
        None => assert_eq!(cab, len, "unsigned: cbCabinet is the length"),
        Some((o, l)) => assert!(o == cab && l > 0 && o + u64::from(l) == len),
    }
    let (mut digest, mut unsigned) = (CabCollect(Vec::new()), Vec::new());
    let n = match h.stream(
        &mut r,
        &mut digest,
        Some((&mut unsigned as &mut dyn std::io::Write, Layout::Unsigned)),
    ) {
        Ok(n) => n,
        Err(e) => {
            black_box(e.to_string());
            return;
        }
    };
    assert_eq!(n, unsigned.len() as u64);
    assert_eq!(n, h.unsigned_len());
    assert!(
        digest.0.len() as u64 <= len,
        "digest input longer than the file"
    );
    if h.reserve.is_none() {
        assert!(
            unsigned == data,
            "an unsigned cabinet is not copied as it is"
        );
    }
    r.set_position(h.folders_start());
    let (mut again, mut signed) = (CabCollect(Vec::new()), Vec::new());
    h.stream(
        &mut r,
        &mut again,
        Some((
            &mut signed as &mut dyn std::io::Write,
            Layout::Signed { sig_len: 8 },
        )),
    )
    .unwrap_or_else(|e| panic!("the second pass over an accepted cabinet: {e}"));
    assert!(again.0 == digest.0, "the two layouts hash differently");
    signed.extend_from_slice(&[0x30, 6, 0, 0, 0, 0, 0, 0]);
    let mut c = Cursor::new(&signed);
    let back = CabHeader::read(&mut c, signed.len() as u64)
        .unwrap_or_else(|e| panic!("the signed layout does not read back: {e}"));
    assert_eq!(back.signature(), Some((signed.len() as u64 - 8, 8)));
    let (mut third, mut unsigned2) = (CabCollect(Vec::new()), Vec::new());
    back.stream(
        &mut c,
        &mut third,
        Some((&mut unsigned2 as &mut dyn std::io::Write, Layout::Unsigned)),
    )
    .unwrap_or_else(|e| panic!("the signed layout's pass: {e}"));
    assert!(third.0 == digest.0, "the signed layout hashes differently");
    assert!(
        unsigned2 == unsigned,
        "signed then unsigned is not the same cabinet"
    );
}

/// Counts what an MSI walk feeds.
struct MsiCount(u64);

impl codeseal_formats::digest::Sink for MsiCount {
    fn feed(&mut self, data: &[u8]) {
        self.0 += data.len() as u64;
    }
}

/// The MSI reader on the input as a compound file, and for every file `cfb` opens: both
/// signature streams are read within their limits; the content walk reads at most the file
/// (plus 16 bytes of CLSID per storage); the metadata walk ends; verification gives a report
/// or a typed error, never a panic.
pub fn msi_walk(data: &[u8]) {
    use crate::msi;
    let (mut cf, len) = match msi::open_measured(Cursor::new(data)) {
        Ok(x) => x,
        Err(e) => {
            black_box(e.to_string());
            return;
        }
    };
    match msi::read_signatures(&mut cf) {
        Ok(s) => {
            assert!(s.signature.as_ref().map_or(0, Vec::len) as u64 <= msi::MAX_SIGNATURE);
            assert!(s.ex.as_ref().map_or(0, Vec::len) as u64 <= msi::MAX_EX);
        }
        Err(e) => black_box(e.to_string()).clear(),
    }
    let mut n = MsiCount(0);
    match msi::content_walk(&mut cf, len, &mut n) {
        Ok(()) => {
            let storages = cf.walk().filter(|e| e.is_storage()).count() as u64;
            assert!(
                n.0 <= len + 16 * storages,
                "the content walk read {} bytes of a {len}-byte file",
                n.0
            );
        }
        Err(e) => black_box(e.to_string()).clear(),
    }
    let mut m = MsiCount(0);
    if let Err(e) = msi::metadata_walk(&cf, &mut m) {
        black_box(e.to_string());
    }
    let r = crate::Verifier::integrity_only().verify_reader(
        crate::FileKind::Msi,
        &mut Cursor::new(data),
        std::path::Path::new("fuzz.msi"),
    );
    black_box(r.map(|r| r.valid).map_err(|e| e.to_string())).ok();
}

/// `catalog_parse`: the input as a catalog file and as a bare CTL. Whatever parses must give
/// its members (or a typed error) and verify (or fail) without panicking; a CTL that parses
/// re-encodes to DER that parses to the same value.
pub fn catalog_parse(data: &[u8]) {
    use codeseal_formats::catalog::{parse_catalog, CertificateTrustList};
    if let Ok(cat) = parse_catalog(data) {
        let _ = black_box(cat.ctl.members());
        let _ = black_box(crate::catalog::verify_catalog(data, None));
    }
    if let Ok(ctl) = CertificateTrustList::from_der_bytes(data) {
        let _ = black_box(ctl.members());
        if let Ok(der) = ctl.to_der() {
            let again = CertificateTrustList::from_der_bytes(&der).expect("re-encoded CTL parses");
            assert_eq!(again, ctl, "the re-encoded CTL differs");
        }
    }
}

/// Fuzz target `revocation_answers`: the input as a CRL (parsed, then looked up for the fuzz
/// leaf against the fuzz root), as an OCSP answer (all checks, with a fixed nonce), as a
/// SignedData `crls` field, and as an `authroot.stl` / `disallowedcert.stl`. Everything must
/// end in a value or a typed error.
pub fn revocation_answers(data: &[u8]) {
    use crate::revocation::{embedded_crls, now_unix, ocsp_check, Crl};
    let (root, leaf) = (fuzz_root(), fuzz_leaf());
    let now = now_unix();
    if let Ok(crl) = Crl::parse(data, "fuzz") {
        let _ = black_box(crl.named_for(root));
        let _ = black_box(crl.status_of(leaf, root, now, "fuzz"));
        let _ = black_box(crl.status_of(root, root, now, "fuzz"));
    }
    let _ = black_box(ocsp_check(data, leaf, root, Some(&[0x5a; 16]), now, "fuzz"));
    let _ = black_box(ocsp_check(data, leaf, root, None, now, "fuzz"));
    let mut notes = Vec::new();
    let _ = black_box(embedded_crls(data, &mut notes));
    let _ = black_box(crate::trust::TrustStore::from_authroot(
        data,
        vec![root.clone()],
    ));
    let _ = black_box(crate::trust::TrustStore::default().deny_stl(data));
}

/// `appx::Zip::parse` on the input as a package, and for every archive it accepts: the
/// entries' local records lie inside the file, before the central directory; the digest
/// blob, the block-map check, the Publisher and the signature entry give typed results.
/// When the unsigned form can be prepared it parses back without a signature and with the
/// Override, and adding a signature to it keeps its digest blob and reads back as exactly
/// that signature (what signing relies on).
pub fn appx_parse(data: &[u8]) {
    use codeseal_formats::appx::{self, Zip};
    let zip = match Zip::parse(data) {
        Ok(z) => z,
        Err(e) => {
            black_box(e.to_string());
            return;
        }
    };
    for e in &zip.entries {
        assert!(e.local.start <= e.local.end && e.local.end <= zip.central_dir.start);
        assert!(e.data_offset >= e.local.start && e.data_offset <= e.local.end);
    }
    assert!(zip.central_dir.end <= data.len() as u64);
    let blob = appx::digest_blob(data, &zip);
    if let Ok((alg, b)) = &blob {
        assert!(
            appx::is_digest_blob(b, *alg),
            "a blob codeseal makes is one"
        );
    }
    let _ = black_box(appx::check_block_map(data, &zip).map(|p| p.len()));
    // The streamed path (what sign and verify use): the same structure through a reader,
    // the digest blob computed in the one pass equal to the in-memory one, a bundle's
    // inner packages checked (their own signatures' digests too).
    let mut src = appx::SeekSource::new(std::io::Cursor::new(data)).expect("a cursor seeks");
    let streamed = Zip::parse_from(&mut src).expect("the same archive through a reader");
    assert_eq!(streamed.entries.len(), zip.entries.len());
    let bundle = zip.entry(appx::BUNDLE_MANIFEST_NAME).is_some();
    if let Ok(check) = appx::PackageCheck::new(&mut src, &zip, true, bundle) {
        if let Ok(r) = appx::run_check(&mut src, &zip, check) {
            if let (Ok(b), Some(d)) = (&blob, &r.digest) {
                assert_eq!(b, d, "the streamed blob is the in-memory one");
            }
            black_box(r.inner.len());
        }
    }
    let _ = black_box(appx::manifest_publisher(data, &zip).map(|p| appx::parse_publisher(&p)));
    if let Some(sig) = zip.signature() {
        if let Ok(p7x) = zip.read(data, sig, appx::MAX_PART) {
            let _ = black_box(appx::p7x_der(&p7x).map(<[u8]>::len));
        }
    }
    let Ok(unsigned) = zip.prepare_unsigned(data) else {
        return;
    };
    let u = Zip::parse(&unsigned).expect("the unsigned form parses");
    assert!(
        u.signature().is_none(),
        "the unsigned form has no signature"
    );
    let Ok((alg, ublob)) = appx::digest_blob(&unsigned, &u) else {
        return;
    };
    let der = [0x30, 0x03, 0x02, 0x01, 0x01];
    let signed = u
        .with_signature(&unsigned, &der)
        .expect("a signature is added");
    let s = Zip::parse(&signed).expect("the signed form parses");
    let p7x = s
        .read(&signed, s.signature().expect("signature entry"), 1 << 10)
        .expect("the signature entry reads");
    assert_eq!(appx::p7x_der(&p7x).expect("PKCX"), &der[..]);
    let (alg2, sblob) = appx::digest_blob(&signed, &s).expect("the signed form hashes");
    assert_eq!((alg, ublob), (alg2, sblob), "signing keeps the digest blob");
}
