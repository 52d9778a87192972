//! `sign_file_async` never blocks the executor: on a single-threaded tokio runtime, a task
//! that ticks every millisecond keeps ticking while a 48 MiB file is hashed, copied and
//! written (all of it on the blocking pool), and the result verifies in osslsigncode.
mod common;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use codeseal_authenticode::{sign_file_async, SignOptions};
use common::*;

#[test]
fn async_signing_leaves_the_executor_free() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("big.exe");
    let mut bytes = std::fs::read(fixture("pe64.exe")).expect("fixture");
    // An overlay: hashed like the rest of the file.
    bytes.extend((0..48u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    std::fs::write(&input, &bytes).expect("write");
    let output = dir.path().join("big-signed.exe");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let ticks = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        let (t, d) = (Arc::clone(&ticks), Arc::clone(&done));
        let ticker = tokio::spawn(async move {
            while !d.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                t.fetch_add(1, Ordering::SeqCst);
            }
        });
        let id = identity("leaf-rsa2048");
        let out = sign_file_async(&id, &input, &output, &SignOptions::default())
            .await
            .expect("sign");
        done.store(true, Ordering::SeqCst);
        ticker.await.expect("ticker");
        assert!(out.output_len > 48 << 20);
    });
    // Had the hashing run on this (only) executor thread, the ticker could not have run
    // at all until it finished; it ran throughout.
    let n = ticks.load(Ordering::SeqCst);
    assert!(n >= 5, "the executor was blocked: {n} ticks");
    let (ok, log) = osslsigncode_verify(&output, &root());
    assert!(ok, "{log}");
}
