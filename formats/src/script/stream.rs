//! Scripts read from a file (`Read + Seek`) in memory independent of the file's size: the
//! signature block is found from the end of the file ([`ScriptLayout::read`]), then one pass
//! over the text checks it decodes, feeds the digest input to the hashers and copies the
//! bytes that stay to the output ([`ScriptLayout::stream`]); the new block and the bytes
//! after it follow ([`ScriptLayout::write_rest`]).
use std::{
    io::{Read, Seek, SeekFrom, Write},
    ops::Range,
};

use super::{
    block_bytes, block_range,
    decode::Decoder,
    locate::{self, Paged, Units},
    Encoding, Result, ScriptError, ScriptKind, SignatureBlock,
};

use crate::digest::Sink;

/// Bytes read at a time by the streaming pass (one buffer per pass).
const CHUNK: usize = 1 << 20;

/// A sink that drops its input (a pass that only checks the text).
#[derive(Clone, Copy)]
struct NoSink;

impl Sink for NoSink {
    fn feed(&mut self, _: &[u8]) {}
}

/// The byte order mark a file starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bom {
    None,
    Utf8,
    Utf16Le,
}

impl Bom {
    fn len(self) -> u64 {
        match self {
            Bom::None => 0,
            Bom::Utf8 => 3,
            Bom::Utf16Le => 2,
        }
    }

    fn width(self) -> u64 {
        if self == Bom::Utf16Le {
            2
        } else {
            1
        }
    }
}

fn io(context: &'static str) -> impl Fn(std::io::Error) -> ScriptError {
    move |e| ScriptError::io(context, &e)
}

/// A script file's signature block and the parts of the file around it, found from the end
/// of the file. The text itself is read by [`ScriptLayout::stream`] (or
/// [`ScriptLayout::check_text`]), which also tells its encoding.
///
/// The file without its block is `head` then `tail` (see [`ScriptLayout::head`]); a new
/// block goes between the two.
#[derive(Clone, Debug)]
pub struct ScriptLayout {
    kind: ScriptKind,
    len: u64,
    bom: Bom,
    block: Option<SignatureBlock>,
    head_end: u64,
    tail_start: u64,
    insertable: bool,
    /// Bytes read at a time by the passes.
    chunk: usize,
}

impl ScriptLayout {
    /// Reads the layout of the `kind` script in `r`: its byte order mark and its signature
    /// block, with the same rules and errors as [`super::Script::parse`], reading only the
    /// end of the file (the lines the search looks at) and the first three bytes.
    ///
    /// Whether the text decodes is checked by the pass over it ([`ScriptLayout::stream`] or
    /// [`ScriptLayout::check_text`]); except that when the block is damaged, the text is
    /// checked first and a text error wins, as with [`super::Script::parse`].
    pub fn read<R: Read + Seek>(kind: ScriptKind, r: &mut R) -> Result<Self> {
        Self::read_tuned(kind, r, locate::PAGE, CHUNK)
    }

    /// [`ScriptLayout::read`] with tiny pages and reads, for the fuzz target that cuts the
    /// text everywhere (feature `fuzzing`, never in a release build).
    #[cfg(feature = "fuzzing")]
    #[doc(hidden)]
    pub fn read_tuned_for_fuzzing<R: Read + Seek>(
        kind: ScriptKind,
        r: &mut R,
        page: u64,
        chunk: usize,
    ) -> Result<Self> {
        Self::read_tuned(kind, r, page, chunk)
    }

