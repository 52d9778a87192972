//! Cabinet (`.cab`) files: a checked, streaming reader of the header Authenticode needs, the
//! bytes the digest covers and the two layouts a cabinet is written in (with and without the
//! signature reserve).
//!
//! A signed cabinet carries a 24-byte reserve after its fixed header: `cbCFHeader` = 20,
//! `cbCFFolder` = `cbCFData` = 0, then 20 bytes (`u16` 0, `u16` 16, the signature's offset,
//! which equals `cbCabinet`, its length zero-padded to 8, and 8 filler bytes). Adding the
//! reserve moves `coffFiles` and every folder's `coffCabStart` by 24; the PKCS#7 follows the
//! cabinet.
//!
//! The digest covers, in the signed layout: the signature (`MSCF`), bytes 8 to 34 of the
//! header (`cbCabinet` to `setID`; not `reserved1`, `iCabinet` or the reserve fields), the
//! last 4 filler bytes of the reserve, the folders and everything from the first file entry
//! to `cbCabinet`. An unsigned cabinet is hashed as it will be once signed, so removing a
//! signature leaves a cabinet with the signed one's digest.
//!
//! Not supported (typed errors): cabinets of a multi-cabinet set (`prev`/`next` flags),
//! reserve data other than a signature reserve, and data after `cbCabinet` in an unsigned
//! cabinet. Reading is linear in the file's size and allocates nothing sized by a field.
use std::io::{Read, Write};

/// The signature every cabinet starts with.
pub const MAGIC: &[u8; 4] = b"MSCF";
/// `flags`: the cabinet has a previous cabinet in its set.
pub const FLAG_PREV_CABINET: u16 = 0x0001;
/// `flags`: the cabinet has a next cabinet in its set.
pub const FLAG_NEXT_CABINET: u16 = 0x0002;
/// `flags`: the reserve fields are present.
pub const FLAG_RESERVE_PRESENT: u16 = 0x0004;
/// The fixed header's length (no reserve).
pub const FIXED_HEADER: u64 = 36;
/// What the signature reserve adds to a cabinet: `cbCFHeader`, `cbCFFolder`, `cbCFData` and
/// 20 reserve bytes.
pub const RESERVE_LEN: u32 = 24;
/// `cbCFHeader` of a signature reserve.
pub const SIGNATURE_RESERVE: u16 = 20;
/// The header's length with the signature reserve.
pub const SIGNED_HEADER: u64 = FIXED_HEADER + RESERVE_LEN as u64;
/// A folder entry's length (no per-folder reserve).
pub const FOLDER_LEN: u64 = 8;
/// A file entry's least length (16 bytes and a name of at least its terminating NUL).
const MIN_FILE_ENTRY: u64 = 17;
/// The largest signature read (as for a PE certificate table).
pub const MAX_SIGNATURE: u32 = 16 << 20;
/// The copy buffer of a pass.
const CHUNK: usize = 64 << 10;

/// What is wrong with a cabinet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CabError {
    /// The file is shorter than its header says.
    #[error("truncated cabinet: {what} needs bytes up to {needed:#x}, the file has {len:#x}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Offset one past the last byte needed.
        needed: u64,
        /// The file's length.
        len: u64,
    },
    /// A header field is wrong or inconsistent with the others.
    #[error("malformed cabinet: {what} (at offset {offset:#x})")]
    Malformed {
        /// What is wrong.
        what: String,
        /// Where.
        offset: u64,
    },
    /// The cabinet is part of a multi-cabinet set.
    #[error("cabinets of a multi-cabinet set are not supported (flags {flags:#06x}: {})", set_flags(*flags))]
    MultiCabinet {
        /// The header's flags.
        flags: u16,
    },
    /// The cabinet carries reserve data that is not an Authenticode signature reserve.
    #[error("the cabinet carries reserve data that is not a signature reserve (cbCFHeader {header}, cbCFFolder {folder}, cbCFData {data}{}); codeseal does not rewrite such cabinets", if *tagged { "" } else { ", not tagged as a signature" })]
    ForeignReserve {
        /// `cbCFHeader`.
        header: u16,
        /// `cbCFFolder`.
        folder: u8,
        /// `cbCFData`.
        data: u8,
        /// Whether the first reserve bytes say "signature" (`0, 16`).
        tagged: bool,
    },
    /// The cabinet is too large for the signature reserve's 32-bit offsets.
    #[error("the cabinet is {len} bytes; a signed cabinet must stay below 4 GiB")]
    TooLarge {
        /// The length that does not fit.
        len: u64,
    },
    /// Reading or writing failed.
    #[error("{context}: {message}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error's kind.
        kind: std::io::ErrorKind,
        /// The error's text.
        message: String,
    },
}

