//! APPX / MSIX packages and bundles in the pipeline, streamed: the archive's structure is
//! read once ([`Zip::parse_from`]: end records, central directory, local headers), then one
//! linear read of the local records drops any signature, gives `[Content_Types].xml` the
//! signature part's Override, writes the unsigned form to the output, hashes it (the APPX
//! digest blob, with the block map's hash algorithm, the only one a package can be signed
//! with) and checks every 64 KiB block against the block map, a bundle's inner packages
//! included. The commit appends `AppxSignature.p7x` as the last, stored entry and the
//! rewritten central directory, and checks what was written before the rename. Memory is
//! bounded by the central directory and the XML parts, not by the package's size. The ZIP
//! rules are [`codeseal_formats::appx`].
use std::{
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom, Write},
    path::Path,
};

use codeseal_formats::appx::{self, PackageCheck, SeekSource, Source, Tail, Zip};
use codeseal_signer::DigestAlgorithm;

use super::{check_written, output::OutputFile, FileKind, StageOptions, Staged};
use crate::{
    error::{AppxRefusal, Error, Result},
    finding::{Finding, FindingCode},
    pkcs7::ParsedSignature,
    stage::Existing,
    verify::{VerifyOptions, VerifyReport},
};

/// Whether the package is a bundle (it has a bundle manifest).
pub(crate) fn is_bundle(zip: &Zip) -> bool {
    zip.entry(appx::BUNDLE_MANIFEST_NAME).is_some()
}

/// The buffer in front of a package's file: the small reads of the structure (local
/// headers, in file order) come from it; the pass's 1 MiB reads go around it.
const READ_BUFFER: usize = 64 << 10;

fn open(input: &Path) -> Result<SeekSource<BufReader<File>>> {
    let file =
        File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
    Ok(SeekSource::new(BufReader::with_capacity(
        READ_BUFFER,
        file,
    ))?)
}

/// The signature entry's DER (without `PKCX`), if the package is signed.
fn signature_der(src: &mut dyn Source, zip: &Zip) -> Result<Option<Vec<u8>>> {
    let Some(sig) = zip.signature() else {
        return Ok(None);
    };
    let p7x = zip.read_from(src, sig, appx::MAX_PART)?;
    Ok(Some(appx::p7x_der(&p7x)?.to_vec()))
}

/// A package staged for signing: the unsigned form's local records have been written to
/// the output; the digest blob and what is left to write.
#[derive(Debug)]
struct Prepared {
    alg: DigestAlgorithm,
    blob: Vec<u8>,
    tail: Tail,
    was_signed: bool,
    bundle: bool,
    /// The signature kept with `Existing::Keep` (DER, without `PKCX`): a time stamp is
    /// added to it. Nesting is refused before staging (one signature per package).
    existing: Option<Vec<u8>>,
}

