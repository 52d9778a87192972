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
use der::{asn1::Any, Decode};

use super::{check_written, output::OutputFile, FileKind, StageOptions, Staged};
use crate::{
    error::{Error, Result},
    finding::{Finding, FindingCode},
    oid::SPC_SIPINFO,
    pkcs7::ParsedSignature,
    spc::SpcAttributeTypeAndOptionalValue,
    stage::Existing,
    verify::{VerifyOptions, VerifyReport},
};

/// The most bytes of a package codeseal reads: it holds the package in memory (a streaming
/// reader is still to come, issue #17), so the cap keeps a hostile or huge input from taking
/// the machine's memory.
pub const MAX_PACKAGE: u64 = 1 << 30;

/// The `SpcSipInfo` of an APPX signature: version `0x01010000`, the package or bundle SIP
/// GUID and five zero integers.
pub(crate) fn sip_info_der(bundle: bool) -> Vec<u8> {
    let mut body = vec![0x02, 0x04];
    body.extend_from_slice(&appx::SIP_VERSION.to_be_bytes());
    body.extend_from_slice(&[0x04, 0x10]);
    body.extend_from_slice(if bundle {
        &appx::SIP_APPX_BUNDLE
    } else {
        &appx::SIP_APPX
    });
    for _ in 0..5 {
        body.extend_from_slice(&[0x02, 0x01, 0x00]);
    }
    let mut out = vec![0x30, body.len() as u8]; // short form
    out.extend_from_slice(&body);
    out
}

/// The indirect data of a package (or bundle) signature.
pub(crate) fn indirect_data(
    page_hashes: bool,
    bundle: bool,
) -> Result<SpcAttributeTypeAndOptionalValue> {
    if page_hashes {
        return Err(Error::Usage(
            "page hashes exist only for PE files, not for APPX".into(),
        ));
    }
    Ok(SpcAttributeTypeAndOptionalValue {
        value_type: SPC_SIPINFO,
        value: Some(Any::from_der(&sip_info_der(bundle))?),
    })
}

