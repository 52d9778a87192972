//! The write side shared by sign, append, attach and remove: the image copied to a temp file
//! beside the output in one hashing pass, then a new certificate table, patched headers, a
//! check of what was written, fsync and rename. The input is never modified in place.
//!
//! On large images the copy is written by a thread of its own, through the page cache, and
//! on Linux the kernel is asked to start writing it back every few MiB, so that it reaches
//! the disk while the image is still being hashed rather than all at the fsync.
//! `CODESEAL_DIRECT_IO=1` sends the aligned bulk through a second, `O_DIRECT` handle
//! instead: faster on some disks, much slower on others (each direct write waits for the
//! disk), so it is opt-in. The fsync before the rename stays, whatever the path.
use std::{
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom, Write},
    path::Path,
};

use codeseal_signer::DigestAlgorithm;
use tempfile::NamedTempFile;

use crate::{
    digest::{stream_image_to_file, FileCopy, ImagePass, PIPELINE_MIN},
    error::{Error, Result},
    format::{check_written, output::OutputFile, FileKind, Staged},
    pagehash::PageHasher,
    pe::PeInfo,
    pkcs7::{page_hashes_of, ParsedSignature},
    verify::read_cert_table,
    wincert::{build_entry, parse_table, WIN_CERT_TYPE_PKCS_SIGNED_DATA},
};

/// What to do with a signature the input already has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Existing {
    /// Refuse a signed input.
    #[default]
    Refuse,
    /// Drop the existing signature.
    Replace,
    /// Keep it (the caller nests into it or removes it).
    Keep,
}

/// The input's image, hashed and copied to a temp file, waiting for its certificate table.
#[derive(Debug)]
pub struct StagedImage {
    out: OutputFile,
    pe: PeInfo,
    pass: ImagePass,
    page_hashes: Option<(DigestAlgorithm, Vec<u8>)>,
    existing: Option<Vec<u8>>,
    /// The nested signatures of `existing`, kept byte for byte in the output.
    inherited: Vec<Vec<u8>>,
    /// Whether the input had a certificate table.
    was_signed: bool,
}

/// Whether the copy should bypass the page cache: only with `CODESEAL_DIRECT_IO=1`.
///
/// No choice made inside one run was found reliable: on a virtio disk direct writes of
/// 1 MiB, one at a time, took twice as long as the page cache's write-back, elsewhere they
/// were faster; whether they keep up shows only once the disk is busy. Early write-back
/// through the page cache only starts sooner the writing the fsync would do anyway, so it
/// is the default.
fn direct_io_wanted() -> bool {
    direct_io_asked(std::env::var_os("CODESEAL_DIRECT_IO").as_deref())
}

/// [`direct_io_wanted`] for a given value of `CODESEAL_DIRECT_IO`.
fn direct_io_asked(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| v == "1")
}

/// `O_DIRECT` (from the libc crate: its value differs between architectures).
#[cfg(any(target_os = "linux", target_os = "android"))]
const O_DIRECT: Option<i32> = Some(libc::O_DIRECT);

/// A second, direct-I/O (`O_DIRECT`) write handle on the temp file, so that the bulk of the
/// copy reaches the disk while the image is still being hashed instead of all at the final
/// fsync, and skips a memory copy into the page cache. `None` (the copy then goes through
/// the page cache) where the platform or the file system does not offer it, or if the
/// path no longer names the temp file.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn open_direct(tmp: &NamedTempFile) -> Option<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let direct = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(O_DIRECT?)
        .open(tmp.path())
        .ok()?;
    let (a, b) = (direct.metadata().ok()?, tmp.as_file().metadata().ok()?);
    (a.dev() == b.dev() && a.ino() == b.ino()).then_some(direct)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn open_direct(_tmp: &NamedTempFile) -> Option<File> {
    None
}

