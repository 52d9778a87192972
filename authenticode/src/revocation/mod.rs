//! Revocation checking for the signer chain and the time-stamp chains: CRLs (from files the
//! caller gives, from the signature's own `crls` field, and from each certificate's HTTP CRL
//! distribution points) and OCSP (the responder named in the certificate's authority
//! information access).
//!
//! # Policies
//!
//! [`RevocationPolicy::Off`] checks nothing and opens no connection; it is the library's
//! default, so that verifying stays offline, deterministic and free of side effects unless a
//! caller asks for more (a service or a batch job must choose to reach the network). The
//! `codeseal` CLI defaults to [`RevocationPolicy::Soft`] when trust anchors are given, which
//! is what Windows' Authenticode policy does by default: a certificate whose status cannot
//! be learnt (responder down, no CRL) is accepted with a warning, and one reported revoked
//! is refused. [`RevocationPolicy::Hard`] refuses a certificate without an answer.
//!
//! # Time
//!
//! As on Windows, a signature whose trusted time stamp precedes its certificate's
//! revocation date stays valid (the key was good when it signed); a revocation at or before
//! that time, or any revocation of a signature without a trusted time stamp, makes it
//! invalid. For a TSA certificate the time stamp's own time is compared the same way, except
//! that a revocation for key (or CA) compromise invalidates the time stamp whatever its date
//! (a stolen TSA key can write any time).
//!
//! # Order and bounds
//!
//! For each certificate of a trusted chain (the anchor excepted): the CRLs at hand (caller's
//! files, then the signature's), then OCSP, then the distribution points; the first
//! definitive answer decides and [`CertRevocation`] says which. Each URL is fetched at most
//! once per [`RevocationOptions`] (clones share the record, so a batch verified with one
//! verifier fetches once), with a per-request timeout and a size cap (CRLs 10 MiB, OCSP
//! 64 KiB by default); answers with a `nextUpdate` are kept in the optional cache directory
//! until then. Only `http://` URLs are fetched.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use codeseal_signer::DigestAlgorithm;
use const_oid::ObjectIdentifier;
use serde::Serialize;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::{
    ext::pkix::{
        name::{DistributionPointName, GeneralName},
        AuthorityInfoAccessSyntax, CrlDistributionPoints, CrlReason,
    },
    Certificate,
};

mod crl;
mod ocsp;
mod transport;

pub(crate) use crl::{embedded as embedded_crls, Crl};
#[cfg(feature = "fuzzing")]
pub(crate) use ocsp::check as ocsp_check;
#[cfg(feature = "tsa-http")]
pub use transport::UreqRevocationTransport;
pub use transport::{FetchError, RevocationTransport};

/// Clock skew tolerated on `thisUpdate` / `nextUpdate`.
pub(crate) const SKEW: Duration = Duration::from_secs(300);
/// The default cap on a CRL.
pub const DEFAULT_CRL_LIMIT: u64 = 10 << 20;
/// The default cap on an OCSP answer.
pub const DEFAULT_OCSP_LIMIT: u64 = 64 << 10;
/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default total time for all fetches of one [`RevocationOptions`] (and its clones).
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(60);
/// At most this many distribution points / responders are tried per certificate.
const MAX_URLS: usize = 4;

const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

/// What to do about revocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationPolicy {
    /// No checks and no network (the library default).
    #[default]
    Off,
    /// Revoked is invalid; no answer is a warning (Windows' default; the CLI's default).
    Soft,
    /// Revoked is invalid, and so is no answer.
    Hard,
}

impl std::str::FromStr for RevocationPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "soft" => Ok(Self::Soft),
            "hard" => Ok(Self::Hard),
            _ => Err(format!(
                "revocation policy {s:?}: expected off, soft or hard"
            )),
        }
    }
}

