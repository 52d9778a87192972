//! Verification as a library: a typed report for every signature in a file.
//!
//! The verifier walks every WIN_CERTIFICATE entry and nested signature (depth-capped),
//! recomputes the image digest and page hashes in one streamed pass for all algorithms in
//! use, compares them with each signature's, checks the messageDigest attribute, the PKCS#7
//! signature over the **original** signed-attribute bytes with the embedded signer
//! certificate, and the time stamps (RFC 3161 tokens and legacy countersignatures).
//! With trust anchors ([`Verifier::new`]), each signer chain is built and checked (signatures,
//! validity at the time-stamp time, CA constraints, codeSigning/timeStamping EKU, key usage).
use std::{
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
    path::Path,
    time::Duration,
};

use codeseal_signer::{verify_prehash, DigestAlgorithm};
use serde::Serialize;
use x509_cert::Certificate;

use crate::{
    chain::{ChainReport, Purpose},
    digest::stream_image_with_pages,
    error::{Error, Result},
    finding::{Finding, FindingCode},
    format::FileKind,
    pagehash::PageHasher,
    pe::PeInfo,
    pkcs7::{page_hashes_of, ParsedSignature, MAX_NESTED, MAX_NESTING},
    revocation::{
        rfc3339, CertRevocation, RevocationOptions, RevocationPolicy, RevocationSource,
        RevocationState,
    },
    script::{ScriptKind, ScriptLayout},
    wincert::{parse_table, WIN_CERT_REVISION_2_0, WIN_CERT_TYPE_PKCS_SIGNED_DATA},
};

/// The largest certificate table read into memory.
pub const MAX_CERT_TABLE: u64 = 16 << 20;

/// A certificate, summarised for reports.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct CertSummary {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// SHA-256 of the DER certificate, hex.
    pub sha256: String,
}

impl CertSummary {
    /// Summarises `c`.
    pub fn of(c: &Certificate) -> Self {
        use der::Encode;
        Self {
            subject: crate::chain::name_text(&c.tbs_certificate.subject),
            issuer: crate::chain::name_text(&c.tbs_certificate.issuer),
            serial: hex::encode(c.tbs_certificate.serial_number.as_bytes()),
            sha256: c
                .to_der()
                .map(|d| hex::encode(DigestAlgorithm::Sha256.digest(&d)))
                .unwrap_or_default(),
        }
    }
}

/// A time stamp found on a signature.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct TimestampReport {
    /// RFC 3161 or legacy.
    pub protocol: crate::timestamp::Protocol,
    /// The time stamped (RFC 3339), if readable.
    pub time: Option<String>,
    /// The time stamped, seconds since the Unix epoch.
    pub time_unix: Option<u64>,
    /// The TSA certificate's subject.
    pub tsa: Option<String>,
    /// Whether the time stamp is valid for this signature (token signature, imprint,
    /// ESSCertID, EKU; and, when TSA trust anchors are given, the TSA chain).
    pub valid: bool,
    /// The TSA chain, when trust anchors were given.
    pub chain: Option<ChainReport>,
    /// Why not valid, if not.
    pub error: Option<String>,
}

struct FoundStamp {
    report: TimestampReport,
    tsa: Option<(Certificate, Vec<Certificate>)>,
    /// CRLs the token carries (RFC 3161 only).
    crls: Option<Vec<u8>>,
}

fn stamp_ok(
    protocol: crate::timestamp::Protocol,
    time: Option<crate::asn1::Time>,
    tsa: Certificate,
    pool: Vec<Certificate>,
    crls: Option<Vec<u8>>,
) -> FoundStamp {
    FoundStamp {
        report: TimestampReport {
            protocol,
            time: time.map(crate::asn1::Time::rfc3339),
            time_unix: time.map(|t| t.unix),
            tsa: Some(crate::chain::name_text(&tsa.tbs_certificate.subject)),
            valid: true,
            chain: None,
            error: None,
        },
        tsa: Some((tsa, pool)),
        crls,
    }
}

fn stamp_bad(protocol: crate::timestamp::Protocol, e: String) -> FoundStamp {
    FoundStamp {
        report: TimestampReport {
            protocol,
            time: None,
            time_unix: None,
            tsa: None,
            valid: false,
            chain: None,
            error: Some(e),
        },
        tsa: None,
        crls: None,
    }
}

fn check_timestamps(sig: &ParsedSignature) -> Vec<FoundStamp> {
    use crate::timestamp::{check_legacy_eku, legacy_signing_time, validate_token, Protocol};
    let signature = sig.signer_info.signature.as_bytes();
    let mut out = Vec::new();
    for der in sig.unsigned_values(crate::oid::SPC_RFC3161_TIMESTAMP) {
        let r = {
            // The imprint algorithm is the token's own; check the value against it.
            validate_token(der, None, None, None).and_then(|probe| {
                let alg = probe.imprint_algorithm.ok_or("unknown imprint algorithm")?;
                if probe.imprint != alg.digest(signature) {
                    return Err(
                        "the time stamp is for another signature (imprint mismatch)".to_string()
                    );
                }
                Ok(probe)
            })
        };
        out.push(match r {
            Ok(info) => stamp_ok(
                Protocol::Rfc3161,
                Some(info.time),
                info.tsa_cert,
                info.certs,
                info.crls,
            ),
            Err(e) => stamp_bad(Protocol::Rfc3161, e),
        });
    }
    for der in sig.unsigned_values(crate::oid::PKCS9_COUNTERSIGNATURE) {
        let r = (|| -> std::result::Result<FoundStamp, String> {
            let tlv = crate::asn1::Tlv::exactly(der).map_err(|e| e.to_string())?;
            let counter = crate::pkcs7::SignerInfoRef::parse(tlv).map_err(|e| e.to_string())?;
            let info = &counter.info;
            let cert = crate::pkcs7::find_signer(info, sig.certificates())
                .ok_or("the TSA certificate is not in the signature")?;
            let attrs = counter
                .signed_attrs_der
                .as_deref()
                .ok_or("no signed attributes")?;
            crate::pkcs7::verify_cms_signer(info, attrs, signature, None, cert)
                .map_err(|e| e.to_string())?;
            check_legacy_eku(cert).map_err(|e| e.to_string())?;
            Ok(stamp_ok(
                Protocol::Legacy,
                legacy_signing_time(info),
                cert.clone(),
                sig.certificates().cloned().collect(),
                None,
            ))
        })();
        out.push(r.unwrap_or_else(|e| stamp_bad(Protocol::Legacy, e)));
    }
    out
}

