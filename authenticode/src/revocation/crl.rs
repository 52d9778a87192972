//! Certificate revocation lists (RFC 5280 §5): a CRL is used for a certificate only when it
//! was signed by the certificate's issuer (name and key), the issuer may sign CRLs (key
//! usage), it is current (`thisUpdate` not in the future, `nextUpdate` not passed), it is a
//! complete CRL (no delta indicator, not indirect) and it has no critical extension this
//! code does not understand.
use std::time::Duration;

use const_oid::ObjectIdentifier;
use der::Decode;
use x509_cert::{
    crl::CertificateList,
    ext::pkix::{CrlReason, KeyUsage, KeyUsages},
    Certificate,
};

use super::{reason_text, verify_signed, Answer, RevocationError, SKEW};
use crate::asn1;

const ID_CE_CRL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.20");
const ID_CE_DELTA_CRL_INDICATOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.27");
const ID_CE_ISSUING_DISTRIBUTION_POINT: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.5.29.28");
const ID_CE_AUTHORITY_KEY_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
const ID_CE_CRL_REASONS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.21");
const ID_CE_INVALIDITY_DATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.24");
const ID_CE_CERTIFICATE_ISSUER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.29");

/// A parsed CRL with the bytes its signature covers.
#[derive(Clone, Debug)]
pub(crate) struct Crl {
    pub list: CertificateList,
    tbs: Vec<u8>,
}

impl Crl {
    /// Parses a DER CRL.
    pub fn parse(der: &[u8], what: &str) -> Result<Self, RevocationError> {
        let bad = |why: String| RevocationError::Malformed {
            what: what.to_string(),
            why,
        };
        let tbs = asn1::Tlv::exactly(der)
            .and_then(|t| t.expect(asn1::tag::SEQUENCE, "CertificateList (SEQUENCE)"))
            .and_then(|t| t.children().required("tbsCertList"))
            .map_err(|e| bad(e.to_string()))?
            .raw
            .to_vec();
        let list = CertificateList::from_der(der).map_err(|e| bad(e.to_string()))?;
        Ok(Self { list, tbs })
    }

    /// Whether this CRL names `issuer` as its issuer (a cheap filter before the signature).
    pub fn named_for(&self, issuer: &Certificate) -> bool {
        self.list.tbs_cert_list.issuer == issuer.tbs_certificate.subject
    }

    /// Checks that `issuer` signed this CRL, may sign CRLs, and that the CRL is a current,
    /// complete one; then looks up `cert`.
    pub fn status_of(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        now: Duration,
        what: &str,
    ) -> Result<Answer, RevocationError> {
        let tbs = &self.list.tbs_cert_list;
        if !self.named_for(issuer) {
            return Err(RevocationError::WrongIssuer(what.to_string()));
        }
        if let Ok(Some((_, ku))) = issuer.tbs_certificate.get::<KeyUsage>() {
            if !ku.0.contains(KeyUsages::CRLSign) {
                return Err(RevocationError::Unauthorized(format!(
                    "{what}: the issuer's key usage does not allow signing CRLs"
                )));
            }
        }
        let sig = self
            .list
            .signature
            .as_bytes()
            .ok_or_else(|| RevocationError::Malformed {
                what: what.to_string(),
                why: "the signature has unused bits".into(),
            })?;
        verify_signed(
            &self.tbs,
            &self.list.signature_algorithm.oid,
            sig,
            &issuer.tbs_certificate.subject_public_key_info,
        )
        .map_err(|why| RevocationError::Signature {
            what: what.to_string(),
            why,
        })?;
        for e in tbs.crl_extensions.iter().flatten() {
            match e.extn_id {
                ID_CE_DELTA_CRL_INDICATOR => {
                    return Err(RevocationError::Unsupported(format!(
                        "{what} is a delta CRL"
                    )))
                }
                ID_CE_ISSUING_DISTRIBUTION_POINT => {
                    if let Some(why) = idp_refusal(e.extn_value.as_bytes(), is_ca(cert)) {
                        return Err(RevocationError::Unsupported(format!("{what}: {why}")));
                    }
                }
                ID_CE_CRL_NUMBER | ID_CE_AUTHORITY_KEY_IDENTIFIER => {}
                other if e.critical => {
                    return Err(RevocationError::Unsupported(format!(
                        "{what} has the unknown critical extension {other}"
                    )))
                }
                _ => {}
            }
        }
        let this_update = tbs.this_update.to_unix_duration();
        if this_update > now + SKEW {
            return Err(RevocationError::NotYetValid {
                what: what.to_string(),
                this_update: tbs.this_update.to_string(),
            });
        }
        let next_update = tbs.next_update.map(|t| t.to_unix_duration());
        if let Some(n) = next_update {
            if n + SKEW < now {
                return Err(RevocationError::Stale {
                    what: what.to_string(),
                    next_update: tbs.next_update.map(|t| t.to_string()).unwrap_or_default(),
                });
            }
        }
        let serial = &cert.tbs_certificate.serial_number;
        let mut answer = Answer {
            revoked: None,
            this_update: Some(this_update.as_secs()),
            next_update: next_update.map(|n| n.as_secs()),
        };
        for entry in tbs.revoked_certificates.iter().flatten() {
            if &entry.serial_number != serial {
                continue;
            }
            let mut reason = None;
            for x in entry.crl_entry_extensions.iter().flatten() {
                match x.extn_id {
                    ID_CE_CRL_REASONS => {
                        reason = CrlReason::from_der(x.extn_value.as_bytes()).ok();
                    }
                    ID_CE_CERTIFICATE_ISSUER if x.critical => {
                        return Err(RevocationError::Unsupported(format!(
                            "{what}: an entry names another certificate issuer"
                        )))
                    }
                    ID_CE_INVALIDITY_DATE => {}
                    other if x.critical => {
                        return Err(RevocationError::Unsupported(format!(
                            "{what}: an entry has the unknown critical extension {other}"
                        )))
                    }
                    _ => {}
                }
            }
            if reason == Some(CrlReason::RemoveFromCRL) {
                continue;
            }
            answer.revoked = Some((
                entry.revocation_date.to_unix_duration().as_secs(),
                reason.map(reason_text),
            ));
            break;
        }
        Ok(answer)
    }
}

