//! Split (digest-only) signing, like SignTool's `/dg` `/ds` `/di`, on any OS and with any key:
//!
//! 1. [`make_request`] on the build machine: hash the file, build the SpcIndirectDataContent
//!    and signed attributes, and write a [`DigestRequest`] (JSON) holding what must be signed.
//! 2. [`sign_request`] wherever the key is (KMS, HSM, a file): sign the request's digest.
//! 3. [`attach_request_signature`] back on the build machine: check the signature with the
//!    certificate, assemble the PKCS#7, check it matches the file, write and verify.
//!
//! SignTool's own format is supported for step 2: a `.dig` file holds base64 of the digest
//! to sign, and the `.dig.signed` answer holds base64 of the signature.
use std::path::Path;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use codeseal_signer::{
    key_kind_of, verify_prehash, DigestAlgorithm, KeySigner, SignatureAlgorithm,
};
use der::{asn1::Any, Decode, Encode};
use serde::{Deserialize, Serialize};
use x509_cert::Certificate;

use crate::{
    digest::stream_image_with_pages,
    error::{Error, Result},
    format::{indirect_data, FileKind},
    manage::{attach_signature, AttachOptions},
    pagehash::{page_hash_algorithm, PageHasher},
    pe::PeInfo,
    pkcs7::{OpusInfo, SignatureRequest},
};

/// What a signer needs to sign, and what the attach step needs to finish: serialisable.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DigestRequest {
    /// Format version (1).
    pub version: u32,
    /// The kind of file the request is for ("PE", "PowerShell", ...); absent in requests
    /// made before other formats were supported (PE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The signature algorithm.
    pub algorithm: SignatureAlgorithm,
    /// The digest the key must sign (hash of the signed attributes), base64.
    pub digest_to_sign: String,
    /// The file's Authenticode digest, hex (for humans and checks).
    pub image_digest: String,
    /// DER SpcIndirectDataContent, base64.
    pub spc: String,
    /// DER signed attributes (SET OF), base64.
    pub signed_attrs: String,
    /// SHA-256 of the leaf certificate the request was made for, hex.
    pub leaf_sha256: String,
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::Usage(format!("digest request: {what}"))
}

/// The digest of `input` and the indirect data a signature of it carries, read the way
/// signing reads it (the same checks), without a copy: only the digests are needed.
fn file_digest(
    input: &Path,
    digest: DigestAlgorithm,
    page_hashes: bool,
    appx_signer: Option<&Certificate>,
) -> Result<(
    FileKind,
    Vec<u8>,
    crate::spc::SpcAttributeTypeAndOptionalValue,
)> {
    let kind = FileKind::detect(input)?;
    kind.check_page_hashes(page_hashes)?;
    let file = std::fs::File::open(input)
        .map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
    match kind {
        FileKind::Pe => {
            let mut r = std::io::BufReader::with_capacity(64 << 10, file);
            let pe = PeInfo::read(&mut r)?;
            if pe.bytes_after_cert_table() > 0 {
                return Err(Error::cert_table(format!(
                    "{} bytes follow the certificate table; refusing to sign a file with unsigned trailing data",
                    pe.bytes_after_cert_table()
                )));
            }
            let mut pages: Vec<PageHasher> = page_hashes
                .then(|| PageHasher::new(&pe, page_hash_algorithm(digest)))
                .transpose()?
                .into_iter()
                .collect();
            let pass = stream_image_with_pages(&mut r, &pe, &[digest], None, &mut pages)?;
            let page_table = pages.pop().map(PageHasher::finish);
            let image_digest = pass.digest(digest).ok_or_else(|| bad("digest missing"))?;
            let data = indirect_data(kind, page_table.as_ref())?;
            Ok((kind, image_digest.to_vec(), data))
        }
        FileKind::Script(k) => {
            let data = indirect_data(kind, None)?;
            let mut file = file;
            let layout = crate::script::ScriptLayout::read(k, &mut file)?;
            let (_, d) =
                crate::format::script::stream_digests(&layout, &mut file, &[digest], None)?;
            let image_digest = d.take(digest).ok_or_else(|| bad("digest missing"))?;
            Ok((kind, image_digest, data))
        }
        FileKind::Cab => {
            let data = indirect_data(kind, None)?;
            let len = file
                .metadata()
                .map_err(|e| Error::io(format!("reading {}", input.display()), e))?
                .len();
            let mut r = std::io::BufReader::with_capacity(64 << 10, file);
            let image_digest = crate::format::cab::file_digest(&mut r, len, digest)?;
            Ok((kind, image_digest, data))
        }
        FileKind::Msi => {
            let data = indirect_data(kind, None)?;
            let r = std::io::BufReader::with_capacity(64 << 10, file);
            let image_digest = crate::format::msi::file_digest(r, digest)?;
            Ok((kind, image_digest, data))
        }
        FileKind::Appx | FileKind::AppxBundle => {
            // The blob of the package as signing stages it (unsigned, with the signature's
            // Override); attaching (with --replace for a signed package) computes it again.
            drop(file);
            let data = indirect_data(kind, None)?;
            let image_digest = crate::format::appx::file_digest(
                kind,
                input,
                crate::stage::Existing::Replace,
                digest,
                appx_signer,
            )?;
            Ok((kind, image_digest, data))
        }
        FileKind::Catalog => Err(Error::Unsupported(
            "a catalog's signature has no SpcIndirectDataContent".into(),
        )),
    }
}

