//! Microsoft's Authenticode ASN.1 types ("SPC" = Software Publishing Certificate), as typed
//! `der` structures.
//!
//! ```text
//! SpcIndirectDataContent ::= SEQUENCE {
//!     data                    SpcAttributeTypeAndOptionalValue,
//!     messageDigest           DigestInfo }
//! SpcAttributeTypeAndOptionalValue ::= SEQUENCE {
//!     type                    ObjectID,
//!     value                   [0] EXPLICIT ANY OPTIONAL }   -- written without the [0]
//! DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }
//! SpcPeImageData ::= SEQUENCE {
//!     flags                   SpcPeImageFlags DEFAULT { includeResources },
//!     file                    [0] EXPLICIT SpcLink OPTIONAL }
//! SpcLink ::= CHOICE {
//!     url                     [0] IMPLICIT IA5STRING,
//!     moniker                 [1] IMPLICIT SpcSerializedObject,
//!     file                    [2] EXPLICIT SpcString }
//! SpcString ::= CHOICE { unicode [0] IMPLICIT BMPSTRING, ascii [1] IMPLICIT IA5STRING }
//! SpcSerializedObject ::= SEQUENCE { classId OCTET STRING (SIZE(16)), serializedData OCTET STRING }
//! SpcSpOpusInfo ::= SEQUENCE {
//!     programName             [0] EXPLICIT SpcString OPTIONAL,
//!     moreInfo                [1] EXPLICIT SpcLink OPTIONAL }
//! ```
use const_oid::ObjectIdentifier;
use der::{
    asn1::{Any, BitString, BmpString, Ia5String, OctetString},
    Choice, Sequence, Tag, TagNumber, Tagged, ValueOrd,
};
use spki::AlgorithmIdentifierOwned;

/// The "file" link Windows and osslsigncode put in SpcPeImageData.
pub const OBSOLETE_LINK: &str = "<<<Obsolete>>>";

/// `SpcIndirectDataContent`: what an Authenticode signature signs.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct SpcIndirectDataContent {
    /// The kind of file and its attributes (SpcPeImageData for PE).
    pub data: SpcAttributeTypeAndOptionalValue,
    /// The file's Authenticode digest.
    pub message_digest: DigestInfo,
}

/// `SpcAttributeTypeAndOptionalValue`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence, ValueOrd)]
pub struct SpcAttributeTypeAndOptionalValue {
    /// SPC_PE_IMAGE_DATA_OBJID for PE files.
    pub value_type: ObjectIdentifier,
    /// SpcPeImageData for PE files.
    #[asn1(optional = "true")]
    pub value: Option<Any>,
}

/// PKCS#1 `DigestInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct DigestInfo {
    /// The hash algorithm.
    pub digest_algorithm: AlgorithmIdentifierOwned,
    /// The digest.
    pub digest: OctetString,
}

/// `SpcPeImageData`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct SpcPeImageData {
    /// SpcPeImageFlags; writers put an empty BIT STRING here.
    #[asn1(optional = "true")]
    pub flags: Option<BitString>,
    /// A link; `"<<<Obsolete>>>"` or, with page hashes, a serialized object.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub file: Option<SpcLink>,
}

/// `SpcLink`.
#[derive(Clone, Debug, PartialEq, Eq, Choice)]
pub enum SpcLink {
    /// A URL.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", type = "IA5String")]
    Url(Ia5String),
    /// A serialized object (page hashes).
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Moniker(SpcSerializedObject),
    /// A file name.
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    File(SpcString),
}

/// `SpcString` (a CHOICE of `[0] IMPLICIT BMPString` and `[1] IMPLICIT IA5String`).
///
/// Implemented by hand: `der`'s derive has no BMPString variant type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpcString {
    /// UTF-16 (BMPString).
    Unicode(BmpString),
    /// ASCII.
    Ascii(Ia5String),
}

const SPC_STRING_UNICODE: Tag = Tag::ContextSpecific {
    constructed: false,
    number: TagNumber::N0,
};
const SPC_STRING_ASCII: Tag = Tag::ContextSpecific {
    constructed: false,
    number: TagNumber::N1,
};

impl<'a> der::Choice<'a> for SpcString {
    fn can_decode(tag: Tag) -> bool {
        tag == SPC_STRING_UNICODE || tag == SPC_STRING_ASCII
    }
}

impl<'a> der::Decode<'a> for SpcString {
    fn decode<R: der::Reader<'a>>(reader: &mut R) -> der::Result<Self> {
        let any = der::asn1::AnyRef::decode(reader)?;
        match any.tag() {
            SPC_STRING_UNICODE => Ok(Self::Unicode(BmpString::from_ucs2(any.value())?)),
            SPC_STRING_ASCII => Ok(Self::Ascii(Ia5String::new(any.value())?)),
            other => Err(other.unexpected_error(None)),
        }
    }
}

impl der::EncodeValue for SpcString {
    fn value_len(&self) -> der::Result<der::Length> {
        match self {
            Self::Unicode(s) => der::Length::try_from(s.as_bytes().len()),
            Self::Ascii(s) => der::Length::try_from(s.as_bytes().len()),
        }
    }

