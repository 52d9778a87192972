//! The job record: one uploaded file on its way to a signed result.
use serde::{Deserialize, Serialize};

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Created by `POST /uploads`; the client is uploading parts.
    Uploading,
    /// The upload is complete; waiting for a worker.
    Queued,
    /// A worker holds the lease and is downloading and signing.
    Signing,
    /// A worker holds the lease and is verifying and storing the result.
    Verifying,
    /// The signed file is in the results store.
    Done,
    /// Given up; `error` says why. The upload is kept.
    Failed,
}

impl JobStatus {
    /// The lower-case name used in the API and the job tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploading => "uploading",
            Self::Queued => "queued",
            Self::Signing => "signing",
            Self::Verifying => "verifying",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "uploading" => Self::Uploading,
            "queued" => Self::Queued,
            "signing" => Self::Signing,
            "verifying" => Self::Verifying,
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// Whether a worker holds (or held) a lease in this state.
    pub fn is_leased(self) -> bool {
        matches!(self, Self::Signing | Self::Verifying)
    }

    /// Done or failed.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// The outcome recorded when a job is done.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// Key of the signed file in the results store.
    pub result_key: String,
    /// SHA-256 of the signed file, hex.
    pub signed_sha256: String,
    /// Size of the signed file.
    pub signed_size: u64,
    /// SHA-256 of the uploaded (unsigned) file, hex.
    pub input_sha256: String,
    /// The Authenticode digest that was signed, hex.
    pub authenticode_digest: String,
    /// The verify report summary (JSON).
    pub verify: String,
}

/// One job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Random 128-bit id, hex (or derived from the object key for uploads made without the API).
    pub job_id: String,
    /// Where it is.
    pub status: JobStatus,
    /// The client's file name (validated).
    pub file_name: String,
    /// Declared size (checked against the object).
    pub size: u64,
    /// Who created it (API key name, or `event` for objects that arrived without the API).
    pub caller: String,
    /// Key of the upload in the uploads store.
    pub upload_key: String,
    /// The multipart upload id while uploading.
    pub multipart_id: Option<String>,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// Last change, ms since the Unix epoch.
    pub updated_ms: u64,
    /// The lease holder's claim token while signing/verifying.
    pub owner: Option<String>,
    /// Lease expiry, ms since the Unix epoch (0 when not leased).
    pub lease_until_ms: u64,
    /// How many times a worker claimed the job.
    pub attempts: u32,
    /// Why it failed (or the last transient error), in our words: never backend or SDK
    /// text (that goes to the logs only).
    pub error: Option<String>,
    /// A short machine-readable reason (`not_pe`, `truncated`, `signing`, ...).
    pub error_reason: Option<FailureReason>,
    /// Set when done.
    pub result: Option<JobResult>,
    /// Counts against its caller's in-flight limit from completion until done or failed (the
    /// API had per-caller limits on when it made the job).
    #[serde(default)]
    pub counted: bool,
}

impl Job {
    /// A new job at `now_ms`, not yet claimed.
    pub fn new(
        job_id: String,
        status: JobStatus,
        file_name: String,
        size: u64,
        caller: String,
        upload_key: String,
        now_ms: u64,
    ) -> Self {
        Self {
            job_id,
            status,
            file_name,
            size,
            caller,
            upload_key,
            multipart_id: None,
            created_ms: now_ms,
            updated_ms: now_ms,
            owner: None,
            lease_until_ms: 0,
            attempts: 0,
            error: None,
            error_reason: None,
            result: None,
            counted: false,
        }
    }

    /// Whether a worker may claim it at `now_ms`.
    pub fn claimable(&self, now_ms: u64) -> bool {
        self.status == JobStatus::Queued
            || (self.status.is_leased() && self.lease_until_ms < now_ms)
    }
}

