//! The client: one exchange per protocol (RFC 3161, legacy Authenticode), and [`stamp`],
//! which tries the URLs in turn with retries and backoff within the time budget.
#[allow(clippy::wildcard_imports)]
use super::*;
use validate::check_time;

/// Time-stamps `signature` (the bytes of a SignerInfo's signature) with the configured TSAs.
pub fn stamp(
    signature: &[u8],
    opts: &TimestampOptions,
    transport: &dyn Transport,
) -> std::result::Result<Stamp, TimestampError> {
    if opts.urls.is_empty() {
        return Err(TimestampError::NoUrl);
    }
    let start = Instant::now();
    let attempts = opts.attempts.max(opts.urls.len() as u32).max(1);
    let mut wait = opts.retry_wait;
    let mut last = None;
    let mut made = 0;
    // A URL that failed in a way retrying cannot fix (HTTP 4xx, an invalid token) is not
    // tried again; the others still are.
    let mut dead = vec![false; opts.urls.len()];
    for i in 0..attempts {
        let n = opts.urls.len();
        let Some(idx) = (0..n)
            .map(|k| (i as usize + k) % n)
            .find(|&k| !dead.get(k).copied().unwrap_or(true))
        else {
            break;
        };
        let Some(url) = opts.urls.get(idx) else {
            break;
        };
        if i > 0 {
            let left = opts.budget.saturating_sub(start.elapsed());
            if left <= wait {
                break;
            }
            std::thread::sleep(wait);
            wait = wait.saturating_mul(2);
        }
        made += 1;
        let res = match opts.protocol {
            Protocol::Rfc3161 => rfc3161_once(url, signature, opts, transport),
            Protocol::Legacy => legacy_once(url, signature, opts, transport),
        };
        match res {
            Ok(s) => {
                tracing::info!(url = %url, tsa = %s.tsa, "time stamp obtained");
                return Ok(s);
            }
            Err(e) => {
                tracing::warn!(url = %url, error = %e, attempt = i + 1, "time stamp attempt failed");
                let retry = e.retriable();
                let rejected = matches!(e, TimestampError::Rejected { .. });
                last = Some(e);
                if rejected {
                    // A validated refusal: the TSA answered properly and said no.
                    break;
                }
                if !retry {
                    if let Some(d) = dead.get_mut(idx) {
                        *d = true;
                    }
                }
            }
        }
        if start.elapsed() >= opts.budget {
            break;
        }
    }
    let last = last.unwrap_or(TimestampError::NoUrl);
    match last {
        e @ (TimestampError::Rejected { .. } | TimestampError::NoUrl) if made <= 1 => Err(e),
        e => Err(TimestampError::Exhausted {
            attempts: made,
            budget: opts.budget,
            last: Box::new(e),
        }),
    }
}

pub(super) fn random_nonce() -> [u8; 8] {
    use rand::RngCore;
    let mut n = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n[0] &= 0x7f; // positive INTEGER
    if n[0] == 0 {
        n[0] = 1; // minimal encoding, still 64 bits of which 63 random
    }
    n
}

pub(super) fn looks_like_base64(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter()
            .take(64)
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'\r' | b'\n'))
}

pub(super) fn rfc3161_once(
    url: &str,
    signature: &[u8],
    opts: &TimestampOptions,
    t: &dyn Transport,
) -> std::result::Result<Stamp, TimestampError> {
    let imprint = opts.digest.digest(signature);
    let nonce = random_nonce();
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: opts.digest.algorithm_identifier(),
            hashed_message: OctetString::new(imprint.clone()).map_err(|e| invalid(url, e))?,
        },
        req_policy: opts.policy,
        nonce: Some(Int::new(&nonce).map_err(|e| invalid(url, e))?),
        cert_req: true,
        extensions: None,
    };
    let body = req.to_der().map_err(|e| invalid(url, e))?;
    let reply = t
        .post(url, "application/timestamp-query", &body, opts.timeout)
        .map_err(|reason| TimestampError::Transport {
            url: url.into(),
            reason,
        })?;
    let hint_legacy = if looks_like_base64(&reply.body) {
        " (the reply looks like a legacy Authenticode time stamp: is this URL for legacy (-t) time stamps? use the legacy protocol)".to_string()
    } else {
        String::new()
    };
    if reply.status != 200 {
        return Err(TimestampError::Http {
            url: url.into(),
            status: reply.status,
            hint: if (400..500).contains(&reply.status) {
                " (if this server speaks only legacy Authenticode time stamps, use the legacy protocol)".into()
            } else {
                hint_legacy
            },
        });
    }
    let malformed = |reason: String| TimestampError::Malformed {
        url: url.into(),
        reason,
        hint: hint_legacy.clone(),
    };
    let resp = Resp::from_der(&reply.body).map_err(|e| malformed(format!("TimeStampResp: {e}")))?;
    let status = u8::try_from(resp.status.status).unwrap_or(u8::MAX);
    if status > 1 {
        let text = resp
            .status
            .status_string
            .as_ref()
            .map(|s| format!(" ({})", s.join("; ")))
            .unwrap_or_default();
        let fail = resp
            .status
            .fail_info
            .as_ref()
            .map(|b| format!(" failInfo bits {}", hex::encode(b.raw_bytes())))
            .unwrap_or_default();
        return Err(TimestampError::Rejected {
            url: url.into(),
            status,
            text: text + &fail,
        });
    }
    let token = resp
        .token
        .ok_or_else(|| malformed("status granted but no token".into()))?;
    let token_der = token.to_der().map_err(|e| malformed(e.to_string()))?;
    let v = validate_token(
        &token_der,
        Some((opts.digest, &imprint)),
        Some(&nonce),
        opts.policy,
    )
    .map_err(|reason| TimestampError::Invalid {
        url: url.into(),
        reason,
    })?;
    check_time(&v.time, opts.max_clock_skew).map_err(|reason| TimestampError::Invalid {
        url: url.into(),
        reason,
    })?;
    Ok(Stamp {
        protocol: Protocol::Rfc3161,
        attr_oid: SPC_RFC3161_TIMESTAMP,
        value: Any::from_der(&token_der).map_err(|e| malformed(e.to_string()))?,
        certs: vec![],
        time: v.time,
        tsa: v.tsa_subject,
        url: url.into(),
    })
}

