//! OCSP (RFC 6960): a request for one certificate (SHA-1 CertID, as every responder
//! supports, and a nonce), and the checks on the answer: a successful basic response,
//! signed by the issuer itself or by a certificate the issuer gave id-kp-OCSPSigning, our
//! nonce echoed when the responder echoes one, the status for our CertID, and
//! `thisUpdate`/`nextUpdate` current.
use std::time::Duration;

use const_oid::ObjectIdentifier;
use der::{
    asn1::{Null, OctetString},
    Decode, Encode,
};
use sha1::{Digest, Sha1};
use spki::AlgorithmIdentifierOwned;
use x509_cert::{
    ext::{pkix::CrlReason, Extension},
    Certificate,
};
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    ResponderId, TbsRequest,
};

use super::{reason_text, verify_signed, Answer, RevocationError, SKEW};
use crate::asn1;

const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_PKIX_OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
/// Without `nextUpdate`, an answer is used only when `thisUpdate` is this recent.
const MAX_AGE_WITHOUT_NEXT_UPDATE: Duration = Duration::from_secs(24 * 3600);

/// The CertID of `cert` (SHA-1, as RFC 5019 responders expect).
pub(crate) fn cert_id(cert: &Certificate, issuer: &Certificate) -> Result<CertId, String> {
    let name = issuer
        .tbs_certificate
        .subject
        .to_der()
        .map_err(|e| e.to_string())?;
    let key = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: ID_SHA1,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(Sha1::digest(name).to_vec())
            .map_err(|e| e.to_string())?,
        issuer_key_hash: OctetString::new(Sha1::digest(key).to_vec()).map_err(|e| e.to_string())?,
        serial_number: cert.tbs_certificate.serial_number.clone(),
    })
}

/// The DER request for `id` with `nonce`.
pub(crate) fn request(id: &CertId, nonce: &[u8]) -> Result<Vec<u8>, String> {
    let nonce_value = OctetString::new(nonce.to_vec())
        .and_then(|o| o.to_der())
        .map_err(|e| e.to_string())?;
    let req = OcspRequest {
        tbs_request: TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![Request {
                req_cert: id.clone(),
                single_request_extensions: None,
            }],
            request_extensions: Some(vec![Extension {
                extn_id: ID_PKIX_OCSP_NONCE,
                critical: false,
                extn_value: OctetString::new(nonce_value).map_err(|e| e.to_string())?,
            }]),
        },
        optional_signature: None,
    };
    req.to_der().map_err(|e| e.to_string())
}

fn same_cert_id(a: &CertId, b: &CertId) -> bool {
    a.hash_algorithm.oid == b.hash_algorithm.oid
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
        && a.serial_number == b.serial_number
}

fn responder_is(id: &ResponderId, c: &Certificate) -> bool {
    match id {
        ResponderId::ByName(n) => *n == c.tbs_certificate.subject,
        ResponderId::ByKey(k) => {
            k.as_bytes()
                == Sha1::digest(
                    c.tbs_certificate
                        .subject_public_key_info
                        .subject_public_key
                        .raw_bytes(),
                )
                .as_slice()
        }
    }
}

