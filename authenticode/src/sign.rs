//! Signing any supported file: one read of the input, one key call, temp file + check +
//! rename. The format (see [`crate::format`]) supplies the digest, the indirect data and
//! where the signature goes; the rest is the same for every format.
//!
//! ```text
//! input ─▶ detect the format ─▶ one pass: read → hash (+ PE page hashes and checksum) → stage
//!       ─▶ SpcIndirectData + signed attributes ─▶ key signs their digest (one call)
//!       ─▶ SignedData [nested into the existing one with --append] [+ time stamp]
//!       ─▶ the format writes it (PE: WIN_CERTIFICATE + patched headers; scripts: the block)
//!       ─▶ output re-read and checked (structure, every new signature, digests) ─▶ fsync ─▶ rename
//! ```
use std::path::{Path, PathBuf};

use codeseal_signer::{DigestAlgorithm, KeySigner, SignatureAlgorithm, SigningIdentity};

use crate::{
    error::{Error, Result},
    format::{indirect_data, stage, FileKind, StageOptions, Staged},
    pagehash::page_hash_algorithm,
    pkcs7::{add_unsigned_attr_and_certs, nest_signature, OpusInfo, SignatureRequest},
    stage::Existing,
    timestamp::TimestampOptions,
};

/// How to sign.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SignOptions {
    /// The digest algorithm (SHA-256 by default).
    pub digest: DigestAlgorithm,
    /// Program name and URL.
    pub opus: OpusInfo,
    /// Replace an existing signature instead of refusing.
    pub replace: bool,
    /// Add the new signature as a nested signature of the existing one (dual signing).
    pub append: bool,
    /// Include a page-hash table (SHA-256 v2; SHA-1 v1 with a SHA-1 signature).
    pub page_hashes: bool,
    /// Overwrite an existing output file (other than the input).
    pub force: bool,
    /// Allow SHA-1 (legacy).
    pub allow_sha1: bool,
    /// Time-stamp the new signature (RFC 3161 or legacy). When it fails, nothing is written.
    pub timestamp: Option<TimestampOptions>,
    /// MSI: give the new signature an `MsiDigitalSignatureEx` stream (a pre-hash of the
    /// installer's metadata, as osslsigncode's `-add-msi-dse`). Ignored for other formats.
    pub add_msi_dse: bool,
    /// APPX: sign even when the manifest's Publisher is not the signer's subject (Windows
    /// will refuse to install the package).
    pub allow_publisher_mismatch: bool,
    /// Sync the output's directory after the rename, so that the output is durable when
    /// signing returns (the default). A caller that signs many files may turn it off and sync
    /// each output's directory ([`crate::format::parent_of`]) once after a group of files, with
    /// [`crate::format::sync_directory`],
    /// before it reports any of them signed.
    pub sync_directory: bool,
}

impl SignOptions {
    /// Sets `digest`: the digest algorithm (SHA-256 by default).
    pub fn with_digest(mut self, digest: DigestAlgorithm) -> Self {
        self.digest = digest;
        self
    }
    /// Sets `opus`: program name and URL.
    pub fn with_opus(mut self, opus: OpusInfo) -> Self {
        self.opus = opus;
        self
    }
    /// Sets `replace`: replace an existing signature instead of refusing.
    pub fn with_replace(mut self, replace: bool) -> Self {
        self.replace = replace;
        self
    }
    /// Sets `append`: add the new signature as a nested signature of the existing one (dual signing).
    pub fn with_append(mut self, append: bool) -> Self {
        self.append = append;
        self
    }
    /// Sets `page_hashes`: include a page-hash table (SHA-256 v2; SHA-1 v1 with a SHA-1 signature).
    pub fn with_page_hashes(mut self, page_hashes: bool) -> Self {
        self.page_hashes = page_hashes;
        self
    }
    /// Sets `force`: overwrite an existing output file (other than the input).
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }
    /// Sets `allow_sha1`: allow SHA-1 (legacy).
    pub fn with_allow_sha1(mut self, allow_sha1: bool) -> Self {
        self.allow_sha1 = allow_sha1;
        self
    }
    /// Sets `allow_publisher_mismatch` (APPX).
    pub fn with_allow_publisher_mismatch(mut self, allow: bool) -> Self {
        self.allow_publisher_mismatch = allow;
        self
    }

    /// Sets `add_msi_dse`: give a new MSI signature an `MsiDigitalSignatureEx` stream.
    pub fn with_add_msi_dse(mut self, add_msi_dse: bool) -> Self {
        self.add_msi_dse = add_msi_dse;
        self
    }
    /// Sets `timestamp`: time-stamp the new signature (RFC 3161 or legacy). When it fails, nothing is written.
    pub fn with_timestamp(mut self, timestamp: impl Into<Option<TimestampOptions>>) -> Self {
        self.timestamp = timestamp.into();
        self
    }
    /// Sets `sync_directory`: sync the output's directory after the rename (the default);
    /// `false` leaves that to the caller (see the field).
    pub fn with_sync_directory(mut self, sync_directory: bool) -> Self {
        self.sync_directory = sync_directory;
        self
    }
}

