//! Building and parsing the PKCS#7 SignedData of an Authenticode signature, with `cms` types.
//!
//! Building is two-step, so a remote key signs only a digest: [`SignatureRequest::new`] makes
//! the SpcIndirectDataContent and the signed attributes and says which digest to sign;
//! [`SignatureRequest::assemble`] puts the key's signature and the chain around them.
//!
//! Parsing keeps the **original bytes** of what was signed (the signed attributes and the
//! SpcIndirectDataContent) so verification never depends on re-encoding.
use cms::{
    cert::{CertificateChoices, IssuerAndSerialNumber},
    content_info::{CmsVersion, ContentInfo},
    signed_data::{
        CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
        SignerInfo, SignerInfos,
    },
};
use codeseal_signer::{DigestAlgorithm, SignatureAlgorithm};
use const_oid::ObjectIdentifier;
use der::{
    asn1::{Any, AnyRef, BitString, BmpString, Ia5String, OctetString, SetOfVec},
    Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged,
};
use x509_cert::{attr::Attribute, Certificate};

use crate::{
    error::{Error, Result},
    spc::*,
};

/// The most certificates we accept in one SignedData.
pub const MAX_CERTIFICATES: usize = 64;

/// Program name and URL shown by Windows in the UAC prompt ("SpcSpOpusInfo").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpusInfo {
    /// Program name (`--name`).
    pub program_name: Option<String>,
    /// More-info URL (`--url`).
    pub url: Option<String>,
}

fn attr(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    let mut values = SetOfVec::new();
    values.insert(value)?;
    Ok(Attribute { oid, values })
}

/// The SpcSerializedObject that carries a page-hash table.
pub fn page_hash_object(alg: DigestAlgorithm, table: &[u8]) -> Result<SpcSerializedObject> {
    let mut tables = SetOfVec::new();
    tables.insert(Any::encode_from(&OctetString::new(table)?)?)?;
    let mut set = SetOfVec::new();
    set.insert(SpcAttributeTypeAndOptionalValue {
        value_type: crate::pagehash::page_hash_oid(alg),
        value: Some(Any::encode_from(&tables)?),
    })?;
    Ok(SpcSerializedObject {
        class_id: OctetString::new(crate::pagehash::PAGE_HASH_CLASS_ID.as_slice())?,
        serialized_data: OctetString::new(set.to_der()?)?,
    })
}

/// The page-hash table in a signature's SpcPeImageData, if there is one:
/// `Ok(None)` when absent, an error when present but malformed.
pub fn page_hashes_of(spc: &SpcIndirectDataContent) -> Result<Option<(DigestAlgorithm, Vec<u8>)>> {
    let Some(value) = &spc.data.value else {
        return Ok(None);
    };
    let image: SpcPeImageData = value
        .decode_as()
        .map_err(|e| malformed(format!("SpcPeImageData: {e}")))?;
    let Some(SpcLink::Moniker(obj)) = image.file else {
        return Ok(None);
    };
    if obj.class_id.as_bytes() != crate::pagehash::PAGE_HASH_CLASS_ID {
        return Ok(None);
    }
    let set: SetOfVec<SpcAttributeTypeAndOptionalValue> =
        SetOfVec::from_der(obj.serialized_data.as_bytes())
            .map_err(|e| malformed(format!("page hashes: {e}")))?;
    let attr = set
        .iter()
        .next()
        .ok_or_else(|| malformed("empty page-hash object"))?;
    let alg = if attr.value_type == crate::pagehash::PAGE_HASHES_V1 {
        DigestAlgorithm::Sha1
    } else if attr.value_type == crate::pagehash::PAGE_HASHES_V2 {
        DigestAlgorithm::Sha256
    } else {
        return Err(malformed(format!(
            "unknown page-hash type {}",
            attr.value_type
        )));
    };
    let tables: SetOfVec<OctetString> = attr
        .value
        .as_ref()
        .ok_or_else(|| malformed("page-hash attribute without a value"))?
        .decode_as()
        .map_err(|e| malformed(format!("page-hash table: {e}")))?;
    let table = tables
        .iter()
        .next()
        .ok_or_else(|| malformed("no page-hash table"))?;
    Ok(Some((alg, table.as_bytes().to_vec())))
}

/// The deepest nesting of signatures we follow.
pub const MAX_NESTING: usize = 8;
/// The most nested signatures we read from one signature.
pub const MAX_NESTED: usize = 16;