/// Why a job failed: the `error_reason` of the API and the job tables, and the `reason` label
/// of `codeseal_jobs_failed_total`. Serialised as the snake_case names below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The upload is not a valid PE file (it starts with `MZ` but its headers are wrong).
    NotPe,
    /// The upload is not a kind of file the service signs (PE files and scripts).
    UnsupportedType,
    /// The upload is a script whose text or signature block is malformed.
    MalformedScript,
    /// The upload is a cabinet whose header is malformed, or of a kind not signed (part of a
    /// multi-cabinet set, other reserve data).
    MalformedCab,
    /// The upload is an installer (.msi) whose compound file is malformed.
    MalformedMsi,
    /// The upload is an APPX / MSIX package that is malformed or does not match its block map.
    MalformedAppx,
    /// The upload is a catalog (.cat) whose DER, SignedData or certificate trust list is
    /// malformed.
    MalformedCatalog,
    /// The package's manifest Publisher is not the service certificate's subject.
    PublisherMismatch,
    /// The PE file is shorter than its headers say.
    Truncated,
    /// The PE file's certificate table is broken.
    MalformedPe,
    /// The file already has a signature.
    AlreadySigned,
    /// The upload's size is not the declared size.
    SizeMismatch,
    /// The upload is larger than the limit.
    TooLarge,
    /// The file name of an upload that arrived without the API is not acceptable.
    BadFileName,
    /// The upload is gone from storage.
    UploadMissing,
    /// The upload was started but never completed within the upload TTL.
    Expired,
    /// The upload could not be read.
    Download,
    /// The key failed (transient causes, after the retries).
    Signing,
    /// The certificate does not belong to the key, or the key returned a signature that
    /// does not verify with the certificate's public key.
    KeyMismatch,
    /// The key cannot sign with the algorithm asked for.
    UnsupportedAlgorithm,
    /// The key does not exist (any more).
    KeyNotFound,
    /// The key is disabled, pending deletion, or otherwise in a state that cannot sign.
    KeyDisabled,
    /// The service may not use the key.
    KeyAccessDenied,
    /// The time-stamp server failed.
    Timestamp,
    /// The signed file did not verify.
    Verify,
    /// The signed file could not be stored.
    ResultsStore,
    /// Local disk trouble.
    Io,
    /// Job table trouble.
    JobStore,
    /// Claimed more than the allowed number of times.
    Attempts,
    /// A reason written by a newer version of the service.
    #[serde(other)]
    Other,
}

