//! APPX / MSIX packages and bundles (ZIP archives): a checked reader of the ZIP records
//! Authenticode needs, and the APPX digest blob.
//!
//! The signature is the entry `AppxSignature.p7x` (`PKCX` + a DER ContentInfo), the last
//! entry of the archive. What is signed is not one hash but a blob of tagged hashes:
//!
//! ```text
//! "APPX"
//! "AXPC" H(the local records of every entry before the signature)
//! "AXCD" H(the central directory + ZIP64 end records + end record, as if unsigned)
//! "AXCT" H(`[Content_Types].xml`, uncompressed)
//! "AXBM" H(AppxBlockMap.xml, uncompressed)
//! ["AXCI" H(AppxMetadata/CodeIntegrity.cat, uncompressed)]
//! ```
//!
//! with `H` the block map's `HashMethod`. The reader works on the whole file in memory:
//! every offset and length is checked against it, counts are bounded by the bytes that
//! hold them, and nothing is allocated from a length field (inflating is capped).

use std::ops::Range;

use codeseal_signer::DigestAlgorithm;

use crate::digest::Hasher;
use crate::{Error, Result};

mod stream;
pub use stream::{
    blob_after_axpc, run_check, write_unsigned, CheckResult, EndRecords, InnerPackage,
    PackageCheck, SeekSource, SliceSource, Source, SubSource, Tail, Unsigned, CHUNK,
};
use stream::{read_into, read_vec};

/// The SpcSipInfo GUID of the APPX package SIP, `4BDFC50A-07CE-E24D-B76E-23C839A09FD1`,
/// as the bytes the signature carries.
pub const SIP_APPX: [u8; 16] = [
    0x4B, 0xDF, 0xC5, 0x0A, 0x07, 0xCE, 0xE2, 0x4D, 0xB7, 0x6E, 0x23, 0xC8, 0x39, 0xA0, 0x9F, 0xD1,
];
/// The SpcSipInfo GUID of the APPX bundle SIP, `B3585F0F-DEAA-9A4B-A434-95742D92ECEB`.
pub const SIP_APPX_BUNDLE: [u8; 16] = [
    0xB3, 0x58, 0x5F, 0x0F, 0xDE, 0xAA, 0x9A, 0x4B, 0xA4, 0x34, 0x95, 0x74, 0x2D, 0x92, 0xEC, 0xEB,
];
/// The SpcSipInfo version APPX signatures carry (`0x01010000`).
pub const SIP_VERSION: u32 = 0x0101_0000;

/// The signature entry.
pub const SIGNATURE_NAME: &str = "AppxSignature.p7x";
/// The block map.
pub const BLOCK_MAP_NAME: &str = "AppxBlockMap.xml";
/// The content types.
pub const CONTENT_TYPES_NAME: &str = "[Content_Types].xml";
/// The code-integrity catalogue (hashed when present).
pub const CODE_INTEGRITY_NAME: &str = "AppxMetadata/CodeIntegrity.cat";
/// A package's manifest.
pub const MANIFEST_NAME: &str = "AppxManifest.xml";
/// A bundle's manifest.
pub const BUNDLE_MANIFEST_NAME: &str = "AppxMetadata/AppxBundleManifest.xml";
/// The magic before the DER in `AppxSignature.p7x`.
pub const P7X_MAGIC: &[u8; 4] = b"PKCX";

/// The most entries read from one archive.
pub const MAX_ENTRIES: usize = 1 << 20;
/// The most bytes an XML part (`[Content_Types].xml`, the block map, a manifest) or the
/// signature may inflate to.
pub const MAX_PART: u64 = 256 << 20;

const SIG_LOCAL: u32 = 0x0403_4B50;
const SIG_CENTRAL: u32 = 0x0201_4B50;
const SIG_EOCD: u32 = 0x0605_4B50;
const SIG_ZIP64_EOCD: u32 = 0x0606_4B50;
const SIG_ZIP64_LOCATOR: u32 = 0x0706_4B50;
const SIG_DESCRIPTOR: u32 = 0x0807_4B50;
const LOCAL_LEN: usize = 30;
const CENTRAL_LEN: usize = 46;
const EOCD_LEN: usize = 22;
const LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_LEN: usize = 56;

fn bad(what: impl Into<String>, offset: u64) -> Error {
    Error::MalformedZip {
        what: what.into(),
        offset,
    }
}