/// Adds `value` to the unsigned attribute `oid` of the only SignerInfo of the DER ContentInfo
/// `ci_der`, and `certs` to its certificates, and returns the new DER. The signature must
/// re-encode byte for byte (so adding to it cannot break it): otherwise this refuses.
pub fn add_unsigned_attr(ci_der: &[u8], oid: ObjectIdentifier, value: Any) -> Result<Vec<u8>> {
    add_unsigned_attr_and_certs(ci_der, oid, value, &[])
}

/// [`add_unsigned_attr`], also adding `certs` (those not there yet) to the certificates.
pub fn add_unsigned_attr_and_certs(
    ci_der: &[u8],
    oid: ObjectIdentifier,
    value: Any,
    certs: &[Certificate],
) -> Result<Vec<u8>> {
    let ci = ContentInfo::from_der(ci_der).map_err(|e| malformed(format!("ContentInfo: {e}")))?;
    if ci.to_der()? != ci_der {
        return Err(malformed(
            "the existing signature is not canonical DER; adding to it would break it",
        ));
    }
    let mut sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| malformed(format!("SignedData: {e}")))?;
    let mut infos: Vec<SignerInfo> = sd.signer_infos.0.into_vec();
    let [info] = infos.as_mut_slice() else {
        return Err(malformed("expected exactly one SignerInfo"));
    };
    let mut attrs: Vec<Attribute> = info
        .unsigned_attrs
        .take()
        .map(|a| a.into_vec())
        .unwrap_or_default();
    match attrs.iter_mut().find(|a| a.oid == oid) {
        Some(a) => {
            if a.values.len() >= MAX_NESTED {
                return Err(Error::Usage(format!(
                    "the signature already holds {} values of {oid}",
                    a.values.len()
                )));
            }
            a.values.insert(value)?;
        }
        None => attrs.push(attr(oid, value)?),
    }
    info.unsigned_attrs = Some(SetOfVec::try_from(attrs)?);
    sd.signer_infos = SignerInfos(SetOfVec::try_from(infos)?);
    if !certs.is_empty() {
        let mut set = sd.certificates.take().map(|c| c.0).unwrap_or_default();
        for c in certs {
            let choice = CertificateChoices::Certificate(c.clone());
            if !set.iter().any(|x| x == &choice) {
                set.insert(choice)?;
            }
        }
        sd.certificates = Some(CertificateSet(set));
    }
    let out = ContentInfo {
        content_type: ci.content_type,
        content: Any::encode_from(&sd)?,
    }
    .to_der()?;
    Ok(out)
}

/// Adds the DER ContentInfo `nested` as a nested signature (unsigned attribute
/// 1.3.6.1.4.1.311.2.4.1) of the primary signature `primary`.
pub fn nest_signature(primary: &[u8], nested: &[u8]) -> Result<Vec<u8>> {
    let value = Any::from_der(nested).map_err(|e| malformed(format!("nested signature: {e}")))?;
    add_unsigned_attr(primary, SPC_NESTED_SIGNATURE, value)
}

/// What must be signed for one Authenticode signature, and everything needed to finish it.
#[derive(Clone, Debug)]
pub struct SignatureRequest {
    /// The signature algorithm.
    pub algorithm: SignatureAlgorithm,
    /// The DER of the SpcIndirectDataContent.
    pub spc: Any,
    /// The signed attributes.
    pub signed_attrs: SignedAttributes,
    /// Their DER (as a SET OF): the bytes the key's signature covers.
    pub signed_attrs_der: Vec<u8>,
    /// The hash of `signed_attrs_der` with the algorithm's hash: what the key signs.
    pub digest_to_sign: Vec<u8>,
}

