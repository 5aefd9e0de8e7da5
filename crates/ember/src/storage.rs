//! Where files live: checkpoints, the write-ahead log, file streams and file outputs all read
//! and write through one [`Storage`], opened from a URL as Spark takes them.
//!
//! - A plain path (`/data/ckpt`, `ckpt`) or `file:///data/ckpt` is a local directory
//!   ([`LocalStorage`]), always available.
//! - Any other scheme (`s3://bucket/dir`, `gs://`, `az://`, `hdfs://`) is served by the storage
//!   registered for it with [`register`]: the `ember-store` crate registers the object stores
//!   (`ember_store::register()`), so the core builds without their dependencies. A URL whose
//!   scheme nothing registered is a clear error naming the crate to add.
//!
//! Names inside a storage are `/`-separated and relative to its root. What a storage promises:
//! `put` replaces a name whole (a reader sees the old bytes or the new, never half), `put_new`
//! creates a name only if it does not exist (the checkpoint's commit records use it, so two
//! incarnations of a job can never both commit the same checkpoint), and `list` is one level.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::conf::Conf;
use crate::error::{Error, Result};

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The full name, relative to the storage's root (`prefix/name`).
    pub name: String,
    /// The size in bytes (0 for a directory).
    pub len: u64,
    /// The modification time in milliseconds since the epoch, where the storage keeps one.
    pub modified_ms: Option<u64>,
    /// A "directory": a common prefix of further names.
    pub is_dir: bool,
}

impl Entry {
    /// The last component of the name.
    pub fn file_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }
}

/// A flat namespace of named byte strings under a root URL: a local directory or an object store.
/// Implementations are blocking; Ember calls them from its worker threads.
pub trait Storage: Send + Sync + 'static {
    /// The root, as the user gave it (never with credentials): for messages.
    fn url(&self) -> String;
    /// Writes `name` whole, replacing what was there.
    fn put(&self, name: &str, bytes: &[u8]) -> Result<()>;
    /// Writes `name` only if it does not exist: `Ok(false)` when it does (nothing is written).
    fn put_new(&self, name: &str, bytes: &[u8]) -> Result<bool>;
    /// Reads `name`, or `None` when it does not exist.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Reads up to `len` bytes of `name` from `start` (fewer at its end; none past it).
    fn get_range(&self, name: &str, start: u64, len: usize) -> Result<Vec<u8>>;
    /// The entries directly under `prefix` ("" for the root), sorted by name. Names starting
    /// with `.` are not listed. A missing prefix lists nothing.
    fn list(&self, prefix: &str) -> Result<Vec<Entry>>;
    /// Removes `prefix` and everything under it (nothing to remove is not an error).
    fn delete(&self, prefix: &str) -> Result<()>;
    /// Replaces the directory `to` with the directory `from` (which is gone afterwards). Atomic
    /// on local disk (a rename); on an object store a copy of each object, so a reader needs a
    /// marker the caller writes last (`_SUCCESS`).
    fn rename_dir(&self, from: &str, to: &str) -> Result<()>;
    /// Makes sure the root can be written (a local directory is created); by default nothing.
    fn create_root(&self) -> Result<()> {
        Ok(())
    }
    /// Whether [`rename_dir`](Self::rename_dir) is atomic (a local rename); object stores copy.
    fn renames_atomically(&self) -> bool {
        false
    }
}

