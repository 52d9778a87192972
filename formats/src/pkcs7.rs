//! Building and parsing the PKCS#7 SignedData of an Authenticode signature, with `cms` types.
//!
//! Building is two-step, so a remote key signs only a digest: [`SignatureRequest::new`] makes
//! the SpcIndirectDataContent and the signed attributes and says which digest to sign;
//! [`SignatureRequest::assemble`] puts the key's signature and the chain around them.
//!
//! Parsing keeps the **original bytes** of what was signed (the signed attributes and the
//! SpcIndirectDataContent) so verification never depends on re-encoding.
use crate::oid::*;
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
    asn1::{Any, BmpString, Ia5String, OctetString, SetOfVec},
    Decode, Encode,
};
use x509_cert::{attr::Attribute, Certificate};

use crate::{
    asn1,
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
    if spc.data.value_type != SPC_PE_IMAGE_DATA {
        return Ok(None);
    }
    let image: SpcPeImageData = value
        .decode_as()
        .map_err(|e| malformed(format!("SpcPeImageData: {e}")))?;
    let Some(SpcLink::Moniker(obj)) = image.file else {
        return Ok(None);
    };
    if obj.class_id.as_bytes() != crate::pagehash::PAGE_HASH_CLASS_ID {
        return Ok(None);
    }
    asn1::check_sets(obj.serialized_data.as_bytes(), asn1::SetRule::Bounded)
        .map_err(|e| malformed(format!("page hashes: {e}")))?;
    let set: SetOfVec<SpcAttributeTypeAndOptionalValue> =
        SetOfVec::from_der(obj.serialized_data.as_bytes())
            .map_err(|e| malformed(format!("page hashes: {e}")))?;
    let attr = set
        .iter()
        .next()
        .ok_or_else(|| malformed("empty page-hash object"))?;
    let alg = if attr.value_type == PAGE_HASHES_V1 {
        DigestAlgorithm::Sha1
    } else if attr.value_type == PAGE_HASHES_V2 {
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
/// The most time stamps (RFC 3161 tokens and countersignatures) read from one signature.
pub const MAX_TIMESTAMPS: usize = 8;
/// The most certificate entries read from one SignedData (repeats included).
pub const MAX_CERTIFICATE_ENTRIES: usize = 1024;
/// The most unsigned attributes read from one SignerInfo.
pub const MAX_UNSIGNED_ATTRS: usize = 1024;
/// The most SignerInfos read from one SignedData.
pub const MAX_SIGNER_INFOS: usize = 8;
/// The most digest algorithms read from one SignedData.
pub const MAX_DIGEST_ALGORITHMS: usize = 16;

/// Adds `value` to the unsigned attribute `oid` of the only SignerInfo of the DER ContentInfo
/// `ci_der`, and returns the new DER. Every other byte of the signature is kept as it was, so
/// adding to it cannot break it.
pub fn add_unsigned_attr(ci_der: &[u8], oid: ObjectIdentifier, value: Any) -> Result<Vec<u8>> {
    add_unsigned_attr_and_certs(ci_der, oid, value, &[])
}

/// Where `new` goes among `items` so that a SET OF in DER order stays in order (after the
/// last element not greater than it, when the set is unsorted).
fn insertion_point(items: &[&[u8]], new: &[u8]) -> usize {
    items
        .iter()
        .rposition(|i| asn1::der_set_order(i, new) != std::cmp::Ordering::Greater)
        .map_or(0, |p| p + 1)
}

/// [`add_unsigned_attr`], also adding `certs` (those not there yet) to the certificates.
pub fn add_unsigned_attr_and_certs(
    ci_der: &[u8],
    oid: ObjectIdentifier,
    value: Any,
    certs: &[Certificate],
) -> Result<Vec<u8>> {
    let value = value.to_der()?;
    let parsed = parse_content_info(ci_der)?;
    let (ci, sd) = (parsed.content_info, parsed.signed_data_tlv);
    let [info] = parsed.signed_data.signer_infos.as_slice() else {
        return Err(malformed("expected exactly one SignerInfo"));
    };
    // The SignerInfo: every field as it was, the unsigned attributes with the new value.
    let mut attrs: Vec<Vec<u8>> = Vec::new();
    let mut found = false;
    for a in &info.unsigned {
        if a.oid == oid {
            if a.count >= MAX_NESTED {
                return Err(Error::InvalidValue(format!(
                    "the signature already holds {} values of {oid}",
                    a.count
                )));
            }
            let mut values: Vec<&[u8]> = a.values().collect();
            values.insert(insertion_point(&values, &value), &value);
            attrs.push(asn1::wrap(
                asn1::tag::SEQUENCE,
                &[a.oid_raw, &asn1::wrap(asn1::tag::SET, &values)],
            ));
            found = true;
        } else {
            attrs.push(a.raw.to_vec());
        }
    }
    if !found {
        let oid_der = oid.to_der()?;
        let new = asn1::wrap(
            asn1::tag::SEQUENCE,
            &[&oid_der, &asn1::wrap(asn1::tag::SET, &[&value])],
        );
        let refs: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
        let at = insertion_point(&refs, &new);
        attrs.insert(at, new);
    }
    let attr_refs: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
    let unsigned = asn1::wrap(asn1::tag::context(1), &attr_refs);
    let mut info_fields: Vec<&[u8]> = Vec::new();
    for f in asn1::Tlv::exactly(info.raw)?.children() {
        let f = f?;
        if f.tag != asn1::tag::context(1) {
            info_fields.push(f.raw);
        }
    }
    info_fields.push(&unsigned);
    let new_info = asn1::wrap(asn1::tag::SEQUENCE, &info_fields);
    let infos = asn1::wrap(asn1::tag::SET, &[&new_info]);
    // The SignedData: certificates added, signerInfos replaced, the rest as it was.
    let mut cert_ders = Vec::new();
    for c in certs {
        cert_ders.push(c.to_der()?);
    }
    let mut fields: Vec<Vec<u8>> = Vec::new();
    let mut certs_done = certs.is_empty();
    let mut children = sd.children().peekable();
    while let Some(f) = children.next() {
        let f = f?;
        let last = children.peek().is_none();
        if f.tag == asn1::tag::context(0) && !certs_done {
            let mut present: Vec<&[u8]> = Vec::new();
            for c in f.children() {
                present.push(c?.raw);
            }
            for d in &cert_ders {
                if !present.contains(&d.as_slice()) {
                    present.insert(insertion_point(&present, d), d);
                }
            }
            fields.push(asn1::wrap(asn1::tag::context(0), &present));
            certs_done = true;
        } else if last {
            if !certs_done {
                let refs: Vec<&[u8]> = cert_ders.iter().map(Vec::as_slice).collect();
                fields.push(asn1::wrap(asn1::tag::context(0), &refs));
            }
            fields.push(infos.clone());
        } else {
            if !certs_done && f.tag == asn1::tag::context(1) {
                let refs: Vec<&[u8]> = cert_ders.iter().map(Vec::as_slice).collect();
                fields.push(asn1::wrap(asn1::tag::context(0), &refs));
                certs_done = true;
            }
            fields.push(f.raw.to_vec());
        }
    }
    let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    let sd_new = asn1::wrap(asn1::tag::SEQUENCE, &refs);
    let mut ci_fields: Vec<Vec<u8>> = Vec::new();
    for f in ci.children() {
        let f = f?;
        if f.tag == asn1::tag::context(0) {
            ci_fields.push(asn1::wrap(asn1::tag::context(0), &[&sd_new]));
        } else {
            ci_fields.push(f.raw.to_vec());
        }
    }
    let refs: Vec<&[u8]> = ci_fields.iter().map(Vec::as_slice).collect();
    Ok(asn1::wrap(asn1::tag::SEQUENCE, &refs))
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
    /// The encapsulated content's type: `SPC_INDIRECT_DATA`, or `szOID_CTL` for catalogs.
    pub content_type: ObjectIdentifier,
    /// The DER of the encapsulated content (the SpcIndirectDataContent, or a catalog's CTL).
    pub spc: Any,
    /// The signed attributes.
    pub signed_attrs: SignedAttributes,
    /// Their DER (as a SET OF): the bytes the key's signature covers.
    pub signed_attrs_der: Vec<u8>,
    /// The hash of `signed_attrs_der` with the algorithm's hash: what the key signs.
    pub digest_to_sign: Vec<u8>,
}

impl SignatureRequest {
    /// Builds the SpcIndirectDataContent of `data` (what the format puts there: see
    /// `codeseal_authenticode::format`) and the file's digest, and the signed attributes (contentType,
    /// messageDigest, SpcSpOpusInfo, SpcStatementType).
    pub fn new(
        algorithm: SignatureAlgorithm,
        data: SpcAttributeTypeAndOptionalValue,
        image_digest: &[u8],
        opus: &OpusInfo,
    ) -> Result<Self> {
        let digest_alg = algorithm.digest;
        if image_digest.len() != digest_alg.output_len()
            && !(crate::appx::is_digest_blob(image_digest, digest_alg)
                && data.value_type == SPC_SIPINFO)
        {
            return Err(Error::InvalidValue(format!(
                "image digest of {} bytes for {digest_alg}",
                image_digest.len()
            )));
        }
        let spc = SpcIndirectDataContent {
            data,
            message_digest: DigestInfo {
                digest_algorithm: digest_alg.algorithm_identifier(),
                digest: OctetString::new(image_digest)?,
            },
        };
        let spc = Any::encode_from(&spc)?;
        // messageDigest covers the content octets of the SpcIndirectDataContent, without its
        // outer SEQUENCE tag and length (PKCS#7 v1.5 style, as Windows computes it).
        let content_digest = digest_alg.digest(spc.value());

        let signed_attrs = signed_attributes(SPC_INDIRECT_DATA, content_digest, opus)?;
        let signed_attrs_der = signed_attrs.to_der()?;
        let digest_to_sign = digest_alg.digest(&signed_attrs_der);
        Ok(Self {
            algorithm,
            content_type: SPC_INDIRECT_DATA,
            spc,
            signed_attrs,
            signed_attrs_der,
            digest_to_sign,
        })
    }

    /// The request for a SignedData over other content: `content` (DER) of type
    /// `content_type`, as for catalogs (the CTL, `szOID_CTL`). The signed attributes are
    /// contentType, messageDigest over the content octets (PKCS#7 style, as for
    /// SpcIndirectDataContent), SpcSpOpusInfo and SpcStatementType.
    pub fn for_content(
        algorithm: SignatureAlgorithm,
        content_type: ObjectIdentifier,
        content: Any,
        opus: &OpusInfo,
    ) -> Result<Self> {
        let digest_alg = algorithm.digest;
        let content_digest = digest_alg.digest(content.value());
        let signed_attrs = signed_attributes(content_type, content_digest, opus)?;
        let signed_attrs_der = signed_attrs.to_der()?;
        let digest_to_sign = digest_alg.digest(&signed_attrs_der);
        Ok(Self {
            algorithm,
            content_type,
            spc: content,
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
            .ok_or_else(|| Error::InvalidValue("no signer certificate".into()))?;
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
                econtent_type: self.content_type,
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

/// contentType, messageDigest, SpcSpOpusInfo and SpcStatementType (individual).
fn signed_attributes(
    content_type: ObjectIdentifier,
    content_digest: Vec<u8>,
    opus: &OpusInfo,
) -> Result<SignedAttributes> {
    let opus_info = SpcSpOpusInfo {
        program_name: opus
            .program_name
            .as_deref()
            .map(|n| BmpString::from_utf8(n).map(SpcString::Unicode))
            .transpose()
            .map_err(|e| Error::InvalidValue(format!("program name: {e}")))?,
        more_info: opus
            .url
            .as_deref()
            .map(|u| Ia5String::new(u).map(SpcLink::Url))
            .transpose()
            .map_err(|e| Error::InvalidValue(format!("URL must be ASCII: {e}")))?,
    };
    let statement = vec![SPC_INDIVIDUAL_SP_KEY_PURPOSE];
    let attrs = vec![
        attr(PKCS9_CONTENT_TYPE, Any::encode_from(&content_type)?)?,
        attr(
            PKCS9_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(content_digest)?)?,
        )?,
        attr(SPC_SP_OPUS_INFO, Any::encode_from(&opus_info)?)?,
        attr(SPC_STATEMENT_TYPE, Any::encode_from(&statement)?)?,
    ];
    Ok(SignedAttributes::try_from(attrs)?)
}

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::MalformedSignature(what.to_string())
}

impl From<asn1::Asn1Error> for Error {
    fn from(e: asn1::Asn1Error) -> Self {
        malformed(e)
    }
}

/// An unsigned attribute of a SignerInfo, its values kept as bytes: they are not covered by
/// the signature, and only the ones a verifier understands (nested signatures, time stamps)
/// are ever decoded.
#[derive(Clone, Debug)]
pub struct UnsignedAttr<'a> {
    /// The attribute type.
    pub oid: ObjectIdentifier,
    /// How many values it has.
    pub count: usize,
    /// The whole attribute (SEQUENCE).
    pub raw: &'a [u8],
    oid_raw: &'a [u8],
    values: asn1::Tlv<'a>,
}

impl<'a> UnsignedAttr<'a> {
    /// The DER of each value.
    pub fn values(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        // Every value was read once when the attribute was parsed.
        self.values.children().filter_map(|v| v.ok()).map(|v| v.raw)
    }

    fn parse(t: asn1::Tlv<'a>) -> Result<Self> {
        let t = t.expect(asn1::tag::SEQUENCE, "an attribute (SEQUENCE)")?;
        let mut c = t.children();
        let oid_tlv = c.required("an attribute type")?;
        let oid = oid_tlv.oid()?;
        let values = c
            .required("attribute values")?
            .expect(asn1::tag::SET, "attribute values (SET)")?;
        if !c.is_empty() {
            return Err(malformed(format!("attribute {oid} has extra fields")));
        }
        let mut count = 0usize;
        for v in values.children() {
            v?;
            count += 1;
        }
        Ok(Self {
            oid,
            count,
            raw: t.raw,
            oid_raw: oid_tlv.raw,
            values,
        })
    }
}

/// The DER of every value of the attributes `oid` among `attrs`.
fn values_of<'a>(attrs: &[UnsignedAttr<'a>], oid: ObjectIdentifier) -> Vec<&'a [u8]> {
    attrs
        .iter()
        .filter(|a| a.oid == oid)
        .flat_map(|a| a.values())
        .collect()
}

