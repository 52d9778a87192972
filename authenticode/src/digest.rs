//! The Authenticode image digest and the PE checksum, computed in one streaming pass.
//!
//! The digest covers the file linearly from offset 0 to the certificate table (or the end
//! of the file), leaving out the 4-byte CheckSum field and the 8-byte Security
//! data-directory entry, then zero bytes up to a multiple of 8 when the hashed part does not
//! end on one (Windows, osslsigncode and signify all pad so; a signer appends the table at
//! that padded offset). This is how osslsigncode and PeNet hash; it covers overlays and
//! COFF symbol tables, and needs no section walk.
use std::{
    fs::File,
    io::{Read, Seek, SeekFrom, Write},
};

use codeseal_formats::digest::{Hasher, PeChecksum};
use codeseal_signer::DigestAlgorithm;

use crate::{
    error::{Error, Result},
    pagehash::PageHasher,
    pe::PeInfo,
};

/// Size of the read buffer of the streaming pass (allocated once per pass).
pub const CHUNK: usize = 1 << 20;

/// What one pass over a PE image yields.
#[derive(Clone, Debug)]
pub struct ImagePass {
    /// One digest per requested algorithm, in the requested order.
    pub digests: Vec<(DigestAlgorithm, Vec<u8>)>,
    /// Checksum sum over the bytes passed (CheckSum field and Security entry left out).
    pub checksum: PeChecksum,
    /// Bytes hashed from the file (the image end), before padding.
    pub image_len: u64,
    /// Zero bytes of padding hashed (and written) after the image.
    pub padding: u64,
}

impl ImagePass {
    /// The digest for `alg`, if it was computed.
    pub fn digest(&self, alg: DigestAlgorithm) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, d)| d.as_slice())
    }
}

/// Reads the image (offset 0 to the certificate table or end of file) of `pe` from `r` once,
/// hashing it with every algorithm in `algs`, accumulating the checksum, and, if `sink` is
/// given, copying every byte read (plus the zero padding) to it.
///
/// Memory use is one buffer of [`CHUNK`] bytes, whatever the file size.
pub fn stream_image<R: Read + Seek>(
    r: &mut R,
    pe: &PeInfo,
    algs: &[DigestAlgorithm],
    sink: Option<&mut dyn Write>,
) -> Result<ImagePass> {
    stream_image_with_pages(r, pe, algs, sink, &mut [])
}

/// [`stream_image`], also feeding a page-hash table in the same pass.
pub fn stream_image_with_pages<R: Read + Seek>(
    r: &mut R,
    pe: &PeInfo,
    algs: &[DigestAlgorithm],
    sink: Option<&mut dyn Write>,
    pages: &mut [PageHasher],
) -> Result<ImagePass> {
    let out = match sink {
        Some(w) => Out::Stream(w),
        None => Out::Nowhere,
    };
    run_pass(r, pe, algs, out, pages)
}

/// [`stream_image_with_pages`] copying the image (and its padding) to the start of `copy`'s
/// file, which must be new and empty. On large images a third thread writes the copy, so
/// reading, hashing and writing overlap; with early write-back
/// ([`FileCopy::with_early_writeback`]) or a direct-I/O handle ([`FileCopy::new`]) the copy
/// goes to the disk as it is written instead of waiting in the page cache for the caller's
/// fsync.
pub(crate) fn stream_image_to_file<R: Read + Seek>(
    r: &mut R,
    pe: &PeInfo,
    algs: &[DigestAlgorithm],
    copy: &mut FileCopy<'_>,
    pages: &mut [PageHasher],
) -> Result<ImagePass> {
    let pass = run_pass(r, pe, algs, Out::File(copy), pages)?;
    tracing::debug!(
        direct_bytes = copy.direct_bytes,
        writeback_started = copy.writeback_started,
        total = pass.image_len + pass.padding,
        "image copied"
    );
    Ok(pass)
}

