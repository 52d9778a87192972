//! Reading a package from any [`Source`] without holding it in memory: the archive's
//! structure is parsed once ([`Zip::parse_from`]), then one linear pass over the local
//! records hashes them (AXPC), checks every 64 KiB block against the block map
//! ([`PackageCheck`], inner packages of a bundle included) and, when signing, writes the
//! unsigned form ([`write_unsigned`]) in the same read.
use std::io::{Read, Seek, SeekFrom, Write};

use super::{
    bad, content_types_with_signature, crc32, crc32_update, find_inner_packages, Entry, Method,
    Zip, BLOCK_MAP_NAME, BLOCK_SIZE, CODE_INTEGRITY_NAME, CONTENT_TYPES_NAME, LOCAL_LEN, MAX_PART,
    SIGNATURE_NAME,
};
use crate::digest::Hasher;
use crate::{Error, Result};
use codeseal_signer::DigestAlgorithm;

/// Random access to a package's bytes.
pub trait Source {
    /// The length of the package in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `at` (the caller checks the range against
    /// [`Source::size`]; a short read is an error).
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> Result<()>;
}

/// A package held in memory.
#[derive(Debug, Clone, Copy)]
pub struct SliceSource<'a>(pub &'a [u8]);

impl Source for SliceSource<'_> {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> Result<()> {
        let src = usize::try_from(at)
            .ok()
            .and_then(|a| self.0.get(a..a.checked_add(buf.len())?))
            .ok_or_else(|| bad("read past the end of the file", at))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A package read through `Read + Seek` (a file, best behind a `BufReader`): seeks only
/// when a read does not continue the previous one, relatively (a `BufReader` keeps its
/// buffer). Its length is taken once, when it is made.
#[derive(Debug)]
pub struct SeekSource<R> {
    inner: R,
    len: u64,
    pos: Option<u64>,
}

impl<R: Read + Seek> SeekSource<R> {
    /// Wraps `inner`, whose length is found by seeking to its end.
    pub fn new(mut inner: R) -> Result<Self> {
        let len = inner.seek(SeekFrom::End(0)).map_err(io_err)?;
        Ok(Self {
            inner,
            len,
            pos: None,
        })
    }

    /// The reader back.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

fn io_err(source: std::io::Error) -> Error {
    Error::Io {
        context: "reading the package".into(),
        source,
    }
}

impl<R: Read + Seek> Source for SeekSource<R> {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> Result<()> {
        match self.pos {
            Some(p) if p == at => {}
            // Relative: a buffered reader keeps its buffer when the target lies in it.
            Some(p) if i64::try_from(at).is_ok() && i64::try_from(p).is_ok() => {
                self.pos = None;
                let delta = at as i64 - p as i64;
                self.inner.seek_relative(delta).map_err(io_err)?;
            }
            _ => {
                self.pos = None;
                self.inner.seek(SeekFrom::Start(at)).map_err(io_err)?;
            }
        }
        self.inner.read_exact(buf).map_err(|e| {
            self.pos = None;
            io_err(e)
        })?;
        self.pos = Some(at + buf.len() as u64);
        Ok(())
    }
}

/// The bytes `base..base + len` of another source (a bundle's stored inner package).
#[derive(Debug)]
pub struct SubSource<'a, S: ?Sized> {
    src: &'a mut S,
    base: u64,
    len: u64,
}

impl<'a, S: Source + ?Sized> SubSource<'a, S> {
    /// The range `base..base + len` of `src`, which must lie inside it.
    pub fn new(src: &'a mut S, base: u64, len: u64) -> Result<Self> {
        if base.checked_add(len).is_none_or(|e| e > src.size()) {
            return Err(bad("a part past the end of the file", base));
        }
        Ok(Self { src, base, len })
    }
}

impl<S: Source + ?Sized> Source for SubSource<'_, S> {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> Result<()> {
        let end = at.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(bad("read past the end of the part", at));
        }
        self.src.read_at(self.base + at, buf)
    }
}

fn check_range<S: Source + ?Sized>(src: &S, at: u64, len: u64, what: &str) -> Result<()> {
    let end = at
        .checked_add(len)
        .ok_or_else(|| bad(format!("{what}: offset overflows"), at))?;
    if end > src.size() {
        return Err(bad(
            format!(
                "{what} ends at {end:#x}, past the end of the file ({:#x})",
                src.size()
            ),
            at,
        ));
    }
    Ok(())
}

/// Reads `buf.len()` bytes at `at`, checked against the source's size first.
pub(super) fn read_into<S: Source + ?Sized>(
    src: &mut S,
    at: u64,
    buf: &mut [u8],
    what: &str,
) -> Result<()> {
    check_range(src, at, buf.len() as u64, what)?;
    src.read_at(at, buf)
}