/// A SignerInfo read from untrusted bytes in one pass: the fixed fields decoded (after
/// [`asn1::check_sets`]), the signed attributes checked as DER, the unsigned attributes kept
/// as bytes.
#[derive(Clone, Debug)]
pub struct SignerInfoRef<'a> {
    /// Every field but the unsigned attributes (`unsigned_attrs` is always `None`).
    pub info: SignerInfo,
    /// The SignerInfo as received.
    pub raw: &'a [u8],
    /// The original signed-attribute bytes re-tagged as the SET OF the signature covers.
    pub signed_attrs_der: Option<Vec<u8>>,
    /// The unsigned attributes.
    pub unsigned: Vec<UnsignedAttr<'a>>,
}

impl<'a> SignerInfoRef<'a> {
    /// Reads a SignerInfo (or a PKCS#9 countersignature, which has the same shape).
    pub fn parse(t: asn1::Tlv<'a>) -> Result<Self> {
        let t = t.expect(asn1::tag::SEQUENCE, "a SignerInfo (SEQUENCE)")?;
        let mut kept: Vec<&[u8]> = Vec::new();
        let mut signed = None;
        let mut unsigned_tlv = None;
        for f in t.children() {
            let f = f?;
            if f.tag == asn1::tag::context(1) {
                if unsigned_tlv.replace(f).is_some() {
                    return Err(malformed("SignerInfo has two unsignedAttrs fields"));
                }
                continue;
            }
            if f.tag == asn1::tag::context(0) {
                signed = Some(f);
            }
            kept.push(f.raw);
        }
        let signed_attrs_der = signed.map(|s| asn1::wrap(asn1::tag::SET, &[s.value]));
        if let Some(sa) = &signed_attrs_der {
            // The signature covers these bytes: DER, as RFC 5652 requires.
            asn1::check_sets(sa, asn1::SetRule::Der)
                .map_err(|e| malformed(format!("signed attributes: {e}")))?;
        }
        let fixed = asn1::wrap(asn1::tag::SEQUENCE, &kept);
        asn1::check_sets(&fixed, asn1::SetRule::Bounded)?;
        let info =
            SignerInfo::from_der(&fixed).map_err(|e| malformed(format!("SignerInfo: {e}")))?;
        let mut unsigned = Vec::new();
        if let Some(u) = unsigned_tlv {
            for a in u.children() {
                unsigned.push(UnsignedAttr::parse(a?)?);
                if unsigned.len() > MAX_UNSIGNED_ATTRS {
                    return Err(asn1::Asn1Error::TooMany {
                        what: "unsigned attributes",
                        limit: MAX_UNSIGNED_ATTRS,
                    }
                    .into());
                }
            }
        }
        Ok(Self {
            info,
            raw: t.raw,
            signed_attrs_der,
            unsigned,
        })
    }