/// Alignment of the buffers, file offsets and lengths of direct-I/O writes (the page size,
/// which is a multiple of every common logical block size).
pub(crate) const DIRECT_IO_ALIGN: usize = 4096;

/// Bytes of copy between two early write-back requests ([`FileCopy::with_early_writeback`]).
pub(crate) const WRITEBACK_STEP: u64 = 4 << 20;

/// The smallest distance between two early flushes of a large copy (see
/// [`FileCopy::with_early_writeback`]).
const FLUSH_STEP_MIN: u64 = 4 << 20;
/// The most early flushes one copy asks for: each may cost the file system a journal commit.
const FLUSHES_MAX: u64 = 16;

/// The destination of [`stream_image_to_file`]'s copy: a new, empty regular file, and
/// optionally a second handle on the same file opened for direct I/O (`O_DIRECT` on Linux).
///
/// Writes go through `file`, into the page cache. With
/// [`with_early_writeback`](Self::with_early_writeback), every [`WRITEBACK_STEP`] bytes
/// written ask the kernel to start writing them back to the disk (Linux), so that the
/// caller's fsync finds little left to do.
///
/// With a direct handle, writes that are aligned (buffer address, file offset and length
/// multiples of [`DIRECT_IO_ALIGN`]) go through it instead, the rest through `file`. If a
/// direct write fails (a file system that refuses the alignment, for instance), that write
/// and all the following go through `file`: direct I/O is an optimisation, never a
/// requirement. Either way the caller must still fsync `file` before relying on the copy.
#[derive(Debug)]
pub(crate) struct FileCopy<'a> {
    file: &'a File,
    #[cfg_attr(not(unix), allow(dead_code))]
    direct: Option<File>,
    direct_bytes: u64,
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    early_writeback: bool,
    /// The copy's bytes `0..writeback_started` were handed to the kernel's write-back.
    writeback_started: u64,
    /// Early flushes asked for (the multi-thread pass).
    flushes_asked: u64,
    /// The early flushes' thread, once the multi-thread pass started it.
    flusher: Option<EarlyFlush>,
}

impl<'a> FileCopy<'a> {
    /// A copy written to `file`, with the aligned bulk through `direct` when given (it must
    /// be a handle on the same file).
    pub fn new(file: &'a File, direct: Option<File>) -> Self {
        Self {
            file,
            direct,
            direct_bytes: 0,
            early_writeback: false,
            writeback_started: 0,
            flushes_asked: 0,
            flusher: None,
        }
    }

    /// Starts the write-back of what goes through the page cache as it is written, every
    /// [`WRITEBACK_STEP`] bytes, instead of leaving it all to the final fsync. The disk then
    /// writes while the image is still being read and hashed, with the kernel's usual queue
    /// depth (direct writes wait for each other). Does nothing where the platform has no
    /// way to ask for it. Writes must then come in file order, as [`stream_image_to_file`]
    /// makes them.
    ///
    /// On large images (the multi-thread pass) the copy is also made durable as it goes: a
    /// thread of its own `fdatasync`s what was written so far every `max(4 MiB, image /
    /// 16)` bytes while the rest is still hashed, at most one at a time (requests made
    /// while one runs are merged into the next) and never for the last stretch, which the
    /// caller's fsync covers. Starting the write-back is not enough where the device
    /// acknowledges writes into a volatile cache and the cost is in the flush (a virtio
    /// disk with a host-side cache: the fsync of a 16 MiB copy took about 18 ms whether or
    /// not its write-back had been started, docs/performance.md); the early flushes move
    /// most of that work under the hashing. Their cost is bounded: at most 16 per file, and
    /// the pass waits at the end only for one already running, which the final fsync would
    /// otherwise have done.
    pub fn with_early_writeback(mut self) -> Self {
        self.early_writeback = true;
        self
    }

    /// Bytes written through the direct handle so far.
    #[cfg(test)]
    pub fn direct_bytes(&self) -> u64 {
        self.direct_bytes
    }