    /// [`ScriptLayout::read`] with pages of `page` bytes for the block search and reads of
    /// `chunk` bytes for the passes (tests use tiny ones, to cut the text everywhere).
    pub(crate) fn read_tuned<R: Read + Seek>(
        kind: ScriptKind,
        r: &mut R,
        page: u64,
        chunk: usize,
    ) -> Result<Self> {
        // UTF-16 pieces stay whole units.
        let chunk = (chunk.clamp(1, CHUNK) + 1) & !1;
        let len = r.seek(SeekFrom::End(0)).map_err(io("reading the script"))?;
        let mut first = [0u8; 3];
        let n = usize::try_from(len.min(3)).unwrap_or(0);
        let first = first.get_mut(..n).unwrap_or_default();
        r.seek(SeekFrom::Start(0))
            .and_then(|_| r.read_exact(first))
            .map_err(io("reading the script"))?;
        let bom = if first.starts_with(&[0xef, 0xbb, 0xbf]) {
            Bom::Utf8
        } else if first.starts_with(&[0xff, 0xfe]) {
            if len % 2 != 0 {
                return Err(ScriptError::OddUtf16Length);
            }
            Bom::Utf16Le
        } else if first.starts_with(&[0xfe, 0xff]) {
            return Err(ScriptError::Utf16BigEndian);
        } else {
            Bom::None
        };
        let body = len - bom.len();
        let found = {
            let paged = Paged::new(r, bom.len(), body, page);
            let mut u = Units::new(paged, bom.len(), body, bom.width());
            let found = locate::locate(kind, &mut u);
            if let Some(e) = u.w.err.take() {
                return Err(ScriptError::io("reading the script", &e));
            }
            found
        };
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                // A text error comes first, as when the whole file is checked before the
                // block is looked for. BOM-less text always decodes (as Windows-1252 at
                // worst).
                if bom != Bom::None {
                    pass(
                        kind,
                        bom,
                        [0..len, len..len],
                        chunk,
                        r,
                        None::<&mut NoSink>,
                        None,
                    )?;
                }
                return Err(e);
            }
        };
        let (block, head_end, tail_start, insertable) = match (found.block, found.region_end) {
            (Some((range, pkcs7)), _) => {
                let (s, e) = (range.start, range.end);
                let block = SignatureBlock {
                    range: block_range(range)?,
                    pkcs7,
                };
                (Some(block), s, e, true)
            }
            (None, Some(e)) => (None, e, e, true),
            (None, None) => (None, len, len, false),
        };
        Ok(ScriptLayout {
            kind,
            len,
            bom,
            block,
            head_end,
            tail_start,
            insertable,
            chunk,
        })
    }

    /// The kind of script.
    pub fn kind(&self) -> ScriptKind {
        self.kind
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The signature block, if the file has one.
    pub fn signature(&self) -> Option<&SignatureBlock> {
        self.block.as_ref()
    }

    /// The bytes before where a block is or goes (from the start of the file, byte order
    /// mark included).
    pub fn head(&self) -> Range<u64> {
        0..self.head_end
    }

    /// The bytes after the block (for `.wsf`, from the last `</job>`; for the other kinds
    /// empty, at the end of the file).
    pub fn tail(&self) -> Range<u64> {
        self.tail_start..self.len
    }

    /// Whether a block can be written (false only for a `.wsf` without `</job>`).
    pub fn can_insert(&self) -> bool {
        self.insertable
    }

    fn parts(&self) -> [Range<u64>; 2] {
        [self.head(), self.tail()]
    }

    /// Reads the text outside the block once: checks it decodes, feeds the digest input
    /// (see the module documentation) to `sink`, and copies the head (byte for byte) to
    /// `out` if given. Returns the text's encoding.
    ///
    /// The sink is `Clone` because of BOM-less text that may be UTF-8 (PowerShell, MOF,
    /// WSF): the pass hashes it as UTF-8 and keeps a copy of the sink from just before the
    /// first non-ASCII byte; if the text turns out not to be UTF-8, hashing restarts from
    /// that copy as Windows-1252 (the only case that reads part of the text twice).
    pub fn stream<R: Read + Seek, S: Sink + Clone>(
        &self,
        r: &mut R,
        sink: &mut S,
        out: Option<&mut dyn Write>,
    ) -> Result<Encoding> {
        let parts = self.parts();
        pass(self.kind, self.bom, parts, self.chunk, r, Some(sink), out)
    }

    /// Checks the text outside the block decodes and returns its encoding (one pass, no
    /// digest).
    pub fn check_text<R: Read + Seek>(&self, r: &mut R) -> Result<Encoding> {
        pass(
            self.kind,
            self.bom,
            self.parts(),
            self.chunk,
            r,
            None::<&mut NoSink>,
            None,
        )
    }

    /// Writes what follows the head in the output: the block holding `pkcs7` (none when
    /// `None`, to remove a signature), in the file's encoding, then the tail copied from
    /// `r`. Returns the number of bytes written.
    pub fn write_rest<R: Read + Seek>(
        &self,
        r: &mut R,
        out: &mut dyn Write,
        pkcs7: Option<&[u8]>,
    ) -> Result<u64> {
        let mut n = 0;
        if let Some(der) = pkcs7 {
            if !self.insertable {
                return Err(ScriptError::NoJobElement);
            }
            let block = block_bytes(self.kind, self.bom.width() as usize, der)?;
            out.write_all(&block).map_err(io("writing the script"))?;
            n += block.len() as u64;
        }
        n += copy_range(r, self.tail(), out)?;
        Ok(n)
    }

    /// Writes the whole file signed with `pkcs7` (or without a block when `None`) to `out`,
    /// with no digest: the head, the block, the tail. Returns the number of bytes written.
    pub fn write_signed<R: Read + Seek>(
        &self,
        r: &mut R,
        out: &mut dyn Write,
        pkcs7: Option<&[u8]>,
    ) -> Result<u64> {
        if pkcs7.is_some() && !self.insertable {
            return Err(ScriptError::NoJobElement);
        }
        let n = copy_range(r, self.head(), out)?;
        Ok(n + self.write_rest(r, out, pkcs7)?)
    }
}

