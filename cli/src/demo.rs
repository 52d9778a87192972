//! `codeseal demo`: a throwaway PKI, a signed sample PE, and its verification.
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use codeseal_authenticode::{sign_file, OpusInfo, SignOptions, Verifier};
use codeseal_local::ThrowawayPki;
use codeseal_signer::SigningIdentity;

/// The sample PE bundled with the CLI (a tiny mingw-w64 console program; see assets/README.md).
const SAMPLE_EXE: &[u8] = include_bytes!("../assets/sample.exe");

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

    let pki = ThrowawayPki::generate("codeseal demo").map_err(|e| anyhow::anyhow!(e))?;
    pki.write_to(&dir).map_err(|e| anyhow::anyhow!(e))?;
    println!("1. made a throwaway PKI (ECDSA P-256): root -> intermediate -> code-signing leaf");
    println!("   {}/root.pem, chain.pem, leaf.key", dir.display());

    let input = dir.join("sample.exe");
    let output = dir.join("sample-signed.exe");
    std::fs::write(&input, SAMPLE_EXE)?;
    let _ = std::fs::remove_file(&output);
    let identity = SigningIdentity::new(pki.leaf_key.clone(), pki.chain.clone())?;
    let opts = SignOptions::default().with_opus(OpusInfo {
        program_name: Some("codeseal demo".into()),
        url: None,
    });
    let out = sign_file(&identity, &input, &output, &opts).context("signing the sample")?;
    println!(
        "2. signed {} ({} bytes) -> {} ({} bytes), SHA-256 image digest {}",
        input.display(),
        SAMPLE_EXE.len(),
        output.display(),
        out.output_len,
        hex::encode(&out.image_digest)
    );

    let roots = codeseal_keys::load_certificates(&dir.join("root.pem"))?;
    let report = Verifier::new(roots)?.verify_file(&output)?;
    println!("3. verified with codeseal's verifier, trusting root.pem:");
    crate::cmd::verify::print_report(&report);
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