    /// The early flushes' thread, if the pass started one: it must be
    /// [finished](EarlyFlush::finish) before the copy's final fsync.
    pub fn take_flusher(&mut self) -> Option<EarlyFlush> {
        self.flusher.take()
    }

    /// Early flushes asked for so far (requests made while one ran are merged into it).
    #[cfg(test)]
    pub fn flushes_asked(&self) -> u64 {
        self.flushes_asked
    }

    /// Bytes from the start of the copy whose write-back was started early so far.
    #[cfg(test)]
    pub fn writeback_started(&self) -> u64 {
        self.writeback_started
    }

    fn write_at(&mut self, data: &[u8], pos: u64) -> std::io::Result<()> {
        #[cfg(unix)]
        if let Some(direct) = &self.direct {
            let align = DIRECT_IO_ALIGN as u64;
            if pos.is_multiple_of(align)
                && (data.len() as u64).is_multiple_of(align)
                && data.as_ptr().align_offset(DIRECT_IO_ALIGN) == 0
            {
                use std::os::unix::fs::FileExt;
                match direct.write_all_at(data, pos) {
                    Ok(()) => {
                        self.direct_bytes += data.len() as u64;
                        return Ok(());
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, pos, "direct write refused; writing through the page cache from here on");
                        self.direct = None;
                    }
                }
            }
        }
        let mut f = self.file;
        f.seek(SeekFrom::Start(pos))?;
        f.write_all(data)?;
        self.start_writeback(pos + data.len() as u64);
        Ok(())
    }

    /// With early write-back, hands `writeback_started..end` to the kernel's write-back once
    /// it is a whole [`WRITEBACK_STEP`] long. `POSIX_FADV_DONTNEED` on Linux starts the
    /// write-back of the range's dirty pages without waiting for it, and drops only pages
    /// that are already clean (none, or hardly any, of a range just written). A refusal is
    /// ignored: the fsync writes whatever is left.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn start_writeback(&mut self, end: u64) {
        if !self.early_writeback || end < self.writeback_started + WRITEBACK_STEP {
            return;
        }
        let len = std::num::NonZeroU64::new(end - self.writeback_started);
        let advised = rustix::fs::fadvise(
            self.file,
            self.writeback_started,
            len,
            rustix::fs::Advice::DontNeed,
        );
        if let Err(e) = advised {
            tracing::debug!(error = %e, "early write-back refused; the fsync writes the copy");
            self.early_writeback = false;
            return;
        }
        self.writeback_started = end;
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn start_writeback(&mut self, _end: u64) {}
}

