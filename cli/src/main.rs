//! `codeseal`: sign and verify Windows PE files (Authenticode) with local, KMS or HSM keys.
#![forbid(unsafe_code)]

mod batch;
mod cmd;
mod demo;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "codeseal",
    version,
    about = "Authenticode signing with keys that never leave their hardware"
)]
struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace). RUST_LOG also works.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign files: PE (exe, dll, sys, efi, ...) and scripts (ps1, psm1, psd1, vbs, js, wsf, ...).
    Sign(cmd::sign::SignArgs),
    /// Verify the signatures of a file; exit status 0 if and only if valid.
    Verify(cmd::verify::VerifyArgs),
    /// Show facts about a file and the signatures found.
    Info(cmd::info::InfoArgs),
    /// Remove every signature from a file.
    Remove(cmd::manage::RemoveArgs),
    /// Write the signature of a file as PKCS#7 (DER, or PEM with --pem).
    Extract(cmd::manage::ExtractArgs),
    /// Attach a detached PKCS#7 signature to a file after checking it matches the file.
    Attach(cmd::manage::AttachArgs),
    /// Add a time stamp to the signature of a signed file.
    Timestamp(cmd::timestamp::TimestampCmdArgs),
    /// List the tokens and keys of a PKCS#11 module (logs in when a PIN is given through
    /// CODESEAL_PKCS11_PIN / CODESEAL_PKCS11_PIN_FILE or --pin-file).
    Keys(cmd::keys::KeysArgs),
    /// Split signing, step 1 (like SignTool /dg): hash a file and write what must be signed.
    Digest(cmd::split::DigestArgs),
    /// Split signing, step 2 (like SignTool /ds): sign a request, or a SignTool `.dig` file, with
    /// only the key. Writes base64 of the signature (`.dig.signed` for SignTool).
    SignDigest(cmd::split::SignDigestArgs),
    /// Split signing, step 3 (like SignTool /di): check the signature, assemble and attach it.
    AttachDigestSignature(cmd::split::AttachDigestSignatureArgs),
    /// Windows catalog files (.cat): `catalog create -o X.cat FILES...`.
    Catalog(cmd::catalog::CatalogArgs),
    /// Make a PKCS#10 certificate signing request with a key (local, KMS or HSM).
    Csr(cmd::csr::CsrArgs),
    /// Make a throwaway test PKI, sign a bundled sample PE with it and verify the result.
    Demo {
        /// Keep the files in this directory (default: a temp dir that is deleted).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Sign(a) => cmd::sign::cmd_sign(a),
        Command::Verify(a) => cmd::verify::cmd_verify(a),
        Command::Info(a) => cmd::info::cmd_info(a),
        Command::Remove(a) => cmd::manage::cmd_remove(a),
        Command::Extract(a) => cmd::manage::cmd_extract(a),
        Command::Attach(a) => cmd::manage::cmd_attach(a),
        Command::Timestamp(a) => cmd::timestamp::cmd_timestamp(a),
        Command::Keys(a) => cmd::keys::cmd_keys(a),
        Command::Digest(a) => cmd::split::cmd_digest(a),
        Command::SignDigest(a) => cmd::split::cmd_sign_digest(a),
        Command::AttachDigestSignature(a) => cmd::split::cmd_attach_digest_signature(a),
        Command::Csr(a) => cmd::csr::cmd_csr(a),
        Command::Catalog(a) => cmd::catalog::cmd_catalog(a),
        Command::Demo { dir } => demo::run(dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("codeseal: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
