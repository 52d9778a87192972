//! Scripts in the pipeline (PowerShell, MOF, JScript, VBScript, WSF): the text is held in
//! memory (at most [`MAX_SCRIPT`] bytes), hashed in one pass over every digest algorithm
//! needed, and written back with the signature block replaced; every byte outside the block
//! is kept. The reading and writing of the block itself is [`crate::script`].
use std::{
    fs::File,
    io::{Read, Seek, SeekFrom, Write},
    path::Path,
};

use codeseal_signer::DigestAlgorithm;

use super::{check_written, output::OutputFile, FileKind, StageOptions, Staged};
use crate::{
    digest::Hasher,
    error::{Error, Result},
    pkcs7::ParsedSignature,
    script::{Script, ScriptKind},
    stage::Existing,
};

/// The largest script codeseal reads (scripts are held in memory).
pub const MAX_SCRIPT: u64 = 512 << 20;

/// Reads a whole script, refusing one over [`MAX_SCRIPT`] bytes (checked against the bytes
/// actually read, not only the file system's length).
pub(crate) fn read_script<R: Read>(r: R, what: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    r.take(MAX_SCRIPT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("reading {}", what.display()), e))?;
    if bytes.len() as u64 > MAX_SCRIPT {
        return Err(Error::Unsupported(format!(
            "{}: scripts larger than {} MiB are not supported",
            what.display(),
            MAX_SCRIPT >> 20
        )));
    }
    Ok(bytes)
}

/// The script's digests for `algs`, in one pass over its text.
pub(crate) fn digests(
    script: &Script<'_>,
    algs: &[DigestAlgorithm],
) -> Result<Vec<(DigestAlgorithm, Vec<u8>)>> {
    let mut hashers: Vec<(DigestAlgorithm, Hasher)> =
        algs.iter().map(|&a| (a, Hasher::new(a))).collect();
    script.digest_input(|chunk| hashers.iter_mut().for_each(|(_, h)| h.update(chunk)))?;
    Ok(hashers
        .into_iter()
        .map(|(a, h)| (a, h.finalize()))
        .collect())
}

fn lookup(digests: &[(DigestAlgorithm, Vec<u8>)], alg: DigestAlgorithm) -> Option<&[u8]> {
    digests
        .iter()
        .find(|(a, _)| *a == alg)
        .map(|(_, d)| d.as_slice())
}

/// A script read once, waiting for its signature block.
#[derive(Debug)]
pub(crate) struct StagedScript {
    kind: ScriptKind,
    bytes: Vec<u8>,
    digests: Vec<(DigestAlgorithm, Vec<u8>)>,
    existing: Option<Vec<u8>>,
    inherited: Vec<Vec<u8>>,
    was_signed: bool,
    out: OutputFile,
}

impl StagedScript {
    pub(crate) fn stage(
        kind: ScriptKind,
        input: &Path,
        output: &Path,
        opts: StageOptions<'_>,
    ) -> Result<Self> {
        let file =
            File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
        let out = OutputFile::create(input, &file, output, opts.force)?;
        let bytes = read_script(&file, input)?;
        let script = Script::parse(kind, &bytes)?;
        let was_signed = script.signature().is_some();
        if was_signed && opts.existing == Existing::Refuse {
            return Err(Error::AlreadySigned);
        }
        let mut algs = opts.algs.to_vec();
        let mut existing = None;
        let mut inherited = Vec::new();
        if let (Some(block), Existing::Keep) = (script.signature(), opts.existing) {
            let parsed = ParsedSignature::parse(&block.pkcs7)?;
            algs.push(parsed.digest_algorithm);
            for n in parsed.nested_der() {
                if let Ok(p) = ParsedSignature::parse(n) {
                    algs.push(p.digest_algorithm);
                }
                inherited.push(n.to_vec());
            }
            existing = Some(parsed.der.to_vec());
        }
        algs.sort_by_key(|a| a.output_len());
        algs.dedup();
        let digests = digests(&script, &algs)?;
        Ok(Self {
            kind,
            bytes,
            digests,
            existing,
            inherited,
            was_signed,
            out,
        })
    }
}

impl Staged for StagedScript {
    fn kind(&self) -> FileKind {
        FileKind::Script(self.kind)
    }

    fn digest(&self, alg: DigestAlgorithm) -> Option<&[u8]> {
        lookup(&self.digests, alg)
    }

    fn page_hashes(&self) -> Option<&(DigestAlgorithm, Vec<u8>)> {
        None
    }

    fn existing_signature(&self) -> Option<&[u8]> {
        self.existing.as_deref()
    }

    fn was_signed(&self) -> bool {
        self.was_signed
    }

    fn output(&self) -> &Path {
        self.out.output()
    }

    fn commit(mut self: Box<Self>, signature: Option<&[u8]>) -> Result<u64> {
        let script = Script::parse(self.kind, &self.bytes)?;
        let new = match signature {
            Some(der) => script.signed_bytes(der)?,
            None => script.unsigned_bytes(),
        };
        let tmp_path = self.out.tmp().path().to_path_buf();
        let f = self.out.file_mut();
        f.write_all(&new)
            .map_err(|e| Error::io("writing the temp file", e))?;
        f.flush()
            .map_err(|e| Error::io("writing the temp file", e))?;
        drop(new);

        // The check reads back what is on disk: the text must hash as before, and the block
        // must hold exactly the new signature, which must verify against that digest.
        let fail = Error::OutputCheck;
        f.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("rewinding the temp file", e))?;
        let written = read_script(&mut *f, &tmp_path)?;
        let back = Script::parse(self.kind, &written).map_err(|e| fail(e.to_string()))?;
        let algs: Vec<DigestAlgorithm> = self.digests.iter().map(|(a, _)| *a).collect();
        if digests(&back, &algs)? != self.digests {
            return Err(fail("the written text does not hash as the input's".into()));
        }
        match (signature, back.signature()) {
            (None, None) => {}
            (None, Some(_)) => return Err(fail("a signature block is still present".into())),
            (Some(_), None) => return Err(fail("no signature block was written".into())),
            (Some(der), Some(block)) => {
                if block.pkcs7 != der {
                    return Err(fail(
                        "the signature block does not hold the new signature".into(),
                    ));
                }
                check_written(
                    FileKind::Script(self.kind),
                    &block.pkcs7,
                    |alg| lookup(&self.digests, alg),
                    &self.inherited,
                    |_| Ok(()),
                )?;
            }
        }
        let len = written.len() as u64;
        self.out.persist()?;
        Ok(len)
    }
}
