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
    pub(crate) fn create(
        input: &Path,
        input_file: &File,
        output: &Path,
        force: bool,
    ) -> Result<Self> {
        let in_place = output == input || same_file(input, output);
        if !in_place && !force && output.exists() {
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
    /// syncs the directory so that the rename is durable.
    pub(crate) fn persist(mut self) -> Result<()> {
        let io = |what: &'static str| move |e| Error::io(what, e);
        self.tmp
            .as_file()
            .sync_all()
            .map_err(io("syncing the temp file"))?;
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
        // A bare file name: the current directory.
        if let Some(parent) = output.parent() {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            if let Ok(d) = File::open(parent) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}
