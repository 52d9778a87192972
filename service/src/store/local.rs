//! The embedded object store: two "buckets" as directories under one data directory, and
//! multipart uploads whose part URLs point back at this service, signed with an HMAC key kept
//! in the data directory (mode 0600). Objects are written to a temp file and renamed.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use async_trait::async_trait;
use futures_util::{Stream, StreamExt};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{ObjectStore, PartEtag, StoreError, Stored};
use crate::job::now_ms;

type HmacSha256 = Hmac<Sha256>;

/// Most parts of one multipart upload (S3 allows 10,000).
pub const MAX_PARTS: u32 = 10_000;

/// Directories for uploads and results, and the presigning key.
pub struct LocalStore {
    root: PathBuf,
    base_url: String,
    secret: zeroize::Zeroizing<Vec<u8>>,
    max_part: u64,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("root", &self.root)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

fn io(what: &str, e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::NotFound {
        StoreError::NotFound(what.to_string())
    } else {
        StoreError::Backend(format!("{what}: {e}"))
    }
}

/// Whether `key` is a relative path of plain components (no `..`, no absolute path, no
/// backslashes or control characters).
fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && !key.starts_with('/')
        && !key.contains('\\')
        && !key.chars().any(char::is_control)
        && key
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(format!("invalid object key {key:?}")))
    }
}

fn check_upload_id(id: &str) -> Result<(), StoreError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(StoreError::invalid("invalid upload id"))
    }
}

impl LocalStore {
    /// Opens the store under `root` (creating `uploads/`, `signed/`, `multipart/` and the
    /// presigning key); presigned URLs start with `base_url`; a part may be at most
    /// `max_part` bytes.
    pub fn open(root: &Path, base_url: &str, max_part: u64) -> Result<Self, StoreError> {
        for d in ["objects/uploads", "objects/signed", "multipart", "tmp"] {
            std::fs::create_dir_all(root.join(d)).map_err(|e| io(d, e))?;
        }
        let key_path = root.join("presign.key");
        let secret = match std::fs::read(&key_path) {
            Ok(k) if k.len() == 32 => k,
            _ => {
                let mut k = vec![0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
                write_private(&key_path, &k).map_err(|e| io("presign.key", e))?;
                k
            }
        };
        Ok(Self {
            root: root.to_path_buf(),
            base_url: base_url.trim_end_matches('/').to_string(),
            secret: zeroize::Zeroizing::new(secret),
            max_part,
        })
    }

    fn object_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join("objects").join(key))
    }

    fn mac(&self, parts: &[&str]) -> String {
        // HMAC accepts keys of any length: new_from_slice cannot fail.
        let mut m = match HmacSha256::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        for p in parts {
            m.update(p.as_bytes());
            m.update(b"\n");
        }
        hex::encode(m.finalize().into_bytes())
    }

    fn check_sig(&self, parts: &[&str], expires: u64, sig: &str) -> Result<(), StoreError> {
        let want = self.mac(parts);
        let same: bool = subtle::ConstantTimeEq::ct_eq(want.as_bytes(), sig.as_bytes()).into();
        if !same {
            return Err(StoreError::invalid("bad signature on presigned URL"));
        }
        if expires < now_ms() / 1000 {
            return Err(StoreError::invalid("presigned URL expired"));
        }
        Ok(())
    }

    fn tmp_path(&self) -> PathBuf {
        let mut r = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut r);
        self.root.join("tmp").join(hex::encode(r))
    }

    /// Handles a presigned part PUT: checks the signature and expiry, streams the body (at
    /// most the part size) to the part file, returns the part's ETag.
    pub async fn accept_part<S, E>(
        &self,
        upload_id: &str,
        part: u32,
        expires: u64,
        sig: &str,
        mut body: S,
    ) -> Result<String, StoreError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        check_upload_id(upload_id)?;
        if part == 0 || part > MAX_PARTS {
            return Err(StoreError::invalid(format!(
                "part number {part} out of range"
            )));
        }
        self.check_sig(
            &["PUT", upload_id, &part.to_string(), &expires.to_string()],
            expires,
            sig,
        )?;
        let dir = self.root.join("multipart").join(upload_id);
        if !dir.is_dir() {
            return Err(StoreError::NotFound(format!("upload {upload_id}")));
        }
        let tmp = self.tmp_path();
        let mut f = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io("part file", e))?;
        let mut h = Sha256::new();
        let mut n = 0u64;
        let res: Result<(), StoreError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    StoreError::invalid_with("reading the part failed", e.to_string())
                })?;
                n += chunk.len() as u64;
                if n > self.max_part {
                    return Err(StoreError::invalid(format!(
                        "part larger than the part size ({} bytes)",
                        self.max_part
                    )));
                }
                h.update(&chunk);
                f.write_all(&chunk).await.map_err(|e| io("part file", e))?;
            }
            f.flush().await.map_err(|e| io("part file", e))?;
            Ok(())
        }
        .await;
        if let Err(e) = res {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let etag = format!("\"{}\"", &hex::encode(h.finalize())[..32]);
        tokio::fs::write(dir.join(format!("{part}.etag")), &etag)
            .await
            .map_err(|e| io("part file", e))?;
        tokio::fs::rename(&tmp, dir.join(format!("{part}.part")))
            .await
            .map_err(|e| io("part file", e))?;
        Ok(etag)
    }

    /// Deletes the parts of the multipart upload `upload_id` (an abandoned upload); a
    /// missing upload is not an error.
    pub async fn abort_multipart(&self, upload_id: &str) -> Result<(), StoreError> {
        check_upload_id(upload_id)?;
        match tokio::fs::remove_dir_all(self.root.join("multipart").join(upload_id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("multipart", e)),
            _ => Ok(()),
        }
    }

    /// Handles a presigned result GET: checks the signature and expiry; returns the file.
    pub fn open_result(
        &self,
        key: &str,
        name: &str,
        expires: u64,
        sig: &str,
    ) -> Result<PathBuf, StoreError> {
        self.check_sig(&["GET", key, name, &expires.to_string()], expires, sig)?;
        if !key.starts_with("signed/") {
            return Err(StoreError::invalid("not a result"));
        }
        let p = self.object_path(key)?;
        if p.is_file() {
            Ok(p)
        } else {
            Err(StoreError::NotFound(key.to_string()))
        }
    }
}