impl Prepared {
    /// Checks the package read from `src`, named `name` (kind, existing signature,
    /// Publisher against `signer` when given, block map) and writes the local records of
    /// its unsigned form to `out` in the same read. On an error, `out` may hold part of
    /// the package.
    fn new<W: Write + ?Sized>(
        kind: FileKind,
        name: &str,
        src: &mut dyn Source,
        existing: Existing,
        algs: &[DigestAlgorithm],
        signer: Option<&x509_cert::Certificate>,
        out: &mut W,
    ) -> Result<Self> {
        let zip = Zip::parse_from(src)?;
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
            signature_der(src, &zip)?
        } else {
            None
        };
        let publisher = match signer {
            Some(cert) => {
                let publisher = appx::manifest_publisher_from(src, &zip)?;
                if !appx::publisher_matches(&publisher, cert) {
                    return Err(Error::Appx(AppxRefusal::PublisherMismatch {
                        publisher,
                        subject: crate::chain::name_text(&cert.tbs_certificate.subject),
                    }));
                }
                Some(publisher)
            }
            None => None,
        };
        let mut check = PackageCheck::new(src, &zip, false, bundle)?;
        let alg = check.alg();
        if let Some(other) = algs.iter().find(|a| **a != alg) {
            return Err(Error::Usage(format!(
                "this package's block map hashes with {alg}: it can be signed only with {alg}, not {other}"
            )));
        }
        let u = appx::write_unsigned(src, &zip, out, Some(&mut check))?;
        let result = check.finish();
        if !result.problems.is_empty() {
            return Err(Error::Appx(AppxRefusal::BlockMap(result.problems)));
        }
        refuse_inner(&result.inner, publisher.as_deref())?;
        Ok(Self {
            bundle,
            alg: u.alg,
            blob: u.blob,
            tail: u.tail,
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

    /// The rest of the package after the local records: with `signature` (`None`:
    /// unsigned). A new signature must verify against the staged digest blob.
    fn tail(&self, signature: Option<&[u8]>) -> Result<Vec<u8>> {
        match signature {
            Some(der) => {
                let (a, b) = (self.alg, self.blob.as_slice());
                check_written(self.kind(), der, |x| (x == a).then_some(b), &[], |_| Ok(()))?;
                Ok(self.tail.signed(der)?)
            }
            None => Ok(self.tail.unsigned()?),
        }
    }

    /// Checks the package written to `src`: parsed back (every local header), the same
    /// digest blob after AXPC (which was hashed as written), exactly the new signature
    /// (or none).
    fn check_output(&self, src: &mut dyn Source, signature: Option<&[u8]>) -> Result<()> {
        let fail = |m: String| Error::OutputCheck(m);
        let back = Zip::parse_from(src).map_err(|e| fail(e.to_string()))?;
        let (alg, rest) = appx::blob_after_axpc(src, &back).map_err(|e| fail(e.to_string()))?;
        let skip = 4 + 4 + self.alg.output_len();
        if alg != self.alg || self.blob.get(skip..) != Some(rest.as_slice()) {
            return Err(fail("the written package does not hash as staged".into()));
        }
        if back.signed_local_end().ok() != Some(self.tail.locals_len()) {
            return Err(fail("the local records were not written as staged".into()));
        }
        let found = signature_der(src, &back).map_err(|e| fail(e.to_string()))?;
        match (signature, found) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(fail("a signature is still present".into())),
            (Some(_), None) => Err(fail("no signature was written".into())),
            (Some(der), Some(f)) if f != der => Err(fail(
                "AppxSignature.p7x does not hold the new signature".into(),
            )),
            (Some(_), Some(_)) => Ok(()),
        }
    }
}

/// Why a bundle's inner package is refused at signing: a Publisher other than the
/// bundle's (`bundle_publisher`, given unless the Publisher check is overridden), or its
/// own signature not verifying against it (digest, signature; the chain is not judged
/// here).
fn refuse_inner(inner: &[appx::InnerPackage], bundle_publisher: Option<&str>) -> Result<()> {
    if let Some(bundle) = bundle_publisher {
        for i in inner {
            let ok = i
                .publisher
                .as_deref()
                .is_ok_and(|p| appx::publishers_match(p, bundle));
            if !ok {
                return Err(Error::Appx(AppxRefusal::InnerPublisher {
                    package: i.name.clone(),
                    publisher: i
                        .publisher
                        .clone()
                        .unwrap_or_else(|e| format!("(none: {e})")),
                    bundle: bundle.to_string(),
                }));
            }
        }
    }
    let mut bad = Vec::new();
    for i in inner {
        if let Some(why) = inner_signature_problem(i, None) {
            bad.push(format!("{:?}: {why}", i.name));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::Appx(AppxRefusal::InnerSignature(bad)))
    }
}

/// What is wrong with the signature an inner package carries (`None`: it has none, or it
/// verifies). With `opts`, the whole verification (chain and policy included); without,
/// the integrity (indirect data, digest, signature).
fn inner_signature_problem(i: &appx::InnerPackage, opts: Option<&VerifyOptions>) -> Option<String> {
    let der = i.signature.as_deref()?;
    let parsed = match ParsedSignature::parse(der) {
        Ok(p) => p,
        Err(e) => return Some(e.to_string()),
    };
    let digest = i
        .digest
        .as_ref()
        .filter(|(alg, _)| *alg == parsed.digest_algorithm)
        .map(|(_, d)| d.as_slice())
        .unwrap_or_default();
    let report = match opts {
        Some(opts) => crate::verify::check_one(FileKind::Appx, "0", &parsed, digest, opts),
        None => {
            if let Err(e) = super::check_indirect_data(FileKind::Appx, &parsed.spc.data) {
                return Some(e);
            }
            crate::verify::check_signature(0, &parsed, digest)
        }
    };
    if report.is_valid() {
        return None;
    }
    let why: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    Some(why.join("; "))
}

/// Findings on a bundle's inner packages beyond their block maps (which are in the
/// bundle's): a Publisher other than the bundle's, a signature that does not verify.
fn inner_findings(
    inner: &[appx::InnerPackage],
    bundle_publisher: &str,
    opts: &VerifyOptions,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for i in inner {
        match &i.publisher {
            Ok(p) if appx::publishers_match(p, bundle_publisher) => {}
            Ok(p) => out.push(Finding::file(
                FindingCode::PublisherMismatch,
                format!(
                    "inner package {:?}: its Publisher {p:?} is not the bundle's {bundle_publisher:?}",
                    i.name
                ),
            )),
            Err(e) => out.push(Finding::file(
                FindingCode::PublisherMismatch,
                format!("inner package {:?}: no Publisher ({e})", i.name),
            )),
        }
        if let Some(why) = inner_signature_problem(i, Some(opts)) {
            out.push(Finding::file(
                FindingCode::InnerPackageSignature,
                format!(
                    "inner package {:?}: its signature does not verify: {why}",
                    i.name
                ),
            ));
        }
    }
    out
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
    let mut src = open(input)?;
    let p = Prepared::new(
        kind,
        &input.display().to_string(),
        &mut src,
        existing,
        &[digest],
        signer,
        &mut std::io::sink(),
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
        let file =
            File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("reading the length of {}", input.display()), e))?
            .len();
        let mut out = OutputFile::create(input, &file, output, opts.force, opts.sync_dir)?;
        let mut src = SeekSource::new(BufReader::with_capacity(READ_BUFFER, file))?;
        // Written in order and flushed to the disk as it goes (as a PE's copy), so that the
        // fsync before the rename finds little left to write.
        let mut w = std::io::BufWriter::with_capacity(appx::CHUNK, out.early_flushing(len));
        let p = Prepared::new(
            kind,
            &input.display().to_string(),
            &mut src,
            opts.existing,
            opts.algs,
            opts.appx_signer,
            &mut w,
        )?;
        w.flush()
            .map_err(|e| Error::io("writing the temp file", e))?;
        drop(w);
        Ok(Self { p, out })
    }
}

