//! A throwaway PKI for demos and trying things on one machine: a root, an intermediate and a
//! code-signing leaf, each with a freshly generated ECDSA P-256 key, valid for a week.
//!
//! Never trust such a root anywhere but the demo it was made for.
use std::{path::Path, str::FromStr, sync::Arc, time::Duration};

use codeseal_signer::{DigestAlgorithm, KeyKind, KeySigner, RustCryptoSigner};
use der::{asn1::ObjectIdentifier, EncodePem};
use x509_cert::{
    builder::{Builder, CertificateBuilder, Profile},
    ext::pkix::ExtendedKeyUsage,
    name::Name,
    serial_number::SerialNumber,
    time::Validity,
    Certificate,
};

use crate::LocalKey;

const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");

/// Why a throwaway PKI could not be made or written.
pub type ThrowawayError = Box<dyn std::error::Error + Send + Sync>;

/// A root, an intermediate and a code-signing leaf with its key.
pub struct ThrowawayPki {
    /// The self-signed root (the trust anchor).
    pub root: Certificate,
    /// Leaf first, then the intermediate.
    pub chain: Vec<Certificate>,
    /// The leaf's key.
    pub leaf_key: Arc<LocalKey>,
}

impl std::fmt::Debug for ThrowawayPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThrowawayPki").finish_non_exhaustive()
    }
}

fn issue(
    profile: Profile,
    serial: u8,
    subject: &str,
    subject_key: &LocalKey,
    issuer_key: Arc<dyn KeySigner>,
    code_signing: bool,
) -> Result<Certificate, ThrowawayError> {
    let alg = issuer_key.key_kind().with_digest(DigestAlgorithm::Sha256);
    let signer = RustCryptoSigner::new(issuer_key, alg)?;
    let mut b = CertificateBuilder::new(
        profile,
        SerialNumber::new(&[serial])?,
        Validity::from_now(Duration::from_secs(7 * 24 * 3600))?,
        Name::from_str(subject)?,
        subject_key.public_key().clone(),
        &signer,
    )?;
    if code_signing {
        b.add_extension(&ExtendedKeyUsage(vec![CODE_SIGNING]))?;
    }
    Ok(b.build::<codeseal_signer::Signature>()?)
}

impl ThrowawayPki {
    /// Makes one; `label` goes into the subject names (e.g. `"codeseal demo"`).
    pub fn generate(label: &str) -> Result<Self, ThrowawayError> {
        let root_key = Arc::new(LocalKey::generate(KeyKind::EcP256)?);
        let int_key = Arc::new(LocalKey::generate(KeyKind::EcP256)?);
        let leaf_key = Arc::new(LocalKey::generate(KeyKind::EcP256)?);
        let root_name = format!("CN={label} root,O={label}");
        let int_name = format!("CN={label} intermediate,O={label}");
        let root = issue(
            Profile::Root,
            1,
            &root_name,
            &root_key,
            root_key.clone(),
            false,
        )?;
        let int = issue(
            Profile::SubCA {
                issuer: Name::from_str(&root_name)?,
                path_len_constraint: Some(0),
            },
            2,
            &int_name,
            &int_key,
            root_key,
            false,
        )?;
        let leaf = issue(
            Profile::Leaf {
                issuer: Name::from_str(&int_name)?,
                enable_key_agreement: false,
                enable_key_encipherment: false,
            },
            3,
            &format!("CN={label} code signing,O={label}"),
            &leaf_key,
            int_key,
            true,
        )?;
        Ok(Self {
            root,
            chain: vec![leaf, int],
            leaf_key,
        })
    }

    /// Writes `root.pem`, `chain.pem` (leaf first) and `leaf.key` (PKCS#8 PEM, mode 0600 on
    /// Unix) into `dir`.
    pub fn write_to(&self, dir: &Path) -> Result<(), ThrowawayError> {
        let pem = |c: &Certificate| c.to_pem(der::pem::LineEnding::LF);
        std::fs::write(dir.join("root.pem"), pem(&self.root)?)?;
        let mut chain = String::new();
        for c in &self.chain {
            chain.push_str(&pem(c)?);
        }
        std::fs::write(dir.join("chain.pem"), chain)?;
        let key_path = dir.join("leaf.key");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&key_path)?;
        std::io::Write::write_all(&mut f, self.leaf_key.to_pkcs8_pem()?.as_bytes())?;
        Ok(())
    }
}