fn set_flags(flags: u16) -> &'static str {
    match (
        flags & FLAG_PREV_CABINET != 0,
        flags & FLAG_NEXT_CABINET != 0,
    ) {
        (true, true) => "a previous and a next cabinet",
        (true, false) => "a previous cabinet",
        _ => "a next cabinet",
    }
}

impl CabError {
    fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |e| Self::Io {
            context,
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    fn malformed(what: impl Into<String>, offset: u64) -> Self {
        Self::Malformed {
            what: what.into(),
            offset,
        }
    }
}

/// Result with [`CabError`].
pub type Result<T, E = CabError> = std::result::Result<T, E>;

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut x = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        x.copy_from_slice(s);
    }
    u16::from_le_bytes(x)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        x.copy_from_slice(s);
    }
    u32::from_le_bytes(x)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// Reads exactly `buf.len()` bytes; a short file is [`CabError::Truncated`] at `at`.
fn read_full<R: Read + ?Sized>(
    r: &mut R,
    buf: &mut [u8],
    what: &'static str,
    at: u64,
    file_len: u64,
) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = buf.get_mut(done..).unwrap_or_default();
        match r.read(rest) {
            Ok(0) => {
                return Err(CabError::Truncated {
                    what,
                    needed: at + buf.len() as u64,
                    len: (at + done as u64).min(file_len),
                })
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CabError::io("reading the cabinet")(e)),
        }
    }
    Ok(())
}

/// The signature reserve of a cabinet that has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureReserve {
    /// Where the signature starts (`cbCabinet`); 0 with no signature.
    pub offset: u32,
    /// Its length with its padding; 0 with no signature.
    pub len: u32,
    /// The 8 filler bytes at the reserve's end (the last 4 are hashed).
    pub filler: [u8; 8],
}

/// The checked header of a cabinet: what signing, verifying and removing need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CabHeader {
    /// The file's length.
    pub file_len: u64,
    /// The fixed header as read (36 bytes).
    fixed: [u8; FIXED_HEADER as usize],
    /// `cbCabinet`: the cabinet's length without an appended signature.
    pub cb_cabinet: u32,
    /// `coffFiles`: where the first file entry is.
    pub coff_files: u32,
    /// `cFolders`.
    pub folders: u16,
    /// `cFiles`.
    pub files: u16,
    /// `flags`.
    pub flags: u16,
    /// The signature reserve, when the cabinet has one.
    pub reserve: Option<SignatureReserve>,
}

/// Which layout a pass writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// With the signature reserve; the signature (this long with its padding) follows.
    Signed {
        /// The signature's length with its padding (0 while it is not known yet).
        sig_len: u32,
    },
    /// Without the reserve.
    Unsigned,
}

/// A signature's length padded to 8.
pub fn padded_len(der_len: usize) -> usize {
    der_len + (8 - der_len % 8) % 8
}

