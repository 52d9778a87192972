//! Certificate trust lists (CTL): the content of Windows catalog files (`.cat`) and of the
//! root program list `authroot.stl`.
//!
//! A catalog is a PKCS#7 SignedData whose encapsulated content (type `szOID_CTL`) is a
//! [`CertificateTrustList`]; each trusted subject is one member file, identified by its hash.
//!
//! ```text
//! CertificateTrustList ::= SEQUENCE {
//!     version           INTEGER DEFAULT v1(0),
//!     subjectUsage      SEQUENCE OF OBJECT IDENTIFIER,    -- szOID_CATALOG_LIST for catalogs
//!     listIdentifier    OCTET STRING OPTIONAL,
//!     sequenceNumber    INTEGER OPTIONAL,
//!     thisUpdate        Time,
//!     nextUpdate        Time OPTIONAL,
//!     subjectAlgorithm  AlgorithmIdentifier,              -- szOID_CATALOG_LIST_MEMBER(2)
//!     trustedSubjects   SEQUENCE OF TrustedSubject OPTIONAL,
//!     ctlExtensions     [0] EXPLICIT Extensions OPTIONAL }
//! TrustedSubject ::= SEQUENCE {
//!     subjectIdentifier OCTET STRING,
//!     subjectAttributes SET OF Attribute OPTIONAL }
//! ```
//!
//! Catalog members (as makecat and `New-FileCatalog` write them): the identifier is the
//! member's hash as upper-case hexadecimal text in UTF-16LE with a terminating NUL (the
//! "tag"); the attributes are `CAT_NAMEVALUE` (the `File` name), `CAT_MEMBERINFO` (the subject
//! interface package GUID) and `SPC_INDIRECT_DATA` (an `SpcIndirectDataContent` carrying the
//! digest: `SpcPeImageData` for PE members, `SPC_CAB_DATA` with a link for flat-hashed files).
//!
//! Parsing is `der` decoding of the input once (linear time); every element allocated is one
//! present in the input. Attributes are kept as DER so that unknown ones (as in
//! `authroot.stl`) survive.
use codeseal_signer::DigestAlgorithm;
use const_oid::ObjectIdentifier;
use der::{
    asn1::{Any, BitString, BmpString, Int, OctetString, SetOfVec, UtcTime},
    Decode, Sequence, Tag, Tagged,
};
use spki::AlgorithmIdentifierOwned;
use x509_cert::{ext::Extensions, time::Time};

use crate::{
    oid,
    spc::{
        DigestInfo, SpcAttributeTypeAndOptionalValue, SpcIndirectDataContent, SpcLink,
        SpcPeImageData, SpcString, OBSOLETE_LINK,
    },
    Error, Result,
};

/// The subject interface package of PE files (member info GUID).
pub const SIP_PE: &str = "{C689AAB8-8E78-11D0-8C47-00C04FC295EE}";
/// The flat-file subject interface package (member info GUID).
pub const SIP_FLAT: &str = "{DE351A42-8E59-11D0-8C47-00C04FC295EE}";
/// The version written in `CAT_MEMBERINFO`.
pub const MEMBER_INFO_VERSION: u32 = 512;
/// The flags of a member's `File` name/value (`CRYPTCAT_ATTR_NAMEASCII |
/// CRYPTCAT_ATTR_DATAASCII | CRYPTCAT_ATTR_AUTHENTICATED`, as makecat writes them).
pub const FILE_NAME_FLAGS: u32 = 0x1001_0001;

/// The flags of a catalog-level name/value (`CRYPTCAT_ATTR_NAMEASCII |
/// CRYPTCAT_ATTR_DATAASCII | CRYPTCAT_ATTR_AUTHENTICATED`, as makecat's `CATATTR1=0x10010001:`
/// lines give them).
pub const CATALOG_ATTR_FLAGS: u32 = 0x1001_0001;

/// A catalog-level attribute: a `CAT_NAMEVALUE` in the CTL's `ctlExtensions` (makecat's
/// `CATATTR` lines, e.g. `OSAttr` = `2:6.1,2:10.0` or `HWID1` for drivers). Written as an
/// Extension whose `extnID` is `CAT_NAMEVALUE` and whose `extnValue` holds the DER of
/// `CAT_NAMEVALUE ::= SEQUENCE { name BMPString, flags INTEGER, value OCTET STRING }`, the
/// value being UTF-16LE text with a terminating NUL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogAttribute {
    /// The name.
    pub name: String,
    /// `CRYPTCAT_ATTR_*` flags.
    pub flags: u32,
    /// The value text.
    pub value: String,
}

