//! APPX / MSIX packages and bundles in the pipeline. The package is held in memory (its
//! size is that of the file): staging drops any signature, gives `[Content_Types].xml` the
//! signature part's Override and computes the APPX digest blob (with the block map's hash
//! algorithm, the only one a package can be signed with); the commit adds
//! `AppxSignature.p7x` as the last, stored entry, rewrites the central directory, parses
//! the result back and checks it before the rename. The ZIP rules are
//! [`codeseal_formats::appx`].
use std::{
    fs::File,
    io::{Read, Seek, SeekFrom, Write},
    path::Path,
};

use codeseal_formats::appx::{self, Zip};
use codeseal_signer::DigestAlgorithm;

use super::{check_written, output::OutputFile, FileKind, StageOptions, Staged};
use crate::{
    error::{AppxRefusal, Error, Result},
    finding::{Finding, FindingCode},
    pkcs7::ParsedSignature,
    stage::Existing,
    verify::{VerifyOptions, VerifyReport},
};

/// The most bytes of a package codeseal reads: it holds the package in memory (a streaming
/// reader is still to come, issue #17), so the cap keeps a hostile or huge input from taking
/// the machine's memory.
pub const MAX_PACKAGE: u64 = 1 << 30;

/// Whether the package is a bundle (it has a bundle manifest).
pub(crate) fn is_bundle(zip: &Zip) -> bool {
    zip.entry(appx::BUNDLE_MANIFEST_NAME).is_some()
}

/// The block-map problems of a package, and for a bundle those of every inner package
/// (an `.appx` / `.msix` entry at the top level, checked against its own block map), each
/// named with its package. An inner package that is not a readable package is a problem.
fn block_map_problems(data: &[u8], zip: &Zip) -> Result<Vec<String>> {
    let mut problems = appx::check_block_map(data, zip)?;
    if !is_bundle(zip) {
        return Ok(problems);
    }
    for e in &zip.entries {
        let lower = e.name.to_ascii_lowercase();
        if e.name.contains('/') || !(lower.ends_with(".appx") || lower.ends_with(".msix")) {
            continue;
        }
        let checked = zip
            .read(data, e, MAX_PACKAGE)
            .and_then(|inner| {
                let z = Zip::parse(&inner)?;
                appx::check_block_map(&inner, &z)
            })
            .map_err(|err| vec![err.to_string()]);
        for p in checked.unwrap_or_else(|p| p) {
            problems.push(format!("inner package {:?}: {p}", e.name));
        }
    }
    Ok(problems)
}

/// Reads the whole package from `r`, at most [`MAX_PACKAGE`] bytes.
fn read_all<R: Read + ?Sized>(r: &mut R) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    r.take(MAX_PACKAGE + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::io("reading the package", e))?;
    if data.len() as u64 > MAX_PACKAGE {
        return Err(Error::Unsupported(format!(
            "packages over {MAX_PACKAGE} bytes are not supported"
        )));
    }
    Ok(data)
}

/// The signature entry's DER (without `PKCX`), if the package is signed.
fn signature_der(data: &[u8], zip: &Zip) -> Result<Option<Vec<u8>>> {
    let Some(sig) = zip.signature() else {
        return Ok(None);
    };
    let p7x = zip.read(data, sig, appx::MAX_PART)?;
    Ok(Some(appx::p7x_der(&p7x)?.to_vec()))
}

/// A package prepared for signing in memory: its unsigned form (with the Override) and its
/// digest blob. The file path ([`StagedAppx`]) and the stream path ([`sign_stream`]) share
/// it.
#[derive(Debug)]
struct Prepared {
    unsigned: Vec<u8>,
    zip: Zip,
    alg: DigestAlgorithm,
    blob: Vec<u8>,
    was_signed: bool,
    bundle: bool,
    /// The signature kept with `Existing::Keep` (DER, without `PKCX`): a time stamp is
    /// added to it. Nesting is refused before staging (one signature per package).
    existing: Option<Vec<u8>>,
}

