//! Writes the hostile-signature variants of `authenticode/tests/hostile.rs` (issue #13) for
//! `bench/hostile.sh`: the same generator, included by path.
//!
//! ```text
//! cargo run --release -p codeseal-benches --example hostile_gen -- SIGNED_PE OUT_DIR [--large] [NAME...]
//! ```
//! SIGNED_PE: a PE signed by codeseal (its certificate table must end the file). Without
//! names: every variant of the test (`--large`: the ignored largest sizes too). Names are
//! those the test prints, e.g. `attr-values-desc-100000`, `nested-chain-10000`. Prints one
//! line per file written: `NAME BYTES PATH`.
#[path = "../../authenticode/tests/common/hostile_gen.rs"]
mod hostile_gen;

use std::{path::PathBuf, process::ExitCode};

use hostile_gen::{generate, SignedPe, Spec};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(input), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: hostile_gen SIGNED_PE OUT_DIR [--large] [NAME...]");
        return ExitCode::from(2);
    };
    let large = args.iter().any(|a| a == "--large");
    let names: Vec<&String> = args.iter().skip(2).filter(|a| *a != "--large").collect();
    let specs: Vec<Spec> = if names.is_empty() {
        Spec::catalogue(large)
    } else {
        let mut v = Vec::new();
        for n in names {
            match Spec::parse(n) {
                Some(s) => v.push(s),
                None => {
                    eprintln!("hostile_gen: unknown variant {n}");
                    return ExitCode::from(2);
                }
            }
        }
        v
    };
    let base = match std::fs::read(input)
        .map_err(|e| e.to_string())
        .and_then(|b| SignedPe::parse(&b))
    {
        Ok(b) => b,
        Err(e) => {
            eprintln!("hostile_gen: {input}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = PathBuf::from(out);
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("hostile_gen: {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    for s in specs {
        let path = out.join(format!("{s}.exe"));
        let written = generate(&base, s).and_then(|bytes| {
            std::fs::write(&path, &bytes)
                .map(|()| bytes.len())
                .map_err(|e| e.to_string())
        });
        match written {
            Ok(len) => println!("{s} {len} {}", path.display()),
            Err(e) => {
                eprintln!("hostile_gen: {s}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
