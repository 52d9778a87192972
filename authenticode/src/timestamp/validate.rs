//! Checking a time-stamp token before it is used: TSTInfo (imprint, nonce, time), the
//! TSA's signature, ESS certificate ids and the TSA certificate's EKU.
#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn check_time(t: &Time, skew: Duration) -> std::result::Result<(), String> {
    let then = t.to_unix_duration();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let diff = then.abs_diff(now);
    if diff > skew {
        return Err(format!(
            "its time {} is {}s away from this machine's clock",
            t.rfc3339(),
            diff.as_secs()
        ));
    }
    Ok(())
}

/// What a valid RFC 3161 token says.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    /// genTime.
    pub time: Time,
    /// The TSA certificate's subject.
    pub tsa_subject: String,
    /// The TSA certificate.
    pub tsa_cert: Certificate,
    /// The token's certificates.
    pub certs: Vec<Certificate>,
    /// The message imprint's algorithm.
    pub imprint_algorithm: Option<DigestAlgorithm>,
    /// The message imprint.
    pub imprint: Vec<u8>,
    /// The token SignedData's `crls` field as received (`[1] IMPLICIT`), if any: CRLs a TSA
    /// may carry for its own chain, used by revocation checking.
    pub crls: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct EssCertId {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct SigningCertificate {
    certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// What is wrong with a TSA certificate's extended key usage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsaEkuError {
    /// No extendedKeyUsage extension.
    #[error("the TSA certificate has no extended key usage")]
    Missing,
    /// The extension cannot be read.
    #[error("the TSA certificate's extended key usage cannot be read: {0}")]
    Unreadable(String),
    /// timeStamping is not among the purposes.
    #[error("the TSA certificate lacks the timeStamping extended key usage")]
    NoTimeStamping,
    /// The extension is not marked critical (RFC 3161 §2.3 requires it).
    #[error(
        "the TSA certificate's timeStamping extended key usage is not critical (RFC 3161 §2.3)"
    )]
    NotCritical,
}

/// Checks that the TSA certificate has the timeStamping EKU, marked critical (RFC 3161 §2.3).
pub fn check_tsa_eku(cert: &Certificate) -> std::result::Result<(), TsaEkuError> {
    let eku = crate::chain::Eku::of(cert)
        .map_err(TsaEkuError::Unreadable)?
        .ok_or(TsaEkuError::Missing)?;
    if !eku.contains(&ID_KP_TIME_STAMPING) {
        return Err(TsaEkuError::NoTimeStamping);
    }
    if !eku.critical {
        return Err(TsaEkuError::NotCritical);
    }
    Ok(())
}

/// The fields of a TSTInfo a verifier uses, read in one pass. genTime is read in every form
/// RFC 3161 allows (with a fraction of a second, as Microsoft's TSAs send it), which a strict
/// DER `GeneralizedTime` refuses.
#[derive(Clone, Debug)]
pub(super) struct TstFields {
    policy: ObjectIdentifier,
    imprint_algorithm: ObjectIdentifier,
    imprint: Vec<u8>,
    gen_time: Time,
    nonce: Option<Vec<u8>>,
}