fn slice<'a>(data: &'a [u8], at: u64, len: u64, what: &str) -> Result<&'a [u8]> {
    let end = at
        .checked_add(len)
        .ok_or_else(|| bad(format!("{what}: offset overflows"), at))?;
    usize::try_from(at)
        .ok()
        .zip(usize::try_from(end).ok())
        .and_then(|(a, e)| data.get(a..e))
        .ok_or_else(|| {
            bad(
                format!(
                    "{what} ends at {end:#x}, past the end of the file ({:#x})",
                    data.len()
                ),
                at,
            )
        })
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    b.get(i..i + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    b.get(i..i + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    b.get(i..i + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// How an entry's data is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Stored (0).
    Stored,
    /// Deflated (8).
    Deflated,
    /// Anything else (APPX allows neither): the code.
    Other(u16),
}

/// One entry: its central record and where its local record lies.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name as stored (APPX names are UTF-8 or ASCII; others are shown lossily).
    pub name: String,
    /// General-purpose flags of the central record.
    pub flags: u16,
    /// The compression method.
    pub method: Method,
    /// CRC-32 of the uncompressed data.
    pub crc32: u32,
    /// Compressed size.
    pub compressed_size: u64,
    /// Uncompressed size.
    pub size: u64,
    /// The local record: header, data and data descriptor.
    pub local: Range<u64>,
    /// Where the (compressed) data starts.
    pub data_offset: u64,
    /// The central record.
    pub central: Range<u64>,
}

/// A checked ZIP archive: entries in central-directory order and the end records.
#[derive(Debug, Clone)]
pub struct Zip {
    /// The entries, in central-directory order.
    pub entries: Vec<Entry>,
    /// The central directory.
    pub central_dir: Range<u64>,
    /// The ZIP64 end-of-central-directory record, when present.
    pub zip64_eocd: Option<Range<u64>>,
    /// The ZIP64 locator, when present.
    pub zip64_locator: Option<Range<u64>>,
    /// The end-of-central-directory record (with its comment).
    pub eocd: Range<u64>,
}

impl Zip {
    /// Reads the archive's structure from the whole file: the end records, every central
    /// record and every local header (checked against its central record).
    pub fn parse(data: &[u8]) -> Result<Self> {
        Self::parse_from(&mut SliceSource(data))
    }

    /// [`Zip::parse`] from any [`Source`] (a file through [`SeekSource`]): the end records
    /// and the central directory are read once (memory bounded by the bytes the file holds,
    /// never by a length field), then each local header.
    pub fn parse_from<S: Source + ?Sized>(src: &mut S) -> Result<Self> {
        let len = src.size();
        if len < EOCD_LEN as u64 {
            return Err(bad("too short for a ZIP end record", 0));
        }
        // The last bytes: the end record with the longest comment, and a ZIP64 locator.
        let tail_len = len.min((EOCD_LEN + 0xFFFF + LOCATOR_LEN) as u64);
        let tail_start = len - tail_len;
        let tail = read_vec(src, tail_start, tail_len, "end records")?;
        // The end record: the last signature whose comment reaches the end exactly.
        let lowest = tail.len().saturating_sub(EOCD_LEN + 0xFFFF);
        let mut found = None;
        let mut i = tail.len() - EOCD_LEN;
        loop {
            if u32_at(&tail, i) == SIG_EOCD
                && i + EOCD_LEN + usize::from(u16_at(&tail, i + 20)) == tail.len()
            {
                found = Some(i);
                break;
            }
            if i == lowest {
                break;
            }
            i -= 1;
        }
        let t_at = found.ok_or_else(|| bad("no end-of-central-directory record", len))?;
        let eocd_at = tail_start + t_at as u64;
        let e = tail.get(t_at..).unwrap_or_default();
        let (disk, cd_disk) = (u16_at(e, 4), u16_at(e, 6));
        let (n_disk, n_total) = (u16_at(e, 8), u16_at(e, 10));
        let (mut cd_size, mut cd_off) = (u64::from(u32_at(e, 12)), u64::from(u32_at(e, 16)));
        let mut count = u64::from(n_total);
        let eocd = eocd_at..len;
        let mut zip64_eocd = None;
        let mut zip64_locator = None;
        // The tail holds LOCATOR_LEN bytes more than the longest end record: a locator
        // before the end record is in it whenever the file has room for one.
        let has_locator =
            t_at >= LOCATOR_LEN && u32_at(&tail, t_at - LOCATOR_LEN) == SIG_ZIP64_LOCATOR;
        if has_locator {
            let loc_at = eocd_at - LOCATOR_LEN as u64;
            let l = tail.get(t_at - LOCATOR_LEN..t_at).unwrap_or_default();
            if u32_at(l, 4) != 0 || u32_at(l, 16) > 1 {
                return Err(bad("multi-disk ZIP64 archive", loc_at));
            }
            let z_at = u64_at(l, 8);
            let head = read_vec(src, z_at, ZIP64_EOCD_LEN as u64, "ZIP64 end record")?;
            if u32_at(&head, 0) != SIG_ZIP64_EOCD {
                return Err(bad("ZIP64 locator points at no ZIP64 end record", z_at));
            }
            let z_len = u64_at(&head, 4)
                .checked_add(12)
                .filter(|&l| l >= ZIP64_EOCD_LEN as u64)
                .ok_or_else(|| bad("ZIP64 end record size", z_at))?;
            if z_at.checked_add(z_len) != Some(loc_at) {
                return Err(bad(
                    "the ZIP64 end record does not end where its locator starts",
                    z_at,
                ));
            }
            if u32_at(&head, 16) != 0 || u32_at(&head, 20) != 0 {
                return Err(bad("multi-disk ZIP64 archive", z_at));
            }
            count = u64_at(&head, 32);
            if u64_at(&head, 24) != count {
                return Err(bad("ZIP64 entry counts differ", z_at));
            }
            cd_size = u64_at(&head, 40);
            cd_off = u64_at(&head, 48);
            zip64_eocd = Some(z_at..z_at + z_len);
            zip64_locator = Some(loc_at..eocd_at);
        } else if disk != 0 || cd_disk != 0 || n_disk != n_total {
            return Err(bad("multi-disk ZIP archive", eocd_at));
        }
        let cd_end_expected = zip64_eocd.as_ref().map_or(eocd.start, |z| z.start);
        if cd_off.checked_add(cd_size) != Some(cd_end_expected) {
            return Err(bad(
                format!(
                    "central directory at {cd_off:#x} of {cd_size:#x} bytes does not end at the end records ({cd_end_expected:#x})"
                ),
                cd_off,
            ));
        }
        // Checked to lie inside the file before it is read: bounded by the file's size.
        let cd_buf = read_vec(src, cd_off, cd_size, "central directory")?;
        let cd = cd_buf.as_slice();
        if count > (cd.len() / CENTRAL_LEN) as u64 || count > MAX_ENTRIES as u64 {
            return Err(bad(
                format!(
                    "{count} entries do not fit the central directory (or exceed {MAX_ENTRIES})"
                ),
                eocd_at,
            ));
        }
        // Central records first (with where each name lies in the directory); the local
        // headers are read afterwards in file order, so a buffered reader reads forward.
        let mut pending: Vec<(Entry, Range<usize>, bool)> = Vec::new();
        let mut pos = 0usize;
        for _ in 0..count {
            let at = cd_off + pos as u64;
            let r = cd
                .get(pos..pos + CENTRAL_LEN)
                .ok_or_else(|| bad("central record past the directory", at))?;
            if u32_at(r, 0) != SIG_CENTRAL {
                return Err(bad("not a central directory record", at));
            }
            let flags = u16_at(r, 8);
            let method = match u16_at(r, 10) {
                0 => Method::Stored,
                8 => Method::Deflated,
                m => Method::Other(m),
            };
            let crc32 = u32_at(r, 16);
            let mut csize = u64::from(u32_at(r, 20));
            let mut usize_ = u64::from(u32_at(r, 24));
            let (nlen, xlen, clen) = (
                usize::from(u16_at(r, 28)),
                usize::from(u16_at(r, 30)),
                usize::from(u16_at(r, 32)),
            );
            let disk_start = u16_at(r, 34);
            let mut local_off = u64::from(u32_at(r, 42));
            let rec_len = CENTRAL_LEN + nlen + xlen + clen;
            let rec = cd
                .get(pos..pos + rec_len)
                .ok_or_else(|| bad("central record past the directory", at))?;
            let name_bytes = rec.get(CENTRAL_LEN..CENTRAL_LEN + nlen).unwrap_or_default();
            let extra = rec
                .get(CENTRAL_LEN + nlen..CENTRAL_LEN + nlen + xlen)
                .unwrap_or_default();
            let mut zip64_sizes = false;
            if let Some(z) = find_extra(extra, 0x0001) {
                let mut k = 0;
                let mut next = |what: &str| -> Result<u64> {
                    let v = z
                        .get(k..k + 8)
                        .and_then(|s| s.try_into().ok())
                        .map(u64::from_le_bytes)
                        .ok_or_else(|| bad(format!("ZIP64 extra field lacks the {what}"), at))?;
                    k += 8;
                    Ok(v)
                };
                if usize_ == 0xFFFF_FFFF {
                    usize_ = next("size")?;
                    zip64_sizes = true;
                }
                if csize == 0xFFFF_FFFF {
                    csize = next("compressed size")?;
                    zip64_sizes = true;
                }
                if local_off == 0xFFFF_FFFF {
                    local_off = next("local header offset")?;
                }
            }
            if disk_start != 0 && disk_start != 0xFFFF {
                return Err(bad("entry on another disk", at));
            }
            let name = String::from_utf8_lossy(name_bytes).into_owned();
            let name_at = pos + CENTRAL_LEN..pos + CENTRAL_LEN + nlen;
            pending.push((
                Entry {
                    name,
                    flags,
                    method,
                    crc32,
                    compressed_size: csize,
                    size: usize_,
                    local: local_off..local_off,
                    data_offset: local_off,
                    central: at..at + rec_len as u64,
                },
                name_at,
                zip64_sizes,
            ));
            pos += rec_len;
        }
        if pos != cd.len() {
            return Err(bad(
                "bytes after the last central record",
                cd_off + pos as u64,
            ));
        }
        let mut order: Vec<usize> = (0..pending.len()).collect();
        order.sort_by_key(|&i| pending.get(i).map_or(0, |p| p.0.local.start));
        let mut head = [0u8; LOCAL_LEN];
        for i in order {
            let Some((entry, name_at, zip64_sizes)) = pending.get_mut(i) else {
                continue;
            };
            let (local_off, csize, crc32, flags) = (
                entry.local.start,
                entry.compressed_size,
                entry.crc32,
                entry.flags,
            );
            let (name, at) = (&entry.name, entry.central.start);
            let name_bytes = cd.get(name_at.clone()).unwrap_or_default();
            let mut zip64_sizes = *zip64_sizes;
            // The local header.
            read_into(src, local_off, &mut head, "local header")?;
            let lh = &head[..];
            if u32_at(lh, 0) != SIG_LOCAL {
                return Err(bad(format!("no local header for {name:?}"), local_off));
            }
            let (lnlen, lxlen) = (u64::from(u16_at(lh, 26)), u64::from(u16_at(lh, 28)));
            // At most 128 KiB (two 16-bit lengths), and checked to lie in the file.
            let lvar = read_vec(
                src,
                local_off + LOCAL_LEN as u64,
                lnlen + lxlen,
                "local name",
            )?;
            let (lname, lextra) = lvar.split_at(usize::try_from(lnlen).unwrap_or(0));
            if lname != name_bytes {
                return Err(bad(
                    format!("local header name differs from the central record's ({name:?})"),
                    local_off,
                ));
            }
            if find_extra(lextra, 0x0001).is_some() {
                zip64_sizes = true;
            }
            let data_offset = local_off + LOCAL_LEN as u64 + lnlen + lxlen;
            let mut end = data_offset
                .checked_add(csize)
                .ok_or_else(|| bad("entry size overflows", at))?;
            if flags & 0x0008 != 0 {
                let mut d = [0u8; 24];
                read_into(src, end, &mut d[..4], "data descriptor")?;
                let words = if zip64_sizes { 20 } else { 12 };
                let has_sig = u32_at(&d, 0) == SIG_DESCRIPTOR;
                let d_len = words + if has_sig { 4 } else { 0 };
                let d = d.get_mut(..d_len).unwrap_or_default();
                read_into(src, end, d, "data descriptor")?;
                let base = if has_sig { 4 } else { 0 };
                let (dcrc, dcs) = (
                    u32_at(d, base),
                    if zip64_sizes {
                        u64_at(d, base + 4)
                    } else {
                        u64::from(u32_at(d, base + 4))
                    },
                );
                if dcrc != crc32 || dcs != csize {
                    return Err(bad(
                        format!("data descriptor of {name:?} differs from its central record"),
                        end,
                    ));
                }
                end += d_len as u64;
            }
            if end > cd_off {
                return Err(bad(
                    format!("the data of {name:?} runs into the central directory"),
                    local_off,
                ));
            }
            entry.local = local_off..end;
            entry.data_offset = data_offset;
        }
        let entries: Vec<Entry> = pending.into_iter().map(|p| p.0).collect();
        // Names are unique (a reader could take either of two entries of one name).
        let mut names = std::collections::HashSet::new();
        for e in &entries {
            if !names.insert(e.name.as_str()) {
                return Err(bad(
                    format!("two entries named {:?}", e.name),
                    e.central.start,
                ));
            }
        }
        // Local records may not overlap (a record read twice would be hashed twice).
        let mut order: Vec<&Entry> = entries.iter().collect();
        order.sort_by_key(|e| e.local.start);
        for w in order.windows(2) {
            if let [a, b] = w {
                if b.local.start < a.local.end {
                    return Err(bad(
                        format!("local records of {:?} and {:?} overlap", a.name, b.name),
                        b.local.start,
                    ));
                }
            }
        }
        Ok(Self {
            entries,
            central_dir: cd_off..cd_off + cd_size,
            zip64_eocd,
            zip64_locator,
            eocd,
        })
    }

    /// The entry named `name` (exactly, as stored).
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The signature entry, when the package is signed.
    pub fn signature(&self) -> Option<&Entry> {
        self.entry(SIGNATURE_NAME)
    }

    /// An entry's uncompressed data, CRC-checked, at most `limit` bytes.
    pub fn read(&self, data: &[u8], entry: &Entry, limit: u64) -> Result<Vec<u8>> {
        self.read_from(&mut SliceSource(data), entry, limit)
    }

    /// [`Zip::read`] from any [`Source`]: the compressed data (checked to lie in the file)
    /// is read, then inflated up to the declared size.
    pub fn read_from<S: Source + ?Sized>(
        &self,
        src: &mut S,
        entry: &Entry,
        limit: u64,
    ) -> Result<Vec<u8>> {
        if entry.size > limit {
            return Err(bad(
                format!(
                    "{:?} is {} bytes; the limit is {limit}",
                    entry.name, entry.size
                ),
                entry.local.start,
            ));
        }
        if entry.method == Method::Stored && entry.compressed_size != entry.size {
            return Err(bad(
                format!("stored entry {:?} has two sizes", entry.name),
                entry.local.start,
            ));
        }
        if let Method::Other(m) = entry.method {
            return Err(bad(
                format!("{:?} uses compression method {m}", entry.name),
                entry.local.start,
            ));
        }
        let raw = read_vec(src, entry.data_offset, entry.compressed_size, "entry data")?;
        let out = match entry.method {
            Method::Stored => raw,
            Method::Deflated => {
                let cap = usize::try_from(entry.size).unwrap_or(usize::MAX);
                miniz_oxide::inflate::decompress_to_vec_with_limit(&raw, cap).map_err(|e| {
                    bad(
                        format!("inflating {:?}: {:?}", entry.name, e.status),
                        entry.data_offset,
                    )
                })?
            }
            Method::Other(m) => {
                return Err(bad(
                    format!("{:?} uses compression method {m}", entry.name),
                    entry.local.start,
                ))
            }
        };
        if out.len() as u64 != entry.size {
            return Err(bad(
                format!(
                    "{:?} inflates to {} bytes, not {}",
                    entry.name,
                    out.len(),
                    entry.size
                ),
                entry.data_offset,
            ));
        }
        if crc32(&out) != entry.crc32 {
            return Err(bad(
                format!("CRC-32 of {:?} is wrong", entry.name),
                entry.data_offset,
            ));
        }
        Ok(out)
    }

    /// An entry's uncompressed data in blocks of [`BLOCK_SIZE`] bytes (the last may be
    /// shorter), handed to `f` one at a time: memory stays at one block however large the
    /// entry, and inflating stops at the declared size. The size and the CRC-32 are checked
    /// after the last block (`f` may have seen data that then fails them).
    pub fn read_blocks(&self, data: &[u8], entry: &Entry, mut f: impl FnMut(&[u8])) -> Result<()> {
        use miniz_oxide::inflate::stream::{inflate, InflateState};
        use miniz_oxide::{DataFormat, MZFlush, MZStatus};
        let raw = slice(data, entry.data_offset, entry.compressed_size, "entry data")?;
        let block = BLOCK_SIZE as usize;
        let mut crc = !0u32;
        let mut total = 0u64;
        match entry.method {
            Method::Stored => {
                if entry.compressed_size != entry.size {
                    return Err(bad(
                        format!("stored entry {:?} has two sizes", entry.name),
                        entry.local.start,
                    ));
                }
                for b in raw.chunks(block) {
                    crc = crc32_update(crc, b);
                    total += b.len() as u64;
                    f(b);
                }
            }
            Method::Deflated => {
                let mut state = InflateState::new_boxed(DataFormat::Raw);
                let mut buf = vec![0u8; block];
                let (mut filled, mut input) = (0usize, raw);
                let inflate_err = |what: String| bad(what, entry.data_offset);
                loop {
                    let out = buf.get_mut(filled..).unwrap_or_default();
                    let r = inflate(&mut state, input, out, MZFlush::None);
                    input = input.get(r.bytes_consumed..).unwrap_or_default();
                    filled += r.bytes_written;
                    total += r.bytes_written as u64;
                    if total > entry.size {
                        return Err(inflate_err(format!(
                            "{:?} inflates to more than {} bytes",
                            entry.name, entry.size
                        )));
                    }
                    let done = match r.status {
                        Ok(MZStatus::StreamEnd) => true,
                        Ok(_) => false,
                        Err(e) => {
                            // Out of input with room left, or a data error.
                            return Err(inflate_err(format!("inflating {:?}: {e:?}", entry.name)));
                        }
                    };
                    if filled == block || (done && filled > 0) {
                        let b = buf.get(..filled).unwrap_or_default();
                        crc = crc32_update(crc, b);
                        f(b);
                        filled = 0;
                    }
                    if done {
                        break;
                    }
                    if r.bytes_consumed == 0 && r.bytes_written == 0 && filled < block {
                        return Err(inflate_err(format!(
                            "inflating {:?}: the data ends early",
                            entry.name
                        )));
                    }
                }
            }
            Method::Other(m) => {
                return Err(bad(
                    format!("{:?} uses compression method {m}", entry.name),
                    entry.local.start,
                ))
            }
        }
        if total != entry.size {
            return Err(bad(
                format!(
                    "{:?} inflates to {total} bytes, not {}",
                    entry.name, entry.size
                ),
                entry.data_offset,
            ));
        }
        if !crc != entry.crc32 {
            return Err(bad(
                format!("CRC-32 of {:?} is wrong", entry.name),
                entry.data_offset,
            ));
        }
        Ok(())
    }

    /// The central directory and end records as they were before the signature entry was
    /// added (or as they are, unsigned): the signature's central record dropped, counts,
    /// sizes and offsets in the end records lowered to match. The signature must be the
    /// last local record and its central record the last one.
    pub fn unsigned_directory(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.unsigned_directory_from(&mut SliceSource(data))
    }

    /// [`Zip::unsigned_directory`] from any [`Source`].
    pub fn unsigned_directory_from<S: Source + ?Sized>(&self, src: &mut S) -> Result<Vec<u8>> {
        let Some(sig) = self.signature() else {
            let len = src.size().saturating_sub(self.central_dir.start);
            return read_vec(src, self.central_dir.start, len, "end records");
        };
        self.check_signature_last(sig)?;
        let sig_central_len = sig.central.end - sig.central.start;
        let keep = sig.central.start - self.central_dir.start;
        let mut out = read_vec(src, self.central_dir.start, keep, "central directory")?;
        let new_cd_off = sig.local.start;
        let new_cd_size = (self.central_dir.end - self.central_dir.start) - sig_central_len;
        let new_count = self.entries.len() as u64 - 1;
        out.extend_from_slice(&EndRecords::read(src, self)?.build(
            new_cd_off,
            new_cd_size,
            new_count,
        )?);
        Ok(out)
    }

    /// This archive's end records (ZIP64 record and locator when it has them, end record
    /// with its comment) for a central directory at `cd_off` of `cd_size` bytes holding
    /// `count` records.
    pub fn end_records(
        &self,
        data: &[u8],
        cd_off: u64,
        cd_size: u64,
        count: u64,
    ) -> Result<Vec<u8>> {
        EndRecords::read(&mut SliceSource(data), self)?.build(cd_off, cd_size, count)
    }

    /// The package unsigned, ready for a signature: any `AppxSignature.p7x` dropped, and
    /// `[Content_Types].xml` given the Override for the signature part when it lacks one
    /// (rewritten with its method; the records after it move, their bytes unchanged).
    /// Every other local record is kept byte for byte; central records are patched only
    /// in their offsets (and, for the content types, CRC and sizes).
    pub fn prepare_unsigned(&self, data: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len());
        let u = write_unsigned(&mut SliceSource(data), self, &mut out, None)?;
        out.extend_from_slice(&u.tail.unsigned()?);
        Ok(out)
    }

    /// `unsigned` (this archive, unsigned: [`Zip::prepare_unsigned`]'s result, parsed as
    /// `self`) with `AppxSignature.p7x` (`PKCX` + `der`, stored) added as the last entry.
    pub fn with_signature(&self, unsigned: &[u8], der: &[u8]) -> Result<Vec<u8>> {
        if self.signature().is_some() {
            return Err(Error::InvalidValue("the package is already signed".into()));
        }
        let cd_start = self.central_dir.start;
        let mut out = slice(unsigned, 0, cd_start, "local records")?.to_vec();
        let (local, central) = signature_records(cd_start, der)?;
        out.extend_from_slice(&local);
        let new_cd = out.len() as u64;
        out.extend_from_slice(slice(
            unsigned,
            cd_start,
            self.central_dir.end - cd_start,
            "central directory",
        )?);
        out.extend_from_slice(&central);
        let cd_size = out.len() as u64 - new_cd;
        let end = self.end_records(unsigned, new_cd, cd_size, self.entries.len() as u64 + 1)?;
        out.extend_from_slice(&end);
        Ok(out)
    }

    /// The end of the local records that are signed: the signature's local record start,
    /// or the central directory's start when unsigned.
    pub fn signed_local_end(&self) -> Result<u64> {
        match self.signature() {
            Some(sig) => {
                self.check_signature_last(sig)?;
                Ok(sig.local.start)
            }
            None => Ok(self.central_dir.start),
        }
    }

    fn check_signature_last(&self, sig: &Entry) -> Result<()> {
        let last_local = self
            .entries
            .iter()
            .all(|e| e.local.start <= sig.local.start);
        if !last_local || sig.local.end != self.central_dir.start {
            return Err(bad(
                "AppxSignature.p7x is not the last local record",
                sig.local.start,
            ));
        }
        if sig.central.end != self.central_dir.end {
            return Err(bad(
                "AppxSignature.p7x is not the last central record",
                sig.central.start,
            ));
        }
        if self
            .entries
            .iter()
            .filter(|e| e.name == SIGNATURE_NAME)
            .count()
            != 1
        {
            return Err(bad("more than one AppxSignature.p7x", sig.central.start));
        }
        Ok(())
    }
}