/// Checks an OCSP answer (`der`) about `cert` issued by `issuer`; `nonce` is the one sent
/// (`None` for an answer read from the cache, checked when it was fetched).
pub(crate) fn check(
    der: &[u8],
    cert: &Certificate,
    issuer: &Certificate,
    nonce: Option<&[u8]>,
    now: Duration,
    what: &str,
) -> Result<Answer, RevocationError> {
    let bad = |why: String| RevocationError::Malformed {
        what: what.to_string(),
        why,
    };
    let resp = OcspResponse::from_der(der).map_err(|e| bad(e.to_string()))?;
    if resp.response_status != OcspResponseStatus::Successful {
        return Err(RevocationError::Refused {
            what: what.to_string(),
            status: format!("{:?}", resp.response_status),
        });
    }
    let bytes = resp
        .response_bytes
        .ok_or_else(|| bad("a successful answer without responseBytes".into()))?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(bad(format!(
            "response type {}, not id-pkix-ocsp-basic",
            bytes.response_type
        )));
    }
    let basic_der = bytes.response.as_bytes();
    let basic = BasicOcspResponse::from_der(basic_der).map_err(|e| bad(e.to_string()))?;
    // The signature covers the ResponseData as received.
    let tbs = asn1::Tlv::exactly(basic_der)
        .and_then(|t| t.children().required("tbsResponseData"))
        .map_err(|e| bad(e.to_string()))?
        .raw;
    let data = &basic.tbs_response_data;
    let sig = basic
        .signature
        .as_bytes()
        .ok_or_else(|| bad("the signature has unused bits".into()))?;
    let alg = &basic.signature_algorithm.oid;
    // The responder: the issuer itself, or a certificate the issuer delegated OCSP signing to.
    let signer: Certificate = if responder_is(&data.responder_id, issuer) {
        issuer.clone()
    } else {
        let delegated = basic
            .certs
            .iter()
            .flatten()
            .find(|c| responder_is(&data.responder_id, c))
            .ok_or_else(|| {
                RevocationError::Unauthorized(format!(
                    "{what}: the responder is neither the issuer nor a certificate in the answer"
                ))
            })?;
        crate::chain::issued_by(delegated, issuer).map_err(|e| {
            RevocationError::Unauthorized(format!(
                "{what}: the responder certificate {} was not issued by the certificate's issuer ({e})",
                crate::chain::name_text(&delegated.tbs_certificate.subject)
            ))
        })?;
        let eku = crate::chain::Eku::of(delegated)
            .map_err(|e| RevocationError::Unauthorized(format!("{what}: {e}")))?;
        if !eku.is_some_and(|e| e.contains(&ID_KP_OCSP_SIGNING)) {
            return Err(RevocationError::Unauthorized(format!(
                "{what}: the responder certificate {} lacks id-kp-OCSPSigning",
                crate::chain::name_text(&delegated.tbs_certificate.subject)
            )));
        }
        let v = &delegated.tbs_certificate.validity;
        if now + SKEW < v.not_before.to_unix_duration()
            || now > v.not_after.to_unix_duration() + SKEW
        {
            return Err(RevocationError::Unauthorized(format!(
                "{what}: the responder certificate {} is not valid now",
                crate::chain::name_text(&delegated.tbs_certificate.subject)
            )));
        }
        delegated.clone()
    };
    verify_signed(
        tbs,
        alg,
        sig,
        &signer.tbs_certificate.subject_public_key_info,
    )
    .map_err(|why| RevocationError::Signature {
        what: what.to_string(),
        why,
    })?;
    if let Some(sent) = nonce {
        // A responder may answer from a pre-produced set without a nonce (RFC 5019); one
        // that echoes a nonce must echo ours.
        if let Some(got) = data
            .response_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)
        {
            let v = got.extn_value.as_bytes();
            let inner = OctetString::from_der(v).map(|o| o.as_bytes().to_vec());
            if v != sent && inner.as_deref().ok() != Some(sent) {
                return Err(RevocationError::NonceMismatch(what.to_string()));
            }
        }
    }
    let want = cert_id(cert, issuer).map_err(bad)?;
    let single = data
        .responses
        .iter()
        .find(|s| same_cert_id(&s.cert_id, &want))
        .ok_or_else(|| RevocationError::NoStatus(what.to_string()))?;
    let this_update = single.this_update.0.to_unix_duration();
    if this_update > now + SKEW {
        return Err(RevocationError::NotYetValid {
            what: what.to_string(),
            this_update: super::rfc3339(this_update.as_secs()),
        });
    }
    let next_update = single.next_update.map(|n| n.0.to_unix_duration());
    match next_update {
        Some(n) if n + SKEW < now => {
            return Err(RevocationError::Stale {
                what: what.to_string(),
                next_update: super::rfc3339(n.as_secs()),
            })
        }
        None if this_update + MAX_AGE_WITHOUT_NEXT_UPDATE < now => {
            return Err(RevocationError::Stale {
                what: what.to_string(),
                next_update: format!(
                    "none (thisUpdate {} is older than a day)",
                    super::rfc3339(this_update.as_secs())
                ),
            })
        }
        _ => {}
    }
    let revoked = match &single.cert_status {
        CertStatus::Good(_) => None,
        CertStatus::Revoked(info) => Some((
            info.revocation_time.0.to_unix_duration().as_secs(),
            info.revocation_reason.map(reason_text),
        )),
        CertStatus::Unknown(_) => return Err(RevocationError::NoStatus(what.to_string())),
    };
    if matches!(revoked, Some((_, Some(ref r))) if r == reason_text(CrlReason::RemoveFromCRL).as_str())
    {
        return Err(RevocationError::NoStatus(what.to_string()));
    }
    Ok(Answer {
        revoked,
        this_update: Some(this_update.as_secs()),
        next_update: next_update.map(|n| n.as_secs()),
    })
}

/// `nextUpdate` of an answer, for the cache (unchecked: the answer is checked on use).
pub(crate) fn next_update_of(der: &[u8]) -> Option<u64> {
    let resp = OcspResponse::from_der(der).ok()?;
    let basic = BasicOcspResponse::from_der(resp.response_bytes?.response.as_bytes()).ok()?;
    basic
        .tbs_response_data
        .responses
        .iter()
        .filter_map(|s| s.next_update)
        .map(|n| n.0.to_unix_duration().as_secs())
        .min()
}
