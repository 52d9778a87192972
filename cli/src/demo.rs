//! `codeseal demo`: a throwaway PKI, a signed sample PE, and its verification.
use std::{path::PathBuf, process::ExitCode, str::FromStr, sync::Arc, time::Duration};

use anyhow::Context;
use codeseal_authenticode::{sign_file, verify_file, OpusInfo, SignOptions};
use codeseal_local::LocalKey;
use codeseal_signer::{DigestAlgorithm, KeyKind, KeySigner, RustCryptoSigner, SigningIdentity};
use der::{asn1::ObjectIdentifier, EncodePem};
use x509_cert::{
    builder::{Builder, CertificateBuilder, Profile},
    ext::pkix::ExtendedKeyUsage,
    name::Name,
    serial_number::SerialNumber,
    time::Validity,
    Certificate,
};

/// The sample PE bundled with the CLI (a tiny mingw-w64 console program; see assets/README.md).
const SAMPLE_EXE: &[u8] = include_bytes!("../assets/sample.exe");
const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");

fn issue(
    profile: Profile,
    serial: u8,
    subject: &str,
    subject_key: &LocalKey,
    issuer_key: Arc<dyn KeySigner>,
    code_signing: bool,
) -> anyhow::Result<Certificate> {
    let alg = issuer_key.key_kind().with_digest(DigestAlgorithm::Sha256);
    let signer = RustCryptoSigner::new(issuer_key, alg)?;
    let mut b = CertificateBuilder::new(
        profile,
        SerialNumber::new(&[serial])?,
        Validity::from_now(Duration::from_secs(7 * 24 * 3600))?,
        Name::from_str(subject)?,
        subject_key.public_key().clone(),
        &signer,
    )?;
    if code_signing {
        b.add_extension(&ExtendedKeyUsage(vec![CODE_SIGNING]))?;
    }
    Ok(b.build::<codeseal_signer::Signature>()?)
}

pub fn run(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let tmp;
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            d
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    println!("codeseal demo: working in {}", dir.display());

    let root_key = Arc::new(LocalKey::generate(KeyKind::EcP256)?);
    let int_key = Arc::new(LocalKey::generate(KeyKind::EcP256)?);
    let leaf_key = Arc::new(LocalKey::generate(KeyKind::EcP256)?);
    let root_name = "CN=codeseal demo root,O=codeseal demo";
    let int_name = "CN=codeseal demo intermediate,O=codeseal demo";
    let root = issue(
        Profile::Root,
        1,
        root_name,
        &root_key,
        root_key.clone(),
        false,
    )?;
    let int = issue(
        Profile::SubCA {
            issuer: Name::from_str(root_name)?,
            path_len_constraint: Some(0),
        },
        2,
        int_name,
        &int_key,
        root_key.clone(),
        false,
    )?;
    let leaf = issue(
        Profile::Leaf {
            issuer: Name::from_str(int_name)?,
            enable_key_agreement: false,
            enable_key_encipherment: false,
        },
        3,
        "CN=codeseal demo code signing,O=codeseal demo",
        &leaf_key,
        int_key.clone(),
        true,
    )?;
    let pem = |c: &Certificate| c.to_pem(der::pem::LineEnding::LF);
    std::fs::write(dir.join("root.pem"), pem(&root)?)?;
    std::fs::write(dir.join("chain.pem"), pem(&leaf)? + &pem(&int)?)?;
    std::fs::write(dir.join("leaf.key"), leaf_key.to_pkcs8_pem()?.as_bytes())?;
    println!("1. made a throwaway PKI (ECDSA P-256): root -> intermediate -> code-signing leaf");
    println!("   {}/root.pem, chain.pem, leaf.key", dir.display());

    let input = dir.join("sample.exe");
    let output = dir.join("sample-signed.exe");
    std::fs::write(&input, SAMPLE_EXE)?;
    let _ = std::fs::remove_file(&output);
    let identity = SigningIdentity::new(leaf_key, vec![leaf, int])?;
    let opts = SignOptions {
        opus: OpusInfo {
            program_name: Some("codeseal demo".into()),
            url: None,
        },
        ..SignOptions::default()
    };
    let out = sign_file(&identity, &input, &output, &opts).context("signing the sample")?;
    println!(
        "2. signed {} ({} bytes) -> {} ({} bytes), SHA-256 image digest {}",
        input.display(),
        SAMPLE_EXE.len(),
        output.display(),
        out.output_len,
        hex::encode(&out.image_digest)
    );

    let report = verify_file(&output)?;
    println!("3. verified with codeseal's verifier:");
    crate::print_report(&report);
    if !report.valid {
        return Ok(ExitCode::from(1));
    }
    match std::process::Command::new("osslsigncode")
        .args(["verify", "-CAfile"])
        .arg(dir.join("root.pem"))
        .arg("-in")
        .arg(&output)
        .output()
    {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            let ok = o.status.success() && text.lines().any(|l| l.trim() == "Succeeded");
            println!(
                "4. independent check: osslsigncode verify -CAfile root.pem: {}",
                if ok { "Succeeded" } else { "FAILED" }
            );
            if !ok {
                println!("{text}{}", String::from_utf8_lossy(&o.stderr));
                return Ok(ExitCode::from(1));
            }
        }
        Err(_) => println!("4. (osslsigncode not installed: independent check skipped)"),
    }
    Ok(ExitCode::SUCCESS)
}