/// The local record and the central record of `AppxSignature.p7x` (`PKCX` + `der`,
/// stored) written at `sig_off`.
fn signature_records(sig_off: u64, der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut p7x = P7X_MAGIC.to_vec();
    p7x.extend_from_slice(der);
    let name = SIGNATURE_NAME.as_bytes();
    let crc = crc32(&p7x);
    let len =
        u32::try_from(p7x.len()).map_err(|_| Error::InvalidValue("signature too large".into()))?;
    let off32 = u32::try_from(sig_off)
        .ok()
        .filter(|&o| o != u32::MAX)
        .ok_or_else(|| {
            Error::InvalidValue("signing packages past 4 GiB is not supported".into())
        })?;
    // Local header: version 2.0, no flags, stored, DOS time 0 / date 1980-01-01.
    let mut h = Vec::with_capacity(LOCAL_LEN + name.len() + p7x.len());
    h.extend_from_slice(&SIG_LOCAL.to_le_bytes());
    for v in [20u16, 0, 0, 0, 0x21] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    for v in [crc, len, len] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    for v in [name.len() as u16, 0] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h.extend_from_slice(name);
    h.extend_from_slice(&p7x);
    let mut c = Vec::with_capacity(CENTRAL_LEN + name.len());
    c.extend_from_slice(&SIG_CENTRAL.to_le_bytes());
    for v in [20u16, 20, 0, 0, 0, 0x21] {
        c.extend_from_slice(&v.to_le_bytes());
    }
    for v in [crc, len, len] {
        c.extend_from_slice(&v.to_le_bytes());
    }
    for v in [name.len() as u16, 0, 0, 0, 0] {
        c.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0u32, off32] {
        c.extend_from_slice(&v.to_le_bytes());
    }
    c.extend_from_slice(name);
    Ok((h, c))
}