/// Reads `len` bytes at `at`: the range is checked against the source's size before
/// anything is allocated, so the allocation is bounded by what the file holds.
pub(super) fn read_vec<S: Source + ?Sized>(
    src: &mut S,
    at: u64,
    len: u64,
    what: &str,
) -> Result<Vec<u8>> {
    check_range(src, at, len, what)?;
    let n = usize::try_from(len).map_err(|_| bad(format!("{what} too large"), at))?;
    let mut v = vec![0u8; n];
    src.read_at(at, &mut v)?;
    Ok(v)
}

/// The size of the chunks the linear pass reads.
pub const CHUNK: usize = 1 << 20;

/// Chunks in flight between the reader and the check's thread (memory: this many
/// [`CHUNK`]s).
const DEPTH: usize = 4;

/// The linear read of a pass: chunks of [`CHUNK`] bytes, each handed to the caller and
/// then, when a [`PackageCheck`] runs beside it, sent to the check's thread (which hands
/// the buffer back). The two SHA passes of a pass (AXPC over the stored bytes, the block
/// hashes over the inflated ones) thus run on two cores.
struct Reader {
    to_check: Option<std::sync::mpsc::SyncSender<(u64, Vec<u8>, usize)>>,
    free: Option<std::sync::mpsc::Receiver<Vec<u8>>>,
    made: usize,
    own: Vec<u8>,
}

impl Reader {
    fn buffer(&mut self) -> Result<Vec<u8>> {
        match &self.free {
            None => Ok(std::mem::take(&mut self.own)),
            Some(_) if self.made < DEPTH => {
                self.made += 1;
                Ok(Vec::new())
            }
            Some(free) => free
                .recv()
                .map_err(|_| Error::InvalidValue("the block-map check stopped".into())),
        }
    }

    /// Reads `from..to` of `src`, handing each chunk to `f` with its offset.
    fn read<S: Source + ?Sized>(
        &mut self,
        src: &mut S,
        from: u64,
        to: u64,
        mut f: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        check_range(src, from, to.saturating_sub(from), "local records")?;
        let mut at = from;
        while at < to {
            let mut buf = self.buffer()?;
            if buf.len() < CHUNK {
                buf.resize(CHUNK, 0);
            }
            let n = usize::try_from(to - at).unwrap_or(CHUNK).min(CHUNK);
            let b = buf.get_mut(..n).unwrap_or_default();
            src.read_at(at, b)?;
            f(at, b)?;
            match &self.to_check {
                Some(tx) => tx
                    .send((at, buf, n))
                    .map_err(|_| Error::InvalidValue("the block-map check stopped".into()))?,
                None => self.own = buf,
            }
            at += n as u64;
        }
        Ok(())
    }
}

/// Runs `body` with a [`Reader`] whose chunks also go to `check` on a second thread (none:
/// the reader keeps one buffer).
fn with_reader<T>(
    check: Option<&mut PackageCheck>,
    body: impl FnOnce(&mut Reader) -> Result<T>,
) -> Result<T> {
    let Some(check) = check else {
        return body(&mut Reader {
            to_check: None,
            free: None,
            made: 0,
            own: Vec::new(),
        });
    };
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, Vec<u8>, usize)>(DEPTH);
        let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let worker = scope.spawn(move || {
            for (at, buf, n) in rx {
                check.feed(at, buf.get(..n).unwrap_or_default());
                // The reader may be gone (an error): the buffer is then dropped.
                let _ = free_tx.send(buf);
            }
        });
        let mut reader = Reader {
            to_check: Some(tx),
            free: Some(free_rx),
            made: 0,
            own: Vec::new(),
        };
        let out = body(&mut reader);
        drop(reader);
        worker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        out
    })
}

/// The block map's files checked against one entry's data.
struct Blocks {
    alg: DigestAlgorithm,
    hashes: Vec<Vec<u8>>,
    k: usize,
    h: Hasher,
    in_block: u64,
    found: Vec<String>,
}

impl Blocks {
    fn end_block(&mut self, name: &str) {
        let h = std::mem::replace(&mut self.h, Hasher::new(self.alg)).finalize();
        if self.hashes.get(self.k).is_some_and(|want| h != *want) {
            self.found.push(format!(
                "block {} of {name:?} (bytes {:#x}..) does not match the block map",
                self.k,
                self.k as u64 * BLOCK_SIZE
            ));
        }
        self.k += 1;
        self.in_block = 0;
    }

    fn update(&mut self, name: &str, mut data: &[u8]) {
        while !data.is_empty() {
            let room = usize::try_from(BLOCK_SIZE - self.in_block).unwrap_or(usize::MAX);
            let (now, rest) = data.split_at(room.min(data.len()));
            self.h.update(now);
            self.in_block += now.len() as u64;
            if self.in_block == BLOCK_SIZE {
                self.end_block(name);
            }
            data = rest;
        }
    }
}