/// The policy a [`Verifier`] applies (crate-internal; users build a [`Verifier`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct VerifyOptions {
    /// Roots trusted for code signing. Empty: chains are not checked (reported as such).
    pub trust_anchors: Vec<Certificate>,
    /// Roots trusted for time stamping; when empty, `trust_anchors` are used.
    pub tsa_anchors: Vec<Certificate>,
    /// Check validity at this time (seconds since the Unix epoch) instead of the time stamp's
    /// time or now.
    pub at_time: Option<u64>,
    /// Fail a signature that has no valid time stamp.
    pub require_timestamp: bool,
    /// Do not use time stamps: check validity at `at_time` or now.
    pub ignore_timestamp: bool,
    /// Strict structure: non-zero WIN_CERTIFICATE padding is an error, as with Windows'
    /// EnableCertPaddingCheck (osslsigncode and signify accept it).
    pub strict: bool,
    /// Treat SHA-1 signatures as invalid (by default they are accepted with a warning, as
    /// osslsigncode and Windows' dual-signing support do).
    pub reject_sha1: bool,
    /// Require the signer certificate's hash to be this (algorithm, digest).
    pub require_leaf_hash: Option<(DigestAlgorithm, Vec<u8>)>,
    /// Revocation checking (off by default).
    pub revocation: crate::revocation::RevocationOptions,
    /// Root-program restrictions and the deny list (from a [`crate::trust::TrustStore`]).
    pub store: Option<std::sync::Arc<crate::trust::TrustStore>>,
}

impl VerifyOptions {
    /// The trust store's verdict on a chain found to an anchor.
    pub(crate) fn apply_store(&self, chain: &mut ChainReport, purpose: Purpose, at: Duration) {
        let Some(store) = &self.store else { return };
        if chain.certs.is_empty() || !chain.trusted {
            return;
        }
        let errors = store.check(&chain.certs, purpose, at.as_secs());
        if !errors.is_empty() {
            chain.trusted = false;
            chain.errors.extend(errors);
        }
    }
}

fn now_unix() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

enum Judgement {
    Ok,
    Warn(FindingCode, String),
    Fail(FindingCode, String),
}

fn unknown(r: &mut CertRevocation, policy: RevocationPolicy) -> Judgement {
    let why = if r.problems.is_empty() {
        "no answer".to_string()
    } else {
        r.problems.join("; ")
    };
    let m = format!("revocation status of {} unknown: {why}", r.subject);
    if policy == RevocationPolicy::Hard {
        r.verdict = "unknown: invalid (hard policy)".into();
        Judgement::Fail(FindingCode::RevocationUnknown, m)
    } else {
        r.verdict = "unknown: accepted with a warning (soft policy)".into();
        Judgement::Warn(FindingCode::RevocationUnknown, m)
    }
}

fn by(r: &CertRevocation) -> String {
    format!(
        "{} {}",
        match r.source {
            Some(RevocationSource::Ocsp) => "OCSP",
            _ => "CRL",
        },
        r.origin.as_deref().unwrap_or("?")
    )
}

/// Windows' rule for the signer chain: revoked after the trusted time stamp stays valid.
fn judge_signer(
    r: &mut CertRevocation,
    trusted_time: Option<u64>,
    policy: RevocationPolicy,
) -> Judgement {
    match r.state {
        RevocationState::Good => {
            r.verdict = format!("good ({})", by(r));
            Judgement::Ok
        }
        RevocationState::Unknown => unknown(r, policy),
        RevocationState::Revoked => {
            let at = r.revoked_at_unix.unwrap_or(0);
            let reason = r.reason.as_deref().unwrap_or("no reason given");
            match trusted_time {
                Some(t) if t < at => {
                    r.verdict = format!(
                        "revoked at {} ({reason}), after the trusted time stamp ({}): still valid",
                        rfc3339(at),
                        rfc3339(t)
                    );
                    Judgement::Warn(
                        FindingCode::RevokedAfterTimestamp,
                        format!("{} was revoked at {} ({reason}; {}), after the trusted time stamp {}: the signature stays valid", r.subject, rfc3339(at), by(r), rfc3339(t)),
                    )
                }
                Some(t) => {
                    r.verdict = format!(
                        "revoked at {} ({reason}), before the trusted time stamp ({}): invalid",
                        rfc3339(at),
                        rfc3339(t)
                    );
                    Judgement::Fail(
                        FindingCode::Revoked,
                        format!(
                            "{} was revoked at {} ({reason}; {}), before the time stamp {}",
                            r.subject,
                            rfc3339(at),
                            by(r),
                            rfc3339(t)
                        ),
                    )
                }
                None => {
                    r.verdict = format!(
                        "revoked at {} ({reason}), no trusted time stamp: invalid",
                        rfc3339(at)
                    );
                    Judgement::Fail(
                        FindingCode::Revoked,
                        format!("{} was revoked at {} ({reason}; {}) and the signature has no trusted time stamp", r.subject, rfc3339(at), by(r)),
                    )
                }
            }
        }
    }
}

