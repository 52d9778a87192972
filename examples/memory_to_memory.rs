//! Sign a file held in memory into memory, then verify it against a trust anchor: no file
//! system between the two (a build service that receives and returns bytes).
//!
//! ```text
//! cargo run -p codeseal-examples --example memory_to_memory -- KEY CHAIN.pem ROOT.pem IN OUT
//! ```
//!
//! KEY is a key URI or path (as for `codeseal sign --key`). IN is read into memory, signed
//! with `sign_bytes`, verified from memory with `Verifier::verify_reader`, and written to OUT
//! only when valid. The format (PE or script) is detected from IN's first bytes and name.
use std::{path::Path, process::ExitCode, sync::Arc};

use anyhow::{bail, Context as _};
use codeseal_authenticode::{sign_bytes, FileKind, SignOptions, Verifier};
use codeseal_signer::SigningIdentity;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [key, chain, root, input, output] = args.as_slice() else {
        bail!("usage: memory_to_memory KEY CHAIN.pem ROOT.pem IN OUT");
    };
    let opened = codeseal_keys::open_key(key).context("opening the key")?;
    let chain = codeseal_keys::load_certificates(Path::new(chain))?;
    let identity = SigningIdentity::new(Arc::clone(&opened.key), chain)?;

    let bytes = std::fs::read(input).with_context(|| format!("reading {input}"))?;
    let kind = FileKind::detect_from(&bytes, Path::new(input))?;
    let signed = sign_bytes(&identity, kind, &bytes, &SignOptions::default())?;

    let roots = codeseal_keys::load_certificates(Path::new(root))?;
    let report = Verifier::new(roots)?.verify_reader(
        kind,
        &mut std::io::Cursor::new(&signed),
        Path::new(input),
    )?;
    if !report.valid {
        bail!("the signed bytes do not verify: {:?}", report.signatures);
    }
    std::fs::write(output, &signed).with_context(|| format!("writing {output}"))?;
    println!(
        "{kind} signed in memory: {} -> {} bytes, valid",
        bytes.len(),
        signed.len()
    );
    Ok(())
}