impl Default for SignOptions {
    fn default() -> Self {
        Self {
            digest: DigestAlgorithm::Sha256,
            opus: OpusInfo::default(),
            replace: false,
            append: false,
            page_hashes: false,
            force: false,
            allow_sha1: false,
            timestamp: None,
            add_msi_dse: false,
            allow_publisher_mismatch: false,
            sync_directory: true,
        }
    }
}

/// What signing produced.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SignOutcome {
    /// The output file.
    pub output: PathBuf,
    /// The kind of file signed.
    pub kind: FileKind,
    /// The Authenticode digest of the image.
    pub image_digest: Vec<u8>,
    /// The digest algorithm.
    pub digest_algorithm: DigestAlgorithm,
    /// The signature algorithm.
    pub signature_algorithm: SignatureAlgorithm,
    /// Size of the output.
    pub output_len: u64,
    /// Whether the new signature was nested into an existing one.
    pub appended: bool,
}

/// A file whose image was hashed and copied, waiting for the key's signature.
///
/// This is the split point for remote and offline keys: [`digest_to_sign`](Self::digest_to_sign)
/// is all the key sees; [`finish`](Self::finish) takes the signature.
#[derive(Debug)]
pub struct PreparedSigning {
    staged: Box<dyn Staged>,
    request: SignatureRequest,
    timestamp: Option<TimestampOptions>,
}

pub(crate) fn check_algorithm(
    key: &dyn KeySigner,
    opts: &SignOptions,
) -> Result<SignatureAlgorithm> {
    if opts.digest.is_weak() && !opts.allow_sha1 {
        return Err(Error::Usage(
            "SHA-1 is weak; it is allowed only when asked for explicitly (legacy dual signing)"
                .into(),
        ));
    }
    if opts.append && opts.replace {
        return Err(Error::Usage(
            "--append and --replace exclude each other".into(),
        ));
    }
    let algorithm = key.key_kind().with_digest(opts.digest);
    if !key.supports(algorithm) {
        return Err(codeseal_signer::SignError::UnsupportedAlgorithm {
            key: key.key_kind(),
            requested: algorithm,
        }
        .into());
    }
    Ok(algorithm)
}

impl PreparedSigning {
    /// Reads `input` once: checks its headers, hashes the image and copies it to a temp file
    /// beside `output`, and builds the signed attributes for `identity`'s key.
    pub fn prepare(
        identity: &SigningIdentity,
        input: &Path,
        output: &Path,
        opts: &SignOptions,
    ) -> Result<Self> {
        let algorithm = check_algorithm(identity.key().as_ref(), opts)?;
        let existing = if opts.append {
            Existing::Keep
        } else if opts.replace {
            Existing::Replace
        } else {
            Existing::Refuse
        };
        let kind = FileKind::detect(input)?;
        crate::format::catalog::refuse_append(kind, opts.append)?;
        if matches!(kind, FileKind::Appx | FileKind::AppxBundle) {
            crate::format::appx::refuse_nesting(opts.append)?;
        }
        let pages = opts.page_hashes.then(|| page_hash_algorithm(opts.digest));
        let staged = stage(
            kind,
            input,
            output,
            StageOptions {
                force: opts.force,
                sync_dir: opts.sync_directory,
                existing,
                algs: &[opts.digest],
                pages,
                msi_dse: opts.add_msi_dse && kind == FileKind::Msi,
                appx_signer: (!opts.allow_publisher_mismatch).then(|| identity.leaf()),
            },
        )?;
        if opts.append && staged.existing_signature().is_none() {
            return Err(Error::NotSigned);
        }
        let image_digest = staged
            .digest(opts.digest)
            .ok_or_else(|| Error::Usage("digest missing".into()))?;
        let request = match staged.content() {
            // A catalog: the signature encapsulates its CTL.
            Some(content) => {
                SignatureRequest::for_content(algorithm, crate::oid::MS_CTL, content?, &opts.opus)?
            }
            None => {
                let data = indirect_data(kind, staged.page_hashes())?;
                SignatureRequest::new(algorithm, data, image_digest, &opts.opus)?
            }
        };
        tracing::debug!(
            input = %input.display(),
            kind = %kind,
            digest = %hex::encode(image_digest),
            algorithm = %algorithm,
            "image hashed"
        );
        Ok(Self {
            staged,
            request,
            timestamp: opts.timestamp.clone(),
        })
    }