/// Why a source gave no usable answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// The fetch failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The CRL or OCSP answer cannot be parsed.
    #[error("{what}: malformed: {why}")]
    Malformed {
        /// Which answer.
        what: String,
        /// The parser's complaint.
        why: String,
    },
    /// Its signature does not verify.
    #[error("{what}: bad signature: {why}")]
    Signature {
        /// Which answer.
        what: String,
        /// Why.
        why: String,
    },
    /// A CRL issued by someone else than the certificate's issuer.
    #[error("{0} is not issued by the certificate's issuer")]
    WrongIssuer(String),
    /// The signer has no authority to answer for this certificate.
    #[error("{0}")]
    Unauthorized(String),
    /// A kind of CRL or answer this code does not use.
    #[error("{0}")]
    Unsupported(String),
    /// `thisUpdate` is in the future.
    #[error("{what}: thisUpdate {this_update} is in the future")]
    NotYetValid {
        /// Which answer.
        what: String,
        /// Its thisUpdate.
        this_update: String,
    },
    /// `nextUpdate` has passed.
    #[error("{what}: stale (nextUpdate {next_update})")]
    Stale {
        /// Which answer.
        what: String,
        /// Its nextUpdate.
        next_update: String,
    },
    /// The OCSP answer echoes another nonce.
    #[error("{0}: the nonce is not the one sent (replayed answer)")]
    NonceMismatch(String),
    /// The OCSP answer has no definitive status for this certificate.
    #[error("{0}: no status for this certificate")]
    NoStatus(String),
    /// The responder refused (tryLater, unauthorized, ...).
    #[error("{what}: the responder answered {status}")]
    Refused {
        /// Which responder.
        what: String,
        /// Its responseStatus.
        status: String,
    },
}

/// A definitive answer: revoked (when, why) or not, and the answer's validity window.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub revoked: Option<(u64, Option<String>)>,
    pub this_update: Option<u64>,
    pub next_update: Option<u64>,
}

pub(crate) fn reason_text(r: CrlReason) -> String {
    match r {
        CrlReason::Unspecified => "unspecified",
        CrlReason::KeyCompromise => "keyCompromise",
        CrlReason::CaCompromise => "cACompromise",
        CrlReason::AffiliationChanged => "affiliationChanged",
        CrlReason::Superseded => "superseded",
        CrlReason::CessationOfOperation => "cessationOfOperation",
        CrlReason::CertificateHold => "certificateHold",
        CrlReason::RemoveFromCRL => "removeFromCRL",
        CrlReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        CrlReason::AaCompromise => "aACompromise",
    }
    .to_string()
}

/// Verifies `sig` by `spki` over `tbs` with the certificate-style signature algorithm `alg`.
pub(crate) fn verify_signed(
    tbs: &[u8],
    alg: &ObjectIdentifier,
    sig: &[u8],
    spki: &SubjectPublicKeyInfoOwned,
) -> Result<(), String> {
    let d: DigestAlgorithm = crate::chain::digest_of_sig_alg(alg)
        .ok_or_else(|| format!("unsupported signature algorithm {alg}"))?;
    codeseal_signer::verify_prehash(spki, d, &d.digest(tbs), sig).map_err(|e| e.to_string())
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationSource {
    /// A CRL.
    Crl,
    /// An OCSP responder.
    Ocsp,
}

/// The status found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationState {
    /// Not revoked, per a current answer.
    Good,
    /// Revoked.
    Revoked,
    /// No source gave an answer.
    Unknown,
}

/// The revocation status of one certificate of a chain, and which check decided.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct CertRevocation {
    /// The certificate's subject.
    pub subject: String,
    /// Its serial number, hex.
    pub serial: String,
    /// What was found.
    pub state: RevocationState,
    /// Where the deciding answer came from.
    pub source: Option<RevocationSource>,
    /// The URL, `file:NAME` (a CRL the caller gave) or `signature` (the SignedData's crls).
    pub origin: Option<String>,
    /// Whether the answer came from the on-disk cache.
    pub cached: bool,
    /// When it was revoked (RFC 3339), if it was.
    pub revoked_at: Option<String>,
    /// The same, seconds since the Unix epoch.
    pub revoked_at_unix: Option<u64>,
    /// The revocation reason, if given.
    pub reason: Option<String>,
    /// The answer's thisUpdate / nextUpdate (Unix seconds).
    pub this_update: Option<u64>,
    /// See `this_update`.
    pub next_update: Option<u64>,
    /// What the verifier concluded (e.g. "revoked after the trusted time stamp: still valid").
    pub verdict: String,
    /// Sources that gave no usable answer, and why.
    pub problems: Vec<String>,
}

#[derive(Clone, Debug)]
struct Fetched {
    der: Arc<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    cached: bool,
}

type Slot = Arc<OnceLock<Result<Fetched, FetchError>>>;

