//! Checks on DescribeKey's answer, and the codeseal ↔ KMS algorithm mapping.

use aws_sdk_kms::types::{KeyMetadata, KeySpec, KeyState, KeyUsageType, SigningAlgorithmSpec};
use codeseal_signer::{DigestAlgorithm, KeyKind, SignatureAlgorithm};

use crate::KmsError;

/// What DescribeKey said about a key that codeseal can sign with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyFacts {
    /// The key ARN (what later calls use, so a re-pointed alias cannot switch keys).
    pub arn: String,
    /// The key ID.
    pub key_id: String,
    /// The key spec.
    pub key_spec: KeySpec,
    /// What the key spec implies about the key (checked against the public key later).
    pub kind: KeyKind,
    /// The signing algorithms KMS allows with the key.
    pub signing_algorithms: Vec<SigningAlgorithmSpec>,
}

/// The KMS signing algorithm for a codeseal signature algorithm, if KMS has one codeseal
/// uses: RSASSA-PKCS1-v1_5 with SHA-256/384/512 for RSA keys, ECDSA with SHA-256 on P-256
/// and SHA-384 on P-384. Never SHA-1, never PSS.
pub fn signing_algorithm_spec(algorithm: SignatureAlgorithm) -> Option<SigningAlgorithmSpec> {
    use DigestAlgorithm::*;
    Some(match (algorithm.key, algorithm.digest) {
        (KeyKind::Rsa { .. }, Sha256) => SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
        (KeyKind::Rsa { .. }, Sha384) => SigningAlgorithmSpec::RsassaPkcs1V15Sha384,
        (KeyKind::Rsa { .. }, Sha512) => SigningAlgorithmSpec::RsassaPkcs1V15Sha512,
        (KeyKind::EcP256, Sha256) => SigningAlgorithmSpec::EcdsaSha256,
        (KeyKind::EcP384, Sha384) => SigningAlgorithmSpec::EcdsaSha384,
        _ => return None,
    })
}

/// The key kind of a KMS key spec codeseal supports.
pub fn key_kind_of_spec(spec: &KeySpec) -> Option<KeyKind> {
    Some(match spec {
        KeySpec::Rsa2048 => KeyKind::Rsa { bits: 2048 },
        KeySpec::Rsa3072 => KeyKind::Rsa { bits: 3072 },
        KeySpec::Rsa4096 => KeyKind::Rsa { bits: 4096 },
        KeySpec::EccNistP256 => KeyKind::EcP256,
        KeySpec::EccNistP384 => KeyKind::EcP384,
        _ => None?,
    })
}