impl SignatureRequest {
    /// Builds the SpcIndirectDataContent for a PE image digest and the signed attributes
    /// (contentType, messageDigest, SpcSpOpusInfo, SpcStatementType).
    pub fn new(
        algorithm: SignatureAlgorithm,
        image_digest: &[u8],
        opus: &OpusInfo,
        page_hashes: Option<&(DigestAlgorithm, Vec<u8>)>,
    ) -> Result<Self> {
        let digest_alg = algorithm.digest;
        if image_digest.len() != digest_alg.output_len() {
            return Err(Error::Usage(format!(
                "image digest of {} bytes for {digest_alg}",
                image_digest.len()
            )));
        }
        let pe_image = match page_hashes {
            None => SpcPeImageData {
                flags: Some(BitString::from_bytes(&[])?),
                file: Some(SpcLink::File(SpcString::Unicode(BmpString::from_utf8(
                    OBSOLETE_LINK,
                )?))),
            },
            Some((alg, table)) => SpcPeImageData {
                // includeResources, as SignTool and osslsigncode write it with page hashes.
                flags: Some(BitString::new(7, [0x80u8].as_slice())?),
                file: Some(SpcLink::Moniker(page_hash_object(*alg, table)?)),
            },
        };
        let spc = SpcIndirectDataContent {
            data: SpcAttributeTypeAndOptionalValue {
                value_type: SPC_PE_IMAGE_DATA,
                value: Some(Any::encode_from(&pe_image)?),
            },
            message_digest: DigestInfo {
                digest_algorithm: digest_alg.algorithm_identifier(),
                digest: OctetString::new(image_digest)?,
            },
        };
        let spc = Any::encode_from(&spc)?;
        // messageDigest covers the content octets of the SpcIndirectDataContent, without its
        // outer SEQUENCE tag and length (PKCS#7 v1.5 style, as Windows computes it).
        let content_digest = digest_alg.digest(spc.value());

        let opus_info = SpcSpOpusInfo {
            program_name: opus
                .program_name
                .as_deref()
                .map(|n| BmpString::from_utf8(n).map(SpcString::Unicode))
                .transpose()
                .map_err(|e| Error::Usage(format!("program name: {e}")))?,
            more_info: opus
                .url
                .as_deref()
                .map(|u| Ia5String::new(u).map(SpcLink::Url))
                .transpose()
                .map_err(|e| Error::Usage(format!("URL must be ASCII: {e}")))?,
        };
        let statement = vec![SPC_INDIVIDUAL_SP_KEY_PURPOSE];
        let attrs = vec![
            attr(PKCS9_CONTENT_TYPE, Any::encode_from(&SPC_INDIRECT_DATA)?)?,
            attr(
                PKCS9_MESSAGE_DIGEST,
                Any::encode_from(&OctetString::new(content_digest)?)?,
            )?,
            attr(SPC_SP_OPUS_INFO, Any::encode_from(&opus_info)?)?,
            attr(SPC_STATEMENT_TYPE, Any::encode_from(&statement)?)?,
        ];
        let signed_attrs = SignedAttributes::try_from(attrs)?;
        let signed_attrs_der = signed_attrs.to_der()?;
        let digest_to_sign = digest_alg.digest(&signed_attrs_der);
        Ok(Self {
            algorithm,
            spc,
            signed_attrs,
            signed_attrs_der,
            digest_to_sign,
        })
    }

    /// Wraps the key's `signature` and the certificate `chain` (leaf first) into the
    /// DER ContentInfo(SignedData) that goes into the WIN_CERTIFICATE entry.
    pub fn assemble(&self, chain: &[Certificate], signature: &[u8]) -> Result<Vec<u8>> {
        let leaf = chain
            .first()
            .ok_or_else(|| Error::Usage("no signer certificate".into()))?;
        let digest_alg = self.algorithm.digest.algorithm_identifier();
        let signer = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: leaf.tbs_certificate.issuer.clone(),
                serial_number: leaf.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: digest_alg.clone(),
            signed_attrs: Some(self.signed_attrs.clone()),
            signature_algorithm: self.algorithm.cms_signature_algorithm(),
            signature: OctetString::new(signature)?,
            unsigned_attrs: None,
        };
        let mut certs = SetOfVec::new();
        for c in chain {
            let choice = CertificateChoices::Certificate(c.clone());
            if !certs.iter().any(|x| x == &choice) {
                certs.insert(choice)?;
            }
        }
        let mut digest_algorithms = SetOfVec::new();
        digest_algorithms.insert(digest_alg)?;
        let mut signer_infos = SetOfVec::new();
        signer_infos.insert(signer)?;
        // Version 1, not the 3 RFC 5652 asks for with a non-data content type: Windows,
        // SignTool, osslsigncode and jsign write 1, and signify cannot parse 3.
        let sd = SignedData {
            version: CmsVersion::V1,
            digest_algorithms,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: SPC_INDIRECT_DATA,
                econtent: Some(self.spc.clone()),
            },
            certificates: Some(CertificateSet(certs)),
            crls: None,
            signer_infos: SignerInfos(signer_infos),
        };
        let ci = ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: Any::encode_from(&sd)?,
        };
        Ok(ci.to_der()?)
    }
}

