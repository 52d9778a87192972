use std::sync::Arc;

use der::{asn1::BitString, Encode};
use spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey,
    SignatureBitStringEncoding, SubjectPublicKeyInfoOwned,
};

use crate::{KeySigner, SignError, SignatureAlgorithm};

/// A signature as produced by a [`KeySigner`]: raw RSASSA-PKCS1-v1_5 bytes or a DER ECDSA
/// signature, i.e. exactly what goes into an X.509 `BIT STRING` or a CMS `OCTET STRING`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature(Box<[u8]>);

impl Signature {
    /// The signature bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Signature {
    fn from(v: Vec<u8>) -> Self {
        Self(v.into_boxed_slice())
    }
}

impl TryFrom<&[u8]> for Signature {
    type Error = signature::Error;
    fn try_from(b: &[u8]) -> Result<Self, Self::Error> {
        Ok(Self(b.into()))
    }
}

impl From<Signature> for Box<[u8]> {
    fn from(s: Signature) -> Self {
        s.0
    }
}

impl signature::SignatureEncoding for Signature {
    type Repr = Box<[u8]>;
}

impl SignatureBitStringEncoding for Signature {
    fn to_bitstring(&self) -> der::Result<BitString> {
        BitString::from_bytes(&self.0)
    }
}

/// The public half of a [`KeySigner`], for `signature::Keypair`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(pub SubjectPublicKeyInfoOwned);

impl EncodePublicKey for PublicKey {
    fn to_public_key_der(&self) -> spki::Result<spki::Document> {
        Ok(spki::Document::try_from(self.0.to_der()?)?)
    }
}

/// Gives any [`KeySigner`] the RustCrypto signing traits, for one fixed algorithm.
///
/// `Signer::try_sign` hashes the message with the algorithm's hash and signs the digest;
/// `PrehashSigner::sign_prehash` signs a digest; `AsyncSigner` does the same without
/// blocking; `Keypair` and `DynSignatureAlgorithmIdentifier` give the public key and the
/// X.509 algorithm identifier, which is all `x509-cert`'s `CertificateBuilder` and
/// `RequestBuilder` need. Every signature is verified with the public key before it is
/// returned.
///
/// For a key behind a network (KMS) prefer the async path or the builders' two-step form
/// (`finalize` → sign → `assemble`): the sync traits block the calling thread.
#[derive(Clone, Debug)]
pub struct RustCryptoSigner {
    key: Arc<dyn KeySigner>,
    algorithm: SignatureAlgorithm,
    public: PublicKey,
}

impl RustCryptoSigner {
    /// Wraps `key` for `algorithm`; fails if the key cannot sign with it.
    pub fn new(key: Arc<dyn KeySigner>, algorithm: SignatureAlgorithm) -> Result<Self, SignError> {
        if !key.supports(algorithm) {
            return Err(SignError::UnsupportedAlgorithm {
                key: key.key_kind(),
                requested: algorithm,
            });
        }
        let public = PublicKey(key.public_key().clone());
        Ok(Self {
            key,
            algorithm,
            public,
        })
    }

    /// The algorithm this adapter signs with.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The wrapped key.
    pub fn key(&self) -> &Arc<dyn KeySigner> {
        &self.key
    }
}

fn to_sig_error(e: SignError) -> signature::Error {
    signature::Error::from_source(e)
}

impl signature::hazmat::PrehashSigner<Signature> for RustCryptoSigner {
    fn sign_prehash(&self, prehash: &[u8]) -> signature::Result<Signature> {
        self.key
            .sign_digest_checked(self.algorithm, prehash)
            .map(Signature::from)
            .map_err(to_sig_error)
    }
}

impl signature::Signer<Signature> for RustCryptoSigner {
    fn try_sign(&self, msg: &[u8]) -> signature::Result<Signature> {
        let digest = self.algorithm.digest.digest(msg);
        signature::hazmat::PrehashSigner::sign_prehash(self, &digest)
    }
}

impl RustCryptoSigner {
    /// Hashes `msg` and signs the digest without blocking (for remote keys).
    ///
    /// `async_signature::AsyncSigner` is also implemented, through that crate's blanket impl
    /// over `signature::Signer`, which blocks; prefer this method for network keys.
    pub async fn sign_async(&self, msg: &[u8]) -> signature::Result<Signature> {
        let digest = self.algorithm.digest.digest(msg);
        self.key
            .sign_digest_checked_async(self.algorithm, &digest)
            .await
            .map(Signature::from)
            .map_err(to_sig_error)
    }
}

impl signature::Keypair for RustCryptoSigner {
    type VerifyingKey = PublicKey;
    fn verifying_key(&self) -> PublicKey {
        self.public.clone()
    }
}

impl DynSignatureAlgorithmIdentifier for RustCryptoSigner {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(self.algorithm.x509_algorithm_identifier())
    }
}
