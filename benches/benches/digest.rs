//! The Authenticode digest pass over a generated PE in the page cache (1 MiB and 64 MiB),
//! against its floor: the same file read and hashed with plain SHA-256 on one thread (what
//! `openssl dgst -sha256` does).
use std::{
    fs::File,
    io::{BufReader, Read},
    path::Path,
    time::Duration,
};

use codeseal_authenticode::{digest::stream_image, PeInfo};
use codeseal_benches::write_pe;
use codeseal_signer::DigestAlgorithm;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sha2::{Digest, Sha256};

const SIZES: [(u64, &str); 2] = [(1 << 20, "1MiB"), (64 << 20, "64MiB")];

fn authenticode_digest(path: &Path) -> Vec<u8> {
    let mut r = BufReader::with_capacity(64 << 10, File::open(path).expect("open"));
    let pe = PeInfo::read(&mut r).expect("headers");
    let pass = stream_image(&mut r, &pe, &[DigestAlgorithm::Sha256], None).expect("pass");
    pass.digest(DigestAlgorithm::Sha256)
        .expect("digest")
        .to_vec()
}

fn plain_sha256(path: &Path) -> Vec<u8> {
    let mut f = File::open(path).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    let mut h = Sha256::new();
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    h.finalize().to_vec()
}

fn digest(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut g = c.benchmark_group("digest");
    for (len, name) in SIZES {
        let path = dir.path().join(format!("{name}.exe"));
        write_pe(&path, len).expect("generate PE");
        plain_sha256(&path); // into the page cache
        g.throughput(Throughput::Bytes(len));
        g.bench_with_input(
            BenchmarkId::new("authenticode_sha256", name),
            &path,
            |b, p| b.iter(|| authenticode_digest(p)),
        );
        g.bench_with_input(
            BenchmarkId::new("plain_sha256_floor", name),
            &path,
            |b, p| b.iter(|| plain_sha256(p)),
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = digest
}
criterion_main!(benches);
