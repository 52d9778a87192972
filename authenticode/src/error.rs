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
    /// The file, or a structure in it, is malformed (PE headers, certificate table,
    /// PKCS#7, ...): what and where.
    #[error(transparent)]
    Format(#[from] codeseal_formats::Error),
    /// The file is already signed and the caller did not ask to replace the signature.
    #[error("the file is already signed; use --replace to replace its signature or --append to add a nested one")]
    AlreadySigned,
    /// The file has no signature.
    #[error("the file is not signed")]
    NotSigned,
    /// Something the caller asked for is not possible.
    #[error("{0}")]
    Usage(String),
    /// The output file exists and overwriting was not asked for.
    #[error("the output file {0} exists; pass --force to overwrite it")]
    OutputExists(String),
    /// The key failed.
    #[error(transparent)]
    Sign(#[from] SignError),
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
    /// An installer's compound file is malformed.
    #[error("{0}")]
    Msi(crate::msi::MsiError),
    /// An APPX / MSIX package Windows would refuse to install, so it is not signed.
    #[error("{0}")]
    Appx(AppxRefusal),
    /// The signed output did not verify; nothing was written.
    #[error("the signed output did not verify ({0}); the output was not written")]
    OutputCheck(String),
}

/// Why an APPX / MSIX package is not signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppxRefusal {
    /// The manifest's `Publisher` is not the signing certificate's subject.
    #[error("the manifest's Publisher {publisher:?} is not the signer's subject {subject:?} (Windows would refuse the package; --allow-publisher-mismatch signs anyway)")]
    PublisherMismatch {
        /// The manifest's Publisher.
        publisher: String,
        /// The signer's subject.
        subject: String,
    },
    /// The package does not match its block map: what differs.
    #[error("the package does not match its block map (Windows would refuse it): {}", .0.join("; "))]
    BlockMap(Vec<String>),
    /// A bundle's inner package names another Publisher than the bundle's manifest.
    #[error("the inner package {package:?} has the Publisher {publisher:?}, not the bundle's {bundle:?} (Windows would refuse the bundle; --allow-publisher-mismatch signs anyway)")]
    InnerPublisher {
        /// The inner package's entry name.
        package: String,
        /// Its manifest's Publisher (or why it could not be read).
        publisher: String,
        /// The bundle manifest's Publisher.
        bundle: String,
    },
    /// A bundle's inner package carries a signature that does not verify against it.
    #[error("an inner package's own signature does not verify (Windows would refuse the bundle): {}", .0.join("; "))]
    InnerSignature(Vec<String>),
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

    pub(crate) fn cert_table(what: impl Into<String>) -> Self {
        Self::Format(codeseal_formats::Error::CertTable(what.into()))
    }

    pub(crate) fn malformed_signature(what: impl Into<String>) -> Self {
        Self::Format(codeseal_formats::Error::MalformedSignature(what.into()))
    }
}

impl From<der::Error> for Error {
    /// Encoding our own ASN.1 failed (a bug or an absurd input such as a huge name).
    fn from(e: der::Error) -> Self {
        Self::Format(codeseal_formats::Error::Encode(e))
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A script's I/O failure is this crate's I/O error, not a malformed script.
    #[test]
    fn script_io_failure_is_an_io_error() {
        let e = Error::from(crate::script::ScriptError::Io {
            context: "reading the script",
            kind: std::io::ErrorKind::Other,
            message: "gone".into(),
        });
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        let e = Error::from(crate::script::ScriptError::EmptyPkcs7);
        assert!(matches!(e, Error::Script(_)), "{e:?}");
    }
}
