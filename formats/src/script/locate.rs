//! Finding the signature block from the end of a script. The search reads the text through a
//! [`Window`]: the whole file when it is in memory, or a few pages of a file read on demand,
//! so that finding the block of a file on disk reads only the lines it looks at (the last
//! ones, unless the file is hostile) and holds at most two pages and the block's base64.
use std::{
    io::{Read, Seek, SeekFrom},
    ops::Range,
};

use super::{CommentMarkers, Result, ScriptError, ScriptKind, MAX_BLOCK_BASE64};

/// Random access to the text after the byte order mark, one slice at a time.
pub(super) trait Window {
    /// A slice of the text holding byte `at`, with the offset of its first byte; `None` past
    /// the end of the text or when reading failed.
    fn window(&mut self, at: u64) -> Option<(u64, &[u8])>;
}

impl Window for &[u8] {
    fn window(&mut self, at: u64) -> Option<(u64, &[u8])> {
        (at < self.len() as u64).then_some((0, *self))
    }
}

/// The default page size of [`Paged`].
pub(super) const PAGE: u64 = 64 << 10;

/// A [`Window`] over a file: pages of `page` bytes (even, so that a UTF-16 unit never
/// straddles two), the last two kept. A read error is kept in `err` and ends the search.
pub(super) struct Paged<'r, R> {
    r: &'r mut R,
    base: u64,
    len: u64,
    page: u64,
    slots: [(u64, Vec<u8>); 2],
    next: usize,
    pub(super) err: Option<std::io::Error>,
}

impl<'r, R: Read + Seek> Paged<'r, R> {
    /// The `len` bytes of `r` from file offset `base`.
    pub(super) fn new(r: &'r mut R, base: u64, len: u64, page: u64) -> Self {
        let page = (page.max(2) + 1) & !1;
        Paged {
            r,
            base,
            len,
            page,
            slots: [(u64::MAX, Vec::new()), (u64::MAX, Vec::new())],
            next: 0,
            err: None,
        }
    }

    fn load(&mut self, slot: usize, start: u64) -> std::io::Result<()> {
        let n = usize::try_from(self.page.min(self.len - start)).unwrap_or(0);
        let base = self.base;
        let r = &mut *self.r;
        let Some((s, buf)) = self.slots.get_mut(slot) else {
            return Ok(());
        };
        *s = u64::MAX;
        buf.resize(n, 0);
        r.seek(SeekFrom::Start(base + start))?;
        r.read_exact(buf)?;
        *s = start;
        Ok(())
    }
}

impl<R: Read + Seek> Window for Paged<'_, R> {
    fn window(&mut self, at: u64) -> Option<(u64, &[u8])> {
        if at >= self.len || self.err.is_some() {
            return None;
        }
        let start = at - at % self.page;
        let slot = match self.slots.iter().position(|(s, _)| *s == start) {
            Some(i) => i,
            None => {
                let i = self.next;
                if let Err(e) = self.load(i, start) {
                    self.err = Some(e);
                    return None;
                }
                i
            }
        };
        self.next = 1 - slot;
        self.slots.get(slot).map(|(s, b)| (*s, b.as_slice()))
    }
}

const CR: u16 = b'\r' as u16;
const LF: u16 = b'\n' as u16;

/// The text after the byte order mark as ASCII-comparable code units (one byte each, or
/// UTF-16LE units), indexed from the end of the byte order mark.
pub(super) struct Units<W> {
    pub(super) w: W,
    base: u64,
    width: u64,
    len: u64,
}

