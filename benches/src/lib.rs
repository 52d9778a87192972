//! Fixtures for the criterion benchmarks in `benches/`: a generated PE32+ file of any size
//! and a throwaway ECDSA P-256 signing identity.
//!
//! Run them with `cargo bench -p codeseal-benches` (`-- digest` or `-- sign` to pick).
use std::{fs::File, io::Write, path::Path};

use anyhow::Context;
use codeseal_local::ThrowawayPki;
use codeseal_signer::SigningIdentity;

/// Offset of the one section's raw data (= SizeOfHeaders).
const HEADERS: usize = 0x400;

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// The headers of a minimal PE32+ (AMD64) whose one initialized section `.bigdata` holds
/// `section_len` bytes (a multiple of 0x200) right after the headers.
pub fn pe_headers(section_len: u32) -> Vec<u8> {
    let mut h = vec![0u8; HEADERS];
    put(&mut h, 0, b"MZ");
    put(&mut h, 0x3c, &0x80u32.to_le_bytes()); // e_lfanew
    put(&mut h, 0x80, b"PE\0\0");
    put(&mut h, 0x84, &0x8664u16.to_le_bytes()); // Machine: AMD64
    put(&mut h, 0x86, &1u16.to_le_bytes()); // NumberOfSections
    put(&mut h, 0x94, &240u16.to_le_bytes()); // SizeOfOptionalHeader
    put(&mut h, 0x96, &0x0022u16.to_le_bytes()); // executable, large-address aware
    let opt = 0x98;
    put(&mut h, opt, &0x20bu16.to_le_bytes()); // PE32+
    put(&mut h, opt + 24, &0x1_4000_0000u64.to_le_bytes()); // ImageBase
    put(&mut h, opt + 32, &0x1000u32.to_le_bytes()); // SectionAlignment
    put(&mut h, opt + 36, &0x200u32.to_le_bytes()); // FileAlignment
    put(&mut h, opt + 40, &6u16.to_le_bytes()); // MajorOperatingSystemVersion
    put(&mut h, opt + 48, &6u16.to_le_bytes()); // MajorSubsystemVersion
    let image = (0x1000 + u64::from(section_len)).div_ceil(0x1000) * 0x1000;
    put(&mut h, opt + 56, &(image as u32).to_le_bytes()); // SizeOfImage
    put(&mut h, opt + 60, &(HEADERS as u32).to_le_bytes()); // SizeOfHeaders
    put(&mut h, opt + 68, &3u16.to_le_bytes()); // Subsystem: console
    put(&mut h, opt + 108, &16u32.to_le_bytes()); // NumberOfRvaAndSizes
    let sec = opt + 240;
    put(&mut h, sec, b".bigdata");
    put(&mut h, sec + 8, &section_len.to_le_bytes()); // VirtualSize
    put(&mut h, sec + 12, &0x1000u32.to_le_bytes()); // VirtualAddress
    put(&mut h, sec + 16, &section_len.to_le_bytes()); // SizeOfRawData
    put(&mut h, sec + 20, &(HEADERS as u32).to_le_bytes()); // PointerToRawData
    put(&mut h, sec + 36, &0x4000_0040u32.to_le_bytes()); // initialized data, readable
    h
}

/// Writes an unsigned PE32+ of about `len` bytes (headers + one section of pseudo-random
/// bytes, rounded up to 0x200) to `path`. Memory use is one 1 MiB buffer.
pub fn write_pe(path: &Path, len: u64) -> anyhow::Result<()> {
    let section = (len.saturating_sub(HEADERS as u64)).div_ceil(0x200) * 0x200;
    let section = u32::try_from(section).context("a PE section is at most 4 GiB")?;
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(&pe_headers(section))?;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = u64::from(section);
    while left > 0 {
        for w in buf.chunks_exact_mut(8) {
            // xorshift64: incompressible enough, and the same file every run.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        f.write_all(buf.get(..n).unwrap_or_default())?;
        left -= n as u64;
    }
    f.sync_all()?;
    Ok(())
}

/// A throwaway ECDSA P-256 identity: leaf key, leaf and intermediate certificates of a
/// fresh [`ThrowawayPki`] (valid for a week).
pub fn p256_identity() -> anyhow::Result<SigningIdentity> {
    let pki = ThrowawayPki::generate("codeseal bench").map_err(|e| anyhow::anyhow!(e))?;
    Ok(SigningIdentity::new(pki.leaf_key, pki.chain)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pe_signs_and_verifies() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (input, output) = (dir.path().join("in.exe"), dir.path().join("out.exe"));
        write_pe(&input, 3 << 20)?;
        let pe = codeseal_authenticode::PeInfo::read(&mut File::open(&input)?)?;
        assert_eq!(pe.sections.len(), 1);
        assert_eq!(pe.file_len, 3 << 20);
        let id = p256_identity()?;
        codeseal_authenticode::sign_file(&id, &input, &output, &Default::default())?;
        assert!(
            codeseal_authenticode::Verifier::integrity_only()
                .verify_file(&output)?
                .valid
        );
        Ok(())
    }
}