impl FailureReason {
    /// Every reason, in the order of the documentation's table.
    pub const ALL: [Self; 30] = [
        Self::NotPe,
        Self::UnsupportedType,
        Self::MalformedScript,
        Self::MalformedCab,
        Self::MalformedMsi,
        Self::MalformedAppx,
        Self::MalformedCatalog,
        Self::PublisherMismatch,
        Self::Truncated,
        Self::MalformedPe,
        Self::AlreadySigned,
        Self::SizeMismatch,
        Self::TooLarge,
        Self::BadFileName,
        Self::UploadMissing,
        Self::Expired,
        Self::Download,
        Self::Signing,
        Self::KeyMismatch,
        Self::UnsupportedAlgorithm,
        Self::KeyNotFound,
        Self::KeyDisabled,
        Self::KeyAccessDenied,
        Self::Timestamp,
        Self::Verify,
        Self::ResultsStore,
        Self::Io,
        Self::JobStore,
        Self::Attempts,
        Self::Other,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotPe => "not_pe",
            Self::UnsupportedType => "unsupported_type",
            Self::MalformedScript => "malformed_script",
            Self::MalformedCab => "malformed_cab",
            Self::MalformedMsi => "malformed_msi",
            Self::MalformedAppx => "malformed_appx",
            Self::MalformedCatalog => "malformed_catalog",
            Self::PublisherMismatch => "publisher_mismatch",
            Self::Truncated => "truncated",
            Self::MalformedPe => "malformed_pe",
            Self::AlreadySigned => "already_signed",
            Self::SizeMismatch => "size_mismatch",
            Self::TooLarge => "too_large",
            Self::BadFileName => "bad_file_name",
            Self::UploadMissing => "upload_missing",
            Self::Expired => "expired",
            Self::Download => "download",
            Self::Signing => "signing",
            Self::KeyMismatch => "key_mismatch",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::KeyNotFound => "key_not_found",
            Self::KeyDisabled => "key_disabled",
            Self::KeyAccessDenied => "key_access_denied",
            Self::Timestamp => "timestamp",
            Self::Verify => "verify",
            Self::ResultsStore => "results_store",
            Self::Io => "io",
            Self::JobStore => "job_store",
            Self::Attempts => "attempts",
            Self::Other => "other",
        }
    }

    /// Parses [`as_str`](Self::as_str); unknown names are [`Other`](Self::Other).
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .unwrap_or(Self::Other)
    }

    /// The message shown to clients for a failure with no more specific text of ours.
    pub fn message(self) -> &'static str {
        match self {
            Self::NotPe => "the upload is not a valid PE file",
            Self::UnsupportedType => {
                "the upload is not a file type the service signs (PE files by their MZ header; cabinets by their MSCF header; installers by their compound-file header and .msi .msp .msm .mst; APPX / MSIX packages and bundles by their ZIP header and .appx .msix .appxbundle .msixbundle; catalogs by .cat and a DER start; scripts by extension: .ps1 .psm1 .psd1 .ps1xml .psc1 .cdxml .mof .js .vbs .wsf)"
            }
            Self::MalformedScript => "the script's text or signature block is malformed",
            Self::MalformedCab => {
                "the cabinet's header is malformed, or the cabinet is part of a multi-cabinet set or carries reserve data"
            }
            Self::MalformedMsi => "the installer's compound file is malformed",
            Self::MalformedCatalog => {
                "the catalog is malformed (its DER, SignedData or certificate trust list)"
            }
            Self::MalformedAppx => {
                "the package is malformed or does not match its block map (Windows would refuse it)"
            }
            Self::PublisherMismatch => {
                "the package manifest's Publisher is not the subject of the service's signing certificate (Windows would refuse it)"
            }
            Self::Truncated => "the PE file is shorter than its headers say",
            Self::MalformedPe => "the PE file's certificate table is malformed",
            Self::AlreadySigned => "the file is already signed",
            Self::SizeMismatch => "the upload's size is not the declared size",
            Self::TooLarge => "the upload is larger than the service accepts",
            Self::BadFileName => {
                "the file name is not acceptable (allowed: letters, digits and ` ._-()+[]`, 1 to 200 bytes, not starting with a dot)"
            }
            Self::UploadMissing => "the upload is missing from storage",
            Self::Expired => "the upload was not completed in time",
            Self::Download => "the upload could not be read from storage",
            Self::Signing => "signing failed: the signing key could not be used; try again later",
            Self::KeyMismatch => {
                "signing failed: the service's certificate does not match its signing key"
            }
            Self::UnsupportedAlgorithm => {
                "signing failed: the signing key does not support the required algorithm"
            }
            Self::KeyNotFound => "signing failed: the service's signing key was not found",
            Self::KeyDisabled => "signing failed: the service's signing key is disabled",
            Self::KeyAccessDenied => {
                "signing failed: the service is not allowed to use its signing key"
            }
            Self::Timestamp => "the time-stamp server failed",
            Self::Verify => "the signed file did not verify",
            Self::ResultsStore => "the signed file could not be stored",
            Self::Io => "the worker's local storage failed",
            Self::JobStore => "the job table failed",
            Self::Attempts => "gave up after too many attempts",
            Self::Other => "the job failed",
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a worker writes when it stops working on a job.
#[derive(Clone, Debug)]
pub enum Finish {
    /// Signed, verified and stored.
    Done(JobResult),
    /// Given up.
    Failed {
        /// Short reason code.
        reason: FailureReason,
        /// Text for clients (ours, never backend text).
        error: String,
    },
    /// Put back in the queue (shutdown, or a transient error with attempts left).
    Release {
        /// The transient error, if any.
        error: Option<String>,
    },
}

/// A file name we accept: 1–200 bytes of letters, digits and ` ._-()+[]`, not starting with
/// a dot, not ending with a space. The one check for every way a name arrives (the API and
/// objects that arrive without it: S3 events and the uploads listing). Letters and digits
/// are Unicode's alphabetic and numeric characters, which excludes control, format (bidi
/// overrides such as U+202E) and separator characters.
pub fn check_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 200 {
        return Err("file_name must be 1 to 200 bytes".into());
    }
    if name.starts_with('.') || name.ends_with(' ') {
        return Err("file_name must not start with a dot or end with a space".into());
    }
    if let Some(c) = name.chars().find(|c| {
        !(c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-' | '(' | ')' | '+' | '[' | ']'))
    }) {
        return Err(format!(
            "file_name contains {c:?}; allowed: letters, digits and ` ._-()+[]`"
        ));
    }
    Ok(())
}

/// `name` with every character [`check_file_name`] refuses replaced by `_`, at most 200
/// bytes: what a job records (and shows) for a refused name.
pub fn sanitize_file_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if c.is_alphanumeric()
            || matches!(c, ' ' | '.' | '_' | '-' | '(' | ')' | '+' | '[' | ']')
        {
            c
        } else {
            '_'
        };
        if out.len() + c.len_utf8() > 200 {
            break;
        }
        out.push(c);
    }
    out
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RFC 3339 text for a time in ms since the epoch.
pub fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        for ok in ["app.exe", "My App (x64) [1.2]+.dll", "ünï.sys"] {
            assert!(check_file_name(ok).is_ok(), "{ok}");
            assert_eq!(sanitize_file_name(ok), ok);
        }
        for bad in [
            "",
            ".hidden",
            "a/b.exe",
            "a\\b",
            "a\u{0}b",
            "a\u{1b}[31mb.exe",
            "invoice\u{202e}exe.scr",
            "a\u{200b}b.exe",
            "x.exe ",
            "a\"b",
            &"a".repeat(201),
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
            let s = sanitize_file_name(bad);
            assert!(
                !s.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{s:?}"
            );
        }
        assert_eq!(
            sanitize_file_name("invoice\u{202e}exe.scr"),
            "invoice_exe.scr"
        );
    }

    #[test]
    fn reasons_round_trip_as_snake_case() {
        for r in FailureReason::ALL {
            assert_eq!(FailureReason::parse(r.as_str()), r);
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<FailureReason>(&json).unwrap(), r);
        }
        assert_eq!(
            FailureReason::parse("from_the_future"),
            FailureReason::Other
        );
        assert_eq!(
            serde_json::from_str::<FailureReason>("\"from_the_future\"").unwrap(),
            FailureReason::Other
        );
    }
}