impl<W: Window> Units<W> {
    /// `len_bytes` bytes of text from file offset `base`, `width` bytes per unit.
    pub(super) fn new(w: W, base: u64, len_bytes: u64, width: u64) -> Self {
        Units {
            w,
            base,
            width,
            len: len_bytes / width,
        }
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    fn get(&mut self, i: u64) -> Option<u16> {
        if i >= self.len {
            return None;
        }
        let at = i * self.width;
        let (s, win) = self.w.window(at)?;
        let off = usize::try_from(at - s).ok()?;
        if self.width == 1 {
            win.get(off).map(|&b| u16::from(b))
        } else {
            let lo = *win.get(off)?;
            let hi = *win.get(off + 1)?;
            Some(u16::from_le_bytes([lo, hi]))
        }
    }

    /// Byte offset in the file of unit `i`.
    pub(super) fn byte(&self, i: u64) -> u64 {
        self.base + i * self.width
    }

    fn eq_ascii(&mut self, r: Range<u64>, s: &str) -> bool {
        r.end - r.start == s.len() as u64 && self.ascii_at(r.start, s)
    }

    fn ascii_at(&mut self, start: u64, s: &str) -> bool {
        (0u64..)
            .zip(s.bytes())
            .all(|(k, b)| self.get(start + k) == Some(u16::from(b)))
    }

    fn starts_with_ascii(&mut self, r: &Range<u64>, s: &str) -> bool {
        r.end - r.start >= s.len() as u64 && self.ascii_at(r.start, s)
    }

    fn ends_with_ascii(&mut self, r: &Range<u64>, s: &str) -> bool {
        r.end - r.start >= s.len() as u64 && self.ascii_at(r.end - s.len() as u64, s)
    }

    /// The first unit in `r` that fails `pred` (or `r.end`), a window at a time.
    fn run_while(&mut self, r: Range<u64>, pred: impl Fn(u16) -> bool) -> u64 {
        let width = self.width;
        let mut i = r.start;
        while i < r.end {
            let at = i * width;
            let Some((s, win)) = self.w.window(at) else {
                return i;
            };
            let from = usize::try_from(at - s).unwrap_or(usize::MAX);
            let Some(avail) = win.get(from..) else {
                return i;
            };
            let want = usize::try_from((r.end - i) * width).unwrap_or(usize::MAX);
            let piece = avail.get(..want).unwrap_or(avail);
            let w = usize::try_from(width).unwrap_or(1);
            let mut n = 0u64;
            for c in piece.chunks_exact(w) {
                let u = match c {
                    [b] => u16::from(*b),
                    [lo, hi] => u16::from_le_bytes([*lo, *hi]),
                    _ => return i + n,
                };
                if !pred(u) {
                    return i + n;
                }
                n += 1;
            }
            if n == 0 {
                return i;
            }
            i += n;
        }
        r.end
    }

    /// Appends the units of `r` (ASCII, as checked by the caller) to `out`.
    fn collect_ascii(&mut self, r: Range<u64>, out: &mut Vec<u8>) {
        let width = self.width;
        let mut i = r.start;
        while i < r.end {
            let at = i * width;
            let Some((s, win)) = self.w.window(at) else {
                return;
            };
            let from = usize::try_from(at - s).unwrap_or(usize::MAX);
            let Some(avail) = win.get(from..) else {
                return;
            };
            let want = usize::try_from((r.end - i) * width).unwrap_or(usize::MAX);
            let piece = avail.get(..want).unwrap_or(avail);
            if piece.is_empty() {
                return;
            }
            if width == 1 {
                out.extend_from_slice(piece);
            } else {
                out.extend(piece.chunks_exact(2).filter_map(|c| c.first().copied()));
            }
            i += piece.len() as u64 / width;
        }
    }

    /// The line ending just before unit `end` (which is a line break or the end of the
    /// region): its content range, without a trailing CR.
    pub(super) fn line_before(&mut self, end: u64) -> Range<u64> {
        let start = self.rfind_unit(LF, end).map_or(0, |i| i + 1);
        let mut stop = end;
        if stop > start && self.get(stop - 1) == Some(CR) {
            stop -= 1;
        }
        start..stop
    }

    /// Index of the last unit `c` (ASCII) before unit `end`, a window at a time (memchr: a
    /// scan costs a few comparisons per 32 bytes, not per byte).
    pub(super) fn rfind_unit(&mut self, c: u16, end: u64) -> Option<u64> {
        let width = self.width;
        let mut end_b = end.min(self.len) * width;
        while end_b > 0 {
            let (s, win) = self.w.window(end_b - 1)?;
            let hay = win.get(..usize::try_from(end_b - s).ok()?)?;
            // Windows start at even offsets, so UTF-16 units are the pairs at even offsets.
            let found = if width == 1 {
                memchr::memrchr(u8::try_from(c).ok()?, hay)
            } else {
                memchr::memmem::rfind_iter(hay, &c.to_le_bytes()).find(|p| p % 2 == 0)
            };
            if let Some(p) = found {
                return Some((s + p as u64) / width);
            }
            end_b = s;
        }
        None
    }

    /// Index of the last occurrence of `needle` (ASCII, not empty) ending at or before
    /// unit `end`.
    pub(super) fn rfind_ascii(&mut self, needle: &str, end: u64) -> Option<u64> {
        let last = u16::from(*needle.as_bytes().last()?);
        let n = needle.len() as u64;
        let mut e = end;
        while let Some(j) = self.rfind_unit(last, e) {
            if j + 1 >= n && self.ascii_at(j + 1 - n, needle) {
                return Some(j + 1 - n);
            }
            e = j;
        }
        None
    }
}

/// Which bytes are base64 characters (a table: one load per character, no comparisons).
#[allow(clippy::indexing_slicing)] // i < 256 = t.len(), in a const block (no `get_mut`)
const BASE64_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
        i += 1;
    }
    t
};

