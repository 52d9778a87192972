use std::{fmt, sync::Arc};

use der::Encode;
use x509_cert::Certificate;

use crate::{KeySigner, SignError};

/// A key together with its certificate chain (leaf first), checked to belong together.
///
/// The check happens once, in [`SigningIdentity::new`]: the leaf certificate's public key
/// must equal the key's public key (byte for byte, as DER SubjectPublicKeyInfo). A remote
/// key whose alias was re-pointed, or a certificate picked for the wrong key, is refused
/// before anything is signed.
#[derive(Clone)]
pub struct SigningIdentity {
    key: Arc<dyn KeySigner>,
    chain: Vec<Certificate>,
}

impl SigningIdentity {
    /// Puts `key` and `chain` (leaf first, then intermediates; the root is optional) together
    /// after checking that the leaf's public key is the key's.
    pub fn new(key: Arc<dyn KeySigner>, chain: Vec<Certificate>) -> Result<Self, SignError> {
        let leaf = chain.first().ok_or(SignError::EmptyChain)?;
        let cert_spki = leaf
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| SignError::malformed("certificate public key", e))?;
        let key_spki = key
            .public_key()
            .to_der()
            .map_err(|e| SignError::malformed("key public key", e))?;
        if cert_spki != key_spki {
            return Err(SignError::KeyMismatch {
                subject: leaf.tbs_certificate.subject.to_string(),
            });
        }
        Ok(Self { key, chain })
    }

    /// Skips the key/certificate match check (the chain must still not be empty). Only for
    /// callers that checked it another way.
    pub fn new_unchecked(
        key: Arc<dyn KeySigner>,
        chain: Vec<Certificate>,
    ) -> Result<Self, SignError> {
        if chain.is_empty() {
            return Err(SignError::EmptyChain);
        }
        Ok(Self { key, chain })
    }

    /// The key.
    pub fn key(&self) -> &Arc<dyn KeySigner> {
        &self.key
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[Certificate] {
        &self.chain
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &Certificate {
        #[allow(clippy::indexing_slicing)] // both constructors refuse an empty chain
        &self.chain[0]
    }
}

impl fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("key", &self.key.describe())
            .field(
                "leaf",
                &self
                    .chain
                    .first()
                    .map(|c| c.tbs_certificate.subject.to_string()),
            )
            .field("chain_len", &self.chain.len())
            .finish()
    }
}
