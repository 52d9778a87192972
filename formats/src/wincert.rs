//! The attribute certificate table: a list of 8-byte-aligned `WIN_CERTIFICATE` entries.
//!
//! ```text
//! WIN_CERTIFICATE { DWORD dwLength; WORD wRevision; WORD wCertificateType; BYTE bCertificate[]; }
//! ```
//! `dwLength` counts the 8-byte header and the data; writers (SignTool, osslsigncode) include
//! the zero padding to the next multiple of 8 in it.
use serde::Serialize;

use crate::error::{Error, Result};

/// `WIN_CERT_REVISION_2_0`.
pub const WIN_CERT_REVISION_2_0: u16 = 0x0200;
/// `WIN_CERT_TYPE_PKCS_SIGNED_DATA`.
pub const WIN_CERT_TYPE_PKCS_SIGNED_DATA: u16 = 0x0002;
/// The most entries we walk; real files have one.
pub const MAX_ENTRIES: usize = 64;

/// One entry of the table, borrowed from the table bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WinCertificate<'a> {
    /// Offset of the entry inside the table.
    pub offset: usize,
    /// dwLength.
    pub length: u32,
    /// wRevision.
    pub revision: u16,
    /// wCertificateType.
    pub cert_type: u16,
    /// bCertificate: the data (dwLength - 8 bytes, padding included).
    pub data: &'a [u8],
}

/// A structural finding about the table that is not fatal by itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableNote(pub String);

/// Walks the table. Errors on entries that cannot be delimited (length < 8, past the end);
/// returns notes for inconsistencies that still allow reading (sizes that do not add up).
pub fn parse_table(table: &[u8]) -> Result<(Vec<WinCertificate<'_>>, Vec<TableNote>)> {
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    let mut off = 0usize;
    while off < table.len() {
        if entries.len() == MAX_ENTRIES {
            return Err(Error::CertTable(format!(
                "more than {MAX_ENTRIES} WIN_CERTIFICATE entries"
            )));
        }
        let header = table.get(off..off + 8).ok_or_else(|| {
            Error::CertTable(format!(
                "{} stray bytes at the end of the table (offset {off:#x})",
                table.len() - off
            ))
        })?;
        let field = |a: usize, b: usize| header.get(a..b).unwrap_or_default();
        let length = u32::from_le_bytes(field(0, 4).try_into().unwrap_or_default());
        let revision = u16::from_le_bytes(field(4, 6).try_into().unwrap_or_default());
        let cert_type = u16::from_le_bytes(field(6, 8).try_into().unwrap_or_default());
        if length <= 8 {
            return Err(Error::CertTable(format!(
                "entry at {off:#x} has dwLength {length}; it must exceed the 8-byte header"
            )));
        }
        let end = off
            .checked_add(length as usize)
            .filter(|&e| e <= table.len())
            .ok_or_else(|| {
                Error::CertTable(format!(
                    "entry at {off:#x} of dwLength {length} runs past the table ({} bytes)",
                    table.len()
                ))
            })?;
        if revision != WIN_CERT_REVISION_2_0 {
            notes.push(TableNote(format!(
                "entry at {off:#x}: wRevision {revision:#06x} (expected 0x0200)"
            )));
        }
        entries.push(WinCertificate {
            offset: off,
            length,
            revision,
            cert_type,
            data: table.get(off + 8..end).unwrap_or_default(),
        });
        let next = end.checked_add(7).map(|e| e & !7).unwrap_or(usize::MAX);
        if next > table.len() {
            notes.push(TableNote(format!(
                "entry at {off:#x}: the table ends before the entry's 8-byte padding"
            )));
            break;
        }
        if table
            .get(end..next)
            .is_some_and(|p| p.iter().any(|&b| b != 0))
        {
            notes.push(TableNote(format!(
                "entry at {off:#x}: non-zero bytes in the alignment padding"
            )));
        }
        off = next;
    }
    if entries.is_empty() {
        return Err(Error::CertTable("the table has no entries".into()));
    }
    Ok((entries, notes))
}

/// Builds one WIN_CERTIFICATE entry for a PKCS#7 SignedData, zero-padded to 8 bytes, with the
/// padding counted in dwLength (as SignTool and osslsigncode write it).
pub fn build_entry(pkcs7_der: &[u8]) -> Result<Vec<u8>> {
    let unpadded = 8 + pkcs7_der.len();
    let padded = unpadded.div_ceil(8) * 8;
    let length = u32::try_from(padded)
        .map_err(|_| Error::InvalidValue("signature larger than 4 GiB".into()))?;
    let mut out = Vec::with_capacity(padded);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&WIN_CERT_REVISION_2_0.to_le_bytes());
    out.extend_from_slice(&WIN_CERT_TYPE_PKCS_SIGNED_DATA.to_le_bytes());
    out.extend_from_slice(pkcs7_der);
    out.resize(padded, 0);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn build_then_parse() {
        let e = build_entry(&[0x30, 0x03, 1, 2, 3]).expect("entry");
        assert_eq!(e.len(), 16);
        assert_eq!(&e[..4], &16u32.to_le_bytes());
        let (entries, notes) = parse_table(&e).expect("parse");
        assert_eq!(entries.len(), 1);
        assert!(notes.is_empty());
        assert_eq!(&entries[0].data[..5], &[0x30, 0x03, 1, 2, 3]);
    }

    #[test]
    fn broken_tables_are_errors() {
        assert!(parse_table(&[]).is_err());
        assert!(parse_table(&[0; 4]).is_err());
        // dwLength 0 would loop forever in a naive walker.
        assert!(parse_table(&[0, 0, 0, 0, 0, 2, 2, 0]).is_err());
        // dwLength past the end.
        let mut e = build_entry(&[1; 20]).expect("entry");
        e[0] = 200;
        assert!(parse_table(&e).is_err());
        // Non-zero alignment padding after an unpadded dwLength is noted.
        let mut e = build_entry(&[1; 3]).expect("entry");
        e[..4].copy_from_slice(&11u32.to_le_bytes());
        let n = e.len();
        e[n - 1] = 9;
        let (_, notes) = parse_table(&e).expect("parse");
        assert_eq!(notes.len(), 1);
    }
}