/// Step 1: hashes `input` and makes the request for a key whose leaf certificate is `leaf`.
/// An APPX package's manifest Publisher must name `leaf`'s subject, as when signing
/// ([`make_request_with`] can allow a mismatch).
pub fn make_request(
    input: &Path,
    leaf: &Certificate,
    digest: DigestAlgorithm,
    opus: &OpusInfo,
    page_hashes: bool,
) -> Result<DigestRequest> {
    make_request_with(input, leaf, digest, opus, page_hashes, false)
}

/// [`make_request`], with `allow_publisher_mismatch`: for an APPX package, make the request
/// even when the manifest's Publisher is not `leaf`'s subject (test packages; Windows will
/// not install the result).
pub fn make_request_with(
    input: &Path,
    leaf: &Certificate,
    digest: DigestAlgorithm,
    opus: &OpusInfo,
    page_hashes: bool,
    allow_publisher_mismatch: bool,
) -> Result<DigestRequest> {
    let kind = key_kind_of(&leaf.tbs_certificate.subject_public_key_info)?;
    let algorithm = kind.with_digest(digest);
    let appx_signer = (!allow_publisher_mismatch).then_some(leaf);
    let (kind, image_digest, req) = if FileKind::detect(input)? == FileKind::Catalog {
        // A catalog: the signature encapsulates its CTL; the digest covers its content
        // octets.
        FileKind::Catalog.check_page_hashes(page_hashes)?;
        let f = std::fs::File::open(input)
            .map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
        let (image_digest, content) = crate::format::catalog::file_digest(f, digest)?;
        let req = SignatureRequest::for_content(algorithm, crate::oid::MS_CTL, content, opus)?;
        (FileKind::Catalog, image_digest, req)
    } else {
        let (kind, image_digest, data) = file_digest(input, digest, page_hashes, appx_signer)?;
        let req = SignatureRequest::new(algorithm, data, &image_digest, opus)?;
        (kind, image_digest, req)
    };
    Ok(DigestRequest {
        version: 1,
        kind: Some(kind.name().to_string()),
        algorithm,
        digest_to_sign: B64.encode(&req.digest_to_sign),
        image_digest: hex::encode(&image_digest),
        spc: B64.encode(req.spc.to_der()?),
        signed_attrs: B64.encode(&req.signed_attrs_der),
        leaf_sha256: hex::encode(DigestAlgorithm::Sha256.digest(&leaf.to_der()?)),
    })
}

impl DigestRequest {
    /// The digest to sign.
    pub fn digest(&self) -> Result<Vec<u8>> {
        let d = B64.decode(&self.digest_to_sign).map_err(bad)?;
        if d.len() != self.algorithm.digest.output_len() {
            return Err(bad("the digest has the wrong length for its algorithm"));
        }
        Ok(d)
    }