fn is_base64_char(u: u16) -> bool {
    BASE64_CHARS.get(usize::from(u)).copied().unwrap_or(false)
}

/// What a line of the block area is.
enum LineKind {
    Begin,
    End,
    /// A base64 line; the range of the base64 characters.
    Data(Range<u64>),
    Other,
}

fn classify<W: Window>(u: &mut Units<W>, m: &CommentMarkers, line: &Range<u64>) -> LineKind {
    if u.eq_ascii(line.clone(), m.begin) {
        return LineKind::Begin;
    }
    if u.eq_ascii(line.clone(), m.end) {
        return LineKind::End;
    }
    let (p, s) = (m.line_prefix.len() as u64, m.line_suffix.len() as u64);
    if line.end - line.start > p + s
        && u.starts_with_ascii(line, m.line_prefix)
        && u.ends_with_ascii(line, m.line_suffix)
    {
        let data = line.start + p..line.end - s;
        if u.run_while(data.clone(), is_base64_char) == data.end {
            return LineKind::Data(data);
        }
    }
    LineKind::Other
}

/// Whether a last line could be a signature line or end marker cut short.
fn is_partial_tail<W: Window>(u: &mut Units<W>, m: &CommentMarkers, line: &Range<u64>) -> bool {
    let n = line.end - line.start;
    let prefix_of = |s: &'static str| usize::try_from(n).ok().and_then(|n| s.get(..n));
    if let Some(p) = prefix_of(m.end) {
        if u.eq_ascii(line.clone(), p) {
            return true;
        }
    }
    let p = m.line_prefix.len() as u64;
    if n <= p {
        return prefix_of(m.line_prefix).is_some_and(|pre| u.eq_ascii(line.clone(), pre));
    }
    if !u.starts_with_ascii(line, m.line_prefix) {
        return false;
    }
    let i = u.run_while(line.start + p..line.end, is_base64_char);
    let rest = i..line.end;
    usize::try_from(rest.end - rest.start)
        .ok()
        .and_then(|k| m.line_suffix.get(..k))
        .is_some_and(|suf| u.eq_ascii(rest, suf))
}

fn is_blank(c: u16) -> bool {
    c == CR || c == LF || c == u16::from(b' ') || c == u16::from(b'\t')
}