/// A writer that hashes what it writes.
struct HashingWriter {
    inner: std::fs::File,
    hash: Sha256,
}

impl std::io::Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(path)?, bytes)
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Copies `src` to `dest` through a temp file in `tmp_dir` (fsync, rename), returning the
/// SHA-256 of what was written.
async fn copy_atomic(src: &Path, dest: &Path, tmp: &Path) -> Result<[u8; 32], StoreError> {
    let (src, dest, tmp) = (src.to_path_buf(), dest.to_path_buf(), tmp.to_path_buf());
    tokio::task::spawn_blocking(move || -> Result<[u8; 32], StoreError> {
        use std::io::{Read, Write};
        let mut r = std::fs::File::open(&src).map_err(|e| io("reading", e))?;
        let mut w = std::fs::File::create(&tmp).map_err(|e| io("writing", e))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let res = (|| -> std::io::Result<()> {
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                w.write_all(&buf[..n])?;
            }
            w.sync_all()?;
            Ok(())
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("copying", e));
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("creating the directory", e))?;
        }
        std::fs::rename(&tmp, &dest).map_err(|e| io("renaming", e))?;
        Ok(h.finalize().into())
    })
    .await
    .map_err(|e| StoreError::Backend(e.to_string()))?
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn create_multipart(&self, key: &str) -> Result<String, StoreError> {
        check_key(key)?;
        let mut r = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut r);
        let id = hex::encode(r);
        let dir = self.root.join("multipart").join(&id);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io("multipart", e))?;
        tokio::fs::write(dir.join("key"), key)
            .await
            .map_err(|e| io("multipart", e))?;
        Ok(id)
    }

    async fn presign_part(
        &self,
        _key: &str,
        upload_id: &str,
        part: u32,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        check_upload_id(upload_id)?;
        let expires = now_ms() / 1000 + ttl.as_secs();
        let sig = self.mac(&["PUT", upload_id, &part.to_string(), &expires.to_string()]);
        Ok(format!(
            "{}/local/parts/{upload_id}/{part}?expires={expires}&sig={sig}",
            self.base_url
        ))
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartEtag],
    ) -> Result<(), StoreError> {
        check_upload_id(upload_id)?;
        let dest = self.object_path(key)?;
        let dir = self.root.join("multipart").join(upload_id);
        let stored_key = tokio::fs::read_to_string(dir.join("key"))
            .await
            .map_err(|e| io(&format!("upload {upload_id}"), e))?;
        if stored_key != key {
            return Err(StoreError::invalid("upload id belongs to another key"));
        }
        for (i, p) in parts.iter().enumerate() {
            if p.part_number as usize != i + 1 {
                return Err(StoreError::invalid(
                    "parts must be listed in order, numbered from 1 without gaps",
                ));
            }
            let etag = tokio::fs::read_to_string(dir.join(format!("{}.etag", p.part_number)))
                .await
                .map_err(|_| {
                    StoreError::invalid(format!("part {} was not uploaded", p.part_number))
                })?;
            if etag.trim_matches('"') != p.etag.trim_matches('"') {
                return Err(StoreError::invalid(format!(
                    "ETag of part {} does not match",
                    p.part_number
                )));
            }
        }
        let tmp = self.tmp_path();
        let paths: Vec<PathBuf> = parts
            .iter()
            .map(|p| dir.join(format!("{}.part", p.part_number)))
            .collect();
        let (tmp2, dest2) = (tmp.clone(), dest.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut w = std::fs::File::create(&tmp2)?;
            for p in &paths {
                std::io::copy(&mut std::fs::File::open(p)?, &mut w)?;
            }
            w.sync_all()?;
            if let Some(parent) = dest2.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&tmp2, &dest2)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io("assembling the upload", e)
        })?;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        Ok(())
    }

    async fn upload_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match tokio::fs::metadata(self.object_path(key)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(key, e)),
        }
    }

    async fn download_upload(
        &self,
        key: &str,
        dest: &Path,
        max: u64,
    ) -> Result<(u64, [u8; 32]), StoreError> {
        let src = self.object_path(key)?;
        let len = tokio::fs::metadata(&src)
            .await
            .map_err(|e| io(key, e))?
            .len();
        if len > max {
            return Err(StoreError::invalid(format!(
                "the upload is {len} bytes, more than the limit {max}"
            )));
        }
        let (src, dest) = (src, dest.to_path_buf());
        tokio::task::spawn_blocking(move || -> std::io::Result<(u64, [u8; 32])> {
            let mut w = HashingWriter {
                inner: std::fs::File::create(&dest)?,
                hash: Sha256::new(),
            };
            let n = std::io::copy(&mut std::fs::File::open(&src)?, &mut w)?;
            Ok((n, w.hash.finalize().into()))
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .map_err(|e| io(key, e))
    }

    async fn put_result(
        &self,
        key: &str,
        src: &Path,
        sha256: &[u8; 32],
    ) -> Result<Stored, StoreError> {
        use base64::Engine;
        let dest = self.object_path(key)?;
        let signed_dir = self.root.join("objects/signed");
        if !signed_dir.is_dir() {
            return Err(StoreError::Backend(format!(
                "results store {} does not exist",
                signed_dir.display()
            )));
        }
        // Written under tmp/ first: a failed copy leaves nothing under signed/.
        let tmp = self.tmp_path();
        let side_tmp = self.tmp_path();
        let written = copy_atomic(src, &tmp, &side_tmp).await?;
        if &written != sha256 {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(StoreError::invalid(
                "checksum mismatch: the stored bytes are not the signed file",
            ));
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(written);
        let sidecar = format!("{}.sha256", dest.display());
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io("results", e))?;
        }
        tokio::fs::write(&sidecar, &b64)
            .await
            .map_err(|e| io("results", e))?;
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(|e| io("results", e))?;
        Ok(Stored {
            checksum_sha256: b64,
        })
    }

    async fn presign_result(
        &self,
        key: &str,
        file_name: &str,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        check_key(key)?;
        let expires = now_ms() / 1000 + ttl.as_secs();
        let sig = self.mac(&["GET", key, file_name, &expires.to_string()]);
        Ok(format!(
            "{}/local/results/{}?name={}&expires={expires}&sig={sig}",
            self.base_url,
            url_encode(key),
            url_encode(file_name)
        ))
    }

    async fn delete_result(&self, key: &str) -> Result<(), StoreError> {
        let p = self.object_path(key)?;
        let _ = tokio::fs::remove_file(format!("{}.sha256", p.display())).await;
        match tokio::fs::remove_file(&p).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(key, e)),
            _ => Ok(()),
        }
    }

    async fn delete_upload(&self, key: &str) -> Result<(), StoreError> {
        let p = self.object_path(key)?;
        match tokio::fs::remove_file(&p).await {
            Ok(()) => {
                if let Some(parent) = p.parent() {
                    let _ = tokio::fs::remove_dir(parent).await;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(key, e)),
        }
    }

    async fn list_uploads(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let base = self.root.join("objects/uploads");
        let mut out = Vec::new();
        let mut dirs = tokio::fs::read_dir(&base)
            .await
            .map_err(|e| io("uploads", e))?;
        while let Some(d) = dirs.next_entry().await.map_err(|e| io("uploads", e))? {
            let Ok(name) = d.file_name().into_string() else {
                continue;
            };
            let Ok(mut files) = tokio::fs::read_dir(d.path()).await else {
                continue;
            };
            while let Ok(Some(f)) = files.next_entry().await {
                if let Ok(fname) = f.file_name().into_string() {
                    out.push(format!("uploads/{name}/{fname}"));
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_relative_paths() {
        assert!(check_key("uploads/ab/app.exe").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "uploads/../x",
            "a//b",
            "a\\b",
            "a/./b",
            "a\u{1}b",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn presigned_part_urls_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(dir.path(), "http://127.0.0.1:1", 8).unwrap();
        let id = s.create_multipart("uploads/j/a.exe").await.unwrap();
        let url = s
            .presign_part("uploads/j/a.exe", &id, 1, Duration::from_secs(60))
            .await
            .unwrap();
        let q = url.split_once('?').unwrap().1;
        let get = |k: &str| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .unwrap()
                .to_string()
        };
        let (exp, sig) = (get("expires").parse::<u64>().unwrap(), get("sig"));
        let body = |b: &'static [u8]| {
            futures_util::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from_static(b))])
        };
        // Wrong part number, wrong signature, expired, too big: refused.
        assert!(s.accept_part(&id, 2, exp, &sig, body(b"x")).await.is_err());
        assert!(s.accept_part(&id, 1, exp, "00", body(b"x")).await.is_err());
        assert!(s
            .accept_part(&id, 1, exp + 1, &sig, body(b"x"))
            .await
            .is_err());
        assert!(s
            .accept_part(&id, 1, exp, &sig, body(b"123456789"))
            .await
            .is_err());
        let etag = s.accept_part(&id, 1, exp, &sig, body(b"MZ")).await.unwrap();
        let parts = [PartEtag {
            part_number: 1,
            etag: etag.clone(),
        }];
        let wrong = [PartEtag {
            part_number: 1,
            etag: "\"00\"".into(),
        }];
        assert!(s
            .complete_multipart("uploads/j/a.exe", &id, &wrong)
            .await
            .is_err());
        s.complete_multipart("uploads/j/a.exe", &id, &parts)
            .await
            .unwrap();
        assert_eq!(s.upload_size("uploads/j/a.exe").await.unwrap(), Some(2));
        assert_eq!(
            s.list_uploads(10).await.unwrap(),
            vec!["uploads/j/a.exe".to_string()]
        );
    }
}
