use std::{fmt, future::Future, pin::Pin};

use spki::SubjectPublicKeyInfoOwned;

use crate::{KeyKind, SignError, SignatureAlgorithm};

/// A boxed future, as returned by [`KeySigner::sign_digest_async`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A private key that signs **precomputed digests**.
///
/// The input of [`sign_digest`](Self::sign_digest) is the output of the hash named by the
/// algorithm (32 bytes for SHA-256), never the message: the caller hashes, the key signs.
/// That is what AWS KMS (`MessageType=DIGEST`) and PKCS#11 (`CKM_RSA_PKCS`, `CKM_ECDSA`)
/// do, and it lets a remote key sign without the message ever leaving the machine.
///
/// The output is what CMS and X.509 carry: the raw RSASSA-PKCS1-v1_5 signature for RSA,
/// the DER `Ecdsa-Sig-Value` for ECDSA.
///
/// Local and PKCS#11 keys sign in [`sign_digest`](Self::sign_digest) (blocking);
/// the default [`sign_digest_async`](Self::sign_digest_async) wraps it. A network key (KMS)
/// implements both, natively async in the second.
///
/// `Debug` must never print secret material.
pub trait KeySigner: Send + Sync + fmt::Debug {
    /// What kind of key this is.
    fn key_kind(&self) -> KeyKind;

    /// The public key, as a SubjectPublicKeyInfo.
    fn public_key(&self) -> &SubjectPublicKeyInfoOwned;

    /// A short description for logs and errors, e.g. `file:/keys/a.pem` or a KMS key ARN.
    /// Never contains a secret.
    fn describe(&self) -> String;

    /// Whether the key can sign with `algorithm`. The default accepts every digest with the
    /// key's own kind; backends with a narrower list (KMS) override it.
    fn supports(&self, algorithm: SignatureAlgorithm) -> bool {
        algorithm.key == self.key_kind() && algorithm.key.can_sign(algorithm.digest)
    }

    /// Whether the key signs in this process, on the CPU (a key held in memory), so that a
    /// batch may sign on every core. `false` (the default) for keys behind a network or in a
    /// token, which a batch calls with bounded concurrency.
    fn signs_locally(&self) -> bool {
        false
    }

    /// Signs `digest` (the output of `algorithm.digest`) and blocks until done.
    fn sign_digest(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, SignError>;

    /// Signs `digest` asynchronously. The default runs [`sign_digest`](Self::sign_digest)
    /// in place, which suits keys that do not wait on a network.
    fn sign_digest_async<'a>(
        &'a self,
        algorithm: SignatureAlgorithm,
        digest: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, SignError>> {
        Box::pin(std::future::ready(self.sign_digest(algorithm, digest)))
    }
}

/// Checks what every backend must check before it signs: the algorithm fits the key and the
/// digest has the hash's length.
pub(crate) fn check_request(
    key: &dyn KeySigner,
    algorithm: SignatureAlgorithm,
    digest: &[u8],
) -> Result<(), SignError> {
    if !key.supports(algorithm) {
        return Err(SignError::UnsupportedAlgorithm {
            key: key.key_kind(),
            requested: algorithm,
        });
    }
    let expected = algorithm.digest.output_len();
    if digest.len() != expected {
        return Err(SignError::DigestLength {
            algorithm: algorithm.digest,
            expected,
            actual: digest.len(),
        });
    }
    Ok(())
}

impl dyn KeySigner + '_ {
    /// Signs `digest` after checking the request (algorithm fits the key, digest length),
    /// then verifies the returned signature with the key's public key, so that a faulty or
    /// re-pointed remote key is caught before its signature is used.
    pub fn sign_digest_checked(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        check_request(self, algorithm, digest)?;
        let sig = self.sign_digest(algorithm, digest)?;
        self.check_returned(algorithm, digest, sig)
    }

    /// The async form of `sign_digest_checked` (above).
    pub async fn sign_digest_checked_async(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, SignError> {
        check_request(self, algorithm, digest)?;
        let sig = self.sign_digest_async(algorithm, digest).await?;
        self.check_returned(algorithm, digest, sig)
    }

    fn check_returned(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
        sig: Vec<u8>,
    ) -> Result<Vec<u8>, SignError> {
        match crate::verify_prehash(self.public_key(), algorithm.digest, digest, &sig) {
            Ok(()) => Ok(sig),
            Err(_) => Err(SignError::BadSignatureFromKey {
                backend: self.describe(),
            }),
        }
    }
}

/// Runs a blocking signing call on its own thread and returns a future of its result, so a
/// blocking backend (PKCS#11) does not stall the async executor that awaits it. Needs no
/// particular runtime.
pub fn run_blocking<F>(name: &str, f: F) -> BoxFuture<'static, Result<Vec<u8>, SignError>>
where
    F: FnOnce() -> Result<Vec<u8>, SignError> + Send + 'static,
{
    use std::{
        sync::{Arc, Mutex},
        task::{Poll, Waker},
    };
    type Slot = (Option<Result<Vec<u8>, SignError>>, Option<Waker>);
    struct Done(Arc<Mutex<Slot>>);
    impl Future for Done {
        type Output = Result<Vec<u8>, SignError>;
        fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
            let Ok(mut slot) = self.0.lock() else {
                return Poll::Ready(Err(SignError::backend(
                    "signer",
                    "a signing thread panicked",
                    None,
                )));
            };
            match slot.0.take() {
                Some(r) => Poll::Ready(r),
                None => {
                    slot.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }
    let shared: Arc<Mutex<Slot>> = Arc::new(Mutex::new((None, None)));
    let for_thread = Arc::clone(&shared);
    let spawned = std::thread::Builder::new()
        .name(format!("{name}-sign"))
        .spawn(move || {
            let r = f();
            if let Ok(mut slot) = for_thread.lock() {
                slot.0 = Some(r);
                if let Some(w) = slot.1.take() {
                    w.wake();
                }
            }
        });
    match spawned {
        Ok(_) => Box::pin(Done(shared)),
        Err(e) => Box::pin(std::future::ready(Err(SignError::backend(
            "signer",
            format!("cannot start a signing thread: {e}"),
            None,
        )))),
    }
}