/// Finds the signature block ending at unit `region_end` (the end of the text, or the last
/// `</job>` of a `.wsf`). Returns its unit range and the base64 payload.
///
/// Only a block with an end marker is collected, up to [`MAX_BLOCK_BASE64`] characters;
/// past that the walk goes on without collecting, so that a damaged block is still the
/// same error, and a whole one is [`ScriptError::BlockTooLarge`].
fn find_block_units<W: Window>(
    kind: ScriptKind,
    u: &mut Units<W>,
    region_end: u64,
) -> Result<Option<(Range<u64>, Vec<u8>)>> {
    let m = kind.markers();
    // What may follow the end marker: for .wsf one line break, else any blank space.
    let mut end = region_end;
    if kind == ScriptKind::Wsf {
        if end > 0 && u.get(end - 1) == Some(LF) {
            end -= 1;
            if end > 0 && u.get(end - 1) == Some(CR) {
                end -= 1;
            }
        }
    } else {
        while end > 0 && u.get(end - 1).is_some_and(is_blank) {
            end -= 1;
        }
    }
    if end == 0 {
        return Ok(None);
    }
    let last = u.line_before(end);
    let footer_present = matches!(classify(u, &m, &last), LineKind::End);

    // Walk back over base64 lines to a begin marker. Without an end marker this only tells
    // a truncated block (a begin marker, then signature lines, the last maybe cut short)
    // from text. The base64 is gathered line by line from the end: each line reversed, the
    // whole reversed once at the end.
    let mut rev: Vec<u8> = Vec::new();
    let mut any_data = false;
    let mut too_large = false;
    let mut line = if footer_present {
        if last.start == 0 {
            return Err(ScriptError::MissingBegin);
        }
        u.line_before(last.start - 1)
    } else if is_partial_tail(u, &m, &last) {
        if last.start == 0 {
            return Ok(None);
        }
        u.line_before(last.start - 1)
    } else {
        last.clone()
    };
    let begin = loop {
        match classify(u, &m, &line) {
            LineKind::Begin => break line,
            LineKind::Data(r) => {
                any_data = true;
                let n = r.end - r.start;
                if footer_present && !too_large {
                    if rev.len() as u64 + n > MAX_BLOCK_BASE64 as u64 {
                        too_large = true;
                        rev = Vec::new();
                    } else {
                        let at = rev.len();
                        u.collect_ascii(r, &mut rev);
                        if let Some(seg) = rev.get_mut(at..) {
                            seg.reverse();
                        }
                    }
                }
            }
            LineKind::End | LineKind::Other if footer_present => {
                return Err(ScriptError::InvalidBlockLine {
                    offset: to_usize(u.byte(line.start)),
                });
            }
            LineKind::End | LineKind::Other => return Ok(None),
        }
        if line.start == 0 {
            return if footer_present {
                Err(ScriptError::MissingBegin)
            } else {
                Ok(None)
            };
        }
        line = u.line_before(line.start - 1);
    };
    if !footer_present {
        return Err(ScriptError::TruncatedBlock {
            begin: to_usize(u.byte(begin.start)),
        });
    }
    if !any_data {
        return Err(ScriptError::EmptyBlock);
    }
    if too_large {
        return Err(ScriptError::BlockTooLarge {
            limit: MAX_BLOCK_BASE64,
        });
    }
    // The block starts at the line break before the begin marker.
    let mut start = begin.start;
    if start > 0 && u.get(start - 1) == Some(LF) {
        start -= 1;
        if start > 0 && u.get(start - 1) == Some(CR) {
            start -= 1;
        }
    }
    rev.reverse();
    Ok(Some((start..region_end, rev)))
}

/// A byte offset for an error (offsets past `usize::MAX` exist only on 32-bit targets).
pub(super) fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Where the block is and where a new one goes, as byte offsets in the file.
#[derive(Debug)]
pub(super) struct Found {
    /// The block's bytes and its decoded PKCS#7.
    pub(super) block: Option<(Range<u64>, Vec<u8>)>,
    /// The end of the region a block ends: the end of the file, or for `.wsf` the last
    /// `</job>` (`None` when there is none).
    pub(super) region_end: Option<u64>,
}

/// Finds the signature block of a `kind` script (see [`super::Script::parse`]).
pub(super) fn locate<W: Window>(kind: ScriptKind, u: &mut Units<W>) -> Result<Found> {
    let region_end = if kind == ScriptKind::Wsf {
        let n = u.len();
        u.rfind_ascii("</job>", n)
    } else {
        Some(u.len())
    };
    let block = match region_end {
        None => None,
        Some(end) => match find_block_units(kind, u, end)? {
            None => None,
            Some((r, b64)) => Some((u.byte(r.start)..u.byte(r.end), super::decode_block(&b64)?)),
        },
    };
    Ok(Found {
        block,
        region_end: region_end.map(|e| u.byte(e)),
    })
}