/// End records (`zip64`: the ZIP64 end record and locator as read, `eocd` the end record
/// with its comment) rewritten for a central directory at `cd_off` of `cd_size` bytes
/// holding `count` records.
fn build_end_records(
    zip64: Option<&(Vec<u8>, Vec<u8>)>,
    eocd: &[u8],
    cd_off: u64,
    cd_size: u64,
    count: u64,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let new_end = cd_off + cd_size;
    if let Some((z, l)) = zip64 {
        let mut zr = z.clone();
        put(&mut zr, 24, &count.to_le_bytes());
        put(&mut zr, 32, &count.to_le_bytes());
        put(&mut zr, 40, &cd_size.to_le_bytes());
        put(&mut zr, 48, &cd_off.to_le_bytes());
        out.extend_from_slice(&zr);
        let mut lr = l.clone();
        put(&mut lr, 8, &new_end.to_le_bytes());
        out.extend_from_slice(&lr);
    }
    let mut er = eocd.to_vec();
    let zip64 = zip64.is_some();
    let too_big = |what: &str| {
        Error::InvalidValue(format!(
            "the package's {what} needs ZIP64 end records, which it does not have"
        ))
    };
    for at in [8usize, 10] {
        if !(zip64 && u16_at(&er, at) == 0xFFFF) {
            let n = u16::try_from(count)
                .ok()
                .filter(|&n| n != 0xFFFF)
                .ok_or_else(|| too_big("entry count"))?;
            put(&mut er, at, &n.to_le_bytes());
        }
    }
    for (at, v, what) in [
        (12usize, cd_size, "central directory size"),
        (16, cd_off, "central directory offset"),
    ] {
        if !(zip64 && u32_at(&er, at) == 0xFFFF_FFFF) {
            let n = u32::try_from(v)
                .ok()
                .filter(|&n| n != u32::MAX)
                .ok_or_else(|| too_big(what))?;
            put(&mut er, at, &n.to_le_bytes());
        }
    }
    out.extend_from_slice(&er);
    Ok(out)
}