/// Where the bytes read go besides the hashers.
enum Out<'s, 'f> {
    /// Nowhere (verification, split signing).
    Nowhere,
    /// A stream, written in order by the reading thread.
    Stream(&'s mut dyn Write),
    /// A file, written at its offsets by a thread of its own on large images.
    File(&'s mut FileCopy<'f>),
}

impl Out<'_, '_> {
    fn write(&mut self, data: &[u8], pos: u64) -> Result<()> {
        let written = match self {
            Out::Nowhere => Ok(()),
            Out::Stream(w) => w.write_all(data),
            Out::File(c) => c.write_at(data, pos),
        };
        written.map_err(|e| Error::io("writing the output", e))
    }
}

fn run_pass<R: Read + Seek>(
    r: &mut R,
    pe: &PeInfo,
    algs: &[DigestAlgorithm],
    mut out: Out<'_, '_>,
    pages: &mut [PageHasher],
) -> Result<ImagePass> {
    let end = pe.image_end();
    let skips = [
        (pe.checksum_offset, pe.checksum_offset + 4),
        (pe.security_dir_offset, pe.security_dir_offset + 8),
    ];
    let mut hashers: Vec<Hasher> = algs.iter().map(|&a| Hasher::new(a)).collect();
    let mut checksum = PeChecksum::default();
    r.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("seeking to the start of the file", e))?;
    // Hashing one chunk while the next is read and the previous written keeps both cores
    // busy on large files; small ones are not worth a thread.
    if end >= PIPELINE_MIN {
        pipelined(r, end, &skips, &mut hashers, &mut checksum, pages, &mut out)?;
    } else {
        if let Out::File(c) = &mut out {
            // A few synchronous direct writes would cost more than the page cache saves.
            c.direct = None;
        }
        // No bigger than the image: a batch of small files allocates (and zeroes) little.
        let mut buf = vec![0u8; usize::try_from(end.min(CHUNK as u64)).unwrap_or(CHUNK)];
        let mut pos = 0u64;
        while pos < end {
            let want = usize::try_from((end - pos).min(CHUNK as u64)).unwrap_or(CHUNK);
            let chunk = buf.get_mut(..want).unwrap_or_default();
            r.read_exact(chunk)
                .map_err(|e| Error::io(format!("reading the file at {pos:#x}"), e))?;
            out.write(chunk, pos)?;
            hash_chunk(&mut hashers, &mut checksum, pages, &skips, chunk, pos);
            pos += want as u64;
        }
    }
    let padding = (8 - end % 8) % 8;
    if padding > 0 {
        let zeros = [0u8; 8];
        let pad = zeros.get(..padding as usize).unwrap_or_default();
        for h in &mut hashers {
            h.update(pad);
        }
        out.write(pad, end)?;
    }
    let digests = algs
        .iter()
        .copied()
        .zip(hashers.into_iter().map(Hasher::finalize))
        .collect();
    Ok(ImagePass {
        digests,
        checksum,
        image_len: end,
        padding,
    })
}

/// Files at least this large are hashed on a second thread while the first reads (and a
/// third writes the copy, if any).
pub(crate) const PIPELINE_MIN: u64 = 8 << 20;
/// Buffers in flight between the reading and the hashing thread (memory: this × [`CHUNK`];
/// twice that when a third thread writes a copy).
const PIPELINE_BUFFERS: usize = 4;

/// Hashes and checksums `chunk` (at file offset `pos`) minus the skipped ranges.
fn hash_chunk(
    hashers: &mut [Hasher],
    checksum: &mut PeChecksum,
    pages: &mut [PageHasher],
    skips: &[(u64, u64); 2],
    chunk: &[u8],
    pos: u64,
) {
    let chunk_end = pos + chunk.len() as u64;
    let mut cur = pos;
    for &(s, e) in skips {
        if e <= cur || s >= chunk_end {
            continue;
        }
        feed(hashers, checksum, pages, chunk, pos, cur, s.max(cur));
        cur = e.min(chunk_end);
    }
    feed(hashers, checksum, pages, chunk, pos, cur, chunk_end);
}

