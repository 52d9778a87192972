//! `codeseal keys`: the tokens and keys of a PKCS#11 module.
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Args;

/// The arguments of `codeseal keys`.
#[derive(Args)]
pub(crate) struct KeysArgs {
    /// The PKCS#11 module (e.g. /opt/cloudhsm/lib/libcloudhsm_pkcs11.so).
    #[arg(long, env = "CODESEAL_PKCS11_MODULE")]
    pub(crate) module: PathBuf,
    /// Only this token (needed to log in when the module has several).
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// A file whose first line is the PIN (CloudHSM: USER:PASSWORD).
    #[arg(long)]
    pub(crate) pin_file: Option<PathBuf>,
}

pub(crate) fn cmd_keys(a: KeysArgs) -> anyhow::Result<ExitCode> {
    let KeysArgs {
        module,
        token,
        pin_file,
    } = a;
    use secrecy::SecretString;
    let pin = match pin_file
        .or_else(|| std::env::var_os(codeseal_pkcs11::PIN_FILE_ENV).map(PathBuf::from))
    {
        Some(f) => {
            let text =
                std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
            Some(SecretString::from(
                text.lines().next().unwrap_or_default().to_string(),
            ))
        }
        None => std::env::var(codeseal_pkcs11::PIN_ENV)
            .ok()
            .map(SecretString::from),
    };
    let tokens = codeseal_pkcs11::list_tokens_and_keys(&module, token.as_deref(), pin.as_ref())?;
    for t in tokens {
        println!(
            "token {:?} serial {} slot {} ({} {}){}",
            t.label,
            t.serial,
            t.slot_id,
            t.manufacturer,
            t.model,
            if t.logged_in { ", logged in" } else { "" }
        );
        for k in t.keys {
            println!(
                "  {} {:<24} id {:<8} {}",
                if k.private { "private" } else { "public " },
                format!("{:?}", k.label),
                k.id_hex(),
                k.kind
                    .map(|k| k.to_string())
                    .unwrap_or_else(|| k.description.clone()),
            );
            println!("      {}", k.uri);
        }
    }
    Ok(ExitCode::SUCCESS)
}