impl Prepared {
    /// Checks the package `data` named `name` (kind, existing signature, block map,
    /// Publisher against `signer` when given) and prepares its unsigned form.
    fn new(
        kind: FileKind,
        name: &str,
        data: Vec<u8>,
        existing: Existing,
        algs: &[DigestAlgorithm],
        signer: Option<&x509_cert::Certificate>,
    ) -> Result<Self> {
        let zip = Zip::parse(&data)?;
        let bundle = is_bundle(&zip);
        if bundle != (kind == FileKind::AppxBundle) {
            return Err(Error::Unsupported(format!(
                "{name}: named as an {} but {} (a bundle has {})",
                kind.name(),
                if bundle {
                    "it has a bundle manifest"
                } else {
                    "it has no bundle manifest"
                },
                appx::BUNDLE_MANIFEST_NAME
            )));
        }
        let was_signed = zip.signature().is_some();
        if was_signed && existing == Existing::Refuse {
            return Err(Error::AlreadySigned);
        }
        let kept = if existing == Existing::Keep {
            signature_der(&data, &zip)?
        } else {
            None
        };
        let problems = block_map_problems(&data, &zip)?;
        if !problems.is_empty() {
            return Err(Error::Appx(AppxRefusal::BlockMap(problems)));
        }
        if let Some(cert) = signer {
            let publisher = appx::manifest_publisher(&data, &zip)?;
            if !appx::publisher_matches(&publisher, cert) {
                return Err(Error::Appx(AppxRefusal::PublisherMismatch {
                    publisher,
                    subject: crate::chain::name_text(&cert.tbs_certificate.subject),
                }));
            }
        }
        let unsigned = zip.prepare_unsigned(&data)?;
        drop(data);
        let zip = Zip::parse(&unsigned)?;
        let (alg, blob) = appx::digest_blob(&unsigned, &zip)?;
        if let Some(other) = algs.iter().find(|a| **a != alg) {
            return Err(Error::Usage(format!(
                "this package's block map hashes with {alg}: it can be signed only with {alg}, not {other}"
            )));
        }
        Ok(Self {
            bundle,
            unsigned,
            zip,
            alg,
            blob,
            was_signed,
            existing: kept,
        })
    }

    fn kind(&self) -> FileKind {
        if self.bundle {
            FileKind::AppxBundle
        } else {
            FileKind::Appx
        }
    }

    /// The package with `signature` (`None`: unsigned), checked: parsed back, the same
    /// digest blob, exactly the new signature (or none), which must verify against it.
    fn finish(&mut self, signature: Option<&[u8]>) -> Result<Vec<u8>> {
        let written = match signature {
            Some(der) => self.zip.with_signature(&self.unsigned, der)?,
            None => std::mem::take(&mut self.unsigned),
        };
        let fail = |m: String| Error::OutputCheck(m);
        let back = Zip::parse(&written).map_err(|e| fail(e.to_string()))?;
        let (alg, blob) = appx::digest_blob(&written, &back).map_err(|e| fail(e.to_string()))?;
        if alg != self.alg || blob != self.blob {
            return Err(fail("the written package does not hash as staged".into()));
        }
        let found = signature_der(&written, &back).map_err(|e| fail(e.to_string()))?;
        match (signature, found) {
            (None, None) => {}
            (None, Some(_)) => return Err(fail("a signature is still present".into())),
            (Some(_), None) => return Err(fail("no signature was written".into())),
            (Some(der), Some(f)) => {
                if f != der {
                    return Err(fail(
                        "AppxSignature.p7x does not hold the new signature".into(),
                    ));
                }
                let (a, b) = (self.alg, self.blob.as_slice());
                check_written(self.kind(), der, |x| (x == a).then_some(b), &[], |_| Ok(()))?;
            }
        }
        Ok(written)
    }
}

/// A package carries one signature (Windows reads no nested ones): `--append` is refused.
pub(crate) fn refuse_nesting(append: bool) -> Result<()> {
    if append {
        return Err(Error::Unsupported(
            "an APPX package carries one signature: nesting is not supported (replace it instead)"
                .into(),
        ));
    }
    Ok(())
}

/// The APPX digest blob of the package at `input` as signing would compute it (the
/// package unsigned, with the signature's Override), and its hash algorithm: what split
/// signing signs. `existing` is what signing would do with a signature already there;
/// `signer`, when given, must be the manifest's Publisher.
pub(crate) fn file_digest(
    kind: FileKind,
    input: &Path,
    existing: Existing,
    digest: DigestAlgorithm,
    signer: Option<&x509_cert::Certificate>,
) -> Result<Vec<u8>> {
    let mut file =
        File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
    let data = read_all(&mut file)?;
    let p = Prepared::new(
        kind,
        &input.display().to_string(),
        data,
        existing,
        &[digest],
        signer,
    )?;
    Ok(p.blob)
}

/// A package staged for signing to a file.
#[derive(Debug)]
pub(crate) struct StagedAppx {
    p: Prepared,
    out: OutputFile,
}

impl StagedAppx {
    pub(crate) fn stage(
        kind: FileKind,
        input: &Path,
        output: &Path,
        opts: StageOptions<'_>,
    ) -> Result<Self> {
        let mut file =
            File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
        let out = OutputFile::create(input, &file, output, opts.force, opts.sync_dir)?;
        let data = read_all(&mut file)?;
        let p = Prepared::new(
            kind,
            &input.display().to_string(),
            data,
            opts.existing,
            opts.algs,
            opts.appx_signer,
        )?;
        Ok(Self { p, out })
    }
}