/// The first signature's ContentInfo (without entry padding) from a certificate table.
pub(crate) fn primary_signature(table: &[u8]) -> Result<Vec<u8>> {
    let (entries, _) = parse_table(table)?;
    let entry = entries
        .iter()
        .find(|e| e.cert_type == WIN_CERT_TYPE_PKCS_SIGNED_DATA)
        .ok_or_else(|| Error::cert_table("no PKCS#7 entry"))?;
    let parsed = ParsedSignature::parse(entry.data)?;
    Ok(entry
        .data
        .get(..parsed.der_len)
        .unwrap_or_default()
        .to_vec())
}

/// What signing learns from a PE input before hashing it.
pub(crate) struct PeInput {
    /// The headers.
    pub pe: PeInfo,
    /// The primary signature, when it is kept (to nest into).
    pub kept: Option<Vec<u8>>,
    /// Its nested signatures, carried over byte for byte.
    pub inherited: Vec<Vec<u8>>,
    /// The digest algorithms to hash with: those asked for and those of the kept signatures.
    pub algs: Vec<DigestAlgorithm>,
}

/// Reads a PE input's headers and, with `Existing::Keep`, its signature; refuses what cannot
/// be re-signed (a signed input unless asked to replace or keep, unsigned trailing data).
pub(crate) fn inspect<R: Read + Seek>(
    r: &mut R,
    existing: Existing,
    extra_algs: &[DigestAlgorithm],
) -> Result<PeInput> {
    let pe = PeInfo::read(r)?;
    let mut kept = None;
    let mut inherited = Vec::new();
    let mut algs: Vec<DigestAlgorithm> = extra_algs.to_vec();
    if let Some(t) = pe.cert_table {
        if existing == Existing::Refuse {
            return Err(Error::AlreadySigned);
        }
        if pe.bytes_after_cert_table() > 0 {
            return Err(Error::cert_table(format!(
                "{} bytes follow the certificate table at {:#x}; refusing to rewrite a file with unsigned trailing data",
                pe.bytes_after_cert_table(),
                t.offset
            )));
        }
        if existing == Existing::Keep {
            let table = read_cert_table(r, &pe)?;
            let k = KeptSignature::parse(&primary_signature(&table)?)?;
            algs.extend(k.algs);
            inherited = k.inherited;
            kept = Some(k.der);
        }
    }
    algs.sort_by_key(|a| a.output_len());
    algs.dedup();
    Ok(PeInput {
        pe,
        kept,
        inherited,
        algs,
    })
}

/// Where a new certificate table goes and what the headers then say: the table's offset
/// (the image plus its padding), the Security directory entry, the CheckSum and the file
/// length. `entry` is the WIN_CERTIFICATE entry (`None`: no table).
pub(crate) fn table_layout(
    pass: &ImagePass,
    pe: &PeInfo,
    entry: Option<&[u8]>,
) -> Result<(u64, [u8; 8], u32, u64)> {
    let table_offset = pass.image_len + pass.padding;
    let (dir, total) = match entry {
        Some(e) => {
            let off = u32::try_from(table_offset).map_err(|_| {
                Error::Usage(
                    "the file is larger than 4 GiB; a certificate table cannot be placed there"
                        .into(),
                )
            })?;
            let size =
                u32::try_from(e.len()).map_err(|_| Error::Usage("signature too large".into()))?;
            let mut d = [0u8; 8];
            d[..4].copy_from_slice(&off.to_le_bytes());
            d[4..].copy_from_slice(&size.to_le_bytes());
            (d, table_offset + e.len() as u64)
        }
        None => ([0u8; 8], table_offset),
    };
    let mut cks = pass.checksum.clone();
    cks.update(pe.security_dir_offset, &dir);
    if let Some(e) = entry {
        cks.update(table_offset, e);
    }
    Ok((table_offset, dir, cks.finish(total), total))
}

/// A written signature's page-hash table, if it has one for the algorithm of `ours`, must
/// equal the one computed while staging.
pub(crate) fn same_page_hashes(
    parsed: &ParsedSignature<'_>,
    ours: Option<&(DigestAlgorithm, Vec<u8>)>,
) -> std::result::Result<(), String> {
    match page_hashes_of(&parsed.spc).map_err(|e| e.to_string())? {
        Some((alg, table)) if ours.is_some_and(|(a, t)| *a == alg && t != &table) => {
            Err("the page-hash table differs from the one computed".into())
        }
        _ => Ok(()),
    }
}