    fn to_signature_request(&self) -> Result<SignatureRequest> {
        let spc = Any::from_der(&B64.decode(&self.spc).map_err(bad)?).map_err(bad)?;
        let signed_attrs_der = B64.decode(&self.signed_attrs).map_err(bad)?;
        let signed_attrs =
            cms::signed_data::SignedAttributes::from_der(&signed_attrs_der).map_err(bad)?;
        let digest_to_sign = self.algorithm.digest.digest(&signed_attrs_der);
        if digest_to_sign != self.digest()? {
            return Err(bad("the digest does not match the signed attributes"));
        }
        // The signed attributes must commit to this SpcIndirectDataContent.
        let want = self.algorithm.digest.digest(spc.value());
        let md = signed_attrs
            .iter()
            .find(|a| a.oid == crate::oid::PKCS9_MESSAGE_DIGEST)
            .and_then(|a| a.values.iter().next())
            .and_then(|v| v.decode_as::<der::asn1::OctetString>().ok())
            .ok_or_else(|| bad("no messageDigest attribute"))?;
        if md.as_bytes() != want.as_slice() {
            return Err(bad(
                "the signed attributes do not cover the SpcIndirectDataContent",
            ));
        }
        let content_type = if self.kind.as_deref() == Some(FileKind::Catalog.name()) {
            crate::oid::MS_CTL
        } else {
            crate::oid::SPC_INDIRECT_DATA
        };
        Ok(SignatureRequest {
            algorithm: self.algorithm,
            content_type,
            spc,
            signed_attrs,
            signed_attrs_der,
            digest_to_sign,
        })
    }
}

/// Step 2: signs the request's digest with `key` (checked against the key's public key).
pub fn sign_request(key: &dyn KeySigner, req: &DigestRequest) -> Result<Vec<u8>> {
    Ok(key.sign_digest_checked(req.algorithm, &req.digest()?)?)
}

/// Step 2 for SignTool's `.dig` files: the content is base64 of a digest; the answer is base64
/// of the signature (what `signtool sign /di` ingests as `.dig.signed`).
pub fn sign_signtool_dig(
    key: &dyn KeySigner,
    dig_file_content: &[u8],
    digest: DigestAlgorithm,
) -> Result<String> {
    let text: Vec<u8> = dig_file_content
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace() && *c != 0)
        .collect();
    let d = B64
        .decode(&text)
        .map_err(|e| Error::Usage(format!(".dig file: not base64: {e}")))?;
    let alg = key.key_kind().with_digest(digest);
    if d.len() != digest.output_len() {
        return Err(Error::Usage(format!(
            ".dig file holds {} bytes; a {digest} digest has {} (pass the digest algorithm SignTool used with /fd)",
            d.len(),
            digest.output_len()
        )));
    }
    let sig = key.sign_digest_checked(alg, &d)?;
    Ok(B64.encode(sig))
}

/// Step 3: checks `signature` against the leaf of `chain` and the request, assembles the PKCS#7
/// and attaches it to `input` (checking it matches the file), writing `output`.
pub fn attach_request_signature(
    input: &Path,
    req: &DigestRequest,
    signature: &[u8],
    chain: &[Certificate],
    output: &Path,
    opts: AttachOptions,
) -> Result<u64> {
    let leaf = chain.first().ok_or_else(|| bad("no certificate"))?;
    if hex::encode(DigestAlgorithm::Sha256.digest(&leaf.to_der()?)) != req.leaf_sha256 {
        return Err(bad("the request was made for another certificate"));
    }
    let sreq = req.to_signature_request()?;
    verify_prehash(
        &leaf.tbs_certificate.subject_public_key_info,
        req.algorithm.digest,
        &sreq.digest_to_sign,
        signature,
    )
    .map_err(|_| bad("the signature does not verify with the certificate's key (wrong key or wrong request?)"))?;
    let pkcs7 = sreq.assemble(chain, signature)?;
    attach_signature(input, &pkcs7, output, opts)
}