/// Whether the package is a bundle (it has a bundle manifest).
pub(crate) fn is_bundle(zip: &Zip) -> bool {
    zip.entry(appx::BUNDLE_MANIFEST_NAME).is_some()
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

/// A package staged for signing: its unsigned form (with the Override) and its digest.
#[derive(Debug)]
pub(crate) struct StagedAppx {
    unsigned: Vec<u8>,
    zip: Zip,
    alg: DigestAlgorithm,
    blob: Vec<u8>,
    was_signed: bool,
    bundle: bool,
    out: OutputFile,
}

impl StagedAppx {
    pub(crate) fn stage(
        kind: FileKind,
        input: &Path,
        output: &Path,
        opts: StageOptions<'_>,
    ) -> Result<Self> {
        if opts.pages.is_some() {
            return Err(Error::Usage(
                "page hashes exist only for PE files, not for APPX".into(),
            ));
        }
        let mut file =
            File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
        let out = OutputFile::create(input, &file, output, opts.force, opts.sync_dir)?;
        let data = read_all(&mut file)?;
        let zip = Zip::parse(&data)?;
        let bundle = is_bundle(&zip);
        if bundle != (kind == FileKind::AppxBundle) {
            return Err(Error::Unsupported(format!(
                "{}: named as an {} but {} (a bundle has {})",
                input.display(),
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
        match (was_signed, opts.existing) {
            (true, Existing::Refuse) => return Err(Error::AlreadySigned),
            (true, Existing::Keep) => {
                return Err(Error::Unsupported(
                    "an APPX package carries one signature: nesting is not supported (replace it instead)".into(),
                ))
            }
            _ => {}
        }
        let problems = appx::check_block_map(&data, &zip)?;
        if !problems.is_empty() {
            return Err(Error::Usage(format!(
                "the package does not match its block map (Windows would refuse it): {}",
                problems.join("; ")
            )));
        }
        if let Some(cert) = opts.appx_signer {
            let publisher = appx::manifest_publisher(&data, &zip)?;
            if !appx::publisher_matches(&publisher, cert) {
                return Err(Error::Usage(format!(
                    "the manifest's Publisher {publisher:?} is not the signer's subject {:?} (Windows would refuse the package; --allow-publisher-mismatch signs anyway)",
                    cert.tbs_certificate.subject.to_string()
                )));
            }
        }
        let unsigned = zip.prepare_unsigned(&data)?;
        drop(data);
        let zip = Zip::parse(&unsigned)?;
        let (alg, blob) = appx::digest_blob(&unsigned, &zip)?;
        if let Some(other) = opts.algs.iter().find(|a| **a != alg) {
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
            out,
        })
    }

    /// Parses the written package back: the same digest blob, exactly the new signature
    /// (or none), which must verify against that blob.
    fn check_output(&self, written: &[u8], signature: Option<&[u8]>) -> Result<()> {
        let fail = |m: String| Error::OutputCheck(m);
        let back = Zip::parse(written).map_err(|e| fail(e.to_string()))?;
        let (alg, blob) = appx::digest_blob(written, &back).map_err(|e| fail(e.to_string()))?;
        if alg != self.alg || blob != self.blob {
            return Err(fail("the written package does not hash as staged".into()));
        }
        let found = signature_der(written, &back).map_err(|e| fail(e.to_string()))?;
        match (signature, found) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(fail("a signature is still present".into())),
            (Some(_), None) => Err(fail("no signature was written".into())),
            (Some(der), Some(f)) => {
                if f != der {
                    return Err(fail(
                        "AppxSignature.p7x does not hold the new signature".into(),
                    ));
                }
                let (a, b) = (self.alg, self.blob.as_slice());
                check_written(self.kind(), der, |x| (x == a).then_some(b), &[], |_| Ok(()))
            }
        }
    }
}

impl Staged for StagedAppx {
    fn kind(&self) -> FileKind {
        if self.bundle {
            FileKind::AppxBundle
        } else {
            FileKind::Appx
        }
    }

    fn digest(&self, alg: DigestAlgorithm) -> Option<&[u8]> {
        (alg == self.alg).then_some(self.blob.as_slice())
    }

    fn page_hashes(&self) -> Option<&(DigestAlgorithm, Vec<u8>)> {
        None
    }

    fn existing_signature(&self) -> Option<&[u8]> {
        None
    }

    fn was_signed(&self) -> bool {
        self.was_signed
    }

    fn output(&self) -> &Path {
        self.out.output()
    }

    fn commit(mut self: Box<Self>, signature: Option<&[u8]>) -> Result<u64> {
        let written = match signature {
            Some(der) => self.zip.with_signature(&self.unsigned, der)?,
            None => std::mem::take(&mut self.unsigned),
        };
        self.check_output(&written, signature)?;
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
    use crate::verify::{check_one, collect_signatures, finish_report};
    r.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("rewinding the package", e))?;
    let data = read_all(r)?;
    let zip = Zip::parse(&data)?;
    let der = signature_der(&data, &zip)?.ok_or(Error::NotSigned)?;
    let mut errors = Vec::new();
    for p in appx::check_block_map(&data, &zip)? {
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
                        cert.tbs_certificate.subject.to_string()
                    ),
                ));
            }
            _ => {}
        }
    }
    let (alg, blob) = appx::digest_blob(&data, &zip)?;
    let kind = if is_bundle(&zip) {
        FileKind::AppxBundle
    } else {
        FileKind::Appx
    };
    let signatures = parsed
        .iter()
        .map(|(i, p)| {
            let computed: &[u8] = if p.digest_algorithm == alg {
                &blob
            } else {
                &[]
            };
            check_one(kind, i, p, computed, opts)
        })
        .collect();
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