impl CatalogAttribute {
    /// A text attribute with makecat's usual flags ([`CATALOG_ATTR_FLAGS`]).
    pub fn text(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            flags: CATALOG_ATTR_FLAGS,
            value: value.into(),
        }
    }
}

/// The CTL (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct CertificateTrustList {
    /// `version`, absent for v1.
    #[asn1(optional = "true")]
    pub version: Option<u32>,
    /// `subjectUsage`.
    pub subject_usage: Vec<ObjectIdentifier>,
    /// `listIdentifier`.
    #[asn1(optional = "true")]
    pub list_identifier: Option<OctetString>,
    /// `sequenceNumber`.
    #[asn1(optional = "true")]
    pub sequence_number: Option<Int>,
    /// `thisUpdate`.
    pub this_update: Time,
    /// `nextUpdate`.
    #[asn1(optional = "true")]
    pub next_update: Option<Time>,
    /// `subjectAlgorithm`.
    pub subject_algorithm: AlgorithmIdentifierOwned,
    /// `trustedSubjects`.
    #[asn1(optional = "true")]
    pub trusted_subjects: Option<Vec<TrustedSubject>>,
    /// `ctlExtensions` (catalog-level attributes).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub extensions: Option<Extensions>,
}

/// One `TrustedSubject`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct TrustedSubject {
    /// `subjectIdentifier`.
    pub identifier: OctetString,
    /// `subjectAttributes`: a SET OF Attribute, kept as DER (order as in the input).
    #[asn1(optional = "true")]
    pub attributes: Option<Any>,
}

/// One attribute of a trusted subject: its type and the DER of each value.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct SubjectAttribute {
    /// The attribute type.
    pub attr_type: ObjectIdentifier,
    /// `SET OF` values, kept as DER.
    pub values: Any,
}

/// `CAT_NAMEVALUE`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct CatNameValue {
    /// The name (`File`, `OSAttr`, ...).
    pub name: BmpString,
    /// `CRYPTCAT_ATTR_*` flags.
    pub flags: u32,
    /// The value: UTF-16LE text with a terminating NUL.
    pub value: OctetString,
}

/// `CAT_MEMBERINFO`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct CatMemberInfo {
    /// The subject interface package GUID, `{...}` text.
    pub sip_guid: BmpString,
    /// Its version (512).
    pub version: u32,
}

/// The elements of a SET OF (or SEQUENCE OF) as DER, in input order.
fn elements(set: &Any, what: &str) -> Result<Vec<Any>> {
    if set.tag() != Tag::Set {
        return Err(Error::MalformedSignature(format!(
            "{what}: a {} instead of a SET",
            set.tag()
        )));
    }
    let mut reader = der::SliceReader::new(set.value())?;
    let mut out = Vec::new();
    while !der::Reader::is_finished(&reader) {
        out.push(der::Reader::decode::<Any>(&mut reader).map_err(|e| bad(what, e))?);
    }
    Ok(out)
}

fn bad(what: &str, e: der::Error) -> Error {
    Error::MalformedSignature(format!("{what}: {e}"))
}

impl TrustedSubject {
    /// The attributes, in input order.
    pub fn attributes(&self) -> Result<Vec<SubjectAttribute>> {
        let Some(set) = &self.attributes else {
            return Ok(Vec::new());
        };
        elements(set, "CTL subject attributes")?
            .iter()
            .map(|a| {
                a.decode_as::<SubjectAttribute>()
                    .map_err(|e| bad("CTL subject attribute", e))
            })
            .collect()
    }

    /// The values (DER) of the first attribute of type `oid`.
    pub fn attribute_values(&self, attr: &ObjectIdentifier) -> Result<Vec<Any>> {
        for a in self.attributes()? {
            if &a.attr_type == attr {
                return elements(&a.values, "CTL attribute values");
            }
        }
        Ok(Vec::new())
    }
}