type Coded = Vec<(FindingCode, String)>;

/// Revocation of a trusted signer chain (nothing when off or untrusted): the statuses go into
/// `chain.revocation`; returns the errors and warnings, judged by Windows' time-stamp rule.
fn signer_revocation(
    chain: &mut ChainReport,
    embedded: &[crate::revocation::Crl],
    trusted_time: Option<u64>,
    opts: &VerifyOptions,
) -> (Coded, Coded) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    if !chain.trusted || opts.revocation.policy() == RevocationPolicy::Off {
        return (errors, warnings);
    }
    chain.revocation = opts.revocation.check_path(&chain.certs, embedded);
    for r in &mut chain.revocation {
        match judge_signer(r, trusted_time, opts.revocation.policy()) {
            Judgement::Ok => {}
            Judgement::Warn(code, m) => warnings.push((code, m)),
            Judgement::Fail(code, m) => errors.push((code, m)),
        }
    }
    (errors, warnings)
}

/// A TSA chain: the stamp's own time decides, except after a key or CA compromise.
fn judge_tsa(r: &mut CertRevocation, stamped: Option<u64>, policy: RevocationPolicy) -> Judgement {
    let compromise = matches!(r.reason.as_deref(), Some("keyCompromise" | "cACompromise"));
    if r.state == RevocationState::Revoked && compromise {
        r.verdict = "revoked for compromise: the time stamp is invalid whatever its time".into();
        return Judgement::Fail(
            FindingCode::Revoked,
            format!(
                "TSA certificate {} was revoked for {} ({})",
                r.subject,
                r.reason.as_deref().unwrap_or_default(),
                by(r)
            ),
        );
    }
    match judge_signer(r, stamped, policy) {
        Judgement::Fail(FindingCode::Revoked, _) => Judgement::Fail(
            FindingCode::Revoked,
            format!(
                "TSA certificate {} was revoked at {} ({})",
                r.subject,
                r.revoked_at.as_deref().unwrap_or("?"),
                by(r)
            ),
        ),
        j => j,
    }
}

/// Applies the policy to one signature's report: time stamps' TSA chains, the signer chain at
/// the right time, leaf pin, weak digests, required time stamp.
fn apply_policy(
    report: &mut SignatureReport,
    sig: &ParsedSignature,
    stamps: &[FoundStamp],
    opts: &VerifyOptions,
) {
    let index = report.index.clone();
    let checking_chains = !opts.trust_anchors.is_empty();
    let tsa_anchors = if opts.tsa_anchors.is_empty() {
        &opts.trust_anchors
    } else {
        &opts.tsa_anchors
    };
    let mut stamp_time = None;
    let mut embedded = Vec::new();
    let mut stamp_warnings = Vec::new();
    if checking_chains && opts.revocation.policy() != RevocationPolicy::Off {
        if let Some(crls) = sig.crls {
            let mut notes = Vec::new();
            embedded = crate::revocation::embedded_crls(crls, &mut notes);
            report.warnings.extend(
                notes
                    .into_iter()
                    .map(|n| Finding::signature(FindingCode::SignatureStructure, &index, n)),
            );
        }
    }
    for (st, rep) in stamps.iter().zip(report.timestamps.iter_mut()) {
        if let (Some((tsa, pool)), true) = (&st.tsa, checking_chains) {
            let at = rep
                .time_unix
                .map(Duration::from_secs)
                .unwrap_or_else(now_unix);
            let mut chain =
                crate::chain::verify_chain(tsa, pool, tsa_anchors, at, Purpose::TimeStamping);
            opts.apply_store(&mut chain, Purpose::TimeStamping, at);
            if !chain.trusted {
                rep.valid = false;
                rep.error = Some(format!("TSA chain: {}", chain.errors.join("; ")));
            } else if opts.revocation.policy() != RevocationPolicy::Off {
                // The token's own CRLs first, then the signature's.
                let mut notes = Vec::new();
                let mut crls = st
                    .crls
                    .as_deref()
                    .map(|c| crate::revocation::embedded_crls(c, &mut notes))
                    .unwrap_or_default();
                crls.extend(embedded.iter().cloned());
                stamp_warnings.extend(notes.into_iter().map(|n| {
                    Finding::signature(
                        FindingCode::SignatureStructure,
                        &index,
                        format!("time stamp: {n}"),
                    )
                }));
                chain.revocation = opts.revocation.check_path(&chain.certs, &crls);
                let stamped = rep.time_unix;
                for r in &mut chain.revocation {
                    match judge_tsa(r, stamped, opts.revocation.policy()) {
                        Judgement::Ok => {}
                        Judgement::Warn(code, m) => {
                            stamp_warnings.push(Finding::signature(code, &index, m));
                        }
                        Judgement::Fail(_, m) => {
                            rep.valid = false;
                            rep.error = Some(format!("TSA chain: {m}"));
                        }
                    }
                }
            }
            rep.chain = Some(chain);
        }
        if rep.valid && stamp_time.is_none() {
            stamp_time = rep.time_unix;
        }
    }
    report.warnings.append(&mut stamp_warnings);
    let at = match (opts.at_time, opts.ignore_timestamp) {
        (Some(t), _) => Duration::from_secs(t),
        (None, false) => stamp_time.map(Duration::from_secs).unwrap_or_else(now_unix),
        (None, true) => now_unix(),
    };
    if checking_chains {
        match sig.signer_certificate() {
            Some(leaf) => {
                let pool: Vec<Certificate> = sig.certificates().cloned().collect();
                let mut chain = crate::chain::verify_chain(
                    leaf,
                    &pool,
                    &opts.trust_anchors,
                    at,
                    Purpose::CodeSigning,
                );
                opts.apply_store(&mut chain, Purpose::CodeSigning, at);
                // Only a trusted time stamp's time counts (not --time, not an ignored stamp).
                let trusted_time = if opts.ignore_timestamp {
                    None
                } else {
                    stamp_time
                };
                let (errors, warnings) =
                    signer_revocation(&mut chain, &embedded, trusted_time, opts);
                report.errors.extend(
                    errors
                        .into_iter()
                        .map(|(code, m)| Finding::signature(code, &index, m)),
                );
                report.warnings.extend(
                    warnings
                        .into_iter()
                        .map(|(code, m)| Finding::signature(code, &index, m)),
                );
                // Certificates on no chain are unsigned extras someone may have added.
                let used: Vec<String> = chain
                    .path
                    .iter()
                    .cloned()
                    .chain(
                        report
                            .timestamps
                            .iter()
                            .filter_map(|t| t.chain.as_ref())
                            .flat_map(|c| c.path.iter().cloned()),
                    )
                    .collect();
                let extra = pool
                    .iter()
                    .filter(|c| {
                        !used.contains(&crate::chain::name_text(&c.tbs_certificate.subject))
                    })
                    .count();
                if extra > 0 {
                    report.warnings.push(Finding::signature(
                        FindingCode::UnusedCertificates,
                        &index,
                        format!("{extra} embedded certificate(s) are on no chain (not needed to verify; possibly added later)"),
                    ));
                }
                if !chain.trusted {
                    report.errors.extend(chain.errors.iter().map(|e| {
                        Finding::signature(FindingCode::Chain, &index, format!("chain: {e}"))
                    }));
                }
                report.chain = Some(chain);
            }
            None => report.errors.push(Finding::signature(
                FindingCode::SignerCertificateMissing,
                &index,
                "chain: no signer certificate",
            )),
        }
    }
    if let Some((alg, want)) = &opts.require_leaf_hash {
        let got = sig
            .signer_certificate()
            .and_then(|c| der::Encode::to_der(c).ok())
            .map(|d| alg.digest(&d));
        if got.as_deref() != Some(want.as_slice()) {
            report.errors.push(Finding::signature(
                FindingCode::LeafPinMismatch,
                &index,
                format!("the signer certificate is not the required one ({alg} pin)"),
            ));
        }
    }
    if report.digest_algorithm.is_weak() {
        let m = Finding::signature(
            FindingCode::WeakDigest,
            &index,
            format!("weak digest algorithm {}", report.digest_algorithm),
        );
        if opts.reject_sha1 {
            report.errors.push(m);
        } else {
            report.warnings.push(m);
        }
    }
    if opts.strict {
        let (bad, keep): (Vec<Finding>, Vec<Finding>) = report
            .warnings
            .drain(..)
            .partition(|w| w.code == FindingCode::NonZeroPadding);
        report.warnings = keep;
        report.errors.extend(bad);
    }
    if opts.require_timestamp && !report.timestamps.iter().any(|t| t.valid) {
        report.errors.push(Finding::signature(
            FindingCode::TimestampMissing,
            &index,
            "no valid time stamp, and one is required",
        ));
    }
    for t in report.timestamps.iter().filter(|t| !t.valid) {
        let e = Finding::signature(
            FindingCode::TimestampInvalid,
            &index,
            format!(
                "invalid time stamp: {}",
                t.error.clone().unwrap_or_default()
            ),
        );
        if !report.errors.contains(&e) {
            report.errors.push(e);
        }
    }
}

