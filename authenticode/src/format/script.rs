//! Scripts in the pipeline (PowerShell, MOF, JScript, VBScript, WSF), in memory independent
//! of the script's size: staging finds the signature block from the end of the file, then
//! reads the text once, hashing it for every digest algorithm needed and copying the bytes
//! before the block's place to the temp file; the commit writes the new block and the bytes
//! after it (the `.wsf` tail from the last `</job>`), then reads the temp file back the same
//! way to check it. Every byte outside the block is kept. The reading and writing of the
//! block itself is [`crate::script`].
use std::{
    fs::File,
    io::{Read, Seek, SeekFrom, Write},
    path::Path,
};

use codeseal_signer::DigestAlgorithm;

use super::{check_written, output::OutputFile, FileKind, StageOptions, Staged};
use codeseal_formats::digest::{Digests, Hashers};

use crate::{
    error::{Error, Result},
    script::{Encoding, ScriptError, ScriptKind, ScriptLayout},
    stage::{Existing, KeptSignature},
};

/// The script's digests for `algs` (and its encoding), in one pass over its text that also
/// copies the bytes before the block's place to `out` if given.
pub(crate) fn stream_digests<R: Read + Seek>(
    layout: &ScriptLayout,
    r: &mut R,
    algs: &[DigestAlgorithm],
    out: Option<&mut dyn Write>,
) -> std::result::Result<(Encoding, Digests), ScriptError> {
    let mut hashers = Hashers::new(algs);
    let encoding = layout.stream(r, &mut hashers, out)?;
    Ok((encoding, hashers.finish()))
}

/// A script hashed once, its text before the block's place already in the temp file,
/// waiting for its signature block.
#[derive(Debug)]
pub(crate) struct StagedScript {
    kind: ScriptKind,
    input: File,
    layout: ScriptLayout,
    digests: Digests,
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
        let mut file =
            File::open(input).map_err(|e| Error::io(format!("opening {}", input.display()), e))?;
        let mut out = OutputFile::create(input, &file, output, opts.force, opts.sync_dir)?;
        let layout = ScriptLayout::read(kind, &mut file)?;
        // An error found before the text is read: a text error is reported first, as when
        // the whole script is checked before anything else.
        let text_first = |file: &mut File, e: Error| match layout.check_text(file) {
            Err(t) => Error::from(t),
            Ok(_) => e,
        };
        let was_signed = layout.signature().is_some();
        if was_signed && opts.existing == Existing::Refuse {
            return Err(text_first(&mut file, Error::AlreadySigned));
        }
        let mut algs = opts.algs.to_vec();
        let mut existing = None;
        let mut inherited = Vec::new();
        if let (Some(block), Existing::Keep) = (layout.signature(), opts.existing) {
            let k = match KeptSignature::parse(&block.pkcs7) {
                Ok(k) => k,
                Err(e) => return Err(text_first(&mut file, e)),
            };
            algs.extend(k.algs);
            inherited = k.inherited;
            existing = Some(k.der);
        }
        algs.sort_by_key(|a| a.output_len());
        algs.dedup();
        let (_, digests) = stream_digests(&layout, &mut file, &algs, Some(out.file_mut()))?;
        Ok(Self {
            kind,
            input: file,
            layout,
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
        self.digests.get(alg)
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
        let this = &mut *self;
        let f = this.out.file_mut();
        this.layout.write_rest(&mut this.input, f, signature)?;
        f.flush()
            .map_err(|e| Error::io("writing the temp file", e))?;

        // The check reads back what is on disk, the same way: the text must hash as
        // before, and the block must hold exactly the new signature, which must verify
        // against that digest.
        let fail = |e: ScriptError| match e {
            ScriptError::Io { .. } => Error::from(e),
            e => Error::OutputCheck(e.to_string()),
        };
        f.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("rewinding the temp file", e))?;
        let back = ScriptLayout::read(this.kind, f).map_err(fail)?;
        let algs: Vec<DigestAlgorithm> = this.digests.algorithms().collect();
        let (_, written) = stream_digests(&back, f, &algs, None).map_err(fail)?;
        if written != this.digests {
            return Err(Error::OutputCheck(
                "the written text does not hash as the input's".into(),
            ));
        }
        let fail = Error::OutputCheck;
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
                    FileKind::Script(this.kind),
                    &block.pkcs7,
                    |alg| this.digests.get(alg),
                    &this.inherited,
                    |_| Ok(()),
                )?;
            }
        }
        let len = back.len();
        self.out.persist()?;
        Ok(len)
    }
}