    /// The DER of every value of the unsigned attribute `oid`.
    pub fn unsigned_values(&self, oid: ObjectIdentifier) -> Vec<&'a [u8]> {
        values_of(&self.unsigned, oid)
    }

    fn unsigned_count(&self, oid: ObjectIdentifier) -> usize {
        self.unsigned
            .iter()
            .filter(|a| a.oid == oid)
            .map(|a| a.count)
            .sum()
    }
}

/// A SignedData read from untrusted bytes in one linear pass, as leniently as Windows reads
/// it outside the signed attributes: certificates in any order and repeated (repeats are
/// dropped and counted), digest algorithms in any order.
#[derive(Clone, Debug)]
pub struct SignedDataRef<'a> {
    /// The version.
    pub version: u64,
    /// digestAlgorithms.
    pub digest_algorithms: Vec<spki::AlgorithmIdentifierOwned>,
    /// encapContentInfo's eContentType.
    pub content_type: ObjectIdentifier,
    /// encapContentInfo's eContent (the element inside `[0] EXPLICIT`).
    pub content: Option<asn1::Tlv<'a>>,
    /// The distinct X.509 certificates, in the order received.
    pub certificates: Vec<Certificate>,
    /// How many certificate entries repeated an earlier one.
    pub repeated_certificates: usize,
    /// Certificate entries that could not be read (other formats, or not X.509 as `x509-cert`
    /// reads it): what was wrong with each.
    pub unreadable_certificates: Vec<String>,
    /// The `crls` field as received.
    pub crls: Option<asn1::Tlv<'a>>,
    /// The SignerInfos.
    pub signer_infos: Vec<SignerInfoRef<'a>>,
}