/// One entry's data followed through the pass: inflated when deflated, CRC-checked, and
/// handed to its block hashes and (a bundle's inner package) to the inner package's check.
struct Job {
    key: usize,
    name: String,
    start: u64,
    end: u64,
    size: u64,
    crc32: u32,
    data_offset: u64,
    inflate: Option<Box<miniz_oxide::inflate::stream::InflateState>>,
    stream_end: bool,
    crc: u32,
    total: u64,
    failed: Option<String>,
    blocks: Option<Blocks>,
    inner: Option<Box<PackageCheck>>,
}

impl Job {
    fn new(key: usize, e: &Entry) -> Self {
        let mut j = Self {
            key,
            name: e.name.clone(),
            start: e.data_offset,
            end: e.data_offset + e.compressed_size,
            size: e.size,
            crc32: e.crc32,
            data_offset: e.data_offset,
            inflate: None,
            stream_end: false,
            crc: !0,
            total: 0,
            failed: None,
            blocks: None,
            inner: None,
        };
        match e.method {
            Method::Stored if e.compressed_size != e.size => {
                j.failed = Some(
                    bad(
                        format!("stored entry {:?} has two sizes", e.name),
                        e.local.start,
                    )
                    .to_string(),
                );
            }
            Method::Stored => {}
            Method::Deflated => {
                j.inflate = Some(miniz_oxide::inflate::stream::InflateState::new_boxed(
                    miniz_oxide::DataFormat::Raw,
                ));
            }
            Method::Other(m) => {
                j.failed = Some(
                    bad(
                        format!("{:?} uses compression method {m}", e.name),
                        e.local.start,
                    )
                    .to_string(),
                );
            }
        }
        j
    }

    fn fail(&mut self, what: String) {
        if self.failed.is_none() {
            self.failed = Some(bad(what, self.data_offset).to_string());
        }
    }

    /// Uncompressed bytes.
    fn emit(&mut self, data: &[u8]) {
        if self.failed.is_some() || data.is_empty() {
            return;
        }
        let at = self.total;
        self.total += data.len() as u64;
        if self.total > self.size {
            self.fail(format!(
                "{:?} inflates to more than {} bytes",
                self.name, self.size
            ));
            return;
        }
        self.crc = crc32_update(self.crc, data);
        if let Some(b) = &mut self.blocks {
            b.update(&self.name, data);
        }
        if let Some(i) = &mut self.inner {
            i.feed(at, data);
        }
    }

    /// Compressed bytes, in order.
    fn input(&mut self, mut data: &[u8], scratch: &mut [u8]) {
        use miniz_oxide::inflate::stream::inflate;
        use miniz_oxide::{MZError, MZFlush, MZStatus};
        if self.failed.is_some() {
            return;
        }
        let Some(mut state) = self.inflate.take() else {
            self.emit(data);
            return;
        };
        while !self.stream_end && self.failed.is_none() {
            let r = inflate(&mut state, data, scratch, MZFlush::None);
            data = data.get(r.bytes_consumed..).unwrap_or_default();
            let out = scratch.get(..r.bytes_written).unwrap_or_default();
            self.emit(out);
            match r.status {
                Ok(MZStatus::StreamEnd) => self.stream_end = true,
                Ok(_) | Err(MZError::Buf) if data.is_empty() && r.bytes_written < scratch.len() => {
                    break
                }
                Ok(_) if r.bytes_consumed > 0 || r.bytes_written > 0 => {}
                Ok(_) | Err(MZError::Buf) => {
                    self.fail(format!("inflating {:?}: the data ends early", self.name));
                }
                Err(e) => self.fail(format!("inflating {:?}: {e:?}", self.name)),
            }
        }
        self.inflate = Some(state);
    }

    /// The problems found, once all the entry's data has passed.
    fn finish(mut self, out: &mut Vec<(usize, String)>) {
        if self.failed.is_none() {
            if self.inflate.is_some() && !self.stream_end {
                self.fail(format!("inflating {:?}: the data ends early", self.name));
            } else if self.total != self.size {
                self.fail(format!(
                    "{:?} inflates to {} bytes, not {}",
                    self.name, self.total, self.size
                ));
            } else if !self.crc != self.crc32 {
                self.fail(format!("CRC-32 of {:?} is wrong", self.name));
            }
        }
        if let Some(mut b) = self.blocks.take() {
            if b.in_block > 0 {
                b.end_block(&self.name);
            }
            match &self.failed {
                Some(f) => out.push((self.key, f.clone())),
                None => out.extend(b.found.into_iter().map(|f| (self.key, f))),
            }
        } else if let Some(f) = &self.failed {
            out.push((self.key, f.clone()));
        }
    }
}