pub(super) fn invalid(url: &str, e: impl std::fmt::Display) -> TimestampError {
    TimestampError::Invalid {
        url: url.into(),
        reason: e.to_string(),
    }
}

/// The legacy request: `SEQUENCE { OID 1.3.6.1.4.1.311.3.2.1, ContentInfo { data, [0] OCTET STRING } }`.
#[derive(Clone, Debug, Sequence)]
pub(super) struct LegacyRequest {
    countersignature_type: ObjectIdentifier,
    content: LegacyContent,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct LegacyContent {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    content: OctetString,
}

pub(super) fn legacy_once(
    url: &str,
    signature: &[u8],
    opts: &TimestampOptions,
    t: &dyn Transport,
) -> std::result::Result<Stamp, TimestampError> {
    let req = LegacyRequest {
        countersignature_type: SPC_TIME_STAMP_REQUEST,
        content: LegacyContent {
            content_type: ID_DATA,
            content: OctetString::new(signature).map_err(|e| invalid(url, e))?,
        },
    };
    let der = req.to_der().map_err(|e| invalid(url, e))?;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let reply = t
        .post(
            url,
            "application/octet-stream",
            body.as_bytes(),
            opts.timeout,
        )
        .map_err(|reason| TimestampError::Transport {
            url: url.into(),
            reason,
        })?;
    let rfc_hint = if reply.body.first() == Some(&0x30) {
        " (the reply is binary DER: this URL seems to speak RFC 3161; use the RFC 3161 protocol)"
            .to_string()
    } else {
        String::new()
    };
    if reply.status != 200 {
        return Err(TimestampError::Http {
            url: url.into(),
            status: reply.status,
            hint: rfc_hint,
        });
    }
    let malformed = |reason: String| TimestampError::Malformed {
        url: url.into(),
        reason,
        hint: rfc_hint.clone(),
    };
    let text: Vec<u8> = reply
        .body
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace() && *c != 0)
        .collect();
    let p7 = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|e| malformed(format!("not base64: {e}")))?;
    let ci =
        crate::pkcs7::parse_content_info(&p7).map_err(|e| malformed(format!("PKCS#7: {e}")))?;
    let sd = ci.signed_data;
    let [signer] = sd.signer_infos.as_slice() else {
        return Err(malformed(
            "the reply must have exactly one SignerInfo".into(),
        ));
    };
    let info = &signer.info;
    let raw = signer.raw;
    let certs: Vec<Certificate> = sd.certificates.clone();
    let cert = find_signer(info, certs.iter())
        .ok_or_else(|| invalid(url, "the TSA certificate is not in the reply"))?
        .clone();
    let attrs_der = signer
        .signed_attrs_der
        .clone()
        .ok_or_else(|| invalid(url, "the countersignature has no signed attributes"))?;
    verify_cms_signer(info, &attrs_der, signature, None, &cert).map_err(|e| invalid(url, e))?;
    check_legacy_eku(&cert).map_err(|e| invalid(url, e))?;
    let time = legacy_signing_time(info)
        .ok_or_else(|| invalid(url, "the countersignature has no signing time"))?;
    check_time(&time, opts.max_clock_skew).map_err(|e| invalid(url, e))?;
    Ok(Stamp {
        protocol: Protocol::Legacy,
        attr_oid: PKCS9_COUNTERSIGNATURE,
        value: Any::from_der(raw).map_err(|e| malformed(e.to_string()))?,
        certs,
        time,
        tsa: crate::chain::name_text(&cert.tbs_certificate.subject),
        url: url.into(),
    })
}

/// `TimeStampResp`, read leniently: x509-tsp's type rejects valid `failInfo` bit strings
/// longer than its flag set, and a rejection must still be read to be reported.
#[derive(Clone, Debug, Sequence)]
pub(super) struct Resp {
    status: RespStatus,
    #[asn1(optional = "true")]
    token: Option<ContentInfo>,
}

#[derive(Clone, Debug, Sequence)]
pub(super) struct RespStatus {
    status: u32,
    #[asn1(optional = "true")]
    status_string: Option<Vec<String>>,
    #[asn1(optional = "true")]
    fail_info: Option<der::asn1::BitString>,
}
