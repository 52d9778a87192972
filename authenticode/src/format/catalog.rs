//! Catalogs (`.cat`) in the format-generic pipeline.
//!
//! A catalog file *is* its signature: a DER ContentInfo whose SignedData encapsulates the
//! CTL. Its "digest" is the hash of the CTL's content octets (what the signer's messageDigest
//! covers, as Windows hashes SpcIndirectDataContent); a new signature encapsulates the same
//! CTL; removing the signature leaves the SignedData with the CTL and no signer (what
//! `codeseal catalog create` writes without a key). Catalogs never nest signatures.
//! The whole file is held in memory, up to [`MAX_CATALOG`] bytes.
use std::{
    fs::File,
    io::{Read, Seek, SeekFrom, Write},
    path::Path,
};

use codeseal_signer::DigestAlgorithm;
use der::{Any, Decode};

use super::{check_written, output::OutputFile, FileKind, StageOptions, Staged};
use crate::{
    error::{Error, Result},
    formats::catalog::parse_catalog,
    pkcs7::ParsedSignature,
    stage::Existing,
    verify::{VerifyOptions, VerifyReport},
};

/// The largest catalog codeseal reads (catalogs are held in memory).
pub const MAX_CATALOG: u64 = 256 << 20;

/// Whether `head` (a file's first bytes) can start a catalog: a DER SEQUENCE with a
/// definite length.
pub(crate) fn looks_like_catalog(head: &[u8]) -> bool {
    matches!(head, [0x30, l, ..] if *l != 0x80)
}

/// Reads a whole catalog from `r`, refusing more than [`MAX_CATALOG`] bytes.
pub(crate) fn read_all<R: Read>(r: R) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    r.take(MAX_CATALOG + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::io("reading the catalog", e))?;
    if data.len() as u64 > MAX_CATALOG {
        return Err(Error::Unsupported(format!(
            "the catalog is larger than {MAX_CATALOG} bytes"
        )));
    }
    Ok(data)
}

/// A catalog taken apart: its CTL (the eContent element) and its signature, if any.
#[derive(Debug)]
pub(crate) struct Parts {
    /// The DER of the encapsulated content element (the CTL, or an OCTET STRING holding it).
    pub content: Vec<u8>,
    /// The content octets the signature's messageDigest covers.
    pub content_octets_range: std::ops::Range<usize>,
    /// The whole ContentInfo (without trailing bytes) when it has a SignerInfo.
    pub signature: Option<Vec<u8>>,
}

impl Parts {
    pub(crate) fn read(data: &[u8]) -> Result<Self> {
        let cat = parse_catalog(data)?;
        let sd = &cat.content_info.signed_data;
        let content = sd.content.ok_or_else(|| {
            crate::formats::Error::MalformedSignature("the catalog has no CTL".into())
        })?;
        let der = cat.content_info.content_info.raw;
        if data.len() > der.len() {
            return Err(crate::formats::Error::MalformedSignature(format!(
                "{} bytes follow the catalog's DER",
                data.len() - der.len()
            ))
            .into());
        }
        let start = content.raw.len() - content.value.len();
        Ok(Self {
            content: content.raw.to_vec(),
            content_octets_range: start..content.raw.len(),
            signature: (!sd.signer_infos.is_empty()).then(|| der.to_vec()),
        })
    }

    /// The bytes the signature's messageDigest covers.
    pub(crate) fn content_octets(&self) -> &[u8] {
        self.content
            .get(self.content_octets_range.clone())
            .unwrap_or_default()
    }

    /// The digest of the content octets for each of `algs`.
    pub(crate) fn digests(&self, algs: &[DigestAlgorithm]) -> Vec<(DigestAlgorithm, Vec<u8>)> {
        let mut algs = algs.to_vec();
        algs.sort_by_key(|a| a.output_len());
        algs.dedup();
        algs.into_iter()
            .map(|a| (a, a.digest(self.content_octets())))
            .collect()
    }

    /// The encapsulated content as it goes into a new signature.
    pub(crate) fn content_any(&self) -> Result<Any> {
        Ok(Any::from_der(&self.content).map_err(crate::formats::Error::from)?)
    }