/// A bundle's inner package as the check found it.
#[derive(Debug, Clone)]
pub struct InnerPackage {
    /// Its entry name in the bundle.
    pub name: String,
    /// Its manifest's Publisher (an error message when it has none).
    pub publisher: std::result::Result<String, String>,
    /// Its own signature (DER, without `PKCX`), when it carries one.
    pub signature: Option<Vec<u8>>,
    /// Its APPX digest blob and algorithm, computed in the pass (when it is signed).
    pub digest: Option<(DigestAlgorithm, Vec<u8>)>,
    /// Its block-map problems (also in the bundle's, prefixed with its name).
    pub problems: Vec<String>,
}

/// What a [`PackageCheck`] found.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// One message per block-map problem (empty: the package matches its block map).
    pub problems: Vec<String>,
    /// The digest blob, when the check computed it.
    pub digest: Option<(DigestAlgorithm, Vec<u8>)>,
    /// A bundle's inner packages, in the bundle's order.
    pub inner: Vec<InnerPackage>,
}

/// The digest blob's parts read from their entries (all but AXPC): the algorithm, and
/// the tagged hashes after AXPC.
fn blob_rest<S: Source + ?Sized>(
    src: &mut S,
    zip: &Zip,
    alg: DigestAlgorithm,
    block_map: &[u8],
) -> Result<Vec<u8>> {
    let hash = |d: &[u8]| {
        let mut h = Hasher::new(alg);
        h.update(d);
        h.finalize()
    };
    let ct_entry = zip
        .entry(CONTENT_TYPES_NAME)
        .ok_or_else(|| bad(format!("no {CONTENT_TYPES_NAME} in the package"), 0))?;
    let ct = zip.read_from(src, ct_entry, MAX_PART)?;
    let dir = zip.unsigned_directory_from(src)?;
    let mut rest = Vec::new();
    for (tag, h) in [
        (b"AXCD", hash(&dir)),
        (b"AXCT", hash(&ct)),
        (b"AXBM", hash(block_map)),
    ] {
        rest.extend_from_slice(tag);
        rest.extend_from_slice(&h);
    }
    if let Some(ci) = zip.entry(CODE_INTEGRITY_NAME) {
        let cat = zip.read_from(src, ci, MAX_PART)?;
        rest.extend_from_slice(b"AXCI");
        rest.extend_from_slice(&hash(&cat));
    }
    Ok(rest)
}

/// The streamed AXPC and the rest of the blob.
struct BlobState {
    alg: DigestAlgorithm,
    axpc: Hasher,
    end: u64,
    rest: Vec<u8>,
}

/// Windows' install-time check of a package against its block map, fed the package's
/// bytes in order ([`PackageCheck::feed`]): every file of the archive (but the block map,
/// the content types and the signature) is listed with its size, its local header's size
/// and the hash of each 64 KiB block; every listed file exists. A bundle's inner packages
/// (stored `.appx` / `.msix` entries at its top level) are checked against their own
/// block maps in the same pass. Memory: one inflate state and one 64 KiB buffer per
/// archive, whatever the files' sizes.
pub struct PackageCheck {
    alg: DigestAlgorithm,
    jobs: Vec<Job>,
    next: usize,
    problems: Vec<(usize, String)>,
    scratch: Vec<u8>,
    blob: Option<BlobState>,
    inner_meta: Vec<InnerPackage>,
}

impl std::fmt::Debug for PackageCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageCheck")
            .field("files", &self.jobs.len())
            .field("next", &self.next)
            .field("problems", &self.problems.len())
            .finish_non_exhaustive()
    }
}

