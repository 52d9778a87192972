//! `codeseal timestamp`, and the time-stamp options shared with `sign`.
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Args;
use codeseal_signer::DigestAlgorithm;

/// Time-stamp options (shared by `sign` and `timestamp`).
#[derive(Args, Clone)]
pub(crate) struct TimestampArgs {
    /// RFC 3161 time-stamp server URL (repeat for fallbacks), like SignTool /tr, osslsigncode -ts.
    #[arg(long = "ts", value_name = "URL")]
    pub(crate) rfc3161: Vec<String>,
    /// Legacy Authenticode time-stamp server URL (repeat for fallbacks), like SignTool /t.
    #[arg(long = "legacy-ts", value_name = "URL", conflicts_with = "rfc3161")]
    pub(crate) legacy: Vec<String>,
    /// Attempts in all (at least one per URL).
    #[arg(long, default_value_t = 3)]
    pub(crate) ts_attempts: u32,
    /// Seconds to wait before the first retry (doubles after each).
    #[arg(long, default_value_t = 2.0)]
    pub(crate) ts_retry_wait: f64,
    /// Seconds before one request times out.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) ts_timeout: f64,
    /// Hash for the RFC 3161 message imprint.
    #[arg(long, default_value = "sha256")]
    pub(crate) ts_digest: DigestAlgorithm,
}

impl TimestampArgs {
    pub(crate) fn options(&self) -> Option<codeseal_authenticode::timestamp::TimestampOptions> {
        use codeseal_authenticode::timestamp::{Protocol, TimestampOptions};
        let (urls, protocol) = if !self.rfc3161.is_empty() {
            (self.rfc3161.clone(), Protocol::Rfc3161)
        } else if !self.legacy.is_empty() {
            (self.legacy.clone(), Protocol::Legacy)
        } else {
            return None;
        };
        Some(
            TimestampOptions::default()
                .with_urls(urls)
                .with_protocol(protocol)
                .with_digest(self.ts_digest)
                .with_attempts(self.ts_attempts)
                .with_retry_wait(std::time::Duration::from_secs_f64(
                    self.ts_retry_wait.max(0.0),
                ))
                .with_timeout(std::time::Duration::from_secs_f64(self.ts_timeout.max(0.1))),
        )
    }
}

/// The arguments of `codeseal timestamp`.
#[derive(Args)]
pub(crate) struct TimestampCmdArgs {
    /// The signed file.
    pub(crate) input: PathBuf,
    /// Output (default: the input, replaced atomically).
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    /// Overwrite an existing output.
    #[arg(long)]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) ts: TimestampArgs,
}

pub(crate) fn cmd_timestamp(a: TimestampCmdArgs) -> anyhow::Result<ExitCode> {
    let TimestampCmdArgs {
        input,
        output,
        force,
        ts,
    } = a;
    let opts = ts
        .options()
        .context("give a time-stamp server with --ts URL or --legacy-ts URL")?;
    let out = output.unwrap_or_else(|| input.clone());
    let stamp = codeseal_authenticode::manage::timestamp_file(&input, &out, force, &opts)
        .with_context(|| format!("time-stamping {}", input.display()))?;
    println!(
        "time-stamped {} by {} ({})",
        out.display(),
        stamp.tsa,
        stamp.url
    );
    Ok(ExitCode::SUCCESS)
}
