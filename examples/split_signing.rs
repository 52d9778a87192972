//! Split signing across two machines: the build machine (A) has the file and the
//! certificate but no key; the signing machine (B) has only the key and never sees the file.
//! Only a small JSON request goes from A to B, and only the signature comes back.
//!
//! ```text
//! # machine A
//! cargo run -p codeseal-examples --example split_signing -- prepare FILE CHAIN.pem REQUEST.json
//! # machine B (KEY: any key URI, e.g. a file, awskms:///alias/NAME or pkcs11:...)
//! cargo run -p codeseal-examples --example split_signing -- sign KEY REQUEST.json SIGNATURE
//! # machine A, with its own REQUEST.json (not the copy that travelled)
//! cargo run -p codeseal-examples --example split_signing -- finish FILE REQUEST.json SIGNATURE CHAIN.pem ROOT.pem OUT
//! ```
//!
//! `finish` checks the signature against the certificate and the request, and the request
//! against FILE: a request changed on its way to B, a signature from another key, or a
//! changed FILE make it fail with nothing written. The result is verified against ROOT.pem
//! before it is reported valid.
use std::{path::Path, process::ExitCode};

use anyhow::{bail, Context as _};
use codeseal_authenticode::{
    split::{attach_request_signature, make_request, sign_request, DigestRequest},
    AttachOptions, OpusInfo, Verifier,
};
use codeseal_signer::DigestAlgorithm;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

const USAGE: &str = "usage: split_signing prepare FILE CHAIN.pem REQUEST.json
       split_signing sign KEY REQUEST.json SIGNATURE
       split_signing finish FILE REQUEST.json SIGNATURE CHAIN.pem ROOT.pem OUT";

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["prepare", file, chain, request] => prepare(file, chain, request),
        ["sign", key, request, signature] => sign(key, request, signature),
        ["finish", file, request, signature, chain, root, out] => {
            finish(file, request, signature, chain, root, out)
        }
        _ => bail!("{USAGE}"),
    }
}

/// Machine A: hash the file and write what the key must sign.
fn prepare(file: &str, chain: &str, request: &str) -> anyhow::Result<()> {
    let chain = codeseal_keys::load_certificates(Path::new(chain))?;
    let leaf = chain
        .first()
        .context("the chain file holds no certificate")?;
    let req = make_request(
        Path::new(file),
        leaf,
        DigestAlgorithm::Sha256,
        &OpusInfo::default(),
        false,
    )?;
    std::fs::write(request, serde_json::to_vec_pretty(&req)?)
        .with_context(|| format!("writing {request}"))?;
    println!("{request}: a request for a {} signature", req.algorithm);
    Ok(())
}

/// Machine B: sign the request's digest with the key (the file is never needed).
fn sign(key: &str, request: &str, signature: &str) -> anyhow::Result<()> {
    let req = read_request(request)?;
    let opened = codeseal_keys::open_key(key).context("opening the key")?;
    let sig = sign_request(opened.key.as_ref(), &req)?;
    std::fs::write(signature, &sig).with_context(|| format!("writing {signature}"))?;
    println!("{signature}: {} bytes", sig.len());
    Ok(())
}

/// Machine A: check the signature, assemble the PKCS#7, attach it, verify the result.
fn finish(
    file: &str,
    request: &str,
    signature: &str,
    chain: &str,
    root: &str,
    out: &str,
) -> anyhow::Result<()> {
    let req = read_request(request)?;
    let sig = std::fs::read(signature).with_context(|| format!("reading {signature}"))?;
    let chain = codeseal_keys::load_certificates(Path::new(chain))?;
    attach_request_signature(
        Path::new(file),
        &req,
        &sig,
        &chain,
        Path::new(out),
        AttachOptions::default(),
    )
    .context("attaching the signature")?;
    let roots = codeseal_keys::load_certificates(Path::new(root))?;
    let report = Verifier::new(roots)?.verify_file(Path::new(out))?;
    if !report.valid {
        // Not a file to ship: remove it.
        let _ = std::fs::remove_file(out);
        bail!("{out} does not verify: {:?}", report.signatures);
    }
    println!("{out}: signed, valid against the root");
    Ok(())
}

fn read_request(path: &str) -> anyhow::Result<DigestRequest> {
    let text = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    serde_json::from_slice(&text).with_context(|| format!("{path} is not a digest request"))
}