    /// The unsigned catalog of this CTL (a SignedData with no signer).
    pub(crate) fn unsigned(&self) -> Result<Vec<u8>> {
        let ci = cms::content_info::ContentInfo {
            content_type: crate::oid::ID_SIGNED_DATA,
            content: Any::encode_from(&cms::signed_data::SignedData {
                version: cms::content_info::CmsVersion::V1,
                digest_algorithms: der::asn1::SetOfVec::new(),
                encap_content_info: cms::signed_data::EncapsulatedContentInfo {
                    econtent_type: crate::oid::MS_CTL,
                    econtent: Some(self.content_any()?),
                },
                certificates: None,
                crls: None,
                signer_infos: cms::signed_data::SignerInfos(der::asn1::SetOfVec::new()),
            })
            .map_err(crate::formats::Error::from)?,
        };
        Ok(der::Encode::to_der(&ci).map_err(crate::formats::Error::from)?)
    }
}

/// Refuses what catalogs do not have: nested (appended) signatures.
pub(crate) fn refuse_append(kind: FileKind, append: bool) -> Result<()> {
    if append && kind == FileKind::Catalog {
        return Err(Error::Usage(
            "catalogs carry one signature: --append does not apply (use --replace)".into(),
        ));
    }
    Ok(())
}

/// A catalog read and hashed, waiting for its signature.
#[derive(Debug)]
pub(crate) struct StagedCatalog {
    parts: Parts,
    digests: Vec<(DigestAlgorithm, Vec<u8>)>,
    existing: Option<Vec<u8>>,
    out: OutputFile,
}

impl StagedCatalog {
    pub(crate) fn stage(input: &Path, output: &Path, opts: StageOptions<'_>) -> Result<Self> {
        let file =
            File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
        let out = OutputFile::create(input, &file, output, opts.force, opts.sync_dir)?;
        let data = read_all(&file)?;
        let parts = Parts::read(&data)?;
        let mut algs = opts.algs.to_vec();
        let existing = match (&parts.signature, opts.existing) {
            (Some(_), Existing::Refuse) => return Err(Error::AlreadySigned),
            (Some(sig), Existing::Keep) => {
                algs.push(ParsedSignature::parse(sig)?.digest_algorithm);
                Some(sig.clone())
            }
            _ => None,
        };
        let digests = parts.digests(&algs);
        Ok(Self {
            parts,
            digests,
            existing,
            out,
        })
    }

    /// The encapsulated content a new signature carries.
    pub(crate) fn content(&self) -> Result<Any> {
        self.parts.content_any()
    }
}

/// Checks that `written` is a catalog of the same CTL, signed as `signature` says.
fn check_output(
    parts: &Parts,
    digests: &[(DigestAlgorithm, Vec<u8>)],
    written: &[u8],
    signature: Option<&[u8]>,
) -> Result<()> {
    let fail = Error::OutputCheck;
    let back = Parts::read(written).map_err(|e| fail(e.to_string()))?;
    if back.content != parts.content {
        return Err(fail(
            "the written catalog's CTL differs from the input's".into(),
        ));
    }
    match (signature, &back.signature) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(fail("a signature is still present".into())),
        (Some(_), None) => Err(fail("no signature was written".into())),
        (Some(der), Some(_)) => {
            let parsed = ParsedSignature::parse(der).map_err(|e| fail(e.to_string()))?;
            if !parsed.nested_der().is_empty() {
                return Err(fail(
                    "a catalog signature cannot carry nested signatures".into(),
                ));
            }
            let get = |alg: DigestAlgorithm| {
                digests
                    .iter()
                    .find(|(a, _)| *a == alg)
                    .map(|(_, d)| d.as_slice())
            };
            check_written(FileKind::Catalog, der, get, &[], |_| Ok(()))
        }
    }
}

impl Staged for StagedCatalog {
    fn kind(&self) -> FileKind {
        FileKind::Catalog
    }

    fn digest(&self, alg: DigestAlgorithm) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, d)| d.as_slice())
    }

    fn page_hashes(&self) -> Option<&(DigestAlgorithm, Vec<u8>)> {
        None
    }

    fn existing_signature(&self) -> Option<&[u8]> {
        self.existing.as_deref()
    }

    fn was_signed(&self) -> bool {
        self.parts.signature.is_some()
    }

    fn output(&self) -> &Path {
        self.out.output()
    }

    fn content(&self) -> Option<Result<Any>> {
        Some(StagedCatalog::content(self))
    }

    fn commit(mut self: Box<Self>, signature: Option<&[u8]>) -> Result<u64> {
        let data = match signature {
            Some(der) => der.to_vec(),
            None => self.parts.unsigned()?,
        };
        // Checked before it is written: the temp file then gets exactly these bytes.
        check_output(&self.parts, &self.digests, &data, signature)?;
        let f = self.out.file_mut();
        f.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("rewinding the temp file", e))?;
        f.write_all(&data)
            .map_err(|e| Error::io("writing the temp file", e))?;
        f.set_len(data.len() as u64)
            .map_err(|e| Error::io("truncating the temp file", e))?;
        self.out.persist()?;
        Ok(data.len() as u64)
    }
}

