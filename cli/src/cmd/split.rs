//! Split signing: `codeseal digest` (hash, write the request), `sign-digest` (sign it with
//! only the key, on another machine) and `attach-digest-signature` (check and attach).
use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, Context};
use clap::Args;
use codeseal_authenticode::OpusInfo;
use codeseal_signer::DigestAlgorithm;

use super::manage::AttachFlags;

/// The arguments of `codeseal digest`.
#[derive(Args)]
pub(crate) struct DigestArgs {
    /// The file to sign later.
    pub(crate) input: PathBuf,
    /// The certificate chain (leaf first) of the key that will sign.
    #[arg(long)]
    pub(crate) cert: PathBuf,
    /// Digest algorithm (default sha256; sha384 for P-384 keys).
    #[arg(long)]
    pub(crate) digest: Option<DigestAlgorithm>,
    /// Allow SHA-1 (legacy).
    #[arg(long)]
    allow_sha1: bool,
    /// Program name.
    #[arg(long, short = 'n')]
    pub(crate) name: Option<String>,
    /// More-info URL.
    #[arg(long, short = 'i')]
    pub(crate) url: Option<String>,
    /// Include page hashes.
    #[arg(long)]
    pub(crate) page_hashes: bool,
    /// APPX / MSIX: make the request even though the certificate's subject is not the
    /// manifest's Publisher (Windows will not install such a package; for test packages).
    #[arg(long)]
    pub(crate) allow_publisher_mismatch: bool,
    /// The request file to write (JSON).
    #[arg(short, long)]
    pub(crate) output: PathBuf,
}

/// The arguments of `codeseal sign-digest`.
#[derive(Args)]
pub(crate) struct SignDigestArgs {
    /// The key URI.
    #[arg(long, env = "CODESEAL_KEY", hide_env_values = true)]
    pub(crate) key: String,
    /// The request from `codeseal digest`, or a SignTool `.dig` file.
    pub(crate) request: PathBuf,
    /// Where to write the signature (default: REQUEST.sig, or X.dig.signed for X.dig).
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    /// Treat the input as a SignTool `.dig` file (automatic for the `.dig` extension).
    #[arg(long)]
    pub(crate) signtool: bool,
    /// The digest algorithm of a `.dig` file (SignTool's /fd).
    #[arg(long, default_value = "sha256")]
    pub(crate) digest: DigestAlgorithm,
}

/// The arguments of `codeseal attach-digest-signature`.
#[derive(Args)]
pub(crate) struct AttachDigestSignatureArgs {
    /// The file the request was made from.
    pub(crate) input: PathBuf,
    /// The request from `codeseal digest`.
    pub(crate) request: PathBuf,
    /// The signature from `codeseal sign-digest` (base64).
    pub(crate) signature: PathBuf,
    /// The certificate chain, leaf first.
    #[arg(long)]
    pub(crate) cert: PathBuf,
    #[command(flatten)]
    pub(crate) write: AttachFlags,
}

pub(crate) fn cmd_digest(a: DigestArgs) -> anyhow::Result<ExitCode> {
    let DigestArgs {
        input,
        cert,
        digest,
        allow_sha1,
        name,
        url,
        page_hashes,
        allow_publisher_mismatch,
        output,
    } = a;
    let chain = codeseal_keys::load_certificates(&cert)?;
    let leaf = chain.first().context("no certificate")?;
    let kind = codeseal_signer::key_kind_of(&leaf.tbs_certificate.subject_public_key_info)?;
    let digest = digest.unwrap_or(kind.default_digest());
    if digest.is_weak() && !allow_sha1 {
        bail!("SHA-1 is weak; pass --allow-sha1 to use it (legacy dual signing)");
    }
    let req = codeseal_authenticode::split::make_request_with(
        &input,
        leaf,
        digest,
        &OpusInfo {
            program_name: name,
            url,
        },
        page_hashes,
        allow_publisher_mismatch,
    )?;
    std::fs::write(&output, serde_json::to_vec_pretty(&req)?)
        .with_context(|| format!("writing {}", output.display()))?;
    println!(
        "wrote {} (sign its digest with `codeseal sign-digest`)",
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn cmd_attach_digest_signature(
    a: AttachDigestSignatureArgs,
) -> anyhow::Result<ExitCode> {
    use base64::Engine;
    let AttachDigestSignatureArgs {
        input,
        request,
        signature,
        cert,
        write,
    } = a;
    let req: codeseal_authenticode::split::DigestRequest = serde_json::from_slice(
        &std::fs::read(&request).with_context(|| format!("reading {}", request.display()))?,
    )
    .with_context(|| format!("{} is not a codeseal digest request", request.display()))?;
    let text = std::fs::read_to_string(&signature)
        .with_context(|| format!("reading {}", signature.display()))?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .with_context(|| format!("{} is not base64", signature.display()))?;
    let chain = codeseal_keys::load_certificates(&cert)?;
    let (out, opts) = write.resolve(&input);
    codeseal_authenticode::split::attach_request_signature(&input, &req, &sig, &chain, &out, opts)
        .with_context(|| format!("attaching the signature to {}", input.display()))?;
    println!("signed {} -> {}", input.display(), out.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn cmd_sign_digest(a: SignDigestArgs) -> anyhow::Result<ExitCode> {
    let SignDigestArgs {
        key,
        request,
        output,
        signtool,
        digest,
    } = a;
    let (key, request) = (key.as_str(), request.as_path());
    use base64::Engine;
    let shown = codeseal_keys::redact_uri(key);
    let opened = codeseal_keys::open_key(key).with_context(|| format!("opening key {shown}"))?;
    let bytes = std::fs::read(request).with_context(|| format!("reading {}", request.display()))?;
    let is_dig = signtool
        || request
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("dig"));
    let (text, default_out) = if is_dig {
        let sig =
            codeseal_authenticode::split::sign_signtool_dig(opened.key.as_ref(), &bytes, digest)?;
        (sig, PathBuf::from(format!("{}.signed", request.display())))
    } else {
        let req: codeseal_authenticode::split::DigestRequest = serde_json::from_slice(&bytes)
            .with_context(|| {
                format!(
                    "{} is not a codeseal digest request (a SignTool .dig? pass --signtool)",
                    request.display()
                )
            })?;
        let sig = codeseal_authenticode::split::sign_request(opened.key.as_ref(), &req)?;
        (
            base64::engine::general_purpose::STANDARD.encode(sig),
            PathBuf::from(format!("{}.sig", request.display())),
        )
    };
    let out = output.unwrap_or(default_out);
    std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}
