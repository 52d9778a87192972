//! MSI installers (OLE compound files): what an Authenticode signature of one covers, where
//! it lives, and the `MsiDigitalSignatureEx` pre-hash, read through the `cfb` crate from any
//! `Read + Seek`.
//!
//! - The PKCS#7 is the root stream `\x05DigitalSignature`; the optional root stream
//!   `\x05MsiDigitalSignatureEx` holds a pre-hash of the entries' metadata. Both are left
//!   out of the digest.
//! - The content walk ([`content_walk`]): a storage's children sorted byte-wise by their raw
//!   UTF-16LE names (a prefix first), each stream's content in full, each storage recursed
//!   into, then the storage's 16-byte CLSID (the root's too).
//! - The metadata walk ([`metadata_walk`], the Ex stream's input): per entry its name (no
//!   NUL), its CLSID (storages) or the low 4 bytes of its length (streams), its state bits
//!   and its creation and modification FILETIMEs; the root only its CLSID and state bits.
//!   The Ex stream holds the digest of this walk; with it present, the signed digest is
//!   that of the Ex content followed by the content walk.
//!
//! Streams are read in 64 KiB pieces: memory stays flat whatever their size. The walks are
//! bounded (storage depth, entries); everything `cfb` refuses is a typed [`MsiError`].
use std::{
    cmp::Ordering,
    io::{self, Read, Seek},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

pub use cfb::CompoundFile;

use crate::digest::Sink;

/// The first 8 bytes of every OLE compound file.
pub const MAGIC: &[u8; 8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
/// The SpcSipInfo GUID of the MSI SIP, `F1100C00-0000-0000-C000-000000000046`, as the bytes
/// signers write.
pub const SIP_MSI: [u8; 16] = [
    0xF1, 0x10, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46,
];
/// The root stream holding the PKCS#7.
pub const SIGNATURE_STREAM: &str = "\u{5}DigitalSignature";
/// The root stream holding the metadata pre-hash.
pub const SIGNATURE_EX_STREAM: &str = "\u{5}MsiDigitalSignatureEx";
/// The largest signature stream read.
pub const MAX_SIGNATURE: u64 = 16 << 20;
/// The largest Ex stream read (it holds one digest).
pub const MAX_EX: u64 = 64;
/// The deepest storage nesting followed.
pub const MAX_DEPTH: usize = 64;
/// The most entries walked.
pub const MAX_ENTRIES: usize = 1 << 20;
/// FILETIME of the Unix epoch.
const UNIX_EPOCH_FILETIME: u64 = 116_444_736_000_000_000;
/// The read buffer of the content walk.
const CHUNK: usize = 64 << 10;

/// What is wrong with a compound file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MsiError {
    /// Reading the file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being read.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// The compound file is malformed (as `cfb` reports it, or a limit of the walk).
    #[error("malformed compound file: {0}")]
    Malformed(String),
}

/// Result with [`MsiError`].
pub type Result<T, E = MsiError> = std::result::Result<T, E>;

/// A `cfb` error: bad data is a malformed file, the rest I/O.
pub fn cfb_error(context: &str, e: io::Error) -> MsiError {
    match e.kind() {
        io::ErrorKind::InvalidData
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::NotFound
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::AlreadyExists => MsiError::Malformed(format!("{context}: {e}")),
        _ => MsiError::Io {
            context: context.to_string(),
            source: e,
        },
    }
}

/// Opens a compound file for reading (and writing, if `F` writes).
pub fn open<F: Read + Seek>(inner: F) -> Result<CompoundFile<F>> {
    CompoundFile::open(inner).map_err(|e| cfb_error("opening the compound file", e))
}

/// Opens a compound file and measures it: the length bounds the content walk.
pub fn open_measured<F: Read + Seek>(mut inner: F) -> Result<(CompoundFile<F>, u64)> {
    let len = inner
        .seek(io::SeekFrom::End(0))
        .and_then(|l| inner.seek(io::SeekFrom::Start(0)).map(|_| l))
        .map_err(|e| MsiError::Io {
            context: "measuring the compound file".into(),
            source: e,
        })?;
    Ok((open(inner)?, len))
}

/// The `SpcSipInfo` of an MSI signature, as osslsigncode and SignTool write it: version 1,
/// the MSI SIP GUID and five zero integers.
pub fn sip_info() -> der::Result<crate::spc::SpcSipInfo> {
    crate::spc::SpcSipInfo::new(1, SIP_MSI)
}

/// An entry's raw name: its UTF-16LE bytes.
pub fn raw_name(name: &str) -> Vec<u8> {
    name.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// The digest order: byte-wise on the raw names, a prefix first.
pub fn digest_order(a: &str, b: &str) -> Ordering {
    raw_name(a).cmp(&raw_name(b))
}

/// One child of a storage, as the walks need it.
#[derive(Clone, Debug)]
struct Child {
    path: PathBuf,
    raw: Vec<u8>,
    stream: bool,
    len: u64,
    clsid: [u8; 16],
    state_bits: u32,
    created: u64,
    modified: u64,
}

fn filetime(t: SystemTime) -> u64 {
    let hundreds = |d: std::time::Duration| u64::try_from(d.as_nanos() / 100).unwrap_or(u64::MAX);
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH_FILETIME.saturating_add(hundreds(d)),
        Err(e) => UNIX_EPOCH_FILETIME.saturating_sub(hundreds(e.duration())),
    }
}

fn child(e: &cfb::Entry) -> Child {
    Child {
        path: e.path().to_path_buf(),
        raw: raw_name(e.name()),
        stream: e.is_stream(),
        len: e.len(),
        clsid: e.clsid().to_bytes_le(),
        state_bits: e.state_bits(),
        created: filetime(e.created()),
        modified: filetime(e.modified()),
    }
}

/// The children of the storage at `path`, in digest order, without the signature streams
/// when it is the root. `count` is the running entry count of the walk.
fn children<F: Seek>(cf: &CompoundFile<F>, path: &Path, count: &mut usize) -> Result<Vec<Child>> {
    let root = path == Path::new("/");
    let entries = cf
        .read_storage(path)
        .map_err(|e| cfb_error("reading a storage", e))?;
    let mut out = Vec::new();
    for e in entries {
        *count += 1;
        if *count > MAX_ENTRIES {
            return Err(MsiError::Malformed(format!(
                "more than {MAX_ENTRIES} entries"
            )));
        }
        if root && (e.name() == SIGNATURE_STREAM || e.name() == SIGNATURE_EX_STREAM) {
            continue;
        }
        out.push(child(&e));
    }
    out.sort_by(|a, b| a.raw.cmp(&b.raw));
    Ok(out)
}

/// Feeds the content walk of the whole file to `sink`: every stream's content and every
/// storage's CLSID, in the digest order, without the signature streams.
///
/// `file_len` is the compound file's length: in a well-formed file every sector belongs to
/// one stream, so the streams cannot add up to more; more means cross-linked sector chains
/// (the same sectors read again and again) and is refused before they are read. The walk
/// therefore reads at most `file_len` bytes.
pub fn content_walk<F: Read + Seek>(
    cf: &mut CompoundFile<F>,
    file_len: u64,
    sink: &mut dyn Sink,
) -> Result<()> {
    let mut walk = Walk {
        count: 0,
        budget: file_len,
        buf: vec![0u8; CHUNK],
    };
    let root_clsid = cf.root_entry().clsid().to_bytes_le();
    content_storage(cf, Path::new("/"), root_clsid, 0, &mut walk, sink)
}

/// The running state of a content walk.
struct Walk {
    count: usize,
    budget: u64,
    buf: Vec<u8>,
}

fn content_storage<F: Read + Seek>(
    cf: &mut CompoundFile<F>,
    path: &Path,
    clsid: [u8; 16],
    depth: usize,
    walk: &mut Walk,
    sink: &mut dyn Sink,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(MsiError::Malformed(format!(
            "storages nested deeper than {MAX_DEPTH}"
        )));
    }
    let children = children(cf, path, &mut walk.count)?;
    for c in children.iter().filter(|c| c.stream) {
        walk.budget = walk.budget.checked_sub(c.len).ok_or_else(|| {
            MsiError::Malformed(
                "the streams add up to more than the file (cross-linked sector chains)".into(),
            )
        })?;
    }
    for c in children {
        if c.stream {
            let buf = walk.buf.as_mut_slice();
            let mut s = cf
                .open_stream(&c.path)
                .map_err(|e| cfb_error("opening a stream", e))?;
            let mut left = c.len;
            while left > 0 {
                let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                let piece = buf.get_mut(..want).unwrap_or_default();
                let n = s
                    .read(piece)
                    .map_err(|e| cfb_error("reading a stream", e))?;
                if n == 0 {
                    return Err(MsiError::Malformed(format!(
                        "stream {} ends {left} bytes before its length",
                        c.path.display()
                    )));
                }
                sink.feed(piece.get(..n).unwrap_or_default());
                left -= n as u64;
            }
        } else {
            content_storage(cf, &c.path, c.clsid, depth + 1, walk, sink)?;
        }
    }
    sink.feed(&clsid);
    Ok(())
}