/// A signature kept to nest into: its DER, its nested signatures (carried over byte for
/// byte) and the digest algorithms they all use.
pub(crate) struct KeptSignature {
    /// The primary signature, without padding.
    pub der: Vec<u8>,
    /// Its nested signatures.
    pub inherited: Vec<Vec<u8>>,
    /// The digest algorithms of the primary and its readable nested signatures.
    pub algs: Vec<DigestAlgorithm>,
}

impl KeptSignature {
    /// Reads the signature an input already carries (PE table entry or script block).
    pub(crate) fn parse(pkcs7: &[u8]) -> Result<Self> {
        let parsed = ParsedSignature::parse(pkcs7)?;
        let mut algs = vec![parsed.digest_algorithm];
        let mut inherited = Vec::new();
        for n in parsed.nested_der() {
            if let Ok(p) = ParsedSignature::parse(n) {
                algs.push(p.digest_algorithm);
            }
            inherited.push(n.to_vec());
        }
        Ok(Self {
            der: parsed.der.to_vec(),
            inherited,
            algs,
        })
    }
}

impl StagedImage {
    /// Reads `input` once: checks its headers, hashes its image with `algs` (and a page-hash
    /// table with `pages`, if asked) and copies it to a temp file beside `output`.
    pub fn stage(
        input: &Path,
        output: &Path,
        force: bool,
        sync_dir: bool,
        existing: Existing,
        extra_algs: &[DigestAlgorithm],
        pages: Option<DigestAlgorithm>,
    ) -> Result<Self> {
        let file =
            File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
        let mut out = OutputFile::create(input, &file, output, force, sync_dir)?;
        let mut r = BufReader::with_capacity(64 << 10, file);
        let parse = crate::timing::span(crate::timing::Phase::Parse);
        let PeInput {
            pe,
            kept,
            inherited,
            algs,
        } = inspect(&mut r, existing, extra_algs)?;
        drop(parse);
        let mut page_hasher: Vec<PageHasher> = pages
            .map(|a| PageHasher::new(&pe, a))
            .transpose()?
            .into_iter()
            .collect();
        let direct = if pe.image_end() >= PIPELINE_MIN && direct_io_wanted() {
            open_direct(out.tmp())
        } else {
            None
        };
        let _t = crate::timing::span(crate::timing::Phase::HashCopy);
        let mut copy = FileCopy::new(out.tmp().as_file(), direct).with_early_writeback();
        let pass = stream_image_to_file(&mut r, &pe, &algs, &mut copy, page_hasher.as_mut_slice())?;
        out.set_flusher(copy.take_flusher());
        Ok(Self {
            out,
            was_signed: pe.cert_table.is_some(),
            pe,
            pass,
            page_hashes: page_hasher.pop().map(PageHasher::finish),
            existing: kept,
            inherited,
        })
    }

    /// The image digest for `alg` (computed if it was asked for).
    pub fn digest(&self, alg: DigestAlgorithm) -> Option<&[u8]> {
        self.pass.digest(alg)
    }

    /// The page-hash table, if one was asked for.
    pub fn page_hashes(&self) -> Option<&(DigestAlgorithm, Vec<u8>)> {
        self.page_hashes.as_ref()
    }

    /// The input's primary signature (DER ContentInfo), when it was kept.
    pub fn existing_signature(&self) -> Option<&[u8]> {
        self.existing.as_deref()
    }

    /// Where the result goes.
    pub fn output(&self) -> &Path {
        self.out.output()
    }