/// A ContentInfo holding a SignedData, with the elements it was read from.
#[derive(Clone, Debug)]
pub struct ContentInfoRef<'a> {
    /// The ContentInfo element.
    pub content_info: asn1::Tlv<'a>,
    /// The SignedData element.
    pub signed_data_tlv: asn1::Tlv<'a>,
    /// The SignedData.
    pub signed_data: SignedDataRef<'a>,
}

/// Reads the DER ContentInfo(SignedData) at the start of `data` (bytes after it are left to
/// the caller).
pub fn parse_content_info(data: &[u8]) -> Result<ContentInfoRef<'_>> {
    let (ci, _) = asn1::Tlv::read(data, 0)?;
    let ci = ci.expect(asn1::tag::SEQUENCE, "a ContentInfo (SEQUENCE)")?;
    let mut c = ci.children();
    let content_type = c.required("a content type")?.oid()?;
    if content_type != ID_SIGNED_DATA {
        return Err(malformed(format!(
            "content type {content_type} is not SignedData"
        )));
    }
    let explicit = c
        .required("content [0]")?
        .expect(asn1::tag::context(0), "content [0]")?;
    if !c.is_empty() {
        return Err(malformed("ContentInfo has extra fields"));
    }
    let mut inner = explicit.children();
    let sd = inner.required("SignedData")?;
    if !inner.is_empty() {
        return Err(malformed("ContentInfo content has extra elements"));
    }
    Ok(ContentInfoRef {
        content_info: ci,
        signed_data_tlv: sd,
        signed_data: SignedDataRef::parse(sd)?,
    })
}

