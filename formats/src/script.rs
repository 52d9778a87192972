//! Authenticode for script files (groundwork for signing PowerShell, MOF, JScript, VBScript
//! and WSF files): the kind of a script, its text encoding, the signature block at its end,
//! the digest input Windows hashes, and writing a block.
//!
//! Two ways in, with the same rules: [`Script`] works on a whole file in memory (`&[u8]`);
//! [`ScriptLayout`] on a file read through `Read + Seek`, in memory independent of the
//! file's size: it finds the block from the end of the file (reading only the lines it
//! looks at, and holding at most [`MAX_BLOCK_BASE64`] characters of the block), then one
//! streaming pass checks the text, hashes it and copies it. Both run in time linear in the
//! file's size and never re-encode the text outside the signature block:
//! [`Script::unsigned_bytes`] is the original file with only the block taken out, byte for
//! byte.
//!
//! The signature block is the DER PKCS#7, base64 in 64-character lines, each line
//! wrapped in the kind's comment markers, written with CRLF line endings after the text
//! (for `.wsf` before the last `</job>`):
//!
//! ```text
//! <text>\r\n# SIG # Begin signature block\r\n# MIIx...\r\n...# SIG # End signature block\r\n
//! ```
//!
//! The digest input ([`Script::digest_input`]) is the text without the block, as UTF-16LE:
//!
//! - PowerShell, PowerShell XML and MOF hash a byte order mark if the file has one (as
//!   U+FEFF, whichever the file's encoding);
//! - JScript, VBScript and WSF hash the text without its byte order mark and then the number
//!   of UTF-16 code units hashed, as a 32-bit little-endian integer.
//!
//! Text encodings ([`Encoding`]): a UTF-8 byte order mark means UTF-8, `FF FE` means
//! UTF-16LE. Without one, PowerShell (`.ps1 .psm1 .psd1`), MOF and WSF files are UTF-8 when
//! they are valid UTF-8 and Windows-1252 otherwise; PowerShell XML (`.ps1xml .psc1 .cdxml`),
//! JScript and VBScript files are always Windows-1252 (Windows does not detect BOM-less UTF-8
//! for them). The five bytes Windows-1252 leaves undefined (81 8D 8F 90 9D) decode to the C1
//! control characters of the same value.
//!
//! Other signers differ on BOM-less text and on JScript (`tests/script_digest.rs` pins each
//! difference against osslsigncode):
//!
//! - osslsigncode (2.9 to 2.14) reads every BOM-less script as UTF-8, hashing U+FFFD for each
//!   byte that does not start a valid sequence; so for BOM-less non-ASCII PowerShell XML and
//!   BOM-less text that is not UTF-8 its digest is not this module's.
//! - osslsigncode 2.10+ signs `.js` with the PowerShell SpcSipInfo and the PowerShell digest
//!   rule (byte order mark hashed, no length), not Windows' JScript SIP as here and in jsign.
//! - jsign reads BOM-less `.ps1xml`, `.js` and `.vbs` as Windows-1252, as here.
//! - OpenAuthenticode models the Windows PowerShell SIP as deciding from the first 32 bytes
//!   only: BOM-less text is UTF-8 when those bytes hold a valid multi-byte UTF-8 sequence,
//!   else the ANSI code page. This module looks at the whole file instead, so a BOM-less
//!   UTF-8 PowerShell or MOF file whose first non-ASCII character comes after byte 32 is
//!   UTF-8 here but (by that model) ANSI on Windows; not verified against Windows yet.

use std::ops::Range;
use std::path::Path;

use base64::Engine as _;

mod decode;
mod locate;
mod stream;

pub use stream::ScriptLayout;

/// What can go wrong reading or writing a script's signature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The file name's extension is not a script kind Authenticode signs.
    #[error("not a signable script extension: {0:?}")]
    UnsupportedExtension(String),
    /// The file starts with a UTF-16 big-endian byte order mark.
    #[error("UTF-16 big-endian scripts are not supported")]
    Utf16BigEndian,
    /// A UTF-16LE file with an odd number of bytes.
    #[error("UTF-16LE text has an odd number of bytes")]
    OddUtf16Length,
    /// A UTF-16LE file with an unpaired surrogate.
    #[error("invalid UTF-16LE text at byte {offset}")]
    InvalidUtf16 {
        /// Byte offset of the unpaired surrogate.
        offset: usize,
    },
    /// A file with a UTF-8 byte order mark whose text is not UTF-8.
    #[error("invalid UTF-8 after a UTF-8 byte order mark, at byte {offset}")]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// A begin marker with signature lines after it but no end marker.
    #[error("truncated signature block: begin marker at byte {begin} has no end marker")]
    TruncatedBlock {
        /// Byte offset of the begin marker line.
        begin: usize,
    },
    /// An end marker at the end of the file without a begin marker before the lines.
    #[error("signature block has an end marker but no begin marker")]
    MissingBegin,
    /// A line inside the signature block that is not a commented base64 line.
    #[error("signature block line at byte {offset} is not a commented base64 line")]
    InvalidBlockLine {
        /// Byte offset of the line.
        offset: usize,
    },
    /// A signature block with no base64 lines.
    #[error("signature block is empty")]
    EmptyBlock,
    /// The block's base64 does not decode.
    #[error("signature block is not valid base64")]
    InvalidBase64,
    /// The block's bytes are not exactly one DER SEQUENCE.
    #[error("signature block does not hold one DER PKCS#7 SEQUENCE")]
    NotDer,
    /// A `.wsf` file without a `</job>` element to put the signature before.
    #[error(".wsf file has no </job> element")]
    NoJobElement,
    /// The PKCS#7 to embed is empty.
    #[error("the PKCS#7 to embed is empty")]
    EmptyPkcs7,
    /// The text is longer than the 32-bit length a WSH digest records (or, on a 32-bit
    /// target, than memory can address).
    #[error("script too large for a Windows Script Host digest")]
    TooLarge,
    /// A signature block with more than `limit` base64 characters (see
    /// [`MAX_BLOCK_BASE64`]).
    #[error("signature block larger than {limit} base64 characters")]
    BlockTooLarge {
        /// The limit.
        limit: usize,
    },
    /// Reading the script or writing its copy failed.
    #[error("{context}: {message}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
        /// The I/O error's message.
        message: String,
    },
}

impl ScriptError {
    pub(crate) fn io(context: &'static str, e: &std::io::Error) -> Self {
        ScriptError::Io {
            context,
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// A `Result` with a [`ScriptError`].
pub type Result<T> = std::result::Result<T, ScriptError>;

/// SpcSipInfo GUID bytes (in the order the GUID is written) of the PowerShell SIP, also used
/// for PowerShell XML and MOF files.
pub const SIP_POWERSHELL: [u8; 16] = [
    0x1f, 0xcc, 0x3b, 0x60, 0x59, 0x4b, 0x08, 0x4e, 0xb7, 0x24, 0xd2, 0xc6, 0x29, 0x7e, 0xf3, 0x51,
];
/// SpcSipInfo GUID bytes of the JScript SIP.
pub const SIP_JSCRIPT: [u8; 16] = [
    0x10, 0xe0, 0xc9, 0x06, 0xce, 0x38, 0xd4, 0x11, 0xa2, 0xa3, 0x00, 0x10, 0x4b, 0xd3, 0x50, 0x90,
];
/// SpcSipInfo GUID bytes of the VBScript SIP.
pub const SIP_VBSCRIPT: [u8; 16] = [
    0x4e, 0xf0, 0x29, 0x16, 0x99, 0x27, 0xb5, 0x4d, 0x8f, 0xe5, 0xac, 0xe1, 0x0f, 0x17, 0xeb, 0xab,
];
/// SpcSipInfo GUID bytes of the Windows Script File SIP.
pub const SIP_WSF: [u8; 16] = [
    0x70, 0x05, 0x61, 0x1a, 0xce, 0x38, 0xd4, 0x11, 0xa2, 0xa3, 0x00, 0x10, 0x4b, 0xd3, 0x50, 0x90,
];

/// The kinds of script Authenticode signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScriptKind {
    /// PowerShell script, module or data file: `.ps1 .psm1 .psd1`.
    PowerShell,
    /// XML-based PowerShell files: `.ps1xml .psc1 .cdxml`.
    PowerShellXml,
    /// Managed Object Format: `.mof`.
    Mof,
    /// JScript: `.js`.
    JScript,
    /// VBScript: `.vbs`.
    VbScript,
    /// Windows Script File: `.wsf`.
    Wsf,
}

/// The comment markers of a kind's signature block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommentMarkers {
    /// The whole first line of the block.
    pub begin: &'static str,
    /// The whole last line of the block.
    pub end: &'static str,
    /// What starts each base64 line.
    pub line_prefix: &'static str,
    /// What ends each base64 line (before the line break).
    pub line_suffix: &'static str,
}

impl ScriptKind {
    /// Every kind.
    pub const ALL: [ScriptKind; 6] = [
        ScriptKind::PowerShell,
        ScriptKind::PowerShellXml,
        ScriptKind::Mof,
        ScriptKind::JScript,
        ScriptKind::VbScript,
        ScriptKind::Wsf,
    ];