/// Feeds the metadata walk (the input of the `MsiDigitalSignatureEx` pre-hash) to `sink`.
pub fn metadata_walk<F: Seek>(cf: &CompoundFile<F>, sink: &mut dyn Sink) -> Result<()> {
    let root = cf.root_entry();
    sink.feed(&root.clsid().to_bytes_le());
    sink.feed(&root.state_bits().to_le_bytes());
    let mut count = 0usize;
    metadata_storage(cf, Path::new("/"), 0, &mut count, sink)
}

fn metadata_entry(c: &Child, sink: &mut dyn Sink) {
    sink.feed(&c.raw);
    if c.stream {
        sink.feed(&(c.len as u32).to_le_bytes());
    } else {
        sink.feed(&c.clsid);
    }
    sink.feed(&c.state_bits.to_le_bytes());
    sink.feed(&c.created.to_le_bytes());
    sink.feed(&c.modified.to_le_bytes());
}

fn metadata_storage<F: Seek>(
    cf: &CompoundFile<F>,
    path: &Path,
    depth: usize,
    count: &mut usize,
    sink: &mut dyn Sink,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(MsiError::Malformed(format!(
            "storages nested deeper than {MAX_DEPTH}"
        )));
    }
    for c in children(cf, path, count)? {
        metadata_entry(&c, sink);
        if !c.stream {
            metadata_storage(cf, &c.path, depth + 1, count, sink)?;
        }
    }
    Ok(())
}