/// How a member was hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberKind {
    /// A PE file: its Authenticode digest (`SpcPeImageData`).
    Pe,
    /// Any other file: the hash of its bytes.
    Flat,
}

/// A catalog member, as read from or written into a CTL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogMember {
    /// The identifier (tag) text: upper-case hex of the digest for members codeseal writes.
    pub tag: String,
    /// The digest algorithm of `digest`.
    pub digest_algorithm: DigestAlgorithm,
    /// The digest (from `SPC_INDIRECT_DATA`).
    pub digest: Vec<u8>,
    /// PE or flat.
    pub kind: MemberKind,
    /// The `File` name/value, if any.
    pub file_name: Option<String>,
}

/// Upper-case hex.
pub fn hex_upper(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02X}");
    }
    s
}

fn utf16z(text: &str) -> Vec<u8> {
    text.encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// A subject identifier as text: UTF-16LE (a trailing NUL dropped) when it decodes as
/// printable text, otherwise the upper-case hex of its bytes.
pub fn identifier_text(id: &[u8]) -> String {
    utf16le_text(id)
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or_else(|| hex_upper(id))
}

/// A name/value's value as text: UTF-16LE (a trailing NUL dropped) without control
/// characters, otherwise the upper-case hex of its bytes.
pub fn value_text(value: &[u8]) -> String {
    utf16le_text(value)
        .filter(|s| !s.chars().any(char::is_control))
        .unwrap_or_else(|| hex_upper(value))
}

/// `bytes` decoded as UTF-16LE with one trailing NUL dropped; `None` for an odd length or
/// unpaired surrogates.
fn utf16le_text(bytes: &[u8]) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .filter_map(|c| <[u8; 2]>::try_from(c).ok())
        .map(u16::from_le_bytes)
        .collect();
    let trimmed = match units.split_last() {
        Some((0, rest)) => rest,
        _ => units.as_slice(),
    };
    String::from_utf16(trimmed).ok()
}

impl CertificateTrustList {
    /// Parses the DER of a CTL (the encapsulated content of a catalog).
    pub fn from_der_bytes(der: &[u8]) -> Result<Self> {
        Self::from_der(der).map_err(|e| bad("certificate trust list", e))
    }

    /// Whether the subject usage names a catalog.
    pub fn is_catalog(&self) -> bool {
        self.subject_usage.contains(&oid::CATALOG_LIST)
    }

    /// The trusted subjects (none when absent).
    pub fn subjects(&self) -> &[TrustedSubject] {
        self.trusted_subjects.as_deref().unwrap_or(&[])
    }

    /// The catalog members: subjects with an `SPC_INDIRECT_DATA` digest in a known algorithm.
    /// Subjects without one (certificate lists) are skipped; a malformed one is an error.
    pub fn members(&self) -> Result<Vec<CatalogMember>> {
        let mut out = Vec::new();
        for s in self.subjects() {
            let Some(spc) = s
                .attribute_values(&oid::SPC_INDIRECT_DATA)?
                .into_iter()
                .next()
            else {
                continue;
            };
            let spc: SpcIndirectDataContent = spc
                .decode_as()
                .map_err(|e| bad("catalog member indirect data", e))?;
            let alg = spc.message_digest.digest_algorithm.oid;
            let digest_algorithm = DigestAlgorithm::from_oid(&alg).ok_or_else(|| {
                Error::MalformedSignature(format!("catalog member hashed with unknown {alg}"))
            })?;
            let digest = spc.message_digest.digest.as_bytes().to_vec();
            if digest.len() != digest_algorithm.output_len() {
                return Err(Error::MalformedSignature(format!(
                    "catalog member digest of {} bytes for {digest_algorithm}",
                    digest.len()
                )));
            }
            let kind = if spc.data.value_type == oid::SPC_PE_IMAGE_DATA {
                MemberKind::Pe
            } else {
                MemberKind::Flat
            };
            let mut file_name = None;
            for nv in s.attribute_values(&oid::CAT_NAMEVALUE)? {
                let nv: CatNameValue = nv
                    .decode_as()
                    .map_err(|e| bad("catalog member name/value", e))?;
                if nv.name.to_string().eq_ignore_ascii_case("File") {
                    file_name = Some(identifier_text(nv.value.as_bytes()));
                }
            }
            out.push(CatalogMember {
                tag: identifier_text(s.identifier.as_bytes()),
                digest_algorithm,
                digest,
                kind,
                file_name,
            });
        }
        Ok(out)
    }