/// Copies bytes `range` of `r` to `out`.
fn copy_range<R: Read + Seek>(r: &mut R, range: Range<u64>, out: &mut dyn Write) -> Result<u64> {
    if range.start >= range.end {
        return Ok(0);
    }
    r.seek(SeekFrom::Start(range.start))
        .map_err(io("reading the script"))?;
    let n = range.end - range.start;
    let copied = std::io::copy(&mut r.take(n), out).map_err(io("copying the script"))?;
    if copied != n {
        return Err(ScriptError::io(
            "reading the script",
            &std::io::ErrorKind::UnexpectedEof.into(),
        ));
    }
    Ok(n)
}

/// The decoding side of a pass: the decoder, the sink, and for BOM-less text that may be
/// UTF-8 the point where UTF-8 and Windows-1252 part ways.
struct TextPass<'s, S> {
    dec: Decoder,
    sink: Option<&'s mut S>,
    /// Guessing: UTF-8 if the whole text is, else Windows-1252.
    guess: bool,
    /// The first non-ASCII byte's offset, the sink just before it, the units before it.
    fork: Option<(u64, Option<S>, u64)>,
    /// The text is not UTF-8 (while guessing): decoding stopped at the first bad byte.
    not_utf8: bool,
}

impl<S: Sink + Clone> TextPass<'_, S> {
    fn feed(&mut self, text: &[u8], at: u64) -> Result<()> {
        if self.not_utf8 || text.is_empty() {
            return Ok(());
        }
        let TextPass {
            dec,
            sink,
            guess,
            fork,
            not_utf8,
        } = self;
        let mut text = text;
        let mut at = at;
        if *guess && fork.is_none() {
            let first = if encoding_rs::mem::is_ascii(text) {
                None
            } else {
                text.iter().position(|&b| b >= 0x80)
            };
            if let Some(k) = first {
                let (ascii, rest) = text.split_at(k);
                let mut emit = |c: &[u8]| {
                    if let Some(s) = sink.as_deref_mut() {
                        s.feed(c);
                    }
                };
                dec.feed(ascii, at, &mut emit)?;
                dec.flush(&mut emit);
                *fork = Some((at + k as u64, sink.as_deref().cloned(), dec.units()));
                text = rest;
                at += k as u64;
            }
        }
        let mut emit = |c: &[u8]| {
            if let Some(s) = sink.as_deref_mut() {
                s.feed(c);
            }
        };
        match dec.feed(text, at, &mut emit) {
            Err(ScriptError::InvalidUtf8 { .. }) if *guess => {
                *not_utf8 = true;
                Ok(())
            }
            r => r,
        }
    }

    fn end_part(&mut self) -> Result<()> {
        if self.not_utf8 {
            return Ok(());
        }
        match self.dec.end_part() {
            Err(ScriptError::InvalidUtf8 { .. }) if self.guess => {
                self.not_utf8 = true;
                Ok(())
            }
            r => r,
        }
    }
}

