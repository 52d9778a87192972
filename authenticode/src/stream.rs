//! Signing without a file system: from any `Read + Seek` into any `Write`, and bytes to
//! bytes. The file path ([`crate::sign_file`]) adds the temp file, the check of what was
//! written to disk, fsync and rename; here the new signature is checked before a byte is
//! written (every signature is for this kind of file, matches the digest and verifies).
//!
//! A PE input is read twice (hash, then copy with the Security entry and CheckSum patched,
//! the image padded, the new table appended): the output needs no `Seek`. A script is
//! streamed too: its block found from the end, its text hashed, then copied around the new
//! block.
use std::io::{Read, Seek, SeekFrom, Write};

use codeseal_signer::{DigestAlgorithm, KeySigner, SigningIdentity};

use crate::{
    digest::stream_image_with_pages,
    error::{Error, Result},
    format::{check_written, indirect_data, FileKind},
    pagehash::{page_hash_algorithm, PageHasher},
    pkcs7::{nest_signature, SignatureRequest},
    sign::{assemble, check_algorithm, SignOptions},
    stage::{inspect, same_page_hashes, table_layout, Existing, KeptSignature},
    wincert::build_entry,
};

/// What [`sign_stream`] produced.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StreamOutcome {
    /// The kind of file signed.
    pub kind: FileKind,
    /// The file's Authenticode digest.
    pub image_digest: Vec<u8>,
    /// Bytes written to the output.
    pub output_len: u64,
    /// Whether the new signature was nested into an existing one.
    pub appended: bool,
}

pub(crate) fn existing_mode(opts: &SignOptions) -> Existing {
    if opts.append {
        Existing::Keep
    } else if opts.replace {
        Existing::Replace
    } else {
        Existing::Refuse
    }
}

/// The key's signature over `data` + `digest`, assembled (time-stamped when asked) and
/// nested into `kept` when there is one.
pub(crate) fn signature_table(
    identity: &SigningIdentity,
    opts: &SignOptions,
    data: crate::spc::SpcAttributeTypeAndOptionalValue,
    digest: &[u8],
    kept: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let algorithm = check_algorithm(identity.key().as_ref(), opts)?;
    let request = SignatureRequest::new(algorithm, data, digest, &opts.opus)?;
    let key: &dyn KeySigner = identity.key().as_ref();
    let signature = key.sign_digest_checked(algorithm, &request.digest_to_sign)?;
    let pkcs7 = assemble(&request, identity, &signature, opts.timestamp.as_ref())?;
    match kept {
        Some(primary) => Ok(nest_signature(primary, &pkcs7)?),
        None => Ok(pkcs7),
    }
}

/// Signs the `kind` file read from `input` and writes the signed file to `output`. Blocks on
/// the key. Nothing is written when anything fails before the signature is ready and
/// checked, except for APPX / MSIX packages, whose local records are written in the one
/// read that hashes and checks them (a package failing its block-map or inner-package
/// checks leaves part of it in `output`); a failing `output` may hold a partial file (the
/// caller owns it).
pub fn sign_stream<R: Read + Seek, W: Write>(
    identity: &SigningIdentity,
    kind: FileKind,
    input: &mut R,
    output: &mut W,
    opts: &SignOptions,
) -> Result<StreamOutcome> {
    kind.check_page_hashes(opts.page_hashes)?;
    match kind {
        FileKind::Pe => sign_pe(identity, input, output, opts),
        FileKind::Script(k) => sign_script(identity, k, input, output, opts),
        FileKind::Cab => crate::format::cab::sign_stream(identity, input, output, opts),
        FileKind::Msi => crate::format::msi::sign_stream(identity, input, output, opts),
        FileKind::Appx | FileKind::AppxBundle => {
            crate::format::appx::sign_stream(identity, kind, input, output, opts)
        }
        FileKind::Catalog => crate::format::catalog::sign_stream(identity, input, output, opts),
    }
}

/// Signs a whole `kind` file held in memory; returns the signed file.
pub fn sign_bytes(
    identity: &SigningIdentity,
    kind: FileKind,
    input: &[u8],
    opts: &SignOptions,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() + (16 << 10));
    sign_stream(
        identity,
        kind,
        &mut std::io::Cursor::new(input),
        &mut out,
        opts,
    )?;
    Ok(out)
}

