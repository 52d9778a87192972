//! Signing (local ECDSA P-256 key, self-issued certificate) and verifying a generated PE of
//! 1 MiB and 64 MiB. Signing includes everything `codeseal sign` does to the file: the
//! hashing pass that copies it to a temp file, the key call, the check of the result, fsync
//! and rename. The previous output is removed outside the timed part.
use std::time::Duration;

use codeseal_authenticode::{sign_file, SignOptions, Verifier};
use codeseal_benches::{p256_identity, write_pe};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

const SIZES: [(u64, &str); 2] = [(1 << 20, "1MiB"), (64 << 20, "64MiB")];

fn sign_verify(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let identity = p256_identity().expect("identity");
    let opts = SignOptions::default();
    let mut g = c.benchmark_group("sign_verify");
    for (len, name) in SIZES {
        let input = dir.path().join(format!("{name}.exe"));
        let output = dir.path().join(format!("{name}-signed.exe"));
        write_pe(&input, len).expect("generate PE");
        sign_file(&identity, &input, &output, &opts).expect("sign");
        assert!(
            Verifier::integrity_only()
                .verify_file(&output)
                .expect("verify")
                .valid
        );
        g.throughput(Throughput::Bytes(len));
        g.bench_function(BenchmarkId::new("sign_p256", name), |b| {
            b.iter_batched(
                || {
                    let _ = std::fs::remove_file(&output);
                },
                |()| sign_file(&identity, &input, &output, &opts).expect("sign"),
                BatchSize::PerIteration,
            )
        });
        g.bench_function(BenchmarkId::new("verify", name), |b| {
            b.iter(|| {
                let report = Verifier::integrity_only()
                    .verify_file(&output)
                    .expect("verify");
                assert!(report.valid);
                report
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = sign_verify
}
criterion_main!(benches);
