//! `codeseal remove`, `extract` and `attach`: the signature as a separate object.
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Args;

/// The arguments of `codeseal remove`.
#[derive(Args)]
pub(crate) struct RemoveArgs {
    /// The signed file.
    pub(crate) input: PathBuf,
    /// Output (default: the input, replaced atomically).
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    /// Overwrite an existing output.
    #[arg(long)]
    pub(crate) force: bool,
}

/// The arguments of `codeseal extract`.
#[derive(Args)]
pub(crate) struct ExtractArgs {
    /// The signed file.
    pub(crate) input: PathBuf,
    /// Where to write the signature.
    #[arg(short, long)]
    pub(crate) output: PathBuf,
    /// Write PEM.
    #[arg(long)]
    pub(crate) pem: bool,
}

/// The arguments of `codeseal attach`.
#[derive(Args)]
pub(crate) struct AttachArgs {
    /// The file to attach to.
    pub(crate) input: PathBuf,
    /// The signature (DER or PEM).
    pub(crate) signature: PathBuf,
    #[command(flatten)]
    pub(crate) write: AttachFlags,
}

/// Where and how `attach` and `attach-digest-signature` write.
#[derive(Args)]
pub(crate) struct AttachFlags {
    /// Output (default: the input, replaced atomically).
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    /// Replace an existing signature.
    #[arg(long, conflicts_with = "append")]
    pub(crate) replace: bool,
    /// Nest into the existing signature.
    #[arg(long)]
    pub(crate) append: bool,
    /// Overwrite an existing output.
    #[arg(long)]
    pub(crate) force: bool,
}

impl AttachFlags {
    /// The output path (the input by default) and the library options.
    pub(crate) fn resolve(
        &self,
        input: &std::path::Path,
    ) -> (PathBuf, codeseal_authenticode::AttachOptions) {
        (
            self.output.clone().unwrap_or_else(|| input.to_path_buf()),
            codeseal_authenticode::AttachOptions::default()
                .with_replace(self.replace)
                .with_append(self.append)
                .with_force(self.force),
        )
    }
}

pub(crate) fn cmd_remove(a: RemoveArgs) -> anyhow::Result<ExitCode> {
    let out = a.output.unwrap_or_else(|| a.input.clone());
    let len = codeseal_authenticode::remove_signature(&a.input, &out, a.force)
        .with_context(|| format!("removing the signature of {}", a.input.display()))?;
    println!("removed the signature: {} ({len} bytes)", out.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn cmd_attach(a: AttachArgs) -> anyhow::Result<ExitCode> {
    let (out, opts) = a.write.resolve(&a.input);
    let sig = std::fs::read(&a.signature)
        .with_context(|| format!("reading {}", a.signature.display()))?;
    let len =
        codeseal_authenticode::attach_signature(&a.input, &sig, &out, opts).with_context(|| {
            format!(
                "attaching {} to {}",
                a.signature.display(),
                a.input.display()
            )
        })?;
    println!("attached: {} ({len} bytes)", out.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn cmd_extract(a: ExtractArgs) -> anyhow::Result<ExitCode> {
    let ExtractArgs { input, output, pem } = a;
    let der = codeseal_authenticode::extract_signature(&input)
        .with_context(|| format!("reading the signature of {}", input.display()))?;
    let bytes = if pem {
        der::pem::encode_string("PKCS7", der::pem::LineEnding::LF, &der)
            .map_err(|e| anyhow::anyhow!("PEM: {e}"))?
            .into_bytes()
    } else {
        der
    };
    std::fs::write(&output, bytes).with_context(|| format!("writing {}", output.display()))?;
    println!("wrote {}", output.display());
    Ok(ExitCode::SUCCESS)
}