/// The checks made on one signature.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct SignatureReport {
    /// Where the signature is: `"0"` for the first WIN_CERTIFICATE entry, `"0.1"` for the
    /// first signature nested in it.
    pub index: String,
    /// Whether the signature is nested in another one.
    pub nested: bool,
    /// Page hashes: `None` when the signature has none, else whether they match.
    pub page_hashes_ok: Option<bool>,
    /// Time stamps on this signature.
    pub timestamps: Vec<TimestampReport>,
    /// The signer's chain to a trust anchor (`None` when no anchors were given).
    pub chain: Option<ChainReport>,
    /// Digest algorithm.
    pub digest_algorithm: DigestAlgorithm,
    /// The digest the signature carries, hex.
    pub signed_digest: String,
    /// The digest recomputed from the file, hex.
    pub computed_digest: String,
    /// Whether they are equal.
    pub image_digest_ok: bool,
    /// Whether the messageDigest attribute equals the hash of the SpcIndirectDataContent.
    pub message_digest_ok: bool,
    /// Whether the signature over the signed attributes verifies with the signer's key.
    pub signature_ok: bool,
    /// The signer certificate, if found.
    pub signer: Option<CertSummary>,
    /// All embedded certificates.
    pub certificates: Vec<CertSummary>,
    /// Program name from SpcSpOpusInfo.
    pub program_name: Option<String>,
    /// URL from SpcSpOpusInfo.
    pub more_info: Option<String>,
    /// Why the signature is invalid, if it is.
    pub errors: Vec<Finding>,
    /// Findings that do not invalidate the signature.
    pub warnings: Vec<Finding>,
}

impl SignatureReport {
    /// Whether every check passed.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
            && self.image_digest_ok
            && self.message_digest_ok
            && self.signature_ok
    }
}

/// The result of verifying a file.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The kind of file.
    pub kind: FileKind,
    /// What was checked: chains to trust anchors, or integrity only.
    pub trust: TrustCheck,
    /// The revocation policy the chains were checked under (each chain's `revocation` list
    /// says what was found, per certificate).
    pub revocation: RevocationPolicy,
    /// File length.
    pub file_len: u64,
    /// The PE CheckSum field (PE files only).
    pub checksum_in_header: Option<u32>,
    /// The recomputed PE checksum (PE files only).
    pub checksum_computed: Option<u32>,
    /// One entry per signature found.
    pub signatures: Vec<SignatureReport>,
    /// File-level problems that make the file invalid.
    pub errors: Vec<Finding>,
    /// File-level findings that do not (e.g. a stale CheckSum).
    pub warnings: Vec<Finding>,
    /// The verdict.
    pub valid: bool,
}