pub(super) fn parse_tst_info(der: &[u8]) -> std::result::Result<TstFields, String> {
    let e = |e: asn1::Asn1Error| format!("TSTInfo: {e}");
    let t = asn1::Tlv::exactly(der)
        .and_then(|t| t.expect(asn1::tag::SEQUENCE, "TSTInfo (SEQUENCE)"))
        .map_err(e)?;
    let mut c = t.children();
    let version = c
        .required("version")
        .and_then(|v| v.small_uint())
        .map_err(e)?;
    if version != 1 {
        return Err(format!("TSTInfo version {version}, expected 1"));
    }
    let policy = c.required("policy").and_then(|p| p.oid()).map_err(e)?;
    let mi = c
        .required("messageImprint")
        .and_then(|m| m.expect(asn1::tag::SEQUENCE, "messageImprint (SEQUENCE)"))
        .map_err(e)?;
    let mut m = mi.children();
    let alg = m
        .required("hashAlgorithm")
        .and_then(|a| a.expect(asn1::tag::SEQUENCE, "hashAlgorithm (SEQUENCE)"))
        .map_err(e)?;
    let imprint_algorithm = alg
        .children()
        .required("algorithm")
        .and_then(|o| o.oid())
        .map_err(e)?;
    let imprint = m
        .required("hashedMessage")
        .and_then(|h| h.expect(asn1::tag::OCTET_STRING, "hashedMessage (OCTET STRING)"))
        .map_err(e)?
        .value
        .to_vec();
    c.required("serialNumber")
        .and_then(|s| s.expect(asn1::tag::INTEGER, "serialNumber (INTEGER)"))
        .map_err(e)?;
    let gen_time = c
        .required("genTime")
        .and_then(|g| g.expect(asn1::tag::GENERALIZED_TIME, "genTime (GeneralizedTime)"))
        .and_then(|g| Time::generalized(g.value))
        .map_err(e)?;
    // accuracy, ordering, nonce, tsa, extensions: only the nonce is used.
    let mut nonce = None;
    for f in c {
        let f = f.map_err(e)?;
        if f.tag == asn1::tag::INTEGER {
            nonce = Some(f.value.to_vec());
        }
    }
    Ok(TstFields {
        policy,
        imprint_algorithm,
        imprint,
        gen_time,
        nonce,
    })
}

/// Validates an RFC 3161 token (a DER ContentInfo): SignedData over a TSTInfo, imprint and
/// nonce equal to the request's (when given), ESSCertID(v2) naming the TSA certificate, the
/// signature over the original signed attributes, the TSA certificate's critical
/// timeStamping EKU and its validity at genTime.
pub fn validate_token(
    token_der: &[u8],
    imprint: Option<(DigestAlgorithm, &[u8])>,
    nonce: Option<&[u8]>,
    policy: Option<ObjectIdentifier>,
) -> std::result::Result<TokenInfo, String> {
    let ci = crate::pkcs7::parse_content_info(token_der).map_err(|e| format!("token: {e}"))?;
    if ci.content_info.raw.len() != token_der.len() {
        return Err("token: bytes after the ContentInfo".into());
    }
    let sd = ci.signed_data;
    if sd.content_type != ID_CT_TST_INFO {
        return Err(format!(
            "the token content is {}, not TSTInfo",
            sd.content_type
        ));
    }
    let econtent = sd.content.ok_or("the token has no TSTInfo")?;
    let tst_bytes = econtent
        .expect(
            asn1::tag::OCTET_STRING,
            "the TSTInfo wrapper (OCTET STRING)",
        )
        .map_err(|e| e.to_string())?
        .value;
    let tst = parse_tst_info(tst_bytes)?;
    let imprint_algorithm = DigestAlgorithm::from_oid(&tst.imprint_algorithm);
    if let Some((alg, want)) = imprint {
        if imprint_algorithm != Some(alg) || tst.imprint != want {
            return Err(
                "the message imprint is not the one requested (a reply for another request)".into(),
            );
        }
    }
    if let Some(n) = nonce {
        match &tst.nonce {
            Some(got) if got == n => {}
            Some(_) => {
                return Err(
                    "the nonce differs from the request's (replayed or mixed-up reply)".into(),
                )
            }
            None => return Err("the reply carries no nonce though one was sent".into()),
        }
    }
    if let Some(p) = policy {
        if tst.policy != p {
            return Err(format!("the TSA used policy {} instead of {p}", tst.policy));
        }
    }
    let [signer] = sd.signer_infos.as_slice() else {
        return Err("the token must have exactly one SignerInfo".into());
    };
    let certs = sd.certificates;
    let crls = sd.crls.map(|c| c.raw.to_vec());
    let cert = find_signer(&signer.info, certs.iter())
        .ok_or("the TSA certificate is not in the token (was certReq honoured?)")?
        .clone();
    let attrs_der = signer
        .signed_attrs_der
        .as_deref()
        .ok_or("the token's SignerInfo has no signed attributes")?;
    verify_cms_signer(
        &signer.info,
        attrs_der,
        tst_bytes,
        Some(ID_CT_TST_INFO),
        &cert,
    )
    .map_err(|e| format!("token signature: {e}"))?;
    check_ess_cert_id(&signer.info, &cert)?;
    check_tsa_eku(&cert).map_err(|e| e.to_string())?;
    let validity = &cert.tbs_certificate.validity;
    let t = Duration::from_secs(tst.gen_time.unix);
    if t < validity.not_before.to_unix_duration() || t > validity.not_after.to_unix_duration() {
        return Err("genTime is outside the TSA certificate's validity".into());
    }
    Ok(TokenInfo {
        time: tst.gen_time,
        tsa_subject: crate::chain::name_text(&cert.tbs_certificate.subject),
        tsa_cert: cert,
        certs,
        imprint_algorithm,
        imprint: tst.imprint,
        crls,
    })
}

