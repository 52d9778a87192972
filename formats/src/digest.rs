//! Digest maths: one incremental hasher for every supported algorithm, and the PE checksum.
use codeseal_signer::DigestAlgorithm;
use digest::Digest;

/// An incremental hash of one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256 (uses SHA-NI or the assembly path when the CPU has it).
    Sha256(sha2::Sha256),
    /// SHA-384.
    Sha384(sha2::Sha384),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A new hasher for `alg`.
    pub fn new(alg: DigestAlgorithm) -> Self {
        match alg {
            DigestAlgorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            DigestAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
            DigestAlgorithm::Sha384 => Self::Sha384(sha2::Sha384::new()),
            DigestAlgorithm::Sha512 => Self::Sha512(sha2::Sha512::new()),
        }
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    /// The digest.
    pub fn finalize(self) -> Vec<u8> {
        match self {
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha384(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// Where digest input goes: one hash, several at once ([`Hashers`]), or anything that
/// implements RustCrypto's `digest::Update`. The format walkers (CAB, MSI, scripts) feed
/// their digest input through it.
pub trait Sink {
    /// Feeds the next bytes.
    fn feed(&mut self, data: &[u8]);
}

impl<D: digest::Update> Sink for D {
    fn feed(&mut self, data: &[u8]) {
        self.update(data);
    }
}

impl Sink for Hasher {
    fn feed(&mut self, data: &[u8]) {
        self.update(data);
    }
}

/// One hasher per digest algorithm, fed together.
#[derive(Clone)]
pub struct Hashers(Vec<(DigestAlgorithm, Hasher)>);

impl Hashers {
    /// Hashers for `algs`.
    pub fn new(algs: &[DigestAlgorithm]) -> Self {
        Self(algs.iter().map(|&a| (a, Hasher::new(a))).collect())
    }

    /// The digests.
    pub fn finish(self) -> Digests {
        Digests(self.0.into_iter().map(|(a, h)| (a, h.finalize())).collect())
    }
}

impl Sink for Hashers {
    fn feed(&mut self, data: &[u8]) {
        self.0.iter_mut().for_each(|(_, h)| h.update(data));
    }
}

/// Digests by algorithm, as [`Hashers::finish`] returns them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Digests(Vec<(DigestAlgorithm, Vec<u8>)>);

impl Digests {
    /// The digest for `alg`, if it was computed.
    pub fn get(&self, alg: DigestAlgorithm) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, d)| d.as_slice())
    }

    /// The digest for `alg`, taken out.
    pub fn take(self, alg: DigestAlgorithm) -> Option<Vec<u8>> {
        self.0.into_iter().find(|(a, _)| *a == alg).map(|(_, d)| d)
    }

    /// The algorithms computed.
    pub fn algorithms(&self) -> impl Iterator<Item = DigestAlgorithm> + '_ {
        self.0.iter().map(|(a, _)| *a)
    }
}

/// The PE checksum (the `CheckSum` optional-header field), accumulated over pieces of the
/// file in any order.
///
/// The PE algorithm adds the file's little-endian 16-bit words with end-around carry, then
/// adds the file length. End-around-carry addition is addition modulo 0xFFFF, and
/// 2^16 ≡ 1 (mod 0xFFFF), so 32-bit words can be summed instead of 16-bit ones, and a byte
/// at an odd offset counts as `byte << 8`. Bytes not fed (the CheckSum field itself) count
/// as zero.
#[derive(Clone, Debug, Default)]
pub struct PeChecksum {
    acc: u64,
    nonzero: bool,
}

impl PeChecksum {
    /// Adds `data`, which sits at file offset `offset`.
    pub fn update(&mut self, offset: u64, mut data: &[u8]) {
        let mut acc = 0u64;
        if offset % 2 == 1 {
            if let Some((&first, rest)) = data.split_first() {
                acc += u64::from(first) << 8;
                data = rest;
            }
        }
        // Now `data` starts at an even offset: its 4-byte groups are two whole words each.
        let mut groups = data.chunks_exact(4);
        for g in &mut groups {
            acc += u64::from(u32::from_le_bytes(g.try_into().unwrap_or([0; 4])));
        }
        for (i, &b) in groups.remainder().iter().enumerate() {
            acc += u64::from(b) << (8 * (i % 2));
        }
        // One call adds at most 2^32 per 4 bytes; reduce so that `acc` never overflows.
        self.nonzero |= acc != 0;
        self.acc = (self.acc + acc % 0xffff) % 0xffff;
    }

    /// The checksum of a file of `file_len` bytes whose every byte (but the CheckSum field)
    /// was fed.
    pub fn finish(&self, file_len: u64) -> u32 {
        let folded = match (self.acc, self.nonzero) {
            (0, false) => 0,
            (0, true) => 0xffff,
            (v, _) => v,
        };
        (folded as u32).wrapping_add(file_len as u32)
    }

    /// The reference algorithm over a whole in-memory file, for tests and small inputs.
    #[allow(clippy::indexing_slicing)] // `chunks(2)` yields non-empty slices
    pub fn of_file(file: &[u8], checksum_offset: usize) -> u32 {
        let mut sum: u32 = 0;
        for (i, w) in file.chunks(2).enumerate() {
            let at = i * 2;
            if at == checksum_offset || at == checksum_offset + 2 {
                continue;
            }
            let word = u32::from(w[0]) | (u32::from(*w.get(1).unwrap_or(&0)) << 8);
            sum += word;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum = (sum & 0xffff) + (sum >> 16);
        sum.wrapping_add(file.len() as u32)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn checksum_matches_reference_in_any_split() {
        for (n, seed) in [(0usize, 1u32), (1, 2), (7, 3), (4096, 4), (100_001, 5)] {
            let data = pseudo_random(n, seed);
            let cks = 64.min(n.saturating_sub(4)) & !1;
            let want = PeChecksum::of_file(&data, if n >= 68 { cks } else { usize::MAX - 4 });
            // Feed in odd-sized pieces, leaving out the checksum field.
            let mut c = PeChecksum::default();
            let mut pos = 0;
            let mut step = 1;
            while pos < n {
                let end = (pos + step).min(n);
                for i in pos..end {
                    if n >= 68 && (cks..cks + 4).contains(&i) {
                        continue;
                    }
                    c.update(i as u64, &data[i..i + 1]);
                }
                pos = end;
                step = step * 3 + 1;
            }
            assert_eq!(c.finish(n as u64), want, "n={n}");
            // And in one piece with the field zeroed.
            let mut z = data.clone();
            if n >= 68 {
                z[cks..cks + 4].fill(0);
            }
            let mut c2 = PeChecksum::default();
            c2.update(0, &z);
            assert_eq!(c2.finish(n as u64), want, "n={n} whole");
        }
    }

    /// The two-thread pass over a large file gives what the plain definition gives.
    #[test]
    fn checksum_all_ones_edge() {
        // 0x8000 + 0x7fff = 0xffff: end-around carry keeps 0xffff, not 0.
        let data = [0x00, 0x80, 0xff, 0x7f];
        let mut c = PeChecksum::default();
        c.update(0, &data);
        assert_eq!(c.finish(4), PeChecksum::of_file(&data, usize::MAX - 4));
    }
}
