//! Signing many files: bounded concurrency over one key, a progress bar on a terminal, a
//! summary, and one failure never losing the others' results.
use std::{
    collections::VecDeque,
    io::IsTerminal,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Instant,
};

use anyhow::{bail, Context};
use codeseal_authenticode::{sign_file, SignOptions};
use codeseal_signer::SigningIdentity;
use indicatif::{ProgressBar, ProgressStyle};

/// File name endings taken as PE files when a directory is given.
const PE_EXTENSIONS: [&str; 9] = [
    "exe", "dll", "sys", "efi", "ocx", "scr", "cpl", "drv", "mui",
];

/// One file to sign.
pub struct Job {
    pub input: PathBuf,
    pub output: PathBuf,
}

/// What a batch did.
pub struct Summary {
    pub signed: usize,
    pub failed: usize,
}

/// Whether a directory entry is a file codeseal signs: a PE by its usual extensions, a
/// cabinet (`.cab`), an installer (`.msi`, `.msp`, `.msm`, `.mst`), an APPX / MSIX package
/// or bundle, a catalog (`.cat`), or a script extension.
fn is_signable_name(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        PE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
            || e.eq_ignore_ascii_case("cab")
            || e.eq_ignore_ascii_case(codeseal_authenticode::format::CATALOG_EXTENSION)
            || codeseal_authenticode::format::MSI_EXTENSIONS
                .contains(&e.to_ascii_lowercase().as_str())
            || codeseal_authenticode::format::APPX_EXTENSIONS
                .contains(&e.to_ascii_lowercase().as_str())
            || codeseal_authenticode::format::APPX_BUNDLE_EXTENSIONS
                .contains(&e.to_ascii_lowercase().as_str())
            || codeseal_authenticode::formats::script::ScriptKind::from_extension(e).is_ok()
    })
}

/// Expands directories into the signable files inside them (sorted, bounded depth when recursive).
pub fn collect_inputs(inputs: &[PathBuf], recursive: bool) -> anyhow::Result<Vec<PathBuf>> {
    const MAX_DEPTH: usize = 32;
    let mut out = Vec::new();
    let mut todo: Vec<(PathBuf, usize)> = inputs.iter().map(|p| (p.clone(), 0)).collect();
    while let Some((p, depth)) = todo.pop() {
        let meta = std::fs::metadata(&p).with_context(|| format!("reading {}", p.display()))?;
        if meta.is_dir() {
            if depth > 0 && !recursive {
                continue;
            }
            if depth > MAX_DEPTH {
                bail!("{} is nested too deep", p.display());
            }
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&p)
                .with_context(|| format!("listing {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for e in entries.into_iter().rev() {
                if e.is_dir() || is_signable_name(&e) {
                    todo.push((e, depth + 1));
                }
            }
        } else {
            out.push(p);
        }
    }
    if out.is_empty() {
        bail!("no signable files (PE, CAB, MSI, APPX, catalogs or scripts) found in the inputs");
    }
    Ok(out)
}

/// Refuses two jobs writing the same output (e.g. same names in different directories with
/// --out-dir).
pub fn check_distinct_outputs(work: &[Job]) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for j in work {
        if !seen.insert(j.output.clone()) {
            bail!(
                "two inputs would be written to {} (same file name in different directories?)",
                j.output.display()
            );
        }
    }
    Ok(())
}

/// Signs every job with `jobs` worker threads sharing `identity`.
pub fn sign_all(
    identity: &SigningIdentity,
    work: Vec<Job>,
    opts: &SignOptions,
    jobs: usize,
) -> Summary {
    let total = work.len();
    let queue = Mutex::new(work.into_iter().collect::<VecDeque<_>>());
    let bar = if std::io::stderr().is_terminal() && total > 1 {
        let b = ProgressBar::new(total as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
        {
            b.set_style(style);
        }
        b
    } else {
        ProgressBar::hidden()
    };
    let results: Mutex<Vec<(PathBuf, Result<String, String>)>> =
        Mutex::new(Vec::with_capacity(total));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, 64).min(total.max(1)) {
            s.spawn(|| {
                while let Some(job) = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None) {
                    let r = sign_file(identity, &job.input, &job.output, opts)
                        .map(|o| {
                            format!("{} ({})", o.output.display(), hex::encode(&o.image_digest))
                        })
                        .map_err(|e| e.to_string());
                    bar.inc(1);
                    if let Ok(mut v) = results.lock() {
                        v.push((job.input, r));
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut summary = Summary {
        signed: 0,
        failed: 0,
    };
    for (input, r) in &results {
        match r {
            Ok(msg) => {
                summary.signed += 1;
                println!("signed {} -> {msg}", input.display());
            }
            Err(e) => {
                summary.failed += 1;
                eprintln!("FAILED {}: {e}", input.display());
            }
        }
    }
    if total > 1 || summary.failed > 0 {
        println!(
            "{} signed, {} failed, in {:.1?}",
            summary.signed,
            summary.failed,
            start.elapsed()
        );
    }
    if let Some(calls) = codeseal_keys::remote_call_summary() {
        println!("{calls}");
    }
    summary
}