/// The per-run record of fetches: one slot per URL (CRLs) or URL + CertID (OCSP).
#[derive(Debug, Default)]
struct Memo {
    slots: Mutex<HashMap<String, Slot>>,
    /// Cache files written in this run (each once).
    stored: Mutex<std::collections::HashSet<String>>,
    /// Time spent fetching so far.
    spent: Mutex<Duration>,
}

impl Memo {
    fn slot(&self, key: String) -> Slot {
        let mut m = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.entry(key).or_default().clone()
    }
}

/// Revocation settings: the policy, CRLs given by the caller, the cache, limits and the
/// transport. Clones share the record of what was fetched in this run.
#[derive(Clone)]
pub struct RevocationOptions {
    policy: RevocationPolicy,
    crls: Vec<(String, Arc<Crl>)>,
    cache_dir: Option<PathBuf>,
    timeout: Duration,
    budget: Duration,
    crl_limit: u64,
    ocsp_limit: u64,
    transport: Arc<dyn RevocationTransport>,
    memo: Arc<Memo>,
}

impl std::fmt::Debug for RevocationOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationOptions")
            .field("policy", &self.policy)
            .field(
                "crls",
                &self.crls.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("cache_dir", &self.cache_dir)
            .field("timeout", &self.timeout)
            .field("budget", &self.budget)
            .field("crl_limit", &self.crl_limit)
            .field("ocsp_limit", &self.ocsp_limit)
            .finish_non_exhaustive()
    }
}

impl Default for RevocationOptions {
    fn default() -> Self {
        Self::new(RevocationPolicy::Off)
    }
}

