//! The write side every format shares: a temp file beside the output, filled and checked by
//! the format, then fsync, the input's permissions, an atomic rename and a directory sync.
//! The input is never modified in place.
use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
};

use tempfile::NamedTempFile;

use crate::{
    digest::{EarlyFlush, PIPELINE_MIN},
    error::{Error, Result},
};

/// A temp file waiting to replace `output`.
#[derive(Debug)]
pub(crate) struct OutputFile {
    tmp: NamedTempFile,
    output: PathBuf,
    overwrite: bool,
    sync_dir: bool,
    permissions: Option<std::fs::Permissions>,
    /// Early flushes of what was written so far, finished before the final fsync.
    flusher: Option<EarlyFlush>,
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

impl OutputFile {
    /// A temp file in `output`'s directory. Refuses an existing `output` other than `input`
    /// unless `force`. `input` is the opened input, whose permissions the output takes.
    /// `sync_dir`: sync the directory after the rename (else the caller does).
    pub(crate) fn create(
        input: &Path,
        input_file: &File,
        output: &Path,
        force: bool,
        sync_dir: bool,
    ) -> Result<Self> {
        let _t = crate::timing::span(crate::timing::Phase::Open);
        // Only an existing output can be the input under another name: the two
        // `canonicalize` calls (a system call per path component each) are skipped for a new one.
        let exists = output.exists();
        let in_place = output == input || (exists && same_file(input, output));
        if !in_place && !force && exists {
            return Err(Error::OutputExists(output.display().to_string()));
        }
        let dir = output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".codeseal-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(format!("creating a temp file in {}", dir.display()), e))?;
        Ok(Self {
            tmp,
            output: output.to_path_buf(),
            overwrite: in_place || force,
            sync_dir,
            permissions: input_file.metadata().ok().map(|m| m.permissions()),
            flusher: None,
        })
    }

    /// The temp file.
    pub(crate) fn tmp(&self) -> &NamedTempFile {
        &self.tmp
    }

    /// The temp file, to write.
    pub(crate) fn file_mut(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Where the result goes.
    pub(crate) fn output(&self) -> &Path {
        &self.output
    }

    /// Hands over the early flushes of a copy written into the temp file
    /// ([`crate::digest::FileCopy::take_flusher`]): [`persist`](Self::persist) finishes
    /// them before its fsync.
    pub(crate) fn set_flusher(&mut self, flusher: Option<EarlyFlush>) {
        self.flusher = flusher;
    }

    /// A writer filling the temp file in order from its start, for a result of about
    /// `expected` bytes. From [`PIPELINE_MIN`] bytes on, what it has written is flushed to
    /// the disk while the caller goes on (see `FileCopy::with_early_writeback` and
    /// docs/performance.md), and [`persist`](Self::persist) finishes those flushes before
    /// its fsync. Writes through it must be sequential from offset 0; the caller may seek
    /// and patch the file afterwards.
    pub(crate) fn early_flushing(&mut self, expected: u64) -> EarlyFlushing<'_> {
        if expected >= PIPELINE_MIN && self.flusher.is_none() {
            self.flusher = EarlyFlush::start(self.tmp.as_file(), expected);
        }
        EarlyFlushing {
            file: self.tmp.as_file_mut(),
            flusher: &mut self.flusher,
            written: 0,
        }
    }

    /// Syncs the temp file, gives it the input's permissions and renames it over the output
    /// (refusing to clobber one that appeared meanwhile unless overwriting was allowed), then
    /// syncs the directory so that the rename is durable (unless the caller does that).
    pub(crate) fn persist(mut self) -> Result<()> {
        use crate::timing::{span, Phase};
        let io = |what: &'static str| move |e| Error::io(what, e);
        {
            let _t = span(Phase::Fsync);
            if let Some(f) = self.flusher.take() {
                f.finish()?;
            }
            self.tmp
                .as_file()
                .sync_all()
                .map_err(io("syncing the temp file"))?;
        }
        let _t = span(Phase::Rename);
        if let Some(p) = self.permissions.take() {
            let _ = self.tmp.as_file().set_permissions(p);
        }
        let output = self.output.clone();
        let persisted = if self.overwrite {
            self.tmp.persist(&output).map_err(|e| e.error)
        } else {
            self.tmp.persist_noclobber(&output).map_err(|e| e.error)
        };
        persisted
            .map_err(|e| Error::io(format!("renaming the result to {}", output.display()), e))?;
        drop(_t);
        if self.sync_dir {
            // Best effort, as before: the rename is done; a file system that cannot sync a
            // directory (some network mounts) must not turn a signed file into a failure.
            let _ = sync_directory(parent_of(&output));
        }
        Ok(())
    }
}

/// [`OutputFile::early_flushing`]'s writer.
pub(crate) struct EarlyFlushing<'a> {
    file: &'a mut File,
    flusher: &'a mut Option<EarlyFlush>,
    written: u64,
}

impl Write for EarlyFlushing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if let Some(f) = self.flusher {
            f.written(self.written);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The directory holding `output` (a bare file name: the current directory).
pub fn parent_of(output: &Path) -> &Path {
    match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Syncs the directory `dir`, which makes the renames into it durable.
pub fn sync_directory(dir: &Path) -> std::io::Result<()> {
    let _t = crate::timing::span(crate::timing::Phase::DirSync);
    File::open(dir)?.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The early-flushing writer writes exactly what it is given, starts its flushes only
    /// for large results, and `persist` finishes them before renaming.
    #[test]
    fn early_flushing_writer_copies_exactly_and_persist_finishes_it() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.bin");
        let data: Vec<u8> = (0..(PIPELINE_MIN as usize + (3 << 20) + 77))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&input, &data).unwrap();
        for (len, flushes) in [(data.len(), true), (1 << 20, false)] {
            let output = dir.path().join(format!("out-{len}.bin"));
            let f = File::open(&input).unwrap();
            let mut out = OutputFile::create(&input, &f, &output, false, true).unwrap();
            {
                let mut w = out.early_flushing(len as u64);
                for piece in data[..len].chunks(100_000) {
                    w.write_all(piece).unwrap();
                }
                w.flush().unwrap();
            }
            assert_eq!(out.flusher.is_some(), flushes, "{len}");
            out.persist().unwrap();
            assert_eq!(std::fs::read(&output).unwrap(), &data[..len]);
        }
    }
}