/// One parsed Authenticode signature (a ContentInfo with SignedData).
#[derive(Clone, Debug)]
pub struct ParsedSignature {
    /// The SignedData.
    pub signed_data: SignedData,
    /// The SpcIndirectDataContent.
    pub spc: SpcIndirectDataContent,
    /// The original content octets of the SpcIndirectDataContent (what messageDigest covers).
    pub spc_content: Vec<u8>,
    /// The digest algorithm (the same in SignedData, SignerInfo and SpcIndirectData).
    pub digest_algorithm: DigestAlgorithm,
    /// The only SignerInfo.
    pub signer_info: SignerInfo,
    /// The original bytes of the signed attributes, re-tagged as SET OF: what the signature covers.
    pub signed_attrs_der: Vec<u8>,
    /// Length of the DER ContentInfo; bytes after it in the entry are padding.
    pub der_len: usize,
    /// Bytes after the DER inside the entry (at most 7 zero bytes are expected).
    pub trailing_len: usize,
    /// Whether any of those bytes is non-zero.
    pub trailing_nonzero: bool,
    /// Structural notes that do not make the signature unreadable.
    pub notes: Vec<String>,
}

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::MalformedSignature(what.to_string())
}

/// The SignerInfo SEQUENCEs (original bytes) of a SignedData, from its content octets.
pub(crate) fn raw_signer_infos(signed_data_value: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut r = SliceReader::new(signed_data_value).map_err(malformed)?;
    let mut last = None;
    while !r.is_finished() {
        last = Some(AnyRef::decode(&mut r).map_err(malformed)?);
    }
    let infos = last.ok_or_else(|| malformed("empty SignedData"))?;
    if infos.tag() != Tag::Set {
        return Err(malformed("SignedData does not end with signerInfos"));
    }
    let mut r = SliceReader::new(infos.value()).map_err(malformed)?;
    let mut out = Vec::new();
    while !r.is_finished() {
        out.push(
            AnyRef::decode(&mut r)
                .map_err(malformed)?
                .to_der()
                .map_err(malformed)?,
        );
    }
    Ok(out)
}

/// A SignedData read element by element, tolerating what strict DER decoding refuses but
/// real tokens contain (unsorted or duplicate certificates in the SET, as osslsigncode's
/// built-in TSA writes). Each SignerInfo keeps its original bytes.
#[derive(Clone, Debug)]
pub struct LooseSignedData {
    /// encapContentInfo.
    pub encap: EncapsulatedContentInfo,
    /// The X.509 certificates (other certificate formats are skipped).
    pub certificates: Vec<Certificate>,
    /// The SignerInfos with their original DER.
    pub signer_infos: Vec<(SignerInfo, Vec<u8>)>,
}

/// Reads a SignedData from its content octets (the value of the ContentInfo's `[0]`).
pub fn parse_loose_signed_data(signed_data_value: &[u8]) -> Result<LooseSignedData> {
    let mut r = SliceReader::new(signed_data_value).map_err(malformed)?;
    let mut fields = Vec::new();
    while !r.is_finished() {
        fields.push(AnyRef::decode(&mut r).map_err(malformed)?);
        if fields.len() > 6 {
            return Err(malformed("SignedData has too many fields"));
        }
    }
    let mut it = fields.into_iter();
    let _version = it.next().ok_or_else(|| malformed("empty SignedData"))?;
    let _digest_algs = it
        .next()
        .ok_or_else(|| malformed("SignedData without digestAlgorithms"))?;
    let encap_any = it
        .next()
        .ok_or_else(|| malformed("SignedData without content"))?;
    let encap = EncapsulatedContentInfo::from_der(&encap_any.to_der().map_err(malformed)?)
        .map_err(malformed)?;
    let mut certificates = Vec::new();
    let mut signer_infos = Vec::new();
    for f in it {
        match f.tag() {
            Tag::ContextSpecific {
                number: TagNumber::N0,
                ..
            } => {
                let mut cr = SliceReader::new(f.value()).map_err(malformed)?;
                while !cr.is_finished() {
                    let c = AnyRef::decode(&mut cr).map_err(malformed)?;
                    if c.tag() == Tag::Sequence {
                        let cert = Certificate::from_der(&c.to_der().map_err(malformed)?)
                            .map_err(malformed)?;
                        certificates.push(cert);
                        if certificates.len() > MAX_CERTIFICATES {
                            return Err(malformed(format!(
                                "more than {MAX_CERTIFICATES} certificates"
                            )));
                        }
                    }
                }
            }
            Tag::ContextSpecific {
                number: TagNumber::N1,
                ..
            } => {}
            Tag::Set => {
                let mut sr = SliceReader::new(f.value()).map_err(malformed)?;
                while !sr.is_finished() {
                    let raw = AnyRef::decode(&mut sr)
                        .map_err(malformed)?
                        .to_der()
                        .map_err(malformed)?;
                    let info = SignerInfo::from_der(&raw)
                        .map_err(|e| malformed(format!("SignerInfo: {e}")))?;
                    signer_infos.push((info, raw));
                    if signer_infos.len() > 8 {
                        return Err(malformed("too many SignerInfos"));
                    }
                }
            }
            other => return Err(malformed(format!("unexpected field {other} in SignedData"))),
        }
    }
    Ok(LooseSignedData {
        encap,
        certificates,
        signer_infos,
    })
}