    /// The kind for a file extension (without the dot, any case).
    pub fn from_extension(ext: &str) -> Result<Self> {
        let kind = match ext.to_ascii_lowercase().as_str() {
            "ps1" | "psm1" | "psd1" => ScriptKind::PowerShell,
            "ps1xml" | "psc1" | "cdxml" => ScriptKind::PowerShellXml,
            "mof" => ScriptKind::Mof,
            "js" => ScriptKind::JScript,
            "vbs" => ScriptKind::VbScript,
            "wsf" => ScriptKind::Wsf,
            _ => return Err(ScriptError::UnsupportedExtension(ext.to_owned())),
        };
        Ok(kind)
    }

    /// The kind for a file name, by its extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        Self::from_extension(ext)
    }

    /// The extensions of this kind (lower case, without the dot).
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            ScriptKind::PowerShell => &["ps1", "psm1", "psd1"],
            ScriptKind::PowerShellXml => &["ps1xml", "psc1", "cdxml"],
            ScriptKind::Mof => &["mof"],
            ScriptKind::JScript => &["js"],
            ScriptKind::VbScript => &["vbs"],
            ScriptKind::Wsf => &["wsf"],
        }
    }

    /// The signature block's comment markers.
    pub fn markers(self) -> CommentMarkers {
        match self {
            ScriptKind::PowerShell => CommentMarkers {
                begin: "# SIG # Begin signature block",
                end: "# SIG # End signature block",
                line_prefix: "# ",
                line_suffix: "",
            },
            ScriptKind::PowerShellXml => CommentMarkers {
                begin: "<!-- SIG # Begin signature block -->",
                end: "<!-- SIG # End signature block -->",
                line_prefix: "<!-- ",
                line_suffix: " -->",
            },
            ScriptKind::Mof => CommentMarkers {
                begin: "/* SIG # Begin signature block */",
                end: "/* SIG # End signature block */",
                line_prefix: "/* ",
                line_suffix: " */",
            },
            ScriptKind::JScript => CommentMarkers {
                begin: "// SIG // Begin signature block",
                end: "// SIG // End signature block",
                line_prefix: "// SIG // ",
                line_suffix: "",
            },
            ScriptKind::VbScript => CommentMarkers {
                begin: "'' SIG '' Begin signature block",
                end: "'' SIG '' End signature block",
                line_prefix: "'' SIG '' ",
                line_suffix: "",
            },
            ScriptKind::Wsf => CommentMarkers {
                begin: "<signature>",
                end: "</signature>",
                line_prefix: "** SIG ** ",
                line_suffix: "",
            },
        }
    }

    /// The SpcSipInfo GUID bytes.
    pub fn sip_guid(self) -> [u8; 16] {
        match self {
            ScriptKind::PowerShell | ScriptKind::PowerShellXml | ScriptKind::Mof => SIP_POWERSHELL,
            ScriptKind::JScript => SIP_JSCRIPT,
            ScriptKind::VbScript => SIP_VBSCRIPT,
            ScriptKind::Wsf => SIP_WSF,
        }
    }

    /// The SpcSipInfo version.
    pub fn sip_version(self) -> u32 {
        match self {
            ScriptKind::PowerShell | ScriptKind::PowerShellXml | ScriptKind::Mof => 65536,
            ScriptKind::JScript | ScriptKind::VbScript | ScriptKind::Wsf => 1,
        }
    }

    /// The SpcSipInfo of this kind's SIP (the value of an SpcAttributeTypeAndOptionalValue
    /// of type SPC_SIPINFO_OBJID).
    pub fn sip_info(self) -> der::Result<crate::spc::SpcSipInfo> {
        crate::spc::SpcSipInfo::new(self.sip_version(), self.sip_guid())
    }

    /// Whether the digest includes a byte order mark (PowerShell, PowerShell XML, MOF).
    pub fn hashes_bom(self) -> bool {
        matches!(
            self,
            ScriptKind::PowerShell | ScriptKind::PowerShellXml | ScriptKind::Mof
        )
    }

    /// Whether the digest ends with the text's length in UTF-16 code units (the Windows
    /// Script Host kinds: JScript, VBScript, WSF).
    pub fn hashes_length(self) -> bool {
        !self.hashes_bom()
    }

    /// Whether BOM-less text is read as UTF-8 when valid (else always Windows-1252).
    pub fn detects_utf8(self) -> bool {
        matches!(
            self,
            ScriptKind::PowerShell | ScriptKind::Mof | ScriptKind::Wsf
        )
    }
}

/// A script file's text encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8, with or without a byte order mark.
    Utf8 {
        /// Whether the file starts with `EF BB BF`.
        bom: bool,
    },
    /// UTF-16LE with its byte order mark `FF FE`.
    Utf16Le,
    /// Windows-1252 (no byte order mark).
    Windows1252,
}

impl Encoding {
    /// Length in bytes of the byte order mark.
    pub fn bom_len(self) -> usize {
        match self {
            Encoding::Utf8 { bom: true } => 3,
            Encoding::Utf16Le => 2,
            _ => 0,
        }
    }

    /// Bytes per ASCII character.
    fn width(self) -> usize {
        match self {
            Encoding::Utf16Le => 2,
            _ => 1,
        }
    }
}

/// Detects the encoding of `bytes` for a script of `kind` and checks the text decodes.
pub fn detect_encoding(kind: ScriptKind, bytes: &[u8]) -> Result<Encoding> {
    if let Some(rest) = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        std::str::from_utf8(rest).map_err(|e| ScriptError::InvalidUtf8 {
            offset: 3 + e.valid_up_to(),
        })?;
        return Ok(Encoding::Utf8 { bom: true });
    }
    if let Some(rest) = bytes.strip_prefix(&[0xff, 0xfe]) {
        if rest.len() % 2 != 0 {
            return Err(ScriptError::OddUtf16Length);
        }
        check_utf16(rest)?;
        return Ok(Encoding::Utf16Le);
    }
    if bytes.starts_with(&[0xfe, 0xff]) {
        return Err(ScriptError::Utf16BigEndian);
    }
    if kind.detects_utf8() && std::str::from_utf8(bytes).is_ok() {
        Ok(Encoding::Utf8 { bom: false })
    } else {
        Ok(Encoding::Windows1252)
    }
}

/// Checks UTF-16LE code units (after the BOM) pair their surrogates.
fn check_utf16(rest: &[u8]) -> Result<()> {
    let units = rest.chunks_exact(2).map(|c| {
        u16::from_le_bytes([
            c.first().copied().unwrap_or(0),
            c.get(1).copied().unwrap_or(0),
        ])
    });
    let mut offset = 2;
    for r in char::decode_utf16(units) {
        match r {
            Ok(c) => offset += 2 * c.len_utf16(),
            Err(_) => return Err(ScriptError::InvalidUtf16 { offset }),
        }
    }
    Ok(())
}

/// A signature block found at the end of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureBlock {
    /// The bytes of the file that belong to the block: from the line break before the begin
    /// marker to the line break after the end marker (to the end of the file, trailing
    /// blank space included, except for `.wsf` where the block ends before `</job>`).
    pub range: Range<usize>,
    /// The decoded PKCS#7 (one DER SEQUENCE; not otherwise checked).
    pub pkcs7: Vec<u8>,
}

/// The most base64 characters a signature block may hold (16 MiB, 12 MiB of PKCS#7: far
/// more than any real signature, nested ones and time stamps included). A longer block is
/// [`ScriptError::BlockTooLarge`]; it is the only part of a script ever held in memory.
pub const MAX_BLOCK_BASE64: usize = 16 << 20;