    /// The catalog-level attributes (`CAT_NAMEVALUE` entries of `ctlExtensions`), in input
    /// order; other extensions are skipped.
    pub fn catalog_attributes(&self) -> Result<Vec<CatalogAttribute>> {
        let Some(exts) = &self.extensions else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for e in exts.iter().filter(|e| e.extn_id == oid::CAT_NAMEVALUE) {
            let nv = CatNameValue::from_der(e.extn_value.as_bytes())
                .map_err(|e| bad("catalog attribute name/value", e))?;
            out.push(CatalogAttribute {
                name: nv.name.to_string(),
                flags: nv.flags,
                value: value_text(nv.value.as_bytes()),
            });
        }
        Ok(out)
    }

    /// This CTL with `attrs` as its catalog-level attributes (replacing any; none: no
    /// `ctlExtensions`). A name must be non-empty text in the Basic Multilingual Plane.
    pub fn with_catalog_attributes(mut self, attrs: &[CatalogAttribute]) -> Result<Self> {
        if attrs.is_empty() {
            self.extensions = None;
            return Ok(self);
        }
        let mut exts = Vec::with_capacity(attrs.len());
        for a in attrs {
            if a.name.is_empty() {
                return Err(Error::InvalidValue(
                    "a catalog attribute needs a name".into(),
                ));
            }
            let nv = CatNameValue {
                name: BmpString::from_utf8(&a.name)?,
                flags: a.flags,
                value: OctetString::new(utf16z(&a.value))?,
            };
            exts.push(x509_cert::ext::Extension {
                extn_id: oid::CAT_NAMEVALUE,
                critical: false,
                extn_value: OctetString::new(der::Encode::to_der(&nv)?)?,
            });
        }
        self.extensions = Some(exts);
        Ok(self)
    }

    /// The member whose digest is `digest` (compared in constant structure, by bytes).
    pub fn find_member(&self, digest: &[u8]) -> Result<Option<CatalogMember>> {
        Ok(self.members()?.into_iter().find(|m| m.digest == digest))
    }

    /// Builds a catalog CTL for `members`. `list_identifier` is 16 random bytes (a GUID),
    /// `this_update` the creation time. The catalog is version 2 (`CATALOG_LIST_MEMBER2`)
    /// unless every member is hashed with SHA-1 (version 1).
    pub fn catalog(
        members: &[CatalogMember],
        list_identifier: [u8; 16],
        this_update: std::time::SystemTime,
    ) -> Result<Self> {
        let v1 = !members.is_empty()
            && members
                .iter()
                .all(|m| m.digest_algorithm == DigestAlgorithm::Sha1);
        let member_oid = if v1 {
            oid::CATALOG_LIST_MEMBER
        } else {
            oid::CATALOG_LIST_MEMBER2
        };
        let time = der::DateTime::from_system_time(this_update)?;
        let mut subjects = Vec::with_capacity(members.len());
        for m in members {
            subjects.push(member_subject(m)?);
        }
        Ok(Self {
            version: None,
            subject_usage: vec![oid::CATALOG_LIST],
            list_identifier: Some(OctetString::new(list_identifier.to_vec())?),
            sequence_number: None,
            this_update: Time::UtcTime(UtcTime::from_date_time(time)?),
            next_update: None,
            subject_algorithm: AlgorithmIdentifierOwned {
                oid: member_oid,
                parameters: Some(Any::null()),
            },
            trusted_subjects: Some(subjects),
            extensions: None,
        })
    }
}

fn set_of_one(value: Any) -> Result<Any> {
    let set = SetOfVec::try_from(vec![value])?;
    Ok(Any::encode_from(&set)?)
}

fn attribute(attr_type: ObjectIdentifier, value: Any) -> Result<Any> {
    Ok(Any::encode_from(&SubjectAttribute {
        attr_type,
        values: set_of_one(value)?,
    })?)
}

