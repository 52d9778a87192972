/// What is wrong with a file, a structure inside it, or a value asked to be encoded.
///
/// Every problem found in the input is typed and says where it is; nothing in this crate
/// panics on bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the input failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being read.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The input is not a PE file, or its headers are inconsistent.
    #[error("not a valid PE file: {what} (at offset {offset:#x})")]
    MalformedPe {
        /// What is wrong.
        what: String,
        /// Where.
        offset: u64,
    },
    /// The file is too short for what its headers say.
    #[error("truncated PE file: {what} needs bytes up to {needed:#x}, the file has {len:#x}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Offset one past the last byte needed.
        needed: u64,
        /// The file's length.
        len: u64,
    },
    /// A ZIP archive (APPX / MSIX package) is malformed.
    #[error("malformed ZIP archive: {what} (at offset {offset:#x})")]
    MalformedZip {
        /// What is wrong.
        what: String,
        /// Where.
        offset: u64,
    },
    /// The certificate table (Security directory) is malformed.
    #[error("malformed certificate table: {0}")]
    CertTable(String),
    /// The PKCS#7 signature could not be parsed or is not Authenticode.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// A value given to a builder cannot be encoded as asked (a non-ASCII URL, no signer
    /// certificate, ...).
    #[error("{0}")]
    InvalidValue(String),
    /// Encoding ASN.1 failed (an absurd value such as a huge name).
    #[error("encoding the signature failed: {0}")]
    Encode(#[from] der::Error),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn pe(what: impl Into<String>, offset: u64) -> Self {
        Self::MalformedPe {
            what: what.into(),
            offset,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
