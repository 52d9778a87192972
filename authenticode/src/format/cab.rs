//! Cabinets in the pipeline, in memory independent of the cabinet's size. Staging reads the
//! cabinet once, hashing it for every digest algorithm needed while copying it, in the signed
//! layout (with the 24-byte signature reserve), to the temp file; the commit appends the
//! PKCS#7 zero-padded to 8, writes its length into the reserve and reads the temp file back
//! to check it. Removing a signature rewrites the unsigned layout from the input. The
//! header rules themselves are [`crate::cab`].
use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write},
    path::Path,
};

use codeseal_formats::digest::{Digests, Hashers};
use codeseal_signer::{DigestAlgorithm, SigningIdentity};

use super::{check_written, indirect_data, output::OutputFile, FileKind, StageOptions, Staged};
use crate::{
    cab::{padded_len, CabHeader, Layout, MAX_SIGNATURE},
    error::{Error, Result},
    pkcs7::ParsedSignature,
    sign::SignOptions,
    stage::{Existing, KeptSignature},
    stream::StreamOutcome,
    verify::{VerifyOptions, VerifyReport},
};

/// The cabinet's digests for `algs`, in one pass from the folder entries (where `r` must be)
/// that also writes the cabinet in `out`'s layout if given. Returns the bytes written.
pub(crate) fn stream_digests<R: Read + ?Sized>(
    header: &CabHeader,
    r: &mut R,
    algs: &[DigestAlgorithm],
    out: Option<(&mut dyn Write, Layout)>,
) -> Result<(Digests, u64)> {
    let mut hashers = Hashers::new(algs);
    let written = header.stream(r, &mut hashers, out)?;
    Ok((hashers.finish(), written))
}

fn file_len(f: &File, what: &Path) -> Result<u64> {
    f.metadata()
        .map(|m| m.len())
        .map_err(|e| Error::io(format!("reading {}", what.display()), e))
}

/// The whole signature area of a signed cabinet (the DER and its padding), read from `r`.
pub(crate) fn read_signature<R: Read + Seek>(header: &CabHeader, r: &mut R) -> Result<Vec<u8>> {
    let (offset, len) = header.signature().ok_or(Error::NotSigned)?;
    if len > MAX_SIGNATURE {
        return Err(Error::Cab(crate::cab::CabError::Malformed {
            what: format!("the signature is {len} bytes; codeseal reads at most {MAX_SIGNATURE}"),
            offset: crate::cab::FIXED_HEADER + 12,
        }));
    }
    r.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io("seeking to the cabinet's signature", e))?;
    // Bounded by MAX_SIGNATURE and by the file's length (checked with the header).
    let mut sig = vec![0u8; len as usize];
    r.read_exact(&mut sig)
        .map_err(|e| Error::io("reading the cabinet's signature", e))?;
    Ok(sig)
}

/// A kept signature and the digest algorithms to hash with.
struct Kept {
    der: Option<Vec<u8>>,
    inherited: Vec<Vec<u8>>,
    algs: Vec<DigestAlgorithm>,
}

/// What to do with the input's signature: refuse, drop or keep it (reading it).
fn existing<R: Read + Seek>(
    header: &CabHeader,
    r: &mut R,
    mode: Existing,
    algs: &[DigestAlgorithm],
) -> Result<Kept> {
    let mut kept = Kept {
        der: None,
        inherited: Vec::new(),
        algs: algs.to_vec(),
    };
    match (header.signature(), mode) {
        (Some(_), Existing::Refuse) => return Err(Error::AlreadySigned),
        (Some(_), Existing::Keep) => {
            let k = KeptSignature::parse(&read_signature(header, r)?)?;
            kept.algs.extend(k.algs);
            kept.inherited = k.inherited;
            kept.der = Some(k.der);
        }
        _ => {}
    }
    kept.algs.sort_by_key(|a| a.output_len());
    kept.algs.dedup();
    Ok(kept)
}

/// A cabinet hashed once and copied in the signed layout to the temp file, waiting for its
/// signature.
#[derive(Debug)]
pub(crate) struct StagedCab {
    input: File,
    header: CabHeader,
    digests: Digests,
    existing: Option<Vec<u8>>,
    inherited: Vec<Vec<u8>>,
    /// The signed layout's length without the signature (its `cbCabinet`).
    cabinet_len: u64,
    /// The temp file's header bytes after the hashing pass (signature length 0).
    staged_header: Vec<u8>,
    out: OutputFile,
}