impl<'a> SignedDataRef<'a> {
    /// Reads a SignedData element.
    pub fn parse(sd: asn1::Tlv<'a>) -> Result<Self> {
        let sd = sd.expect(asn1::tag::SEQUENCE, "a SignedData (SEQUENCE)")?;
        let mut c = sd.children();
        let version = c.required("SignedData version")?.small_uint()?;
        let mut digest_algorithms = Vec::new();
        let algs = c
            .required("digestAlgorithms")?
            .expect(asn1::tag::SET, "digestAlgorithms (SET)")?;
        for a in algs.children() {
            let a = a?;
            if digest_algorithms.len() >= MAX_DIGEST_ALGORITHMS {
                return Err(asn1::Asn1Error::TooMany {
                    what: "digest algorithms",
                    limit: MAX_DIGEST_ALGORITHMS,
                }
                .into());
            }
            asn1::check_sets(a.raw, asn1::SetRule::Bounded)?;
            digest_algorithms.push(
                spki::AlgorithmIdentifierOwned::from_der(a.raw)
                    .map_err(|e| malformed(format!("digest algorithm: {e}")))?,
            );
        }
        let encap = c
            .required("encapContentInfo")?
            .expect(asn1::tag::SEQUENCE, "encapContentInfo (SEQUENCE)")?;
        let mut e = encap.children();
        let content_type = e.required("eContentType")?.oid()?;
        let content = match e.optional(asn1::tag::context(0))? {
            Some(x) => {
                let mut inner = x.children();
                let v = inner.required("eContent")?;
                if !inner.is_empty() {
                    return Err(malformed("eContent [0] has extra elements"));
                }
                Some(v)
            }
            None => None,
        };
        if !e.is_empty() {
            return Err(malformed("encapContentInfo has extra fields"));
        }
        let mut certificates: Vec<Certificate> = Vec::new();
        let mut seen: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
        let mut repeated_certificates = 0;
        let mut unreadable_certificates = Vec::new();
        if let Some(set) = c.optional(asn1::tag::context(0))? {
            for (n, entry) in set.children().enumerate() {
                let entry = entry?;
                if n >= MAX_CERTIFICATE_ENTRIES {
                    return Err(asn1::Asn1Error::TooMany {
                        what: "certificate entries",
                        limit: MAX_CERTIFICATE_ENTRIES,
                    }
                    .into());
                }
                if !seen.insert(entry.raw) {
                    repeated_certificates += 1;
                    continue;
                }
                if entry.tag != asn1::tag::SEQUENCE {
                    unreadable_certificates.push(format!(
                        "certificate entry {n} is not an X.509 certificate (tag {:#04x})",
                        entry.tag
                    ));
                    continue;
                }
                if certificates.len() >= MAX_CERTIFICATES {
                    return Err(asn1::Asn1Error::TooMany {
                        what: "distinct certificates",
                        limit: MAX_CERTIFICATES,
                    }
                    .into());
                }
                match asn1::check_sets(entry.raw, asn1::SetRule::Bounded)
                    .map_err(|e| e.to_string())
                    .and_then(|()| Certificate::from_der(entry.raw).map_err(|e| e.to_string()))
                {
                    Ok(cert) => certificates.push(cert),
                    Err(e) => unreadable_certificates.push(format!("certificate entry {n}: {e}")),
                }
            }
        }
        let crls = c.optional(asn1::tag::context(1))?;
        let infos = c
            .required("signerInfos")?
            .expect(asn1::tag::SET, "signerInfos (SET)")?;
        if !c.is_empty() {
            return Err(malformed("SignedData has fields after signerInfos"));
        }
        let mut signer_infos = Vec::new();
        for i in infos.children() {
            if signer_infos.len() >= MAX_SIGNER_INFOS {
                return Err(asn1::Asn1Error::TooMany {
                    what: "SignerInfos",
                    limit: MAX_SIGNER_INFOS,
                }
                .into());
            }
            signer_infos.push(SignerInfoRef::parse(i?)?);
        }
        Ok(Self {
            version,
            digest_algorithms,
            content_type,
            content,
            certificates,
            repeated_certificates,
            unreadable_certificates,
            crls,
            signer_infos,
        })
    }
}