/// Checks DescribeKey's `KeyMetadata` for a key codeseal can sign with: key usage
/// SIGN_VERIFY, a supported key spec, state Enabled, and at least one signing algorithm
/// codeseal uses. `requested` names the key in errors (as the user gave it).
pub fn check_key_metadata(requested: &str, meta: &KeyMetadata) -> Result<KeyFacts, KmsError> {
    let arn = meta.arn().unwrap_or(meta.key_id());
    let key = if arn.is_empty() || arn == requested {
        requested.to_owned()
    } else {
        format!("{requested} ({arn})")
    };
    if meta.key_id().is_empty() && meta.arn().is_none() {
        return Err(KmsError::InvalidResponse {
            key,
            what: "DescribeKey answer",
            reason: "no key ID or ARN".into(),
        });
    }

    match meta.key_usage() {
        Some(KeyUsageType::SignVerify) => {}
        Some(other) => {
            return Err(KmsError::WrongKeyUsage {
                key,
                usage: other.as_str().to_owned(),
            })
        }
        None => {
            return Err(KmsError::InvalidResponse {
                key,
                what: "DescribeKey answer",
                reason: "no KeyUsage".into(),
            })
        }
    }

    #[allow(deprecated)] // CustomerMasterKeySpec: the fallback for answers without KeySpec
    let spec = meta.key_spec().cloned().or_else(|| {
        meta.customer_master_key_spec()
            .and_then(|s| KeySpec::try_parse(s.as_str()).ok())
    });
    let Some(spec) = spec else {
        return Err(KmsError::InvalidResponse {
            key,
            what: "DescribeKey answer",
            reason: "no KeySpec".into(),
        });
    };
    let Some(kind) = key_kind_of_spec(&spec) else {
        return Err(KmsError::UnsupportedKeySpec {
            key,
            spec: spec.as_str().to_owned(),
        });
    };

    let state = meta.key_state();
    let enabled = match state {
        Some(s) => *s == KeyState::Enabled,
        None => meta.enabled(),
    };
    if !enabled {
        let state_name = state.map_or("not enabled", |s| s.as_str()).to_owned();
        let hint = match state {
            Some(KeyState::Disabled) => "; enable it (kms:EnableKey) or use another key".to_owned(),
            Some(KeyState::PendingDeletion) => {
                let when = meta
                    .deletion_date()
                    .and_then(|d| {
                        d.fmt(aws_sdk_kms::primitives::DateTimeFormat::DateTime)
                            .ok()
                    })
                    .map(|d| format!(" on {d}"))
                    .unwrap_or_default();
                format!(
                    " (scheduled for deletion{when}); cancel the deletion (kms:CancelKeyDeletion) \
                     and enable the key, or use another key"
                )
            }
            Some(KeyState::PendingImport) => "; its key material has not been imported".into(),
            Some(KeyState::Unavailable) => {
                "; its custom key store is disconnected (reconnect it)".into()
            }
            Some(KeyState::Creating | KeyState::Updating) => "; try again shortly".into(),
            _ => String::new(),
        };
        return Err(KmsError::KeyNotEnabled {
            key,
            state: state_name,
            hint,
            source: None,
        });
    }

    let signing_algorithms = meta.signing_algorithms().to_vec();
    let usable = DigestAlgorithm::ALL.iter().any(|d| {
        signing_algorithm_spec(kind.with_digest(*d))
            .is_some_and(|s| signing_algorithms.contains(&s))
    });
    if !usable {
        let listed: Vec<&str> = signing_algorithms.iter().map(|s| s.as_str()).collect();
        return Err(KmsError::InvalidResponse {
            key,
            what: "DescribeKey answer",
            reason: format!(
                "none of its signing algorithms [{}] is one codeseal uses \
                 (RSASSA_PKCS1_V1_5_SHA_256/384/512, ECDSA_SHA_256/384)",
                listed.join(", ")
            ),
        });
    }

    Ok(KeyFacts {
        arn: arn.to_owned(),
        key_id: meta.key_id().to_owned(),
        key_spec: spec,
        kind,
        signing_algorithms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kms::primitives::DateTime;

    const ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn rsa_algs() -> Vec<SigningAlgorithmSpec> {
        vec![
            SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
            SigningAlgorithmSpec::RsassaPkcs1V15Sha384,
            SigningAlgorithmSpec::RsassaPkcs1V15Sha512,
            SigningAlgorithmSpec::RsassaPssSha256,
        ]
    }

    fn meta(
        usage: Option<KeyUsageType>,
        spec: Option<KeySpec>,
        state: Option<KeyState>,
        algs: Vec<SigningAlgorithmSpec>,
    ) -> KeyMetadata {
        let mut b = KeyMetadata::builder()
            .key_id("1234abcd-12ab-34cd-56ef-1234567890ab")
            .arn(ARN)
            .set_key_usage(usage)
            .set_key_spec(spec)
            .set_key_state(state.clone())
            .enabled(state == Some(KeyState::Enabled))
            .set_signing_algorithms(Some(algs));
        if matches!(state, Some(KeyState::PendingDeletion)) {
            b = b.deletion_date(DateTime::from_secs(1_900_000_000));
        }
        b.build().expect("key metadata")
    }

    fn good(spec: KeySpec, algs: Vec<SigningAlgorithmSpec>) -> KeyMetadata {
        meta(
            Some(KeyUsageType::SignVerify),
            Some(spec),
            Some(KeyState::Enabled),
            algs,
        )
    }

    #[test]
    fn accepts_enabled_sign_verify_keys() {
        let f = check_key_metadata("alias/x", &good(KeySpec::Rsa4096, rsa_algs())).expect("ok");
        assert_eq!(f.arn, ARN);
        assert_eq!(f.kind, KeyKind::Rsa { bits: 4096 });
        assert_eq!(f.key_spec, KeySpec::Rsa4096);
        assert_eq!(f.signing_algorithms, rsa_algs());
        let f = check_key_metadata(
            "k",
            &good(
                KeySpec::EccNistP256,
                vec![SigningAlgorithmSpec::EcdsaSha256],
            ),
        )
        .expect("ok");
        assert_eq!(f.kind, KeyKind::EcP256);
        let f = check_key_metadata(
            "k",
            &good(
                KeySpec::EccNistP384,
                vec![SigningAlgorithmSpec::EcdsaSha384],
            ),
        )
        .expect("ok");
        assert_eq!(f.kind, KeyKind::EcP384);
        assert_eq!(
            check_key_metadata("k", &good(KeySpec::Rsa3072, rsa_algs()))
                .expect("ok")
                .kind,
            KeyKind::Rsa { bits: 3072 }
        );
    }

    #[test]
    fn falls_back_to_customer_master_key_spec() {
        #[allow(deprecated)]
        let m = KeyMetadata::builder()
            .key_id("k")
            .arn(ARN)
            .key_usage(KeyUsageType::SignVerify)
            .customer_master_key_spec(aws_sdk_kms::types::CustomerMasterKeySpec::EccNistP256)
            .key_state(KeyState::Enabled)
            .enabled(true)
            .signing_algorithms(SigningAlgorithmSpec::EcdsaSha256)
            .build()
            .expect("metadata");
        assert_eq!(
            check_key_metadata("k", &m).expect("ok").kind,
            KeyKind::EcP256
        );
    }

    #[test]
    fn rejects_disabled_key() {
        let m = meta(
            Some(KeyUsageType::SignVerify),
            Some(KeySpec::Rsa2048),
            Some(KeyState::Disabled),
            rsa_algs(),
        );
        let e = check_key_metadata("alias/release", &m).expect_err("disabled");
        assert!(matches!(e, KmsError::KeyNotEnabled { ref state, .. } if state == "Disabled"));
        let msg = e.to_string();
        assert!(msg.contains("alias/release"), "{msg}");
        assert!(msg.contains(ARN), "{msg}");
        assert!(
            msg.contains("Disabled") && msg.contains("kms:EnableKey"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_key_pending_deletion() {
        let m = meta(
            Some(KeyUsageType::SignVerify),
            Some(KeySpec::EccNistP256),
            Some(KeyState::PendingDeletion),
            vec![SigningAlgorithmSpec::EcdsaSha256],
        );
        let e = check_key_metadata(ARN, &m).expect_err("pending deletion");
        let msg = e.to_string();
        assert!(msg.contains("PendingDeletion"), "{msg}");
        assert!(msg.contains("CancelKeyDeletion"), "{msg}");
        assert!(msg.contains("2030-03-17"), "{msg}");
        // The requested name is the ARN: not repeated.
        assert_eq!(msg.matches(ARN).count(), 1, "{msg}");
        // A SignError keeps the message.
        let se: codeseal_signer::SignError = e.into();
        assert!(se.to_string().starts_with("aws-kms: "), "{se}");
    }

    #[test]
    fn rejects_other_states_and_missing_state() {
        for state in [
            KeyState::PendingImport,
            KeyState::Unavailable,
            KeyState::Creating,
        ] {
            let m = meta(
                Some(KeyUsageType::SignVerify),
                Some(KeySpec::Rsa2048),
                Some(state.clone()),
                rsa_algs(),
            );
            let e = check_key_metadata("k", &m).expect_err("not enabled");
            assert!(e.to_string().contains(state.as_str()), "{e}");
        }
        // No KeyState: the Enabled flag decides.
        let m = meta(
            Some(KeyUsageType::SignVerify),
            Some(KeySpec::Rsa2048),
            None,
            rsa_algs(),
        );
        assert!(matches!(
            check_key_metadata("k", &m),
            Err(KmsError::KeyNotEnabled { .. })
        ));
    }

    #[test]
    fn rejects_encrypt_decrypt_key() {
        let m = meta(
            Some(KeyUsageType::EncryptDecrypt),
            Some(KeySpec::SymmetricDefault),
            Some(KeyState::Enabled),
            vec![],
        );
        let e = check_key_metadata("alias/data", &m).expect_err("encrypt");
        assert!(
            matches!(e, KmsError::WrongKeyUsage { ref usage, .. } if usage == "ENCRYPT_DECRYPT")
        );
        assert!(e.to_string().contains("SIGN_VERIFY"), "{e}");
        // Usage is reported before the (also bad) state.
        let m = meta(
            Some(KeyUsageType::GenerateVerifyMac),
            Some(KeySpec::Hmac256),
            Some(KeyState::Disabled),
            vec![],
        );
        assert!(matches!(
            check_key_metadata("k", &m),
            Err(KmsError::WrongKeyUsage { .. })
        ));
    }

    #[test]
    fn rejects_unsupported_key_specs() {
        for (spec, alg) in [
            (KeySpec::EccSecgP256K1, SigningAlgorithmSpec::EcdsaSha256),
            (KeySpec::EccNistP521, SigningAlgorithmSpec::EcdsaSha512),
            (KeySpec::Sm2, SigningAlgorithmSpec::Sm2Dsa),
            (KeySpec::MlDsa65, SigningAlgorithmSpec::MlDsaShake256),
            (
                KeySpec::EccNistEdwards25519,
                SigningAlgorithmSpec::Ed25519Sha512,
            ),
        ] {
            let e = check_key_metadata("k", &good(spec.clone(), vec![alg])).expect_err("spec");
            assert!(
                matches!(e, KmsError::UnsupportedKeySpec { spec: ref s, .. } if s == spec.as_str()),
                "{e}"
            );
        }
    }

    #[test]
    fn rejects_key_without_usable_algorithm() {
        let m = good(
            KeySpec::Rsa2048,
            vec![SigningAlgorithmSpec::RsassaPssSha256],
        );
        let e = check_key_metadata("k", &m).expect_err("pss only");
        assert!(e.to_string().contains("RSASSA_PSS_SHA_256"), "{e}");
    }

    #[test]
    fn rejects_incomplete_metadata() {
        let m = meta(
            None,
            Some(KeySpec::Rsa2048),
            Some(KeyState::Enabled),
            rsa_algs(),
        );
        assert!(matches!(
            check_key_metadata("k", &m),
            Err(KmsError::InvalidResponse { .. })
        ));
        let m = meta(
            Some(KeyUsageType::SignVerify),
            None,
            Some(KeyState::Enabled),
            rsa_algs(),
        );
        assert!(matches!(
            check_key_metadata("k", &m),
            Err(KmsError::InvalidResponse { .. })
        ));
    }

    #[test]
    fn algorithm_mapping() {
        use DigestAlgorithm::*;
        let rsa = KeyKind::Rsa { bits: 2048 };
        assert_eq!(
            signing_algorithm_spec(rsa.with_digest(Sha256)),
            Some(SigningAlgorithmSpec::RsassaPkcs1V15Sha256)
        );
        assert_eq!(
            signing_algorithm_spec(rsa.with_digest(Sha384)),
            Some(SigningAlgorithmSpec::RsassaPkcs1V15Sha384)
        );
        assert_eq!(
            signing_algorithm_spec(rsa.with_digest(Sha512)),
            Some(SigningAlgorithmSpec::RsassaPkcs1V15Sha512)
        );
        assert_eq!(
            signing_algorithm_spec(KeyKind::EcP256.with_digest(Sha256)),
            Some(SigningAlgorithmSpec::EcdsaSha256)
        );
        assert_eq!(
            signing_algorithm_spec(KeyKind::EcP384.with_digest(Sha384)),
            Some(SigningAlgorithmSpec::EcdsaSha384)
        );
        for kind in [rsa, KeyKind::EcP256, KeyKind::EcP384] {
            assert_eq!(signing_algorithm_spec(kind.with_digest(Sha1)), None);
        }
        assert_eq!(
            signing_algorithm_spec(KeyKind::EcP256.with_digest(Sha384)),
            None
        );
        assert_eq!(
            signing_algorithm_spec(KeyKind::EcP384.with_digest(Sha256)),
            None
        );
        assert_eq!(
            signing_algorithm_spec(KeyKind::EcP256.with_digest(Sha512)),
            None
        );
    }
}