/// Signs a package (or bundle) from any reader into any writer, in one read: the local
/// records of the unsigned form are written as they are hashed and checked, the signature
/// entry and the central directory once the signature is made. When the package fails a
/// check (its block map, an inner package), `output` holds part of it: the caller discards
/// it, as it does any output of a failed call.
pub(crate) fn sign_stream<R: Read + Seek, W: Write>(
    identity: &codeseal_signer::SigningIdentity,
    kind: FileKind,
    input: &mut R,
    output: &mut W,
    opts: &crate::sign::SignOptions,
) -> Result<crate::stream::StreamOutcome> {
    use crate::stream::{existing_mode, signature_table};
    refuse_nesting(opts.append)?;
    let mut src = SeekSource::new(BufReader::with_capacity(READ_BUFFER, &mut *input))?;
    let signer = (!opts.allow_publisher_mismatch).then(|| identity.leaf());
    let p = Prepared::new(
        kind,
        "the input",
        &mut src,
        existing_mode(opts),
        &[opts.digest],
        signer,
        output,
    )?;
    let table = signature_table(
        identity,
        opts,
        super::indirect_data(kind, None)?,
        &p.blob,
        None,
    )?;
    let tail = p.tail(Some(&table))?;
    output
        .write_all(&tail)
        .map_err(|e| Error::io("writing the output", e))?;
    Ok(crate::stream::StreamOutcome {
        kind,
        image_digest: p.blob.clone(),
        output_len: p.tail.locals_len() + tail.len() as u64,
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
        let tail = self.p.tail(signature)?;
        let f = self.out.file_mut();
        let io = |what: &'static str| move |e| Error::io(what, e);
        let end = f
            .seek(SeekFrom::End(0))
            .map_err(io("seeking the temp file"))?;
        if end != self.p.tail.locals_len() {
            return Err(Error::OutputCheck(
                "the temp file does not hold the staged local records".into(),
            ));
        }
        f.write_all(&tail).map_err(io("writing the temp file"))?;
        let len = end + tail.len() as u64;
        {
            let mut back = SeekSource::new(BufReader::with_capacity(READ_BUFFER, &mut *f))?;
            self.p.check_output(&mut back, signature)?;
        }
        self.out.persist()?;
        Ok(len)
    }
}

/// The package's signature (DER).
pub(crate) fn extract(input: &Path) -> Result<Vec<u8>> {
    let mut src = open(input)?;
    let zip = Zip::parse_from(&mut src)?;
    let der = signature_der(&mut src, &zip)?.ok_or(Error::NotSigned)?;
    Ok(ParsedSignature::parse(&der)?.der.to_vec())
}

/// Verifies a package: its signature against the digest blob, its block map (and a
/// bundle's inner packages) and its Publisher, in one read of its local records.
pub(crate) fn verify<R: Read + Seek>(r: &mut R, opts: &VerifyOptions) -> Result<VerifyReport> {
    use crate::verify::{check_all, collect_signatures, finish_report};
    let mut src = SeekSource::new(&mut *r)?; // verify_file's reader is buffered already
    let zip = Zip::parse_from(&mut src)?;
    let der = signature_der(&mut src, &zip)?.ok_or(Error::NotSigned)?;
    let bundle = is_bundle(&zip);
    let check = PackageCheck::new(&mut src, &zip, true, bundle)?;
    let result = appx::run_check(&mut src, &zip, check)?;
    let publisher = appx::manifest_publisher_from(&mut src, &zip)?;
    let mut errors = Vec::new();
    for p in result.problems {
        errors.push(Finding::file(FindingCode::BlockMapMismatch, p));
    }
    errors.extend(inner_findings(&result.inner, &publisher, opts));
    let parsed = collect_signatures(vec![("0".to_string(), der.as_slice())], &mut errors);
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
    let (alg, blob) = result
        .digest
        .ok_or_else(|| Error::Unsupported("no digest computed".into()))?;
    let kind = if bundle {
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
        src.size(),
        None,
        signatures,
        errors,
        Vec::new(),
    ))
}