/// How a report's signatures were checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrustCheck {
    /// Each signer's chain was built to the verifier's trust anchors, with validity at the
    /// time-stamp time, code-signing EKU and key usage: `valid` means a trusted publisher
    /// signed this file.
    Anchors,
    /// Integrity only, chosen with [`Verifier::integrity_only`]: digests and signatures were
    /// checked against the certificates the file carries. Anyone can make such a signature;
    /// `valid` means only that the file was not changed since it was signed.
    IntegrityOnly,
}

/// Verifies files: trust anchors and a policy, fixed at construction.
///
/// ```no_run
/// use codeseal_authenticode::Verifier;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let roots = codeseal_keys::load_certificates(std::path::Path::new("roots.pem"))?;
/// let report = Verifier::new(roots)?.require_timestamp(true).verify_file("app.exe".as_ref())?;
/// for f in report.signatures.iter().flat_map(|s| &s.errors) {
///     println!("{:?} {}", f.code, f.message);
/// }
/// assert!(report.valid);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Verifier {
    opts: VerifyOptions,
}

impl Verifier {
    /// A verifier that trusts signers chaining to `trust_anchors` (and, unless
    /// [`with_tsa_anchors`](Self::with_tsa_anchors) says otherwise, time stamps chaining to
    /// them). An empty list is refused: checking integrity alone is
    /// [`integrity_only`](Self::integrity_only), chosen by name.
    pub fn new(trust_anchors: Vec<Certificate>) -> Result<Self> {
        if trust_anchors.is_empty() {
            return Err(Error::Usage(
                "no trust anchors: give at least one root certificate, or choose integrity-only checking explicitly".into(),
            ));
        }
        Ok(Self {
            opts: VerifyOptions {
                trust_anchors,
                ..VerifyOptions::default()
            },
        })
    }

    /// A verifier that trusts the roots of `store`, under its root-program restrictions
    /// (usages, disabled and not-before dates) and its deny list, for signers and (unless
    /// [`with_tsa_anchors`](Self::with_tsa_anchors) says otherwise) time stamps.
    pub fn from_trust_store(store: crate::trust::TrustStore) -> Result<Self> {
        let mut v = Self::new(store.anchors().to_vec())?;
        if store.has_rules() {
            v.opts.store = Some(std::sync::Arc::new(store));
        }
        Ok(v)
    }

    /// A verifier that checks integrity only (digests and signatures against the file's own
    /// certificates), not who signed: reports say [`TrustCheck::IntegrityOnly`].
    pub fn integrity_only() -> Self {
        Self {
            opts: VerifyOptions::default(),
        }
    }

    /// Roots trusted for time stamping (by default, the trust anchors).
    pub fn with_tsa_anchors(mut self, anchors: Vec<Certificate>) -> Self {
        self.opts.tsa_anchors = anchors;
        self
    }

    /// Checks validity at this time (seconds since the Unix epoch) instead of the time
    /// stamp's time or now.
    pub fn at_time(mut self, unix_seconds: u64) -> Self {
        self.opts.at_time = Some(unix_seconds);
        self
    }

    /// Fails a signature without a valid time stamp.
    pub fn require_timestamp(mut self, yes: bool) -> Self {
        self.opts.require_timestamp = yes;
        self
    }

    /// Ignores time stamps: validity is checked at [`at_time`](Self::at_time) or now.
    pub fn ignore_timestamp(mut self, yes: bool) -> Self {
        self.opts.ignore_timestamp = yes;
        self
    }

    /// Strict structure: non-zero WIN_CERTIFICATE padding is an error, as with Windows'
    /// EnableCertPaddingCheck (osslsigncode and signify accept it).
    pub fn strict(mut self, yes: bool) -> Self {
        self.opts.strict = yes;
        self
    }

    /// Treats SHA-1 signatures as invalid (by default they are accepted with a warning).
    pub fn reject_sha1(mut self, yes: bool) -> Self {
        self.opts.reject_sha1 = yes;
        self
    }

    /// Requires the signer certificate's `alg` hash to be `digest`.
    pub fn require_leaf_hash(mut self, alg: DigestAlgorithm, digest: Vec<u8>) -> Self {
        self.opts.require_leaf_hash = Some((alg, digest));
        self
    }

    /// Checks revocation as `revocation` says (by default: off, no network). Verifiers
    /// cloned from this one share its record of fetches, so a batch fetches each URL once.
    pub fn with_revocation(mut self, revocation: RevocationOptions) -> Self {
        self.opts.revocation = revocation;
        self
    }

    /// What this verifier checks.
    pub fn trust(&self) -> TrustCheck {
        self.opts.trust()
    }

    /// Verifies the file at `path`; its format is detected as signing detects it (PE by its
    /// header, scripts by extension).
    pub fn verify_file(&self, path: &Path) -> Result<VerifyReport> {
        verify_file_with(path, &self.opts)
    }

    /// Verifies a catalog's signature (the bytes of a `.cat`) under this verifier's anchors,
    /// trust-store rules and revocation policy; see [`crate::catalog::verify_catalog`].
    pub fn verify_catalog(&self, data: &[u8]) -> Result<crate::catalog::CatalogReport> {
        let anchors =
            (!self.opts.trust_anchors.is_empty()).then_some(self.opts.trust_anchors.as_slice());
        crate::catalog::verify_catalog_with(data, anchors, Some(&self.opts))
    }

    /// Verifies the `kind` file read from `r` (`name` is used in messages).
    pub fn verify_reader<R: Read + Seek>(
        &self,
        kind: FileKind,
        r: &mut R,
        name: &Path,
    ) -> Result<VerifyReport> {
        verify_as(kind, r, name, &self.opts)
    }
}