/// One parsed Authenticode signature (a ContentInfo with SignedData), borrowed from the bytes
/// it was read from. Parsing is one linear pass; nested signatures and time stamps are kept
/// as bytes until asked for.
#[derive(Clone, Debug)]
pub struct ParsedSignature<'a> {
    /// The DER ContentInfo (without padding after it).
    pub der: &'a [u8],
    /// The SpcIndirectDataContent. For a catalog's signature (content type `szOID_CTL`) it
    /// is derived, not read: data type `szOID_CTL` without a value, and as digest the hash
    /// of the CTL's content octets (what the signature's messageDigest covers).
    pub spc: SpcIndirectDataContent,
    /// The original content octets of the SpcIndirectDataContent (what messageDigest covers).
    pub spc_content: &'a [u8],
    /// The digest algorithm (the same in SignedData, SignerInfo and SpcIndirectData).
    pub digest_algorithm: DigestAlgorithm,
    /// The only SignerInfo's fields (its unsigned attributes are in `unsigned`).
    pub signer_info: SignerInfo,
    /// The unsigned attributes.
    pub unsigned: Vec<UnsignedAttr<'a>>,
    /// The distinct embedded X.509 certificates.
    pub certificates: Vec<Certificate>,
    /// The `crls` field of the SignedData as received.
    pub crls: Option<&'a [u8]>,
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