impl StagedCab {
    pub(crate) fn stage(input: &Path, output: &Path, opts: StageOptions<'_>) -> Result<Self> {
        let file =
            File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
        let len = file_len(&file, input)?;
        let mut out = OutputFile::create(input, &file, output, opts.force, opts.sync_dir)?;
        let mut r = BufReader::with_capacity(64 << 10, file);
        let header = CabHeader::read(&mut r, len)?;
        let cabinet_len = u64::from(header.signed_cabinet_len()?);
        let kept = existing(&header, &mut r, opts.existing, opts.algs)?;
        r.seek(SeekFrom::Start(header.folders_start()))
            .map_err(|e| Error::io("seeking in the input", e))?;
        let mut w = BufWriter::with_capacity(64 << 10, out.early_flushing(cabinet_len));
        let (digests, written) = stream_digests(
            &header,
            &mut r,
            &kept.algs,
            Some((&mut w as &mut dyn Write, Layout::Signed { sig_len: 0 })),
        )?;
        w.flush()
            .map_err(|e| Error::io("writing the temp file", e))?;
        drop(w);
        if written != cabinet_len {
            return Err(Error::OutputCheck(format!(
                "{written} bytes written for a {cabinet_len}-byte cabinet"
            )));
        }
        // The header as the pass wrote it: the output check compares the final header with
        // it instead of hashing the whole output a second time.
        let staged_header = read_head(out.file_mut(), crate::cab::SIGNED_HEADER)?;
        Ok(Self {
            input: r.into_inner(),
            header,
            staged_header,
            digests,
            existing: kept.der,
            inherited: kept.inherited,
            cabinet_len,
            out,
        })
    }

    /// Writes the signature after the cabinet and its length into the reserve.
    fn write_signature(&mut self, der: &[u8]) -> Result<u64> {
        let padded = padded_len(der.len());
        let sig_len = u32::try_from(padded)
            .ok()
            .filter(|&l| l <= MAX_SIGNATURE)
            .ok_or_else(|| Error::Usage("signature too large".into()))?;
        let total = self.cabinet_len + padded as u64;
        let f = self.out.file_mut();
        let io = |what: &'static str| move |e| Error::io(what, e);
        f.seek(SeekFrom::Start(self.cabinet_len))
            .map_err(io("seeking in the temp file"))?;
        f.write_all(der).map_err(io("writing the signature"))?;
        f.write_all([0u8; 8].get(..padded - der.len()).unwrap_or_default())
            .map_err(io("writing the signature"))?;
        f.seek(SeekFrom::Start(CabHeader::SIG_LEN_OFFSET))
            .map_err(io("seeking in the temp file"))?;
        f.write_all(&sig_len.to_le_bytes())
            .map_err(io("writing the signature reserve"))?;
        f.set_len(total).map_err(io("truncating the temp file"))?;
        Ok(total)
    }

    /// Rewrites the temp file as the unsigned cabinet, from the input.
    fn write_unsigned(&mut self) -> Result<u64> {
        let io = |what: &'static str| move |e| Error::io(what, e);
        self.input
            .seek(SeekFrom::Start(self.header.folders_start()))
            .map_err(io("seeking in the input"))?;
        let f = self.out.file_mut();
        f.seek(SeekFrom::Start(0))
            .map_err(io("rewinding the temp file"))?;
        f.set_len(0).map_err(io("truncating the temp file"))?;
        let algs: Vec<DigestAlgorithm> = self.digests.algorithms().collect();
        let mut w = BufWriter::with_capacity(64 << 10, &mut *f);
        let (again, written) = stream_digests(
            &self.header,
            &mut BufReader::with_capacity(64 << 10, &mut self.input),
            &algs,
            Some((&mut w as &mut dyn Write, Layout::Unsigned)),
        )?;
        w.flush()
            .map_err(|e| Error::io("writing the temp file", e))?;
        if again != self.digests {
            return Err(Error::OutputCheck(
                "the input changed while it was being rewritten".into(),
            ));
        }
        Ok(written)
    }

