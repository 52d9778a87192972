//! How another Rust program signs a PE file with codeseal, as a library.
//!
//! ```text
//! cargo run -p codeseal-examples --example sign_pe -- KEY.pem CHAIN.pem IN.exe OUT.exe
//! ```
//!
//! The steps are the ones the `codeseal sign` command takes:
//!
//! 1. open the private key (`codeseal_keys::open_key`, which takes the same key URIs as the
//!    CLI: a plain path, `file:/path/key.pem`, `file:/path/key.p12?password-env=VAR`, ...);
//! 2. read the certificate chain, leaf first (`codeseal_keys::load_certificates`);
//! 3. put them together in a `SigningIdentity`, which refuses a certificate that does not
//!    belong to the key;
//! 4. sign (`codeseal_authenticode::sign_file`): one streaming pass over the input, one call
//!    to the key, the output checked before it replaces anything;
//! 5. verify the result (`codeseal_authenticode::Verifier`; this example has no trust anchors,
//!    so it checks integrity only, chosen by name: `Verifier::integrity_only()`).
//!
//! A program that only ever uses local key files can skip the URI layer and call the
//! backend directly:
//!
//! ```ignore
//! let loaded = codeseal_local::LocalKey::from_file(Path::new("key.pem"), None)?;
//! let key: Arc<dyn KeySigner> = Arc::new(loaded.key);
//! ```
//!
//! Exits with status 0 when the file was signed and its signature verifies, 1 otherwise.
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use anyhow::{bail, Context as _};
use codeseal_authenticode::{sign_file, OpusInfo, SignOptions, Verifier};
use codeseal_signer::{DigestAlgorithm, KeySigner, SignError, SigningIdentity};

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            // `{:#}` prints the whole context chain: "opening key ...: <cause>".
            eprintln!("sign_pe: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Signs and verifies; returns whether the signed file verified.
fn run() -> anyhow::Result<bool> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [key_path, chain_path, input, output] = args.as_slice() else {
        bail!("usage: sign_pe KEY.pem CHAIN.pem IN.exe OUT.exe");
    };

    // 1. The key. `open_key` returns an `Arc<dyn KeySigner>`: the rest of the program does
    //    not know (or care) whether the key is a local file or, later, a KMS/HSM key.
    let key_uri = format!("file:{}", key_path.display());
    let opened =
        codeseal_keys::open_key(&key_uri).with_context(|| format!("opening key {key_uri}"))?;
    let key: Arc<dyn KeySigner> = opened.key;
    println!("key:       {}", key.describe());

    // 2. The certificate chain, leaf first (a PEM file with several certificates, or one DER
    //    certificate). A PKCS#12 key file may carry its own chain in `opened.chain`.
    let chain = codeseal_keys::load_certificates(chain_path)?;

    // 3. The identity: `SigningIdentity::new` checks that the leaf certificate's public key is
    //    the key's, so a certificate picked for the wrong key is refused before signing.
    let identity = match SigningIdentity::new(key, chain) {
        Ok(id) => id,
        Err(e @ SignError::KeyMismatch { .. }) => {
            bail!("{}: {e}", chain_path.display())
        }
        Err(e) => return Err(e).context("building the signing identity"),
    };
    println!(
        "signer:    {} ({} certificate(s) in the chain)",
        identity.leaf().tbs_certificate.subject,
        identity.chain().len()
    );

    // 4. Sign. Everything not set here keeps its default (SHA-256; refuse to replace an
    //    existing signature; refuse to overwrite an existing output file).
    let opts = SignOptions::default()
        .with_digest(DigestAlgorithm::Sha256)
        .with_opus(OpusInfo {
            // Shown by Windows as the program name in the UAC prompt.
            program_name: Some("codeseal sign_pe example".into()),
            url: None,
        })
        // This example may be run repeatedly with the same OUT.
        .with_force(true);
    let outcome = sign_file(&identity, input, output, &opts)
        .with_context(|| format!("signing {}", input.display()))?;
    println!(
        "signed:    {} -> {} ({} bytes, {})",
        input.display(),
        outcome.output.display(),
        outcome.output_len,
        outcome.signature_algorithm
    );
    println!(
        "digest:    {} {}",
        outcome.digest_algorithm,
        to_hex(&outcome.image_digest)
    );

    // 5. Verify what was written. This recomputes the image digest and checks the PKCS#7
    //    signature with the embedded signer certificate; it does not build a chain to a
    //    trusted root (use e.g. `osslsigncode verify -CAfile root.pem` for that).
    verify(&outcome.output)
}

/// Verifies `path` and prints the verdict; returns whether it is valid.
fn verify(path: &Path) -> anyhow::Result<bool> {
    // Integrity only, chosen by name: this example has no trust anchors to check the chain
    // with (`Verifier::new(roots)` does that).
    let report = Verifier::integrity_only()
        .verify_file(path)
        .with_context(|| format!("verifying {}", path.display()))?;
    for s in &report.signatures {
        println!(
            "signature {}: {} computed {} (image digest {}, signature {})",
            s.index,
            s.digest_algorithm,
            s.computed_digest,
            if s.image_digest_ok { "ok" } else { "FAILED" },
            if s.signature_ok { "ok" } else { "FAILED" },
        );
        for e in &s.errors {
            println!("  error: {e}");
        }
    }
    for e in &report.errors {
        println!("error: {e}");
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    println!(
        "verdict:   {}",
        if report.valid { "valid" } else { "INVALID" }
    );
    Ok(report.valid)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
