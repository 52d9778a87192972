//! Amazon S3: an uploads bucket (multipart uploads through presigned part URLs, deleted after
//! signing) and a results bucket (signed files, stored with ChecksumSHA256).
use std::{path::Path, time::Duration};

use async_trait::async_trait;
use aws_sdk_s3::{
    error::{DisplayErrorContext, ProvideErrorMetadata},
    presigning::PresigningConfig,
    primitives::ByteStream,
    types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart},
    Client,
};
use tokio::io::AsyncWriteExt;

use super::{ObjectStore, PartEtag, StoreError, Stored};

/// The two buckets.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    uploads: String,
    results: String,
}

fn backend<E>(what: &str, e: aws_sdk_s3::error::SdkError<E>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    // S3's error codes (machine-readable, documented), not its message text, decide.
    let code = e.code().unwrap_or_default().to_string();
    let text = format!("{what}: {}", DisplayErrorContext(&e));
    match code.as_str() {
        "NoSuchKey" | "NotFound" | "NoSuchUpload" => StoreError::NotFound(text),
        "InvalidPart" | "InvalidPartOrder" => StoreError::invalid_with(
            "the part list does not match the uploaded parts (part numbers and ETags)",
            text,
        ),
        "EntityTooSmall" => StoreError::invalid_with(
            "a part other than the last is smaller than the minimum part size",
            text,
        ),
        "BadDigest" => StoreError::invalid_with("the data does not match its checksum", text),
        _ => StoreError::Backend(text),
    }
}

impl S3Store {
    /// Uses `sdk` (the aws-config default chain; `AWS_ENDPOINT_URL` honoured). With an
    /// endpoint override (a local emulator, a VPC endpoint by IP) path-style addressing is used.
    pub fn new(sdk: &aws_config::SdkConfig, uploads: &str, results: &str) -> Self {
        let mut b = aws_sdk_s3::config::Builder::from(sdk)
            // Presigned part URLs must not carry a checksum the browser cannot send.
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            );
        if sdk.endpoint_url().is_some() {
            b = b.force_path_style(true);
        }
        Self {
            client: Client::from_conf(b.build()),
            uploads: uploads.to_string(),
            results: results.to_string(),
        }
    }
}

fn presigning(ttl: Duration) -> Result<PresigningConfig, StoreError> {
    PresigningConfig::expires_in(ttl)
        .map_err(|e| StoreError::invalid_with("invalid URL lifetime", e.to_string()))
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn create_multipart(&self, key: &str) -> Result<String, StoreError> {
        let r = self
            .client
            .create_multipart_upload()
            .bucket(&self.uploads)
            .key(key)
            .send()
            .await
            .map_err(|e| backend("CreateMultipartUpload", e))?;
        r.upload_id()
            .map(str::to_string)
            .ok_or_else(|| StoreError::Backend("CreateMultipartUpload: no upload id".into()))
    }

    async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let part =
            i32::try_from(part).map_err(|_| StoreError::invalid("part number out of range"))?;
        let req = self
            .client
            .upload_part()
            .bucket(&self.uploads)
            .key(key)
            .upload_id(upload_id)
            .part_number(part)
            .presigned(presigning(ttl)?)
            .await
            .map_err(|e| backend("presigning UploadPart", e))?;
        Ok(req.uri().to_string())
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartEtag],
    ) -> Result<(), StoreError> {
        let mut done = Vec::with_capacity(parts.len());
        for p in parts {
            let n = i32::try_from(p.part_number)
                .map_err(|_| StoreError::invalid("part number out of range"))?;
            done.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(&p.etag)
                    .build(),
            );
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.uploads)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| backend("CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn upload_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.uploads)
            .key(key)
            .send()
            .await
        {
            Ok(r) => Ok(Some(r.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(backend("HeadObject", e)),
        }
    }

    async fn download_upload(
        &self,
        key: &str,
        dest: &Path,
        max: u64,
    ) -> Result<(u64, [u8; 32]), StoreError> {
        use sha2::Digest;
        let r = self
            .client
            .get_object()
            .bucket(&self.uploads)
            .key(key)
            .send()
            .await
            .map_err(|e| backend("GetObject", e))?;
        let declared = r.content_length().unwrap_or(0).max(0) as u64;
        if declared > max {
            return Err(StoreError::invalid(format!(
                "the upload is {declared} bytes, more than the limit {max}"
            )));
        }
        let mut body = r.body;
        let mut f = tokio::fs::File::create(dest)
            .await
            .map_err(|e| StoreError::Backend(format!("temp file: {e}")))?;
        let mut n = 0u64;
        let mut hash = sha2::Sha256::new();
        while let Some(chunk) = body
            .next()
            .await
            .transpose()
            .map_err(|e| StoreError::Backend(format!("GetObject body: {e}")))?
        {
            n += chunk.len() as u64;
            if n > max {
                return Err(StoreError::invalid(format!(
                    "the upload is more than the limit {max}"
                )));
            }
            hash.update(&chunk);
            f.write_all(&chunk)
                .await
                .map_err(|e| StoreError::Backend(format!("temp file: {e}")))?;
        }
        f.flush()
            .await
            .map_err(|e| StoreError::Backend(format!("temp file: {e}")))?;
        Ok((n, hash.finalize().into()))
    }

    async fn put_result(
        &self,
        key: &str,
        src: &Path,
        sha256: &[u8; 32],
    ) -> Result<Stored, StoreError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(sha256);
        let body = ByteStream::from_path(src)
            .await
            .map_err(|e| StoreError::Backend(format!("reading the signed file: {e}")))?;
        let r = self
            .client
            .put_object()
            .bucket(&self.results)
            .key(key)
            .body(body)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(&b64)
            .send()
            .await
            .map_err(|e| backend("PutObject (results)", e))?;
        let stored = r.checksum_sha256().unwrap_or_default().to_string();
        if stored != b64 {
            return Err(StoreError::invalid(format!(
                "the results bucket recorded ChecksumSHA256 {stored:?}, expected {b64}"
            )));
        }
        Ok(Stored {
            checksum_sha256: stored,
        })
    }

    async fn presign_result(
        &self,
        key: &str,
        file_name: &str,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let safe: String = file_name
            .chars()
            .map(|c| if c == '"' || c == '\\' { '_' } else { c })
            .collect();
        let req = self
            .client
            .get_object()
            .bucket(&self.results)
            .key(key)
            .response_content_disposition(format!("attachment; filename=\"{safe}\""))
            .presigned(presigning(ttl)?)
            .await
            .map_err(|e| backend("presigning GetObject", e))?;
        Ok(req.uri().to_string())
    }

    async fn delete_result(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.results)
            .key(key)
            .send()
            .await
            .map_err(|e| backend("DeleteObject (results)", e))?;
        Ok(())
    }

    async fn delete_upload(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.uploads)
            .key(key)
            .send()
            .await
            .map_err(|e| backend("DeleteObject", e))?;
        Ok(())
    }

    async fn list_uploads(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let r = self
            .client
            .list_objects_v2()
            .bucket(&self.uploads)
            .prefix("uploads/")
            .max_keys(i32::try_from(limit.min(1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(|e| backend("ListObjectsV2", e))?;
        Ok(r.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect())
    }

    fn describe(&self) -> String {
        format!("s3://{} -> s3://{}", self.uploads, self.results)
    }
}
