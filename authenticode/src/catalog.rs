//! Windows catalog files (`.cat`): create a catalog from a set of files, sign a catalog,
//! verify a catalog's signature, and verify a file against a catalog.
//!
//! A catalog is a PKCS#7 SignedData whose content (type `szOID_CTL`) is a certificate trust
//! list of member hashes ([`codeseal_formats::catalog`]). Signing adds a SignerInfo over the
//! CTL (its content octets, as Windows hashes SpcIndirectDataContent); catalogs carry one
//! signature, never nested ones.
//!
//! Members: a PE file is listed by its Authenticode digest (`SpcPeImageData`), any other file
//! by the hash of its bytes (flat). SHA-256 makes a version 2 catalog
//! (`szOID_CATALOG_LIST_MEMBER2`, what `New-FileCatalog -CatalogVersion 2` writes); SHA-1 a
//! version 1 catalog (for old Windows only, and only with `allow_sha1`).
use std::{
    fs::File,
    io::{BufReader, Read},
    path::{Path, PathBuf},
    time::SystemTime,
};

use cms::{
    content_info::ContentInfo,
    signed_data::{EncapsulatedContentInfo, SignedData, SignerInfos},
};
use codeseal_signer::{DigestAlgorithm, KeySigner, SigningIdentity};
use der::{asn1::SetOfVec, Any, Decode, Encode};
use x509_cert::Certificate;

use crate::{
    formats::{
        catalog::{
            parse_catalog, CatalogAttribute, CatalogMember, CertificateTrustList, MemberKind,
        },
        digest::Hasher,
        pkcs7::SignatureRequest,
    },
    oid,
    pe::PeInfo,
    sign::{assemble, SignOptions},
    Error, Result,
};

fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// The catalog member for the file at `path`: its Authenticode digest if it is a PE file,
/// otherwise the hash of its bytes. The member's `File` name is the file name.
pub fn catalog_member(path: &Path, alg: DigestAlgorithm) -> Result<CatalogMember> {
    let (kind, digest) = member_digest(path, alg)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    Ok(CatalogMember::new(kind, alg, digest, name))
}