impl PackageCheck {
    /// Reads the block map (and the small parts) of `zip` from `src` and prepares the
    /// check. With `digest`, the pass also computes the package's digest blob (AXPC over
    /// the bytes fed before the signature). With `inner`, a bundle's inner packages are
    /// checked too.
    pub fn new(src: &mut dyn Source, zip: &Zip, digest: bool, inner: bool) -> Result<Self> {
        let bm_entry = zip
            .entry(BLOCK_MAP_NAME)
            .ok_or_else(|| bad(format!("no {BLOCK_MAP_NAME} in the package"), 0))?;
        let xml = zip.read_from(src, bm_entry, MAX_PART)?;
        let alg = super::block_map_hash_method(&xml)?;
        let files = super::parse_block_map(&xml)?;
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let by_name: std::collections::HashMap<&str, usize> = zip
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.as_str(), i))
            .collect();
        let mut jobs: std::collections::HashMap<usize, Job> = std::collections::HashMap::new();
        for (key, f) in files.into_iter().enumerate() {
            if !seen.insert(f.name.clone()) {
                problems.push((
                    key,
                    format!("{:?} is listed twice in the block map", f.name),
                ));
                continue;
            }
            let Some((&i, e)) = by_name
                .get(f.name.as_str())
                .and_then(|i| Some((i, zip.entries.get(*i)?)))
            else {
                problems.push((
                    key,
                    format!("{:?} is in the block map but not in the package", f.name),
                ));
                continue;
            };
            if e.size != f.size {
                problems.push((
                    key,
                    format!(
                        "{:?} is {} bytes; the block map says {}",
                        f.name, e.size, f.size
                    ),
                ));
                continue;
            }
            // A size the entry's data cannot hold (stored: its length; deflated: at most
            // 1032 bytes out per byte in) is refused before its block hashes are kept, so
            // what the check holds stays proportional to the file.
            let most = match e.method {
                Method::Stored => e.compressed_size,
                _ => e.compressed_size.saturating_mul(1032).saturating_add(1024),
            };
            if e.size > most {
                problems.push((
                    key,
                    format!(
                        "{:?} declares {} bytes, more than its {} stored bytes can hold",
                        f.name, e.size, e.compressed_size
                    ),
                ));
                continue;
            }
            let lfh = e.data_offset - e.local.start;
            if let Some(l) = f.lfh_size.filter(|&l| l != lfh) {
                problems.push((
                    key,
                    format!(
                        "the local header of {:?} is {lfh} bytes; the block map says {l}",
                        f.name
                    ),
                ));
            }
            let want_blocks = e.size.div_ceil(BLOCK_SIZE);
            if f.blocks.len() as u64 != want_blocks {
                problems.push((
                    key,
                    format!(
                        "{:?} has {want_blocks} blocks; the block map lists {}",
                        f.name,
                        f.blocks.len()
                    ),
                ));
                continue;
            }
            let mut job = Job::new(key, e);
            job.blocks = Some(Blocks {
                alg,
                hashes: f.blocks,
                k: 0,
                h: Hasher::new(alg),
                in_block: 0,
                found: Vec::new(),
            });
            jobs.insert(i, job);
        }
        for e in &zip.entries {
            let own =
                [BLOCK_MAP_NAME, CONTENT_TYPES_NAME, SIGNATURE_NAME].contains(&e.name.as_str());
            if !own && !seen.contains(&e.name) {
                problems.push((
                    usize::MAX,
                    format!("{:?} is in the package but not in the block map", e.name),
                ));
            }
        }
        let mut inner_meta = Vec::new();
        if inner && zip.entry(super::BUNDLE_MANIFEST_NAME).is_some() {
            for i in find_inner_packages(zip) {
                let Some(e) = zip.entries.get(i) else {
                    continue;
                };
                match Self::inner(src, e) {
                    Ok((check, meta)) => {
                        let job = jobs.entry(i).or_insert_with(|| Job::new(usize::MAX, e));
                        job.inner = Some(Box::new(check));
                        inner_meta.push(meta);
                    }
                    Err(err) => {
                        problems.push((usize::MAX, format!("inner package {:?}: {err}", e.name)));
                        inner_meta.push(InnerPackage {
                            name: e.name.clone(),
                            publisher: Err(err.to_string()),
                            signature: None,
                            digest: None,
                            problems: vec![err.to_string()],
                        });
                    }
                }
            }
        }
        let blob = if digest {
            Some(BlobState {
                alg,
                axpc: Hasher::new(alg),
                end: zip.signed_local_end()?,
                rest: blob_rest(src, zip, alg, &xml)?,
            })
        } else {
            None
        };
        let mut jobs: Vec<Job> = jobs.into_values().collect();
        jobs.sort_by_key(|j| j.start);
        Ok(Self {
            alg,
            jobs,
            next: 0,
            problems,
            scratch: vec![0u8; BLOCK_SIZE as usize],
            blob,
            inner_meta,
        })
    }

    /// The block map's hash algorithm (the one the package can be signed with).
    pub fn alg(&self) -> DigestAlgorithm {
        self.alg
    }

    /// The check of the inner package stored as `e` (its data read through `src`).
    fn inner(src: &mut dyn Source, e: &Entry) -> Result<(Self, InnerPackage)> {
        if e.method != Method::Stored {
            return Err(bad(
                "a bundle's packages are stored; this one is compressed",
                e.local.start,
            ));
        }
        let mut sub = SubSource::new(src, e.data_offset, e.compressed_size)?;
        let zip = Zip::parse_from(&mut sub)?;
        let signature = match zip.signature() {
            Some(s) => {
                let p7x = zip.read_from(&mut sub, s, MAX_PART)?;
                Some(super::p7x_der(&p7x)?.to_vec())
            }
            None => None,
        };
        let publisher = super::manifest_publisher_from(&mut sub, &zip).map_err(|e| e.to_string());
        let check = Self::new(&mut sub, &zip, signature.is_some(), false)?;
        let meta = InnerPackage {
            name: e.name.clone(),
            publisher,
            signature,
            digest: None,
            problems: Vec::new(),
        };
        Ok((check, meta))
    }

    /// The package's bytes at `at` (in order, each byte once; bytes before the first
    /// entry's data and between entries are skipped).
    pub fn feed(&mut self, mut at: u64, mut bytes: &[u8]) {
        if let Some(b) = &mut self.blob {
            if at < b.end {
                let n = usize::try_from(b.end - at).unwrap_or(usize::MAX);
                b.axpc.update(bytes.get(..n).unwrap_or(bytes));
            }
        }
        while !bytes.is_empty() {
            let Some(job) = self.jobs.get_mut(self.next) else {
                return;
            };
            let len = bytes.len() as u64;
            if at + len <= job.start && job.start != job.end {
                return;
            }
            if at < job.start {
                let skip = usize::try_from(job.start - at).unwrap_or(usize::MAX);
                bytes = bytes.get(skip..).unwrap_or_default();
                at = job.start;
            }
            let take = usize::try_from(job.end.saturating_sub(at))
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let (now, rest) = bytes.split_at(take);
            job.input(now, &mut self.scratch);
            at += take as u64;
            bytes = rest;
            if at >= job.end {
                self.next += 1;
            }
        }
    }

    /// The problems found (in the block map's order, then files missing from it, then
    /// inner packages), the digest blob when asked for, and a bundle's inner packages.
    pub fn finish(self) -> CheckResult {
        let mut problems = self.problems;
        let mut inner_meta = self.inner_meta;
        for mut job in self.jobs {
            let name = job.name.clone();
            if let Some(inner) = job.inner.take() {
                let r = inner.finish();
                if let Some(m) = inner_meta.iter_mut().find(|m| m.name == name) {
                    m.digest = r.digest.clone();
                    m.problems = r.problems.clone();
                }
                job.inner = None;
                job.finish(&mut problems);
                problems.extend(
                    r.problems
                        .into_iter()
                        .map(|p| (usize::MAX, format!("inner package {name:?}: {p}"))),
                );
            } else {
                job.finish(&mut problems);
            }
        }
        problems.sort_by_key(|p| p.0);
        let digest = self.blob.map(|b| {
            let mut blob = b"APPX".to_vec();
            blob.extend_from_slice(b"AXPC");
            blob.extend_from_slice(&b.axpc.finalize());
            blob.extend_from_slice(&b.rest);
            (b.alg, blob)
        });
        CheckResult {
            problems: problems.into_iter().map(|p| p.1).collect(),
            digest,
            inner: inner_meta,
        }
    }
}

