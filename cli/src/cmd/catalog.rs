//! `codeseal catalog create`, and `codeseal verify --catalog X.cat FILE`.
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use codeseal_authenticode::{
    catalog::{build_catalog_with, find_file_member, sign_catalog, write_catalog},
    formats::catalog::CatalogAttribute,
    OpusInfo, SignOptions,
};
use codeseal_signer::DigestAlgorithm;

use super::{sign::identity, verify::VerifyArgs};

#[derive(Args)]
pub(crate) struct CatalogArgs {
    #[command(subcommand)]
    pub(crate) cmd: CatalogCmd,
}

#[derive(Subcommand)]
pub(crate) enum CatalogCmd {
    /// Create a catalog (.cat) listing files: PE files by their Authenticode digest, other
    /// files by the hash of their bytes. Signed when --key is given.
    Create(CreateArgs),
}

#[derive(Args)]
pub(crate) struct CreateArgs {
    /// The catalog to write.
    #[arg(short, long)]
    pub(crate) output: PathBuf,
    /// Member hash: sha256 (the default; a version 2 catalog) or sha1 with --allow-sha1
    /// (a version 1 catalog).
    #[arg(long)]
    pub(crate) hash: Option<DigestAlgorithm>,
    /// Allow SHA-1 (legacy).
    #[arg(long)]
    pub(crate) allow_sha1: bool,
    /// The key to sign the catalog with (as for `sign`); without it the catalog is unsigned.
    #[arg(long, env = "CODESEAL_KEY", hide_env_values = true)]
    pub(crate) key: Option<String>,
    /// PEM file with the certificate chain, leaf first.
    #[arg(long, env = "CODESEAL_CERT")]
    pub(crate) cert: Option<PathBuf>,
    /// Digest algorithm of the signature (default: the key's default).
    #[arg(long)]
    pub(crate) digest: Option<DigestAlgorithm>,
    /// Program name shown by Windows.
    #[arg(long, short = 'n')]
    pub(crate) name: Option<String>,
    /// "More info" URL.
    #[arg(long, short = 'i')]
    pub(crate) url: Option<String>,
    /// A catalog-level attribute NAME=VALUE (repeatable), written as a CAT_NAMEVALUE entry
    /// of the CTL's extensions as makecat writes its CATATTR lines (e.g. OSAttr=2:6.1,2:10.0
    /// for drivers).
    #[arg(long = "attr", value_name = "NAME=VALUE")]
    pub(crate) attrs: Vec<String>,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub(crate) force: bool,
    /// The member files.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
}

pub(crate) fn cmd_catalog(a: CatalogArgs) -> anyhow::Result<ExitCode> {
    match a.cmd {
        CatalogCmd::Create(c) => create(c),
    }
}

fn create(a: CreateArgs) -> anyhow::Result<ExitCode> {
    let hash = a.hash.unwrap_or(DigestAlgorithm::Sha256);
    if hash.is_weak() && !a.allow_sha1 {
        bail!("SHA-1 member hashes need --allow-sha1 (a version 1 catalog, for old Windows)");
    }
    for f in &a.files {
        if !f.is_file() {
            bail!("{} is not a file", f.display());
        }
    }
    let mut attrs = Vec::with_capacity(a.attrs.len());
    for t in &a.attrs {
        match t.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                attrs.push(CatalogAttribute::text(name.trim(), value));
            }
            _ => bail!("--attr {t:?}: expected NAME=VALUE"),
        }
    }
    let mut data = build_catalog_with(&a.files, hash, &attrs).context("creating the catalog")?;
    if let Some(key) = &a.key {
        let id = identity(key, a.cert.as_deref())?;
        let opts = SignOptions::default()
            .with_digest(a.digest.unwrap_or(id.key().key_kind().default_digest()))
            .with_allow_sha1(a.allow_sha1)
            .with_opus(OpusInfo {
                program_name: a.name,
                url: a.url,
            });
        data = sign_catalog(&id, &data, &opts).context("signing the catalog")?;
    }
    write_catalog(&a.output, &data, a.force)?;
    println!(
        "{}: {} members ({hash}){}",
        a.output.display(),
        a.files.len(),
        if a.key.is_some() {
            ", signed"
        } else {
            ", unsigned"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `codeseal verify --catalog X.cat FILE` (`verify X.cat` is the format-generic path).
pub(crate) fn verify(
    a: &VerifyArgs,
    catalog: &Path,
    member: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    // The roots, trust-store rules, deny list and revocation policy of `codeseal verify`.
    let verifier = a.verifier()?;
    let data = std::fs::read(catalog).with_context(|| format!("reading {}", catalog.display()))?;
    let report = match verifier.verify_catalog(&data) {
        Ok(r) => r,
        Err(e) => {
            println!("error: {}: {e}\nFailed", catalog.display());
            return Ok(ExitCode::from(1));
        }
    };
    println!("Catalog:             {}", catalog.display());
    println!("  Signer:            {}", report.signer);
    println!("  Digest:            {}", report.digest_algorithm);
    println!("  Members:           {}", report.ctl.subjects().len());
    for at in report.ctl.catalog_attributes().unwrap_or_default() {
        println!("  Attribute:         {} = {}", at.name, at.value);
    }
    let mut valid = true;
    match report.trusted {
        None => {
            println!("  Trust:             not checked (integrity only; give --trust ROOTS.pem)")
        }
        Some(true) => println!("  Trust:             chain to a trusted root"),
        Some(false) => {
            valid = false;
            println!(
                "  Trust:             NOT trusted: {}",
                report.chain_errors.join("; ")
            );
        }
    }
    for t in &report.timestamps {
        println!(
            "  Timestamp:         {:?} {} by {}{}",
            t.protocol,
            t.time.as_deref().unwrap_or("?"),
            t.tsa.as_deref().unwrap_or("?"),
            match (&t.error, t.valid) {
                (_, true) => String::new(),
                (Some(e), false) => format!(" (INVALID: {e})"),
                (None, false) => " (INVALID)".into(),
            }
        );
    }
    for r in &report.revocation {
        println!("  Revocation:        {}: {}", r.subject, r.verdict);
    }
    for w in &report.warnings {
        println!("  warning: {w}");
    }
    if let Some(file) = member {
        match find_file_member(&report, file)? {
            Some(m) => println!(
                "  Member:            {} = {} ({}, {:?})",
                file.display(),
                m.file_name.as_deref().unwrap_or(&m.tag),
                m.digest_algorithm,
                m.kind
            ),
            None => {
                valid = false;
                println!(
                    "  Member:            {} is NOT in the catalog",
                    file.display()
                );
            }
        }
    }
    println!("{}", if valid { "Succeeded" } else { "Failed" });
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
