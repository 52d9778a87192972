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

/// How many files a batch signs at once: `jobs` when given (1 to 64); else two per CPU when
/// the key signs in this process (the work is then the CPU's, hashing, the key and the output
/// check, except for the fsync of each output, about half of a small file's time, during
/// which a worker waits without using its CPU), and 4 for a remote key, whose service or
/// token sets the pace.
pub fn worker_count(identity: &SigningIdentity, jobs: Option<usize>, files: usize) -> usize {
    if files <= 1 {
        // One file: no need to ask the system for its CPUs (cgroup files on Linux).
        return 1;
    }
    let n = jobs.unwrap_or_else(|| {
        if identity.key().signs_locally() {
            2 * std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            4
        }
    });
    n.clamp(1, 64).min(files.max(1))
}

/// The directories to sync after a group of renames: each output's parent, once.
fn directories_of<'a>(outputs: impl Iterator<Item = &'a Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = outputs
        .map(|o| codeseal_authenticode::format::parent_of(o).to_path_buf())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Signs every job with [`worker_count`] threads sharing `identity`.
///
/// Each output is fsynced and renamed by the worker that signed it; the directory syncs that
/// make the renames durable are grouped: once every file is done, each output directory is
/// synced once, and only then is any file reported signed. A directory that cannot be
/// synced makes its files fail (a file system without directory sync, which answers
/// "unsupported" or "invalid argument", is taken as it is, as for a single file).
pub fn sign_all(
    identity: &SigningIdentity,
    work: Vec<Job>,
    opts: &SignOptions,
    jobs: Option<usize>,
) -> Summary {
    let total = work.len();
    let workers = worker_count(identity, jobs, total);
    let opts = opts.clone().with_sync_directory(false);
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
    type Outcome = (PathBuf, PathBuf, Result<String, String>);
    let results: Mutex<Vec<Outcome>> = Mutex::new(Vec::with_capacity(total));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(job) = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None) {
                    let r = sign_file(identity, &job.input, &job.output, &opts)
                        .map(|o| {
                            format!("{} ({})", o.output.display(), hex::encode(&o.image_digest))
                        })
                        .map_err(|e| e.to_string());
                    bar.inc(1);
                    if let Ok(mut v) = results.lock() {
                        v.push((job.input, job.output, r));
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut results = results.into_inner().unwrap_or_default();
    // The grouped directory syncs, before anything is reported.
    let written = results
        .iter()
        .filter(|r| r.2.is_ok())
        .map(|r| r.1.as_path());
    let mut unsynced: Vec<(PathBuf, String)> = Vec::new();
    for dir in directories_of(written) {
        if let Err(e) = codeseal_authenticode::format::sync_directory(&dir) {
            let unsupported = matches!(
                e.kind(),
                std::io::ErrorKind::Unsupported | std::io::ErrorKind::InvalidInput
            );
            if !unsupported {
                unsynced.push((dir, e.to_string()));
            }
        }
    }
    for (_, output, r) in &mut results {
        let dir = codeseal_authenticode::format::parent_of(output);
        if let Some((d, e)) = unsynced.iter().find(|(d, _)| d == dir) {
            if r.is_ok() {
                *r = Err(format!(
                    "written, but syncing its directory {} failed ({e}): it may not survive a crash",
                    d.display()
                ));
            }
        }
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut summary = Summary {
        signed: 0,
        failed: 0,
    };
    for (input, _, r) in &results {
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
    if let Some(table) = codeseal_authenticode::timing::report(summary.signed) {
        eprintln!(
            "time per signed file, summed over {workers} workers (CODESEAL_TIMINGS=1):\n{table}"
        );
    }
    summary
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use codeseal_local::{LocalKey, ThrowawayPki};
    use codeseal_signer::{KeyKind, KeySigner, SignError, SignatureAlgorithm, SigningIdentity};

    use super::worker_count;

    /// The same key seen as a remote one (a backend that does not override
    /// `signs_locally`, as KMS and PKCS#11 do not).
    #[derive(Debug)]
    struct AsRemote(Arc<LocalKey>);

    impl KeySigner for AsRemote {
        fn key_kind(&self) -> KeyKind {
            self.0.key_kind()
        }
        fn public_key(&self) -> &spki::SubjectPublicKeyInfoOwned {
            self.0.public_key()
        }
        fn describe(&self) -> String {
            "remote stand-in".into()
        }
        fn sign_digest(&self, a: SignatureAlgorithm, d: &[u8]) -> Result<Vec<u8>, SignError> {
            self.0.sign_digest(a, d)
        }
    }

    #[test]
    fn local_keys_get_two_workers_per_cpu_remote_keys_four() {
        let pki = ThrowawayPki::generate("batch workers").expect("pki");
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let local = SigningIdentity::new(pki.leaf_key.clone(), pki.chain.clone()).expect("id");
        let remote = SigningIdentity::new(
            Arc::new(AsRemote(pki.leaf_key.clone())) as Arc<dyn KeySigner>,
            pki.chain.clone(),
        )
        .expect("id");
        assert_eq!(worker_count(&local, None, 10_000), (2 * cpus).min(64));
        assert_eq!(worker_count(&remote, None, 10_000), 4);
        // --jobs wins, within 1..=64; never more workers than files.
        assert_eq!(worker_count(&local, Some(3), 10_000), 3);
        assert_eq!(worker_count(&remote, Some(100), 10_000), 64);
        assert_eq!(worker_count(&remote, Some(0), 10_000), 1);
        assert_eq!(worker_count(&local, None, 1), 1);
    }
}
