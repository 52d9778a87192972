use codeseal_signer::SignError;

/// Everything that can go wrong reading, signing or verifying a PE file.
///
/// Input-derived problems are typed and say where in the file they are; nothing in this
/// crate panics on bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
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
    /// The certificate table (Security directory) is malformed.
    #[error("malformed certificate table: {0}")]
    CertTable(String),
    /// The file is already signed and the caller did not ask to replace the signature.
    #[error("the file is already signed; use --replace to replace its signature or --append to add a nested one")]
    AlreadySigned,
    /// The file has no signature.
    #[error("the file is not signed")]
    NotSigned,
    /// The PKCS#7 signature could not be parsed or is not Authenticode.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// Something the caller asked for is not possible.
    #[error("{0}")]
    Usage(String),
    /// The output file exists and overwriting was not asked for.
    #[error("the output file {0} exists; pass --force to overwrite it")]
    OutputExists(String),
    /// The key failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Encoding our own ASN.1 failed (a bug or an absurd input such as a huge name).
    #[error("encoding the signature failed: {0}")]
    Encode(#[from] der::Error),
    /// No valid time stamp could be had; nothing was written.
    #[error("time stamp failed: {0}; the output was not written")]
    Timestamp(String),
    /// The file is of a kind codeseal does not sign, or the operation does not apply to it.
    #[error("unsupported file: {0}")]
    Unsupported(String),
    /// A script's text or signature block is malformed.
    #[error("script: {0}")]
    Script(#[source] crate::script::ScriptError),
    /// A cabinet's header is malformed, or of a kind codeseal does not rewrite.
    #[error("{0}")]
    Cab(crate::cab::CabError),
    /// The signed output did not verify; nothing was written.
    #[error("the signed output did not verify ({0}); the output was not written")]
    OutputCheck(String),
}

impl From<crate::script::ScriptError> for Error {
    /// A script's read or write failure is an I/O error; the rest are [`Error::Script`].
    fn from(e: crate::script::ScriptError) -> Self {
        match e {
            crate::script::ScriptError::Io {
                context,
                kind,
                message,
            } => Self::io(context, std::io::Error::new(kind, message)),
            e => Self::Script(e),
        }
    }
}

impl From<crate::cab::CabError> for Error {
    /// A cabinet's read or write failure is an I/O error; the rest are [`Error::Cab`].
    fn from(e: crate::cab::CabError) -> Self {
        match e {
            crate::cab::CabError::Io {
                context,
                kind,
                message,
            } => Self::io(context, std::io::Error::new(kind, message)),
            e => Self::Cab(e),
        }
    }
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
