//! A checked reader for the parts of a PE file Authenticode needs.
//!
//! It reads only the headers (DOS header, COFF header, optional header, section table) from
//! a `Read + Seek` source, checks every offset and length against the file size, and never
//! allocates by a header field beyond what the file can hold. The Security data-directory
//! entry holds a **file offset**, not an RVA.
use std::io::{Read, Seek, SeekFrom};

use serde::Serialize;

use crate::error::{Error, Result};

/// `IMAGE_NT_OPTIONAL_HDR32_MAGIC`.
pub const PE32_MAGIC: u16 = 0x10b;
/// `IMAGE_NT_OPTIONAL_HDR64_MAGIC`.
pub const PE32_PLUS_MAGIC: u16 = 0x20b;
/// Index of the Security (certificate table) data directory.
pub const SECURITY_DIR_INDEX: u32 = 4;
/// Size of a section header.
const SECTION_HEADER_LEN: u64 = 40;

/// One section header, as found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Name (up to 8 bytes, lossily decoded).
    pub name: String,
    /// VirtualSize.
    pub virtual_size: u32,
    /// VirtualAddress.
    pub virtual_address: u32,
    /// SizeOfRawData.
    pub raw_size: u32,
    /// PointerToRawData.
    pub raw_offset: u32,
    /// Characteristics.
    pub characteristics: u32,
}

/// Location of the certificate table, from the Security data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CertTableLocation {
    /// File offset of the table.
    pub offset: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// The facts about a PE file that Authenticode needs, all checked against the file size.