impl RevocationOptions {
    /// Settings with `policy`, no CRL files, no cache, the default limits and the built-in
    /// HTTP client (feature `tsa-http`).
    pub fn new(policy: RevocationPolicy) -> Self {
        #[cfg(feature = "tsa-http")]
        let transport: Arc<dyn RevocationTransport> = Arc::new(UreqRevocationTransport);
        #[cfg(not(feature = "tsa-http"))]
        let transport: Arc<dyn RevocationTransport> = Arc::new(transport::NoRevocationTransport);
        Self {
            policy,
            crls: Vec::new(),
            cache_dir: None,
            timeout: DEFAULT_TIMEOUT,
            budget: DEFAULT_BUDGET,
            crl_limit: DEFAULT_CRL_LIMIT,
            ocsp_limit: DEFAULT_OCSP_LIMIT,
            transport,
            memo: Arc::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> RevocationPolicy {
        self.policy
    }

    /// Adds a CRL (DER, or PEM `X509 CRL`) the caller has, named `name` in reports. It is
    /// used for certificates of its issuer while current.
    pub fn with_crl(mut self, name: &str, data: &[u8]) -> Result<Self, RevocationError> {
        let der = pem_or_der(data, "X509 CRL").ok_or_else(|| RevocationError::Malformed {
            what: name.to_string(),
            why: "neither DER nor a PEM X509 CRL".into(),
        })?;
        let crl = Crl::parse(&der, name)?;
        self.crls.push((format!("file:{name}"), Arc::new(crl)));
        Ok(self)
    }

    /// Keeps CRLs and OCSP answers in `dir` until their `nextUpdate`.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The per-request timeout (connection, headers and body).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The total time all fetches may take (default [`DEFAULT_BUDGET`]): once spent, further
    /// URLs are not fetched (a [`FetchError::BudgetSpent`] answer), so that a run against
    /// servers that do not answer ends in bounded time.
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Runs `fetch` unless the budget is spent, and counts its time.
    fn timed(
        &self,
        url: &str,
        fetch: impl FnOnce(Duration) -> Result<Vec<u8>, FetchError>,
    ) -> Result<Vec<u8>, FetchError> {
        let spent = *self
            .memo
            .spent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let left = self.budget.saturating_sub(spent);
        if left.is_zero() {
            return Err(FetchError::BudgetSpent {
                url: url.to_string(),
                secs: self.budget.as_secs(),
            });
        }
        let t0 = std::time::Instant::now();
        let r = fetch(self.timeout.min(left));
        *self
            .memo
            .spent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += t0.elapsed();
        r
    }

    /// Caps on a CRL and on an OCSP answer, in bytes.
    pub fn with_limits(mut self, crl: u64, ocsp: u64) -> Self {
        self.crl_limit = crl;
        self.ocsp_limit = ocsp;
        self
    }

    /// Fetches through `transport` instead of the built-in client.
    pub fn with_transport(mut self, transport: Arc<dyn RevocationTransport>) -> Self {
        self.transport = transport;
        self
    }

    /// Checks each certificate of `path` (leaf first) against the next one, the last (the
    /// trust anchor) excepted. `in_signature` are the CRLs the signature carries.
    pub(crate) fn check_path(
        &self,
        path: &[Certificate],
        in_signature: &[Crl],
    ) -> Vec<CertRevocation> {
        if self.policy == RevocationPolicy::Off {
            return Vec::new();
        }
        path.windows(2)
            .filter_map(|w| match w {
                [c, i] => Some(self.check_one(c, i, in_signature)),
                _ => None,
            })
            .collect()
    }

    fn check_one(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        in_signature: &[Crl],
    ) -> CertRevocation {
        let now = now_unix();
        let mut problems = Vec::new();
        let decided = |source, origin: String, cached, a: Answer, problems: Vec<String>| {
            let (state, revoked_at_unix, reason) = match a.revoked {
                Some((t, r)) => (RevocationState::Revoked, Some(t), r),
                None => (RevocationState::Good, None, None),
            };
            CertRevocation {
                subject: crate::chain::name_text(&cert.tbs_certificate.subject),
                serial: hex::encode(cert.tbs_certificate.serial_number.as_bytes()),
                state,
                source: Some(source),
                origin: Some(origin),
                cached,
                revoked_at: revoked_at_unix.map(rfc3339),
                revoked_at_unix,
                reason,
                this_update: a.this_update,
                next_update: a.next_update,
                verdict: String::new(),
                problems,
            }
        };
        // 1. CRLs at hand.
        let at_hand = self
            .crls
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_ref()))
            .chain(in_signature.iter().map(|c| ("signature", c)));
        for (origin, crl) in at_hand {
            if !crl.named_for(issuer) {
                continue;
            }
            match crl.status_of(cert, issuer, now, origin) {
                Ok(a) => return decided(RevocationSource::Crl, origin.into(), false, a, problems),
                Err(e) => problems.push(e.to_string()),
            }
        }
        // 2. OCSP.
        let (ocsp_urls, crl_urls) = urls(cert);
        for url in ocsp_urls.iter().take(MAX_URLS) {
            match self.ocsp(url, cert, issuer, now) {
                Ok((a, cached)) => {
                    return decided(RevocationSource::Ocsp, url.clone(), cached, a, problems)
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        // 3. CRL distribution points.
        for url in crl_urls.iter().take(MAX_URLS) {
            match self.crl(url, cert, issuer, now) {
                Ok((a, cached)) => {
                    return decided(RevocationSource::Crl, url.clone(), cached, a, problems)
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if ocsp_urls.is_empty() && crl_urls.is_empty() && problems.is_empty() {
            problems.push("no CRL distribution point, OCSP responder or CRL at hand".into());
        }
        CertRevocation {
            subject: crate::chain::name_text(&cert.tbs_certificate.subject),
            serial: hex::encode(cert.tbs_certificate.serial_number.as_bytes()),
            state: RevocationState::Unknown,
            source: None,
            origin: None,
            cached: false,
            revoked_at: None,
            revoked_at_unix: None,
            reason: None,
            this_update: None,
            next_update: None,
            verdict: String::new(),
            problems,
        }
    }

    fn ocsp(
        &self,
        url: &str,
        cert: &Certificate,
        issuer: &Certificate,
        now: Duration,
    ) -> Result<(Answer, bool), RevocationError> {
        let id = ocsp::cert_id(cert, issuer).map_err(|why| RevocationError::Malformed {
            what: "the OCSP request".into(),
            why,
        })?;
        let id_der = der::Encode::to_der(&id).unwrap_or_default();
        let key = format!("ocsp {url} {}", hex::encode(&id_der));
        let slot = self.memo.slot(key.clone());
        let what = format!("OCSP {url}");
        let fetched = slot
            .get_or_init(|| {
                if let Some(der) = self.cache_load(&key, self.ocsp_limit, now, ocsp::next_update_of)
                {
                    return Ok(Fetched {
                        der: Arc::new(der),
                        nonce: None,
                        cached: true,
                    });
                }
                let mut nonce = vec![0u8; 16];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
                let body = ocsp::request(&id, &nonce).map_err(|why| FetchError::Connect {
                    url: url.to_string(),
                    why,
                })?;
                let der = self.timed(url, |t| {
                    self.transport
                        .post(url, "application/ocsp-request", &body, t, self.ocsp_limit)
                })?;
                Ok(Fetched {
                    der: Arc::new(der),
                    nonce: Some(nonce),
                    cached: false,
                })
            })
            .clone()?;
        let a = ocsp::check(
            &fetched.der,
            cert,
            issuer,
            fetched.nonce.as_deref(),
            now,
            &what,
        )?;
        if !fetched.cached {
            self.cache_store(&key, &fetched.der, a.next_update, now);
        }
        Ok((a, fetched.cached))
    }

    fn crl(
        &self,
        url: &str,
        cert: &Certificate,
        issuer: &Certificate,
        now: Duration,
    ) -> Result<(Answer, bool), RevocationError> {
        // The cache is keyed by URL and issuer key; the per-run record by URL.
        let issuer_key = DigestAlgorithm::Sha256.digest(
            issuer
                .tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        );
        let cache_key = format!("crl {url} {}", hex::encode(issuer_key));
        let slot = self.memo.slot(format!("crl {url}"));
        let what = format!("CRL {url}");
        let fetched = slot
            .get_or_init(|| {
                if let Some(der) = self.cache_load(&cache_key, self.crl_limit, now, |d| {
                    Crl::parse(d, "cache")
                        .ok()?
                        .list
                        .tbs_cert_list
                        .next_update
                        .map(|t| t.to_unix_duration().as_secs())
                }) {
                    return Ok(Fetched {
                        der: Arc::new(der),
                        nonce: None,
                        cached: true,
                    });
                }
                let der = self.timed(url, |t| self.transport.get(url, t, self.crl_limit))?;
                Ok(Fetched {
                    der: Arc::new(der),
                    nonce: None,
                    cached: false,
                })
            })
            .clone()?;
        let crl = Crl::parse(&fetched.der, &what)?;
        let a = crl.status_of(cert, issuer, now, &what)?;
        if !fetched.cached {
            self.cache_store(&cache_key, &fetched.der, a.next_update, now);
        }
        Ok((a, fetched.cached))
    }

    fn cache_file(&self, key: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let h = hex::encode(DigestAlgorithm::Sha256.digest(key.as_bytes()));
        let kind = key.split(' ').next().unwrap_or("x");
        Some(dir.join(format!("{kind}-{h}.der")))
    }

    /// A cached answer still before its nextUpdate (checked again on use).
    fn cache_load(
        &self,
        key: &str,
        limit: u64,
        now: Duration,
        next_update: impl Fn(&[u8]) -> Option<u64>,
    ) -> Option<Vec<u8>> {
        let path = self.cache_file(key)?;
        let len = std::fs::metadata(&path).ok()?.len();
        if len > limit {
            return None;
        }
        let der = read_capped(&path, limit)?;
        let next = next_update(&der)?;
        (next > now.as_secs()).then_some(der)
    }

    /// Keeps an answer that has a nextUpdate in the future (best effort: a cache that cannot
    /// be written is not an error).
    fn cache_store(&self, key: &str, der: &[u8], next_update: Option<u64>, now: Duration) {
        let Some(path) = self.cache_file(key) else {
            return;
        };
        if next_update.is_none_or(|n| n <= now.as_secs()) {
            return;
        }
        let first = self
            .memo
            .stored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_string());
        if !first {
            return;
        }
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
            use std::io::Write;
            if tmp.write_all(der).is_ok() {
                if let Err(e) = tmp.persist(&path) {
                    tracing::debug!("revocation cache {}: {}", path.display(), e.error);
                }
            }
        }
    }
}

fn read_capped(path: &Path, limit: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).ok()?;
    let mut v = Vec::new();
    f.take(limit + 1).read_to_end(&mut v).ok()?;
    (v.len() as u64 <= limit).then_some(v)
}

/// DER as is, or the first PEM block labelled `label`.
pub(crate) fn pem_or_der(data: &[u8], label: &str) -> Option<Vec<u8>> {
    if data.first() == Some(&0x30) {
        return Some(data.to_vec());
    }
    let text = std::str::from_utf8(data).ok()?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text.get(start..)?.find(&end)?;
    let b64: String = text
        .get(start..stop)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// The OCSP responder URLs and CRL distribution point URLs of `cert` (`http://` only;
/// others are listed so that the report can say they were skipped).
fn urls(cert: &Certificate) -> (Vec<String>, Vec<String>) {
    let mut ocsp = Vec::new();
    let mut crl = Vec::new();
    if let Ok(Some((_, aia))) = cert.tbs_certificate.get::<AuthorityInfoAccessSyntax>() {
        for ad in aia.0 {
            if ad.access_method == ID_AD_OCSP {
                if let GeneralName::UniformResourceIdentifier(u) = ad.access_location {
                    ocsp.push(u.to_string());
                }
            }
        }
    }
    if let Ok(Some((_, cdp))) = cert.tbs_certificate.get::<CrlDistributionPoints>() {
        for dp in cdp.0 {
            // Points limited to some reasons or naming another CRL issuer give partial CRLs.
            if dp.reasons.is_some() || dp.crl_issuer.is_some() {
                continue;
            }
            if let Some(DistributionPointName::FullName(names)) = dp.distribution_point {
                for n in names {
                    if let GeneralName::UniformResourceIdentifier(u) = n {
                        crl.push(u.to_string());
                    }
                }
            }
        }
    }
    (ocsp, crl)
}

pub(crate) fn now_unix() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

pub(crate) fn rfc3339(unix: u64) -> String {
    der::DateTime::from_unix_duration(Duration::from_secs(unix))
        .map(|d| d.to_string())
        .unwrap_or_else(|_| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> Certificate {
        // Any well-formed certificate will do for the parsers' error paths.
        let pem = include_str!("../../../fuzz/pki/root.pem");
        crate::trust::certificates_from_bytes(pem.as_bytes())
            .ok()
            .and_then(|v| v.into_iter().next())
            .expect("a certificate")
    }

    #[test]
    fn hostile_crls_are_typed_errors() {
        for input in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x02\x01\x00",
            b"not DER at all",
            &[0x30; 4096],
        ] {
            match Crl::parse(input, "test") {
                Err(RevocationError::Malformed { .. }) => {}
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn hostile_ocsp_answers_are_typed_errors() {
        let c = cert();
        let now = now_unix();
        // Malformed, a refusal without a body, a successful status without responseBytes.
        for (input, want) in [
            (&b"\x30\x82\xff\xff"[..], "malformed"),
            (b"\x30\x03\x0a\x01\x03", "tryLater"),
            (b"\x30\x03\x0a\x01\x00", "without responseBytes"),
            (b"\x30\x03\x0a\x01\x09", "malformed"),
        ] {
            let e = ocsp::check(input, &c, &c, None, now, "test")
                .expect_err("an error")
                .to_string();
            assert!(
                e.to_lowercase().contains(&want.to_lowercase()),
                "{input:?}: {e}"
            );
        }
    }

    #[test]
    fn ocsp_requests_carry_the_nonce_and_cert_id() {
        let c = cert();
        let id = ocsp::cert_id(&c, &c).expect("id");
        let nonce = [7u8; 16];
        let der = ocsp::request(&id, &nonce).expect("request");
        let req = <x509_ocsp::OcspRequest as der::Decode>::from_der(&der).expect("decode");
        assert_eq!(req.tbs_request.request_list.len(), 1);
        assert_eq!(
            req.tbs_request.request_list.first().map(|r| &r.req_cert),
            Some(&id)
        );
        let exts = req.tbs_request.request_extensions.as_ref().expect("exts");
        let ext = exts.first().expect("nonce");
        assert!(ext.extn_value.as_bytes().ends_with(&nonce));
    }

    #[test]
    fn verifiers_with_revocation_and_stores_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<RevocationOptions>();
        check::<crate::trust::TrustStore>();
        check::<crate::Verifier>();
    }

    #[test]
    fn policy_names() {
        assert_eq!("hard".parse(), Ok(RevocationPolicy::Hard));
        assert_eq!("soft".parse(), Ok(RevocationPolicy::Soft));
        assert_eq!("off".parse(), Ok(RevocationPolicy::Off));
        assert!("maybe".parse::<RevocationPolicy>().is_err());
        assert_eq!(RevocationPolicy::default(), RevocationPolicy::Off);
    }

    #[test]
    fn pem_and_der_crls() {
        assert_eq!(pem_or_der(b"\x30\x00", "X509 CRL"), Some(vec![0x30, 0]));
        let pem = b"-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n";
        assert_eq!(pem_or_der(pem, "X509 CRL"), Some(vec![0x30, 0]));
        assert_eq!(pem_or_der(b"hello", "X509 CRL"), None);
    }
}
