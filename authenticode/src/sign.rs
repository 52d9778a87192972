//! Signing a PE file: one streaming pass, one key call, temp file + verify + rename.
//!
//! ```text
//! input ─▶ headers ─▶ one pass: read → hash + checksum → copy to a temp file beside the output
//!       ─▶ SpcIndirectData + signed attributes ─▶ key signs their digest (one call)
//!       ─▶ SignedData ─▶ WIN_CERTIFICATE appended, Security entry and CheckSum patched
//!       ─▶ output re-read and checked (headers, table, signature, digest) ─▶ fsync ─▶ rename
//! ```
//! The input is never modified in place: signing "in place" writes a temp file and renames it
//! over the input only after the result checked out.
use std::{
    fs::File,
    io::{BufReader, BufWriter, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use codeseal_signer::{DigestAlgorithm, KeySigner, SignatureAlgorithm, SigningIdentity};
use tempfile::NamedTempFile;

use crate::{
    digest::{stream_image, ImagePass},
    error::{Error, Result},
    pe::PeInfo,
    pkcs7::{OpusInfo, ParsedSignature, SignatureRequest},
    verify::{check_signature, read_cert_table},
    wincert::{build_entry, parse_table},
};

/// How to sign.
#[derive(Clone, Debug)]
pub struct SignOptions {
    /// The digest algorithm (SHA-256 by default).
    pub digest: DigestAlgorithm,
    /// Program name and URL.
    pub opus: OpusInfo,
    /// Replace an existing signature instead of refusing.
    pub replace: bool,
    /// Overwrite an existing output file (other than the input).
    pub force: bool,
    /// Allow SHA-1 (legacy).
    pub allow_sha1: bool,
}

impl Default for SignOptions {
    fn default() -> Self {
        Self {
            digest: DigestAlgorithm::Sha256,
            opus: OpusInfo::default(),
            replace: false,
            force: false,
            allow_sha1: false,
        }
    }
}

/// What signing produced.
#[derive(Clone, Debug)]
pub struct SignOutcome {
    /// The output file.
    pub output: PathBuf,
    /// The Authenticode digest of the image.
    pub image_digest: Vec<u8>,
    /// The digest algorithm.
    pub digest_algorithm: DigestAlgorithm,
    /// The signature algorithm.
    pub signature_algorithm: SignatureAlgorithm,
    /// Size of the output.
    pub output_len: u64,
    /// Whether an existing signature was replaced.
    pub replaced: bool,
}

/// A file whose image was hashed and copied, waiting for the key's signature.
///
/// This is the split point for remote and offline keys: [`digest_to_sign`](Self::digest_to_sign)
/// is all the key sees; [`finish`](Self::finish) takes the signature.
#[derive(Debug)]
pub struct PreparedSigning {
    tmp: NamedTempFile,
    pe: PeInfo,
    pass: ImagePass,
    request: SignatureRequest,
    output: PathBuf,
    overwrite: bool,
    replaced: bool,
    permissions: Option<std::fs::Permissions>,
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
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
        if opts.digest.is_weak() && !opts.allow_sha1 {
            return Err(Error::Usage(
                "SHA-1 is weak; it is allowed only when asked for explicitly (legacy dual signing)"
                    .into(),
            ));
        }
        let key: &dyn KeySigner = identity.key().as_ref();
        let algorithm = key.key_kind().with_digest(opts.digest);
        if !key.supports(algorithm) {
            return Err(codeseal_signer::SignError::UnsupportedAlgorithm {
                key: key.key_kind(),
                requested: algorithm,
            }
            .into());
        }
        let in_place = output == input || same_file(input, output);
        if !in_place && !opts.force && output.exists() {
            return Err(Error::OutputExists(output.display().to_string()));
        }
        let file =
            File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
        let permissions = file.metadata().ok().map(|m| m.permissions());
        let mut r = BufReader::with_capacity(64 << 10, file);
        let pe = PeInfo::read(&mut r)?;
        let mut replaced = false;
        if let Some(t) = pe.cert_table {
            if !opts.replace {
                return Err(Error::AlreadySigned);
            }
            if pe.bytes_after_cert_table() > 0 {
                return Err(Error::CertTable(format!(
                    "{} bytes follow the certificate table at {:#x}; refusing to re-sign a file with unsigned trailing data",
                    pe.bytes_after_cert_table(),
                    t.offset
                )));
            }
            replaced = true;
        }
        let dir = output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".codeseal-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(format!("creating a temp file in {}", dir.display()), e))?;
        let pass = {
            let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
            let pass = stream_image(&mut r, &pe, &[opts.digest], Some(&mut w))?;
            w.flush()
                .map_err(|e| Error::io("writing the temp file", e))?;
            pass
        };
        let image_digest = pass
            .digest(opts.digest)
            .ok_or_else(|| Error::Usage("digest missing".into()))?;
        let request = SignatureRequest::new(algorithm, image_digest, &opts.opus)?;
        tracing::debug!(
            input = %input.display(),
            digest = %hex::encode(image_digest),
            algorithm = %algorithm,
            "image hashed"
        );
        Ok(Self {
            tmp,
            pe,
            pass,
            request,
            output: output.to_path_buf(),
            overwrite: in_place || opts.force,
            replaced,
            permissions,
        })
    }

    /// The digest the key must sign, and with which algorithm.
    pub fn digest_to_sign(&self) -> (&[u8], SignatureAlgorithm) {
        (&self.request.digest_to_sign, self.request.algorithm)
    }

    /// The image's Authenticode digest.
    pub fn image_digest(&self) -> &[u8] {
        self.pass
            .digest(self.request.algorithm.digest)
            .unwrap_or_default()
    }

    /// Assembles the signature, appends it, patches the headers, checks the result and
    /// renames it over the output.
    pub fn finish(mut self, identity: &SigningIdentity, signature: &[u8]) -> Result<SignOutcome> {
        let pkcs7 = self.request.assemble(identity.chain(), signature)?;
        let entry = build_entry(&pkcs7)?;
        let table_offset = self.pass.image_len + self.pass.padding;
        let table_size =
            u32::try_from(entry.len()).map_err(|_| Error::Usage("signature too large".into()))?;
        let table_offset32 = u32::try_from(table_offset).map_err(|_| {
            Error::Usage(
                "the file is larger than 4 GiB; PE certificate tables cannot be placed there"
                    .into(),
            )
        })?;
        let mut dir = [0u8; 8];
        dir[..4].copy_from_slice(&table_offset32.to_le_bytes());
        dir[4..].copy_from_slice(&table_size.to_le_bytes());
        let total = table_offset + entry.len() as u64;
        let mut cks = self.pass.checksum.clone();
        cks.update(self.pe.security_dir_offset, &dir);
        cks.update(table_offset, &entry);
        let checksum = cks.finish(total);

        let f = self.tmp.as_file_mut();
        let io = |what: &str| {
            let what = what.to_string();
            move |e| Error::io(what, e)
        };
        f.seek(SeekFrom::Start(table_offset))
            .map_err(io("seeking in the temp file"))?;
        f.write_all(&entry).map_err(io("writing the signature"))?;
        f.seek(SeekFrom::Start(self.pe.security_dir_offset))
            .map_err(io("seeking in the temp file"))?;
        f.write_all(&dir)
            .map_err(io("writing the Security directory"))?;
        f.seek(SeekFrom::Start(self.pe.checksum_offset))
            .map_err(io("seeking in the temp file"))?;
        f.write_all(&checksum.to_le_bytes())
            .map_err(io("writing the CheckSum"))?;
        f.set_len(total).map_err(io("truncating the temp file"))?;

        // Check what was written: headers, table, signature and digest, read back from disk.
        self.check_output(total)?;

        f_sync(self.tmp.as_file())?;
        if let Some(p) = self.permissions.take() {
            let _ = self.tmp.as_file().set_permissions(p);
        }
        let output = self.output.clone();
        let persisted = if self.overwrite {
            self.tmp.persist(&output).map_err(|e| e.error)
        } else {
            self.tmp.persist_noclobber(&output).map_err(|e| e.error)
        };
        persisted.map_err(|e| {
            Error::io(
                format!("renaming the signed file to {}", output.display()),
                e,
            )
        })?;
        if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = File::open(parent) {
                let _ = d.sync_all();
            }
        }
        Ok(SignOutcome {
            output,
            image_digest: self
                .pass
                .digest(self.request.algorithm.digest)
                .unwrap_or_default()
                .to_vec(),
            digest_algorithm: self.request.algorithm.digest,
            signature_algorithm: self.request.algorithm,
            output_len: total,
            replaced: self.replaced,
        })
    }

    fn check_output(&mut self, total: u64) -> Result<()> {
        let fail = |m: String| Error::OutputCheck(m);
        let f = self.tmp.as_file_mut();
        f.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("rewinding the temp file", e))?;
        let mut r = BufReader::new(&mut *f);
        let pe = PeInfo::read(&mut r).map_err(|e| fail(e.to_string()))?;
        if pe.file_len != total || pe.bytes_after_cert_table() != 0 {
            return Err(fail("unexpected output length".into()));
        }
        let table = read_cert_table(&mut r, &pe).map_err(|e| fail(e.to_string()))?;
        let (entries, _) = parse_table(&table).map_err(|e| fail(e.to_string()))?;
        let [entry] = entries.as_slice() else {
            return Err(fail(format!("{} entries in the new table", entries.len())));
        };
        let parsed = ParsedSignature::parse(entry.data).map_err(|e| fail(e.to_string()))?;
        let report = check_signature(0, &parsed, self.image_digest());
        if !report.is_valid() {
            return Err(fail(report.errors.join("; ")));
        }
        Ok(())
    }
}

fn f_sync(f: &File) -> Result<()> {
    f.sync_all()
        .map_err(|e| Error::io("syncing the temp file", e))
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
    let signature = key.sign_digest_checked(alg, digest)?;
    prepared.finish(identity, &signature)
}

/// The async form of [`sign_file`]: the key call does not block (file I/O still does; run
/// it on a blocking-friendly executor thread for large files).
pub async fn sign_file_async(
    identity: &SigningIdentity,
    input: &Path,
    output: &Path,
    opts: &SignOptions,
) -> Result<SignOutcome> {
    let prepared = PreparedSigning::prepare(identity, input, output, opts)?;
    let (digest, alg) = prepared.digest_to_sign();
    let key: &dyn KeySigner = identity.key().as_ref();
    let signature = key.sign_digest_checked_async(alg, digest).await?;
    prepared.finish(identity, &signature)
}