/// The original bytes of a SignerInfo's `[0] IMPLICIT` signed attributes, re-tagged as the
/// SET OF that the signature covers.
pub(crate) fn raw_signed_attrs_of(signer_info_der: &[u8]) -> Result<Option<Vec<u8>>> {
    let info = AnyRef::from_der(signer_info_der).map_err(malformed)?;
    let mut r = SliceReader::new(info.value()).map_err(malformed)?;
    while !r.is_finished() {
        let field = AnyRef::decode(&mut r).map_err(malformed)?;
        if field.tag()
            == (Tag::ContextSpecific {
                constructed: true,
                number: TagNumber::N0,
            })
        {
            let set = AnyRef::new(Tag::Set, field.value()).map_err(malformed)?;
            return Ok(Some(set.to_der().map_err(malformed)?));
        }
    }
    Ok(None)
}

/// Finds the original bytes of the first SignerInfo's signed attributes in the SignedData
/// content octets, re-tagged as a SET.
fn raw_signed_attrs(signed_data_value: &[u8]) -> Result<Option<Vec<u8>>> {
    let infos = raw_signer_infos(signed_data_value)?;
    let first = infos.first().ok_or_else(|| malformed("no SignerInfo"))?;
    raw_signed_attrs_of(first)
}

/// Checks a CMS SignerInfo (from a time-stamp token or a countersignature): its
/// messageDigest attribute equals the hash of `content`, its contentType attribute (when
/// `content_type` is given) matches, and its signature over the **original** signed-attribute
/// bytes verifies with `cert`'s key. Returns the digest algorithm used.
pub fn verify_cms_signer(
    info: &SignerInfo,
    signed_attrs_der: &[u8],
    content: &[u8],
    content_type: Option<ObjectIdentifier>,
    cert: &Certificate,
) -> Result<DigestAlgorithm> {
    let alg = DigestAlgorithm::from_oid(&info.digest_alg.oid).ok_or_else(|| {
        malformed(format!(
            "unsupported digest algorithm {}",
            info.digest_alg.oid
        ))
    })?;
    let attrs = info
        .signed_attrs
        .as_ref()
        .ok_or_else(|| malformed("no signed attributes"))?;
    let md: OctetString = single_attr(attrs, PKCS9_MESSAGE_DIGEST)?
        .ok_or_else(|| malformed("no messageDigest attribute"))?
        .decode_as()
        .map_err(malformed)?;
    if md.as_bytes() != alg.digest(content).as_slice() {
        return Err(malformed(
            "the messageDigest attribute does not match the content",
        ));
    }
    if let Some(ct) = content_type {
        let got: ObjectIdentifier = single_attr(attrs, PKCS9_CONTENT_TYPE)?
            .ok_or_else(|| malformed("no contentType attribute"))?
            .decode_as()
            .map_err(malformed)?;
        if got != ct {
            return Err(malformed(format!(
                "contentType attribute {got}, expected {ct}"
            )));
        }
    }
    let tbs = alg.digest(signed_attrs_der);
    codeseal_signer::verify_prehash(
        &cert.tbs_certificate.subject_public_key_info,
        alg,
        &tbs,
        info.signature.as_bytes(),
    )
    .map_err(|e| malformed(format!("signature: {e}")))?;
    Ok(alg)
}

