//! Verify a file against trust anchors and print the typed findings: what a security team
//! embeds to triage files.
//!
//! ```text
//! cargo run -p codeseal-examples --example verify_findings -- ROOTS.pem FILE [--json]
//! ```
//!
//! Exit status: 0 valid, 1 invalid, 2 not verifiable (not signed, unsupported, unreadable).
//! Programs decide on `Finding::code` (stable, `snake_case` in JSON), never on the message.
use std::{path::Path, process::ExitCode};

use codeseal_authenticode::{Error, FindingCode, Verifier};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (roots, file, json) = match args.as_slice() {
        [r, f] => (r, f, false),
        [r, f, j] if j == "--json" => (r, f, true),
        _ => {
            eprintln!("usage: verify_findings ROOTS.pem FILE [--json]");
            return ExitCode::from(2);
        }
    };
    let verifier = match codeseal_keys::load_certificates(Path::new(roots))
        .map_err(|e| e.to_string())
        .and_then(|r| Verifier::new(r).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("trust anchors: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match verifier.verify_file(Path::new(file)) {
        Ok(r) => r,
        Err(Error::NotSigned) => {
            println!("{file}: not signed");
            return ExitCode::from(2);
        }
        Err(e) => {
            println!("{file}: cannot be verified: {e}");
            return ExitCode::from(2);
        }
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    } else {
        println!(
            "{file}: {} ({:?})",
            if report.valid { "valid" } else { "INVALID" },
            report.trust
        );
        for f in report.errors.iter().chain(&report.warnings) {
            println!("  file: {:?} {}", f.code, f.message);
        }
        for s in &report.signatures {
            let who = s.signer.as_ref().map_or("?", |c| c.subject.as_str());
            println!("  signature {} by {who}", s.index);
            for f in s.errors.iter().chain(&s.warnings) {
                let tampered = f.code == FindingCode::ImageDigestMismatch;
                println!(
                    "    {:?}{} {}",
                    f.code,
                    if tampered {
                        " (modified after signing)"
                    } else {
                        ""
                    },
                    f.message
                );
            }
        }
    }
    if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
