//! Certificate chains: from a signer certificate, through the certificates a signature
//! carries, to caller-given trust anchors — each link's signature checked, validity at the
//! time that matters, CA basic constraints and key usage on issuers, and the leaf's purpose.
//!
//! This is a careful, small path builder for the Authenticode case (a handful of
//! certificates, depth-capped), not a general RFC 5280 implementation: no name constraints,
//! policies; revocation is checked afterwards on the path found (`crate::revocation`).
use std::time::Duration;

use codeseal_signer::{verify_prehash, DigestAlgorithm};
use const_oid::{db::rfc5912, ObjectIdentifier};
use der::Encode;
use serde::Serialize;
use x509_cert::{
    ext::pkix::{BasicConstraints, KeyUsage, KeyUsages},
    Certificate,
};

use crate::oid::{
    ANY_EXTENDED_KEY_USAGE, ID_CE_EXT_KEY_USAGE, ID_KP_CODE_SIGNING, ID_KP_TIME_STAMPING,
};

/// The longest chain followed.
pub const MAX_DEPTH: usize = 8;

/// What a chain was checked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Code signing (the Authenticode signer).
    CodeSigning,
    /// Time stamping (a TSA).
    TimeStamping,
}

/// The outcome of building and checking a chain.
#[derive(Clone, Debug, Serialize)]
pub struct ChainReport {
    /// Subjects from the leaf to the trust anchor, when a chain was found.
    pub path: Vec<String>,
    /// Whether the chain ends at a trust anchor and every check passed.
    pub trusted: bool,
    /// Why not.
    pub errors: Vec<String>,
    /// The revocation status of each certificate of the path but the anchor (empty when
    /// revocation was not checked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revocation: Vec<crate::revocation::CertRevocation>,
    /// The certificates of `path`.
    #[serde(skip)]
    pub(crate) certs: Vec<Certificate>,
}

pub(crate) fn digest_of_sig_alg(oid: &ObjectIdentifier) -> Option<DigestAlgorithm> {
    Some(match *oid {
        rfc5912::SHA_256_WITH_RSA_ENCRYPTION | rfc5912::ECDSA_WITH_SHA_256 => {
            DigestAlgorithm::Sha256
        }
        rfc5912::SHA_384_WITH_RSA_ENCRYPTION | rfc5912::ECDSA_WITH_SHA_384 => {
            DigestAlgorithm::Sha384
        }
        rfc5912::SHA_512_WITH_RSA_ENCRYPTION | rfc5912::ECDSA_WITH_SHA_512 => {
            DigestAlgorithm::Sha512
        }
        rfc5912::SHA_1_WITH_RSA_ENCRYPTION => DigestAlgorithm::Sha1,
        _ if oid.to_string() == "1.2.840.10045.4.1" => DigestAlgorithm::Sha1,
        _ => return None,
    })
}

/// Whether `issuer`'s key signed `cert`.
pub fn issued_by(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err("issuer name differs".into());
    }
    let alg = digest_of_sig_alg(&cert.signature_algorithm.oid).ok_or_else(|| {
        format!(
            "unsupported certificate signature algorithm {}",
            cert.signature_algorithm.oid
        )
    })?;
    let tbs = cert.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    let sig = cert
        .signature
        .as_bytes()
        .ok_or("certificate signature has unused bits")?;
    verify_prehash(
        &issuer.tbs_certificate.subject_public_key_info,
        alg,
        &alg.digest(&tbs),
        sig,
    )
    .map_err(|e| e.to_string())
}

/// The same certificate: equal signatures (which differ between any two certificates in
/// practice, so most comparisons stop there) and equal decoded contents. Encoding both to
/// DER, as this did, cost most of a verification against a store of hundreds of roots.
fn same(a: &Certificate, b: &Certificate) -> bool {
    a.signature == b.signature && a == b
}

fn valid_at(c: &Certificate, t: Duration) -> bool {
    let v = &c.tbs_certificate.validity;
    t >= v.not_before.to_unix_duration() && t <= v.not_after.to_unix_duration()
}

fn subject(c: &Certificate) -> String {
    name_text(&c.tbs_certificate.subject)
}