    /// Writes `signature` (a DER ContentInfo; `None` removes the signature) as the
    /// certificate table, patches the Security entry and CheckSum, checks the result read back
    /// from disk (every signature's digest equals this image's, every signature verifies),
    /// fsyncs and renames it over the output. Returns the output length.
    pub fn commit(mut self, signature: Option<&[u8]>) -> Result<u64> {
        let entry = signature.map(build_entry).transpose()?;
        let (table_offset, dir, checksum, total) =
            table_layout(&self.pass, &self.pe, entry.as_deref())?;

        let write = crate::timing::span(crate::timing::Phase::Write);
        let f = self.out.file_mut();
        let io = |what: &'static str| move |e| Error::io(what, e);
        if let Some(e) = &entry {
            f.seek(SeekFrom::Start(table_offset))
                .map_err(io("seeking in the temp file"))?;
            f.write_all(e).map_err(io("writing the signature"))?;
        }
        f.seek(SeekFrom::Start(self.pe.security_dir_offset))
            .map_err(io("seeking in the temp file"))?;
        f.write_all(&dir)
            .map_err(io("writing the Security directory"))?;
        f.seek(SeekFrom::Start(self.pe.checksum_offset))
            .map_err(io("seeking in the temp file"))?;
        f.write_all(&checksum.to_le_bytes())
            .map_err(io("writing the CheckSum"))?;
        f.set_len(total).map_err(io("truncating the temp file"))?;
        drop(write);

        {
            let _t = crate::timing::span(crate::timing::Phase::Check);
            self.check_output(total, signature)?;
        }
        self.out.persist()?;
        Ok(total)
    }

    fn check_output(&mut self, total: u64, signature: Option<&[u8]>) -> Result<()> {
        let fail = |m: String| Error::OutputCheck(m);
        let f = self.out.file_mut();
        f.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("rewinding the temp file", e))?;
        let mut r = BufReader::new(&mut *f);
        let pe = PeInfo::read(&mut r).map_err(|e| fail(e.to_string()))?;
        if pe.file_len != total || pe.bytes_after_cert_table() != 0 {
            return Err(fail("unexpected output length".into()));
        }
        let Some(signature) = signature else {
            return if pe.cert_table.is_none() {
                Ok(())
            } else {
                Err(fail("a certificate table is still present".into()))
            };
        };
        let table = read_cert_table(&mut r, &pe).map_err(|e| fail(e.to_string()))?;
        let (entries, _) = parse_table(&table).map_err(|e| fail(e.to_string()))?;
        let [entry] = entries.as_slice() else {
            return Err(fail(format!("{} entries in the new table", entries.len())));
        };
        if entry.data.get(..signature.len()) != Some(signature) {
            return Err(fail("the table does not hold the new signature".into()));
        }
        // Nested signatures carried over byte for byte from the input are not verified again
        // (the output check covers what this run wrote, and re-verifying every inherited
        // signature would make appending cost more with every signature already there).
        let pass = &self.pass;
        let ours = self.page_hashes.as_ref();
        check_written(
            FileKind::Pe,
            entry.data,
            |alg| pass.digest(alg),
            &self.inherited,
            |parsed| same_page_hashes(parsed, ours),
        )
    }
}

impl Staged for StagedImage {
    fn kind(&self) -> FileKind {
        FileKind::Pe
    }

    fn digest(&self, alg: DigestAlgorithm) -> Option<&[u8]> {
        StagedImage::digest(self, alg)
    }

    fn page_hashes(&self) -> Option<&(DigestAlgorithm, Vec<u8>)> {
        StagedImage::page_hashes(self)
    }

    fn existing_signature(&self) -> Option<&[u8]> {
        StagedImage::existing_signature(self)
    }

    fn was_signed(&self) -> bool {
        self.was_signed
    }

    fn output(&self) -> &Path {
        StagedImage::output(self)
    }

    fn commit(self: Box<Self>, signature: Option<&[u8]>) -> Result<u64> {
        StagedImage::commit(*self, signature)
    }
}

