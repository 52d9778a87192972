//! MSI installers in the pipeline, in memory independent of the installer's size. Staging
//! copies the input to the temp file and hashes it (the walk of [`crate::msi`]) for every
//! digest algorithm needed; the commit opens the copy with `cfb`, writes, replaces or removes
//! the `\x05DigitalSignature` stream (and `\x05MsiDigitalSignatureEx`), flushes, then reads
//! the copy back: the same digests, exactly the new signature, which must verify. No other
//! stream or storage is written.
//!
//! `MsiDigitalSignatureEx`: a new signature made with `--add-msi-dse` gets one (the pre-hash
//! of the metadata walk with the signature's digest algorithm), and its content is then
//! hashed in front of the content walk. Appending keeps the input's Ex stream as it is (the
//! signatures already there cover it); replacing drops it unless `--add-msi-dse` asks for a
//! new one; removing drops it.
use std::{
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom, Write},
    path::Path,
};

use codeseal_signer::{DigestAlgorithm, SigningIdentity};

use codeseal_formats::{
    digest::{Digests, Hasher, Hashers, Sink},
    msi::{self, MsiError, SIGNATURE_EX_STREAM, SIGNATURE_STREAM},
};

use super::{check_written, indirect_data, output::OutputFile, FileKind, StageOptions, Staged};
use crate::{
    error::{Error, Result},
    pkcs7::ParsedSignature,
    sign::SignOptions,
    stage::{Existing, KeptSignature},
    stream::StreamOutcome,
    verify::{VerifyOptions, VerifyReport},
};

impl From<MsiError> for Error {
    fn from(e: MsiError) -> Self {
        match e {
            MsiError::Io { context, source } => Error::io(context, source),
            e => Error::Msi(e),
        }
    }
}

/// The `MsiDigitalSignatureEx` content for `alg`: the digest of the metadata walk.
pub(crate) fn pre_hash<F: Seek>(
    cf: &msi::CompoundFile<F>,
    alg: DigestAlgorithm,
) -> Result<Vec<u8>> {
    let mut h = Hasher::new(alg);
    msi::metadata_walk(cf, &mut h)?;
    Ok(h.finalize())
}

/// The content digests for `algs`, each after `ex` (the Ex stream's content) when given.
pub(crate) fn digests<F: Read + Seek>(
    cf: &mut msi::CompoundFile<F>,
    file_len: u64,
    algs: &[DigestAlgorithm],
    ex: Option<&[u8]>,
) -> Result<Digests> {
    let mut hashers = Hashers::new(algs);
    if let Some(ex) = ex {
        hashers.feed(ex);
    }
    msi::content_walk(cf, file_len, &mut hashers)?;
    Ok(hashers.finish())
}

fn root_path(name: &str) -> std::path::PathBuf {
    Path::new("/").join(name)
}

/// Writes (`Some`) or removes (`None`) the root stream `name`.
fn put_stream<F: Read + Write + Seek>(
    cf: &mut msi::CompoundFile<F>,
    name: &str,
    content: Option<&[u8]>,
) -> Result<()> {
    let path = root_path(name);
    let fail = |e| Error::from(msi::cfb_error("writing the signature stream", e));
    match content {
        Some(c) => {
            let mut s = cf.create_stream(&path).map_err(fail)?;
            s.write_all(c).map_err(fail)?;
            s.flush().map_err(fail)?;
        }
        None => {
            if cf.is_stream(&path) {
                cf.remove_stream(&path).map_err(fail)?;
            }
        }
    }
    Ok(())
}

/// Writes the signature streams into the compound file `f` and flushes it.
fn write_streams<F: Read + Write + Seek>(
    f: F,
    signature: Option<&[u8]>,
    ex: Option<&[u8]>,
) -> Result<()> {
    let mut cf = msi::open(f)?;
    put_stream(&mut cf, SIGNATURE_STREAM, signature)?;
    put_stream(&mut cf, SIGNATURE_EX_STREAM, signature.and(ex))?;
    cf.flush()
        .map_err(|e| Error::from(msi::cfb_error("flushing the compound file", e)))
}