/// One chunk of the file in flight: `len` bytes read from file offset `pos` into
/// `buf[start..]`, where `start` aligns the data for direct I/O.
struct Chunk {
    pos: u64,
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Chunk {
    fn data(&self) -> &[u8] {
        self.buf
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

/// The multi-thread pass: this thread reads (and writes to a stream sink), a scoped thread
/// hashes, and with a file copy a third one writes it. A fixed pool of buffers circulates
/// between them, so memory stays constant.
fn pipelined<R: Read>(
    r: &mut R,
    end: u64,
    skips: &[(u64, u64); 2],
    hashers: &mut [Hasher],
    checksum: &mut PeChecksum,
    pages: &mut [PageHasher],
    out: &mut Out<'_, '_>,
) -> Result<()> {
    use std::sync::mpsc::sync_channel;
    let (copy, mut inline) = match out {
        Out::File(c) => (Some(&mut **c), Out::Nowhere),
        Out::Stream(w) => (None, Out::Stream(&mut **w)),
        Out::Nowhere => (None, Out::Nowhere),
    };
    let buffers = if copy.is_some() {
        2 * PIPELINE_BUFFERS
    } else {
        PIPELINE_BUFFERS
    };
    let (full_tx, full_rx) = sync_channel::<Chunk>(PIPELINE_BUFFERS);
    // Room for every buffer ever made: giving one back never blocks.
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(buffers);
    std::thread::scope(|scope| {
        let (to_writer, writer) = match copy {
            Some(c) => {
                let (hashed_tx, hashed_rx) = sync_channel::<Chunk>(PIPELINE_BUFFERS);
                let free_tx = free_tx.clone();
                if c.early_writeback && c.flusher.is_none() {
                    c.flusher = EarlyFlush::start(c.file, end);
                }
                let writer = scope.spawn(move || -> Result<()> {
                    for chunk in hashed_rx {
                        c.write_at(chunk.data(), chunk.pos)
                            .map_err(|e| Error::io("writing the output", e))?;
                        if let Some(f) = &mut c.flusher {
                            if f.written(chunk.pos + chunk.len as u64) {
                                c.flushes_asked += 1;
                            }
                        }
                        let _ = free_tx.send(chunk.buf);
                    }
                    // The flusher goes on with its last flush while the caller signs: the
                    // caller finishes it before its fsync (FileCopy::take_flusher).
                    Ok(())
                });
                (Some(hashed_tx), Some(writer))
            }
            None => (None, None),
        };
        scope.spawn(move || {
            for chunk in full_rx {
                hash_chunk(hashers, checksum, pages, skips, chunk.data(), chunk.pos);
                match &to_writer {
                    // The writer stops on an error: then the reader is stopped in turn.
                    Some(tx) => {
                        if tx.send(chunk).is_err() {
                            break;
                        }
                    }
                    // The reader may have stopped on an error: nobody takes the buffer back.
                    None => {
                        let _ = free_tx.send(chunk.buf);
                    }
                }
            }
        });
        let stopped = || Error::Usage("the hashing or writing thread stopped".into());
        let mut made = 0;
        let mut pos = 0u64;
        let read = (|| {
            while pos < end {
                let want = usize::try_from((end - pos).min(CHUNK as u64)).unwrap_or(CHUNK);
                let buf = if made < buffers {
                    made += 1;
                    vec![0u8; CHUNK + DIRECT_IO_ALIGN]
                } else {
                    free_rx.recv().map_err(|_| stopped())?
                };
                let start = buf.as_ptr().align_offset(DIRECT_IO_ALIGN);
                let mut chunk = Chunk {
                    pos,
                    buf,
                    start: if start <= DIRECT_IO_ALIGN { start } else { 0 },
                    len: want,
                };
                let range = chunk.start..chunk.start + want;
                let data = chunk.buf.get_mut(range).unwrap_or_default();
                r.read_exact(data)
                    .map_err(|e| Error::io(format!("reading the file at {pos:#x}"), e))?;
                inline.write(data, pos)?;
                full_tx.send(chunk).map_err(|_| stopped())?;
                pos += want as u64;
            }
            Ok(())
        })();
        drop(full_tx);
        // A writing error stops the other threads: report it rather than their stopping.
        let written = match writer {
            Some(w) => w
                .join()
                .map_err(|_| Error::Usage("the writing thread panicked".into()))?,
            None => Ok(()),
        };
        written.and(read)
    })
}

/// The early flushes of a large copy ([`FileCopy::with_early_writeback`]): a thread that
/// `fdatasync`s the copy when asked, one flush at a time. It outlives the pass, so that its
/// last flush runs while the key signs; whoever commits the copy must
/// [finish](Self::finish) it before the final fsync. Dropped unfinished (signing failed),
/// the thread ends after the flush it is running, if any.
#[derive(Debug)]
pub(crate) struct EarlyFlush {
    /// Asks for a flush; room for one request, so requests made during a flush merge.
    ask: std::sync::mpsc::SyncSender<()>,
    /// The flushing thread (`None` in unit tests of the plan).
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    /// Asking stops once the copy has reached this offset (the last stretch).
    until: u64,
    step: u64,
    /// The copy's offset at which the next flush is asked for.
    next: u64,
}

impl EarlyFlush {
    /// Starts the flushing thread for a copy of `end` bytes to `file` (through a handle of
    /// its own on the same open file). `None` if the handle or the thread cannot be had:
    /// the final fsync then does all the work, as without early flushes.
    pub(crate) fn start(file: &File, end: u64) -> Option<Self> {
        let file = file.try_clone().ok()?;
        let (ask, asked) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("codeseal-flush".into())
            .spawn(move || {
                for () in asked {
                    let _flush = crate::timing::span(crate::timing::Phase::EarlyFlush);
                    file.sync_data()?;
                }
                Ok(())
            })
            .ok()?;
        let (step, until) = Self::plan(end);
        Some(Self {
            ask,
            thread: Some(thread),
            until,
            step,
            next: step,
        })
    }

    /// Waits for the flush running, if any, stops the thread and reports a failed flush. A
    /// failure must not be left to the caller's fsync: Linux reports a write-back error
    /// once per open file (the two handles share one), so that fsync would not see it.
    pub(crate) fn finish(self) -> Result<()> {
        let Self { ask, thread, .. } = self;
        drop(ask);
        match thread.map(|t| t.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(Error::io("flushing the output to the disk", e)),
            Some(Err(_)) => Err(Error::Usage("the flushing thread panicked".into())),
        }
    }

    /// The distance between two flushes of a copy of `end` bytes, and the offset after
    /// which none is asked for.
    fn plan(end: u64) -> (u64, u64) {
        let step = FLUSH_STEP_MIN.max(end / FLUSHES_MAX);
        (step, end.saturating_sub(step))
    }

    /// The copy is written up to `offset`: asks for a flush if a step was crossed, and
    /// says whether it did.
    pub(crate) fn written(&mut self, offset: u64) -> bool {
        if offset < self.next || offset > self.until {
            return false;
        }
        // Full: a flush is already waiting to start and will cover this one too.
        let _ = self.ask.try_send(());
        self.next = offset + self.step;
        true
    }
}

/// Feeds `chunk[from - base .. to - base]` (absolute offsets) to the hashers and checksum.
fn feed(
    hashers: &mut [Hasher],
    checksum: &mut PeChecksum,
    pages: &mut [PageHasher],
    chunk: &[u8],
    base: u64,
    from: u64,
    to: u64,
) {
    if to <= from {
        return;
    }
    let (a, b) = ((from - base) as usize, (to - base) as usize);
    if let Some(part) = chunk.get(a..b) {
        for h in hashers.iter_mut() {
            h.update(part);
        }
        checksum.update(from, part);
        for p in pages.iter_mut() {
            p.update(from, part);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// Early flushes: at most [`FLUSHES_MAX`] per copy, at least [`FLUSH_STEP_MIN`] apart,
    /// none in the last step (the caller's fsync covers it), whatever the chunking.
    #[test]
    fn early_flushes_are_bounded() {
        for (end, chunk, want) in [
            (9u64 << 20, CHUNK as u64, 1u64),
            (16 << 20, CHUNK as u64, 3),
            (16 << 20, 3 << 20, 2),
            (256 << 20, CHUNK as u64, 15),
            (1 << 30, CHUNK as u64, 15),
            (40 << 30, CHUNK as u64, 15),
            (PIPELINE_MIN, CHUNK as u64, 1),
            (3 << 20, CHUNK as u64, 0),
        ] {
            let (step, until) = EarlyFlush::plan(end);
            let (ask, asked) = std::sync::mpsc::sync_channel(1);
            let mut f = EarlyFlush {
                ask,
                thread: None,
                until,
                step,
                next: step,
            };
            let (mut n, mut last) = (0u64, 0u64);
            let mut pos = 0;
            while pos < end {
                pos = (pos + chunk).min(end);
                if f.written(pos) {
                    assert!(
                        pos - last >= FLUSH_STEP_MIN && pos + step <= end,
                        "{end} {pos}"
                    );
                    (n, last) = (n + 1, pos);
                    let _ = asked.try_recv();
                }
            }
            assert_eq!(n, want, "copy of {end} bytes in chunks of {chunk}");
            assert!(n <= FLUSHES_MAX);
        }
    }

    #[test]
    fn pipelined_pass_equals_the_definition() {
        use std::io::Cursor;
        let mut file = crate::pe::tiny_pe();
        file.extend(pseudo_random(PIPELINE_MIN as usize + 3 * CHUNK + 12345, 9));
        let pe = PeInfo::read(&mut Cursor::new(&file)).expect("pe");
        let (c, s) = (pe.checksum_offset as usize, pe.security_dir_offset as usize);
        let mut want = Vec::new();
        want.extend_from_slice(&file[..c]);
        want.extend_from_slice(&file[c + 4..s]);
        want.extend_from_slice(&file[s + 8..]);
        want.resize(want.len() + (8 - file.len() % 8) % 8, 0);
        let mut out = Vec::new();
        let pass = stream_image(
            &mut Cursor::new(&file),
            &pe,
            &[DigestAlgorithm::Sha256, DigestAlgorithm::Sha1],
            Some(&mut out),
        )
        .expect("pass");
        assert_eq!(
            pass.digest(DigestAlgorithm::Sha256).expect("d"),
            DigestAlgorithm::Sha256.digest(&want).as_slice()
        );
        assert_eq!(
            pass.digest(DigestAlgorithm::Sha1).expect("d"),
            DigestAlgorithm::Sha1.digest(&want).as_slice()
        );
        assert_eq!(&out[..file.len()], file.as_slice(), "the copy differs");
        let mut z = file.clone();
        z[c..c + 4].fill(0);
        z[s..s + 8].fill(0);
        let mut cks = PeChecksum::default();
        cks.update(0, &z);
        let mut got = pass.checksum.clone();
        got.update(s as u64, &[0; 8]);
        assert_eq!(got.finish(file.len() as u64), cks.finish(file.len() as u64));
    }

    /// The copy to a file, through the page cache or (with a handle that refuses every
    /// write) falling back to it, is the image plus its padding, on both sides of the
    /// threshold of the multi-thread pass.
    #[test]
    fn file_copy_is_the_image_whatever_the_handle() {
        use std::io::Cursor;
        for extra in [3 * CHUNK + 4097, PIPELINE_MIN as usize + 3 * CHUNK + 12345] {
            let mut file = crate::pe::tiny_pe();
            file.extend(pseudo_random(extra, 10));
            let pe = PeInfo::read(&mut Cursor::new(&file)).expect("pe");
            let dir = tempfile::tempdir().expect("dir");
            for refusing in [false, true] {
                let path = dir.path().join(format!("copy-{refusing}"));
                let out = File::create_new(&path).expect("create");
                // A read-only handle: every "direct" write fails, the copy must not.
                let direct = refusing.then(|| File::open(&path).expect("reopen"));
                let mut copy = FileCopy::new(&out, direct);
                let pass = stream_image_to_file(
                    &mut Cursor::new(&file),
                    &pe,
                    &[DigestAlgorithm::Sha256],
                    &mut copy,
                    &mut [],
                )
                .expect("pass");
                assert_eq!(copy.direct_bytes(), 0);
                let plain = stream_image(
                    &mut Cursor::new(&file),
                    &pe,
                    &[DigestAlgorithm::Sha256],
                    None,
                )
                .expect("plain pass");
                assert_eq!(pass.digests, plain.digests);
                let mut want = file.clone();
                want.resize(file.len() + (8 - file.len() % 8) % 8, 0);
                assert!(std::fs::read(&path).expect("read") == want, "copy differs");
            }
        }
    }
}