    /// Reads the temp file back: a consistent header, the same digests, exactly the new
    /// signature (or none), which must verify against those digests.
    fn check_output(&mut self, total: u64, signature: Option<&[u8]>) -> Result<()> {
        let fail = |m: String| Error::OutputCheck(m);
        let f = self.out.file_mut();
        f.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("rewinding the temp file", e))?;
        let mut r = BufReader::with_capacity(64 << 10, &mut *f);
        let back = CabHeader::read(&mut r, total).map_err(|e| fail(e.to_string()))?;
        match signature {
            // Signing changed only the reserve's signature length and appended the
            // signature after the bytes the pass hashed as it wrote them: the header read
            // back must be the staged one with that length, nothing else.
            Some(der) => {
                let padded = u32::try_from(padded_len(der.len()))
                    .map_err(|_| fail("signature too large".into()))?;
                let mut want = self.staged_header.clone();
                let at = CabHeader::SIG_LEN_OFFSET as usize;
                want.get_mut(at..at + 4)
                    .ok_or_else(|| fail("the staged header is too short".into()))?
                    .copy_from_slice(&padded.to_le_bytes());
                let head = read_head(r.get_mut(), crate::cab::SIGNED_HEADER)?;
                if head != want || back.signature() != Some((self.cabinet_len, padded)) {
                    return Err(fail(
                        "the written header is not the staged one with the signature's place"
                            .into(),
                    ));
                }
            }
            // Removing rewrote the whole cabinet in another layout: hash it again.
            None => {
                let algs: Vec<DigestAlgorithm> = self.digests.algorithms().collect();
                let (written, _) = stream_digests(&back, &mut r, &algs, None)
                    .map_err(|e| fail(format!("reading the output back: {e}")))?;
                if written != self.digests {
                    return Err(fail(
                        "the written cabinet does not hash as the input".into(),
                    ));
                }
            }
        }
        match (signature, back.signature()) {
            (None, None) => {
                if back.reserve.is_some() {
                    return Err(fail("a signature reserve is still present".into()));
                }
                Ok(())
            }
            (None, Some(_)) => Err(fail("a signature is still present".into())),
            (Some(_), None) => Err(fail("no signature was written".into())),
            (Some(der), Some(_)) => {
                let area = read_signature(&back, &mut r).map_err(|e| fail(e.to_string()))?;
                let mut want = der.to_vec();
                want.resize(padded_len(der.len()), 0);
                if area != want {
                    return Err(fail(
                        "the signature area does not hold the new signature".into(),
                    ));
                }
                let digests = &self.digests;
                check_written(
                    FileKind::Cab,
                    der,
                    |alg| digests.get(alg),
                    &self.inherited,
                    |_| Ok(()),
                )
            }
        }
    }
}

impl Staged for StagedCab {
    fn kind(&self) -> FileKind {
        FileKind::Cab
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
        self.header.signature().is_some()
    }

    fn output(&self) -> &Path {
        self.out.output()
    }

    fn commit(mut self: Box<Self>, signature: Option<&[u8]>) -> Result<u64> {
        let total = match signature {
            Some(der) => self.write_signature(der)?,
            None => self.write_unsigned()?,
        };
        self.check_output(total, signature)?;
        self.out.persist()?;
        Ok(total)
    }
}

/// The first `n` bytes of the temp file `f`.
fn read_head(f: &mut File, n: u64) -> Result<Vec<u8>> {
    let io = |e| Error::io("reading the temp file's header", e);
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut head = Vec::with_capacity(n as usize);
    f.take(n).read_to_end(&mut head).map_err(io)?;
    Ok(head)
}

/// The cabinet's primary signature (DER, no padding).
pub(crate) fn extract(input: &Path) -> Result<Vec<u8>> {
    let f = File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
    let len = file_len(&f, input)?;
    let mut r = BufReader::new(f);
    let header = CabHeader::read(&mut r, len)?;
    let area = read_signature(&header, &mut r)?;
    Ok(ParsedSignature::parse(&area)?.der.to_vec())
}

/// The digest of the cabinet in `r` (from its start) for `alg`, read the way signing reads
/// it.
pub(crate) fn file_digest<R: Read + ?Sized>(
    r: &mut R,
    len: u64,
    alg: DigestAlgorithm,
) -> Result<Vec<u8>> {
    let header = CabHeader::read(r, len)?;
    let (d, _) = stream_digests(&header, r, &[alg], None)?;
    d.take(alg)
        .ok_or_else(|| Error::Usage("digest missing".into()))
}

fn stream_len<R: Seek>(r: &mut R) -> Result<u64> {
    let len = r
        .seek(SeekFrom::End(0))
        .map_err(|e| Error::io("seeking in the input", e))?;
    r.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("rewinding the input", e))?;
    Ok(len)
}