    /// The digest the key must sign, and with which algorithm.
    pub fn digest_to_sign(&self) -> (&[u8], SignatureAlgorithm) {
        (&self.request.digest_to_sign, self.request.algorithm)
    }

    /// The signature request (SpcIndirectData, signed attributes).
    pub fn request(&self) -> &SignatureRequest {
        &self.request
    }

    /// The kind of file being signed.
    pub fn kind(&self) -> FileKind {
        self.staged.kind()
    }

    /// The file's Authenticode digest.
    pub fn image_digest(&self) -> &[u8] {
        self.staged
            .digest(self.request.algorithm.digest)
            .unwrap_or_default()
    }

    /// Assembles the signature (nesting it when appending), writes it, checks the result and
    /// renames it over the output.
    pub fn finish(self, identity: &SigningIdentity, signature: &[u8]) -> Result<SignOutcome> {
        let cms = crate::timing::span(crate::timing::Phase::Cms);
        let pkcs7 = assemble(&self.request, identity, signature, self.timestamp.as_ref())?;
        drop(cms);
        self.finish_with_pkcs7(pkcs7)
    }

    /// Like [`finish`](Self::finish) with an already assembled DER ContentInfo.
    pub fn finish_with_pkcs7(self, pkcs7: Vec<u8>) -> Result<SignOutcome> {
        let (table, appended) = match self.staged.existing_signature() {
            Some(primary) => (nest_signature(primary, &pkcs7)?, true),
            None => (pkcs7, false),
        };
        let image_digest = self.image_digest().to_vec();
        let output = PathBuf::from(self.staged.output());
        let kind = self.staged.kind();
        let output_len = self.staged.commit(Some(&table))?;
        Ok(SignOutcome {
            output,
            kind,
            image_digest,
            digest_algorithm: self.request.algorithm.digest,
            signature_algorithm: self.request.algorithm,
            output_len,
            appended,
        })
    }
}

/// The SignedData around the key's `signature`, with a time stamp when asked for.
pub(crate) fn assemble(
    request: &SignatureRequest,
    identity: &SigningIdentity,
    signature: &[u8],
    timestamp: Option<&TimestampOptions>,
) -> Result<Vec<u8>> {
    let mut pkcs7 = request.assemble(identity.chain(), signature)?;
    if let Some(ts) = timestamp {
        let stamp = crate::timestamp::stamp(signature, ts, ts.transport.0.as_ref())?;
        pkcs7 = add_unsigned_attr_and_certs(&pkcs7, stamp.attr_oid, stamp.value, &stamp.certs)?;
    }
    Ok(pkcs7)
}

/// Signs `input` with `identity` and writes the result to `output` (which may be `input`:
/// the file is then replaced atomically). Blocks on the key.
pub fn sign_file(
    identity: &SigningIdentity,
    input: &Path,
    output: &Path,
    opts: &SignOptions,
) -> Result<SignOutcome> {
    let prepared = PreparedSigning::prepare(identity, input, output, opts)?;
    let (digest, alg) = prepared.digest_to_sign();
    let key: &dyn KeySigner = identity.key().as_ref();
    let signature = {
        let _t = crate::timing::span(crate::timing::Phase::Key);
        key.sign_digest_checked(alg, digest)?
    };
    prepared.finish(identity, &signature)
}

/// The async form of [`sign_file`] (feature `async`): reading, hashing and writing the file
/// and time-stamping (with its retries and waits) run on tokio's blocking pool; only the key
/// call is awaited on the caller's executor, which is never blocked. Needs a tokio runtime.
#[cfg(feature = "async")]
pub async fn sign_file_async(
    identity: &SigningIdentity,
    input: &Path,
    output: &Path,
    opts: &SignOptions,
) -> Result<SignOutcome> {
    let joined = |e: tokio::task::JoinError| {
        Error::io(
            "the blocking signing task",
            std::io::Error::other(e.to_string()),
        )
    };
    let (id, i, o, op) = (
        identity.clone(),
        input.to_path_buf(),
        output.to_path_buf(),
        opts.clone(),
    );
    let prepared = tokio::task::spawn_blocking(move || PreparedSigning::prepare(&id, &i, &o, &op))
        .await
        .map_err(joined)??;
    let signature = {
        let (digest, alg) = prepared.digest_to_sign();
        let key: &dyn KeySigner = identity.key().as_ref();
        key.sign_digest_checked_async(alg, digest).await?
    };
    let id = identity.clone();
    tokio::task::spawn_blocking(move || prepared.finish(&id, &signature))
        .await
        .map_err(joined)?
}