impl VerifyOptions {
    pub(crate) fn trust(&self) -> TrustCheck {
        if self.trust_anchors.is_empty() {
            TrustCheck::IntegrityOnly
        } else {
            TrustCheck::Anchors
        }
    }
}

/// Verifies the file at `path` under the policy `opts`. The format is detected as signing
/// detects it (PE by its header, scripts by extension).
pub(crate) fn verify_file_with(path: &Path, opts: &VerifyOptions) -> Result<VerifyReport> {
    let kind = FileKind::detect(path)?;
    let f = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    verify_as(kind, &mut BufReader::with_capacity(64 << 10, f), path, opts)
}

/// Verifies the `kind` file in `r` (named `name` in messages) under the policy `opts`.
pub(crate) fn verify_as<R: Read + Seek>(
    kind: FileKind,
    r: &mut R,
    name: &Path,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    let mut report = match kind {
        FileKind::Pe => verify_with(r, opts),
        FileKind::Script(k) => {
            // Script errors name what failed, not the file.
            let _ = name;
            verify_script(k, r, opts)
        }
        FileKind::Cab => crate::format::cab::verify(r, opts),
        FileKind::Msi => crate::format::msi::verify(r, opts),
        FileKind::Appx | FileKind::AppxBundle => crate::format::appx::verify(r, opts),
        FileKind::Catalog => crate::format::catalog::verify(r, opts),
    }?;
    report.revocation = opts.revocation.policy();
    Ok(report)
}

/// Verifies a script, in memory independent of its size: the block is found from the end,
/// then one pass over the text hashes it.
fn verify_script<R: Read + Seek>(
    kind: ScriptKind,
    r: &mut R,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    let layout = ScriptLayout::read(kind, r)?;
    let Some(block) = layout.signature() else {
        // A text error comes before "not signed", as when the whole file is checked first.
        layout.check_text(r)?;
        return Err(Error::NotSigned);
    };
    let mut errors = Vec::new();
    let parsed = collect_signatures(vec![("0".to_string(), block.pkcs7.as_slice())], &mut errors);
    let algs = algorithms(&parsed);
    let (_, digests) = crate::format::script::stream_digests(&layout, r, &algs, None)?;
    let signatures = check_all(
        FileKind::Script(kind),
        &parsed,
        |alg| digests.get(alg),
        |_, _| {},
        opts,
    );
    Ok(finish_report(
        opts.trust(),
        FileKind::Script(kind),
        layout.len(),
        None,
        signatures,
        errors,
        Vec::new(),
    ))
}

/// Parses each top-level signature and, depth-first, its nested ones (bounded in depth and
/// count); unreadable ones become findings in `errors`.
pub(crate) fn collect_signatures<'a>(
    top: Vec<(String, &'a [u8])>,
    errors: &mut Vec<Finding>,
) -> Vec<(String, ParsedSignature<'a>)> {
    let mut parsed: Vec<(String, ParsedSignature)> = Vec::new();
    for (index, der) in top {
        let mut todo: Vec<(String, &[u8], usize)> = vec![(index, der, 0)];
        while let Some((index, der, depth)) = todo.pop() {
            match ParsedSignature::parse(der) {
                Ok(p) => {
                    let nested = p.nested_der();
                    if depth >= MAX_NESTING && !nested.is_empty() {
                        errors.push(Finding::signature(
                            FindingCode::NestingTooDeep,
                            &index,
                            format!("nested deeper than {MAX_NESTING}"),
                        ));
                    } else {
                        for (k, n) in nested.into_iter().enumerate().rev() {
                            todo.push((format!("{index}.{}", k + 1), n, depth + 1));
                        }
                    }
                    parsed.push((index, p));
                }
                Err(err) => errors.push(Finding::signature(
                    FindingCode::MalformedSignature,
                    &index,
                    err.to_string(),
                )),
            }
            if parsed.len() > MAX_NESTED * 4 {
                errors.push(Finding::file(
                    FindingCode::TooManySignatures,
                    format!("more than {} signatures", MAX_NESTED * 4),
                ));
                return parsed;
            }
        }
    }
    parsed
}

/// The digest algorithms in use, each once, shortest first.
pub(crate) fn algorithms(parsed: &[(String, ParsedSignature)]) -> Vec<DigestAlgorithm> {
    let mut algs: Vec<DigestAlgorithm> = parsed.iter().map(|(_, p)| p.digest_algorithm).collect();
    algs.sort_by_key(|a| a.output_len());
    algs.dedup();
    algs
}

/// [`check_one`] for every signature of a `kind` file, each against `computed(alg)` (the
/// file's digest for the signature's algorithm; `None` counts as a mismatch), then the
/// format's own `extra` checks of that signature (index, report).
pub(crate) fn check_all<'d>(
    kind: FileKind,
    parsed: &[(String, ParsedSignature)],
    computed: impl Fn(DigestAlgorithm) -> Option<&'d [u8]>,
    mut extra: impl FnMut(&str, &mut SignatureReport),
    opts: &VerifyOptions,
) -> Vec<SignatureReport> {
    parsed
        .iter()
        .map(|(i, p)| {
            let digest = computed(p.digest_algorithm).unwrap_or_default();
            let mut report = check_one(kind, i, p, digest, opts);
            extra(i, &mut report);
            report
        })
        .collect()
}