/// Reads the whole primary signature of a signed file (DER ContentInfo, no padding).
pub fn read_primary_signature(path: &Path) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut r = BufReader::new(f);
    let pe = PeInfo::read(&mut r)?;
    let table = read_cert_table(&mut r, &pe)?;
    primary_signature(&table)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::digest::{stream_image, CHUNK};

    /// The copy made through a direct-I/O handle (where the file system takes one) is the
    /// image plus its padding, and the aligned bulk of it did go through that handle.
    #[test]
    fn direct_copy_is_exact() {
        let mut file = crate::pe::tiny_pe();
        let mut x = 7u32;
        file.extend((0..PIPELINE_MIN as usize + 2 * CHUNK + 333).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        }));
        let pe = PeInfo::read(&mut Cursor::new(&file)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tmp = NamedTempFile::new_in(dir.path()).unwrap();
        let direct = open_direct(&tmp);
        let had_direct = direct.is_some();
        let mut copy = FileCopy::new(tmp.as_file(), direct);
        let pass = stream_image_to_file(
            &mut Cursor::new(&file),
            &pe,
            &[DigestAlgorithm::Sha256],
            &mut copy,
            &mut [],
        )
        .unwrap();
        if had_direct {
            // Every whole chunk but the last, unaligned one.
            assert!(copy.direct_bytes() >= (PIPELINE_MIN + 2 * CHUNK as u64));
        }
        let plain = stream_image(
            &mut Cursor::new(&file),
            &pe,
            &[DigestAlgorithm::Sha256],
            None,
        )
        .unwrap();
        assert_eq!(pass.digests, plain.digests);
        let mut want = file.clone();
        want.resize(file.len() + (8 - file.len() % 8) % 8, 0);
        assert!(std::fs::read(tmp.path()).unwrap() == want, "copy differs");
    }

    /// Direct I/O only when asked for with exactly `1`; unset, `0` or anything else keeps the
    /// page cache.
    #[test]
    fn direct_io_is_opt_in() {
        use std::ffi::OsStr;
        assert!(direct_io_asked(Some(OsStr::new("1"))));
        for v in [None, Some("0"), Some(""), Some("yes"), Some("10")] {
            assert!(!direct_io_asked(v.map(OsStr::new)), "{v:?}");
        }
    }

    /// The default copy (page cache, early write-back) of a large image is exact, and on
    /// Linux its write-back was started as it was written: everything but the last,
    /// incomplete step, before any fsync.
    #[test]
    fn early_writeback_copy_is_exact() {
        use crate::digest::WRITEBACK_STEP;
        let mut file = crate::pe::tiny_pe();
        let mut x = 11u32;
        file.extend((0..PIPELINE_MIN as usize + 3 * CHUNK + 4321).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        }));
        let pe = PeInfo::read(&mut Cursor::new(&file)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let tmp = NamedTempFile::new_in(dir.path()).unwrap();
        let mut copy = FileCopy::new(tmp.as_file(), None).with_early_writeback();
        let pass = stream_image_to_file(
            &mut Cursor::new(&file),
            &pe,
            &[DigestAlgorithm::Sha256],
            &mut copy,
            &mut [],
        )
        .unwrap();
        assert_eq!(copy.direct_bytes(), 0);
        // About 11 MiB: one early flush, at 4 MiB (the rest is the caller's fsync), whose
        // thread is handed over to the caller.
        assert_eq!(copy.flushes_asked(), 1);
        copy.take_flusher().expect("a flusher").finish().unwrap();
        assert!(copy.take_flusher().is_none());
        let total = pass.image_len + pass.padding;
        if cfg!(any(target_os = "linux", target_os = "android")) {
            let started = copy.writeback_started();
            assert!(
                started <= total && started + WRITEBACK_STEP > total,
                "write-back started for {started} of {total} bytes"
            );
        } else {
            assert_eq!(copy.writeback_started(), 0);
        }
        let plain = stream_image(
            &mut Cursor::new(&file),
            &pe,
            &[DigestAlgorithm::Sha256],
            None,
        )
        .unwrap();
        assert_eq!(pass.digests, plain.digests);
        let mut want = file.clone();
        want.resize(file.len() + (8 - file.len() % 8) % 8, 0);
        assert!(std::fs::read(tmp.path()).unwrap() == want, "copy differs");
    }
}