impl CabHeader {
    /// Reads and checks the header from `r`, positioned at the start of a `file_len`-byte
    /// cabinet. `r` is left at the first folder entry ([`Self::folders_start`]).
    pub fn read<R: Read + ?Sized>(r: &mut R, file_len: u64) -> Result<Self> {
        let mut fixed = [0u8; FIXED_HEADER as usize];
        read_full(r, &mut fixed, "the cabinet header", 0, file_len)?;
        if fixed.get(..4) != Some(MAGIC.as_slice()) {
            return Err(CabError::malformed("no MSCF signature", 0));
        }
        if u32_at(&fixed, 4) != 0 {
            return Err(CabError::malformed(
                format!("reserved1 is {:#010x}, not 0", u32_at(&fixed, 4)),
                4,
            ));
        }
        let (minor, major) = (fixed.get(24).copied(), fixed.get(25).copied());
        if major != Some(1) {
            return Err(CabError::malformed(
                format!(
                    "version {}.{} (only 1.x cabinets exist)",
                    major.unwrap_or(0),
                    minor.unwrap_or(0)
                ),
                25,
            ));
        }
        let cb_cabinet = u32_at(&fixed, 8);
        let coff_files = u32_at(&fixed, 16);
        let folders = u16_at(&fixed, 26);
        let files = u16_at(&fixed, 28);
        let flags = u16_at(&fixed, 30);
        if flags & (FLAG_PREV_CABINET | FLAG_NEXT_CABINET) != 0 {
            return Err(CabError::MultiCabinet { flags });
        }
        if flags & !FLAG_RESERVE_PRESENT != 0 {
            return Err(CabError::malformed(
                format!("unknown flags {flags:#06x}"),
                30,
            ));
        }
        let reserve = if flags & FLAG_RESERVE_PRESENT != 0 {
            let mut res = [0u8; RESERVE_LEN as usize];
            read_full(r, &mut res, "the reserve header", FIXED_HEADER, file_len)?;
            let header = u16_at(&res, 0);
            let (folder, data) = (res.get(2).copied(), res.get(3).copied());
            let tagged = u16_at(&res, 4) == 0 && u16_at(&res, 6) == 16;
            if header != SIGNATURE_RESERVE || folder != Some(0) || data != Some(0) || !tagged {
                return Err(CabError::ForeignReserve {
                    header,
                    folder: folder.unwrap_or(0),
                    data: data.unwrap_or(0),
                    tagged,
                });
            }
            let mut filler = [0u8; 8];
            filler.copy_from_slice(res.get(16..24).unwrap_or(&[0u8; 8]));
            Some(SignatureReserve {
                offset: u32_at(&res, 8),
                len: u32_at(&res, 12),
                filler,
            })
        } else {
            None
        };
        let h = Self {
            file_len,
            fixed,
            cb_cabinet,
            coff_files,
            folders,
            files,
            flags,
            reserve,
        };
        h.check()?;
        Ok(h)
    }

    fn check(&self) -> Result<()> {
        let cab = u64::from(self.cb_cabinet);
        match self.signature() {
            None => {
                if let Some(r) = self.reserve {
                    if r.offset != 0 || r.len != 0 {
                        return Err(CabError::malformed(
                            format!(
                                "the signature reserve says offset {:#x} and length {:#x}; an empty reserve has both 0",
                                r.offset, r.len
                            ),
                            FIXED_HEADER + 8,
                        ));
                    }
                }
                if cab > self.file_len {
                    return Err(CabError::Truncated {
                        what: "cbCabinet",
                        needed: cab,
                        len: self.file_len,
                    });
                }
                if cab < self.file_len {
                    return Err(CabError::malformed(
                        format!(
                            "{} bytes follow the cabinet's end (cbCabinet {cab:#x}) and no signature reserve describes them; refusing a cabinet with unsigned trailing data",
                            self.file_len - cab
                        ),
                        8,
                    ));
                }
            }
            Some((offset, len)) => {
                if len == 0 {
                    return Err(CabError::malformed(
                        format!(
                            "the signature reserve gives an offset ({offset:#x}) but no length"
                        ),
                        FIXED_HEADER + 12,
                    ));
                }
                if offset != cab {
                    return Err(CabError::malformed(
                        format!("the signature offset {offset:#x} is not cbCabinet {cab:#x}"),
                        FIXED_HEADER + 8,
                    ));
                }
                let end = offset + u64::from(len);
                if end > self.file_len {
                    return Err(CabError::Truncated {
                        what: "the signature",
                        needed: end,
                        len: self.file_len,
                    });
                }
                if end < self.file_len {
                    return Err(CabError::malformed(
                        format!(
                            "{} bytes follow the signature (offset {offset:#x}, length {len:#x})",
                            self.file_len - end
                        ),
                        FIXED_HEADER + 12,
                    ));
                }
            }
        }
        let folders_end = self.folders_start() + FOLDER_LEN * u64::from(self.folders);
        if u64::from(self.coff_files) != folders_end {
            return Err(CabError::malformed(
                format!(
                    "coffFiles is {:#x}; the {} folder entries end at {folders_end:#x}",
                    self.coff_files, self.folders
                ),
                16,
            ));
        }
        let files_end = folders_end + MIN_FILE_ENTRY * u64::from(self.files);
        if files_end > cab {
            return Err(CabError::malformed(
                format!(
                    "{} file entries cannot fit between coffFiles {:#x} and cbCabinet {cab:#x}",
                    self.files, self.coff_files
                ),
                28,
            ));
        }
        Ok(())
    }