/// The indices of a bundle's inner packages: its top-level `.appx` / `.msix` entries.
pub fn find_inner_packages(zip: &Zip) -> Vec<usize> {
    zip.entries
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            let lower = e.name.to_ascii_lowercase();
            !e.name.contains('/') && (lower.ends_with(".appx") || lower.ends_with(".msix"))
        })
        .map(|(i, _)| i)
        .collect()
}

/// Writes `off` into the ZIP64 extra field of central record `r` (whose offset field is
/// 0xFFFFFFFF).
fn patch_zip64_offset(r: &mut [u8], off: u64, at: u64) -> Result<()> {
    let nlen = usize::from(u16_at(r, 28));
    let xlen = usize::from(u16_at(r, 30));
    let mut skip = 0;
    if u32_at(r, 24) == 0xFFFF_FFFF {
        skip += 8;
    }
    if u32_at(r, 20) == 0xFFFF_FFFF {
        skip += 8;
    }
    let mut i = CENTRAL_LEN + nlen;
    let end = i + xlen;
    while i + 4 <= end {
        let (tag, len) = (u16_at(r, i), usize::from(u16_at(r, i + 2)));
        if tag == 1 && skip + 8 <= len {
            put(r, i + 4 + skip, &off.to_le_bytes());
            return Ok(());
        }
        i += 4 + len;
    }
    Err(bad("no ZIP64 offset to move", at))
}

/// The signature part's Override in `[Content_Types].xml`.
pub const SIGNATURE_OVERRIDE: &str =
    r#"<Override PartName="/AppxSignature.p7x" ContentType="application/vnd.ms-appx.signature"/>"#;

/// `[Content_Types].xml` with the signature part's Override added before `</Types>`, or
/// `None` when it already has one.
pub fn content_types_with_signature(ct: &[u8]) -> Result<Option<Vec<u8>>> {
    if memchr::memmem::find(ct, b"/AppxSignature.p7x").is_some() {
        return Ok(None);
    }
    let at = memchr::memmem::rfind(ct, b"</Types>")
        .ok_or_else(|| bad("[Content_Types].xml has no </Types>", 0))?;
    let mut out = Vec::with_capacity(ct.len() + SIGNATURE_OVERRIDE.len());
    out.extend_from_slice(ct.get(..at).unwrap_or_default());
    out.extend_from_slice(SIGNATURE_OVERRIDE.as_bytes());
    out.extend_from_slice(ct.get(at..).unwrap_or_default());
    Ok(Some(out))
}

fn put(buf: &mut [u8], at: usize, v: &[u8]) {
    if let Some(d) = buf.get_mut(at..at + v.len()) {
        d.copy_from_slice(v);
    }
}

/// The data of the extra-field block with `id`, if any.
fn find_extra(extra: &[u8], id: u16) -> Option<&[u8]> {
    let mut i = 0;
    while i + 4 <= extra.len() {
        let (tag, len) = (u16_at(extra, i), usize::from(u16_at(extra, i + 2)));
        let body = extra.get(i + 4..i + 4 + len)?;
        if tag == id {
            return Some(body);
        }
        i += 4 + len;
    }
    None
}

