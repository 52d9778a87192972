//! Signature management around a signature: remove, extract, attach.
use std::path::Path;

use codeseal_signer::DigestAlgorithm;

use crate::{
    error::{Error, Result},
    format::{self, stage, FileKind, StageOptions},
    pkcs7::{page_hashes_of, ParsedSignature},
    stage::{read_primary_signature, Existing},
};

fn stage_opts(force: bool, existing: Existing) -> StageOptions<'static> {
    StageOptions {
        force,
        sync_dir: true,
        existing,
        algs: &[],
        pages: None,
        msi_dse: false,
        appx_signer: None,
    }
}

/// Removes every signature from `input`, writing the result to `output` (may be `input`).
/// The digest of the result equals the signed file's.
pub fn remove_signature(input: &Path, output: &Path, force: bool) -> Result<u64> {
    let kind = FileKind::detect(input)?;
    let staged = stage(kind, input, output, stage_opts(force, Existing::Replace))?;
    if !staged.was_signed() {
        return Err(Error::NotSigned);
    }
    staged.commit(None)
}

/// The primary signature of a signed file, as a DER ContentInfo (PKCS#7), nested signatures
/// and time stamps included.
pub fn extract_signature(input: &Path) -> Result<Vec<u8>> {
    match FileKind::detect(input)? {
        FileKind::Pe => read_primary_signature(input),
        FileKind::Script(k) => {
            let mut f = std::fs::File::open(input)
                .map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
            let layout = crate::script::ScriptLayout::read(k, &mut f)?;
            layout.check_text(&mut f)?;
            let block = layout.signature().ok_or(Error::NotSigned)?;
            let parsed = ParsedSignature::parse(&block.pkcs7)?;
            Ok(parsed.der.to_vec())
        }
        FileKind::Cab => format::cab::extract(input),
        FileKind::Msi => format::msi::extract(input),
        FileKind::Appx | FileKind::AppxBundle => format::appx::extract(input),
        FileKind::Catalog => format::catalog::extract(input),
    }
}

/// How to attach a detached signature.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct AttachOptions {
    /// Replace an existing signature.
    pub replace: bool,
    /// Nest into the existing signature instead.
    pub append: bool,
    /// Overwrite an existing output.
    pub force: bool,
}

impl AttachOptions {
    /// Sets `replace`: replace an existing signature.
    pub fn with_replace(mut self, replace: bool) -> Self {
        self.replace = replace;
        self
    }
    /// Sets `append`: nest into the existing signature instead.
    pub fn with_append(mut self, append: bool) -> Self {
        self.append = append;
        self
    }
    /// Sets `force`: overwrite an existing output.
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }
}

/// Attaches the DER (or PEM) PKCS#7 signature `pkcs7` to `input`, after checking that its
/// digest (and page hashes, if any) match the file. The result is checked as a whole before
/// it replaces `output`.
pub fn attach_signature(
    input: &Path,
    pkcs7: &[u8],
    output: &Path,
    opts: AttachOptions,
) -> Result<u64> {
    let der = if pkcs7.starts_with(b"-----BEGIN") {
        let (_, der) = der::pem::decode_vec(pkcs7)
            .map_err(|e| Error::malformed_signature(format!("PEM: {e}")))?;
        der
    } else {
        pkcs7.to_vec()
    };
    let parsed = ParsedSignature::parse(&der)?;
    let der = der.get(..parsed.der_len).unwrap_or_default().to_vec();
    let existing = if opts.append {
        Existing::Keep
    } else if opts.replace {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    let kind = FileKind::detect(input)?;
    format::catalog::refuse_append(kind, opts.append)?;
    if matches!(kind, FileKind::Appx | FileKind::AppxBundle) {
        format::appx::refuse_nesting(opts.append)?;
    }
    format::check_indirect_data(kind, &parsed.spc.data).map_err(Error::Usage)?;
    let pages = page_hashes_of(&parsed.spc)?.map(|(alg, _)| alg);
    let staged = stage(
        kind,
        input,
        output,
        StageOptions {
            force: opts.force,
            sync_dir: true,
            existing,
            // The output check verifies the nested signatures too: hash for all of them.
            algs: &digest_algorithms(&der)?,
            pages,
            msi_dse: false,
            appx_signer: None,
        },
    )?;
    let computed = staged
        .digest(parsed.digest_algorithm)
        .ok_or_else(|| Error::Usage("digest missing".into()))?;
    if computed != parsed.image_digest() {
        return Err(Error::Usage(format!(
            "the signature is for another file: its {} digest is {}, this file's is {}",
            parsed.digest_algorithm,
            hex::encode(parsed.image_digest()),
            hex::encode(computed)
        )));
    }
    if let (Some((_, theirs)), Some((_, ours))) =
        (page_hashes_of(&parsed.spc)?, staged.page_hashes())
    {
        if &theirs != ours {
            return Err(Error::Usage(
                "the signature's page hashes do not match this file".into(),
            ));
        }
    }
    let table = match staged.existing_signature() {
        Some(primary) => crate::pkcs7::nest_signature(primary, &der)?,
        None => der,
    };
    staged.commit(Some(&table))
}

/// The digest algorithms in use by a DER signature and its nested ones.
pub fn digest_algorithms(pkcs7: &[u8]) -> Result<Vec<DigestAlgorithm>> {
    let p = ParsedSignature::parse(pkcs7)?;
    let mut v = vec![p.digest_algorithm];
    for n in p.nested_der() {
        v.push(ParsedSignature::parse(n)?.digest_algorithm);
    }
    Ok(v)
}

/// Adds a time stamp to the primary signature of `input` (which must have none of that
/// protocol yet), writing the result to `output` (may be `input`).
pub fn timestamp_file(
    input: &Path,
    output: &Path,
    force: bool,
    opts: &crate::timestamp::TimestampOptions,
) -> Result<crate::timestamp::Stamp> {
    let kind = FileKind::detect(input)?;
    let staged = stage(kind, input, output, stage_opts(force, Existing::Keep))?;
    let primary = staged
        .existing_signature()
        .ok_or(Error::NotSigned)?
        .to_vec();
    let parsed = ParsedSignature::parse(&primary)?;
    if !parsed
        .unsigned_values(crate::oid::SPC_RFC3161_TIMESTAMP)
        .is_empty()
        || !parsed
            .unsigned_values(crate::oid::PKCS9_COUNTERSIGNATURE)
            .is_empty()
    {
        return Err(Error::Usage(
            "the signature already has a time stamp".into(),
        ));
    }
    let stamp = crate::timestamp::stamp(
        parsed.signer_info.signature.as_bytes(),
        opts,
        opts.transport.0.as_ref(),
    )?;
    let new = crate::pkcs7::add_unsigned_attr_and_certs(
        &primary,
        stamp.attr_oid,
        stamp.value.clone(),
        &stamp.certs,
    )?;
    staged.commit(Some(&new))?;
    Ok(stamp)
}