/// The content of the root stream `name`, if there is one; longer than `max` is an error.
pub fn read_root_stream<F: Read + Seek>(
    cf: &mut CompoundFile<F>,
    name: &str,
    max: u64,
) -> Result<Option<Vec<u8>>> {
    let path = Path::new("/").join(name);
    if !cf.is_stream(&path) {
        return Ok(None);
    }
    let len = cf
        .entry(&path)
        .map_err(|e| cfb_error("reading the signature stream", e))?
        .len();
    if len > max {
        return Err(MsiError::Malformed(format!(
            "the {} stream is {len} bytes long (at most {max} are read)",
            name.trim_start_matches('\u{5}')
        )));
    }
    let mut s = cf
        .open_stream(&path)
        .map_err(|e| cfb_error("opening the signature stream", e))?;
    let mut out = Vec::new();
    (&mut s)
        .take(max)
        .read_to_end(&mut out)
        .map_err(|e| cfb_error("reading the signature stream", e))?;
    if out.len() as u64 != len {
        return Err(MsiError::Malformed(format!(
            "the {} stream is shorter than its length",
            name.trim_start_matches('\u{5}')
        )));
    }
    Ok(Some(out))
}

/// The signature streams of an MSI: the PKCS#7 and the Ex pre-hash, when present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MsiSignatures {
    /// `\x05DigitalSignature`.
    pub signature: Option<Vec<u8>>,
    /// `\x05MsiDigitalSignatureEx`.
    pub ex: Option<Vec<u8>>,
}

/// Reads both signature streams.
pub fn read_signatures<F: Read + Seek>(cf: &mut CompoundFile<F>) -> Result<MsiSignatures> {
    Ok(MsiSignatures {
        signature: read_root_stream(cf, SIGNATURE_STREAM, MAX_SIGNATURE)?,
        ex: read_root_stream(cf, SIGNATURE_EX_STREAM, MAX_EX)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    struct Bytes(Vec<u8>);
    impl Sink for Bytes {
        fn feed(&mut self, data: &[u8]) {
            self.0.extend_from_slice(data);
        }
    }

    /// The SpcSipInfo osslsigncode 2.9 writes for an MSI (`openssl asn1parse` of a wixl MSI
    /// it signed).
    #[test]
    fn sip_info_matches_osslsigncode() {
        let want = concat!(
            "30240201010410f1100c0000000000c000000000000046",
            "020100020100020100020100020100"
        );
        use der::Encode;
        assert_eq!(hex_of(&sip_info().unwrap().to_der().unwrap()), want);
    }

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn prefix_sorts_first_and_order_is_bytewise() {
        assert_eq!(digest_order("ab", "abc"), Ordering::Less);
        // U+0100 is 00 01 in UTF-16LE: it sorts before 'b' (62 00) byte-wise.
        assert_eq!(digest_order("\u{100}", "b"), Ordering::Less);
        assert_eq!(digest_order("B", "a"), Ordering::Less);
    }

    /// The content walk: children in raw-name order, storages recursed, CLSIDs after the
    /// children, the signature streams left out.
    #[test]
    fn content_walk_order() {
        let mut cf = CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        cf.create_stream("/b").unwrap().write_all(b"B").unwrap();
        cf.create_stream("/a").unwrap().write_all(b"A").unwrap();
        cf.create_storage("/s").unwrap();
        cf.create_stream("/s/x").unwrap().write_all(b"X").unwrap();
        cf.create_stream(format!("/{SIGNATURE_STREAM}"))
            .unwrap()
            .write_all(b"sig")
            .unwrap();
        cf.flush().unwrap();
        let mut out = Bytes(Vec::new());
        content_walk(&mut cf, 1 << 20, &mut out).unwrap();
        let mut want = b"ABX".to_vec();
        want.extend_from_slice(&[0; 16]);
        want.extend_from_slice(&[0; 16]);
        assert_eq!(out.0, want);
        let sigs = read_signatures(&mut cf).unwrap();
        assert_eq!(sigs.signature.as_deref(), Some(&b"sig"[..]));
        assert_eq!(sigs.ex, None);
        // Streams longer in all than the file: refused before they are read.
        let mut none = Bytes(Vec::new());
        assert!(matches!(
            content_walk(&mut cf, 1, &mut none),
            Err(MsiError::Malformed(_))
        ));
        assert!(none.0.is_empty());
    }

    #[test]
    fn garbage_is_a_typed_error() {
        for data in [vec![], MAGIC.to_vec(), vec![0u8; 4096], {
            let mut v = MAGIC.to_vec();
            v.resize(1536, 0xff);
            v
        }] {
            assert!(matches!(
                open(Cursor::new(data)),
                Err(MsiError::Malformed(_))
            ));
        }
    }
}