pub(super) fn check_ess_cert_id(
    info: &cms::signed_data::SignerInfo,
    cert: &Certificate,
) -> std::result::Result<(), String> {
    let attrs = info.signed_attrs.as_ref().ok_or("no signed attributes")?;
    let cert_der = cert.to_der().map_err(|e| e.to_string())?;
    if let Some(a) = attrs.iter().find(|a| a.oid == ID_AA_SIGNING_CERTIFICATE_V2) {
        let v: SigningCertificateV2 = a
            .values
            .iter()
            .next()
            .ok_or("empty signingCertificateV2")?
            .decode_as()
            .map_err(|e| format!("signingCertificateV2: {e}"))?;
        let first = v
            .certs
            .first()
            .ok_or("signingCertificateV2 lists no certificate")?;
        let alg = match &first.hash_algorithm {
            None => DigestAlgorithm::Sha256,
            Some(a) => DigestAlgorithm::from_oid(&a.oid).ok_or("unknown ESSCertIDv2 hash")?,
        };
        if first.cert_hash.as_bytes() != alg.digest(&cert_der).as_slice() {
            return Err("ESSCertIDv2 does not name the TSA certificate".into());
        }
        return Ok(());
    }
    if let Some(a) = attrs.iter().find(|a| a.oid == ID_AA_SIGNING_CERTIFICATE) {
        let v: SigningCertificate = a
            .values
            .iter()
            .next()
            .ok_or("empty signingCertificate")?
            .decode_as()
            .map_err(|e| format!("signingCertificate: {e}"))?;
        let first = v
            .certs
            .first()
            .ok_or("signingCertificate lists no certificate")?;
        if first.cert_hash.as_bytes() != DigestAlgorithm::Sha1.digest(&cert_der).as_slice() {
            return Err("ESSCertID does not name the TSA certificate".into());
        }
        return Ok(());
    }
    Err("the token has no ESS signing-certificate attribute".into())
}

/// Legacy TSA certificates must carry timeStamping; criticality is not required there.
pub fn check_legacy_eku(cert: &Certificate) -> std::result::Result<(), TsaEkuError> {
    match check_tsa_eku(cert) {
        Err(TsaEkuError::NotCritical) => Ok(()),
        other => other,
    }
}

/// The signingTime attribute of a countersignature (UTCTime or GeneralizedTime, with or
/// without a fraction of a second).
pub fn legacy_signing_time(info: &cms::signed_data::SignerInfo) -> Option<Time> {
    let attrs = info.signed_attrs.as_ref()?;
    let a = attrs.iter().find(|a| a.oid == PKCS9_SIGNING_TIME)?;
    let v = a.values.iter().next()?;
    let der = v.to_der().ok()?;
    Time::from_tlv(&asn1::Tlv::exactly(&der).ok()?).ok()
}