/// Characters of a rendered name kept in reports and messages.
const NAME_TEXT_MAX: usize = 1024;

/// A distinguished name as RFC 4514 text (most significant RDN last, as `x509-cert` renders
/// it), cut after about [`NAME_TEXT_MAX`] characters with the number of attribute values left
/// out: a crafted certificate can carry a name of 100,000 values, which would otherwise be
/// rendered whole into every report line that names it.
pub(crate) fn name_text(name: &x509_cert::name::Name) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut left = 0usize;
    for (i, rdn) in name.0.iter().rev().enumerate() {
        for (j, ava) in rdn.0.iter().enumerate() {
            if out.len() >= NAME_TEXT_MAX {
                left += 1;
                continue;
            }
            let sep = match (i, j) {
                (0, 0) => "",
                (_, 0) => ",",
                _ => "+",
            };
            // Writing to a String cannot fail.
            let _ = write!(out, "{sep}{ava}");
        }
    }
    if out.len() > NAME_TEXT_MAX {
        let mut cut = NAME_TEXT_MAX;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    if left > 0 {
        let _ = write!(out, " (+{left} more attribute values)");
    }
    out
}

fn check_issuer_ca(c: &Certificate) -> Result<(), String> {
    match c.tbs_certificate.get::<BasicConstraints>() {
        Ok(Some((_, bc))) if bc.ca => {}
        Ok(_) => {
            return Err(format!(
                "{} is used as an issuer but is not a CA",
                subject(c)
            ))
        }
        Err(e) => return Err(format!("{}: bad basic constraints: {e}", subject(c))),
    }
    if let Ok(Some((_, ku))) = c.tbs_certificate.get::<KeyUsage>() {
        if !ku.0.contains(KeyUsages::KeyCertSign) {
            return Err(format!(
                "{} may not sign certificates (key usage)",
                subject(c)
            ));
        }
    }
    Ok(())
}

/// The extended key usage extension of a certificate, read without decoding the OIDs it
/// lists: real certificates carry private OIDs with arcs wider than `const-oid` reads
/// (Microsoft's `1.3.6.1.4.1.311.97.368317130....`), which must not make the extension unreadable.
#[derive(Clone, Debug)]
pub(crate) struct Eku {
    /// Whether the extension is critical.
    pub critical: bool,
    oids: Vec<Vec<u8>>,
}

impl Eku {
    /// Reads `cert`'s extendedKeyUsage: `Ok(None)` when absent.
    pub fn of(cert: &Certificate) -> Result<Option<Self>, String> {
        let Some(ext) = cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == ID_CE_EXT_KEY_USAGE)
        else {
            return Ok(None);
        };
        let seq = crate::asn1::Tlv::exactly(ext.extn_value.as_bytes())
            .and_then(|t| t.expect(crate::asn1::tag::SEQUENCE, "KeyPurposeIds (SEQUENCE)"))
            .map_err(|e| e.to_string())?;
        let mut oids = Vec::new();
        for o in seq.children() {
            let o = o
                .and_then(|o| o.expect(crate::asn1::tag::OID, "a KeyPurposeId"))
                .map_err(|e| e.to_string())?;
            oids.push(o.value.to_vec());
        }
        Ok(Some(Self {
            critical: ext.critical,
            oids,
        }))
    }

    /// Whether `oid` is listed.
    pub fn contains(&self, oid: &ObjectIdentifier) -> bool {
        self.oids.iter().any(|o| o.as_slice() == oid.as_bytes())
    }
}