#[derive(Clone, Debug, Serialize)]
pub struct PeInfo {
    /// File length in bytes.
    pub file_len: u64,
    /// Offset of the "PE\0\0" signature (e_lfanew).
    pub pe_offset: u64,
    /// COFF Machine.
    pub machine: u16,
    /// COFF Characteristics.
    pub characteristics: u16,
    /// Whether this is PE32+ (64-bit).
    pub pe32_plus: bool,
    /// Subsystem.
    pub subsystem: u16,
    /// SectionAlignment.
    pub section_alignment: u32,
    /// FileAlignment.
    pub file_alignment: u32,
    /// SizeOfHeaders.
    pub size_of_headers: u32,
    /// The CheckSum field's value.
    pub checksum: u32,
    /// File offset of the 4-byte CheckSum field.
    pub checksum_offset: u64,
    /// File offset of the 8-byte Security data-directory entry.
    pub security_dir_offset: u64,
    /// NumberOfRvaAndSizes.
    pub number_of_rva_and_sizes: u32,
    /// The certificate table, if the Security entry is not empty.
    pub cert_table: Option<CertTableLocation>,
    /// Section headers.
    pub sections: Vec<Section>,
    /// PointerToSymbolTable (non-zero in unstripped images).
    pub symbol_table_offset: u32,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes(s.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

/// Reads exactly `len` bytes at `offset`, after checking they are inside the file.
fn read_at<R: Read + Seek>(
    r: &mut R,
    file_len: u64,
    offset: u64,
    len: u64,
    what: &'static str,
) -> Result<Vec<u8>> {
    let end = offset.checked_add(len).ok_or(Error::Truncated {
        what,
        needed: u64::MAX,
        len: file_len,
    })?;
    if end > file_len {
        return Err(Error::Truncated {
            what,
            needed: end,
            len: file_len,
        });
    }
    r.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(format!("seeking to {what}"), e))?;
    // `len` is bounded by the file length, which the caller read from the file system.
    let mut buf =
        vec![0u8; usize::try_from(len).map_err(|_| Error::pe("header too large", offset))?];
    r.read_exact(&mut buf)
        .map_err(|e| Error::io(format!("reading {what}"), e))?;
    Ok(buf)
}

impl PeInfo {
    /// Reads and checks the headers of the PE file in `r`.
    pub fn read<R: Read + Seek>(r: &mut R) -> Result<Self> {
        let file_len = r
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io("finding the file size", e))?;
        let dos = read_at(r, file_len, 0, 64, "DOS header")?;
        if dos.get(..2) != Some(b"MZ") {
            return Err(Error::pe("no MZ signature", 0));
        }
        let pe_offset = u64::from(u32_at(&dos, 0x3c).ok_or(Error::pe("short DOS header", 0))?);
        // PE signature (4) + COFF file header (20).
        let coff = read_at(r, file_len, pe_offset, 24, "PE/COFF header")?;
        if coff.get(..4) != Some(b"PE\0\0") {
            return Err(Error::pe("no PE\\0\\0 signature at e_lfanew", pe_offset));
        }
        let field = |b: &[u8], off: usize, at: u64| {
            u16_at(b, off).ok_or_else(|| Error::pe("short header", at))
        };
        let machine = field(&coff, 4, pe_offset)?;
        let n_sections = field(&coff, 6, pe_offset)?;
        let symbol_table_offset = u32_at(&coff, 12).unwrap_or(0);
        let opt_len = field(&coff, 20, pe_offset)?;
        let characteristics = field(&coff, 22, pe_offset)?;
        let opt_offset = pe_offset + 24;
        let opt = read_at(
            r,
            file_len,
            opt_offset,
            u64::from(opt_len),
            "optional header",
        )?;
        let magic = u16_at(&opt, 0).ok_or(Error::pe(
            "optional header too short for its magic",
            opt_offset,
        ))?;
        let pe32_plus = match magic {
            PE32_MAGIC => false,
            PE32_PLUS_MAGIC => true,
            other => {
                return Err(Error::pe(
                    format!("unknown optional header magic {other:#x}"),
                    opt_offset,
                ))
            }
        };
        // Offsets inside the optional header.
        let (n_dirs_at, dirs_at) = if pe32_plus { (108, 112) } else { (92, 96) };
        let need = |off: usize, what: &str| {
            Error::pe(
                format!("optional header of {opt_len} bytes is too short for {what} (needs {off})"),
                opt_offset,
            )
        };
        let section_alignment = u32_at(&opt, 32).ok_or_else(|| need(36, "SectionAlignment"))?;
        let file_alignment = u32_at(&opt, 36).ok_or_else(|| need(40, "FileAlignment"))?;
        let size_of_headers = u32_at(&opt, 60).ok_or_else(|| need(64, "SizeOfHeaders"))?;
        let checksum = u32_at(&opt, 64).ok_or_else(|| need(68, "CheckSum"))?;
        let subsystem = u16_at(&opt, 68).ok_or_else(|| need(70, "Subsystem"))?;
        let number_of_rva_and_sizes =
            u32_at(&opt, n_dirs_at).ok_or_else(|| need(n_dirs_at + 4, "NumberOfRvaAndSizes"))?;
        if number_of_rva_and_sizes <= SECURITY_DIR_INDEX {
            return Err(Error::pe(
                format!(
                    "NumberOfRvaAndSizes is {number_of_rva_and_sizes}: there is no Security directory entry"
                ),
                opt_offset,
            ));
        }
        let sec_at = dirs_at + 8 * SECURITY_DIR_INDEX as usize;
        let sec_va =
            u32_at(&opt, sec_at).ok_or_else(|| need(sec_at + 8, "the Security directory"))?;
        let sec_size =
            u32_at(&opt, sec_at + 4).ok_or_else(|| need(sec_at + 8, "the Security directory"))?;
        let checksum_offset = opt_offset + 64;
        let security_dir_offset = opt_offset + sec_at as u64;