/// CRC-32 (IEEE, as ZIP uses it).
pub fn crc32(data: &[u8]) -> u32 {
    !crc32_update(!0, data)
}

/// One step of an incremental CRC-32: start from `!0`, finish with `!` (crc32fast's
/// SIMD implementation, which keeps the state un-inverted).
fn crc32_update(c: u32, data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(!c);
    h.update(data);
    !h.finalize()
}

/// The digest algorithm a block map names in its `HashMethod` attribute.
pub fn block_map_hash_method(block_map: &[u8]) -> Result<DigestAlgorithm> {
    let key = b"HashMethod=\"";
    let at = memchr::memmem::find(block_map, key)
        .ok_or_else(|| bad("AppxBlockMap.xml has no HashMethod", 0))?;
    let rest = block_map.get(at + key.len()..).unwrap_or_default();
    let end =
        memchr::memchr(b'"', rest).ok_or_else(|| bad("unterminated HashMethod", at as u64))?;
    let uri = rest.get(..end).unwrap_or_default();
    match uri {
        b"http://www.w3.org/2001/04/xmlenc#sha256" => Ok(DigestAlgorithm::Sha256),
        b"http://www.w3.org/2001/04/xmldsig-more#sha384" => Ok(DigestAlgorithm::Sha384),
        b"http://www.w3.org/2001/04/xmlenc#sha512" => Ok(DigestAlgorithm::Sha512),
        other => Err(bad(
            format!(
                "unsupported block map HashMethod {:?}",
                String::from_utf8_lossy(other)
            ),
            at as u64,
        )),
    }
}

/// The block map's `HashMethod` URI for `alg`.
pub fn hash_method_uri(alg: DigestAlgorithm) -> Option<&'static str> {
    match alg {
        DigestAlgorithm::Sha256 => Some("http://www.w3.org/2001/04/xmlenc#sha256"),
        DigestAlgorithm::Sha384 => Some("http://www.w3.org/2001/04/xmldsig-more#sha384"),
        DigestAlgorithm::Sha512 => Some("http://www.w3.org/2001/04/xmlenc#sha512"),
        _ => None,
    }
}

/// The APPX digest blob of a package or bundle (signed or not: a signature entry is left
/// out as if it had never been added), and the algorithm of the block map.
pub fn digest_blob(data: &[u8], zip: &Zip) -> Result<(DigestAlgorithm, Vec<u8>)> {
    let need = |name: &str| {
        zip.entry(name)
            .ok_or_else(|| bad(format!("no {name} in the package"), 0))
    };
    let block_map = zip.read(data, need(BLOCK_MAP_NAME)?, MAX_PART)?;
    let alg = block_map_hash_method(&block_map)?;
    let content_types = zip.read(data, need(CONTENT_TYPES_NAME)?, MAX_PART)?;
    let hash = |parts: &[&[u8]]| {
        let mut h = Hasher::new(alg);
        for p in parts {
            h.update(p);
        }
        h.finalize()
    };
    let local_end = zip.signed_local_end()?;
    let locals = slice(data, 0, local_end, "local records")?;
    let dir = zip.unsigned_directory(data)?;
    let mut blob = b"APPX".to_vec();
    for (tag, h) in [
        (b"AXPC", hash(&[locals])),
        (b"AXCD", hash(&[&dir])),
        (b"AXCT", hash(&[&content_types])),
        (b"AXBM", hash(&[&block_map])),
    ] {
        blob.extend_from_slice(tag);
        blob.extend_from_slice(&h);
    }
    if let Some(ci) = zip.entry(CODE_INTEGRITY_NAME) {
        let cat = zip.read(data, ci, MAX_PART)?;
        blob.extend_from_slice(b"AXCI");
        blob.extend_from_slice(&hash(&[&cat]));
    }
    Ok((alg, blob))
}

/// Whether `digest` has the shape of an APPX digest blob for `alg`: `APPX` and four or five
/// tagged hashes of `alg`'s length, with the tags in order.
pub fn is_digest_blob(digest: &[u8], alg: DigestAlgorithm) -> bool {
    let Some(mut rest) = digest.strip_prefix(b"APPX") else {
        return false;
    };
    let n = alg.output_len();
    for (i, tag) in [b"AXPC", b"AXCD", b"AXCT", b"AXBM", b"AXCI"]
        .iter()
        .enumerate()
    {
        if rest.is_empty() {
            return i == 4;
        }
        match rest.strip_prefix(&tag[..]) {
            Some(r) if r.len() >= n => rest = r.get(n..).unwrap_or_default(),
            _ => return false,
        }
    }
    rest.is_empty()
}

