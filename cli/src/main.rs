//! `codeseal`: sign and verify Windows PE files (Authenticode) with local, KMS or HSM keys.
#![forbid(unsafe_code)]

mod batch;
mod demo;

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use codeseal_authenticode::{
    pe::PeInfo, verify::VerifyReport, OpusInfo, SignOptions, TrustCheck, Verifier,
};
use codeseal_signer::{DigestAlgorithm, SigningIdentity};

#[derive(Parser)]
#[command(
    name = "codeseal",
    version,
    about = "Authenticode signing with keys that never leave their hardware"
)]
struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace). RUST_LOG also works.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign a PE file (exe, dll, sys, efi).
    Sign(SignArgs),
    /// Verify the signatures of a PE file; exit status 0 if and only if valid.
    Verify(VerifyArgs),
    /// Show PE facts and the signatures found.
    Info {
        /// The PE file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove every signature from a PE file.
    Remove {
        /// The signed file.
        input: PathBuf,
        /// Output (default: the input, replaced atomically).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Overwrite an existing output.
        #[arg(long)]
        force: bool,
    },
    /// Write the signature of a PE file as PKCS#7 (DER, or PEM with --pem).
    Extract {
        /// The signed file.
        input: PathBuf,
        /// Where to write the signature.
        #[arg(short, long)]
        output: PathBuf,
        /// Write PEM.
        #[arg(long)]
        pem: bool,
    },
    /// Attach a detached PKCS#7 signature to a PE file after checking it matches the file.
    Attach {
        /// The file to attach to.
        input: PathBuf,
        /// The signature (DER or PEM).
        signature: PathBuf,
        #[command(flatten)]
        write: AttachFlags,
    },
    /// Add a time stamp to the signature of a signed PE file.
    Timestamp {
        /// The signed file.
        input: PathBuf,
        /// Output (default: the input, replaced atomically).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Overwrite an existing output.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        ts: TimestampArgs,
    },
    /// List the tokens and keys of a PKCS#11 module (logs in when a PIN is given through
    /// CODESEAL_PKCS11_PIN / CODESEAL_PKCS11_PIN_FILE or --pin-file).
    Keys {
        /// The PKCS#11 module (e.g. /opt/cloudhsm/lib/libcloudhsm_pkcs11.so).
        #[arg(long, env = "CODESEAL_PKCS11_MODULE")]
        module: PathBuf,
        /// Only this token (needed to log in when the module has several).
        #[arg(long)]
        token: Option<String>,
        /// A file whose first line is the PIN (CloudHSM: USER:PASSWORD).
        #[arg(long)]
        pin_file: Option<PathBuf>,
    },
    /// Split signing, step 1 (like SignTool /dg): hash a file and write what must be signed.
    Digest {
        /// The file to sign later.
        input: PathBuf,
        /// The certificate chain (leaf first) of the key that will sign.
        #[arg(long)]
        cert: PathBuf,
        /// Digest algorithm (default sha256; sha384 for P-384 keys).
        #[arg(long)]
        digest: Option<DigestAlgorithm>,
        /// Allow SHA-1 (legacy).
        #[arg(long)]
        allow_sha1: bool,
        /// Program name.
        #[arg(long, short = 'n')]
        name: Option<String>,
        /// More-info URL.
        #[arg(long, short = 'i')]
        url: Option<String>,
        /// Include page hashes.
        #[arg(long)]
        page_hashes: bool,
        /// The request file to write (JSON).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Split signing, step 2 (like SignTool /ds): sign a request, or a SignTool `.dig` file, with
    /// only the key. Writes base64 of the signature (`.dig.signed` for SignTool).
    SignDigest {
        /// The key URI.
        #[arg(long, env = "CODESEAL_KEY", hide_env_values = true)]
        key: String,
        /// The request from `codeseal digest`, or a SignTool `.dig` file.
        request: PathBuf,
        /// Where to write the signature (default: REQUEST.sig, or X.dig.signed for X.dig).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Treat the input as a SignTool `.dig` file (automatic for the `.dig` extension).
        #[arg(long)]
        signtool: bool,
        /// The digest algorithm of a `.dig` file (SignTool's /fd).
        #[arg(long, default_value = "sha256")]
        digest: DigestAlgorithm,
    },
    /// Split signing, step 3 (like SignTool /di): check the signature, assemble and attach it.
    AttachDigestSignature {
        /// The file the request was made from.
        input: PathBuf,
        /// The request from `codeseal digest`.
        request: PathBuf,
        /// The signature from `codeseal sign-digest` (base64).
        signature: PathBuf,
        /// The certificate chain, leaf first.
        #[arg(long)]
        cert: PathBuf,
        #[command(flatten)]
        write: AttachFlags,
    },
    /// Make a PKCS#10 certificate signing request with a key (local, KMS or HSM).
    Csr(CsrArgs),
    /// Make a throwaway test PKI, sign a bundled sample PE with it and verify the result.
    Demo {
        /// Keep the files in this directory (default: a temp dir that is deleted).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct SignArgs {
    /// The key: `file:/path/key.pem` (or `.p12`, or a plain path), `awskms:///alias/NAME`,
    /// a KMS key ARN, or an RFC 7512 `pkcs11:` URI. Passwords and PINs come from the
    /// environment or files (`CODESEAL_KEY_PASSWORD[_FILE]`, `pin-source=...`), never argv.
    #[arg(long, env = "CODESEAL_KEY", hide_env_values = true)]
    key: String,
    /// PEM file with the certificate chain, leaf first (optional with a PKCS#12 key).
    #[arg(long, env = "CODESEAL_CERT")]
    cert: Option<PathBuf>,
    /// Digest algorithm: sha256 (the default; sha384 for P-384 keys), sha384, sha512, or sha1
    /// with --allow-sha1.
    #[arg(long)]
    digest: Option<DigestAlgorithm>,
    /// Allow SHA-1 (legacy).
    #[arg(long)]
    allow_sha1: bool,
    /// Program name shown by Windows.
    #[arg(long, short = 'n')]
    name: Option<String>,
    /// "More info" URL.
    #[arg(long, short = 'i')]
    url: Option<String>,
    /// Replace an existing signature.
    #[arg(long, conflicts_with = "append")]
    replace: bool,
    /// Add a nested signature to an already signed file (dual signing).
    #[arg(long, visible_alias = "nest")]
    append: bool,
    /// Include page hashes (SHA-256 v2; SHA-1 v1 with --digest sha1).
    #[arg(long, visible_alias = "ph")]
    page_hashes: bool,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    ts: TimestampArgs,
    /// Files or directories to sign (directories: the PE files, cabinets and scripts inside;
    /// all levels with --recursive).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Where to write the signed file (one input only; default: replace the input, atomically).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write signed files into this directory (same names) instead of replacing the inputs.
    #[arg(long, conflicts_with = "output")]
    out_dir: Option<PathBuf>,
    /// Descend into subdirectories.
    #[arg(short, long)]
    recursive: bool,
    /// Files signed at once (one key session shared by all).
    #[arg(short, long, default_value_t = 4)]
    jobs: usize,
}

/// Where and how `attach` and `attach-digest-signature` write.
#[derive(Args)]
struct AttachFlags {
    /// Output (default: the input, replaced atomically).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Replace an existing signature.
    #[arg(long, conflicts_with = "append")]
    replace: bool,
    /// Nest into the existing signature.
    #[arg(long)]
    append: bool,
    /// Overwrite an existing output.
    #[arg(long)]
    force: bool,
}

impl AttachFlags {
    /// The output path (the input by default) and the library options.
    fn resolve(&self, input: &std::path::Path) -> (PathBuf, codeseal_authenticode::AttachOptions) {
        (
            self.output.clone().unwrap_or_else(|| input.to_path_buf()),
            codeseal_authenticode::AttachOptions::default()
                .with_replace(self.replace)
                .with_append(self.append)
                .with_force(self.force),
        )
    }
}

/// Time-stamp options (shared by `sign` and `timestamp`).
#[derive(Args, Clone)]
struct TimestampArgs {
    /// RFC 3161 time-stamp server URL (repeat for fallbacks), like SignTool /tr, osslsigncode -ts.
    #[arg(long = "ts", value_name = "URL")]
    rfc3161: Vec<String>,
    /// Legacy Authenticode time-stamp server URL (repeat for fallbacks), like SignTool /t.
    #[arg(long = "legacy-ts", value_name = "URL", conflicts_with = "rfc3161")]
    legacy: Vec<String>,
    /// Attempts in all (at least one per URL).
    #[arg(long, default_value_t = 3)]
    ts_attempts: u32,
    /// Seconds to wait before the first retry (doubles after each).
    #[arg(long, default_value_t = 2.0)]
    ts_retry_wait: f64,
    /// Seconds before one request times out.
    #[arg(long, default_value_t = 10.0)]
    ts_timeout: f64,
    /// Hash for the RFC 3161 message imprint.
    #[arg(long, default_value = "sha256")]
    ts_digest: DigestAlgorithm,
}

impl TimestampArgs {
    fn options(&self) -> Option<codeseal_authenticode::timestamp::TimestampOptions> {
        use codeseal_authenticode::timestamp::{Protocol, TimestampOptions};
        let (urls, protocol) = if !self.rfc3161.is_empty() {
            (self.rfc3161.clone(), Protocol::Rfc3161)
        } else if !self.legacy.is_empty() {
            (self.legacy.clone(), Protocol::Legacy)
        } else {
            return None;
        };
        Some(
            TimestampOptions::default()
                .with_urls(urls)
                .with_protocol(protocol)
                .with_digest(self.ts_digest)
                .with_attempts(self.ts_attempts)
                .with_retry_wait(std::time::Duration::from_secs_f64(
                    self.ts_retry_wait.max(0.0),
                ))
                .with_timeout(std::time::Duration::from_secs_f64(self.ts_timeout.max(0.1))),
        )
    }
}

#[derive(Args)]
struct CsrArgs {
    /// The key URI (as for `sign`).
    #[arg(long, env = "CODESEAL_KEY", hide_env_values = true)]
    key: String,
    /// The subject, RFC 4514 style: "CN=Example Ltd,O=Example Ltd,L=City,C=US".
    #[arg(long)]
    subject: String,
    /// Digest for the request's signature (default sha256; sha384 for P-384 keys).
    #[arg(long)]
    digest: Option<DigestAlgorithm>,
    /// Request the codeSigning extended key usage.
    #[arg(long)]
    eku_code_signing: bool,
    /// Request the digitalSignature key usage.
    #[arg(long)]
    key_usage: bool,
    /// Write DER instead of PEM.
    #[arg(long, conflicts_with = "pem")]
    der: bool,
    /// Write PEM (the default).
    #[arg(long)]
    pem: bool,
    /// Output file (default: standard output, PEM only).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct VerifyArgs {
    /// The PE file.
    file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Trusted root certificates (PEM, repeatable). Without it only integrity is checked.
    #[arg(long, value_name = "ROOTS.pem")]
    trust: Vec<PathBuf>,
    /// Trusted roots for time-stamp authorities (default: the --trust roots).
    #[arg(long, value_name = "ROOTS.pem")]
    tsa_trust: Vec<PathBuf>,
    /// Check validity at this time (Unix seconds or YYYY-MM-DDTHH:MM:SSZ) instead of the
    /// time stamp's time or now.
    #[arg(long)]
    time: Option<String>,
    /// Require the signer certificate to be this one: ALG:HEX (e.g. sha256:ab12...).
    #[arg(long, value_name = "ALG:HEX")]
    require_leaf_hash: Option<String>,
    /// Fail signatures without a valid time stamp.
    #[arg(long, conflicts_with = "ignore_timestamp")]
    require_timestamp: bool,
    /// Ignore time stamps (check validity now or at --time).
    #[arg(long)]
    ignore_timestamp: bool,
    /// Treat SHA-1 signatures as invalid.
    #[arg(long)]
    reject_sha1: bool,
    /// Strict structure checks (non-zero WIN_CERTIFICATE padding is an error, as with
    /// Windows' EnableCertPaddingCheck).
    #[arg(long)]
    strict: bool,
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
    fn verifier(&self) -> anyhow::Result<Verifier> {
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
        let anchors = load(&self.trust)?;
        // Without --trust the CLI checks integrity only and says so in its output.
        let mut v = if anchors.is_empty() {
            Verifier::integrity_only()
        } else {
            Verifier::new(anchors)?
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
        Ok(v)
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Sign(a) => cmd_sign(a),
        Command::Verify(a) => cmd_verify(a),
        Command::Info { file, json } => cmd_info(file, json),
        Command::Csr(a) => cmd_csr(a),
        Command::Digest {
            input,
            cert,
            digest,
            allow_sha1,
            name,
            url,
            page_hashes,
            output,
        } => (|| {
            let chain = codeseal_keys::load_certificates(&cert)?;
            let leaf = chain.first().context("no certificate")?;
            let kind = codeseal_signer::key_kind_of(&leaf.tbs_certificate.subject_public_key_info)?;
            let digest = digest.unwrap_or(kind.default_digest());
            if digest.is_weak() && !allow_sha1 {
                bail!("SHA-1 is weak; pass --allow-sha1 to use it (legacy dual signing)");
            }
            let req = codeseal_authenticode::split::make_request(
                &input,
                leaf,
                digest,
                &OpusInfo {
                    program_name: name,
                    url,
                },
                page_hashes,
            )?;
            std::fs::write(&output, serde_json::to_vec_pretty(&req)?)
                .with_context(|| format!("writing {}", output.display()))?;
            println!(
                "wrote {} (sign its digest with `codeseal sign-digest`)",
                output.display()
            );
            Ok(ExitCode::SUCCESS)
        })(),
        Command::SignDigest {
            key,
            request,
            output,
            signtool,
            digest,
        } => cmd_sign_digest(&key, &request, output, signtool, digest),
        Command::AttachDigestSignature {
            input,
            request,
            signature,
            cert,
            write,
        } => (|| {
            use base64::Engine;
            let req: codeseal_authenticode::split::DigestRequest = serde_json::from_slice(
                &std::fs::read(&request)
                    .with_context(|| format!("reading {}", request.display()))?,
            )
            .with_context(|| format!("{} is not a codeseal digest request", request.display()))?;
            let text = std::fs::read_to_string(&signature)
                .with_context(|| format!("reading {}", signature.display()))?;
            let sig = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .with_context(|| format!("{} is not base64", signature.display()))?;
            let chain = codeseal_keys::load_certificates(&cert)?;
            let (out, opts) = write.resolve(&input);
            codeseal_authenticode::split::attach_request_signature(
                &input, &req, &sig, &chain, &out, opts,
            )
            .with_context(|| format!("attaching the signature to {}", input.display()))?;
            println!("signed {} -> {}", input.display(), out.display());
            Ok(ExitCode::SUCCESS)
        })(),
        Command::Keys {
            module,
            token,
            pin_file,
        } => cmd_keys(module, token, pin_file),
        Command::Remove {
            input,
            output,
            force,
        } => {
            let out = output.unwrap_or_else(|| input.clone());
            codeseal_authenticode::remove_signature(&input, &out, force)
                .with_context(|| format!("removing the signature of {}", input.display()))
                .map(|len| {
                    println!("removed the signature: {} ({len} bytes)", out.display());
                    ExitCode::SUCCESS
                })
        }
        Command::Extract { input, output, pem } => cmd_extract(input, output, pem),
        Command::Timestamp {
            input,
            output,
            force,
            ts,
        } => (|| {
            let opts = ts
                .options()
                .context("give a time-stamp server with --ts URL or --legacy-ts URL")?;
            let out = output.unwrap_or_else(|| input.clone());
            let stamp = codeseal_authenticode::manage::timestamp_file(&input, &out, force, &opts)
                .with_context(|| format!("time-stamping {}", input.display()))?;
            println!(
                "time-stamped {} by {} ({})",
                out.display(),
                stamp.tsa,
                stamp.url
            );
            Ok(ExitCode::SUCCESS)
        })(),
        Command::Attach {
            input,
            signature,
            write,
        } => {
            let (out, opts) = write.resolve(&input);
            let sig = std::fs::read(&signature)
                .with_context(|| format!("reading {}", signature.display()));
            sig.and_then(|sig| {
                codeseal_authenticode::attach_signature(&input, &sig, &out, opts).with_context(
                    || format!("attaching {} to {}", signature.display(), input.display()),
                )
            })
            .map(|len| {
                println!("attached: {} ({len} bytes)", out.display());
                ExitCode::SUCCESS
            })
        }
        Command::Demo { dir } => demo::run(dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("codeseal: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Opens the key and its chain and checks that they belong together.
pub(crate) fn identity(
    key_uri: &str,
    cert: Option<&std::path::Path>,
) -> anyhow::Result<SigningIdentity> {
    let shown = codeseal_keys::redact_uri(key_uri);
    let opened =
        codeseal_keys::open_key(key_uri).with_context(|| format!("opening key {shown}"))?;
    let chain = match cert {
        Some(p) => codeseal_keys::load_certificates(p)?,
        None if !opened.chain.is_empty() => opened.chain.clone(),
        None => bail!("--cert is required (the key file carries no certificate)"),
    };
    warn_about_leaf(chain.first());
    Ok(SigningIdentity::new(Arc::clone(&opened.key), chain)?)
}

/// Warns (does not refuse) when the signing certificate is outside its validity or lacks the
/// codeSigning extended key usage: verifiers will reject such signatures.
fn warn_about_leaf(leaf: Option<&x509_cert::Certificate>) {
    let Some(leaf) = leaf else { return };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let v = &leaf.tbs_certificate.validity;
    if now < v.not_before.to_unix_duration() || now > v.not_after.to_unix_duration() {
        eprintln!(
            "codeseal: warning: the signing certificate is not valid now ({} to {}); without a time stamp inside that period the signature will not verify",
            v.not_before, v.not_after
        );
    }
    let eku = leaf
        .tbs_certificate
        .get::<x509_cert::ext::pkix::ExtendedKeyUsage>()
        .ok()
        .flatten();
    if let Some((_, eku)) = eku {
        if !eku.0.contains(&codeseal_signer::csr::ID_KP_CODE_SIGNING) {
            eprintln!("codeseal: warning: the signing certificate lacks the codeSigning extended key usage");
        }
    }
}

fn cmd_csr(a: CsrArgs) -> anyhow::Result<ExitCode> {
    use der::{Encode, EncodePem};
    let shown = codeseal_keys::redact_uri(&a.key);
    let opened = codeseal_keys::open_key(&a.key).with_context(|| format!("opening key {shown}"))?;
    let opts = codeseal_signer::csr::CsrOptions {
        digest: a.digest.unwrap_or(opened.key.key_kind().default_digest()),
        code_signing_eku: a.eku_code_signing,
        digital_signature_key_usage: a.key_usage,
    };
    let req = codeseal_signer::csr::build_csr(&opened.key, &a.subject, &opts)?;
    let bytes = if a.der {
        req.to_der()?
    } else {
        req.to_pem(der::pem::LineEnding::LF)?.into_bytes()
    };
    match a.output {
        Some(p) => {
            std::fs::write(&p, &bytes).with_context(|| format!("writing {}", p.display()))?;
            eprintln!(
                "wrote {} ({})",
                p.display(),
                if a.der { "DER" } else { "PEM" }
            );
        }
        None if a.der => bail!("DER output needs -o FILE"),
        None => print!("{}", String::from_utf8_lossy(&bytes)),
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_sign_digest(
    key: &str,
    request: &std::path::Path,
    output: Option<PathBuf>,
    signtool: bool,
    digest: DigestAlgorithm,
) -> anyhow::Result<ExitCode> {
    use base64::Engine;
    let shown = codeseal_keys::redact_uri(key);
    let opened = codeseal_keys::open_key(key).with_context(|| format!("opening key {shown}"))?;
    let bytes = std::fs::read(request).with_context(|| format!("reading {}", request.display()))?;
    let is_dig = signtool
        || request
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("dig"));
    let (text, default_out) = if is_dig {
        let sig =
            codeseal_authenticode::split::sign_signtool_dig(opened.key.as_ref(), &bytes, digest)?;
        (sig, PathBuf::from(format!("{}.signed", request.display())))
    } else {
        let req: codeseal_authenticode::split::DigestRequest = serde_json::from_slice(&bytes)
            .with_context(|| {
                format!(
                    "{} is not a codeseal digest request (a SignTool .dig? pass --signtool)",
                    request.display()
                )
            })?;
        let sig = codeseal_authenticode::split::sign_request(opened.key.as_ref(), &req)?;
        (
            base64::engine::general_purpose::STANDARD.encode(sig),
            PathBuf::from(format!("{}.sig", request.display())),
        )
    };
    let out = output.unwrap_or(default_out);
    std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn cmd_keys(
    module: PathBuf,
    token: Option<String>,
    pin_file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use secrecy::SecretString;
    let pin = match pin_file
        .or_else(|| std::env::var_os(codeseal_pkcs11::PIN_FILE_ENV).map(PathBuf::from))
    {
        Some(f) => {
            let text =
                std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
            Some(SecretString::from(
                text.lines().next().unwrap_or_default().to_string(),
            ))
        }
        None => std::env::var(codeseal_pkcs11::PIN_ENV)
            .ok()
            .map(SecretString::from),
    };
    let tokens = codeseal_pkcs11::list_tokens_and_keys(&module, token.as_deref(), pin.as_ref())?;
    for t in tokens {
        println!(
            "token {:?} serial {} slot {} ({} {}){}",
            t.label,
            t.serial,
            t.slot_id,
            t.manufacturer,
            t.model,
            if t.logged_in { ", logged in" } else { "" }
        );
        for k in t.keys {
            println!(
                "  {} {:<24} id {:<8} {}",
                if k.private { "private" } else { "public " },
                format!("{:?}", k.label),
                k.id_hex(),
                k.kind
                    .map(|k| k.to_string())
                    .unwrap_or_else(|| k.description.clone()),
            );
            println!("      {}", k.uri);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_extract(input: PathBuf, output: PathBuf, pem: bool) -> anyhow::Result<ExitCode> {
    let der = codeseal_authenticode::extract_signature(&input)
        .with_context(|| format!("reading the signature of {}", input.display()))?;
    let bytes = if pem {
        der::pem::encode_string("PKCS7", der::pem::LineEnding::LF, &der)
            .map_err(|e| anyhow::anyhow!("PEM: {e}"))?
            .into_bytes()
    } else {
        der
    };
    std::fs::write(&output, bytes).with_context(|| format!("writing {}", output.display()))?;
    println!("wrote {}", output.display());
    Ok(ExitCode::SUCCESS)
}

fn cmd_sign(a: SignArgs) -> anyhow::Result<ExitCode> {
    let id = identity(&a.key, a.cert.as_deref())?;
    let opts = SignOptions::default()
        .with_digest(a.digest.unwrap_or(id.key().key_kind().default_digest()))
        .with_opus(OpusInfo {
            program_name: a.name,
            url: a.url,
        })
        .with_replace(a.replace)
        .with_append(a.append)
        .with_page_hashes(a.page_hashes)
        .with_force(a.force)
        .with_allow_sha1(a.allow_sha1)
        .with_timestamp(a.ts.options());
    let files = batch::collect_inputs(&a.inputs, a.recursive)?;
    if a.output.is_some() && (files.len() != 1 || a.inputs.len() != 1) {
        bail!("-o/--output takes one input file; use --out-dir for several");
    }
    let jobs: Vec<batch::Job> = files
        .into_iter()
        .map(|input| {
            let output = match (&a.output, &a.out_dir) {
                (Some(o), _) => o.clone(),
                (None, Some(d)) => d.join(input.file_name().unwrap_or_default()),
                (None, None) => input.clone(),
            };
            batch::Job { input, output }
        })
        .collect();
    batch::check_distinct_outputs(&jobs)?;
    if let Some(d) = &a.out_dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let summary = batch::sign_all(&id, jobs, &opts, a.jobs);
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
            Some(c) => println!(
                "  Chain:               {} ({})",
                ok(c.trusted),
                c.path.join(" <- ")
            ),
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

fn cmd_verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
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

fn cmd_info(file: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    use codeseal_authenticode::FileKind;
    match FileKind::detect(&file)? {
        FileKind::Pe => {}
        FileKind::Script(kind) => return info_script(&file, kind, json),
        FileKind::Cab => return info_cab(&file, json),
        other => anyhow::bail!("{}: info does not support {other} files", file.display()),
    }
    let mut f = std::io::BufReader::new(
        std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?,
    );
    let pe = PeInfo::read(&mut f)?;
    let report = if pe.cert_table.is_some() {
        Verifier::integrity_only().verify_file(&file).ok()
    } else {
        None
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"pe": pe, "verification": report}))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("File:            {}", file.display());
    println!("Size:            {} bytes", pe.file_len);
    println!(
        "Format:          {}",
        if pe.pe32_plus { "PE32+" } else { "PE32" }
    );
    println!(
        "Machine:         {} ({:#06x})",
        pe.machine_name(),
        pe.machine
    );
    println!(
        "Kind:            {}",
        if pe.is_dll() { "DLL" } else { "executable" }
    );
    println!("CheckSum:        {:#010x}", pe.checksum);
    println!(
        "Sections:        {}",
        pe.sections
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    match pe.cert_table {
        None => println!("Signatures:      none"),
        Some(t) => {
            println!("Cert table:      {} bytes at {:#x}", t.size, t.offset);
            if let Some(r) = report {
                print_report(&r);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn info_cab(file: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    use codeseal_authenticode::cab::CabHeader;
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let len = f.metadata()?.len();
    let h = CabHeader::read(&mut std::io::BufReader::new(f), len)
        .map_err(codeseal_authenticode::Error::from)?;
    let signature = h.signature();
    let report = if signature.is_some() {
        Verifier::integrity_only().verify_file(file).ok()
    } else {
        None
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "cab": {
                    "size": h.file_len,
                    "cabinet_size": h.cb_cabinet,
                    "folders": h.folders,
                    "files": h.files,
                    "signature_reserve": h.reserve.is_some(),
                    "signature": signature.map(|(o, l)| [o, u64::from(l)]),
                },
                "verification": report,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("File:            {}", file.display());
    println!("Size:            {} bytes", h.file_len);
    println!("Format:          CAB cabinet");
    println!("Cabinet size:    {} bytes (cbCabinet)", h.cb_cabinet);
    println!("Folders:         {}", h.folders);
    println!("Files:           {}", h.files);
    match signature {
        None => println!("Signatures:      none"),
        Some((o, l)) => {
            println!("Signature:       {l} bytes at {o:#x}");
            if let Some(r) = report {
                print_report(&r);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn info_script(
    file: &std::path::Path,
    kind: codeseal_authenticode::script::ScriptKind,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use codeseal_authenticode::script::{Encoding, ScriptLayout};
    let mut f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let layout = ScriptLayout::read(kind, &mut f)?;
    let size = layout.len();
    let kind_name = codeseal_authenticode::FileKind::Script(kind).name();
    let encoding = match layout.check_text(&mut f)? {
        Encoding::Utf8 { bom: true } => "UTF-8 with BOM",
        Encoding::Utf8 { bom: false } => "UTF-8",
        Encoding::Utf16Le => "UTF-16LE",
        Encoding::Windows1252 => "Windows-1252",
    };
    let block = layout.signature().map(|b| b.range.clone());
    let report = if block.is_some() {
        Verifier::integrity_only().verify_file(file).ok()
    } else {
        None
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "script": {
                    "kind": kind_name,
                    "size": size,
                    "encoding": encoding,
                    "signature_block": block.as_ref().map(|r| [r.start, r.end]),
                },
                "verification": report,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("File:            {}", file.display());
    println!("Size:            {size} bytes");
    println!("Format:          {kind_name} script");
    println!("Encoding:        {encoding}");
    match block {
        None => println!("Signatures:      none"),
        Some(r) => {
            println!("Signature block: bytes {}..{}", r.start, r.end);
            if let Some(r) = report {
                print_report(&r);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
