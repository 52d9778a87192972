//! Typed verification findings: what was found (a stable code), where (the signature's index
//! and, when known, a file offset) and a sentence for people. Code decides on the code, never
//! on the sentence; the CLI prints the sentence and the JSON report carries all of it.
use serde::Serialize;

/// What a finding is about. Serialised in `snake_case`; new codes may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingCode {
    /// The file's digest differs from the signed one (modified after signing).
    ImageDigestMismatch,
    /// APPX: a file does not match `AppxBlockMap.xml` (a block's hash, its size), or is
    /// missing from it or from the package (Windows refuses to install it).
    BlockMapMismatch,
    /// APPX: the manifest's Publisher is not the signer certificate's subject (Windows
    /// refuses to install it).
    PublisherMismatch,
    /// APPX bundle: an inner package carries its own signature, which does not verify
    /// (its digest, its signature or, under the policy, its chain).
    InnerPackageSignature,
    /// The messageDigest attribute does not cover the SpcIndirectDataContent.
    MessageDigestMismatch,
    /// The signature's indirect data is for another kind of file (e.g. a PE signature in a
    /// script, or another script language's SIP).
    WrongIndirectData,
    /// The signature over the signed attributes does not verify.
    SignatureInvalid,
    /// The signer's certificate is not among the embedded ones.
    SignerCertificateMissing,
    /// The signature (or a nested one) could not be read.
    MalformedSignature,
    /// Structure that does not make the signature unreadable (repeated certificates, an
    /// unusual version, several digest algorithms, an unreadable extra certificate).
    SignatureStructure,
    /// Signatures nested deeper than codeseal follows.
    NestingTooDeep,
    /// More signatures than codeseal reads in one file.
    TooManySignatures,
    /// Bytes after the certificate table that no signature covers (CVE-2012-0151).
    DataAfterCertificateTable,
    /// More than 7 bytes follow the PKCS#7 inside its WIN_CERTIFICATE entry (CVE-2013-3900).
    UnsignedBytesInEntry,
    /// Non-zero alignment padding after the PKCS#7 (refused under the strict policy).
    NonZeroPadding,
    /// A WIN_CERTIFICATE entry that is not an Authenticode signature (revision or type).
    NotASignatureEntry,
    /// The certificate table's layout is unusual (sizes, padding).
    CertificateTableLayout,
    /// An unsigned attribute codeseal does not know (not covered by the signature).
    UnknownUnsignedAttribute,
    /// Embedded certificates that are on no chain.
    UnusedCertificates,
    /// The signer's chain to the trust anchors failed.
    Chain,
    /// The signer certificate is not the pinned one.
    LeafPinMismatch,
    /// A weak digest algorithm (SHA-1).
    WeakDigest,
    /// A time stamp is invalid.
    TimestampInvalid,
    /// A time stamp is required and there is none that is valid.
    TimestampMissing,
    /// The page hashes do not match the file.
    PageHashMismatch,
    /// The page-hash table cannot be read or checked.
    PageHashUnreadable,
    /// The PE CheckSum differs from the file's (not covered by the signature).
    ChecksumMismatch,
    /// The checksum could not be computed over the whole file.
    ChecksumIncomplete,
    /// A certificate of the signer chain (or of a time-stamp chain, before the stamp's time)
    /// is revoked.
    Revoked,
    /// A certificate was revoked after the trusted time stamp: the signature stays valid.
    RevokedAfterTimestamp,
    /// No CRL or OCSP answer for a certificate (an error under the hard policy, a warning
    /// under the soft one).
    RevocationUnknown,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What it is.
    pub code: FindingCode,
    /// The signature it is about (`"0"`, `"0.1"`, ...), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Where in the file, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// A sentence for people.
    pub message: String,
}

impl Finding {
    /// A finding about the file as a whole.
    pub fn file(code: FindingCode, message: impl Into<String>) -> Self {
        Self {
            code,
            signature: None,
            offset: None,
            message: message.into(),
        }
    }

    /// A finding about the signature at `index`.
    pub fn signature(code: FindingCode, index: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            signature: Some(index.to_string()),
            offset: None,
            message: message.into(),
        }
    }

    /// The same finding, at file offset `offset`.
    pub fn at(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = &self.signature {
            write!(f, "signature {s}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(o) = self.offset {
            write!(f, " (at {o:#x})")?;
        }
        Ok(())
    }
}