impl dyn Storage {
    /// The names directly under `prefix`.
    pub fn names(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.list(prefix)?.into_iter().map(|e| e.name).collect())
    }

    /// A reader of `name` that fetches it `chunk` bytes at a time.
    pub fn reader(self: &Arc<Self>, name: &str, chunk: usize) -> ChunkReader {
        ChunkReader {
            storage: Arc::clone(self),
            name: name.to_owned(),
            at: 0,
            chunk,
            buf: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

/// Reads a stored name in ranges (`storage.reader(name, chunk)`): a large object is never whole in
/// memory.
pub struct ChunkReader {
    storage: Arc<dyn Storage>,
    name: String,
    at: u64,
    chunk: usize,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            self.buf = self.storage.get_range(&self.name, self.at, self.chunk).map_err(std::io::Error::other)?;
            self.pos = 0;
            self.at += self.buf.len() as u64;
            self.done = self.buf.len() < self.chunk;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Opens the storage for a non-local scheme: `(url, conf)` → the storage rooted at `url`.
pub type Opener = Arc<dyn Fn(&str, &Conf) -> Result<Arc<dyn Storage>> + Send + Sync>;

fn openers() -> &'static Mutex<BTreeMap<String, Opener>> {
    static OPENERS: std::sync::OnceLock<Mutex<BTreeMap<String, Opener>>> = std::sync::OnceLock::new();
    OPENERS.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Serves URLs of `scheme` (`"s3"`, without `://`) with `opener` from now on, in this process.
pub fn register(scheme: &str, opener: Opener) {
    crate::clock::lock(openers()).insert(scheme.to_ascii_lowercase(), opener);
}

/// The scheme of a URL (`s3` of `s3://b/d`), or `None` for a plain path.
pub fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once("://")?;
    let valid = !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    valid.then_some(scheme)
}

/// The storage rooted at `url`. `durable`: a local `put` is synced to disk before it returns
/// (object stores always are durable once they answer).
pub fn open(url: &str, conf: &Conf, durable: bool) -> Result<Arc<dyn Storage>> {
    match scheme(url) {
        None => Ok(Arc::new(LocalStorage::open(Path::new(url), durable))),
        Some(s) if s.eq_ignore_ascii_case("file") => {
            Ok(Arc::new(LocalStorage::open(Path::new(&url["file://".len()..]), durable)))
        }
        Some(s) => {
            let opener = crate::clock::lock(openers()).get(&s.to_ascii_lowercase()).cloned();
            let opener = opener.ok_or_else(|| Error::Config {
                key: "storage URL".into(),
                value: url.into(),
                expected: format!(
                    "a local path, `file://`, or a scheme with a registered storage; nothing serves `{s}://` in this program: add the `ember-store` crate and call `ember_store::register()` before the context is created"
                ),
            })?;
            opener(url, conf)
        }
    }
}

/// Splits `prefix` into the URL of its parent and its last component (`s3://b/out/words` →
/// `("s3://b/out", "words")`, `words` → `(".", "words")`), for outputs named after a prefix.
pub fn split_last(prefix: &str) -> (String, String) {
    let root_end = scheme(prefix).map_or(0, |s| s.len() + 3);
    match prefix[root_end..].rfind('/') {
        // `/words` and `file:///words` keep the root `/`.
        Some(i) => (prefix[..root_end + i.max(1)].to_owned(), prefix[root_end + i + 1..].to_owned()),
        None if root_end > 0 => (prefix.to_owned(), String::new()),
        None => (".".to_owned(), prefix.to_owned()),
    }
}

/// A storage in a local directory. `put` writes a temporary file in the same directory, syncs it
/// (when durable) and renames it over the name; `put_new` links the temporary file to the name,
/// which fails when the name exists.
pub struct LocalStorage {
    root: PathBuf,
    durable: bool,
}

impl LocalStorage {
    /// The directory `root`; it and the directories under it are created when a name is put.
    pub fn open(root: &Path, durable: bool) -> Self {
        LocalStorage { root: root.to_path_buf(), durable }
    }

    fn path(&self, name: &str) -> PathBuf {
        if name.is_empty() {
            self.root.clone()
        } else {
            self.root.join(name)
        }
    }

    /// Writes `bytes` to a synced temporary file beside `path`; returns it and the directory.
    fn stage(&self, path: &Path, bytes: &[u8]) -> Result<(PathBuf, PathBuf)> {
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
        fs::create_dir_all(&dir).map_err(|e| io("creating the directory of", e))?;
        let unique = format!("{}-{:?}", std::process::id(), std::thread::current().id());
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("part");
        let tmp = dir.join(format!(".{file}.{}.tmp", unique.replace(|c: char| !c.is_ascii_alphanumeric(), "")));
        let mut f = fs::File::create(&tmp).map_err(|e| io("creating a temporary file for", e))?;
        f.write_all(bytes).map_err(|e| io("writing", e))?;
        if self.durable {
            f.sync_all().map_err(|e| io("syncing", e))?;
        }
        Ok((tmp, dir))
    }

    fn sync_dir(&self, dir: &Path) {
        if self.durable {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
    }
}

impl Storage for LocalStorage {
    fn url(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(name);
        let (tmp, dir) = self.stage(&path, bytes)?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(format!("renaming into place {}", path.display()), e))?;
        self.sync_dir(&dir);
        Ok(())
    }

    fn put_new(&self, name: &str, bytes: &[u8]) -> Result<bool> {
        let path = self.path(name);
        let (tmp, dir) = self.stage(&path, bytes)?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                self.sync_dir(&dir);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(format!("creating {}", path.display()), e)),
        }
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match fs::read(self.path(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", self.path(name).display()), e)),
        }
    }

    fn get_range(&self, name: &str, start: u64, len: usize) -> Result<Vec<u8>> {
        let path = self.path(name);
        let io = |e| Error::io(format!("reading {}", path.display()), e);
        let mut f = fs::File::open(&path).map_err(io)?;
        f.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut out = Vec::with_capacity(len.min(64 << 20));
        f.take(len as u64).read_to_end(&mut out).map_err(io)?;
        Ok(out)
    }

    fn list(&self, prefix: &str) -> Result<Vec<Entry>> {
        let dir = self.path(prefix);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if file.starts_with('.') {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            let modified_ms = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64);
            let name = if prefix.is_empty() { file } else { format!("{}/{file}", prefix.trim_end_matches('/')) };
            out.push(Entry {
                name,
                len: if meta.is_dir() { 0 } else { meta.len() },
                modified_ms,
                is_dir: meta.is_dir(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
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

    fn rename_dir(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (self.path(from), self.path(to));
        let io = |what: &str, p: &Path, e| Error::io(format!("{what} {}", p.display()), e);
        if to.exists() {
            let mut old = to.as_os_str().to_os_string();
            old.push("._old");
            let old = PathBuf::from(old);
            let _ = fs::remove_dir_all(&old);
            fs::rename(&to, &old).map_err(|e| io("moving aside", &to, e))?;
            fs::rename(&from, &to).map_err(|e| io("renaming into place", &to, e))?;
            fs::remove_dir_all(&old).map_err(|e| io("removing", &old, e))?;
        } else {
            fs::rename(&from, &to).map_err(|e| io("renaming into place", &to, e))?;
        }
        self.sync_dir(to.parent().unwrap_or(&self.root));
        Ok(())
    }

    fn create_root(&self) -> Result<()> {
        fs::create_dir_all(&self.root).map_err(|e| Error::io(format!("creating {}", self.root.display()), e))
    }

    fn renames_atomically(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_and_open_by_scheme() {
        assert_eq!(scheme("s3://b/d"), Some("s3"));
        assert_eq!(scheme("/tmp/x"), None);
        assert_eq!(scheme("dir/with://odd"), None);
        let split = |p: &str| split_last(p);
        assert_eq!(split("s3://b/out/words"), ("s3://b/out".into(), "words".into()));
        assert_eq!(split("s3://b/words"), ("s3://b".into(), "words".into()));
        assert_eq!(split("out/words"), ("out".into(), "words".into()));
        assert_eq!(split("words"), (".".into(), "words".into()));
        assert_eq!(split("/words"), ("/".into(), "words".into()));
        assert_eq!(split("file:///tmp/words"), ("file:///tmp".into(), "words".into()));
        let e = open("nosuch://bucket/dir", &Conf::new(), false).err().unwrap().to_string();
        assert!(e.contains("nosuch://") && e.contains("ember_store::register()"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        open(&url, &Conf::new(), false).unwrap().put("a/b", b"x").unwrap();
        assert_eq!(fs::read(dir.path().join("a/b")).unwrap(), b"x");
    }

    #[test]
    fn local_storage_keeps_its_promises() {
        let dir = tempfile::tempdir().unwrap();
        crate::testing::check_storage(Arc::new(LocalStorage::open(dir.path(), false)));
    }
}