/// Runs a check over the local records of `zip` read from `src` (one linear read of the
/// bytes before the signature, in chunks of [`CHUNK`] bytes; the check on a second thread,
/// the package's AXPC on this one).
pub fn run_check<S: Source + ?Sized>(
    src: &mut S,
    zip: &Zip,
    mut check: PackageCheck,
) -> Result<CheckResult> {
    let end = zip.signed_local_end()?;
    let mut blob = check.blob.take();
    with_reader(Some(&mut check), |reader| {
        reader.read(src, 0, end, |at, b| {
            if let Some(bs) = &mut blob {
                if at < bs.end {
                    let n = usize::try_from(bs.end - at).unwrap_or(usize::MAX);
                    bs.axpc.update(b.get(..n).unwrap_or(b));
                }
            }
            Ok(())
        })
    })?;
    check.blob = blob;
    Ok(check.finish())
}

/// The end records of an archive, as read, ready to be rewritten for another directory.
#[derive(Debug, Clone)]
pub struct EndRecords {
    zip64: Option<(Vec<u8>, Vec<u8>)>,
    eocd: Vec<u8>,
}

impl EndRecords {
    /// The end records of `zip` read from `src`.
    pub fn read<S: Source + ?Sized>(src: &mut S, zip: &Zip) -> Result<Self> {
        let zip64 = match (&zip.zip64_eocd, &zip.zip64_locator) {
            (Some(z), Some(l)) => Some((
                read_vec(src, z.start, z.end - z.start, "ZIP64 end record")?,
                read_vec(src, l.start, l.end - l.start, "ZIP64 locator")?,
            )),
            _ => None,
        };
        let eocd = read_vec(
            src,
            zip.eocd.start,
            zip.eocd.end - zip.eocd.start,
            "end record",
        )?;
        Ok(Self { zip64, eocd })
    }

    /// The records for a central directory at `cd_off` of `cd_size` bytes holding `count`
    /// records.
    pub fn build(&self, cd_off: u64, cd_size: u64, count: u64) -> Result<Vec<u8>> {
        super::build_end_records(self.zip64.as_ref(), &self.eocd, cd_off, cd_size, count)
    }
}

/// What [`write_unsigned`] leaves to write after the local records.
#[derive(Debug, Clone)]
pub struct Tail {
    cd: Vec<u8>,
    cd_off: u64,
    count: u64,
    ends: EndRecords,
}