        let table_offset = opt_offset + u64::from(opt_len);
        let table_len = u64::from(n_sections) * SECTION_HEADER_LEN;
        let table = read_at(r, file_len, table_offset, table_len, "section table")?;
        let mut sections = Vec::with_capacity(usize::from(n_sections));
        for raw in table.chunks_exact(SECTION_HEADER_LEN as usize) {
            let name_bytes = raw.get(..8).unwrap_or_default();
            let name_end = name_bytes
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(name_bytes.len());
            let s = Section {
                name: String::from_utf8_lossy(name_bytes.get(..name_end).unwrap_or_default())
                    .into_owned(),
                virtual_size: u32_at(raw, 8).unwrap_or(0),
                virtual_address: u32_at(raw, 12).unwrap_or(0),
                raw_size: u32_at(raw, 16).unwrap_or(0),
                raw_offset: u32_at(raw, 20).unwrap_or(0),
                characteristics: u32_at(raw, 36).unwrap_or(0),
            };
            let end = u64::from(s.raw_offset) + u64::from(s.raw_size);
            if s.raw_size != 0 && end > file_len {
                return Err(Error::Truncated {
                    what: "section data",
                    needed: end,
                    len: file_len,
                });
            }
            sections.push(s);
        }
        let headers_end = table_offset + table_len;

        let cert_table = if sec_va == 0 && sec_size == 0 {
            None
        } else {
            let offset = u64::from(sec_va);
            let size = u64::from(sec_size);
            if size < 8 {
                return Err(Error::CertTable(format!(
                    "the Security directory says {size} bytes at {offset:#x}; a table needs at least 8"
                )));
            }
            if offset < headers_end {
                return Err(Error::CertTable(format!(
                    "the table at {offset:#x} overlaps the PE headers (which end at {headers_end:#x})"
                )));
            }
            let end = offset + size; // both from u32: cannot overflow u64
            if end > file_len {
                return Err(Error::CertTable(format!(
                    "the table at {offset:#x} of {size} bytes runs past the end of the file (size {file_len:#x})"
                )));
            }
            // Section data must not run into the table: the signature would cover bytes that
            // the loader maps, and removing it would cut the section short.
            if let Some(sec) = sections.iter().find(|s| {
                s.raw_size != 0 && u64::from(s.raw_offset) + u64::from(s.raw_size) > offset
            }) {
                return Err(Error::CertTable(format!(
                    "section {} (raw data to {:#x}) runs into the certificate table at {offset:#x}",
                    sec.name,
                    u64::from(sec.raw_offset) + u64::from(sec.raw_size)
                )));
            }
            Some(CertTableLocation { offset, size })
        };

        Ok(Self {
            file_len,
            pe_offset,
            machine,
            characteristics,
            pe32_plus,
            subsystem,
            section_alignment,
            file_alignment,
            size_of_headers,
            checksum,
            checksum_offset,
            security_dir_offset,
            number_of_rva_and_sizes,
            cert_table,
            sections,
            symbol_table_offset,
        })
    }

    /// Where the hashed image ends: the certificate table's offset, or the end of the file.
    pub fn image_end(&self) -> u64 {
        self.cert_table.map_or(self.file_len, |t| t.offset)
    }

    /// Bytes after the certificate table (data a signature does not cover: CVE-2012-0151).
    pub fn bytes_after_cert_table(&self) -> u64 {
        self.cert_table
            .map_or(0, |t| self.file_len.saturating_sub(t.offset + t.size))
    }

    /// A human name for the machine type.
    pub fn machine_name(&self) -> &'static str {
        match self.machine {
            0x14c => "x86",
            0x8664 => "x64",
            0xaa64 => "ARM64",
            0x1c0 | 0x1c4 => "ARM",
            0x200 => "IA-64",
            0x5064 => "RISC-V 64",
            _ => "other",
        }
    }

    /// Whether the image is a DLL.
    pub fn is_dll(&self) -> bool {
        self.characteristics & 0x2000 != 0
    }
}