/// Every check of one signature of a `kind` file whose digest is `computed`: the format's
/// indirect data, the digests, the signature, its time stamps (each validated once), then
/// the policy.
pub(crate) fn check_one(
    kind: FileKind,
    index: &str,
    p: &ParsedSignature,
    computed: &[u8],
    opts: &VerifyOptions,
) -> SignatureReport {
    let stamps = check_timestamps(p);
    let reports = stamps.iter().map(|f| f.report.clone()).collect();
    let mut report = check_signature_at(index.to_string(), p, computed, reports);
    if let Err(why) = crate::format::check_indirect_data(kind, &p.spc.data) {
        report.errors.insert(
            0,
            Finding::signature(FindingCode::WrongIndirectData, index, why),
        );
    }
    apply_policy(&mut report, p, &stamps, opts);
    report
}

pub(crate) fn finish_report(
    trust: TrustCheck,
    kind: FileKind,
    file_len: u64,
    checksums: Option<(u32, u32)>,
    signatures: Vec<SignatureReport>,
    errors: Vec<Finding>,
    warnings: Vec<Finding>,
) -> VerifyReport {
    let valid = errors.is_empty()
        && !signatures.is_empty()
        && signatures.iter().all(SignatureReport::is_valid);
    VerifyReport {
        kind,
        trust,
        revocation: RevocationPolicy::Off,
        file_len,
        checksum_in_header: checksums.map(|c| c.0),
        checksum_computed: checksums.map(|c| c.1),
        signatures,
        errors,
        warnings,
        valid,
    }
}

/// Reads the certificate table bytes of `pe`.
pub(crate) fn read_cert_table<R: Read + Seek>(r: &mut R, pe: &PeInfo) -> Result<Vec<u8>> {
    let loc = pe.cert_table.ok_or(Error::NotSigned)?;
    if loc.size > MAX_CERT_TABLE {
        return Err(Error::cert_table(format!(
            "the table is {} bytes; codeseal reads at most {MAX_CERT_TABLE}",
            loc.size
        )));
    }
    r.seek(SeekFrom::Start(loc.offset))
        .map_err(|e| Error::io("seeking to the certificate table", e))?;
    let mut table = vec![0u8; loc.size as usize];
    r.read_exact(&mut table)
        .map_err(|e| Error::io("reading the certificate table", e))?;
    Ok(table)
}

/// Checks one parsed signature against a computed image digest.
pub(crate) fn check_signature(
    index: usize,
    sig: &ParsedSignature,
    computed: &[u8],
) -> SignatureReport {
    check_signature_at(index.to_string(), sig, computed, Vec::new())
}

fn check_signature_at(
    index: String,
    sig: &ParsedSignature,
    computed: &[u8],
    timestamps: Vec<TimestampReport>,
) -> SignatureReport {
    let alg = sig.digest_algorithm;
    let at = |code, m: String| Finding::signature(code, &index, m);
    let mut errors = Vec::new();
    let image_digest_ok = sig.image_digest() == computed;
    if !image_digest_ok {
        errors.push(at(FindingCode::ImageDigestMismatch, "the file's digest does not match the signed digest (the file was modified after signing)".into()));
    }
    let message_digest_ok = match sig.message_digest_attr() {
        Ok(md) => md == alg.digest(sig.spc_content),
        Err(e) => {
            errors.push(at(FindingCode::MalformedSignature, e.to_string()));
            false
        }
    };
    if !message_digest_ok {
        errors.push(at(
            FindingCode::MessageDigestMismatch,
            "the messageDigest attribute does not match the SpcIndirectDataContent".into(),
        ));
    }
    let signer = sig.signer_certificate();
    let signature_ok = match signer {
        None => {
            errors.push(at(
                FindingCode::SignerCertificateMissing,
                "the signer's certificate is not in the signature".into(),
            ));
            false
        }
        Some(cert) => {
            let tbs = alg.digest(&sig.signed_attrs_der);
            match verify_prehash(
                &cert.tbs_certificate.subject_public_key_info,
                alg,
                &tbs,
                sig.signer_info.signature.as_bytes(),
            ) {
                Ok(()) => true,
                Err(e) => {
                    errors.push(at(
                        FindingCode::SignatureInvalid,
                        format!("the signature over the signed attributes is invalid: {e}"),
                    ));
                    false
                }
            }
        }
    };
    // Unhashed bytes inside the entry after the signature (CVE-2013-3900 shape): more than
    // the 7 bytes of alignment padding is refused; non-zero padding is reported, and refused
    // under the strict policy (Windows' EnableCertPaddingCheck).
    let mut padding_warning = None;
    if sig.trailing_len > 7 {
        errors.push(at(FindingCode::UnsignedBytesInEntry, format!(
            "{} unsigned bytes follow the signature inside its WIN_CERTIFICATE entry (at most 7 bytes of padding are allowed; CVE-2013-3900)",
            sig.trailing_len
        )));
    } else if sig.trailing_nonzero {
        padding_warning = Some(at(FindingCode::NonZeroPadding,
            "non-zero bytes in the WIN_CERTIFICATE padding after the signature (refused by strict verification; CVE-2013-3900)"
                .to_string(),
        ));
    }
    let mut warnings: Vec<Finding> = sig
        .notes
        .iter()
        .map(|n| at(FindingCode::SignatureStructure, n.clone()))
        .collect();
    // Unsigned attributes are not covered by the signature: anything but nested signatures
    // and time stamps is data someone could have added (e.g. installer "tags").
    let known = [
        crate::oid::SPC_NESTED_SIGNATURE,
        crate::oid::SPC_RFC3161_TIMESTAMP,
        crate::oid::PKCS9_COUNTERSIGNATURE,
    ];
    for a in &sig.unsigned {
        if !known.contains(&a.oid) {
            warnings.push(at(
                FindingCode::UnknownUnsignedAttribute,
                format!(
                    "unknown unsigned attribute {} with {} value(s) (not covered by the signature)",
                    a.oid, a.count
                ),
            ));
        }
    }
    warnings.extend(padding_warning);
    let opus = sig.opus_info();
    SignatureReport {
        nested: index.contains('.'),
        index,
        page_hashes_ok: None,
        timestamps,
        chain: None,
        digest_algorithm: alg,
        signed_digest: hex::encode(sig.image_digest()),
        computed_digest: hex::encode(computed),
        image_digest_ok,
        message_digest_ok,
        signature_ok,
        signer: signer.map(CertSummary::of),
        certificates: sig.certificates().map(CertSummary::of).collect(),
        program_name: opus
            .as_ref()
            .and_then(|o| o.program_name.as_ref())
            .map(|s| s.to_text()),
        more_info: opus.and_then(|o| match o.more_info {
            Some(crate::spc::SpcLink::Url(u)) => Some(u.to_string()),
            _ => None,
        }),
        errors,
        warnings,
    }
}

