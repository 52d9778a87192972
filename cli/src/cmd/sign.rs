//! `codeseal sign`: sign files (one, several, or directories) with one key session.
use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::{bail, Context};
use clap::Args;
use codeseal_authenticode::{OpusInfo, SignOptions};
use codeseal_signer::{DigestAlgorithm, SigningIdentity};

use super::timestamp::TimestampArgs;
use crate::batch;

#[derive(Args)]
pub(crate) struct SignArgs {
    /// The key: `file:/path/key.pem` (or `.p12`, or a plain path), `awskms:///alias/NAME`,
    /// a KMS key ARN, or an RFC 7512 `pkcs11:` URI. Passwords and PINs come from the
    /// environment or files (`CODESEAL_KEY_PASSWORD[_FILE]`, `pin-source=...`), never argv.
    #[arg(long, env = "CODESEAL_KEY", hide_env_values = true)]
    pub(crate) key: String,
    /// PEM file with the certificate chain, leaf first (optional with a PKCS#12 key).
    #[arg(long, env = "CODESEAL_CERT")]
    pub(crate) cert: Option<PathBuf>,
    /// Digest algorithm: sha256 (the default; sha384 for P-384 keys), sha384, sha512, or sha1
    /// with --allow-sha1.
    #[arg(long)]
    pub(crate) digest: Option<DigestAlgorithm>,
    /// Allow SHA-1 (legacy).
    #[arg(long)]
    pub(crate) allow_sha1: bool,
    /// Program name shown by Windows.
    #[arg(long, short = 'n')]
    pub(crate) name: Option<String>,
    /// "More info" URL.
    #[arg(long, short = 'i')]
    pub(crate) url: Option<String>,
    /// Replace an existing signature.
    #[arg(long, conflicts_with = "append")]
    pub(crate) replace: bool,
    /// Add a nested signature to an already signed file (dual signing).
    #[arg(long, visible_alias = "nest")]
    pub(crate) append: bool,
    /// Include page hashes (SHA-256 v2; SHA-1 v1 with --digest sha1).
    #[arg(long, visible_alias = "ph")]
    pub(crate) page_hashes: bool,
    /// MSI: add an MsiDigitalSignatureEx stream (a pre-hash of the installer's metadata),
    /// as osslsigncode's -add-msi-dse.
    #[arg(long)]
    pub(crate) add_msi_dse: bool,
    /// APPX / MSIX: sign even when the manifest's Publisher is not the signer
    /// certificate's subject (Windows will refuse to install the package).
    #[arg(long)]
    pub(crate) allow_publisher_mismatch: bool,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) ts: TimestampArgs,
    /// Files or directories to sign (directories: the PE files, cabinets, installers and scripts inside;
    /// all levels with --recursive).
    #[arg(required = true)]
    pub(crate) inputs: Vec<PathBuf>,
    /// Where to write the signed file (one input only; default: replace the input, atomically).
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    /// Write signed files into this directory (same names) instead of replacing the inputs.
    #[arg(long, conflicts_with = "output")]
    pub(crate) out_dir: Option<PathBuf>,
    /// Descend into subdirectories.
    #[arg(short, long)]
    pub(crate) recursive: bool,
    /// Files signed at once (one key session shared by all). Default: two per CPU with a
    /// local key file (each waits on its output's fsync part of the time), 4 with a remote
    /// key (KMS, PKCS#11).
    #[arg(short, long)]
    pub(crate) jobs: Option<usize>,
}

pub(crate) fn cmd_sign(a: SignArgs) -> anyhow::Result<ExitCode> {
    let id = identity(&a.key, a.cert.as_deref())?;
    let opts = SignOptions::default()
        .with_digest(a.digest.unwrap_or(id.key().key_kind().default_digest()))
        .with_opus(OpusInfo {
            program_name: a.name,
            url: a.url,
        })
        .with_replace(a.replace)
        .with_append(a.append)
        .with_page_hashes(a.page_hashes)
        .with_add_msi_dse(a.add_msi_dse)
        .with_allow_publisher_mismatch(a.allow_publisher_mismatch)
        .with_force(a.force)
        .with_allow_sha1(a.allow_sha1)
        .with_timestamp(a.ts.options());
    let files = batch::collect_inputs(&a.inputs, a.recursive)?;
    if a.output.is_some() && (files.len() != 1 || a.inputs.len() != 1) {
        bail!("-o/--output takes one input file; use --out-dir for several");
    }
    let jobs: Vec<batch::Job> = files
        .into_iter()
        .map(|input| {
            let output = match (&a.output, &a.out_dir) {
                (Some(o), _) => o.clone(),
                (None, Some(d)) => d.join(input.file_name().unwrap_or_default()),
                (None, None) => input.clone(),
            };
            batch::Job { input, output }
        })
        .collect();
    batch::check_distinct_outputs(&jobs)?;
    if let Some(d) = &a.out_dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let summary = batch::sign_all(&id, jobs, &opts, a.jobs);
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Opens the key and its chain and checks that they belong together.
pub(crate) fn identity(
    key_uri: &str,
    cert: Option<&std::path::Path>,
) -> anyhow::Result<SigningIdentity> {
    let shown = codeseal_keys::redact_uri(key_uri);
    let opened =
        codeseal_keys::open_key(key_uri).with_context(|| format!("opening key {shown}"))?;
    let chain = match cert {
        Some(p) => codeseal_keys::load_certificates(p)?,
        None if !opened.chain.is_empty() => opened.chain.clone(),
        None => bail!("--cert is required (the key file carries no certificate)"),
    };
    warn_about_leaf(chain.first());
    Ok(SigningIdentity::new(Arc::clone(&opened.key), chain)?)
}

/// Warns (does not refuse) when the signing certificate is outside its validity or lacks the
/// codeSigning extended key usage: verifiers will reject such signatures.
fn warn_about_leaf(leaf: Option<&x509_cert::Certificate>) {
    let Some(leaf) = leaf else { return };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let v = &leaf.tbs_certificate.validity;
    if now < v.not_before.to_unix_duration() || now > v.not_after.to_unix_duration() {
        eprintln!(
            "codeseal: warning: the signing certificate is not valid now ({} to {}); without a time stamp inside that period the signature will not verify",
            v.not_before, v.not_after
        );
    }
    let eku = leaf
        .tbs_certificate
        .get::<x509_cert::ext::pkix::ExtendedKeyUsage>()
        .ok()
        .flatten();
    if let Some((_, eku)) = eku {
        if !eku.0.contains(&codeseal_signer::csr::ID_KP_CODE_SIGNING) {
            eprintln!("codeseal: warning: the signing certificate lacks the codeSigning extended key usage");
        }
    }
}
