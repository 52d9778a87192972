//! Page hashes: a table of `(u32 file offset, digest)` for the headers and every page of
//! every section, carried in SpcPeImageData (SignTool `/ph`, osslsigncode `-ph`).
//!
//! Entry 0 hashes the headers (`[0, SizeOfHeaders)` without the CheckSum field and the
//! Security entry) followed by `page - SizeOfHeaders` zero bytes; then each section's raw
//! data in page-sized pieces, the last piece zero-padded to a page; a final entry holds the
//! end of the last section and an all-zero digest. The page size is SectionAlignment, as
//! osslsigncode and signify use. SHA-1 tables use the v1 OID, all others SHA-256 and v2.
use crate::oid::*;
use codeseal_signer::DigestAlgorithm;
use const_oid::ObjectIdentifier;

use crate::{
    digest::Hasher,
    error::{Error, Result},
    pe::PeInfo,
};

/// The SpcSerializedObject class id that marks a page-hash table.
pub const PAGE_HASH_CLASS_ID: [u8; 16] = [
    0xa6, 0xb5, 0x86, 0xd5, 0xb4, 0xa1, 0x24, 0x66, 0xae, 0x05, 0xa2, 0x17, 0xda, 0x8e, 0x60, 0xd6,
];

/// The hash a page-hash table uses for a signature with `digest`.
pub fn page_hash_algorithm(digest: DigestAlgorithm) -> DigestAlgorithm {
    if digest == DigestAlgorithm::Sha1 {
        DigestAlgorithm::Sha1
    } else {
        DigestAlgorithm::Sha256
    }
}

/// The OID of a table made with `alg`.
pub fn page_hash_oid(alg: DigestAlgorithm) -> ObjectIdentifier {
    if alg == DigestAlgorithm::Sha1 {
        PAGE_HASHES_V1
    } else {
        PAGE_HASHES_V2
    }
}

#[derive(Clone, Copy, Debug)]
struct Page {
    start: u64,
    end: u64,
    padded_len: u64,
}

/// Computes a page-hash table from the bytes of a streaming pass.
#[derive(Clone)]
pub struct PageHasher {
    alg: DigestAlgorithm,
    pages: Vec<Page>,
    next: usize,
    current: Option<(Hasher, u64)>,
    table: Vec<u8>,
    last_end: u64,
}

impl std::fmt::Debug for PageHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageHasher")
            .field("alg", &self.alg)
            .field("pages", &self.pages.len())
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl PageHasher {
    /// Plans the pages of `pe`. Fails on layouts a page-hash table cannot describe
    /// (page size out of 512..=64 KiB, overlapping or unordered sections).
    pub fn new(pe: &PeInfo, alg: DigestAlgorithm) -> Result<Self> {
        let page = u64::from(pe.section_alignment);
        if !(512..=65536).contains(&page) || !page.is_power_of_two() {
            return Err(Error::InvalidValue(format!(
                "page hashes need a SectionAlignment between 512 and 64 KiB; this file has {page}"
            )));
        }
        let headers = u64::from(pe.size_of_headers);
        if headers == 0 || headers > page || headers > pe.file_len {
            return Err(Error::InvalidValue(format!(
                "page hashes need SizeOfHeaders ({headers}) within the first page"
            )));
        }
        let mut pages = vec![Page {
            start: 0,
            end: headers,
            padded_len: page,
        }];
        let mut sections: Vec<_> = pe.sections.iter().filter(|s| s.raw_size > 0).collect();
        sections.sort_by_key(|s| s.raw_offset);
        let mut prev_end = headers;
        let mut last_end = headers;
        for s in sections {
            let start = u64::from(s.raw_offset);
            let end = start + u64::from(s.raw_size);
            if start < prev_end {
                return Err(Error::InvalidValue(format!(
                    "page hashes need non-overlapping sections; section {} at {start:#x} overlaps",
                    s.name
                )));
            }
            let mut off = start;
            while off < end {
                pages.push(Page {
                    start: off,
                    end: (off + page).min(end),
                    padded_len: page,
                });
                off += page;
            }
            prev_end = end;
            last_end = end;
        }
        if last_end > pe.image_end() {
            return Err(Error::InvalidValue(
                "a section runs into the certificate table".into(),
            ));
        }
        let entry = 4 + alg.output_len();
        Ok(Self {
            alg,
            table: Vec::with_capacity(entry * (pages.len() + 1)),
            pages,
            next: 0,
            current: None,
            last_end,
        })
    }

    /// Feeds `data`, which sits at file offset `offset` (bytes not fed count as excluded).
    pub fn update(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        let mut pos = offset;
        while pos < end {
            let Some(page) = self.pages.get(self.next).copied() else {
                return;
            };
            if pos >= page.end {
                self.close_page();
                continue;
            }
            if end <= page.start {
                return;
            }
            let from = pos.max(page.start);
            let to = end.min(page.end);
            let (h, _) = self
                .current
                .get_or_insert_with(|| (Hasher::new(self.alg), page.start));
            if let Some(part) = data.get((from - offset) as usize..(to - offset) as usize) {
                h.update(part);
            }
            pos = to;
            if to == page.end {
                self.close_page();
            }
        }
    }

    fn close_page(&mut self) {
        let Some(page) = self.pages.get(self.next).copied() else {
            return;
        };
        let (mut h, start) = self
            .current
            .take()
            .unwrap_or_else(|| (Hasher::new(self.alg), page.start));
        // For the header page too the padding counts from SizeOfHeaders, the excluded
        // CheckSum and Security entry notwithstanding (what osslsigncode and Windows do).
        let hashed = page.end - page.start;
        let zeros = [0u8; 4096];
        let mut pad = page.padded_len.saturating_sub(hashed);
        while pad > 0 {
            let n = pad.min(zeros.len() as u64) as usize;
            h.update(zeros.get(..n).unwrap_or_default());
            pad -= n as u64;
        }
        self.table.extend_from_slice(&(start as u32).to_le_bytes());
        self.table.extend_from_slice(&h.finalize());
        self.next += 1;
    }

    /// The finished table (closes pages not fully fed, which only happens on short input).
    pub fn finish(mut self) -> (DigestAlgorithm, Vec<u8>) {
        while self.next < self.pages.len() {
            self.close_page();
        }
        self.table
            .extend_from_slice(&(self.last_end as u32).to_le_bytes());
        self.table
            .extend(std::iter::repeat_n(0u8, self.alg.output_len()));
        (self.alg, self.table)
    }
}
