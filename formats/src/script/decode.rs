//! Decoding script text to the UTF-16LE Windows hashes, a piece at a time: the pieces may
//! split a character anywhere, the output goes to a sink in chunks of a fixed buffer, and
//! the text is checked as it goes (UTF-8 sequences, UTF-16 surrogate pairs).
use super::{locate::to_usize, Encoding, Result, ScriptError};

/// UTF-16 code units gathered before they go to the sink (64 KiB).
const OUT_UNITS: usize = 32 << 10;

/// Windows-1252 bytes 0x80..=0x9F; the rest equal their Unicode code point.
const CP1252_HIGH: [u16; 32] = [
    0x20ac, 0x0081, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039,
    0x0152, 0x008d, 0x017d, 0x008f, 0x0090, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
    0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x009d, 0x017e, 0x0178,
];

pub(super) fn cp1252_to_utf16(b: u8) -> u16 {
    match b {
        0x80..=0x9f => CP1252_HIGH
            .get(usize::from(b - 0x80))
            .copied()
            .unwrap_or(u16::from(b)),
        _ => u16::from(b),
    }
}

/// The length of the UTF-8 sequence a lead byte starts (1 for anything else).
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

/// How many bytes at the end of `data` start a UTF-8 sequence that needs more bytes.
fn incomplete_tail(data: &[u8]) -> usize {
    for k in 1..=data.len().min(3) {
        let Some(&b) = data.get(data.len() - k) else {
            return 0;
        };
        match b {
            0x80..=0xbf => continue,
            0xc0..=0xff => return if utf8_len(b) > k { k } else { 0 },
            _ => return 0,
        }
    }
    0
}

/// A streaming decoder of one encoding.
pub(super) struct Decoder {
    encoding: Encoding,
    out: Box<[u16]>,
    len: usize,
    units: u64,
    /// A UTF-8 sequence cut by the end of the last piece, and its offset.
    carry: [u8; 4],
    carry_len: usize,
    carry_at: u64,
    /// The offset of a UTF-16 high surrogate waiting for its low one.
    high: Option<u64>,
}

/// Hands UTF-16 code units to `sink` as little-endian bytes.
fn emit_units(units: &[u16], sink: &mut dyn FnMut(&[u8])) {
    if cfg!(target_endian = "little") {
        sink(zerocopy::IntoBytes::as_bytes(units));
    } else {
        let mut bytes = [0u8; 4096];
        for piece in units.chunks(bytes.len() / 2) {
            for (d, u) in bytes.chunks_exact_mut(2).zip(piece) {
                d.copy_from_slice(&u.to_le_bytes());
            }
            sink(bytes.get(..2 * piece.len()).unwrap_or_default());
        }
    }
}

impl Decoder {
    pub(super) fn new(encoding: Encoding) -> Self {
        Decoder {
            encoding,
            out: vec![0; OUT_UNITS].into_boxed_slice(),
            len: 0,
            units: 0,
            carry: [0; 4],
            carry_len: 0,
            carry_at: 0,
            high: None,
        }
    }

    /// UTF-16 code units decoded so far.
    pub(super) fn units(&self) -> u64 {
        self.units
    }

    /// Starts the count at `units` (decoding resumed from a point).
    pub(super) fn set_units(&mut self, units: u64) {
        self.units = units;
    }