/// Whether the indirect data is an APPX SIP's and its digest an APPX digest blob (the one
/// case where the "image digest" is not one hash).
fn is_appx_blob(spc: &SpcIndirectDataContent, alg: DigestAlgorithm) -> bool {
    spc.data.value_type == SPC_SIPINFO
        && spc
            .data
            .value
            .as_ref()
            .and_then(crate::spc::sip_guid)
            .is_some_and(|g| g == crate::appx::SIP_APPX || g == crate::appx::SIP_APPX_BUNDLE)
        && crate::appx::is_digest_blob(spc.message_digest.digest.as_bytes(), alg)
}

impl<'a> ParsedSignature<'a> {
    /// Parses the data of a WIN_CERTIFICATE entry: a DER ContentInfo, possibly followed by
    /// padding. Checks the Authenticode shape: content type SpcIndirectData, exactly one
    /// SignerInfo, one digest algorithm used consistently, digest length equal to the hash
    /// length, signed attributes with contentType and messageDigest present; at most
    /// [`MAX_NESTED`] nested signatures and [`MAX_TIMESTAMPS`] time stamps.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        let mut notes = Vec::new();
        let parsed = parse_content_info(data)?;
        let der = parsed.content_info.raw;
        let der_len = der.len();
        let trailing = data.get(der_len..).unwrap_or_default();
        let sd = parsed.signed_data;
        if sd.version != 1 {
            notes.push(format!(
                "SignedData version {}; Authenticode uses 1",
                sd.version
            ));
        }
        // A catalog's signature encapsulates its CTL instead of an SpcIndirectDataContent;
        // its "image digest" is then the hash of the CTL's content octets (see `spc`).
        let catalog = sd.content_type == MS_CTL;
        if sd.content_type != SPC_INDIRECT_DATA && !catalog {
            return Err(malformed(format!(
                "content type {} is not SpcIndirectDataContent (nor a catalog's CTL)",
                sd.content_type
            )));
        }
        let econtent = sd.content.ok_or_else(|| {
            malformed(if catalog {
                "no CTL"
            } else {
                "no SpcIndirectDataContent"
            })
        })?;
        let (spc, alg_oid, digest_algorithm) = if catalog {
            let first = sd
                .signer_infos
                .first()
                .ok_or_else(|| malformed("0 SignerInfos; Authenticode has exactly one"))?;
            let alg_oid = first.info.digest_alg.oid;
            let digest_algorithm = DigestAlgorithm::from_oid(&alg_oid)
                .ok_or_else(|| malformed(format!("unsupported digest algorithm {alg_oid}")))?;
            let spc = SpcIndirectDataContent {
                data: SpcAttributeTypeAndOptionalValue {
                    value_type: MS_CTL,
                    value: None,
                },
                message_digest: DigestInfo {
                    digest_algorithm: digest_algorithm.algorithm_identifier(),
                    digest: OctetString::new(digest_algorithm.digest(econtent.value))
                        .map_err(malformed)?,
                },
            };
            (spc, alg_oid, digest_algorithm)
        } else {
            asn1::check_sets(econtent.raw, asn1::SetRule::Bounded)?;
            let spc = SpcIndirectDataContent::from_der(econtent.raw)
                .map_err(|e| malformed(format!("SpcIndirectDataContent: {e}")))?;
            let alg_oid = spc.message_digest.digest_algorithm.oid;
            let digest_algorithm = DigestAlgorithm::from_oid(&alg_oid)
                .ok_or_else(|| malformed(format!("unsupported digest algorithm {alg_oid}")))?;
            let image_digest_len = spc.message_digest.digest.as_bytes().len();
            if image_digest_len != digest_algorithm.output_len()
                && !is_appx_blob(&spc, digest_algorithm)
            {
                return Err(malformed(format!(
                    "the image digest is {image_digest_len} bytes; {digest_algorithm} gives {}",
                    digest_algorithm.output_len()
                )));
            }
            (spc, alg_oid, digest_algorithm)
        };
        let count = sd.signer_infos.len();
        let mut infos = sd.signer_infos.into_iter();
        let (Some(signer), None) = (infos.next(), infos.next()) else {
            return Err(malformed(format!(
                "{count} SignerInfos; Authenticode has exactly one"
            )));
        };
        if signer.info.digest_alg.oid != alg_oid {
            return Err(malformed(format!(
                "the SignerInfo digest algorithm {} differs from the image digest's {alg_oid}",
                signer.info.digest_alg.oid
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
        if sd.repeated_certificates > 0 {
            notes.push(format!(
                "the certificate set repeats {} certificate(s)",
                sd.repeated_certificates
            ));
        }
        notes.extend(sd.unreadable_certificates);
        let nested = signer.unsigned_count(SPC_NESTED_SIGNATURE);
        if nested > MAX_NESTED {
            return Err(asn1::Asn1Error::TooMany {
                what: "nested signatures",
                limit: MAX_NESTED,
            }
            .into());
        }
        let stamps = signer.unsigned_count(SPC_RFC3161_TIMESTAMP)
            + signer.unsigned_count(PKCS9_COUNTERSIGNATURE);
        if stamps > MAX_TIMESTAMPS {
            return Err(asn1::Asn1Error::TooMany {
                what: "time stamps",
                limit: MAX_TIMESTAMPS,
            }
            .into());
        }
        let attrs = signer
            .info
            .signed_attrs
            .as_ref()
            .ok_or_else(|| malformed("the SignerInfo has no signed attributes"))?;
        let ct = single_attr(attrs, PKCS9_CONTENT_TYPE)?
            .ok_or_else(|| malformed("no contentType signed attribute"))?;
        let ct: ObjectIdentifier = ct.decode_as().map_err(malformed)?;
        if ct != sd.content_type {
            return Err(malformed(format!(
                "contentType attribute is {ct}, not {}",
                if catalog {
                    "szOID_CTL"
                } else {
                    "SpcIndirectData"
                }
            )));
        }
        single_attr(attrs, PKCS9_MESSAGE_DIGEST)?
            .ok_or_else(|| malformed("no messageDigest signed attribute"))?;
        let signed_attrs_der = signer
            .signed_attrs_der
            .ok_or_else(|| malformed("signed attributes not found"))?;
        Ok(Self {
            der,
            spc,
            spc_content: econtent.value,
            digest_algorithm,
            signer_info: signer.info,
            unsigned: signer.unsigned,
            certificates: sd.certificates,
            crls: sd.crls.map(|c| c.raw),
            signed_attrs_der,
            der_len,
            trailing_len: trailing.len(),
            trailing_nonzero: trailing.iter().any(|&b| b != 0),
            notes,
        })
    }

    /// The nested signatures (unsigned attribute 1.3.6.1.4.1.311.2.4.1) as DER ContentInfos.
    pub fn nested_der(&self) -> Vec<&'a [u8]> {
        self.unsigned_values(SPC_NESTED_SIGNATURE)
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

    /// The embedded X.509 certificates (each once).
    pub fn certificates(&self) -> impl Iterator<Item = &Certificate> {
        self.certificates.iter()
    }

    /// The certificate the SignerInfo names (by issuer and serial, or subject key id).
    pub fn signer_certificate(&self) -> Option<&Certificate> {
        find_signer(&self.signer_info, self.certificates())
    }

    /// The DER of every value of the unsigned attribute `oid`.
    pub fn unsigned_values(&self, oid: ObjectIdentifier) -> Vec<&'a [u8]> {
        values_of(&self.unsigned, oid)
    }
}