/// The signature of the catalog at `input`: the file itself (without trailing bytes).
pub(crate) fn extract(input: &Path) -> Result<Vec<u8>> {
    let f = File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
    let parts = Parts::read(&read_all(f)?)?;
    let sig = parts.signature.ok_or(Error::NotSigned)?;
    Ok(ParsedSignature::parse(&sig)?.der.to_vec())
}

/// The digest of the catalog read from `r` for `alg`, and its encapsulated content.
pub(crate) fn file_digest<R: Read>(r: R, alg: DigestAlgorithm) -> Result<(Vec<u8>, Any)> {
    let parts = Parts::read(&read_all(r)?)?;
    Ok((alg.digest(parts.content_octets()), parts.content_any()?))
}

/// Verifies the catalog read from `r` under `opts`: its one signature over the CTL, with the
/// checks, time stamps and policy every format shares.
pub(crate) fn verify<R: Read>(r: &mut R, opts: &VerifyOptions) -> Result<VerifyReport> {
    use crate::verify::{algorithms, check_all, collect_signatures, finish_report};
    let data = read_all(r)?;
    let parts = Parts::read(&data)?;
    let sig = parts.signature.as_deref().ok_or(Error::NotSigned)?;
    let mut errors = Vec::new();
    let parsed = collect_signatures(vec![("0".to_string(), sig)], &mut errors);
    for (i, _) in parsed.iter().filter(|(i, _)| i.contains('.')) {
        errors.push(crate::finding::Finding::signature(
            crate::finding::FindingCode::SignatureStructure,
            i,
            "a catalog signature carries a nested signature (catalogs have one signature; Windows ignores it)",
        ));
    }
    let digests = parts.digests(&algorithms(&parsed));
    let signatures = check_all(
        FileKind::Catalog,
        &parsed,
        |alg| {
            digests
                .iter()
                .find(|(a, _)| *a == alg)
                .map(|(_, d)| d.as_slice())
        },
        |_, _| {},
        opts,
    );
    Ok(finish_report(
        opts.trust(),
        FileKind::Catalog,
        data.len() as u64,
        None,
        signatures,
        errors,
        Vec::new(),
    ))
}

/// Signs a catalog held in `input` into `output` (the stream path: the service, sign_bytes).
pub(crate) fn sign_stream<R: Read, W: Write>(
    identity: &codeseal_signer::SigningIdentity,
    input: &mut R,
    output: &mut W,
    opts: &crate::sign::SignOptions,
) -> Result<crate::stream::StreamOutcome> {
    refuse_append(FileKind::Catalog, opts.append)?;
    let algorithm = crate::sign::check_algorithm(identity.key().as_ref(), opts)?;
    let data = read_all(input)?;
    let parts = Parts::read(&data)?;
    if parts.signature.is_some() && !opts.replace {
        return Err(Error::AlreadySigned);
    }
    let request = crate::pkcs7::SignatureRequest::for_content(
        algorithm,
        crate::oid::MS_CTL,
        parts.content_any()?,
        &opts.opus,
    )?;
    let key: &dyn codeseal_signer::KeySigner = identity.key().as_ref();
    let signature = key.sign_digest_checked(algorithm, &request.digest_to_sign)?;
    let pkcs7 = crate::sign::assemble(&request, identity, &signature, opts.timestamp.as_ref())?;
    let digests = parts.digests(&[opts.digest]);
    check_output(&parts, &digests, &pkcs7, Some(&pkcs7))?;
    output
        .write_all(&pkcs7)
        .map_err(|e| Error::io("writing the output", e))?;
    let image_digest = digests
        .into_iter()
        .next()
        .map(|(_, d)| d)
        .unwrap_or_default();
    Ok(crate::stream::StreamOutcome {
        kind: FileKind::Catalog,
        image_digest,
        output_len: pkcs7.len() as u64,
        appended: false,
    })
}