impl Tail {
    /// Where the local records written end (the unsigned central directory's offset).
    pub fn locals_len(&self) -> u64 {
        self.cd_off
    }

    /// The central directory and end records of the unsigned package.
    pub fn unsigned(&self) -> Result<Vec<u8>> {
        let mut out = self.cd.clone();
        out.extend_from_slice(
            &self
                .ends
                .build(self.cd_off, self.cd.len() as u64, self.count)?,
        );
        Ok(out)
    }

    /// `AppxSignature.p7x` (`PKCX` + `der`, stored) as the last entry, then the central
    /// directory with its record and the end records.
    pub fn signed(&self, der: &[u8]) -> Result<Vec<u8>> {
        let (local, central) = super::signature_records(self.cd_off, der)?;
        let mut out = local;
        let new_cd = self.cd_off + out.len() as u64;
        out.extend_from_slice(&self.cd);
        out.extend_from_slice(&central);
        let cd_size = self.cd.len() as u64 + central.len() as u64;
        out.extend_from_slice(&self.ends.build(new_cd, cd_size, self.count + 1)?);
        Ok(out)
    }
}

/// What signing stages: the digest blob of the unsigned form written, and its tail.
#[derive(Debug, Clone)]
pub struct Unsigned {
    /// The block map's algorithm.
    pub alg: DigestAlgorithm,
    /// The APPX digest blob of the unsigned form (the package as it will be signed).
    pub blob: Vec<u8>,
    /// The rest of the package.
    pub tail: Tail,
}

/// A writer that hashes what it writes.
struct HashingWriter<'a, W: ?Sized> {
    out: &'a mut W,
    h: Hasher,
    written: u64,
}

impl<W: Write + ?Sized> HashingWriter<'_, W> {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.h.update(b);
        self.written += b.len() as u64;
        self.out.write_all(b).map_err(|source| Error::Io {
            context: "writing the package".into(),
            source,
        })
    }
}