/// The DER of a signature entry's data (`PKCX` + DER).
pub fn p7x_der(p7x: &[u8]) -> Result<&[u8]> {
    p7x.strip_prefix(P7X_MAGIC)
        .ok_or_else(|| bad("AppxSignature.p7x does not start with PKCX", 0))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn crc32_of_known_text() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    /// `read_blocks` gives the same bytes as `read` in 64 KiB blocks (a file of exactly
    /// two blocks, one of two and a bit, an empty one), and stops a deflate bomb at the
    /// declared size instead of inflating it: a typed error, memory at one block.
    #[test]
    fn read_blocks_streams_and_stops_at_the_declared_size() {
        let zip = Zip {
            entries: Vec::new(),
            central_dir: 0..0,
            zip64_eocd: None,
            zip64_locator: None,
            eocd: 0..0,
        };
        let entry = |data: &[u8], plain: &[u8], method: Method| Entry {
            name: "f".into(),
            flags: 0,
            method,
            crc32: crc32(plain),
            compressed_size: data.len() as u64,
            size: plain.len() as u64,
            local: 0..data.len() as u64,
            data_offset: 0,
            central: 0..0,
        };
        for len in [0usize, 2 << 16, (2 << 16) + 7] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let deflated = miniz_oxide::deflate::compress_to_vec(&plain, 6);
            for (data, method) in [(&deflated, Method::Deflated), (&plain, Method::Stored)] {
                let e = entry(data, &plain, method);
                let mut blocks = Vec::new();
                zip.read_blocks(data, &e, |b| blocks.push(b.to_vec()))
                    .expect("read_blocks");
                assert!(blocks.iter().all(|b| b.len() <= BLOCK_SIZE as usize));
                assert_eq!(blocks.len(), plain.len().div_ceil(BLOCK_SIZE as usize));
                assert_eq!(blocks.concat(), zip.read(data, &e, u64::MAX).expect("read"));
            }
        }
        // 64 MiB of zeros deflated (~64 KiB), declared as 1 MiB: refused at 1 MiB.
        let zeros = vec![0u8; 64 << 20];
        let bomb = miniz_oxide::deflate::compress_to_vec(&zeros, 9);
        let mut e = entry(&bomb, &zeros[..1 << 20], Method::Deflated);
        let mut seen = 0u64;
        let err = zip
            .read_blocks(&bomb, &e, |b| seen += b.len() as u64)
            .expect_err("bomb");
        assert!(err.to_string().contains("more than"), "{err}");
        assert!(seen <= 1 << 20);
        // Declared larger than it inflates to, or with a wrong CRC: typed errors.
        e.size = (64 << 20) + 1;
        assert!(zip.read_blocks(&bomb, &e, |_| {}).is_err());
        e.size = 64 << 20;
        e.crc32 ^= 1;
        let err = zip.read_blocks(&bomb, &e, |_| {}).expect_err("crc");
        assert!(err.to_string().contains("CRC"), "{err}");
        // Truncated deflate data.
        e.crc32 ^= 1;
        assert!(zip
            .read_blocks(&bomb[..bomb.len() / 2], &e, |_| {})
            .is_err());
    }

    /// A reader that counts the bytes it hands out.
    struct Counting<R> {
        inner: R,
        read: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl<R: std::io::Read> std::io::Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.set(self.read.get() + n as u64);
            Ok(n)
        }
    }

    impl<R: std::io::Seek> std::io::Seek for Counting<R> {
        fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    /// 20,000 empty entries whose central records run in the reverse order of their local
    /// records: through a 64 KiB `BufReader`, parsing reads the file about once (the local
    /// headers in file order), not a buffer per entry.
    #[test]
    fn parsing_reads_local_headers_in_file_order() {
        let n = 20_000u32;
        let mut data = Vec::new();
        let mut offsets = Vec::new();
        for i in 0..n {
            let name = format!("f{i:05}");
            offsets.push(data.len() as u32);
            data.extend_from_slice(&SIG_LOCAL.to_le_bytes());
            data.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
            data.extend_from_slice(&[0; 12]); // CRC and sizes of an empty file
            data.extend_from_slice(&(name.len() as u16).to_le_bytes());
            data.extend_from_slice(&[0, 0]);
            data.extend_from_slice(name.as_bytes());
        }
        let cd_off = data.len() as u32;
        for i in (0..n).rev() {
            let name = format!("f{i:05}");
            data.extend_from_slice(&SIG_CENTRAL.to_le_bytes());
            data.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
            data.extend_from_slice(&[0; 12]);
            data.extend_from_slice(&(name.len() as u16).to_le_bytes());
            data.extend_from_slice(&[0; 12]);
            data.extend_from_slice(&offsets[i as usize].to_le_bytes());
            data.extend_from_slice(name.as_bytes());
        }
        let cd_size = data.len() as u32 - cd_off;
        data.extend_from_slice(&SIG_EOCD.to_le_bytes());
        data.extend_from_slice(&[0, 0, 0, 0]);
        data.extend_from_slice(&(n as u16).to_le_bytes());
        data.extend_from_slice(&(n as u16).to_le_bytes());
        data.extend_from_slice(&cd_size.to_le_bytes());
        data.extend_from_slice(&cd_off.to_le_bytes());
        data.extend_from_slice(&[0, 0]);
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let reader = Counting {
            inner: std::io::Cursor::new(&data),
            read: read.clone(),
        };
        let mut src =
            SeekSource::new(std::io::BufReader::with_capacity(64 << 10, reader)).expect("source");
        let zip = Zip::parse_from(&mut src).expect("parse");
        assert_eq!(zip.entries.len(), n as usize);
        assert_eq!(zip.entries[0].name, "f19999");
        assert!(
            read.get() <= 3 * data.len() as u64,
            "{} bytes read for a file of {}",
            read.get(),
            data.len()
        );
    }

    #[test]
    fn garbage_is_a_typed_error() {
        for data in [&b""[..], b"PK\x05\x06", &[0u8; 100][..]] {
            assert!(matches!(Zip::parse(data), Err(Error::MalformedZip { .. })));
        }
        // An end record claiming a huge directory.
        let mut e = vec![0x50, 0x4B, 0x05, 0x06, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        e.extend_from_slice(&[0xF0, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(Zip::parse(&e), Err(Error::MalformedZip { .. })));
    }

    #[test]
    fn xml_attributes_and_publishers() {
        let tag = r#"Identity Name="a&amp;b" Publisher='CN=&quot;x, y&quot;, O=z' Version="1""#;
        assert_eq!(attr(tag, "Name").as_deref(), Some("a&b"));
        assert_eq!(attr(tag, "Publisher").as_deref(), Some(r#"CN="x, y", O=z"#));
        assert_eq!(attr(tag, "Nam"), None);
        assert_eq!(
            parse_publisher(r#"CN="x, y", O=z, ST=w"#),
            [
                ("CN".to_string(), "x, y".to_string()),
                ("O".to_string(), "z".to_string()),
                ("S".to_string(), "w".to_string())
            ]
        );
        let xml = r#"<BlockMap HashMethod="http://www.w3.org/2001/04/xmlenc#sha256"><File Name="a\b.txt" Size="70000" LfhSize="39"><Block Hash="AAAA"/><Block Hash="AQID" Size="9"/></File><FileX/></BlockMap>"#;
        let files = parse_block_map(xml.as_bytes()).unwrap_or_default();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "a/b.txt");
        assert_eq!(files[0].blocks, [vec![0u8, 0, 0], vec![1, 2, 3]]);
        assert!(parse_block_map(b"<Block Hash=\"AAAA\"/>").is_err());
        assert_eq!(
            block_map_hash_method(xml.as_bytes()).ok(),
            Some(DigestAlgorithm::Sha256)
        );
    }

    #[test]
    fn blob_shape() {
        let mut b = b"APPX".to_vec();
        for t in [b"AXPC", b"AXCD", b"AXCT", b"AXBM"] {
            b.extend_from_slice(t);
            b.extend_from_slice(&[0; 32]);
        }
        assert!(is_digest_blob(&b, DigestAlgorithm::Sha256));
        assert!(!is_digest_blob(&b, DigestAlgorithm::Sha384));
        b.extend_from_slice(b"AXCI");
        b.extend_from_slice(&[0; 32]);
        assert!(is_digest_blob(&b, DigestAlgorithm::Sha256));
        b.push(0);
        assert!(!is_digest_blob(&b, DigestAlgorithm::Sha256));
    }
}

/// The size of a block in the block map.
pub const BLOCK_SIZE: u64 = 64 << 10;

/// Decodes XML's predefined entities and character references in an attribute value.
fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let tail = rest.get(i..).unwrap_or_default();
        let Some(end) = tail.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = tail.get(1..).unwrap_or_default();
            continue;
        };
        let ent = tail.get(1..end).unwrap_or_default();
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = tail.get(end + 1..).unwrap_or_default();
            }
            None => {
                out.push('&');
                rest = tail.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

/// The value of attribute `name` in the start tag `tag` (the text between `<` and `>`).
fn attr(tag: &str, name: &str) -> Option<String> {
    let mut from = 0;
    while let Some(i) = tag.get(from..)?.find(name) {
        let at = from + i;
        let before_ok = at == 0
            || tag
                .as_bytes()
                .get(at - 1)
                .is_some_and(|b| b.is_ascii_whitespace());
        let after = tag.get(at + name.len()..)?.trim_start();
        if before_ok {
            if let Some(v) = after.strip_prefix('=') {
                let v = v.trim_start();
                let q = v.chars().next()?;
                if q == '"' || q == '\'' {
                    let body = v.get(1..)?;
                    let end = body.find(q)?;
                    return Some(xml_unescape(body.get(..end)?));
                }
            }
        }
        from = at + name.len();
    }
    None
}

/// The start tags named `name` in `xml`, each as the text between `<` and `>` (with the
/// byte offset of `<`).
fn start_tags<'a>(xml: &'a str, name: &'a str) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    let open = format!("<{name}");
    let mut pos = 0;
    std::iter::from_fn(move || loop {
        let i = xml.get(pos..)?.find(&open)? + pos;
        let after = i + open.len();
        let next = xml.as_bytes().get(after).copied();
        pos = after;
        if matches!(next, Some(b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>')) {
            let end = xml.get(after..)?.find('>')? + after;
            pos = end;
            return Some((i, xml.get(i + 1..end)?));
        }
    })
}

/// One file of the block map.
#[derive(Debug, Clone)]
pub struct BlockMapFile {
    /// The name with `/` separators, as in the archive.
    pub name: String,
    /// The uncompressed size.
    pub size: u64,
    /// The local header's size the block map states, if it does.
    pub lfh_size: Option<u64>,
    /// The block hashes (decoded), in order.
    pub blocks: Vec<Vec<u8>>,
}

/// Parses the files and block hashes of `AppxBlockMap.xml` (a minimal reader for the
/// makeappx shape: `<File Name Size LfhSize>` holding `<Block Hash [Size]/>`).
pub fn parse_block_map(xml: &[u8]) -> Result<Vec<BlockMapFile>> {
    use base64::Engine;
    let xml = std::str::from_utf8(xml)
        .map_err(|e| bad(format!("AppxBlockMap.xml is not UTF-8: {e}"), 0))?;
    let mut files: Vec<BlockMapFile> = Vec::new();
    // Tags in document order: each <Block> belongs to the last <File>.
    let mut events: Vec<(usize, bool, &str)> = start_tags(xml, "File")
        .map(|(i, t)| (i, true, t))
        .chain(start_tags(xml, "Block").map(|(i, t)| (i, false, t)))
        .collect();
    events.sort_by_key(|e| e.0);
    for (at, is_file, tag) in events {
        if is_file {
            let name = attr(tag, "Name")
                .ok_or_else(|| bad("block map File without Name", at as u64))?
                .replace('\\', "/");
            let size = attr(tag, "Size")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(format!("block map File {name:?} without a Size"), at as u64))?;
            let lfh_size = attr(tag, "LfhSize").and_then(|s| s.parse().ok());
            files.push(BlockMapFile {
                name,
                size,
                lfh_size,
                blocks: Vec::new(),
            });
        } else {
            let f = files
                .last_mut()
                .ok_or_else(|| bad("block map Block outside a File", at as u64))?;
            let h = attr(tag, "Hash").ok_or_else(|| bad("Block without Hash", at as u64))?;
            let h = base64::engine::general_purpose::STANDARD
                .decode(h.trim())
                .map_err(|e| bad(format!("Block Hash is not base64: {e}"), at as u64))?;
            f.blocks.push(h);
        }
    }
    Ok(files)
}

/// Windows' install-time check of a package against its block map: every file of the
/// archive (but the block map, the content types and the signature) is listed, with its
/// size, its local header's size, and the hash of each 64 KiB block of its data; every
/// listed file exists. Returns one message per problem (empty: the package matches).
pub fn check_block_map(data: &[u8], zip: &Zip) -> Result<Vec<String>> {
    let mut check = PackageCheck::new(&mut SliceSource(data), zip, false, false)?;
    check.feed(
        0,
        data.get(..usize::try_from(zip.central_dir.start).unwrap_or(0))
            .unwrap_or_default(),
    );
    Ok(check.finish().problems)
}

/// The `Publisher` of the manifest's `Identity` (a package's `AppxManifest.xml` or a
/// bundle's `AppxMetadata/AppxBundleManifest.xml`).
pub fn manifest_publisher(data: &[u8], zip: &Zip) -> Result<String> {
    manifest_publisher_from(&mut SliceSource(data), zip)
}

/// [`manifest_publisher`] from any [`Source`].
pub fn manifest_publisher_from<S: Source + ?Sized>(src: &mut S, zip: &Zip) -> Result<String> {
    let e = zip
        .entry(MANIFEST_NAME)
        .or_else(|| zip.entry(BUNDLE_MANIFEST_NAME))
        .ok_or_else(|| bad("no AppxManifest.xml or bundle manifest in the package", 0))?;
    let xml = zip.read_from(src, e, MAX_PART)?;
    let xml = String::from_utf8_lossy(&xml).into_owned();
    let found = start_tags(&xml, "Identity").find_map(|(_, t)| attr(t, "Publisher"));
    found.ok_or_else(|| bad("the manifest's Identity has no Publisher", e.local.start))
}

/// The attributes of a distinguished name written as Windows writes a Publisher
/// (`CN=a, O=b`, most specific first), as (upper-case type, value) pairs.
pub fn parse_publisher(dn: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut parts = Vec::new();
    for c in dn.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' | ';' | '+' if !quoted => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            let k = k.trim().to_ascii_uppercase();
            let k = if k == "ST" { "S".to_string() } else { k };
            out.push((k, v.trim().to_string()));
        }
    }
    out
}

