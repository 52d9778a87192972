//! `codeseal csr`: a PKCS#10 request signed by the key itself (local, KMS or HSM).
use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, Context};
use clap::Args;
use codeseal_signer::DigestAlgorithm;

#[derive(Args)]
pub(crate) struct CsrArgs {
    /// The key URI (as for `sign`).
    #[arg(long, env = "CODESEAL_KEY", hide_env_values = true)]
    pub(crate) key: String,
    /// The subject, RFC 4514 style: "CN=Example Ltd,O=Example Ltd,L=City,C=US".
    #[arg(long)]
    pub(crate) subject: String,
    /// Digest for the request's signature (default sha256; sha384 for P-384 keys).
    #[arg(long)]
    pub(crate) digest: Option<DigestAlgorithm>,
    /// Request the codeSigning extended key usage.
    #[arg(long)]
    pub(crate) eku_code_signing: bool,
    /// Request the digitalSignature key usage.
    #[arg(long)]
    pub(crate) key_usage: bool,
    /// Write DER instead of PEM.
    #[arg(long, conflicts_with = "pem")]
    pub(crate) der: bool,
    /// Write PEM (the default).
    #[arg(long)]
    pub(crate) pem: bool,
    /// Output file (default: standard output, PEM only).
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
}

pub(crate) fn cmd_csr(a: CsrArgs) -> anyhow::Result<ExitCode> {
    use der::{Encode, EncodePem};
    let shown = codeseal_keys::redact_uri(&a.key);
    let opened = codeseal_keys::open_key(&a.key).with_context(|| format!("opening key {shown}"))?;
    let opts = codeseal_signer::csr::CsrOptions {
        digest: a.digest.unwrap_or(opened.key.key_kind().default_digest()),
        code_signing_eku: a.eku_code_signing,
        digital_signature_key_usage: a.key_usage,
    };
    let req = codeseal_signer::csr::build_csr(&opened.key, &a.subject, &opts)?;
    let bytes = if a.der {
        req.to_der()?
    } else {
        req.to_pem(der::pem::LineEnding::LF)?.into_bytes()
    };
    match a.output {
        Some(p) => {
            std::fs::write(&p, &bytes).with_context(|| format!("writing {}", p.display()))?;
            eprintln!(
                "wrote {} ({})",
                p.display(),
                if a.der { "DER" } else { "PEM" }
            );
        }
        None if a.der => bail!("DER output needs -o FILE"),
        None => print!("{}", String::from_utf8_lossy(&bytes)),
    }
    Ok(ExitCode::SUCCESS)
}