/// Decodes a block's base64 and checks it is one DER SEQUENCE.
fn decode_block(b64: &[u8]) -> Result<Vec<u8>> {
    let pkcs7 = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| ScriptError::InvalidBase64)?;
    let tlv = crate::asn1::Tlv::exactly(&pkcs7).map_err(|_| ScriptError::NotDer)?;
    if tlv.tag != crate::asn1::tag::SEQUENCE {
        return Err(ScriptError::NotDer);
    }
    Ok(pkcs7)
}

/// A script file read for signing or verifying, in memory. [`ScriptLayout`] does the same
/// for a file read from disk, in memory independent of its size.
#[derive(Clone, Debug)]
pub struct Script<'a> {
    kind: ScriptKind,
    bytes: &'a [u8],
    encoding: Encoding,
    block: Option<SignatureBlock>,
}

fn block_range(r: Range<u64>) -> Result<Range<usize>> {
    let start = usize::try_from(r.start).map_err(|_| ScriptError::TooLarge)?;
    let end = usize::try_from(r.end).map_err(|_| ScriptError::TooLarge)?;
    Ok(start..end)
}

impl<'a> Script<'a> {
    /// Reads a script: detects its encoding and finds a signature block at its end.
    ///
    /// A block is recognised only where writers put it (the end of the text; for `.wsf`
    /// just before the last `</job>`): marker lines earlier in the text, in a string or a
    /// comment, are text. A begin marker followed by signature lines with no end marker is
    /// [`ScriptError::TruncatedBlock`]; a block whose lines or base64 or DER are damaged is an
    /// error too.
    pub fn parse(kind: ScriptKind, bytes: &'a [u8]) -> Result<Self> {
        let encoding = detect_encoding(kind, bytes)?;
        let bom = encoding.bom_len();
        let body = bytes.get(bom..).unwrap_or_default();
        let mut u =
            locate::Units::new(body, bom as u64, body.len() as u64, encoding.width() as u64);
        let found = locate::locate(kind, &mut u)?;
        let block = match found.block {
            None => None,
            Some((r, pkcs7)) => Some(SignatureBlock {
                range: block_range(r)?,
                pkcs7,
            }),
        };
        Ok(Script {
            kind,
            bytes,
            encoding,
            block,
        })
    }

    /// The kind of script.
    pub fn kind(&self) -> ScriptKind {
        self.kind
    }

    /// The file's encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The file as given.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The signature block, if the file has one.
    pub fn signature(&self) -> Option<&SignatureBlock> {
        self.block.as_ref()
    }

    /// The file's bytes before and after the signature block (the whole file and nothing
    /// when it has none).
    pub fn unsigned_parts(&self) -> (&'a [u8], &'a [u8]) {
        match &self.block {
            None => (self.bytes, &[]),
            Some(b) => (
                self.bytes.get(..b.range.start).unwrap_or_default(),
                self.bytes.get(b.range.end..).unwrap_or_default(),
            ),
        }
    }

    /// The file without its signature block, byte for byte.
    pub fn unsigned_bytes(&self) -> Vec<u8> {
        let (a, b) = self.unsigned_parts();
        let mut out = Vec::with_capacity(a.len() + b.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b);
        out
    }

    /// Feeds the digest input (the text without the signature block, as UTF-16LE; see the
    /// module documentation for the byte order mark and length rules) to `sink`, in chunks.
    pub fn digest_input(&self, mut sink: impl FnMut(&[u8])) -> Result<()> {
        let (a, b) = self.unsigned_parts();
        let skip = if self.kind.hashes_bom() {
            0
        } else {
            self.encoding.bom_len()
        };
        let a = a.get(skip..).unwrap_or_default();
        let b_at = self.block.as_ref().map_or(0, |b| b.range.end) as u64;
        let mut dec = decode::Decoder::new(self.encoding);
        for (part, at) in [(a, skip as u64), (b, b_at)] {
            dec.feed(part, at, &mut sink)?;
            dec.end_part()?;
        }
        dec.flush(&mut sink);
        if self.kind.hashes_length() {
            let n = u32::try_from(dec.units()).map_err(|_| ScriptError::TooLarge)?;
            sink(&n.to_le_bytes());
        }
        Ok(())
    }

    /// Feeds the digest input to a hash (any `digest::Update`).
    pub fn update_digest<D: digest::Update>(&self, hasher: &mut D) -> Result<()> {
        self.digest_input(|chunk| hasher.update(chunk))
    }

    /// The digest of the script with hash algorithm `D`.
    pub fn digest<D: digest::Digest + digest::Update>(&self) -> Result<Vec<u8>> {
        let mut h = D::new();
        self.update_digest(&mut h)?;
        Ok(h.finalize().to_vec())
    }

    /// The file signed with `pkcs7_der`: the unsigned bytes with a new block (replacing any
    /// existing one) in the file's encoding, CRLF line endings and 64-character base64 lines;
    /// after the text, or for `.wsf` before the last `</job>`.
    pub fn signed_bytes(&self, pkcs7_der: &[u8]) -> Result<Vec<u8>> {
        let block = block_bytes(self.kind, self.encoding.width(), pkcs7_der)?;
        let unsigned = self.unsigned_bytes();
        let insert_at = if self.kind == ScriptKind::Wsf {
            let bom = self.encoding.bom_len();
            let body = unsigned.get(bom..).unwrap_or_default();
            let mut u = locate::Units::new(
                body,
                bom as u64,
                body.len() as u64,
                self.encoding.width() as u64,
            );
            let n = u.len();
            let i = u
                .rfind_ascii("</job>", n)
                .ok_or(ScriptError::NoJobElement)?;
            usize::try_from(u.byte(i)).map_err(|_| ScriptError::TooLarge)?
        } else {
            unsigned.len()
        };
        let mut out = Vec::with_capacity(unsigned.len() + block.len());
        out.extend_from_slice(unsigned.get(..insert_at).unwrap_or_default());
        out.extend_from_slice(&block);
        out.extend_from_slice(unsigned.get(insert_at..).unwrap_or_default());
        Ok(out)
    }
}

/// The block's text (ASCII), CRLF line endings, starting with a line break.
fn block_text(kind: ScriptKind, der: &[u8]) -> String {
    let m = kind.markers();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::with_capacity(b64.len() * 2 + 128);
    s.push_str("\r\n");
    s.push_str(m.begin);
    s.push_str("\r\n");
    // base64 is ASCII, so byte chunks are whole characters.
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(m.line_prefix);
        s.extend(chunk.iter().map(|&b| char::from(b)));
        s.push_str(m.line_suffix);
        s.push_str("\r\n");
    }
    s.push_str(m.end);
    s.push_str("\r\n");
    s
}