    fn encode_value(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        match self {
            Self::Unicode(s) => writer.write(s.as_bytes()),
            Self::Ascii(s) => writer.write(s.as_bytes()),
        }
    }
}

impl der::Tagged for SpcString {
    fn tag(&self) -> Tag {
        match self {
            Self::Unicode(_) => SPC_STRING_UNICODE,
            Self::Ascii(_) => SPC_STRING_ASCII,
        }
    }
}

impl SpcString {
    /// The text, lossily.
    pub fn to_text(&self) -> String {
        match self {
            Self::Unicode(s) => s.to_string(),
            Self::Ascii(s) => s.to_string(),
        }
    }
}

/// `SpcSerializedObject`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct SpcSerializedObject {
    /// The class id (16 bytes).
    pub class_id: OctetString,
    /// The serialized data.
    pub serialized_data: OctetString,
}

/// `SpcSpOpusInfo`: program name and "more info" URL shown by Windows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Sequence)]
pub struct SpcSpOpusInfo {
    /// The program name.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub program_name: Option<SpcString>,
    /// A URL with more information.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub more_info: Option<SpcLink>,
}

/// `SpcSipInfo`: the indirect data of a file signed through a SIP other than PE's and CAB's
/// (scripts, MSI, APPX), as SignTool and osslsigncode write it:
///
/// ```text
/// SpcSipInfo ::= SEQUENCE {
///     version     INTEGER,
///     identifier  OCTET STRING (SIZE(16)),   -- the SIP's GUID, in the order it is written
///     reserved1   INTEGER, ..., reserved5 INTEGER }   -- all zero
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct SpcSipInfo {
    /// The SIP's version (1 for MSI and the script host SIPs, 65536 for PowerShell,
    /// `0x01010000` for APPX).
    pub version: u32,
    /// The SIP's GUID.
    pub identifier: OctetString,
    /// Reserved, zero.
    pub reserved1: u32,
    /// Reserved, zero.
    pub reserved2: u32,
    /// Reserved, zero.
    pub reserved3: u32,
    /// Reserved, zero.
    pub reserved4: u32,
    /// Reserved, zero.
    pub reserved5: u32,
}

impl SpcSipInfo {
    /// The `SpcSipInfo` of SIP `guid` at `version`, reserved fields zero.
    pub fn new(version: u32, guid: [u8; 16]) -> der::Result<Self> {
        Ok(Self {
            version,
            identifier: OctetString::new(guid.to_vec())?,
            reserved1: 0,
            reserved2: 0,
            reserved3: 0,
            reserved4: 0,
            reserved5: 0,
        })
    }
}

/// The SIP GUID of an `SpcSipInfo` value (`SEQUENCE { INTEGER version, OCTET STRING guid,
/// ... }`), read with the checked TLV walker; `None` when it is not one.
pub fn sip_guid(value: &der::asn1::Any) -> Option<[u8; 16]> {
    use crate::asn1::{tag, Children};
    if value.tag() != der::Tag::Sequence {
        return None;
    }
    let mut c = Children::new(value.value(), 0);
    c.required("SpcSipInfo version")
        .ok()?
        .expect(tag::INTEGER, "SpcSipInfo version")
        .ok()?;
    let guid = c
        .required("SpcSipInfo GUID")
        .ok()?
        .expect(tag::OCTET_STRING, "SpcSipInfo GUID")
        .ok()?;
    guid.value.try_into().ok()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use der::{Decode, Encode};

    use super::*;

    #[test]
    fn pe_image_data_encodes_like_osslsigncode() {
        let v = SpcPeImageData {
            flags: Some(BitString::from_bytes(&[]).expect("bits")),
            file: Some(SpcLink::File(SpcString::Unicode(
                BmpString::from_utf8(OBSOLETE_LINK).expect("bmp"),
            ))),
        };
        let der = v.to_der().expect("der");
        // SEQUENCE { BIT STRING '', [0] { [2] { [0] "<<<Obsolete>>>" (UTF-16BE) } } }
        assert_eq!(&der[..7], &[0x30, 0x25, 0x03, 0x01, 0x00, 0xa0, 0x20]);
        assert_eq!(&der[7..11], &[0xa2, 0x1e, 0x80, 0x1c]);
        assert_eq!(&der[11..13], &[0x00, b'<']);
        assert_eq!(SpcPeImageData::from_der(&der).expect("decode"), v);
    }

    #[test]
    fn opus_info_round_trips() {
        let v = SpcSpOpusInfo {
            program_name: Some(SpcString::Unicode(
                BmpString::from_utf8("Demo").expect("bmp"),
            )),
            more_info: Some(SpcLink::Url(
                Ia5String::new("https://example.com").expect("ia5"),
            )),
        };
        let der = v.to_der().expect("der");
        assert_eq!(SpcSpOpusInfo::from_der(&der).expect("decode"), v);
        assert_eq!(der[0], 0x30);
        assert_eq!(der[2], 0xa0);
    }
}