/// Verifies a cabinet: its signature area is read, then one pass hashes the cabinet.
pub(crate) fn verify<R: Read + Seek>(r: &mut R, opts: &VerifyOptions) -> Result<VerifyReport> {
    use crate::verify::{algorithms, check_all, collect_signatures, finish_report};
    let len = stream_len(r)?;
    let header = CabHeader::read(r, len)?;
    let area = read_signature(&header, r)?;
    let mut errors = Vec::new();
    let parsed = collect_signatures(vec![("0".to_string(), area.as_slice())], &mut errors);
    let algs = algorithms(&parsed);
    r.seek(SeekFrom::Start(header.folders_start()))
        .map_err(|e| Error::io("seeking in the cabinet", e))?;
    let (digests, _) = stream_digests(&header, r, &algs, None)?;
    let signatures = check_all(
        FileKind::Cab,
        &parsed,
        |alg| digests.get(alg),
        |_, _| {},
        opts,
    );
    Ok(finish_report(
        opts.trust(),
        FileKind::Cab,
        len,
        None,
        signatures,
        errors,
        Vec::new(),
    ))
}

/// Signs a cabinet from any reader into any writer: one read hashes it, the signature is
/// made and checked, a second read copies it in the signed layout (hashing it again: an
/// input that changed in between is refused before the signature is written).
pub(crate) fn sign_stream<R: Read + Seek, W: Write>(
    identity: &SigningIdentity,
    input: &mut R,
    output: &mut W,
    opts: &SignOptions,
) -> Result<StreamOutcome> {
    use crate::stream::{existing_mode, signature_table};
    let len = stream_len(input)?;
    let header = CabHeader::read(input, len)?;
    let mode = existing_mode(opts);
    if mode == Existing::Keep && header.signature().is_none() {
        return Err(Error::NotSigned);
    }
    let kept = existing(&header, input, mode, &[opts.digest])?;
    let start = header.folders_start();
    input
        .seek(SeekFrom::Start(start))
        .map_err(|e| Error::io("seeking in the input", e))?;
    let (digests, _) = stream_digests(&header, input, &kept.algs, None)?;
    let digest = digests
        .get(opts.digest)
        .ok_or_else(|| Error::Usage("digest missing".into()))?
        .to_vec();
    let table = signature_table(
        identity,
        opts,
        indirect_data(FileKind::Cab, None)?,
        &digest,
        kept.der.as_deref(),
    )?;
    check_written(
        FileKind::Cab,
        &table,
        |alg| digests.get(alg),
        &kept.inherited,
        |_| Ok(()),
    )?;
    let padded = padded_len(table.len());
    let sig_len = u32::try_from(padded)
        .ok()
        .filter(|&l| l <= MAX_SIGNATURE)
        .ok_or_else(|| Error::Usage("signature too large".into()))?;
    input
        .seek(SeekFrom::Start(start))
        .map_err(|e| Error::io("rewinding the input", e))?;
    let (again, written) = stream_digests(
        &header,
        input,
        &kept.algs,
        Some((&mut *output as &mut dyn Write, Layout::Signed { sig_len })),
    )?;
    if again != digests {
        return Err(Error::Usage(
            "the input changed while it was being signed".into(),
        ));
    }
    output
        .write_all(&table)
        .and_then(|_| output.write_all([0u8; 8].get(..padded - table.len()).unwrap_or_default()))
        .map_err(|e| Error::io("writing the output", e))?;
    Ok(StreamOutcome {
        kind: FileKind::Cab,
        image_digest: digest,
        output_len: written + padded as u64,
        appended: kept.der.is_some(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use der::Encode;

    use super::*;

    /// The indirect data osslsigncode 2.9 writes for a cabinet (from `openssl asn1parse` of
    /// a gcab cabinet it signed): the type and `[2] { [0] BMPString "<<<Obsolete>>>" }`.
    #[test]
    fn indirect_data_matches_osslsigncode() {
        let want = hex::decode(concat!(
            "302c060a2b060104018237020119a21e801c003c003c003c004f00620073006f006c00",
            "6500740065003e003e003e"
        ))
        .unwrap();
        let data = indirect_data(FileKind::Cab, None).unwrap();
        assert_eq!(data.to_der().unwrap(), want);
        let pages = (DigestAlgorithm::Sha256, vec![0u8; 36]);
        assert!(matches!(
            indirect_data(FileKind::Cab, Some(&pages)),
            Err(Error::Usage(m)) if m.contains("page hashes")
        ));
    }
}