/// The subject of `cert` as Publisher-style pairs (most specific first).
pub fn subject_pairs(cert: &x509_cert::Certificate) -> Vec<(String, String)> {
    use const_oid::db::rfc4519;
    let mut out = Vec::new();
    for rdn in cert.tbs_certificate.subject.0.iter().rev() {
        for atv in rdn.0.iter() {
            let o = atv.oid;
            let k = if o == rfc4519::CN {
                "CN"
            } else if o == rfc4519::O {
                "O"
            } else if o == rfc4519::OU {
                "OU"
            } else if o == rfc4519::L {
                "L"
            } else if o == rfc4519::ST {
                "S"
            } else if o == rfc4519::C {
                "C"
            } else if o == rfc4519::STREET {
                "STREET"
            } else if o == rfc4519::SERIAL_NUMBER {
                "SERIALNUMBER"
            } else if o == rfc4519::DC {
                "DC"
            } else if o == crate::oid::EMAIL_ADDRESS {
                "E"
            } else {
                ""
            };
            let key = if k.is_empty() {
                o.to_string()
            } else {
                k.to_string()
            };
            let v = String::from_utf8_lossy(atv.value.value()).into_owned();
            out.push((key, v));
        }
    }
    out
}

/// Whether two Publishers name the same subject (the same attributes with the same
/// values, in any order): a bundle's and its inner packages'.
pub fn publishers_match(a: &str, b: &str) -> bool {
    let mut a = parse_publisher(a);
    let mut b = parse_publisher(b);
    a.sort();
    b.sort();
    a == b
}

/// Whether the manifest `publisher` names `cert`'s subject, as Windows requires at
/// install: the same attributes with the same values. The order of the RDNs is not
/// compared (names are written most-specific-first by convention, whatever their encoded
/// order), so this check is at most as strict as Windows'.
pub fn publisher_matches(publisher: &str, cert: &x509_cert::Certificate) -> bool {
    let mut a = parse_publisher(publisher);
    let mut b = subject_pairs(cert);
    a.sort();
    b.sort();
    a == b
}
