//! Sign a file with an AWS KMS key from async code, then verify it against a trust anchor:
//! what a tokio service (a build bot, a release pipeline) embeds.
//!
//! ```text
//! cargo run -p codeseal-examples --example kms_async -- awskms:///alias/NAME CHAIN.pem ROOT.pem IN OUT
//! ```
//!
//! KEY_URI is any KMS reference `codeseal_keys::open_key` takes (`awskms:///alias/NAME`,
//! `awskms:///KEY-ID`, a key or alias ARN); credentials and region come from the AWS default
//! chain (`AWS_REGION`, `AWS_PROFILE`, ...; `AWS_ENDPOINT_URL` for a test endpoint). CHAIN.pem
//! holds the KMS key's certificate first, then its issuers.
//!
//! Nothing here blocks the executor: opening the key (DescribeKey, GetPublicKey) and reading
//! certificates run on tokio's blocking pool, `sign_file_async` (feature `async` of
//! codeseal-authenticode) hashes and writes the file there too and only awaits the KMS Sign
//! call, and verification goes back to the blocking pool.
use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::{bail, Context as _};
use codeseal_authenticode::{sign_file_async, SignOptions, Verifier};
use codeseal_signer::SigningIdentity;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [key_uri, chain, root, input, output] = args.as_slice() else {
        bail!("usage: kms_async KEY_URI CHAIN.pem ROOT.pem IN OUT");
    };
    let (input, output) = (PathBuf::from(input), PathBuf::from(output));

    // Blocking setup (network calls to KMS, file reads) off the executor.
    let (key_uri, chain, root) = (key_uri.clone(), PathBuf::from(chain), PathBuf::from(root));
    let (identity, roots) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let opened = codeseal_keys::open_key(&key_uri).context("opening the KMS key")?;
        let chain = codeseal_keys::load_certificates(&chain)?;
        // Refuses a certificate that does not belong to the KMS key.
        let identity = SigningIdentity::new(Arc::clone(&opened.key), chain)?;
        Ok((identity, codeseal_keys::load_certificates(&root)?))
    })
    .await??;

    let outcome = sign_file_async(&identity, &input, &output, &SignOptions::default()).await?;

    let out = output.clone();
    let report =
        tokio::task::spawn_blocking(move || Verifier::new(roots)?.verify_file(&out)).await??;
    if !report.valid {
        // Not a file to ship: remove it.
        let _ = tokio::fs::remove_file(&output).await;
        bail!("the signed file does not verify: {:?}", report.signatures);
    }
    println!(
        "{} signed with {} ({}), {} bytes, valid against the root",
        outcome.kind,
        identity.key().describe(),
        outcome.signature_algorithm,
        outcome.output_len
    );
    Ok(())
}