/// Verifies the Authenticode signatures of the PE file in `r` under the policy `opts`.
pub(crate) fn verify_with<R: Read + Seek>(r: &mut R, opts: &VerifyOptions) -> Result<VerifyReport> {
    let pe = PeInfo::read(r)?;
    let table = read_cert_table(r, &pe)?;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let after = pe.bytes_after_cert_table();
    let table_offset = pe.cert_table.map_or(0, |t| t.offset);
    if after > 0 {
        errors.push(
            Finding::file(
                FindingCode::DataAfterCertificateTable,
                format!("{after} bytes follow the certificate table; a signature does not cover them (CVE-2012-0151)"),
            )
            .at(table_offset + table.len() as u64),
        );
    }
    let (entries, notes) = parse_table(&table)?;
    warnings.extend(
        notes
            .into_iter()
            .map(|n| Finding::file(FindingCode::CertificateTableLayout, n.0).at(table_offset)),
    );
    let mut top = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        // Like osslsigncode and signify, only revision-2.0 PKCS#7 entries are signatures.
        if e.cert_type != WIN_CERT_TYPE_PKCS_SIGNED_DATA || e.revision != WIN_CERT_REVISION_2_0 {
            warnings.push(
                Finding::file(
                    FindingCode::NotASignatureEntry,
                    format!(
                        "entry {i} (wRevision {:#06x}, wCertificateType {:#x}) is not an Authenticode signature; not verified",
                        e.revision, e.cert_type
                    ),
                )
                .at(table_offset + e.offset as u64),
            );
            continue;
        }
        top.push((i.to_string(), e.data));
    }
    let parsed = collect_signatures(top, &mut errors);
    if parsed.is_empty() && errors.is_empty() {
        return Err(Error::NotSigned);
    }
    let algs = algorithms(&parsed);
    // Page-hash tables to recompute, one per algorithm in use.
    let mut page_tables: Vec<(String, DigestAlgorithm, Vec<u8>)> = Vec::new();
    for (index, p) in &parsed {
        match page_hashes_of(&p.spc) {
            Ok(Some((alg, table))) => page_tables.push((index.clone(), alg, table)),
            Ok(None) => {}
            Err(e) => errors.push(Finding::signature(
                FindingCode::PageHashUnreadable,
                index,
                e.to_string(),
            )),
        }
    }
    let mut page_algs: Vec<DigestAlgorithm> = page_tables.iter().map(|(_, a, _)| *a).collect();
    page_algs.sort_by_key(|a| a.output_len());
    page_algs.dedup();
    let mut hashers = Vec::new();
    for a in &page_algs {
        match PageHasher::new(&pe, *a) {
            Ok(h) => hashers.push(h),
            Err(e) => errors.push(Finding::file(
                FindingCode::PageHashUnreadable,
                format!("page hashes cannot be checked: {e}"),
            )),
        }
    }
    let pass = stream_image_with_pages(r, &pe, &algs, None, &mut hashers)?;
    let computed_pages: Vec<(DigestAlgorithm, Vec<u8>)> =
        hashers.into_iter().map(PageHasher::finish).collect();
    // The checksum covers the table too.
    let mut cks = pass.checksum.clone();
    cks.update(pe.security_dir_offset, &{
        let mut d = [0u8; 8];
        if let Some(t) = pe.cert_table {
            d[..4].copy_from_slice(&(t.offset as u32).to_le_bytes());
            d[4..].copy_from_slice(&(t.size as u32).to_le_bytes());
        }
        d
    });
    if let Some(t) = pe.cert_table {
        cks.update(t.offset, &table);
        // Bytes after the table also count; they were read neither by the pass nor here.
        if after > 0 {
            warnings.push(Finding::file(
                FindingCode::ChecksumIncomplete,
                "checksum not computed over the bytes after the certificate table",
            ));
        }
    }
    let checksum_computed = cks.finish(pe.file_len);
    if pe.checksum != checksum_computed {
        warnings.push(
            Finding::file(
                FindingCode::ChecksumMismatch,
                format!(
                    "the PE CheckSum is {:#010x}; the file's checksum is {checksum_computed:#010x} (not covered by the signature)",
                    pe.checksum
                ),
            )
            .at(pe.checksum_offset),
        );
    }
    let signatures = check_all(
        FileKind::Pe,
        &parsed,
        |alg| pass.digest(alg),
        |i, report| {
            if let Some((_, alg, table)) = page_tables.iter().find(|(idx, _, _)| idx == i) {
                let ok = computed_pages.iter().any(|(a, t)| a == alg && t == table);
                report.page_hashes_ok = Some(ok);
                if !ok {
                    report.errors.push(Finding::signature(
                        FindingCode::PageHashMismatch,
                        i,
                        format!("the {alg} page hashes do not match the file"),
                    ));
                }
            }
        },
        opts,
    );
    Ok(finish_report(
        opts.trust(),
        FileKind::Pe,
        pe.file_len,
        Some((pe.checksum, checksum_computed)),
        signatures,
        errors,
        warnings,
    ))
}