    /// Decodes `bytes`, which start at file offset `at` and continue the previous piece
    /// (unless [`Decoder::end_part`] came between).
    pub(super) fn feed(
        &mut self,
        bytes: &[u8],
        at: u64,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<()> {
        match self.encoding {
            Encoding::Utf16Le => self.utf16(bytes, at, sink),
            Encoding::Windows1252 => {
                // ASCII runs a buffer at a time, the other bytes one by one.
                let mut rest = bytes;
                while !rest.is_empty() {
                    if self.len >= self.out.len() {
                        self.flush(sink);
                    }
                    let dst = self.out.get_mut(self.len..).unwrap_or_default();
                    // (It requires a destination as long as its source.)
                    let src = rest.get(..dst.len()).unwrap_or(rest);
                    let n = encoding_rs::mem::copy_ascii_to_basic_latin(src, dst);
                    self.len += n;
                    self.units += n as u64;
                    rest = rest.get(n..).unwrap_or_default();
                    if let Some((&b, tail)) = rest.split_first().filter(|(&b, _)| b >= 0x80) {
                        self.push_unit(cp1252_to_utf16(b), sink);
                        rest = tail;
                    }
                }
                Ok(())
            }
            Encoding::Utf8 { .. } => self.utf8(bytes, at, sink),
        }
    }

    /// Ends a run of text: a character cut short there is an error.
    pub(super) fn end_part(&mut self) -> Result<()> {
        if self.carry_len > 0 {
            self.carry_len = 0;
            return Err(ScriptError::InvalidUtf8 {
                offset: to_usize(self.carry_at),
            });
        }
        if let Some(o) = self.high.take() {
            return Err(ScriptError::InvalidUtf16 {
                offset: to_usize(o),
            });
        }
        Ok(())
    }

    /// Hands what is buffered to `sink`.
    pub(super) fn flush(&mut self, sink: &mut dyn FnMut(&[u8])) {
        if self.len > 0 {
            emit_units(self.out.get(..self.len).unwrap_or_default(), sink);
            self.len = 0;
        }
    }

    fn push_unit(&mut self, u: u16, sink: &mut dyn FnMut(&[u8])) {
        if self.len >= self.out.len() {
            self.flush(sink);
        }
        if let Some(d) = self.out.get_mut(self.len) {
            *d = u;
            self.len += 1;
            self.units += 1;
        }
    }

    /// Appends the UTF-16 of `s`, converted a buffer at a time (a UTF-8 string never has
    /// more UTF-16 units than bytes, so a piece of `n` bytes fits in `n` units).
    fn push_str(&mut self, s: &str, sink: &mut dyn FnMut(&[u8])) {
        let mut rest = s;
        while !rest.is_empty() {
            if self.out.len() - self.len < 4 {
                self.flush(sink);
            }
            let mut k = rest.len().min(self.out.len() - self.len);
            while k > 0 && !rest.is_char_boundary(k) {
                k -= 1;
            }
            let (piece, tail) = rest.split_at(k);
            if let Some(dst) = self.out.get_mut(self.len..self.len + k) {
                let n = encoding_rs::mem::convert_str_to_utf16(piece, dst);
                self.len += n;
                self.units += n as u64;
            }
            rest = tail;
        }
    }

    fn utf16(&mut self, bytes: &[u8], at: u64, sink: &mut dyn FnMut(&[u8])) -> Result<()> {
        if !bytes.len().is_multiple_of(2) {
            return Err(ScriptError::OddUtf16Length);
        }
        for (k, pair) in (0u64..).zip(bytes.chunks_exact(2)) {
            let [lo, hi] = pair else { continue };
            let u = u16::from_le_bytes([*lo, *hi]);
            let here = at + 2 * k;
            match u {
                0xd800..=0xdbff => {
                    if let Some(o) = self.high.replace(here) {
                        return Err(ScriptError::InvalidUtf16 {
                            offset: to_usize(o),
                        });
                    }
                }
                0xdc00..=0xdfff => {
                    if self.high.take().is_none() {
                        return Err(ScriptError::InvalidUtf16 {
                            offset: to_usize(here),
                        });
                    }
                }
                _ => {
                    if let Some(o) = self.high {
                        return Err(ScriptError::InvalidUtf16 {
                            offset: to_usize(o),
                        });
                    }
                }
            }
        }
        self.flush(sink);
        if !bytes.is_empty() {
            sink(bytes);
        }
        self.units += bytes.len() as u64 / 2;
        Ok(())
    }

    fn utf8(&mut self, bytes: &[u8], at: u64, sink: &mut dyn FnMut(&[u8])) -> Result<()> {
        let mut data = bytes;
        let mut at = at;
        if self.carry_len > 0 {
            let need = utf8_len(self.carry.first().copied().unwrap_or(0));
            while self.carry_len < need {
                let Some((&b, rest)) = data.split_first() else {
                    return Ok(());
                };
                if let Some(slot) = self.carry.get_mut(self.carry_len) {
                    *slot = b;
                }
                self.carry_len += 1;
                data = rest;
                at += 1;
            }
            let seq = self.carry;
            let n = self.carry_len;
            self.carry_len = 0;
            match std::str::from_utf8(seq.get(..n).unwrap_or_default()) {
                Ok(s) => self.push_str(s, sink),
                Err(_) => {
                    return Err(ScriptError::InvalidUtf8 {
                        offset: to_usize(self.carry_at),
                    })
                }
            }
        }
        let cut = incomplete_tail(data);
        let (body, tail) = data.split_at(data.len() - cut);
        match std::str::from_utf8(body) {
            Ok(s) => self.push_str(s, sink),
            Err(e) => {
                return Err(ScriptError::InvalidUtf8 {
                    offset: to_usize(at + e.valid_up_to() as u64),
                })
            }
        }
        if let Some(dst) = self.carry.get_mut(..tail.len()) {
            dst.copy_from_slice(tail);
        }
        self.carry_len = tail.len();
        self.carry_at = at + body.len() as u64;
        Ok(())
    }
}