/// Reads a written compound file back: the same digests (after the Ex content written),
/// exactly the new signature (or none), which must verify.
fn check_back<F: Read + Seek>(
    f: F,
    want: &Digests,
    signature: Option<&[u8]>,
    ex: Option<&[u8]>,
    inherited: &[Vec<u8>],
) -> Result<()> {
    let fail = Error::OutputCheck;
    let (mut cf, len) = msi::open_measured(f).map_err(|e| fail(e.to_string()))?;
    let back = msi::read_signatures(&mut cf).map_err(|e| fail(e.to_string()))?;
    let algs: Vec<DigestAlgorithm> = want.algorithms().collect();
    let written = digests(&mut cf, len, &algs, back.ex.as_deref())
        .map_err(|e| fail(format!("reading the output back: {e}")))?;
    if &written != want {
        return Err(fail(
            "the written installer does not hash as the input".into(),
        ));
    }
    match (signature, back.signature.as_deref()) {
        (None, None) => {
            if back.ex.is_some() {
                return Err(fail(
                    "an MsiDigitalSignatureEx stream is still present".into(),
                ));
            }
            Ok(())
        }
        (None, Some(_)) => Err(fail("a signature is still present".into())),
        (Some(_), None) => Err(fail("no signature was written".into())),
        (Some(der), Some(got)) => {
            if der != got {
                return Err(fail(
                    "the signature stream does not hold the new signature".into(),
                ));
            }
            if back.ex.as_deref() != ex {
                return Err(fail(
                    "the MsiDigitalSignatureEx stream is not the one written".into(),
                ));
            }
            check_written(
                FileKind::Msi,
                der,
                |alg| want.get(alg),
                inherited,
                |_| Ok(()),
            )
        }
    }
}

/// What signing learns from an MSI before writing: the signature kept, the Ex content the
/// output gets, and the digests.
struct Inspected {
    was_signed: bool,
    existing: Option<Vec<u8>>,
    inherited: Vec<Vec<u8>>,
    ex: Option<Vec<u8>>,
    digests: Digests,
}

fn inspect<F: Read + Seek>(
    f: F,
    existing: Existing,
    extra_algs: &[DigestAlgorithm],
    add_dse: bool,
) -> Result<Inspected> {
    let (mut cf, len) = msi::open_measured(f)?;
    let sigs = msi::read_signatures(&mut cf)?;
    let was_signed = sigs.signature.is_some();
    if was_signed && existing == Existing::Refuse {
        return Err(Error::AlreadySigned);
    }
    let mut algs = extra_algs.to_vec();
    let mut kept = None;
    let mut inherited = Vec::new();
    let ex = match (&sigs.signature, existing) {
        (Some(der), Existing::Keep) => {
            let k = KeptSignature::parse(der)?;
            algs.extend(k.algs);
            inherited = k.inherited;
            kept = Some(k.der);
            if add_dse && sigs.ex.is_none() {
                return Err(Error::Usage(
                    "--add-msi-dse cannot be used when appending to a signature made without MsiDigitalSignatureEx: it would invalidate that signature".into(),
                ));
            }
            sigs.ex.clone()
        }
        _ if add_dse => {
            let alg = extra_algs.first().copied().ok_or_else(|| {
                Error::Usage("no digest algorithm for MsiDigitalSignatureEx".into())
            })?;
            Some(pre_hash(&cf, alg)?)
        }
        _ => None,
    };
    algs.sort_by_key(|a| a.output_len());
    algs.dedup();
    let digests = digests(&mut cf, len, &algs, ex.as_deref())?;
    Ok(Inspected {
        was_signed,
        existing: kept,
        inherited,
        ex,
        digests,
    })
}

/// An installer copied to the temp file and hashed, waiting for its signature.
#[derive(Debug)]
pub(crate) struct StagedMsi {
    digests: Digests,
    existing: Option<Vec<u8>>,
    inherited: Vec<Vec<u8>>,
    ex: Option<Vec<u8>>,
    was_signed: bool,
    out: OutputFile,
}