/// The certificate a SignerInfo names, among `certs`.
pub fn find_signer<'a>(
    info: &SignerInfo,
    mut certs: impl Iterator<Item = &'a Certificate>,
) -> Option<&'a Certificate> {
    match &info.sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => certs.find(|c| {
            c.tbs_certificate.issuer == ias.issuer
                && c.tbs_certificate.serial_number == ias.serial_number
        }),
        SignerIdentifier::SubjectKeyIdentifier(skid) => certs.find(|c| {
            c.tbs_certificate
                .get::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
                .ok()
                .flatten()
                .is_some_and(|(_, k)| k.0 == skid.0)
        }),
    }
}

/// The certificates of a SignedData.
pub fn certificates_of(sd: &SignedData) -> impl Iterator<Item = &Certificate> {
    sd.certificates
        .iter()
        .flat_map(|s| s.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c),
            _ => None,
        })
}

fn single_attr(attrs: &SignedAttributes, oid: ObjectIdentifier) -> Result<Option<&Any>> {
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let Some(a) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() || a.values.len() != 1 {
        return Err(malformed(format!(
            "attribute {oid} must appear once with one value"
        )));
    }
    Ok(a.values.iter().next())
}

impl ParsedSignature {
    /// Parses the data of a WIN_CERTIFICATE entry: a DER ContentInfo, possibly followed by
    /// padding. Checks the Authenticode shape: SignedData version 1, content type
    /// SpcIndirectData, exactly one SignerInfo, one digest algorithm used consistently,
    /// digest length equal to the hash length, signed attributes with contentType and
    /// messageDigest present.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let mut notes = Vec::new();
        let mut r = SliceReader::new(data).map_err(malformed)?;
        let ci = ContentInfo::decode(&mut r).map_err(|e| malformed(format!("ContentInfo: {e}")))?;
        let der_len = u32::from(r.position()) as usize;
        let trailing = data.get(der_len..).unwrap_or_default();
        if trailing.len() > 7 {
            notes.push(format!(
                "{} bytes follow the signature inside its WIN_CERTIFICATE entry (at most 7 bytes of padding are expected)",
                trailing.len()
            ));
        } else if trailing.iter().any(|&b| b != 0) {
            notes.push(
                "non-zero padding bytes after the signature inside its WIN_CERTIFICATE entry"
                    .into(),
            );
        }
        if ci.content_type != ID_SIGNED_DATA {
            return Err(malformed(format!(
                "content type {} is not SignedData",
                ci.content_type
            )));
        }
        let sd_bytes = ci.content.value();
        let sd = SignedData::from_der(&ci.content.to_der()?)
            .map_err(|e| malformed(format!("SignedData: {e}")))?;
        if sd.version != CmsVersion::V1 {
            notes.push(format!(
                "SignedData version {:?}; Authenticode uses 1",
                sd.version
            ));
        }
        if sd.encap_content_info.econtent_type != SPC_INDIRECT_DATA {
            return Err(malformed(format!(
                "content type {} is not SpcIndirectDataContent",
                sd.encap_content_info.econtent_type
            )));
        }
        let econtent = sd
            .encap_content_info
            .econtent
            .as_ref()
            .ok_or_else(|| malformed("no SpcIndirectDataContent"))?;
        let spc: SpcIndirectDataContent = econtent
            .decode_as()
            .map_err(|e| malformed(format!("SpcIndirectDataContent: {e}")))?;
        let spc_content = econtent.value().to_vec();
        let alg_oid = spc.message_digest.digest_algorithm.oid;
        let digest_algorithm = DigestAlgorithm::from_oid(&alg_oid)
            .ok_or_else(|| malformed(format!("unsupported digest algorithm {alg_oid}")))?;
        let image_digest_len = spc.message_digest.digest.as_bytes().len();
        if image_digest_len != digest_algorithm.output_len() {
            return Err(malformed(format!(
                "the image digest is {image_digest_len} bytes; {digest_algorithm} gives {}",
                digest_algorithm.output_len()
            )));
        }
        if sd.signer_infos.0.len() != 1 {
            return Err(malformed(format!(
                "{} SignerInfos; Authenticode has exactly one",
                sd.signer_infos.0.len()
            )));
        }
        let signer_info = sd
            .signer_infos
            .0
            .iter()
            .next()
            .cloned()
            .ok_or_else(|| malformed("no SignerInfo"))?;
        if signer_info.digest_alg.oid != alg_oid {
            return Err(malformed(format!(
                "the SignerInfo digest algorithm {} differs from the image digest's {alg_oid}",
                signer_info.digest_alg.oid
            )));
        }
        if !sd.digest_algorithms.iter().any(|a| a.oid == alg_oid) {
            return Err(malformed(
                "SignedData.digestAlgorithms lacks the digest algorithm in use",
            ));
        }
        if sd.digest_algorithms.len() != 1 {
            notes.push(format!(
                "SignedData lists {} digest algorithms; Authenticode uses one",
                sd.digest_algorithms.len()
            ));
        }
        if let Some(certs) = &sd.certificates {
            if certs.0.len() > MAX_CERTIFICATES {
                return Err(malformed(format!(
                    "more than {MAX_CERTIFICATES} certificates"
                )));
            }
        }
        let attrs = signer_info
            .signed_attrs
            .as_ref()
            .ok_or_else(|| malformed("the SignerInfo has no signed attributes"))?;
        let ct = single_attr(attrs, PKCS9_CONTENT_TYPE)?
            .ok_or_else(|| malformed("no contentType signed attribute"))?;
        let ct: ObjectIdentifier = ct.decode_as().map_err(malformed)?;
        if ct != SPC_INDIRECT_DATA {
            return Err(malformed(format!(
                "contentType attribute is {ct}, not SpcIndirectData"
            )));
        }
        single_attr(attrs, PKCS9_MESSAGE_DIGEST)?
            .ok_or_else(|| malformed("no messageDigest signed attribute"))?;
        let signed_attrs_der =
            raw_signed_attrs(sd_bytes)?.ok_or_else(|| malformed("signed attributes not found"))?;
        Ok(Self {
            signed_data: sd,
            spc,
            spc_content,
            digest_algorithm,
            signer_info,
            signed_attrs_der,
            der_len,
            trailing_len: trailing.len(),
            trailing_nonzero: trailing.iter().any(|&b| b != 0),
            notes,
        })
    }

    /// The nested signatures (unsigned attribute 1.3.6.1.4.1.311.2.4.1) as DER ContentInfos.
    pub fn nested_der(&self) -> Vec<Vec<u8>> {
        let Some(attrs) = &self.signer_info.unsigned_attrs else {
            return vec![];
        };
        attrs
            .iter()
            .filter(|a| a.oid == SPC_NESTED_SIGNATURE)
            .flat_map(|a| a.values.iter())
            .filter_map(|v| v.to_der().ok())
            .collect()
    }

    /// The image digest the signature carries.
    pub fn image_digest(&self) -> &[u8] {
        self.spc.message_digest.digest.as_bytes()
    }

    /// The messageDigest signed attribute's value.
    pub fn message_digest_attr(&self) -> Result<Vec<u8>> {
        let attrs = self
            .signer_info
            .signed_attrs
            .as_ref()
            .ok_or_else(|| malformed("no signed attributes"))?;
        let v = single_attr(attrs, PKCS9_MESSAGE_DIGEST)?
            .ok_or_else(|| malformed("no messageDigest"))?;
        let o: OctetString = v.decode_as().map_err(malformed)?;
        Ok(o.into_bytes())
    }

    /// The SpcSpOpusInfo signed attribute, if present and readable.
    pub fn opus_info(&self) -> Option<SpcSpOpusInfo> {
        let attrs = self.signer_info.signed_attrs.as_ref()?;
        single_attr(attrs, SPC_SP_OPUS_INFO).ok()??.decode_as().ok()
    }

    /// The embedded X.509 certificates.
    pub fn certificates(&self) -> impl Iterator<Item = &Certificate> {
        certificates_of(&self.signed_data)
    }

    /// The certificate the SignerInfo names (by issuer and serial, or subject key id).
    pub fn signer_certificate(&self) -> Option<&Certificate> {
        find_signer(&self.signer_info, self.certificates())
    }

    /// The unsigned attribute values with `oid`.
    pub fn unsigned_values(&self, oid: ObjectIdentifier) -> Vec<&Any> {
        self.signer_info
            .unsigned_attrs
            .iter()
            .flat_map(|a| a.iter())
            .filter(|a| a.oid == oid)
            .flat_map(|a| a.values.iter())
            .collect()
    }
}