fn member_subject(m: &CatalogMember) -> Result<TrustedSubject> {
    if m.digest.len() != m.digest_algorithm.output_len() {
        return Err(Error::InvalidValue(format!(
            "catalog member digest of {} bytes for {}",
            m.digest.len(),
            m.digest_algorithm
        )));
    }
    let obsolete = SpcLink::File(SpcString::Unicode(BmpString::from_utf8(OBSOLETE_LINK)?));
    let data = match m.kind {
        MemberKind::Pe => SpcAttributeTypeAndOptionalValue {
            value_type: oid::SPC_PE_IMAGE_DATA,
            value: Some(Any::encode_from(&SpcPeImageData {
                flags: Some(BitString::new(0, Vec::new())?),
                file: Some(obsolete),
            })?),
        },
        MemberKind::Flat => SpcAttributeTypeAndOptionalValue {
            value_type: oid::SPC_CAB_DATA,
            value: Some(Any::encode_from(&obsolete)?),
        },
    };
    let spc = SpcIndirectDataContent {
        data,
        message_digest: DigestInfo {
            digest_algorithm: m.digest_algorithm.algorithm_identifier(),
            digest: OctetString::new(m.digest.clone())?,
        },
    };
    let sip = match m.kind {
        MemberKind::Pe => SIP_PE,
        MemberKind::Flat => SIP_FLAT,
    };
    let mut attrs = Vec::new();
    if let Some(name) = &m.file_name {
        attrs.push(attribute(
            oid::CAT_NAMEVALUE,
            Any::encode_from(&CatNameValue {
                name: BmpString::from_utf8("File")?,
                flags: FILE_NAME_FLAGS,
                value: OctetString::new(utf16z(name))?,
            })?,
        )?);
    }
    attrs.push(attribute(
        oid::CAT_MEMBERINFO,
        Any::encode_from(&CatMemberInfo {
            sip_guid: BmpString::from_utf8(sip)?,
            version: MEMBER_INFO_VERSION,
        })?,
    )?);
    attrs.push(attribute(oid::SPC_INDIRECT_DATA, Any::encode_from(&spc)?)?);
    // DER: a SET OF sorted by encoding.
    let set = SetOfVec::try_from(attrs)?;
    Ok(TrustedSubject {
        identifier: OctetString::new(utf16z(&m.tag))?,
        attributes: Some(Any::encode_from(&set)?),
    })
}

impl CatalogMember {
    /// A member with the standard tag (upper-case hex of the digest).
    pub fn new(
        kind: MemberKind,
        digest_algorithm: DigestAlgorithm,
        digest: Vec<u8>,
        file_name: Option<String>,
    ) -> Self {
        Self {
            tag: hex_upper(&digest),
            digest_algorithm,
            digest,
            kind,
            file_name,
        }
    }
}

/// A catalog (or other CTL) file read from bytes: the SignedData and the CTL inside it.
#[derive(Clone, Debug)]
pub struct ParsedCatalog<'a> {
    /// The ContentInfo and SignedData.
    pub content_info: crate::pkcs7::ContentInfoRef<'a>,
    /// The encapsulated CTL's DER (the element inside `eContent`), as in the file.
    pub ctl_der: &'a [u8],
    /// The CTL.
    pub ctl: CertificateTrustList,
}

/// Reads a catalog file (DER ContentInfo holding a SignedData whose content type is
/// `szOID_CTL`). The CTL may be written directly in `eContent` (PKCS#7 style, as makecat
/// does) or wrapped in an OCTET STRING (CMS style).
pub fn parse_catalog(data: &[u8]) -> Result<ParsedCatalog<'_>> {
    let content_info = crate::pkcs7::parse_content_info(data)?;
    let sd = &content_info.signed_data;
    if sd.content_type != oid::MS_CTL {
        return Err(Error::MalformedSignature(format!(
            "content type {} is not a certificate trust list (szOID_CTL)",
            sd.content_type
        )));
    }
    let content = sd
        .content
        .ok_or_else(|| Error::MalformedSignature("the catalog has no CTL content".into()))?;
    let ctl_der = if content.tag == crate::asn1::tag::OCTET_STRING {
        content.value
    } else {
        content.raw
    };
    let ctl = CertificateTrustList::from_der_bytes(ctl_der)?;
    Ok(ParsedCatalog {
        content_info,
        ctl_der,
        ctl,
    })
}