/// Signs a package (or bundle) from any reader into any writer. The package is held in
/// memory (at most [`MAX_PACKAGE`] bytes) until the streaming reader lands.
pub(crate) fn sign_stream<R: Read + Seek, W: Write>(
    identity: &codeseal_signer::SigningIdentity,
    kind: FileKind,
    input: &mut R,
    output: &mut W,
    opts: &crate::sign::SignOptions,
) -> Result<crate::stream::StreamOutcome> {
    use crate::stream::{existing_mode, signature_table};
    refuse_nesting(opts.append)?;
    input
        .seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("rewinding the input", e))?;
    let data = read_all(input)?;
    let signer = (!opts.allow_publisher_mismatch).then(|| identity.leaf());
    let mut p = Prepared::new(
        kind,
        "the input",
        data,
        existing_mode(opts),
        &[opts.digest],
        signer,
    )?;
    let table = signature_table(
        identity,
        opts,
        super::indirect_data(kind, None)?,
        &p.blob,
        None,
    )?;
    let written = p.finish(Some(&table))?;
    output
        .write_all(&written)
        .map_err(|e| Error::io("writing the output", e))?;
    Ok(crate::stream::StreamOutcome {
        kind,
        image_digest: p.blob.clone(),
        output_len: written.len() as u64,
        appended: false,
    })
}

impl Staged for StagedAppx {
    fn kind(&self) -> FileKind {
        self.p.kind()
    }

    fn digest(&self, alg: DigestAlgorithm) -> Option<&[u8]> {
        (alg == self.p.alg).then_some(self.p.blob.as_slice())
    }

    fn page_hashes(&self) -> Option<&(DigestAlgorithm, Vec<u8>)> {
        None
    }

    fn existing_signature(&self) -> Option<&[u8]> {
        self.p.existing.as_deref()
    }

    fn was_signed(&self) -> bool {
        self.p.was_signed
    }

    fn output(&self) -> &Path {
        self.out.output()
    }

    fn commit(mut self: Box<Self>, signature: Option<&[u8]>) -> Result<u64> {
        let written = self.p.finish(signature)?;
        let f = self.out.file_mut();
        let io = |what: &'static str| move |e| Error::io(what, e);
        f.seek(SeekFrom::Start(0))
            .map_err(io("rewinding the temp file"))?;
        f.set_len(0).map_err(io("truncating the temp file"))?;
        f.write_all(&written).map_err(io("writing the temp file"))?;
        self.out.persist()?;
        Ok(written.len() as u64)
    }
}

/// The package's signature (DER).
pub(crate) fn extract(input: &Path) -> Result<Vec<u8>> {
    let mut f =
        File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
    let data = read_all(&mut f)?;
    let zip = Zip::parse(&data)?;
    let der = signature_der(&data, &zip)?.ok_or(Error::NotSigned)?;
    Ok(ParsedSignature::parse(&der)?.der.to_vec())
}

/// Verifies a package: its signature against the digest blob.
pub(crate) fn verify<R: Read + Seek>(r: &mut R, opts: &VerifyOptions) -> Result<VerifyReport> {
    use crate::verify::{check_all, collect_signatures, finish_report};
    r.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("rewinding the package", e))?;
    let data = read_all(r)?;
    let zip = Zip::parse(&data)?;
    let der = signature_der(&data, &zip)?.ok_or(Error::NotSigned)?;
    let mut errors = Vec::new();
    // The block-map check and the digest blob on two threads (each reads every byte).
    let (problems, digest) = std::thread::scope(|s| {
        let check = s.spawn(|| block_map_problems(&data, &zip));
        let digest = appx::digest_blob(&data, &zip);
        let problems = check
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (problems, digest)
    });
    for p in problems? {
        errors.push(Finding::file(FindingCode::BlockMapMismatch, p));
    }
    let parsed = collect_signatures(vec![("0".to_string(), der.as_slice())], &mut errors);
    let publisher = appx::manifest_publisher(&data, &zip)?;
    for (_, p) in parsed.iter().filter(|(i, _)| i == "0") {
        match p.signer_certificate() {
            Some(cert) if !appx::publisher_matches(&publisher, cert) => {
                errors.push(Finding::file(
                    FindingCode::PublisherMismatch,
                    format!(
                        "the manifest's Publisher {publisher:?} is not the signer's subject {:?}",
                        crate::chain::name_text(&cert.tbs_certificate.subject)
                    ),
                ));
            }
            _ => {}
        }
    }
    let (alg, blob) = digest?;
    let kind = if is_bundle(&zip) {
        FileKind::AppxBundle
    } else {
        FileKind::Appx
    };
    let signatures = check_all(
        kind,
        &parsed,
        |a| (a == alg).then_some(blob.as_slice()),
        |_, _| {},
        opts,
    );
    Ok(finish_report(
        opts.trust(),
        kind,
        data.len() as u64,
        None,
        signatures,
        errors,
        Vec::new(),
    ))
}
