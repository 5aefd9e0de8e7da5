//! Where checkpoints live: a [`CheckpointStore`] of named files. `LocalStore` keeps them in a
//! local directory; object stores come later behind the same trait.
//!
//! `put` is atomic: the bytes go to a temporary file in the same directory, are synced, and are
//! renamed over the name, so a reader sees the old file or the new one, never half of one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A flat namespace of files, `/`-separated names.
pub(crate) trait CheckpointStore: Send + Sync {
    /// Writes `name` atomically.
    fn put(&self, name: &str, bytes: &[u8]) -> Result<()>;
    /// Reads `name`, or `None` when it does not exist.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// The names directly under `prefix` (a "directory"), sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Removes `prefix` and everything under it.
    fn delete(&self, prefix: &str) -> Result<()>;
}

/// A checkpoint store in a local directory.
pub(crate) struct LocalStore {
    root: PathBuf,
    /// fsync files and directories (on by default; tests may turn it off for speed).
    sync: bool,
}

impl LocalStore {
    pub fn open(root: &Path, sync: bool) -> Result<Self> {
        fs::create_dir_all(root)
            .map_err(|e| Error::io(format!("creating the checkpoint directory {}", root.display()), e))?;
        Ok(LocalStore { root: root.to_path_buf(), sync })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

impl CheckpointStore for LocalStore {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(name);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
        fs::create_dir_all(&dir).map_err(|e| io("creating the directory of", e))?;
        let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("ckpt")));
        let mut f = fs::File::create(&tmp).map_err(|e| io("creating a temporary file for", e))?;
        f.write_all(bytes).map_err(|e| io("writing", e))?;
        if self.sync {
            f.sync_all().map_err(|e| io("syncing", e))?;
        }
        drop(f);
        fs::rename(&tmp, &path).map_err(|e| io("renaming into place", e))?;
        if self.sync {
            if let Ok(d) = fs::File::open(&dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match fs::read(self.path(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", self.path(name).display()), e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let dir = self.path(prefix);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .map(|n| if prefix.is_empty() { n } else { format!("{prefix}/{n}") })
            .collect();
        names.sort();
        Ok(names)
    }

    fn delete(&self, prefix: &str) -> Result<()> {
        let path = self.path(prefix);
        let r = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
        }
    }
}