/// Checks the leaf's purpose: extended key usage (when present) must allow `purpose`, and
/// key usage (when present) must allow digitalSignature.
pub fn check_leaf_purpose(leaf: &Certificate, purpose: Purpose) -> Result<(), String> {
    let want = match purpose {
        Purpose::CodeSigning => ID_KP_CODE_SIGNING,
        Purpose::TimeStamping => ID_KP_TIME_STAMPING,
    };
    match Eku::of(leaf) {
        Ok(Some(eku)) => {
            let allowed = eku.contains(&want)
                || (purpose == Purpose::CodeSigning && eku.contains(&ANY_EXTENDED_KEY_USAGE));
            if !allowed {
                return Err(format!(
                    "{} lacks the {} extended key usage",
                    subject(leaf),
                    if purpose == Purpose::CodeSigning {
                        "codeSigning"
                    } else {
                        "timeStamping"
                    }
                ));
            }
        }
        Ok(None) if purpose == Purpose::TimeStamping => {
            return Err(format!(
                "{} has no timeStamping extended key usage",
                subject(leaf)
            ))
        }
        Ok(None) => {}
        Err(e) => return Err(format!("{}: bad extended key usage: {e}", subject(leaf))),
    }
    if let Ok(Some((_, ku))) = leaf.tbs_certificate.get::<KeyUsage>() {
        if !ku.0.contains(KeyUsages::DigitalSignature) {
            return Err(format!(
                "{} may not make digital signatures (key usage)",
                subject(leaf)
            ));
        }
    }
    Ok(())
}

/// Builds a chain from `leaf` through `pool` to one of `anchors` and checks it at time `at`
/// (seconds since the Unix epoch).
pub fn verify_chain(
    leaf: &Certificate,
    pool: &[Certificate],
    anchors: &[Certificate],
    at: Duration,
    purpose: Purpose,
) -> ChainReport {
    let mut errors = Vec::new();
    if let Err(e) = check_leaf_purpose(leaf, purpose) {
        errors.push(e);
    }
    let mut path = vec![leaf.clone()];
    let mut trusted = false;
    while let Some(cur) = path.last().cloned() {
        if anchors.iter().any(|a| same(a, &cur)) {
            trusted = true;
            break;
        }
        if path.len() > MAX_DEPTH {
            errors.push(format!("no trust anchor within {MAX_DEPTH} certificates"));
            break;
        }
        // Prefer an anchor as the issuer, then the carried certificates.
        let next = anchors
            .iter()
            .chain(pool.iter())
            .filter(|c| !path.iter().any(|p| same(p, c)))
            .find(|c| issued_by(&cur, c).is_ok())
            .cloned();
        match next {
            Some(n) => path.push(n),
            None => {
                // A self-signed end of the path that is not an anchor, or a missing issuer.
                errors.push(format!(
                    "the chain from {} does not lead to a trusted root (stops at {})",
                    subject(leaf),
                    subject(&cur)
                ));
                break;
            }
        }
    }
    for (i, c) in path.iter().enumerate() {
        if !valid_at(c, at) {
            errors.push(format!(
                "{} is not valid at the signing time (valid {} to {})",
                subject(c),
                c.tbs_certificate.validity.not_before,
                c.tbs_certificate.validity.not_after
            ));
        }
        if i > 0 {
            if let Err(e) = check_issuer_ca(c) {
                // A trust anchor the caller chose is trusted as given.
                if !anchors.iter().any(|a| same(a, c)) {
                    errors.push(e);
                }
            }
        }
    }
    ChainReport {
        path: path.iter().map(subject).collect(),
        trusted: trusted && errors.is_empty(),
        errors,
        revocation: Vec::new(),
        certs: path,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use x509_cert::name::Name;

    #[test]
    fn a_short_name_renders_as_x509_cert_does() {
        let n = Name::from_str("CN=Leaf+serialNumber=7,O=Example,C=DE").unwrap();
        assert_eq!(name_text(&n), n.to_string());
    }

    #[test]
    fn a_name_of_many_values_is_cut_and_says_how_many_were_left_out() {
        let text: Vec<String> = (0..20_000).map(|i| format!("CN=n{i}")).collect();
        let n = Name::from_str(&text.join(",")).unwrap();
        let s = name_text(&n);
        assert!(s.len() < NAME_TEXT_MAX + 64, "{} chars", s.len());
        let left: usize = s
            .rsplit_once("(+")
            .and_then(|(_, t)| t.split_once(' '))
            .map(|(k, _)| k.parse().unwrap())
            .expect("count of values left out");
        let shown = s.matches("CN=").count();
        assert_eq!(shown + left, 20_000, "{s}");
        // What is shown is the start of the full rendering.
        let shown_text = s.split_once(" (+").map(|(a, _)| a).unwrap();
        assert!(n.to_string().starts_with(shown_text.trim_end_matches('…')));
    }
}
