//! Verifies every file of a directory in one process, chains to the given roots (no
//! revocation), and prints the wall time per file: the batch-verify row of
//! docs/performance.md ("Verification: aws-lc-rs or RustCrypto").
//!
//! ```text
//! cargo run --release -p codeseal-benches --example verify_batch -- ROOTS.pem DIR [ROUNDS]
//! CODESEAL_CRYPTO_PROVIDER=rustcrypto cargo run ... (the same with the pure-Rust verifier)
//! ```
//! Every file must verify (exit status 1 otherwise). Prints the verifier in use, then per
//! round: files, total seconds, milliseconds per file; the best round last.
use std::{path::PathBuf, process::ExitCode, time::Instant};

use anyhow::Context;
use codeseal_authenticode::Verifier;
use codeseal_signer::reexports::x509_cert::Certificate;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verify_batch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(roots), Some(dir)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: verify_batch ROOTS.pem DIR [ROUNDS]");
    };
    let rounds: usize = args.get(2).map_or(Ok(3), |r| r.parse())?;
    let pem = std::fs::read(roots).with_context(|| format!("reading {roots}"))?;
    let anchors = Certificate::load_pem_chain(&pem).context("roots")?;
    let verifier = Verifier::new(anchors)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    anyhow::ensure!(!files.is_empty(), "{dir}: no files");
    println!(
        "verifier: {}, {} files",
        codeseal_signer::Verifier::default().name(),
        files.len()
    );
    let mut best = f64::INFINITY;
    for round in 0..rounds {
        let start = Instant::now();
        for f in &files {
            let report = verifier
                .verify_file(f)
                .with_context(|| format!("{}", f.display()))?;
            anyhow::ensure!(
                report.valid,
                "{}: does not verify: {:?}",
                f.display(),
                report.errors
            );
        }
        let secs = start.elapsed().as_secs_f64();
        best = best.min(secs);
        println!(
            "round {round}: {:.3} s, {:.3} ms per file",
            secs,
            secs * 1000.0 / files.len() as f64
        );
    }
    println!(
        "best: {:.3} ms per file",
        best * 1000.0 / files.len() as f64
    );
    Ok(())
}