/// The block's bytes in an encoding of `width` bytes per ASCII character; refuses an empty
/// PKCS#7 and one too large for a reader to take back.
fn block_bytes(kind: ScriptKind, width: usize, der: &[u8]) -> Result<Vec<u8>> {
    if der.is_empty() {
        return Err(ScriptError::EmptyPkcs7);
    }
    if der.len().div_ceil(3).saturating_mul(4) > MAX_BLOCK_BASE64 {
        return Err(ScriptError::BlockTooLarge {
            limit: MAX_BLOCK_BASE64,
        });
    }
    let text = block_text(kind, der);
    Ok(if width == 2 {
        text.bytes().flat_map(|b| [b, 0]).collect()
    } else {
        text.into_bytes()
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    /// A DER SEQUENCE standing in for a PKCS#7 (the module checks only the outer element).
    fn fake_pkcs7(n: usize) -> Vec<u8> {
        let body: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
        let mut v = vec![0x30, 0x82, (n >> 8) as u8, n as u8];
        v.extend_from_slice(&body);
        v
    }

    fn utf16le_bom(s: &str) -> Vec<u8> {
        let mut v = vec![0xff, 0xfe];
        s.encode_utf16()
            .for_each(|c| v.extend_from_slice(&c.to_le_bytes()));
        v
    }

    fn encodings(text: &str) -> Vec<(Vec<u8>, &'static str)> {
        let mut bom = vec![0xef, 0xbb, 0xbf];
        bom.extend_from_slice(text.as_bytes());
        vec![
            (text.as_bytes().to_vec(), "utf8"),
            (bom, "utf8-bom"),
            (utf16le_bom(text), "utf16le"),
        ]
    }

    fn sample(kind: ScriptKind, nl: &str, final_nl: bool) -> String {
        let body = match kind {
            ScriptKind::Wsf => format!(
                "<package>{nl}<job id=\"a\">{nl}<script language=\"JScript\">WScript.Echo(\"h\u{e9}llo\");</script>{nl}</job>{nl}</package>"
            ),
            _ => format!("line one \u{e9}\u{20ac}{nl}line two{nl}last line"),
        };
        if final_nl {
            format!("{body}{nl}")
        } else {
            body
        }
    }

    #[test]
    fn extensions() {
        for kind in ScriptKind::ALL {
            for ext in kind.extensions() {
                assert_eq!(ScriptKind::from_extension(ext).unwrap(), kind);
                assert_eq!(
                    ScriptKind::from_extension(&ext.to_ascii_uppercase()).unwrap(),
                    kind
                );
            }
        }
        assert_eq!(
            ScriptKind::from_path(Path::new("dir/a.PS1")).unwrap(),
            ScriptKind::PowerShell
        );
        assert!(matches!(
            ScriptKind::from_extension("exe"),
            Err(ScriptError::UnsupportedExtension(_))
        ));
        assert!(ScriptKind::from_path(Path::new("noext")).is_err());
    }

    #[test]
    fn sip_info_der_is_one_sequence() {
        use der::Encode;
        for kind in ScriptKind::ALL {
            let der = kind.sip_info().unwrap().to_der().unwrap();
            let tlv = crate::asn1::Tlv::exactly(&der).unwrap();
            assert_eq!(tlv.tag, 0x30);
            let mut c = tlv.children();
            assert_eq!(
                c.required("v").unwrap().small_uint().unwrap(),
                u64::from(kind.sip_version())
            );
            let g = c.required("g").unwrap();
            assert_eq!(g.value, kind.sip_guid());
        }
        assert_eq!(
            &ScriptKind::PowerShell.sip_info().unwrap().to_der().unwrap()[..7],
            &[0x30, 0x26, 0x02, 0x03, 0x01, 0x00, 0x00]
        );
    }

    #[test]
    fn round_trip_every_kind_encoding_line_ending() {
        let p7 = fake_pkcs7(1000);
        let p7b = fake_pkcs7(1500);
        for kind in ScriptKind::ALL {
            for nl in ["\n", "\r\n"] {
                for final_nl in [false, true] {
                    for (bytes, enc) in encodings(&sample(kind, nl, final_nl)) {
                        let what = format!("{kind:?} {enc} {nl:?} final={final_nl}");
                        let s = Script::parse(kind, &bytes).unwrap();
                        assert!(s.signature().is_none(), "{what}");
                        let signed = s.signed_bytes(&p7).unwrap();
                        let t = Script::parse(kind, &signed).unwrap();
                        assert_eq!(t.encoding(), s.encoding(), "{what}");
                        assert_eq!(t.signature().unwrap().pkcs7, p7, "{what}");
                        assert_eq!(t.unsigned_bytes(), bytes, "{what}");
                        assert_eq!(
                            t.digest::<Sha256>().unwrap(),
                            s.digest::<Sha256>().unwrap(),
                            "{what}"
                        );
                        // Re-signing replaces the block.
                        let resigned = t.signed_bytes(&p7b).unwrap();
                        let r = Script::parse(kind, &resigned).unwrap();
                        assert_eq!(r.signature().unwrap().pkcs7, p7b, "{what}");
                        assert_eq!(r.unsigned_bytes(), bytes, "{what}");
                        assert_eq!(resigned, s.signed_bytes(&p7b).unwrap(), "{what}");
                        let begin = kind.markers().begin;
                        let count = String::from_utf8_lossy(&resigned).matches(begin).count()
                            + String::from_utf16_lossy(
                                &resigned
                                    .chunks_exact(2)
                                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                                    .collect::<Vec<_>>(),
                            )
                            .matches(begin)
                            .count();
                        assert_eq!(count, 1, "{what}");
                    }
                }
            }
        }
    }

    #[test]
    fn block_layout_crlf_64_columns() {
        let p7 = fake_pkcs7(200);
        let signed = Script::parse(ScriptKind::PowerShell, b"a\n")
            .unwrap()
            .signed_bytes(&p7)
            .unwrap();
        let text = std::str::from_utf8(&signed).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&p7);
        let mut want = String::from("a\n\r\n# SIG # Begin signature block\r\n");
        for c in b64.as_bytes().chunks(64) {
            want.push_str("# ");
            want.push_str(std::str::from_utf8(c).unwrap());
            want.push_str("\r\n");
        }
        want.push_str("# SIG # End signature block\r\n");
        assert_eq!(text, want);
        // UTF-16LE: the same characters, two bytes each.
        let s16 = utf16le_bom("a\n");
        let signed16 = Script::parse(ScriptKind::PowerShell, &s16)
            .unwrap()
            .signed_bytes(&p7)
            .unwrap();
        assert_eq!(signed16, utf16le_bom(&want));
        // XML kind: each line wrapped.
        let x = Script::parse(ScriptKind::PowerShellXml, b"<a/>")
            .unwrap()
            .signed_bytes(&p7)
            .unwrap();
        let x = String::from_utf8(x).unwrap();
        assert!(x.contains(&format!("\r\n<!-- {} -->\r\n", &b64[..64])));
        assert!(x.ends_with("<!-- SIG # End signature block -->\r\n"));
    }

    #[test]
    fn wsf_block_goes_before_last_job() {
        let src =
            "<package>\r\n<job>\r\n<script>x</script>\r\n</job>\r\n<job>y</job>\r\n</package>\r\n";
        let p7 = fake_pkcs7(100);
        let s = Script::parse(ScriptKind::Wsf, src.as_bytes()).unwrap();
        let signed = String::from_utf8(s.signed_bytes(&p7).unwrap()).unwrap();
        assert!(signed.starts_with("<package>\r\n<job>\r\n<script>x</script>\r\n</job>\r\n<job>y\r\n<signature>\r\n** SIG ** "));
        assert!(signed.ends_with("</signature>\r\n</job>\r\n</package>\r\n"));
        let t = Script::parse(ScriptKind::Wsf, signed.as_bytes()).unwrap();
        assert_eq!(t.unsigned_bytes(), src.as_bytes());
        assert_eq!(
            Script::parse(ScriptKind::Wsf, b"<package></package>")
                .unwrap()
                .signed_bytes(&p7),
            Err(ScriptError::NoJobElement)
        );
    }

    #[test]
    fn marker_in_a_string_is_not_a_block() {
        let src = "$s = @'\r\n# SIG # Begin signature block\r\n# MIIabc\r\n# SIG # End signature block\r\n'@\r\nWrite-Host $s\r\n";
        let s = Script::parse(ScriptKind::PowerShell, src.as_bytes()).unwrap();
        assert!(s.signature().is_none());
        assert_eq!(s.unsigned_bytes(), src.as_bytes());
        let p7 = fake_pkcs7(300);
        let signed = s.signed_bytes(&p7).unwrap();
        let t = Script::parse(ScriptKind::PowerShell, &signed).unwrap();
        assert_eq!(t.signature().unwrap().pkcs7, p7);
        assert_eq!(t.unsigned_bytes(), src.as_bytes());
        assert_eq!(t.signature().unwrap().range.start, src.len());
        // Only the begin marker in a string, file ends in code.
        let src2 = "$x = \"\n# SIG # Begin signature block\n\"\n";
        assert!(Script::parse(ScriptKind::PowerShell, src2.as_bytes())
            .unwrap()
            .signature()
            .is_none());
    }

    /// A complete block (begin marker, base64 lines, end marker) inside a string in the
    /// middle of a script, in every kind, encoding and line ending: text, not a signature.
    /// Signing adds the only block; the digest ignores just that one.
    #[test]
    fn marker_block_in_the_middle_is_text_every_kind() {
        let p7 = fake_pkcs7(120);
        let b64 = base64::engine::general_purpose::STANDARD.encode(fake_pkcs7(90));
        for kind in ScriptKind::ALL {
            let m = kind.markers();
            for nl in ["\n", "\r\n"] {
                let mut inner = format!("{nl}{}{nl}", m.begin);
                for chunk in b64.as_bytes().chunks(64) {
                    inner.push_str(m.line_prefix);
                    inner.push_str(std::str::from_utf8(chunk).unwrap());
                    inner.push_str(m.line_suffix);
                    inner.push_str(nl);
                }
                inner.push_str(m.end);
                inner.push_str(nl);
                let text = match kind {
                    ScriptKind::Wsf => format!(
                        "<package><job><script>var s = \"{inner}\";</script>{nl}</job></package>{nl}"
                    ),
                    _ => format!("s = \"caf\u{e9}{inner}\"{nl}print(s){nl}"),
                };
                for (bytes, enc) in encodings(&text) {
                    let what = format!("{kind:?} {enc} {nl:?}");
                    let s = Script::parse(kind, &bytes).unwrap();
                    assert!(s.signature().is_none(), "{what}");
                    assert_eq!(s.unsigned_bytes(), bytes, "{what}");
                    let signed = s.signed_bytes(&p7).unwrap();
                    let t = Script::parse(kind, &signed).unwrap();
                    assert_eq!(t.signature().unwrap().pkcs7, p7, "{what}");
                    assert_eq!(t.unsigned_bytes(), bytes, "{what}");
                    assert_eq!(
                        t.digest::<Sha256>().unwrap(),
                        s.digest::<Sha256>().unwrap(),
                        "{what}"
                    );
                }
            }
        }
    }

    /// UTF-16LE text whose bytes hold a line break or `</job>` at an odd offset (across two
    /// code units): not a line break or a `</job>` (the searches only take even offsets).
    #[test]
    fn utf16_misaligned_decoys() {
        fn units(v: &[u16]) -> Vec<u8> {
            let mut out = vec![0xff, 0xfe];
            v.iter()
                .for_each(|u| out.extend_from_slice(&u.to_le_bytes()));
            out
        }
        let p7 = fake_pkcs7(80);
        // U+0A41 U+4E00: bytes 41 0A 00 4E, "0A 00" (LF) at an odd offset.
        let lf_decoy = [0x0a41u16, 0x4e00, 0x0a41, 0x4e00];
        let mut text: Vec<u16> = "x = 1\r\n# ".encode_utf16().collect();
        text.extend_from_slice(&lf_decoy);
        let bytes = units(&text);
        let s = Script::parse(ScriptKind::PowerShell, &bytes).unwrap();
        let signed = s.signed_bytes(&p7).unwrap();
        let t = Script::parse(ScriptKind::PowerShell, &signed).unwrap();
        assert_eq!(t.signature().unwrap().pkcs7, p7);
        assert_eq!(t.unsigned_bytes(), bytes);
        // "</job>" spelled across U+3C41 U+2F00 U+6A00 U+6F00 U+6200 U+3E00 U+4100 (bytes 41
        // 3C 00 2F 00 6A 00 6F 00 62 00 3E 00 41).
        let job_decoy = [0x3c41u16, 0x2f00, 0x6a00, 0x6f00, 0x6200, 0x3e00, 0x4100];
        let mut wsf: Vec<u16> = "<job>".encode_utf16().collect();
        wsf.extend_from_slice(&job_decoy);
        let only_decoy = units(&wsf);
        assert_eq!(
            Script::parse(ScriptKind::Wsf, &only_decoy)
                .unwrap()
                .signed_bytes(&p7),
            Err(ScriptError::NoJobElement)
        );
        wsf.extend("</job>".encode_utf16());
        wsf.extend_from_slice(&job_decoy);
        let bytes = units(&wsf);
        let signed = Script::parse(ScriptKind::Wsf, &bytes)
            .unwrap()
            .signed_bytes(&p7)
            .unwrap();
        let job_at = 2 + 2 * (5 + job_decoy.len());
        assert_eq!(signed[..job_at], bytes[..job_at]);
        assert_eq!(signed[job_at..job_at + 4], [b'\r', 0, b'\n', 0]);
        let t = Script::parse(ScriptKind::Wsf, &signed).unwrap();
        assert_eq!(t.signature().unwrap().pkcs7, p7);
        assert_eq!(t.unsigned_bytes(), bytes);
        // The searches themselves, over the decoys alone and with one real match before.
        let body: Vec<u8> = [&lf_decoy[..], &job_decoy[..]]
            .concat()
            .iter()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        const LF: u16 = b'\n' as u16;
        let mut u = locate::Units::new(&body[..], 0, body.len() as u64, 2);
        let n = u.len();
        assert_eq!(u.rfind_unit(LF, n), None);
        assert_eq!(u.rfind_ascii("</job>", n), None);
        assert_eq!(u.line_before(n), 0..n);
        let mut real: Vec<u8> = "</job>\n"
            .encode_utf16()
            .flat_map(|c| c.to_le_bytes())
            .collect();
        real.extend_from_slice(&body);
        let mut u = locate::Units::new(&real[..], 0, real.len() as u64, 2);
        let n = u.len();
        assert_eq!(u.rfind_unit(LF, n), Some(6));
        assert_eq!(u.rfind_ascii("</job>", n), Some(0));
        assert_eq!(u.line_before(n), 7..n);
    }

    #[test]
    fn truncated_and_corrupted_blocks() {
        let p7 = fake_pkcs7(400);
        let signed = Script::parse(ScriptKind::PowerShell, b"x = 1\r\n")
            .unwrap()
            .signed_bytes(&p7)
            .unwrap();
        let text = String::from_utf8(signed.clone()).unwrap();
        // Cut anywhere inside the block after the begin line: truncated, never a panic.
        let begin_at = text.find("# SIG # Begin").unwrap();
        let end_at = text.find("# SIG # End").unwrap();
        for cut in begin_at + 30..end_at {
            let r = Script::parse(ScriptKind::PowerShell, &signed[..cut]);
            assert!(
                matches!(r, Err(ScriptError::TruncatedBlock { begin }) if begin == begin_at),
                "cut {cut}: {r:?}"
            );
        }
        // Every cut at all: no panic.
        for cut in 0..signed.len() {
            let _ = Script::parse(ScriptKind::PowerShell, &signed[..cut]);
        }
        // A bad character in a base64 line.
        let bad = text.replacen("# MI", "# M!", 1);
        assert!(matches!(
            Script::parse(ScriptKind::PowerShell, bad.as_bytes()),
            Err(ScriptError::InvalidBlockLine { .. })
        ));
        // Base64 that does not decode (a character lost from a line).
        let lines: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
        let mut short = lines.clone();
        short[4].pop();
        assert_eq!(
            Script::parse(ScriptKind::PowerShell, short.join("\r\n").as_bytes()).unwrap_err(),
            ScriptError::InvalidBase64
        );
        // A whole line lost: decodes, but the DER length no longer matches.
        let mut dropped = lines.clone();
        dropped.remove(4);
        assert_eq!(
            Script::parse(ScriptKind::PowerShell, dropped.join("\r\n").as_bytes()).unwrap_err(),
            ScriptError::NotDer
        );
        // Decodes, but not one DER element.
        let not_der = Script::parse(ScriptKind::PowerShell, b"x")
            .unwrap()
            .signed_bytes(&[0x30, 0x05, 1, 2])
            .unwrap();
        assert_eq!(
            Script::parse(ScriptKind::PowerShell, &not_der).unwrap_err(),
            ScriptError::NotDer
        );
        // End marker without begin marker.
        let no_begin = text.replace("# SIG # Begin signature block\r\n", "");
        assert_eq!(
            Script::parse(ScriptKind::PowerShell, no_begin.as_bytes()).unwrap_err(),
            ScriptError::InvalidBlockLine { offset: 7 }
        );
        assert_eq!(
            Script::parse(ScriptKind::PowerShell, b"# SIG # End signature block\r\n").unwrap_err(),
            ScriptError::MissingBegin
        );
        // Empty block.
        assert_eq!(
            Script::parse(
                ScriptKind::PowerShell,
                b"a\r\n# SIG # Begin signature block\r\n# SIG # End signature block\r\n"
            )
            .unwrap_err(),
            ScriptError::EmptyBlock
        );
    }

    #[test]
    fn lf_converted_block_is_still_found() {
        let p7 = fake_pkcs7(500);
        let signed = Script::parse(ScriptKind::JScript, b"WScript.Echo(1);\n")
            .unwrap()
            .signed_bytes(&p7)
            .unwrap();
        let lf = String::from_utf8(signed).unwrap().replace("\r\n", "\n");
        let s = Script::parse(ScriptKind::JScript, lf.as_bytes()).unwrap();
        assert_eq!(s.signature().unwrap().pkcs7, p7);
        assert_eq!(s.unsigned_bytes(), b"WScript.Echo(1);\n");
    }

    #[test]
    fn encodings_detected() {
        let k = ScriptKind::PowerShell;
        assert_eq!(
            detect_encoding(k, b"abc").unwrap(),
            Encoding::Utf8 { bom: false }
        );
        assert_eq!(
            detect_encoding(k, b"\xef\xbb\xbfabc").unwrap(),
            Encoding::Utf8 { bom: true }
        );
        assert_eq!(
            detect_encoding(k, b"\xff\xfea\0").unwrap(),
            Encoding::Utf16Le
        );
        assert_eq!(
            detect_encoding(k, b"caf\xe9").unwrap(),
            Encoding::Windows1252
        );
        assert_eq!(
            detect_encoding(ScriptKind::VbScript, b"abc").unwrap(),
            Encoding::Windows1252
        );
        assert_eq!(
            detect_encoding(ScriptKind::JScript, "é".as_bytes()).unwrap(),
            Encoding::Windows1252
        );
        assert_eq!(
            detect_encoding(k, b"\xfe\xffa\0"),
            Err(ScriptError::Utf16BigEndian)
        );
        assert_eq!(
            detect_encoding(k, b"\xff\xfea"),
            Err(ScriptError::OddUtf16Length)
        );
        assert_eq!(
            detect_encoding(k, b"\xff\xfea\0\x00\xd8b\0"),
            Err(ScriptError::InvalidUtf16 { offset: 4 })
        );
        assert_eq!(
            detect_encoding(k, b"\xef\xbb\xbfab\xffc"),
            Err(ScriptError::InvalidUtf8 { offset: 5 })
        );
        assert_eq!(
            detect_encoding(k, b"").unwrap(),
            Encoding::Utf8 { bom: false }
        );
    }

    fn digest_bytes(kind: ScriptKind, bytes: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        Script::parse(kind, bytes)
            .unwrap()
            .digest_input(|c| v.extend_from_slice(c))
            .unwrap();
        v
    }

    #[test]
    fn digest_input_rules() {
        let text = "a\u{e9}\u{20ac}\r\n";
        let utf16: Vec<u8> = text.encode_utf16().flat_map(|c| c.to_le_bytes()).collect();
        let mut with_bom = vec![0xff, 0xfe];
        with_bom.extend_from_slice(&utf16);
        for (bytes, _) in encodings(text) {
            let bom = bytes.starts_with(&[0xef]) || bytes.starts_with(&[0xff]);
            // PowerShell keeps the BOM (as FF FE) and adds no length.
            let want = if bom { with_bom.clone() } else { utf16.clone() };
            assert_eq!(digest_bytes(ScriptKind::PowerShell, &bytes), want);
            assert_eq!(digest_bytes(ScriptKind::Mof, &bytes), want);
            // WSF drops the BOM and appends the number of code units.
            let mut want = utf16.clone();
            want.extend_from_slice(&5u32.to_le_bytes());
            assert_eq!(digest_bytes(ScriptKind::Wsf, &bytes), want);
        }
        // Windows-1252: BOM-less .vbs, and invalid UTF-8 in a .ps1.
        let cp = b"a\xe9\x80\x81\x9f";
        let want: Vec<u8> = [0x61u16, 0xe9, 0x20ac, 0x81, 0x178]
            .iter()
            .flat_map(|c| c.to_le_bytes())
            .collect();
        assert_eq!(digest_bytes(ScriptKind::PowerShell, cp), want);
        let mut w = want.clone();
        w.extend_from_slice(&5u32.to_le_bytes());
        assert_eq!(digest_bytes(ScriptKind::VbScript, cp), w);
        // BOM-less UTF-8 é in a .js is two Windows-1252 characters.
        let mut w = vec![0xc3, 0x00, 0xa9, 0x00];
        w.extend_from_slice(&2u32.to_le_bytes());
        assert_eq!(digest_bytes(ScriptKind::JScript, "é".as_bytes()), w);
        // Empty.
        assert_eq!(digest_bytes(ScriptKind::PowerShell, b""), Vec::<u8>::new());
        assert_eq!(digest_bytes(ScriptKind::JScript, b""), vec![0, 0, 0, 0]);
    }

    #[test]
    fn multi_megabyte_script() {
        let line = "Write-Host \"h\u{e9}llo w\u{f6}rld \u{1f600}\" # comment\r\n";
        let text: String = line.repeat(4 * 1024 * 1024 / line.len());
        assert!(text.len() > 4_000_000);
        let p7 = fake_pkcs7(6000);
        for (bytes, enc) in encodings(&text) {
            let s = Script::parse(ScriptKind::PowerShell, &bytes).unwrap();
            let signed = s.signed_bytes(&p7).unwrap();
            let t = Script::parse(ScriptKind::PowerShell, &signed).unwrap();
            assert_eq!(t.unsigned_bytes(), bytes, "{enc}");
            let mut h = Sha256::new();
            if bytes.starts_with(&[0xef]) || bytes.starts_with(&[0xff]) {
                h.update([0xff, 0xfe]);
            }
            let utf16: Vec<u8> = text.encode_utf16().flat_map(|c| c.to_le_bytes()).collect();
            h.update(&utf16);
            assert_eq!(
                t.digest::<Sha256>().unwrap(),
                h.finalize().to_vec(),
                "{enc}"
            );
        }
    }

    #[test]
    fn mutated_files_never_panic() {
        // Deterministic pseudo-random damage to signed files of every kind and encoding.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let p7 = fake_pkcs7(150);
        let mut outcomes = std::collections::HashMap::new();
        for kind in ScriptKind::ALL {
            for (bytes, _) in encodings(&sample(kind, "\r\n", true)) {
                let signed = Script::parse(kind, &bytes)
                    .unwrap()
                    .signed_bytes(&p7)
                    .unwrap();
                for _ in 0..300 {
                    let mut m = signed.clone();
                    for _ in 0..1 + next() % 3 {
                        if m.is_empty() {
                            break;
                        }
                        let i = next() % m.len();
                        match next() % 4 {
                            0 => m[i] = (next() % 256) as u8,
                            1 => {
                                m.remove(i);
                            }
                            2 => m.insert(i, b"\r\n#A=<>-/*' "[next() % 12]),
                            _ => m.truncate(i),
                        }
                    }
                    let r = Script::parse(kind, &m);
                    if let Ok(s) = &r {
                        let _ = s.digest::<Sha256>();
                        let _ = s.signed_bytes(&p7);
                    }
                    let key = match r {
                        Ok(s) => format!("ok:{}", s.signature().is_some()),
                        Err(e) => format!("{e:?}").chars().take(12).collect(),
                    };
                    *outcomes.entry(key).or_insert(0) += 1;
                }
            }
        }
        // The damage reaches the interesting paths, not just one.
        assert!(outcomes.len() >= 5, "{outcomes:?}");
    }

    /// Hostile scripts of 64 MiB: many marker-like lines (signature lines under an end
    /// marker, repeated begin markers, begin and end marker pairs) and one 64 MiB line that
    /// looks like a signature line; and of 8 MiB (the rest, to keep the debug-build test
    /// short): signature lines after a begin marker, `.wsf` block lines, a `.wsf` with no
    /// `</job>`, one line in UTF-8 and UTF-16LE, blank space only. Each parses (to its error or
    /// to "no block") and its digest input is produced, with no allocation but the file's.
    /// The walk over the lines is linear: these finish in seconds (a quadratic one would take
    /// hours); run with `--nocapture` to see the times.
    #[test]
    fn sixty_four_mib_hostile_scripts_complete() {
        const BIG: usize = 64 << 20;
        const SMALL: usize = 8 << 20;
        fn fill(size: usize, head: &str, unit: &str, tail: &str) -> Vec<u8> {
            let mut v = Vec::with_capacity(size + head.len() + tail.len() + unit.len());
            v.extend_from_slice(head.as_bytes());
            while v.len() < size {
                v.extend_from_slice(unit.as_bytes());
            }
            v.extend_from_slice(tail.as_bytes());
            v
        }
        let one_line_utf16 = {
            let mut v = vec![0xff, 0xfe, b'#', 0, b' ', 0];
            v.extend(std::iter::repeat_n([b'A', 0], (SMALL - 6) / 2).flatten());
            v
        };
        let cases: Vec<(&str, ScriptKind, Vec<u8>, Option<ScriptError>)> = vec![
            (
                "signature lines, then an end marker",
                ScriptKind::PowerShell,
                fill(BIG, "", "# QUJD\r\n", "# SIG # End signature block\r\n"),
                Some(ScriptError::MissingBegin),
            ),
            (
                "begin markers",
                ScriptKind::JScript,
                fill(BIG, "", "// SIG // Begin signature block\n", ""),
                Some(ScriptError::TruncatedBlock { begin: BIG - 32 }),
            ),
            (
                "begin and end markers",
                ScriptKind::Mof,
                fill(
                    BIG,
                    "",
                    "/* SIG # Begin signature block */\r\n/* SIG # End signature block */\r\n",
                    "",
                ),
                Some(ScriptError::EmptyBlock),
            ),
            (
                "one line that looks like a signature line, XML kind",
                ScriptKind::PowerShellXml,
                fill(BIG, "<!-- ", "QUJD", ""),
                None,
            ),
            (
                "a begin marker, then signature lines",
                ScriptKind::PowerShell,
                fill(
                    SMALL,
                    "x\r\n# SIG # Begin signature block\r\n",
                    "# QUJD\r\n",
                    "",
                ),
                Some(ScriptError::TruncatedBlock { begin: 3 }),
            ),
            (
                ".wsf signature lines before </job>",
                ScriptKind::Wsf,
                fill(SMALL, "", "** SIG ** QUJD\r\n", "</signature>\r\n</job>"),
                Some(ScriptError::MissingBegin),
            ),
            (
                ".wsf without </job>",
                ScriptKind::Wsf,
                fill(SMALL, "", "<job></jo", ""),
                None,
            ),
            (
                "one line that looks like a signature line, UTF-8",
                ScriptKind::PowerShell,
                fill(SMALL, "# ", "AAAAAAAAAAAAAAAA", ""),
                None,
            ),
            (
                "one line, UTF-16LE",
                ScriptKind::PowerShell,
                one_line_utf16,
                None,
            ),
            (
                "blank space",
                ScriptKind::VbScript,
                fill(SMALL, "", " \r\n\t", ""),
                None,
            ),
        ];
        for (what, kind, bytes, want) in cases {
            let t0 = std::time::Instant::now();
            let r = Script::parse(kind, &bytes);
            let parsed = t0.elapsed();
            let mut n = 0usize;
            match (r, want.clone()) {
                (Err(e), Some(w)) => assert_eq!(e, w, "{what}"),
                (Ok(s), None) => {
                    assert!(s.signature().is_none(), "{what}");
                    s.digest_input(|c| n += c.len()).unwrap();
                    assert!(n >= bytes.len() - 2, "{what}");
                }
                (r, w) => panic!("{what}: {:?}, wanted {w:?}", r.map(|s| s.encoding())),
            }
            let in_memory = t0.elapsed();
            // The same through a reader: the block search pages through the file.
            let t1 = std::time::Instant::now();
            let mut c = std::io::Cursor::new(&bytes);
            let l = ScriptLayout::read(kind, &mut c);
            let searched = t1.elapsed();
            match (l, want) {
                (Err(e), Some(w)) => assert_eq!(e, w, "{what}: streamed"),
                (Ok(l), None) => {
                    assert!(l.signature().is_none(), "{what}: streamed");
                    let mut m = 0usize;
                    let mut sink = |c: &[u8]| m += c.len();
                    let mut counter = Collect::default();
                    l.stream(&mut c, &mut counter, None).unwrap();
                    sink(&counter.0);
                    assert_eq!(m, n, "{what}: streamed digest input");
                }
                (l, w) => panic!("{what}: streamed {:?}, wanted {w:?}", l.map(|l| l.len())),
            }
            eprintln!(
                "{what}: {} bytes, parse {:.2} s, parse + digest input {:.2} s; streamed: \
                 search {:.2} s, search + pass {:.2} s",
                bytes.len(),
                parsed.as_secs_f64(),
                in_memory.as_secs_f64(),
                searched.as_secs_f64(),
                t1.elapsed().as_secs_f64()
            );
        }
    }

    #[test]
    fn long_lines_and_many_lines_stay_linear() {
        // One huge line that looks like a comment, and many comment lines: no block,
        // quickly (a quadratic walk would take minutes here).
        let mut big = String::from("# ");
        big.push_str(&"A".repeat(8_000_000));
        let s = Script::parse(ScriptKind::PowerShell, big.as_bytes()).unwrap();
        assert!(s.signature().is_none());
        let many = "# QUJD\n".repeat(1_000_000);
        assert!(Script::parse(ScriptKind::PowerShell, many.as_bytes())
            .unwrap()
            .signature()
            .is_none());
        let wsf = "</job>".repeat(1_000_000);
        assert!(Script::parse(ScriptKind::Wsf, wsf.as_bytes())
            .unwrap()
            .signature()
            .is_none());
    }

    /// A sink that keeps the digest input.
    #[derive(Clone, Default)]
    struct Collect(Vec<u8>);

    impl crate::digest::Sink for Collect {
        fn feed(&mut self, data: &[u8]) {
            self.0.extend_from_slice(data);
        }
    }

    /// Reads `bytes` as a `kind` script both ways, [`Script`] in memory and [`ScriptLayout`]
    /// through a reader with tiny pages and reads (so that the search and the decoding are
    /// cut at every offset), and checks they agree: the error, the block, the encoding, the
    /// digest input, the head copy, the signed and unsigned output. Returns an outcome name.
    fn stream_agrees(kind: ScriptKind, bytes: &[u8], p7: &[u8]) -> String {
        use std::io::Cursor;
        let mem = Script::parse(kind, bytes);
        for (page, chunk) in [(2, 1), (4, 3), (6, 5), (10, 2), (64, 7), (1 << 16, 1 << 20)] {
            let what = format!("{kind:?} page {page} chunk {chunk}");
            let mut c = Cursor::new(bytes);
            let lay = ScriptLayout::read_tuned(kind, &mut c, page, chunk);
            match (&mem, lay) {
                (Err(e), Err(f)) => assert_eq!(*e, f, "{what}"),
                (Err(e), Ok(l)) => {
                    // A text error the block search does not see: the pass finds it.
                    let r = l.stream(&mut c, &mut Collect::default(), None);
                    assert_eq!(r.unwrap_err(), *e, "{what}");
                    assert_eq!(l.check_text(&mut c).unwrap_err(), *e, "{what}");
                }
                (Ok(_), Err(f)) => panic!("{what}: in memory parses, streamed: {f:?}"),
                (Ok(s), Ok(l)) => {
                    assert_eq!(l.signature(), s.signature(), "{what}");
                    assert_eq!(l.len(), bytes.len() as u64, "{what}");
                    let mut want = Vec::new();
                    s.digest_input(|d| want.extend_from_slice(d)).unwrap();
                    let mut sink = Collect::default();
                    let mut out = Vec::new();
                    let enc = l.stream(&mut c, &mut sink, Some(&mut out)).unwrap();
                    assert_eq!(enc, s.encoding(), "{what}");
                    assert_eq!(sink.0, want, "{what}: digest input");
                    assert_eq!(l.check_text(&mut c).unwrap(), s.encoding(), "{what}");
                    let head = l.head();
                    assert_eq!(out, bytes[head.start as usize..head.end as usize], "{what}");
                    match (s.signed_bytes(p7), l.write_rest(&mut c, &mut out, Some(p7))) {
                        (Ok(a), Ok(n)) => {
                            assert_eq!(out, a, "{what}: signed");
                            assert_eq!(n as usize + head.end as usize, a.len(), "{what}");
                        }
                        (Err(a), Err(b)) => assert_eq!(a, b, "{what}"),
                        (a, b) => panic!("{what}: {a:?} vs {b:?}"),
                    }
                    let mut unsigned = Vec::new();
                    l.write_signed(&mut c, &mut unsigned, None).unwrap();
                    assert_eq!(unsigned, s.unsigned_bytes(), "{what}: unsigned");
                }
            }
        }
        match mem {
            Ok(s) => format!("ok:{}:{:?}", s.signature().is_some(), s.encoding()),
            Err(e) => format!("{e:?}").chars().take(12).collect(),
        }
    }

    #[test]
    fn streaming_agrees_with_in_memory() {
        let p7 = fake_pkcs7(150);
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let mut outcomes = std::collections::HashMap::new();
        let mut count = |k: String| *outcomes.entry(k).or_insert(0) += 1;
        for kind in ScriptKind::ALL {
            let mut inputs: Vec<Vec<u8>> = Vec::new();
            for (bytes, _) in encodings(&sample(kind, "\r\n", true)) {
                let signed = Script::parse(kind, &bytes)
                    .unwrap()
                    .signed_bytes(&p7)
                    .unwrap();
                inputs.push(bytes);
                inputs.push(signed);
            }
            // BOM-less text that is not UTF-8: the fork at the first non-ASCII byte, the
            // failure later, in the head or in the .wsf tail.
            inputs.push(b"# caf\xc3\xa9 ok\r\nlater \xe9 not UTF-8\r\n".to_vec());
            inputs.push(b"<job>\xc3\xa9</job>\r\ntail \xe9".to_vec());
            inputs.push(b"<job>x</job>\r\ntail \xc3\xa9".to_vec());
            inputs.push(b"<job>x</job>\r\ntail \xe9 and \xc3".to_vec());
            inputs.push(b"ascii only, then a cut sequence \xe2\x82".to_vec());
            // UTF-16 surrogate pairs and an unpaired one.
            inputs.push(utf16le_bom("a\u{1f600}b\u{1f600}</job>\u{10ffff}"));
            let mut bad = utf16le_bom("ab</job>");
            bad.extend_from_slice(&[0x00, 0xd8]);
            inputs.push(bad);
            for base in inputs.clone() {
                if let Ok(s) = Script::parse(kind, &base) {
                    if let Ok(signed) = s.signed_bytes(&p7) {
                        inputs.push(signed);
                    }
                }
            }
            for bytes in &inputs {
                count(stream_agrees(kind, bytes, &p7));
                for _ in 0..40 {
                    let mut m = bytes.clone();
                    for _ in 0..1 + next() % 3 {
                        if m.is_empty() {
                            break;
                        }
                        let i = next() % m.len();
                        match next() % 4 {
                            0 => m[i] = (next() % 256) as u8,
                            1 => {
                                m.remove(i);
                            }
                            2 => m.insert(i, b"\r\n#A=<>-/*' \xe9\xc3"[next() % 14]),
                            _ => m.truncate(i),
                        }
                    }
                    count(stream_agrees(kind, &m, &p7));
                }
            }
        }
        // Texts longer than the decoder's buffers (64 KiB of UTF-16), in every encoding,
        // for a kind that hashes the byte order mark and one that hashes the length.
        let line = "caf\u{e9} \u{20ac}5 \u{65e5}\u{672c} \u{1f600} plain ASCII words\r\n";
        let big = line.repeat(5000);
        let cp: Vec<u8> = b"caf\xe9 \x805 \x81\x8d\x9f plain ASCII words\r\n".repeat(5000);
        for kind in [ScriptKind::PowerShell, ScriptKind::VbScript] {
            for (bytes, _) in encodings(&big) {
                let signed = Script::parse(kind, &bytes)
                    .unwrap()
                    .signed_bytes(&p7)
                    .unwrap();
                count(stream_agrees(kind, &signed, &p7));
            }
            count(stream_agrees(kind, &cp, &p7));
            // Not UTF-8 only at the very end: hashed again from the first non-ASCII byte.
            let mut late = big.clone().into_bytes();
            late.push(0xe9);
            count(stream_agrees(kind, &late, &p7));
        }
        // Both ways meet the interesting outcomes, not one.
        assert!(outcomes.len() >= 12, "{outcomes:?}");
    }

    /// A reader that counts the bytes read and fails at offset `fail_at`.
    struct Probe<'a> {
        c: std::io::Cursor<&'a [u8]>,
        read: u64,
        fail_at: u64,
    }

    impl std::io::Read for Probe<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.c.position() >= self.fail_at {
                return Err(std::io::Error::other("disk on fire"));
            }
            let room = usize::try_from(self.fail_at - self.c.position()).unwrap_or(usize::MAX);
            let len = buf.len().min(room);
            let n = self.c.read(&mut buf[..len])?;
            self.read += n as u64;
            Ok(n)
        }
    }

    impl std::io::Seek for Probe<'_> {
        fn seek(&mut self, p: std::io::SeekFrom) -> std::io::Result<u64> {
            self.c.seek(p)
        }
    }

    #[test]
    fn the_block_is_found_reading_only_the_end() {
        let line = "Write-Host \"h\u{e9}llo\" # comment\r\n";
        let text = line.repeat((8 << 20) / line.len());
        let p7 = fake_pkcs7(6000);
        for kind in [ScriptKind::PowerShell, ScriptKind::Wsf] {
            let text = match kind {
                ScriptKind::Wsf => format!("<job>\r\n{text}</job>\r\n"),
                _ => text.clone(),
            };
            for (bytes, enc) in encodings(&text) {
                let signed = Script::parse(kind, &bytes)
                    .unwrap()
                    .signed_bytes(&p7)
                    .unwrap();
                for input in [&bytes, &signed] {
                    let mut p = Probe {
                        c: std::io::Cursor::new(input),
                        read: 0,
                        fail_at: u64::MAX,
                    };
                    let l = ScriptLayout::read(kind, &mut p).unwrap();
                    assert_eq!(l.signature().is_some(), input == &signed);
                    assert!(p.read <= 4 << 16, "{kind:?} {enc}: read {} bytes", p.read);
                }
            }
        }
    }

    #[test]
    fn read_errors_are_typed() {
        let p7 = fake_pkcs7(300);
        let text = "x\r\n".repeat(100_000);
        for (bytes, enc) in encodings(&text) {
            let signed = Script::parse(ScriptKind::PowerShell, &bytes)
                .unwrap()
                .signed_bytes(&p7)
                .unwrap();
            for fail_at in [
                0,
                1,
                5000,
                signed.len() as u64 / 2,
                signed.len() as u64 - 10,
            ] {
                let mut p = Probe {
                    c: std::io::Cursor::new(&signed),
                    read: 0,
                    fail_at,
                };
                let r = ScriptLayout::read(ScriptKind::PowerShell, &mut p)
                    .and_then(|l| l.stream(&mut p, &mut Collect::default(), None));
                assert!(
                    matches!(
                        r,
                        Err(ScriptError::Io {
                            kind: std::io::ErrorKind::Other,
                            ..
                        })
                    ),
                    "{enc} {fail_at}: {r:?}"
                );
            }
        }
    }

    #[test]
    fn blocks_over_the_cap_are_typed_errors() {
        // A well-formed block of more than MAX_BLOCK_BASE64 characters (a line of base64
        // 'A's decodes; the cap comes first).
        let lines = MAX_BLOCK_BASE64 / 64 + 1;
        let mut text = String::from("x\r\n# SIG # Begin signature block\r\n");
        let data = format!("# {}\r\n", "A".repeat(64));
        text.reserve(lines * data.len() + 40);
        for _ in 0..lines {
            text.push_str(&data);
        }
        text.push_str("# SIG # End signature block\r\n");
        let want = ScriptError::BlockTooLarge {
            limit: MAX_BLOCK_BASE64,
        };
        assert_eq!(
            Script::parse(ScriptKind::PowerShell, text.as_bytes()).unwrap_err(),
            want
        );
        let mut c = std::io::Cursor::new(text.as_bytes());
        assert_eq!(
            ScriptLayout::read(ScriptKind::PowerShell, &mut c).unwrap_err(),
            want
        );
        // Without its begin marker it is still the damage that is reported.
        let headless = text.replacen("# SIG # Begin signature block\r\n", "", 1);
        assert_eq!(
            Script::parse(ScriptKind::PowerShell, headless.as_bytes()).unwrap_err(),
            ScriptError::InvalidBlockLine { offset: 0 }
        );
        // Writing one that large is refused too, and an empty one.
        let s = Script::parse(ScriptKind::PowerShell, b"x").unwrap();
        assert_eq!(
            s.signed_bytes(&vec![0x30; MAX_BLOCK_BASE64 / 4 * 3 + 1]),
            Err(want)
        );
        assert_eq!(s.signed_bytes(&[]), Err(ScriptError::EmptyPkcs7));
    }
}
