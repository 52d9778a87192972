//! The write side every format shares: a temp file beside the output, filled and checked by
//! the format, then fsync, the input's permissions, an atomic rename and a directory sync.
//! The input is never modified in place.
use std::{
    fs::File,
    path::{Path, PathBuf},
};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// A temp file waiting to replace `output`.
#[derive(Debug)]
pub(crate) struct OutputFile {
    tmp: NamedTempFile,
    output: PathBuf,
    overwrite: bool,
    sync_dir: bool,
    permissions: Option<std::fs::Permissions>,
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

    /// Syncs the temp file, gives it the input's permissions and renames it over the output
    /// (refusing to clobber one that appeared meanwhile unless overwriting was allowed), then
    /// syncs the directory so that the rename is durable (unless the caller does that).
    pub(crate) fn persist(mut self) -> Result<()> {
        use crate::timing::{span, Phase};
        let io = |what: &'static str| move |e| Error::io(what, e);
        {
            let _t = span(Phase::Fsync);
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
