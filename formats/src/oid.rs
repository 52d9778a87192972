//! Every object identifier codeseal uses, in one place: from `const_oid::db` where it has
//! them (CMS, PKIX), Microsoft's own and RFC 3161's content type defined here.
use const_oid::{
    db::{rfc5280, rfc5911},
    ObjectIdentifier,
};

// --- CMS / PKCS#9 (const_oid::db) ---------------------------------------------------------

/// `id-data` (RFC 5652).
pub const ID_DATA: ObjectIdentifier = rfc5911::ID_DATA;
/// `id-signedData` (RFC 5652).
pub const ID_SIGNED_DATA: ObjectIdentifier = rfc5911::ID_SIGNED_DATA;
/// The PKCS#9 contentType attribute.
pub const PKCS9_CONTENT_TYPE: ObjectIdentifier = rfc5911::ID_CONTENT_TYPE;
/// The PKCS#9 messageDigest attribute.
pub const PKCS9_MESSAGE_DIGEST: ObjectIdentifier = rfc5911::ID_MESSAGE_DIGEST;
/// The PKCS#9 signingTime attribute.
pub const PKCS9_SIGNING_TIME: ObjectIdentifier = rfc5911::ID_SIGNING_TIME;
/// The PKCS#9 countersignature attribute (legacy Authenticode time stamps).
pub const PKCS9_COUNTERSIGNATURE: ObjectIdentifier = rfc5911::ID_COUNTERSIGNATURE;
/// ESS `signingCertificate` (RFC 2634; SHA-1 certificate ids).
pub const ID_AA_SIGNING_CERTIFICATE: ObjectIdentifier = rfc5911::ID_AA_SIGNING_CERTIFICATE;
/// ESS `signingCertificateV2` (RFC 5035).
pub const ID_AA_SIGNING_CERTIFICATE_V2: ObjectIdentifier = rfc5911::ID_AA_SIGNING_CERTIFICATE_V_2;
/// `id-ct-TSTInfo` (RFC 3161; not in `const_oid::db`).
pub const ID_CT_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

// --- PKIX (const_oid::db) -----------------------------------------------------------------

/// The extendedKeyUsage extension.
pub const ID_CE_EXT_KEY_USAGE: ObjectIdentifier = rfc5280::ID_CE_EXT_KEY_USAGE;
/// The code-signing extended key usage.
pub const ID_KP_CODE_SIGNING: ObjectIdentifier = rfc5280::ID_KP_CODE_SIGNING;
/// The time-stamping extended key usage.
pub const ID_KP_TIME_STAMPING: ObjectIdentifier = rfc5280::ID_KP_TIME_STAMPING;
/// `anyExtendedKeyUsage`.
pub const ANY_EXTENDED_KEY_USAGE: ObjectIdentifier = rfc5280::ANY_EXTENDED_KEY_USAGE;

// --- Microsoft Authenticode ---------------------------------------------------------------

/// `SPC_INDIRECT_DATA_OBJID`: the content type of an Authenticode SignedData.
pub const SPC_INDIRECT_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.4");
/// `SPC_PE_IMAGE_DATAOBJ`: the indirect data of a PE file.
pub const SPC_PE_IMAGE_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.15");
/// `SPC_SIPINFO_OBJID`: the indirect data of files hashed by a SIP (scripts, MSI, ...).
pub const SPC_SIPINFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.30");
/// `SPC_CAB_DATA_OBJID`: the indirect data of a cabinet.
pub const SPC_CAB_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.25");
/// `SPC_SP_OPUS_INFO_OBJID`: program name and URL.
pub const SPC_SP_OPUS_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.12");
/// `SPC_STATEMENT_TYPE_OBJID`.
pub const SPC_STATEMENT_TYPE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.11");
/// `SPC_INDIVIDUAL_SP_KEY_PURPOSE_OBJID`: the individual signing statement.
pub const SPC_INDIVIDUAL_SP_KEY_PURPOSE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.1.21");
/// `szOID_NESTED_SIGNATURE`: a nested (appended) signature.
pub const SPC_NESTED_SIGNATURE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.4.1");
/// `szOID_RFC3161_counterSign`: an RFC 3161 time stamp as an unsigned attribute.
pub const SPC_RFC3161_TIMESTAMP: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.3.3.1");
/// `SPC_TIME_STAMP_REQUEST_OBJID`: the legacy (Authenticode) time-stamp request.
pub const SPC_TIME_STAMP_REQUEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.3.2.1");
/// Page hashes with SHA-1 (`SPC_PE_IMAGE_PAGE_HASHES_V1`).
pub const PAGE_HASHES_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.3.1");
/// Page hashes with SHA-256 (`SPC_PE_IMAGE_PAGE_HASHES_V2`).
pub const PAGE_HASHES_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.2.3.2");

// --- Microsoft catalogs and certificate trust lists --------------------------------------

/// `szOID_CTL`: the content type of a certificate trust list (catalogs, `authroot.stl`).
pub const MS_CTL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.10.1");
/// `szOID_CATALOG_LIST`: the subject usage of a catalog.
pub const CATALOG_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.1");
/// `szOID_CATALOG_LIST_MEMBER`: the subject algorithm of a version 1 (SHA-1) catalog.
pub const CATALOG_LIST_MEMBER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.2");
/// `szOID_CATALOG_LIST_MEMBER2`: the subject algorithm of a version 2 (SHA-256) catalog.
pub const CATALOG_LIST_MEMBER2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.1.3");
/// `CAT_NAMEVALUE_OBJID`: a name/value pair (a member's "File" name, catalog-level tags).
pub const CAT_NAMEVALUE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.2.1");
/// `CAT_MEMBERINFO_OBJID`: a member's subject interface package GUID and version.
pub const CAT_MEMBERINFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.12.2.2");

/// `emailAddress` (PKCS #9), the `E=` of a Publisher.
pub const EMAIL_ADDRESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1");

#[cfg(test)]
mod tests {
    use super::*;

    /// The `const_oid::db` names are the values Authenticode uses.
    #[test]
    fn db_values_are_the_expected_arcs() {
        for (oid, dotted) in [
            (ID_DATA, "1.2.840.113549.1.7.1"),
            (ID_SIGNED_DATA, "1.2.840.113549.1.7.2"),
            (PKCS9_CONTENT_TYPE, "1.2.840.113549.1.9.3"),
            (PKCS9_MESSAGE_DIGEST, "1.2.840.113549.1.9.4"),
            (PKCS9_SIGNING_TIME, "1.2.840.113549.1.9.5"),
            (PKCS9_COUNTERSIGNATURE, "1.2.840.113549.1.9.6"),
            (ID_AA_SIGNING_CERTIFICATE, "1.2.840.113549.1.9.16.2.12"),
            (ID_AA_SIGNING_CERTIFICATE_V2, "1.2.840.113549.1.9.16.2.47"),
            (ID_CE_EXT_KEY_USAGE, "2.5.29.37"),
            (ID_KP_CODE_SIGNING, "1.3.6.1.5.5.7.3.3"),
            (ID_KP_TIME_STAMPING, "1.3.6.1.5.5.7.3.8"),
            (ANY_EXTENDED_KEY_USAGE, "2.5.29.37.0"),
        ] {
            assert_eq!(oid.to_string(), dotted);
        }
    }
}
