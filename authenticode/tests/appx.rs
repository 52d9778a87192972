//! APPX / MSIX packages written by `scripts/make-appx.py` (a manifest, stored and deflated
//! files, a multi-MiB file deflated block by block as makeappx does, an exact block map):
//! signed by osslsigncode 2.9 and 2.14, their signatures must carry the APPX digest blob
//! codeseal computes for the same package.
mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use codeseal_authenticode::formats::{
    appx::{self, Zip},
    pkcs7::ParsedSignature,
    spc::sip_guid,
};
use codeseal_signer::DigestAlgorithm;
use common::*;

/// The subject of the test leaf `leaf-rsa2048`, as the manifest's Publisher.
const PUBLISHER: &str = "CN=codeseal test signer (leaf-rsa2048), O=codeseal test PKI (throwaway)";

fn work(name: &str) -> PathBuf {
    let d = env()
        .fixtures
        .parent()
        .expect("test env")
        .join("appx-tests")
        .join(name);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("work dir");
    d
}

/// Writes a package with `scripts/make-appx.py`.
fn make_appx(out: &Path, big_mib: u32, extra: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-appx.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(out)
        .arg(PUBLISHER)
        .arg(big_mib.to_string())
        .args(extra)
        .output()
        .expect("python3 (run scripts/setup.sh)");
    assert!(
        o.status.success(),
        "make-appx.py: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn reader_sees_the_generated_package() {
    let d = work("reader");
    let p = d.join("t.appx");
    make_appx(&p, 1, &[]);
    let data = fs::read(&p).expect("read");
    let zip = Zip::parse(&data).expect("parse");
    let names: Vec<&str> = zip.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "AppxManifest.xml",
            "Assets/readme.txt",
            "Assets/big.bin",
            "Assets/zeros.bin",
            "AppxBlockMap.xml",
            "[Content_Types].xml"
        ]
    );
    let big = zip.entry("Assets/big.bin").expect("big");
    assert_eq!(big.method, appx::Method::Deflated);
    assert_eq!(
        zip.read(&data, big, 8 << 20).expect("inflate").len() as u64,
        big.size
    );
    // The inflate limit holds.
    assert!(zip.read(&data, big, big.size - 1).is_err());
    assert!(zip.signature().is_none());
    let (alg, blob) = appx::digest_blob(&data, &zip).expect("blob");
    assert_eq!(alg, DigestAlgorithm::Sha256);
    assert_eq!(blob.len(), 4 + 4 * 36);
    // Every truncation is a typed error, never a panic.
    for cut in [
        0,
        1,
        21,
        22,
        data.len() / 2,
        data.len() - 23,
        data.len() - 1,
    ] {
        assert!(
            Zip::parse(data.get(..cut).unwrap_or_default()).is_err(),
            "cut {cut}"
        );
    }
}

#[test]
fn osslsigncode_signatures_carry_the_digest_blob_codeseal_computes() {
    let d = work("osslsigncode");
    for (h, flags, want) in [
        ("sha256", &[][..], DigestAlgorithm::Sha256),
        ("sha384", &["--sha384"][..], DigestAlgorithm::Sha384),
    ] {
        let p = d.join(format!("t-{h}.appx"));
        make_appx(&p, 3, flags);
        for (label, bin) in [
            ("2.9", Path::new("osslsigncode")),
            ("2.14", osslsigncode_new()),
        ] {
            let s = d.join(format!("signed-{label}-{h}.appx"));
            osslsigncode_sign_with(bin, &p, &s, "leaf-rsa2048", h);
            let (ok, log) = osslsigncode_verify_with(bin, &s, &root());
            assert!(
                ok,
                "osslsigncode {label} rejects its own {h} signature: {log}"
            );
            let data = fs::read(&s).expect("read");
            let zip = Zip::parse(&data).expect("parse signed");
            let sig = zip.signature().expect("signature entry");
            let p7x = zip.read(&data, sig, appx::MAX_PART).expect("p7x");
            let der = appx::p7x_der(&p7x).expect("PKCX");
            let parsed = ParsedSignature::parse(der).expect("their signature parses");
            let (alg, blob) = appx::digest_blob(&data, &zip).expect("blob");
            assert_eq!(alg, want, "the block map's HashMethod");
            assert_eq!(
                parsed.image_digest(),
                &blob[..],
                "osslsigncode {label} -h {h}: digest blob differs"
            );
            let guid = parsed
                .spc
                .data
                .value
                .as_ref()
                .and_then(sip_guid)
                .expect("SpcSipInfo");
            assert_eq!(guid, appx::SIP_APPX);
            // A flipped byte in a file's data changes AXPC.
            let mut bad = data.clone();
            let big = zip.entry("Assets/big.bin").expect("big");
            let at = usize::try_from(big.data_offset).expect("offset") + 1000;
            bad[at] ^= 1;
            let zip2 = Zip::parse(&bad).expect("parse flipped");
            assert_ne!(appx::digest_blob(&bad, &zip2).expect("blob").1, blob);
        }
    }
}

/// osslsigncode (2.9 and 2.14) rewrites a *stored* [Content_Types].xml with deflated data
/// under the method "stored" (`unzip -t`: bad CRC); codeseal's reader refuses the result
/// with a typed error instead of hashing garbage.
#[test]
fn osslsigncode_breaks_a_stored_content_types_and_codeseal_says_so() {
    let d = work("stored-parts");
    let p = d.join("t.appx");
    make_appx(&p, 1, &["--stored-parts"]);
    let data = fs::read(&p).expect("read");
    let zip = Zip::parse(&data).expect("parse");
    appx::digest_blob(&data, &zip).expect("the unsigned package is fine");
    let s = d.join("signed.appx");
    osslsigncode_sign_with(Path::new("osslsigncode"), &p, &s, "leaf-rsa2048", "sha256");
    let data = fs::read(&s).expect("read");
    let zip = Zip::parse(&data).expect("the structure is fine");
    let e = appx::digest_blob(&data, &zip).expect_err("broken content types");
    assert!(e.to_string().contains("[Content_Types].xml"), "{e}");
}
