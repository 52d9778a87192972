//! Embed the signing service's worker in your own program, with your own object store: the
//! worker downloads an upload, signs it, verifies it and stores the result through the
//! `ObjectStore` trait, and records the job in the service's embedded job table (redb).
//!
//! ```text
//! cargo run -p codeseal-examples --example service_worker -- KEY CHAIN.pem ROOT.pem IN OUT
//! ```
//!
//! `MemoryStore` below keeps uploads and results in memory; put your storage there (a
//! database, an artifact repository). The job is made the way the service's API makes one
//! (`Job::new` while uploading, then `mark_queued` once the upload is complete), the
//! in-process workers (`worker::run_workers`) pick it up, and the signed result is read back
//! from the store, verified against ROOT.pem and written to OUT.
use std::{
    collections::HashMap,
    io::Cursor,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::{bail, Context as _};
use async_trait::async_trait;
use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use codeseal_authenticode::{FileKind, Verifier};
use codeseal_service::{
    context::{Ctx, Settings, Signer},
    job::{check_file_name, now_ms, Job, JobStatus},
    store::{redb_jobs::RedbJobs, ObjectStore, PartEtag, StoreError, Stored},
    worker::run_workers,
};
use codeseal_signer::SigningIdentity;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// Uploads and results in memory. Uploads arrive in process ([`MemoryStore::upload`]), so the
/// multipart and presigned-URL methods, which serve the HTTP API, are refused.
#[derive(Default)]
struct MemoryStore {
    uploads: Mutex<HashMap<String, Vec<u8>>>,
    results: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryStore {
    fn upload(&self, key: &str, bytes: Vec<u8>) {
        lock(&self.uploads).insert(key.to_string(), bytes);
    }

    fn result(&self, key: &str) -> Option<Vec<u8>> {
        lock(&self.results).get(key).cloned()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn no_http() -> StoreError {
    StoreError::invalid("this store takes uploads in process, not over HTTP")
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn create_multipart(&self, _key: &str) -> Result<String, StoreError> {
        Err(no_http())
    }
    async fn presign_part(
        &self,
        _key: &str,
        _upload_id: &str,
        _part: u32,
        _ttl: Duration,
    ) -> Result<String, StoreError> {
        Err(no_http())
    }
    async fn complete_multipart(
        &self,
        _key: &str,
        _upload_id: &str,
        _parts: &[PartEtag],
    ) -> Result<(), StoreError> {
        Err(no_http())
    }
    async fn upload_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(lock(&self.uploads).get(key).map(|b| b.len() as u64))
    }
    async fn download_upload(
        &self,
        key: &str,
        dest: &Path,
        max: u64,
    ) -> Result<(u64, [u8; 32]), StoreError> {
        let bytes = lock(&self.uploads)
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        if bytes.len() as u64 > max {
            return Err(StoreError::invalid("the upload is over the size limit"));
        }
        let sha: [u8; 32] = Sha256::digest(&bytes).into();
        tokio::fs::write(dest, &bytes)
            .await
            .map_err(|e| StoreError::Backend(format!("writing {}: {e}", dest.display())))?;
        Ok((bytes.len() as u64, sha))
    }
    async fn put_result(
        &self,
        key: &str,
        src: &Path,
        sha256: &[u8; 32],
    ) -> Result<Stored, StoreError> {
        let bytes = tokio::fs::read(src)
            .await
            .map_err(|e| StoreError::Backend(format!("reading {}: {e}", src.display())))?;
        let sha: [u8; 32] = Sha256::digest(&bytes).into();
        if &sha != sha256 {
            return Err(StoreError::invalid("checksum mismatch"));
        }
        lock(&self.results).insert(key.to_string(), bytes);
        Ok(Stored {
            checksum_sha256: B64.encode(sha),
        })
    }
    async fn presign_result(
        &self,
        _key: &str,
        _file_name: &str,
        _ttl: Duration,
    ) -> Result<String, StoreError> {
        Err(no_http())
    }
    async fn delete_result(&self, key: &str) -> Result<(), StoreError> {
        lock(&self.results).remove(key);
        Ok(())
    }
    async fn delete_upload(&self, key: &str) -> Result<(), StoreError> {
        lock(&self.uploads).remove(key);
        Ok(())
    }
    async fn list_uploads(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        Ok(lock(&self.uploads).keys().take(limit).cloned().collect())
    }
    fn describe(&self) -> String {
        "memory".into()
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [key, chain, root, input, output] = args.as_slice() else {
        bail!("usage: service_worker KEY CHAIN.pem ROOT.pem IN OUT");
    };
    let file_name = Path::new(input)
        .file_name()
        .and_then(|n| n.to_str())
        .context("IN has no file name")?
        .to_string();
    check_file_name(&file_name).map_err(anyhow::Error::msg)?;

    // Key, certificates and the input: blocking work, off the executor.
    let (k, c, r, i) = (
        key.clone(),
        PathBuf::from(chain),
        PathBuf::from(root),
        PathBuf::from(input),
    );
    let (identity, roots, bytes) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let opened = codeseal_keys::open_key(&k).context("opening the key")?;
        let chain = codeseal_keys::load_certificates(&c)?;
        let identity = SigningIdentity::new(Arc::clone(&opened.key), chain)?;
        let roots = codeseal_keys::load_certificates(&r)?;
        let bytes = std::fs::read(&i).with_context(|| format!("reading {}", i.display()))?;
        Ok((identity, roots, bytes))
    })
    .await??;

    // The worker's context: your object store, the embedded job table, the key. The worker
    // verifies each signed file against `roots` before it stores it.
    let work = tempfile::tempdir()?;
    let store = Arc::new(MemoryStore::default());
    let ctx = Arc::new(Ctx::for_workers(
        Arc::clone(&store) as Arc<dyn ObjectStore>,
        Arc::new(RedbJobs::open(&work.path().join("jobs.redb"))?),
        Signer::new(identity, roots.clone(), codeseal_keys::redact_uri(key))?,
        Settings {
            work_dir: work.path().to_path_buf(),
            ..Settings::default()
        },
    ));
    let shutdown = CancellationToken::new();
    let workers = tokio::spawn(run_workers(
        Arc::clone(&ctx),
        2,
        "example-worker".into(),
        shutdown.clone(),
    ));

    // A job, as the API makes one: created while uploading, queued once the upload is there.
    let job_id = format!("{:032x}", rand::random::<u128>());
    let upload_key = format!("uploads/{job_id}/{file_name}");
    let job = Job::new(
        job_id.clone(),
        JobStatus::Uploading,
        file_name,
        bytes.len() as u64,
        "example".into(),
        upload_key.clone(),
        now_ms(),
    );
    if !ctx.jobs.create(&job).await? {
        bail!("job id collision");
    }
    store.upload(&upload_key, bytes);
    ctx.jobs.mark_queued(&job_id, now_ms()).await?;
    ctx.queue.enqueue(&job_id).await?;

    // Wait for the worker (bounded), then stop the workers.
    let job = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            match ctx.jobs.get(&job_id).await? {
                Some(j) if j.status.is_terminal() => return anyhow::Ok(j),
                Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                None => bail!("job {job_id} vanished"),
            }
        }
    })
    .await
    .context("the worker did not finish the job in time")??;
    shutdown.cancel();
    workers.await?;

    let Some(result) = job.result.filter(|_| job.status == JobStatus::Done) else {
        bail!(
            "job {job_id} {}: {}",
            job.status.as_str(),
            job.error.as_deref().unwrap_or("no reason recorded")
        );
    };
    let signed = store
        .result(&result.result_key)
        .context("the result is not in the store")?;

    // Check what came back before using it: against the root, from memory.
    let kind = FileKind::detect_from(&signed, Path::new(input))?;
    let report =
        Verifier::new(roots)?.verify_reader(kind, &mut Cursor::new(&signed), Path::new(input))?;
    if !report.valid {
        bail!("the stored result does not verify: {:?}", report.signatures);
    }
    tokio::fs::write(output, &signed)
        .await
        .with_context(|| format!("writing {output}"))?;
    println!(
        "job {job_id} done: {} signed, {} bytes, SHA-256 {}, valid against the root",
        kind, result.signed_size, result.signed_sha256
    );
    Ok(())
}
