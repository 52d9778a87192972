//! Audit records: one log record with the target `codeseal::audit` per signature the service
//! makes or refuses to make, for jobs and for `POST /sign` alike. Records name the caller by
//! its API key's name (never the key), the key by its label (secrets masked) and the leaf
//! certificate by its SHA-256.
use tracing::info;

use crate::context::Signer;

/// The log target of audit records.
pub const TARGET: &str = "codeseal::audit";

/// One audited signature (or refused request for one).
#[derive(Debug)]
pub enum Record<'a> {
    /// A job's file was signed, verified, stored and recorded as done.
    Authenticode {
        /// The job.
        job_id: &'a str,
        /// Who created the job (API key name, or `event`).
        caller: &'a str,
        /// The job's file name (validated).
        file_name: &'a str,
        /// SHA-256 of the upload, hex.
        file_sha256: &'a str,
        /// SHA-256 of the stored result, hex.
        signed_sha256: &'a str,
        /// The image digest that was signed, hex.
        authenticode_digest: &'a str,
    },
    /// A `POST /sign` call by an authenticated caller.
    Raw {
        /// The API key's name.
        caller: &'a str,
        /// The digest, hex (empty when the request was refused before one was read).
        digest: &'a str,
        /// The digest algorithm (empty when unknown).
        digest_algorithm: &'a str,
        /// The signature algorithm (empty when no signature was attempted).
        signature_algorithm: &'a str,
        /// `signed`, or why not: `forbidden`, `bad_request`, or a failure reason.
        result: &'a str,
    },
}

/// Writes `record` about a signature with `signer`'s key.
pub fn record(signer: &Signer, record: &Record<'_>) {
    match record {
        Record::Authenticode {
            job_id,
            caller,
            file_name,
            file_sha256,
            signed_sha256,
            authenticode_digest,
        } => info!(
            target: TARGET,
            event = "authenticode_signature",
            job_id = %job_id,
            caller = %caller,
            file_name = %file_name,
            key = %signer.key_label,
            cert_sha256 = %signer.cert_sha256,
            file_sha256 = %file_sha256,
            signed_sha256 = %signed_sha256,
            authenticode_digest = %authenticode_digest,
            result = "signed",
            "signed"
        ),
        Record::Raw {
            caller,
            digest,
            digest_algorithm,
            signature_algorithm,
            result,
        } => info!(
            target: TARGET,
            event = "raw_signature",
            caller = %caller,
            key = %signer.key_label,
            cert_sha256 = %signer.cert_sha256,
            digest = %digest,
            digest_algorithm = %digest_algorithm,
            signature_algorithm = %signature_algorithm,
            result = %result,
            "sign request"
        ),
    }
}