impl StagedMsi {
    pub(crate) fn stage(input: &Path, output: &Path, opts: StageOptions<'_>) -> Result<Self> {
        let mut file =
            File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
        let mut out = OutputFile::create(input, &file, output, opts.force, opts.sync_dir)?;
        // The copy first, so that its early flushes run while the streams are hashed (a
        // refused installer only costs the copy, which is then deleted).
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading the installer's length", e))?
            .len();
        std::io::copy(&mut file, &mut out.early_flushing(len))
            .map_err(|e| Error::io("copying the installer to the temp file", e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("rewinding the input", e))?;
        let i = inspect(
            BufReader::with_capacity(64 << 10, &mut file),
            opts.existing,
            opts.algs,
            opts.msi_dse,
        )?;
        Ok(Self {
            digests: i.digests,
            existing: i.existing,
            inherited: i.inherited,
            ex: i.ex,
            was_signed: i.was_signed,
            out,
        })
    }
}

impl Staged for StagedMsi {
    fn kind(&self) -> FileKind {
        FileKind::Msi
    }

    fn digest(&self, alg: DigestAlgorithm) -> Option<&[u8]> {
        self.digests.get(alg)
    }

    fn page_hashes(&self) -> Option<&(DigestAlgorithm, Vec<u8>)> {
        None
    }

    fn existing_signature(&self) -> Option<&[u8]> {
        self.existing.as_deref()
    }

    fn was_signed(&self) -> bool {
        self.was_signed
    }

    fn output(&self) -> &Path {
        self.out.output()
    }

    fn commit(mut self: Box<Self>, signature: Option<&[u8]>) -> Result<u64> {
        let this = &mut *self;
        let ex = signature.and(this.ex.as_deref());
        let f = this.out.file_mut();
        f.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("rewinding the temp file", e))?;
        write_streams(&mut *f, signature, ex)?;
        // Without a signature, the digests are those of the unsigned layout (no Ex).
        let want = if signature.is_none() && this.ex.is_some() {
            let algs: Vec<DigestAlgorithm> = this.digests.algorithms().collect();
            f.seek(SeekFrom::Start(0))
                .map_err(|e| Error::io("rewinding the temp file", e))?;
            let (mut cf, len) = msi::open_measured(BufReader::new(&mut *f))?;
            digests(&mut cf, len, &algs, None)?
        } else {
            this.digests.clone()
        };
        f.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("rewinding the temp file", e))?;
        check_back(
            BufReader::with_capacity(64 << 10, &mut *f),
            &want,
            signature,
            ex,
            &this.inherited,
        )?;
        let len = f
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io("measuring the temp file", e))?;
        self.out.persist()?;
        Ok(len)
    }
}

/// The installer's primary signature (DER).
pub(crate) fn extract(input: &Path) -> Result<Vec<u8>> {
    let f = File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
    let mut cf = msi::open(BufReader::new(f))?;
    let der = msi::read_root_stream(&mut cf, SIGNATURE_STREAM, msi::MAX_SIGNATURE)?
        .ok_or(Error::NotSigned)?;
    Ok(ParsedSignature::parse(&der)?.der.to_vec())
}

/// The digest of the installer in `r` for `alg`, as a new signature without
/// `MsiDigitalSignatureEx` covers it (split signing).
pub(crate) fn file_digest<R: Read + Seek>(r: R, alg: DigestAlgorithm) -> Result<Vec<u8>> {
    let (mut cf, len) = msi::open_measured(r)?;
    let d = digests(&mut cf, len, &[alg], None)?;
    d.take(alg)
        .ok_or_else(|| Error::Usage("digest missing".into()))
}