/// A script in one streamed pass (constant memory): the block found from the end, the text
/// hashed, the signature checked, then head + new block + tail copied to the output.
fn sign_script<R: Read + Seek, W: Write>(
    identity: &SigningIdentity,
    kind: crate::script::ScriptKind,
    input: &mut R,
    output: &mut W,
    opts: &SignOptions,
) -> Result<StreamOutcome> {
    use crate::script::ScriptLayout;
    let fk = FileKind::Script(kind);
    let layout = ScriptLayout::read(kind, input)?;
    let mode = existing_mode(opts);
    let mut algs = vec![opts.digest];
    let mut kept = None;
    let mut inherited = Vec::new();
    match (layout.signature(), mode) {
        (Some(_), Existing::Refuse) => return Err(Error::AlreadySigned),
        (None, Existing::Keep) => return Err(Error::NotSigned),
        (Some(block), Existing::Keep) => {
            let k = KeptSignature::parse(&block.pkcs7)?;
            algs.extend(k.algs);
            inherited = k.inherited;
            kept = Some(k.der);
        }
        _ => {}
    }
    algs.sort_by_key(|a| a.output_len());
    algs.dedup();
    let (_, digests) = crate::format::script::stream_digests(&layout, input, &algs, None)?;
    let lookup = |alg: DigestAlgorithm| digests.get(alg);
    let digest = lookup(opts.digest).ok_or_else(|| Error::Usage("digest missing".into()))?;
    let table = signature_table(
        identity,
        opts,
        indirect_data(fk, None)?,
        digest,
        kept.as_deref(),
    )?;
    check_written(fk, &table, lookup, &inherited, |_| Ok(()))?;
    let output_len = layout.write_signed(input, output, Some(&table))?;
    Ok(StreamOutcome {
        kind: fk,
        image_digest: digest.to_vec(),
        output_len,
        appended: kept.is_some(),
    })
}

fn sign_pe<R: Read + Seek, W: Write>(
    identity: &SigningIdentity,
    r: &mut R,
    w: &mut W,
    opts: &SignOptions,
) -> Result<StreamOutcome> {
    let input = inspect(r, existing_mode(opts), &[opts.digest])?;
    if opts.append && input.kept.is_none() {
        return Err(Error::NotSigned);
    }
    let pe = &input.pe;
    let mut pages: Vec<PageHasher> = opts
        .page_hashes
        .then(|| PageHasher::new(pe, page_hash_algorithm(opts.digest)))
        .transpose()?
        .into_iter()
        .collect();
    let pass = stream_image_with_pages(r, pe, &input.algs, None, &mut pages)?;
    let page_table = pages.pop().map(PageHasher::finish);
    let digest = pass
        .digest(opts.digest)
        .ok_or_else(|| Error::Usage("digest missing".into()))?
        .to_vec();
    let table = signature_table(
        identity,
        opts,
        indirect_data(FileKind::Pe, page_table.as_ref())?,
        &digest,
        input.kept.as_deref(),
    )?;
    check_written(
        FileKind::Pe,
        &table,
        |alg| pass.digest(alg),
        &input.inherited,
        |parsed| same_page_hashes(parsed, page_table.as_ref()),
    )?;
    let entry = build_entry(&table)?;
    let (_, dir, checksum, total) = table_layout(&pass, pe, Some(&entry))?;

    // Second read: the image with the two header fields patched, the padding, the table.
    r.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("rewinding the input", e))?;
    let patches: [(u64, &[u8]); 2] = [
        (pe.checksum_offset, &checksum.to_le_bytes()),
        (pe.security_dir_offset, &dir),
    ];
    let mut buf = vec![0u8; crate::digest::CHUNK];
    let mut pos = 0u64;
    while pos < pass.image_len {
        let want = usize::try_from((pass.image_len - pos).min(buf.len() as u64))
            .unwrap_or(buf.len())
            .min(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        r.read_exact(chunk)
            .map_err(|e| Error::io("reading the input again (it changed?)", e))?;
        for (at, bytes) in patches {
            for (k, b) in bytes.iter().enumerate() {
                let o = at + k as u64;
                if o >= pos && o < pos + want as u64 {
                    if let Some(slot) = chunk.get_mut((o - pos) as usize) {
                        *slot = *b;
                    }
                }
            }
        }
        w.write_all(chunk)
            .map_err(|e| Error::io("writing the output", e))?;
        pos += want as u64;
    }
    let pad = [0u8; 8];
    w.write_all(pad.get(..pass.padding as usize).unwrap_or_default())
        .map_err(|e| Error::io("writing the output", e))?;
    w.write_all(&entry)
        .map_err(|e| Error::io("writing the output", e))?;
    Ok(StreamOutcome {
        kind: FileKind::Pe,
        image_digest: digest,
        output_len: total,
        appended: input.kept.is_some(),
    })
}