fn is_ca(c: &Certificate) -> bool {
    matches!(
        c.tbs_certificate.get::<x509_cert::ext::pkix::BasicConstraints>(),
        Ok(Some((_, bc))) if bc.ca
    )
}

/// Why an IssuingDistributionPoint makes this CRL unusable for a certificate (`is_ca`): a
/// partitioned, indirect or attribute-certificate CRL, or one for the other kind of
/// certificate. `None`: a complete CRL for it.
fn idp_refusal(value: &[u8], is_ca: bool) -> Option<&'static str> {
    let Ok(t) = asn1::Tlv::exactly(value) else {
        return Some("unreadable issuing distribution point");
    };
    let set = |f: &asn1::Tlv<'_>| f.value.first().is_some_and(|b| *b != 0);
    for f in t.children() {
        let Ok(f) = f else {
            return Some("unreadable issuing distribution point");
        };
        match f.tag {
            t if t == asn1::tag::context_primitive(1) && set(&f) && is_ca => {
                return Some("it covers end-entity certificates only")
            }
            t if t == asn1::tag::context_primitive(2) && set(&f) && !is_ca => {
                return Some("it covers CA certificates only")
            }
            t if t == asn1::tag::context_primitive(3) => {
                return Some("it covers only some reasons")
            }
            t if t == asn1::tag::context_primitive(4) && set(&f) => {
                return Some("it is an indirect CRL")
            }
            t if t == asn1::tag::context_primitive(5) && set(&f) => {
                return Some("it covers attribute certificates only")
            }
            _ => {}
        }
    }
    None
}

/// The CRLs in a SignedData's `crls` field (`[1] IMPLICIT SET OF CertificateList`); those
/// that cannot be read are skipped with a note.
pub(crate) fn embedded(crls: &[u8], notes: &mut Vec<String>) -> Vec<Crl> {
    let mut out = Vec::new();
    let Ok(t) = asn1::Tlv::exactly(crls) else {
        notes.push("the signature's crls field cannot be read".into());
        return out;
    };
    for c in t.children() {
        match c {
            Ok(c) if c.tag == asn1::tag::SEQUENCE => {
                match Crl::parse(c.raw, "a CRL in the signature") {
                    Ok(crl) => out.push(crl),
                    Err(e) => notes.push(e.to_string()),
                }
            }
            // Other revocation info choices ([1] OtherRevocationInfoFormat) are skipped.
            Ok(_) => {}
            Err(e) => {
                notes.push(format!("the signature's crls field: {e}"));
                break;
            }
        }
    }
    out
}