    /// The signature's offset and length (with padding), when the cabinet is signed.
    pub fn signature(&self) -> Option<(u64, u32)> {
        self.reserve
            .filter(|r| r.offset != 0 || r.len != 0)
            .map(|r| (u64::from(r.offset), r.len))
    }

    /// Where the folder entries start.
    pub fn folders_start(&self) -> u64 {
        if self.reserve.is_some() {
            SIGNED_HEADER
        } else {
            FIXED_HEADER
        }
    }

    /// The cabinet's length without the reserve and the signature.
    pub fn unsigned_len(&self) -> u64 {
        let shift = if self.reserve.is_some() {
            u64::from(RESERVE_LEN)
        } else {
            0
        };
        u64::from(self.cb_cabinet) - shift
    }

    /// The cabinet's length with the reserve, without the signature (the signed layout's
    /// `cbCabinet` and signature offset).
    pub fn signed_cabinet_len(&self) -> Result<u32> {
        let len = self.unsigned_len() + u64::from(RESERVE_LEN);
        u32::try_from(len).map_err(|_| CabError::TooLarge { len })
    }

    /// How far the input's offsets move into the signed layout (0 or 24).
    fn shift_to_signed(&self) -> u32 {
        if self.reserve.is_some() {
            0
        } else {
            RESERVE_LEN
        }
    }

    /// The header (fixed part and reserve) of the signed layout, with a signature of
    /// `sig_len` bytes (padding included).
    pub fn signed_header(&self, sig_len: u32) -> Result<[u8; SIGNED_HEADER as usize]> {
        let cab = self.signed_cabinet_len()?;
        let mut h = [0u8; SIGNED_HEADER as usize];
        if let Some(s) = h.get_mut(..FIXED_HEADER as usize) {
            s.copy_from_slice(&self.fixed);
        }
        put_u32(&mut h, 8, cab);
        put_u32(&mut h, 16, self.coff_files + self.shift_to_signed());
        put_u16(&mut h, 30, self.flags | FLAG_RESERVE_PRESENT);
        put_u16(&mut h, 36, SIGNATURE_RESERVE);
        put_u16(&mut h, 42, 16);
        put_u32(&mut h, 44, cab);
        put_u32(&mut h, 48, sig_len);
        if let Some(s) = h.get_mut(52..60) {
            s.copy_from_slice(&self.filler());
        }
        Ok(h)
    }

    /// The header of the unsigned layout.
    pub fn unsigned_header(&self) -> [u8; FIXED_HEADER as usize] {
        let mut h = self.fixed;
        let shift = RESERVE_LEN - self.shift_to_signed();
        // unsigned_len() fits: it is at most cbCabinet.
        put_u32(&mut h, 8, self.cb_cabinet - shift);
        put_u32(&mut h, 16, self.coff_files - shift);
        put_u16(&mut h, 30, self.flags & !FLAG_RESERVE_PRESENT);
        h
    }

    fn filler(&self) -> [u8; 8] {
        self.reserve.map(|r| r.filler).unwrap_or_default()
    }

    /// Where the signed layout puts the signature reserve's length field.
    pub const SIG_LEN_OFFSET: u64 = 48;