/// Reads `parts` of `r` in order: decodes their text (from after the byte order mark when
/// the kind does not hash it) into `sink`, and copies the first part, as it is, to `out`.
fn pass<R: Read + Seek, S: Sink + Clone>(
    kind: ScriptKind,
    bom: Bom,
    parts: [Range<u64>; 2],
    chunk: usize,
    r: &mut R,
    sink: Option<&mut S>,
    mut out: Option<&mut dyn Write>,
) -> Result<Encoding> {
    let hash_from = if kind.hashes_bom() { 0 } else { bom.len() };
    let guess = bom == Bom::None && kind.detects_utf8();
    let encoding = match bom {
        Bom::Utf8 => Encoding::Utf8 { bom: true },
        Bom::Utf16Le => Encoding::Utf16Le,
        Bom::None if guess => Encoding::Utf8 { bom: false },
        Bom::None => Encoding::Windows1252,
    };
    let want = parts
        .iter()
        .map(|p| p.end.saturating_sub(p.start))
        .max()
        .unwrap_or(0);
    let mut buf = vec![0u8; usize::try_from(want).unwrap_or(chunk).min(chunk)];
    let mut t = TextPass {
        dec: Decoder::new(encoding),
        sink,
        guess,
        fork: None,
        not_utf8: false,
    };
    for (i, part) in parts.iter().enumerate() {
        let copy = if i == 0 { out.take() } else { None };
        read_range(r, part.clone(), &mut buf, copy, |chunk, at| {
            let skip = usize::try_from(hash_from.saturating_sub(at))
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            t.feed(chunk.get(skip..).unwrap_or_default(), at + skip as u64)
        })?;
        t.end_part()?;
    }
    let TextPass {
        mut dec,
        sink,
        fork,
        not_utf8,
        ..
    } = t;
    let encoding = if not_utf8 {
        Encoding::Windows1252
    } else {
        encoding
    };
    let Some(sink) = sink else {
        return Ok(encoding);
    };
    if not_utf8 {
        // Hash again from the first non-ASCII byte, as Windows-1252.
        let Some((from, Some(saved), units)) = fork else {
            return Err(ScriptError::InvalidUtf8 { offset: 0 });
        };
        *sink = saved;
        dec = Decoder::new(Encoding::Windows1252);
        dec.set_units(units);
        for part in parts {
            let start = part.start.max(from);
            if start < part.end {
                read_range(r, start..part.end, &mut buf, None, |chunk, at| {
                    dec.feed(chunk, at, &mut |c| sink.feed(c))
                })?;
            }
        }
    }
    dec.flush(&mut |c| sink.feed(c));
    if kind.hashes_length() {
        let n = u32::try_from(dec.units()).map_err(|_| ScriptError::TooLarge)?;
        sink.feed(&n.to_le_bytes());
    }
    Ok(encoding)
}

/// Reads bytes `range` of `r` a buffer at a time, copying each piece to `copy` (if given)
/// and handing it with its offset to `f`.
fn read_range<R: Read + Seek>(
    r: &mut R,
    range: Range<u64>,
    buf: &mut [u8],
    mut copy: Option<&mut dyn Write>,
    mut f: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<()> {
    if range.start >= range.end {
        return Ok(());
    }
    r.seek(SeekFrom::Start(range.start))
        .map_err(io("reading the script"))?;
    let mut at = range.start;
    while at < range.end {
        let n = usize::try_from(range.end - at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let Some(chunk) = buf.get_mut(..n).filter(|c| !c.is_empty()) else {
            break;
        };
        r.read_exact(chunk).map_err(io("reading the script"))?;
        if let Some(w) = copy.as_deref_mut() {
            w.write_all(chunk).map_err(io("writing the script"))?;
        }
        f(chunk, at)?;
        at += n as u64;
    }
    Ok(())
}