/// A minimal, valid PE32+ header with one section, built field by field (tests only).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
#[allow(clippy::indexing_slicing)]
pub fn tiny_pe() -> Vec<u8> {
    let mut f = vec![0u8; 0x400];
    f[0..2].copy_from_slice(b"MZ");
    f[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    f[0x80..0x84].copy_from_slice(b"PE\0\0");
    f[0x84..0x86].copy_from_slice(&0x8664u16.to_le_bytes());
    f[0x86..0x88].copy_from_slice(&1u16.to_le_bytes());
    f[0x94..0x96].copy_from_slice(&240u16.to_le_bytes());
    let opt = 0x98;
    f[opt..opt + 2].copy_from_slice(&PE32_PLUS_MAGIC.to_le_bytes());
    f[opt + 32..opt + 36].copy_from_slice(&0x1000u32.to_le_bytes());
    f[opt + 36..opt + 40].copy_from_slice(&0x200u32.to_le_bytes());
    f[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
    f[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
    let sec = opt + 240;
    f[sec..sec + 5].copy_from_slice(b".text");
    f[sec + 16..sec + 20].copy_from_slice(&0x200u32.to_le_bytes());
    f[sec + 20..sec + 24].copy_from_slice(&0x200u32.to_le_bytes());
    f
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
pub(crate) mod tests {
    use std::io::Cursor;

    use super::*;

    use super::tiny_pe;

    #[test]
    fn reads_a_minimal_pe() {
        let pe = PeInfo::read(&mut Cursor::new(tiny_pe())).expect("valid");
        assert!(pe.pe32_plus);
        assert_eq!(pe.sections.len(), 1);
        assert_eq!(pe.checksum_offset, 0x98 + 64);
        assert_eq!(pe.security_dir_offset, 0x98 + 112 + 32);
        assert_eq!(pe.cert_table, None);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        // Truncated: every prefix of a valid file is an error, never a panic.
        let good = tiny_pe();
        for n in [0, 1, 2, 63, 64, 0x83, 0x97, 0x100, 0x187] {
            let r = PeInfo::read(&mut Cursor::new(good[..n].to_vec()));
            assert!(r.is_err(), "prefix {n} accepted");
        }
        // e_lfanew past EOF.
        let mut f = good.clone();
        f[0x3c..0x40].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(matches!(
            PeInfo::read(&mut Cursor::new(f)),
            Err(Error::Truncated { .. })
        ));
        // Absurd section count: table runs past EOF.
        let mut f = good.clone();
        f[0x86..0x88].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(matches!(
            PeInfo::read(&mut Cursor::new(f)),
            Err(Error::Truncated {
                what: "section table",
                ..
            })
        ));
        // Section whose raw data runs past EOF.
        let mut f = good.clone();
        let sec = 0x98 + 240;
        f[sec + 16..sec + 20].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
        assert!(matches!(
            PeInfo::read(&mut Cursor::new(f)),
            Err(Error::Truncated {
                what: "section data",
                ..
            })
        ));
        // Certificate table past EOF.
        let mut f = good.clone();
        let dir = 0x98 + 112 + 32;
        f[dir..dir + 4].copy_from_slice(&0x300u32.to_le_bytes());
        f[dir + 4..dir + 8].copy_from_slice(&0x1000u32.to_le_bytes());
        assert!(matches!(
            PeInfo::read(&mut Cursor::new(f)),
            Err(Error::CertTable(_))
        ));
        // Certificate table overlapping the headers.
        let mut f = good.clone();
        f[dir..dir + 4].copy_from_slice(&0x10u32.to_le_bytes());
        f[dir + 4..dir + 8].copy_from_slice(&0x10u32.to_le_bytes());
        assert!(matches!(
            PeInfo::read(&mut Cursor::new(f)),
            Err(Error::CertTable(_))
        ));
        // Bad magic, no Security entry.
        let mut f = good.clone();
        f[0x98] = 0x33;
        assert!(matches!(
            PeInfo::read(&mut Cursor::new(f)),
            Err(Error::MalformedPe { .. })
        ));
        let mut f = good;
        f[0x98 + 108..0x98 + 112].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(
            PeInfo::read(&mut Cursor::new(f)),
            Err(Error::MalformedPe { .. })
        ));
    }
}