/// Writes the local records of the package unsigned, ready for a signature, to `out`, in
/// one linear read of `src` that also feeds `check` (the input's bytes): any
/// `AppxSignature.p7x` dropped, and `[Content_Types].xml` given the Override for the
/// signature part when it lacks one (rewritten with its method; the records after it
/// move, their bytes unchanged). Every other local record is kept byte for byte; central
/// records (in [`Tail`]) are patched only in their offsets (and, for the content types,
/// CRC and sizes). Returns the digest blob of that form (AXPC hashed as written).
pub fn write_unsigned<S: Source + ?Sized, W: Write + ?Sized>(
    src: &mut S,
    zip: &Zip,
    out: &mut W,
    check: Option<&mut PackageCheck>,
) -> Result<Unsigned> {
    use super::{put, u16_at, u32_at};
    let sig_start = zip.signed_local_end()?;
    let ct_entry = zip
        .entry(CONTENT_TYPES_NAME)
        .ok_or_else(|| bad(format!("no {CONTENT_TYPES_NAME} in the package"), 0))?;
    let ct = zip.read_from(src, ct_entry, MAX_PART)?;
    let new_ct = content_types_with_signature(&ct)?;
    let bm_entry = zip
        .entry(BLOCK_MAP_NAME)
        .ok_or_else(|| bad(format!("no {BLOCK_MAP_NAME} in the package"), 0))?;
    let block_map = zip.read_from(src, bm_entry, MAX_PART)?;
    let alg = super::block_map_hash_method(&block_map)?;
    let ci = match zip.entry(CODE_INTEGRITY_NAME) {
        Some(e) => Some(zip.read_from(src, e, MAX_PART)?),
        None => None,
    };
    let mut order: Vec<&Entry> = zip
        .entries
        .iter()
        .filter(|e| e.name != SIGNATURE_NAME)
        .collect();
    order.sort_by_key(|e| e.local.start);
    let mut w = HashingWriter {
        out,
        h: Hasher::new(alg),
        written: 0,
    };
    // Old local start -> new local start (a map: linear time in the entry count).
    let mut moved: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    let mut ct_fields = None;
    let mut pos = 0u64;
    with_reader(check, |reader| {
        let mut copy =
            |src: &mut S, w: &mut HashingWriter<'_, W>, from: u64, to: u64, keep: bool| {
                reader.read(src, from, to, |_, b| if keep { w.put(b) } else { Ok(()) })
            };
        for e in &order {
            // Bytes between records are kept too.
            copy(src, &mut w, pos, e.local.start, true)?;
            moved.insert(e.local.start, w.written);
            match (&new_ct, e.name == CONTENT_TYPES_NAME) {
                (Some(text), true) => {
                    let body = match e.method {
                        Method::Deflated => miniz_oxide::deflate::compress_to_vec(text, 9),
                        _ => text.clone(),
                    };
                    let crc = crc32(text);
                    let (csize, usize_) = (
                        u32::try_from(body.len())
                            .map_err(|_| bad("content types too large", e.local.start))?,
                        u32::try_from(text.len())
                            .map_err(|_| bad("content types too large", e.local.start))?,
                    );
                    let mut h = [0u8; LOCAL_LEN];
                    read_into(src, e.local.start, &mut h, "local header")?;
                    let flags = u16_at(&h, 6) & !0x0008;
                    put(&mut h, 6, &flags.to_le_bytes());
                    put(&mut h, 14, &crc.to_le_bytes());
                    put(&mut h, 18, &csize.to_le_bytes());
                    put(&mut h, 22, &usize_.to_le_bytes());
                    put(&mut h, 28, &0u16.to_le_bytes());
                    w.put(&h)?;
                    w.put(CONTENT_TYPES_NAME.as_bytes())?;
                    w.put(&body)?;
                    ct_fields = Some((flags, crc, csize, usize_));
                    // The old record still passes through the block-map check.
                    copy(src, &mut w, e.local.start, e.local.end, false)?;
                }
                _ => copy(src, &mut w, e.local.start, e.local.end, true)?,
            }
            pos = e.local.end;
        }
        copy(src, &mut w, pos, sig_start.max(pos), true)
    })?;
    let cd_off = w.written;
    let axpc = std::mem::replace(&mut w.h, Hasher::new(alg)).finalize();
    let old_cd = read_vec(
        src,
        zip.central_dir.start,
        zip.central_dir.end - zip.central_dir.start,
        "central directory",
    )?;
    let mut cd = Vec::with_capacity(old_cd.len());
    let mut count = 0u64;
    for e in zip.entries.iter().filter(|e| e.name != SIGNATURE_NAME) {
        let from = usize::try_from(e.central.start - zip.central_dir.start).unwrap_or(usize::MAX);
        let to = usize::try_from(e.central.end - zip.central_dir.start).unwrap_or(usize::MAX);
        let mut r = old_cd
            .get(from..to)
            .ok_or_else(|| bad("central record", e.central.start))?
            .to_vec();
        let new_off = moved.get(&e.local.start).copied().unwrap_or(e.local.start);
        if u32_at(&r, 42) == 0xFFFF_FFFF {
            super::patch_zip64_offset(&mut r, new_off, e.central.start)?;
        } else {
            let n = u32::try_from(new_off)
                .map_err(|_| bad("an entry moved past 4 GiB without ZIP64", e.central.start))?;
            put(&mut r, 42, &n.to_le_bytes());
        }
        if let (true, Some((flags, crc, csize, usize_))) = (e.name == CONTENT_TYPES_NAME, ct_fields)
        {
            if u32_at(&r, 20) == 0xFFFF_FFFF || u32_at(&r, 24) == 0xFFFF_FFFF {
                return Err(bad("ZIP64 sizes on [Content_Types].xml", e.central.start));
            }
            put(&mut r, 8, &flags.to_le_bytes());
            put(&mut r, 16, &crc.to_le_bytes());
            put(&mut r, 20, &csize.to_le_bytes());
            put(&mut r, 24, &usize_.to_le_bytes());
        }
        cd.extend_from_slice(&r);
        count += 1;
    }
    let tail = Tail {
        cd,
        cd_off,
        count,
        ends: EndRecords::read(src, zip)?,
    };
    let hash = |d: &[u8]| {
        let mut h = Hasher::new(alg);
        h.update(d);
        h.finalize()
    };
    let ct_now = new_ct.as_deref().unwrap_or(&ct);
    let mut blob = b"APPX".to_vec();
    for (tag, h) in [
        (b"AXPC", axpc),
        (b"AXCD", hash(&tail.unsigned()?)),
        (b"AXCT", hash(ct_now)),
        (b"AXBM", hash(&block_map)),
    ] {
        blob.extend_from_slice(tag);
        blob.extend_from_slice(&h);
    }
    if let Some(cat) = &ci {
        blob.extend_from_slice(b"AXCI");
        blob.extend_from_slice(&hash(cat));
    }
    Ok(Unsigned { alg, blob, tail })
}

/// The digest blob's tagged hashes after AXPC (AXCD, AXCT, AXBM and AXCI when present)
/// of `zip` read from `src`, and the block map's algorithm: what the output check compares
/// without reading the local records again.
pub fn blob_after_axpc<S: Source + ?Sized>(
    src: &mut S,
    zip: &Zip,
) -> Result<(DigestAlgorithm, Vec<u8>)> {
    let bm_entry = zip
        .entry(BLOCK_MAP_NAME)
        .ok_or_else(|| bad(format!("no {BLOCK_MAP_NAME} in the package"), 0))?;
    let xml = zip.read_from(src, bm_entry, MAX_PART)?;
    let alg = super::block_map_hash_method(&xml)?;
    Ok((alg, blob_rest(src, zip, alg, &xml)?))
}
