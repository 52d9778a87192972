//! Certificate signing requests (PKCS#10) made with any [`KeySigner`]: to buy an EV/OV
//! code-signing certificate whose key stays in KMS or an HSM.
//!
//! Built with `x509-cert`'s `RequestBuilder` in its two-step form: `finalize` gives the
//! bytes to sign, the key signs their digest (remote keys without blocking, through
//! [`build_csr_async`]), `assemble` makes the request.
use std::{str::FromStr, sync::Arc};

use const_oid::ObjectIdentifier;
use der::asn1::BitString;
use x509_cert::{
    builder::{Builder, RequestBuilder},
    ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages},
    name::Name,
    request::CertReq,
};

use crate::{DigestAlgorithm, KeySigner, RustCryptoSigner, SignError};

/// id-kp-codeSigning.
pub const ID_KP_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");

/// What goes into a CSR besides the subject.
#[derive(Clone, Debug)]
pub struct CsrOptions {
    /// The hash for the request's signature (SHA-256 by default).
    pub digest: DigestAlgorithm,
    /// Request the extended key usage codeSigning.
    pub code_signing_eku: bool,
    /// Request key usage digitalSignature (critical).
    pub digital_signature_key_usage: bool,
}

impl Default for CsrOptions {
    fn default() -> Self {
        Self {
            digest: DigestAlgorithm::Sha256,
            code_signing_eku: false,
            digital_signature_key_usage: false,
        }
    }
}

fn builder_error(e: impl std::fmt::Display) -> SignError {
    SignError::malformed("certificate request", e)
}

/// Starts the request: subject, public key, requested extensions. Returns the adapter (which
/// must outlive the builder) and the builder.
fn with_builder<T>(
    key: &Arc<dyn KeySigner>,
    subject: &str,
    opts: &CsrOptions,
    f: impl FnOnce(&RustCryptoSigner, RequestBuilder<'_, RustCryptoSigner>) -> Result<T, SignError>,
) -> Result<T, SignError> {
    if opts.digest.is_weak() {
        return Err(SignError::malformed(
            "certificate request",
            "SHA-1 is not accepted for CSRs",
        ));
    }
    let alg = key.key_kind().with_digest(opts.digest);
    let signer = RustCryptoSigner::new(Arc::clone(key), alg)?;
    let name = Name::from_str(subject)
        .map_err(|e| SignError::malformed("subject", format!("{subject:?}: {e}")))?;
    let mut b = RequestBuilder::new(name, &signer).map_err(builder_error)?;
    if opts.digital_signature_key_usage {
        b.add_extension(&KeyUsage(KeyUsages::DigitalSignature.into()))
            .map_err(builder_error)?;
    }
    if opts.code_signing_eku {
        b.add_extension(&ExtendedKeyUsage(vec![ID_KP_CODE_SIGNING]))
            .map_err(builder_error)?;
    }
    f(&signer, b)
}

/// Builds and signs a CSR for `subject` (an RFC 4514 string such as `CN=Example,O=Org,C=US`),
/// blocking on the key.
pub fn build_csr(
    key: &Arc<dyn KeySigner>,
    subject: &str,
    opts: &CsrOptions,
) -> Result<CertReq, SignError> {
    with_builder(key, subject, opts, |signer, mut b| {
        let tbs = b.finalize().map_err(builder_error)?;
        let digest = signer.algorithm().digest.digest(&tbs);
        let key: &dyn KeySigner = signer.key().as_ref();
        let sig = key.sign_digest_checked(signer.algorithm(), &digest)?;
        b.assemble(BitString::from_bytes(&sig).map_err(builder_error)?)
            .map_err(builder_error)
    })
}

/// The async form of [`build_csr`]: the key call does not block.
pub async fn build_csr_async(
    key: &Arc<dyn KeySigner>,
    subject: &str,
    opts: &CsrOptions,
) -> Result<CertReq, SignError> {
    // Prepare (no await while the builder, which borrows the adapter, is alive)...
    let (tbs_digest, alg, builder_state) = with_builder(key, subject, opts, |signer, mut b| {
        let tbs = b.finalize().map_err(builder_error)?;
        Ok((
            signer.algorithm().digest.digest(&tbs),
            signer.algorithm(),
            tbs,
        ))
    })?;
    let k: &dyn KeySigner = key.as_ref();
    let sig = k.sign_digest_checked_async(alg, &tbs_digest).await?;
    // ...then rebuild the same request and assemble it with the signature. The builder is
    // deterministic, so the to-be-signed bytes are identical; check it.
    with_builder(key, subject, opts, |_, mut b| {
        let tbs = b.finalize().map_err(builder_error)?;
        if tbs != builder_state {
            return Err(builder_error(
                "the request changed between finalize and assemble",
            ));
        }
        b.assemble(BitString::from_bytes(&sig).map_err(builder_error)?)
            .map_err(builder_error)
    })
}