    /// One pass over the cabinet from [`Self::folders_start`] (where `r` must be) to
    /// `cbCabinet`: feeds the digest input to `sink` and, with `out`, writes the cabinet in
    /// `layout` (header included; not the signature). Returns the bytes written (or that
    /// would be).
    pub fn stream<R: Read + ?Sized>(
        &self,
        r: &mut R,
        sink: &mut dyn crate::digest::Sink,
        mut out: Option<(&mut dyn Write, Layout)>,
    ) -> Result<u64> {
        let signed = self.signed_header(0)?;
        sink.feed(signed.get(..4).unwrap_or_default());
        sink.feed(signed.get(8..34).unwrap_or_default());
        sink.feed(signed.get(56..60).unwrap_or_default());
        let wio = CabError::io("writing the cabinet");
        let mut written = 0u64;
        if let Some((w, layout)) = out.as_mut() {
            let n = match *layout {
                Layout::Signed { sig_len } => {
                    w.write_all(&self.signed_header(sig_len)?).map_err(wio)?;
                    SIGNED_HEADER
                }
                Layout::Unsigned => {
                    w.write_all(&self.unsigned_header()).map_err(wio)?;
                    FIXED_HEADER
                }
            };
            written += n;
        }
        let cab = u64::from(self.cb_cabinet);
        let mut pos = self.folders_start();
        // Folder entries: each data offset must lie in the cabinet's data, then moves with
        // the header.
        let to_signed = self.shift_to_signed();
        for k in 0..self.folders {
            let mut f = [0u8; FOLDER_LEN as usize];
            read_full(r, &mut f, "a folder entry", pos, self.file_len)?;
            let start = u32_at(&f, 0);
            if start < self.coff_files || u64::from(start) > cab {
                return Err(CabError::malformed(
                    format!(
                        "folder {k}'s data offset {start:#x} is outside the cabinet's data ({:#x}..{cab:#x})",
                        self.coff_files
                    ),
                    pos,
                ));
            }
            let signed_start = start + to_signed;
            put_u32(&mut f, 0, signed_start);
            sink.feed(&f);
            if let Some((w, layout)) = out.as_mut() {
                if *layout == Layout::Unsigned {
                    put_u32(&mut f, 0, signed_start - RESERVE_LEN);
                }
                w.write_all(&f)
                    .map_err(CabError::io("writing the cabinet"))?;
                written += FOLDER_LEN;
            }
            pos += FOLDER_LEN;
        }
        // Everything else up to cbCabinet, as it is.
        let mut buf = vec![0u8; CHUNK];
        while pos < cab {
            let want = usize::try_from((cab - pos).min(CHUNK as u64)).unwrap_or(CHUNK);
            let chunk = buf.get_mut(..want).unwrap_or_default();
            read_full(r, chunk, "the cabinet's files and data", pos, self.file_len)?;
            sink.feed(chunk);
            if let Some((w, _)) = out.as_mut() {
                w.write_all(chunk)
                    .map_err(CabError::io("writing the cabinet"))?;
                written += want as u64;
            }
            pos += want as u64;
        }
        Ok(written)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub(crate) mod tests {
    use std::io::Cursor;

    use super::*;

    /// A stored cabinet with one folder of one data block holding `data` as one file.
    pub(crate) fn tiny_cab(data: &[u8]) -> Vec<u8> {
        let name = b"hello.txt\0";
        let coff_files = 36 + 8;
        let data_start = coff_files + 16 + name.len();
        let total = data_start + 8 + data.len();
        let mut c = Vec::new();
        c.extend_from_slice(MAGIC);
        c.extend_from_slice(&0u32.to_le_bytes());
        c.extend_from_slice(&(total as u32).to_le_bytes());
        c.extend_from_slice(&0u32.to_le_bytes());
        c.extend_from_slice(&(coff_files as u32).to_le_bytes());
        c.extend_from_slice(&0u32.to_le_bytes());
        c.extend_from_slice(&[3, 1]);
        c.extend_from_slice(&1u16.to_le_bytes()); // folders
        c.extend_from_slice(&1u16.to_le_bytes()); // files
        c.extend_from_slice(&0u16.to_le_bytes()); // flags
        c.extend_from_slice(&0x1234u16.to_le_bytes()); // setID
        c.extend_from_slice(&0u16.to_le_bytes()); // iCabinet
                                                  // Folder.
        c.extend_from_slice(&(data_start as u32).to_le_bytes());
        c.extend_from_slice(&1u16.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        // File.
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(&0u32.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&[0x21, 0x5a, 0, 0, 0x20, 0]);
        c.extend_from_slice(name);
        // Data block.
        c.extend_from_slice(&0u32.to_le_bytes());
        c.extend_from_slice(&(data.len() as u16).to_le_bytes());
        c.extend_from_slice(&(data.len() as u16).to_le_bytes());
        c.extend_from_slice(data);
        assert_eq!(c.len(), total);
        c
    }

    struct Collect(Vec<u8>);
    impl crate::digest::Sink for Collect {
        fn feed(&mut self, d: &[u8]) {
            self.0.extend_from_slice(d);
        }
    }

    fn pass(cab: &[u8], layout: Layout) -> (Vec<u8>, Vec<u8>) {
        let mut r = Cursor::new(cab);
        let h = CabHeader::read(&mut r, cab.len() as u64).unwrap();
        let (mut sink, mut out) = (Collect(Vec::new()), Vec::new());
        let n = h
            .stream(&mut r, &mut sink, Some((&mut out, layout)))
            .unwrap();
        assert_eq!(n, out.len() as u64);
        (sink.0, out)
    }

    #[test]
    fn signed_layout_round_trips() {
        let cab = tiny_cab(b"hello, cabinet");
        let (d1, mut signed) = pass(&cab, Layout::Signed { sig_len: 8 });
        assert_eq!(signed.len(), cab.len() + 24);
        // A reserve that names a signature offset but no length is refused.
        let mut empty = signed.clone();
        empty[48] = 0;
        assert!(matches!(
            CabHeader::read(&mut Cursor::new(&empty), empty.len() as u64),
            Err(CabError::Malformed { offset: 48, .. })
        ));
        signed.extend_from_slice(&[0x30, 6, 0, 0, 0, 0, 0, 0]);
        // Reserve, shifted offsets.
        assert_eq!(u16_at(&signed, 30), FLAG_RESERVE_PRESENT);
        assert_eq!(u32_at(&signed, 8), cab.len() as u32 + 24);
        assert_eq!(u32_at(&signed, 16), u32_at(&cab, 16) + 24);
        assert_eq!(u32_at(&signed, 60), u32_at(&cab, 36) + 24);
        assert_eq!(&signed[36..44], &[20, 0, 0, 0, 0, 0, 16, 0]);
        assert_eq!(u32_at(&signed, 44), cab.len() as u32 + 24);
        // The digest input is the same from both layouts, and back to unsigned is exact.
        let (d2, unsigned) = pass(&signed, Layout::Unsigned);
        assert_eq!(d1, d2);
        assert_eq!(unsigned, cab);
        // The digest input: MSCF, 8..34, filler, the rest from the folders on.
        let mut want = signed[..4].to_vec();
        want.extend_from_slice(&signed[8..34]);
        want.extend_from_slice(&signed[56..signed.len() - 8]);
        assert_eq!(d1, want);
    }

    #[test]
    fn signed_cabinet_with_signature() {
        let cab = tiny_cab(b"abc");
        let (_, mut signed) = pass(&cab, Layout::Signed { sig_len: 16 });
        signed.extend_from_slice(&[0x30, 0x03, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let h = CabHeader::read(&mut Cursor::new(&signed), signed.len() as u64).unwrap();
        assert_eq!(h.signature(), Some((cab.len() as u64 + 24, 16)));
        // A shorter file, a longer one.
        let short = &signed[..signed.len() - 1];
        assert!(matches!(
            CabHeader::read(&mut Cursor::new(short), short.len() as u64),
            Err(CabError::Truncated { .. })
        ));
        let mut long = signed.clone();
        long.push(0);
        assert!(matches!(
            CabHeader::read(&mut Cursor::new(&long), long.len() as u64),
            Err(CabError::Malformed { .. })
        ));
    }

    #[test]
    fn refuses_what_it_does_not_rewrite() {
        let cab = tiny_cab(b"abc");
        let read = |c: &[u8]| CabHeader::read(&mut Cursor::new(c), c.len() as u64);
        let mut set = cab.clone();
        set[30] = FLAG_NEXT_CABINET as u8;
        assert!(matches!(read(&set), Err(CabError::MultiCabinet { .. })));
        set[30] = FLAG_PREV_CABINET as u8;
        assert!(matches!(read(&set), Err(CabError::MultiCabinet { .. })));
        // A reserve of another kind (cbCFData 8).
        let (_, mut other) = pass(&cab, Layout::Signed { sig_len: 0 });
        other[39] = 8;
        assert!(matches!(read(&other), Err(CabError::ForeignReserve { .. })));
        let (_, mut untagged) = pass(&cab, Layout::Signed { sig_len: 0 });
        untagged[42] = 0;
        assert!(matches!(
            read(&untagged),
            Err(CabError::ForeignReserve { tagged: false, .. })
        ));
        // Trailing data, wrong coffFiles, a folder outside the data, a short header.
        let mut trailing = cab.clone();
        trailing.push(0);
        assert!(matches!(read(&trailing), Err(CabError::Malformed { .. })));
        let mut coff = cab.clone();
        coff[16] += 1;
        assert!(matches!(read(&coff), Err(CabError::Malformed { .. })));
        let mut folder = cab.clone();
        folder[36..40].copy_from_slice(&0xffffu32.to_le_bytes());
        let mut r = Cursor::new(&folder);
        let h = CabHeader::read(&mut r, folder.len() as u64).unwrap();
        assert!(matches!(
            h.stream(&mut r, &mut Collect(Vec::new()), None),
            Err(CabError::Malformed { offset: 36, .. })
        ));
        for n in 0..cab.len() {
            assert!(read(&cab[..n]).is_err(), "{n}");
        }
    }
}