/// How the file at `path` is hashed for a catalog, and its digest.
pub fn member_digest(path: &Path, alg: DigestAlgorithm) -> Result<(MemberKind, Vec<u8>)> {
    let mut f =
        BufReader::new(File::open(path).map_err(io(format!("opening {}", path.display())))?);
    if let Ok(pe) = PeInfo::read(&mut f) {
        let pass = crate::digest::stream_image(&mut f, &pe, &[alg], None)?;
        let d = pass
            .digest(alg)
            .ok_or_else(|| Error::Usage("digest missing".into()))?;
        return Ok((MemberKind::Pe, d.to_vec()));
    }
    let mut f = File::open(path).map_err(io(format!("opening {}", path.display())))?;
    let mut h = Hasher::new(alg);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(io(format!("reading {}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok((MemberKind::Flat, h.finalize()))
}

/// The DER of an unsigned catalog (a SignedData with the CTL and no signer) listing `files`.
pub fn build_catalog(files: &[PathBuf], alg: DigestAlgorithm) -> Result<Vec<u8>> {
    build_catalog_with(files, alg, &[])
}

/// [`build_catalog`] with catalog-level attributes (`CAT_NAMEVALUE` entries in
/// `ctlExtensions`, as makecat writes `CATATTR` lines such as `OSAttr`).
pub fn build_catalog_with(
    files: &[PathBuf],
    alg: DigestAlgorithm,
    attributes: &[CatalogAttribute],
) -> Result<Vec<u8>> {
    let mut members = Vec::with_capacity(files.len());
    for f in files {
        members.push(catalog_member(f, alg)?);
    }
    let now = SystemTime::now();
    // The list identifier: 16 bytes of a hash of the members and the time (unique per
    // catalog; makecat uses a random GUID).
    let mut h = Hasher::new(DigestAlgorithm::Sha256);
    for m in &members {
        h.update(&m.digest);
    }
    let t = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    h.update(&t.to_le_bytes());
    let mut id = [0u8; 16];
    for (d, s) in id.iter_mut().zip(h.finalize()) {
        *d = s;
    }
    let ctl =
        CertificateTrustList::catalog(&members, id, now)?.with_catalog_attributes(attributes)?;
    unsigned_catalog(&ctl.to_der().map_err(crate::formats::Error::from)?)
}

/// Wraps the DER of a CTL into an unsigned catalog (SignedData version 1, no signers).
pub fn unsigned_catalog(ctl_der: &[u8]) -> Result<Vec<u8>> {
    let ctl = Any::from_der(ctl_der).map_err(crate::formats::Error::from)?;
    let sd = SignedData {
        version: cms::content_info::CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oid::MS_CTL,
            econtent: Some(ctl),
        },
        certificates: None,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let ci = ContentInfo {
        content_type: oid::ID_SIGNED_DATA,
        content: Any::encode_from(&sd).map_err(crate::formats::Error::from)?,
    };
    Ok(ci.to_der().map_err(crate::formats::Error::from)?)
}

/// Signs the catalog `data` with `identity`: the result has one SignerInfo over its CTL.
/// A signed catalog is refused unless `opts.replace`; `opts.append` is refused (catalogs do
/// not nest signatures).
pub fn sign_catalog(
    identity: &SigningIdentity,
    data: &[u8],
    opts: &SignOptions,
) -> Result<Vec<u8>> {
    if opts.append {
        return Err(Error::Usage(
            "catalogs carry one signature: --append does not apply (use --replace)".into(),
        ));
    }
    let algorithm = crate::sign::check_algorithm(identity.key().as_ref(), opts)?;
    let cat = parse_catalog(data)?;
    if !cat.content_info.signed_data.signer_infos.is_empty() && !opts.replace {
        return Err(Error::AlreadySigned);
    }
    let ctl = Any::from_der(cat.ctl_der).map_err(crate::formats::Error::from)?;
    let request = SignatureRequest::for_content(algorithm, oid::MS_CTL, ctl, &opts.opus)?;
    let key: &dyn KeySigner = identity.key().as_ref();
    let signature = key.sign_digest_checked(algorithm, &request.digest_to_sign)?;
    let out = assemble(&request, identity, &signature, opts.timestamp.as_ref())?;
    // The result must read back as a signed catalog over the same CTL.
    let back = verify_catalog(&out, None)?;
    if back.ctl_der_len != cat.ctl_der.len() {
        return Err(Error::OutputCheck("the CTL changed".into()));
    }
    Ok(out)
}

/// Writes `data` to `output` through a temporary file renamed over it; an existing output
/// is refused unless `force`.
pub fn write_catalog(output: &Path, data: &[u8], force: bool) -> Result<()> {
    if output.exists() && !force {
        return Err(Error::OutputExists(output.display().to_string()));
    }
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(format!(
        "creating a temporary file in {}",
        dir.display()
    )))?;
    std::io::Write::write_all(&mut tmp, data)
        .map_err(io(format!("writing {}", output.display())))?;
    tmp.persist(output).map_err(|e| Error::Io {
        context: format!("renaming over {}", output.display()),
        source: e.error,
    })?;
    Ok(())
}

/// A catalog's signature, checked.
#[derive(Clone, Debug)]
pub struct CatalogReport {
    /// The CTL.
    pub ctl: CertificateTrustList,
    /// Length of the CTL's DER.
    pub ctl_der_len: usize,
    /// The signer's subject.
    pub signer: String,
    /// The digest algorithm of the signature.
    pub digest_algorithm: DigestAlgorithm,
    /// Whether the signer's chain reached a trust anchor (`None`: not checked).
    pub trusted: Option<bool>,
    /// Why the chain was not trusted (including root-program restrictions, the deny list
    /// and revocation, when the verifier checks them).
    pub chain_errors: Vec<String>,
    /// The revocation status of the signer chain (empty unless checked).
    pub revocation: Vec<crate::revocation::CertRevocation>,
    /// Findings that do not make the catalog invalid (e.g. an unknown revocation status
    /// under the soft policy).
    pub warnings: Vec<String>,
    /// The signature's time stamps (the chain is checked at the first valid one's time).
    pub timestamps: Vec<crate::verify::TimestampReport>,
    /// The full report of the shared verification (as [`crate::Verifier::verify_file`]).
    pub report: crate::verify::VerifyReport,
}

/// Verifies a catalog's signature: exactly one SignerInfo, its messageDigest over the CTL,
/// contentType `szOID_CTL`, its signature with the carried signer certificate, its time
/// stamps, and (with `anchors`) the signer's chain to one of them for code signing, at the
/// time of a valid time stamp (else now), as for every other format. An unsigned catalog
/// is [`Error::NotSigned`]; a broken signature an error.
pub fn verify_catalog(data: &[u8], anchors: Option<&[Certificate]>) -> Result<CatalogReport> {
    verify_catalog_with(data, anchors, None)
}

/// [`verify_catalog`] under a verifier's policy (`opts`): its trust-store rules, time-stamp
/// rules and revocation checking, with `anchors` as the trust anchors. Used by
/// [`crate::Verifier::verify_catalog`].
pub(crate) fn verify_catalog_with(
    data: &[u8],
    anchors: Option<&[Certificate]>,
    opts: Option<&crate::verify::VerifyOptions>,
) -> Result<CatalogReport> {
    let cat = parse_catalog(data)?;
    let mut o = opts.cloned().unwrap_or_default();
    o.trust_anchors = anchors.map(<[Certificate]>::to_vec).unwrap_or_default();
    // The shared verification (signature, time stamps, chain at the time-stamp time,
    // revocation, policy), as for every other format.
    let report = crate::format::catalog::verify(&mut &data[..], &o)?;
    let broken = |why: String| -> Error { crate::formats::Error::MalformedSignature(why).into() };
    if !report.errors.is_empty() {
        let why: Vec<String> = report.errors.iter().map(|f| f.message.clone()).collect();
        return Err(broken(why.join("; ")));
    }
    let sig = report
        .signatures
        .first()
        .ok_or_else(|| broken("no readable signature".into()))?;
    if !(sig.image_digest_ok && sig.message_digest_ok && sig.signature_ok) {
        let why: Vec<String> = sig.errors.iter().map(|f| f.message.clone()).collect();
        return Err(broken(why.join("; ")));
    }
    let mut chain_errors: Vec<String> = sig.errors.iter().map(|f| f.message.clone()).collect();
    if let Some(c) = &sig.chain {
        for e in &c.errors {
            if !chain_errors.iter().any(|m| m.contains(e.as_str())) {
                chain_errors.push(e.clone());
            }
        }
    }
    let trusted = anchors.map(|_| sig.is_valid());
    Ok(CatalogReport {
        ctl_der_len: cat.ctl_der.len(),
        ctl: cat.ctl,
        signer: sig
            .signer
            .as_ref()
            .map(|s| s.subject.clone())
            .unwrap_or_default(),
        digest_algorithm: sig.digest_algorithm,
        trusted,
        chain_errors: if trusted == Some(true) {
            Vec::new()
        } else {
            chain_errors
        },
        revocation: sig
            .chain
            .as_ref()
            .map(|c| c.revocation.clone())
            .unwrap_or_default(),
        warnings: sig.warnings.iter().map(|f| f.message.clone()).collect(),
        timestamps: sig.timestamps.clone(),
        report,
    })
}

/// The member of the catalog `report` that the file at `path` is: its Authenticode digest
/// (PE) or flat hash, in each digest algorithm the catalog uses, must be listed.
pub fn find_file_member(report: &CatalogReport, path: &Path) -> Result<Option<CatalogMember>> {
    let members = report.ctl.members()?;
    let mut algs: Vec<DigestAlgorithm> = Vec::new();
    for m in &members {
        if !algs.contains(&m.digest_algorithm) {
            algs.push(m.digest_algorithm);
        }
    }
    for alg in algs {
        let (kind, digest) = member_digest(path, alg)?;
        if let Some(m) = members
            .iter()
            .find(|m| m.digest_algorithm == alg && m.kind == kind && m.digest == digest)
        {
            return Ok(Some(m.clone()));
        }
    }
    Ok(None)
}