/// Verifies an installer: its signature streams are read, then one walk hashes it. With an
/// `MsiDigitalSignatureEx` stream, each signature's pre-hash is recomputed and compared.
pub(crate) fn verify<R: Read + Seek>(r: &mut R, opts: &VerifyOptions) -> Result<VerifyReport> {
    use crate::finding::{Finding, FindingCode};
    use crate::verify::{algorithms, check_all, collect_signatures, finish_report};
    let len = r
        .seek(SeekFrom::End(0))
        .map_err(|e| Error::io("seeking in the input", e))?;
    r.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("rewinding the input", e))?;
    let mut cf = msi::open(&mut *r)?;
    let sigs = msi::read_signatures(&mut cf)?;
    let der = sigs.signature.ok_or(Error::NotSigned)?;
    let mut errors = Vec::new();
    let parsed = collect_signatures(vec![("0".to_string(), der.as_slice())], &mut errors);
    let algs = algorithms(&parsed);
    let digests = digests(&mut cf, len, &algs, sigs.ex.as_deref())?;
    // The Ex stream is the primary signature's: its pre-hash uses that signature's digest
    // algorithm (nested signatures cover the stream's content through their digests, as
    // osslsigncode and Windows read them).
    let pre_hash = match (&sigs.ex, parsed.first()) {
        (Some(_), Some((_, p))) => Some(pre_hash(&cf, p.digest_algorithm)?),
        _ => None,
    };
    let signatures = check_all(
        FileKind::Msi,
        &parsed,
        |alg| digests.get(alg),
        |i, report| {
            if let (Some(ex), "0") = (&sigs.ex, i) {
                if pre_hash.as_deref() != Some(ex.as_slice()) {
                    report.errors.insert(
                        0,
                        Finding::signature(
                            FindingCode::ImageDigestMismatch,
                            i,
                            "the MsiDigitalSignatureEx stream does not match the installer's metadata (names, sizes, CLSIDs, times)".to_string(),
                        ),
                    );
                }
            }
        },
        opts,
    );
    Ok(finish_report(
        opts.trust(),
        FileKind::Msi,
        len,
        None,
        signatures,
        errors,
        Vec::new(),
    ))
}

/// Signs an installer from any reader into any writer. `cfb` writes in place, so the input
/// is staged through an anonymous temp file: copied, hashed, its signature made, written
/// into the copy, checked, then the copy is written to `output`.
pub(crate) fn sign_stream<R: Read + Seek, W: Write>(
    identity: &SigningIdentity,
    input: &mut R,
    output: &mut W,
    opts: &SignOptions,
) -> Result<StreamOutcome> {
    use crate::stream::{existing_mode, signature_table};
    let io = |what: &'static str| move |e| Error::io(what, e);
    let mut tmp = tempfile::tempfile().map_err(io("creating a temp file"))?;
    input
        .seek(SeekFrom::Start(0))
        .map_err(io("rewinding the input"))?;
    std::io::copy(input, &mut tmp).map_err(io("copying the input to a temp file"))?;
    tmp.seek(SeekFrom::Start(0))
        .map_err(io("rewinding the temp file"))?;
    let mode = existing_mode(opts);
    let i = inspect(
        BufReader::with_capacity(64 << 10, &mut tmp),
        mode,
        &[opts.digest],
        opts.add_msi_dse,
    )?;
    if mode == Existing::Keep && i.existing.is_none() {
        return Err(Error::NotSigned);
    }
    let digest = i
        .digests
        .get(opts.digest)
        .ok_or_else(|| Error::Usage("digest missing".into()))?
        .to_vec();
    let table = signature_table(
        identity,
        opts,
        indirect_data(FileKind::Msi, None)?,
        &digest,
        i.existing.as_deref(),
    )?;
    tmp.seek(SeekFrom::Start(0))
        .map_err(io("rewinding the temp file"))?;
    write_streams(&mut tmp, Some(&table), i.ex.as_deref())?;
    tmp.seek(SeekFrom::Start(0))
        .map_err(io("rewinding the temp file"))?;
    check_back(
        BufReader::with_capacity(64 << 10, &mut tmp),
        &i.digests,
        Some(&table),
        i.ex.as_deref(),
        &i.inherited,
    )?;
    tmp.seek(SeekFrom::Start(0))
        .map_err(io("rewinding the temp file"))?;
    let written = std::io::copy(&mut tmp, output).map_err(io("writing the output"))?;
    Ok(StreamOutcome {
        kind: FileKind::Msi,
        image_digest: digest,
        output_len: written,
        appended: i.existing.is_some(),
    })
}
