//! `text_file_stream`: new text files in a directory (spec §2.3).
//!
//! At batch `t` the driver worker lists the directory (one level, no recursion) and selects each
//! file whose modification time is in `(threshold, t]`, where
//! `threshold = max(creation time of the stream, t - remember window)` and the remember window is
//! `file_stream.min_remember` rounded up to whole batches; a file selected in a remembered batch
//! is not selected again. Names starting with `.` or `_`, and the temporary names `*.tmp` and
//! `*._COPYING_`, are ignored: write elsewhere and rename into the directory. A file's lines are
//! read once, when it is selected, as a stream: a batch's files go into the dataflow a few
//! megabytes at a time, so a file larger than memory does not need to fit in it. Lines longer
//! than `receiver.max_line_bytes` are skipped, counted and logged, as on a socket. Unlike Spark,
//! which reports 0 records for file streams, Ember reports the lines read. A missing directory
//! logs a warning and gives an empty batch.
//!
//! The file stream is a [`PlannedSource`] read on the driver
//! worker: a batch's plan is its list of files, written to the checkpoint's batch log before the
//! first line is read, so a batch re-run after a failure reads the same files. The list is the
//! batch's `files` metadata (as in Spark), seen by listeners and the web UI.
//!
//! The creation time in the threshold is the stream's first start: a job recovered from a
//! checkpoint keeps it (as Spark does), so the batches it runs for the time it was down select the
//! files that arrived meanwhile, as far back as the remember window reaches. Files that arrived
//! longer than `file_stream.min_remember` before the restart are not read.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;

use super::lines::Lines;
use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::exec::runtime::Runtime;
use crate::format::FileFormat;
use crate::operator::PlannedSource;
use crate::source::direct::Reads;
use crate::storage::{ChunkReader, Storage};
use crate::time::Time;

/// How many bytes of files a source emits before it yields (the rest of the batch follows).
const CHUNK_BYTES: usize = 4 << 20;

/// How many bytes of a file one read fetches (one request to an object store).
const READ_BYTES: usize = 1 << 20;

/// A file stream's position: what it selected per remembered batch, and the threshold of its
/// first start, which a recovered stream keeps (Spark's `initialModTimeIgnoreThreshold`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Position {
    initial_threshold: u64,
    selected: BTreeMap<u64, Vec<PathBuf>>,
}

/// Marks the position format with the threshold; the first format held `selected` alone, and
/// began with the map's length, which is never this.
const POSITION_V2: u64 = u64::MAX;

/// How a file stream turns a file into records.
pub(crate) enum Decode<T> {
    /// A line at a time: line `n` (from 1) gives a record, nothing (a header) or why it is skipped.
    Lines(Arc<dyn Fn(u64, String) -> Result<Option<T>, String> + Send + Sync>),
    /// The whole file at once; a file that fails gives nothing.
    Whole(Arc<dyn Fn(&[u8], &mut Vec<T>) -> Result<(), String> + Send + Sync>),
}

impl Decode<String> {
    /// Text: every line is a record.
    fn text() -> Self {
        Decode::Lines(Arc::new(|_, line| Ok(Some(line))))
    }
}

impl<T> Clone for Decode<T> {
    fn clone(&self) -> Self {
        match self {
            Decode::Lines(f) => Decode::Lines(Arc::clone(f)),
            Decode::Whole(f) => Decode::Whole(Arc::clone(f)),
        }
    }
}

/// The file stream's reader, on the driver worker: a batch's plan is the list of files it reads.
struct FileSource<T> {
    /// The directory, listed one level: a local one or an object store's prefix.
    dir: Arc<dyn Storage>,
    initial_threshold: u64,
    remember_ms: u64,
    /// Files selected per remembered batch.
    selected: BTreeMap<u64, Vec<PathBuf>>,
    rt: Arc<Runtime>,
    /// The batch being read: files still to read, and the one being read.
    to_read: VecDeque<PathBuf>,
    /// The file being read, its splitter and the number of its last line.
    reading: Option<(PathBuf, BufReader<ChunkReader>, Lines, u64)>,
    decode: Decode<T>,
    /// Records skipped because they did not decode (lines, or whole files).
    skipped: Arc<std::sync::atomic::AtomicU64>,
}

/// Whether a file name is one the stream ignores.
pub(crate) fn ignored_name(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_') || name.ends_with(".tmp") || name.ends_with("._COPYING_")
}

impl<T> FileSource<T> {
    fn new(
        dir: Arc<dyn Storage>,
        initial_threshold: u64,
        remember_ms: u64,
        rt: Arc<Runtime>,
        decode: Decode<T>,
        skipped: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        let (selected, to_read, reading) = (BTreeMap::new(), VecDeque::new(), None);
        FileSource { dir, initial_threshold, remember_ms, selected, rt, to_read, reading, decode, skipped }
    }

    fn select(&self, t: u64) -> Vec<PathBuf> {
        let threshold = self.initial_threshold.max(t.saturating_sub(self.remember_ms));
        let entries = match self.dir.list("") {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("file stream: cannot list {}: {e}; the batch at {t} ms is empty", self.dir.url());
                return Vec::new();
            }
        };
        let seen: HashSet<&PathBuf> = self.selected.values().flatten().collect();
        let root = self.dir.url();
        let mut found = Vec::new();
        for entry in entries {
            if entry.is_dir || ignored_name(entry.file_name()) {
                continue;
            }
            let Some(mtime) = entry.modified_ms else { continue };
            // The full name, as the batch log and the `files` metadata show it.
            let path = PathBuf::from(format!("{}/{}", root.trim_end_matches('/'), entry.name));
            if mtime > threshold && mtime <= t && !seen.contains(&path) {
                found.push((mtime, path));
            }
        }
        found.sort();
        found.into_iter().map(|(_, p)| p).collect()
    }

    /// Reads records of the batch's files into `out`, about `CHUNK_BYTES` at most; the rest stays
    /// for `read_more`. A file read by lines is read as a stream, never whole into memory.
    fn read_some(&mut self, out: &mut Vec<T>) {
        let mut budget = CHUNK_BYTES;
        let mut lines = Vec::new();
        while budget > 0 {
            let Some((path, reader, splitter, n)) = self.reading.as_mut() else {
                let Some(path) = self.to_read.pop_front() else { return };
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if let Decode::Whole(decode) = &self.decode {
                    budget = budget.saturating_sub(self.read_whole(&path, &name, &Arc::clone(decode), out));
                    continue;
                }
                let reader = self.dir.reader(&name, READ_BYTES);
                let splitter = Lines::new(self.rt.settings.max_line_bytes);
                self.reading = Some((path, BufReader::with_capacity(READ_BYTES, reader), splitter, 0));
                continue;
            };
            let what = "file stream";
            let done = match reader.fill_buf() {
                Ok([]) => {
                    splitter.finish(&self.rt, what, &mut lines);
                    true
                }
                Ok(chunk) => {
                    let len = chunk.len();
                    splitter.feed(chunk, &self.rt, what, &mut lines);
                    reader.consume(len);
                    budget = budget.saturating_sub(len);
                    false
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => false,
                Err(e) => {
                    // A file deleted between the listing and the read lands here too.
                    tracing::warn!("file stream: reading {} failed: {e}; the rest of it is skipped", path.display());
                    true
                }
            };
            if let Decode::Lines(decode) = &self.decode {
                for line in lines.drain(..) {
                    *n += 1;
                    match decode(*n, line) {
                        Ok(Some(r)) => out.push(r),
                        Ok(None) => {}
                        Err(why) => {
                            if let Some(count) = crate::operator::count_skipped(&self.skipped) {
                                tracing::warn!(
                                    "file stream: skipped line {n} of {}: {why} ({count} skipped so far)",
                                    path.display()
                                );
                            }
                        }
                    }
                }
            }
            if done {
                self.reading = None;
            }
        }
    }

    /// Reads and decodes a whole file; returns its size. A file that does not decode is skipped
    /// whole, counted and logged.
    fn read_whole(
        &self,
        path: &std::path::Path,
        name: &str,
        decode: &Arc<dyn Fn(&[u8], &mut Vec<T>) -> Result<(), String> + Send + Sync>,
        out: &mut Vec<T>,
    ) -> usize {
        let bytes = match self.dir.get(name) {
            Ok(Some(b)) => b,
            Ok(None) => {
                tracing::warn!("file stream: {} is gone; skipped", path.display());
                return 0;
            }
            Err(e) => {
                tracing::warn!("file stream: reading {} failed: {e}; skipped", path.display());
                return 0;
            }
        };
        if let Err(why) = decode(&bytes, out) {
            let count = crate::operator::count_skipped(&self.skipped);
            tracing::warn!("file stream: skipped {}: {why} ({} skipped so far)", path.display(), count.unwrap_or(0));
        }
        bytes.len()
    }
}

impl<T: crate::Data> PlannedSource for FileSource<T> {
    type Item = T;
    type Plan = Vec<PathBuf>;

    fn plan(&mut self, t: Time, _rate: Option<f64>) -> crate::Result<Vec<PathBuf>> {
        Ok(self.select(t.millis()))
    }

    fn read(&mut self, t: Time, files: &Vec<PathBuf>, out: &mut Vec<T>) -> crate::Result<()> {
        let t = t.millis();
        if !files.is_empty() {
            tracing::debug!("file stream: batch {t} ms reads {} file(s)", files.len());
        }
        self.to_read = files.iter().cloned().collect();
        self.selected.insert(t, files.clone());
        let keep_after = t.saturating_sub(self.remember_ms);
        self.selected.retain(|&bt, _| bt > keep_after);
        self.read_some(out);
        Ok(())
    }

    fn has_more(&self) -> bool {
        self.reading.is_some() || !self.to_read.is_empty()
    }

    fn read_more(&mut self, _t: Time, out: &mut Vec<T>) -> crate::Result<()> {
        self.read_some(out);
        Ok(())
    }

    fn metadata(&self, files: &Vec<PathBuf>) -> Vec<(String, String)> {
        if files.is_empty() {
            return Vec::new();
        }
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        vec![("files".to_owned(), names.join("\n"))]
    }

    fn position(&self) -> Option<Vec<u8>> {
        let p = Position { initial_threshold: self.initial_threshold, selected: self.selected.clone() };
        bincode::serialize(&(POSITION_V2, p)).ok()
    }

    fn restore(&mut self, position: &[u8]) -> crate::Result<()> {
        let corrupt =
            |e: bincode::Error| crate::Error::Corrupt { what: "file stream position".into(), reason: e.to_string() };
        let marker: u64 = bincode::deserialize(position).map_err(corrupt)?;
        if marker == POSITION_V2 {
            let (_, p): (u64, Position) = bincode::deserialize(position).map_err(corrupt)?;
            self.initial_threshold = p.initial_threshold;
            self.selected = p.selected;
        } else {
            // The first format: the threshold was not kept, so the batches after the checkpoint
            // accept what the remember window allows.
            self.selected = bincode::deserialize(position).map_err(corrupt)?;
            self.initial_threshold = 0;
        }
        Ok(())
    }
}

impl StreamingContext {
    /// Lines of the new text files that appear in `dir` (Spark's `textFileStream`).
    ///
    /// `dir` is a local path or the URL of an object store's prefix (`s3://bucket/incoming`;
    /// see [`crate::storage`]).
    pub fn text_file_stream(&self, dir: impl Into<PathBuf>) -> DStream<String> {
        self.files("file stream", dir.into(), Decode::text())
    }

    /// Records of the new files that appear in `dir`, in `format` (Spark's `fileStream` with an
    /// input format): [`JsonLines`](crate::format::JsonLines), [`Csv`](crate::format::Csv),
    /// [`ObjectFile`](crate::format::ObjectFile) or your own. Files are selected as by
    /// [`text_file_stream`](Self::text_file_stream); a record that does not decode is skipped,
    /// counted and logged with its file (see [`crate::format`]).
    pub fn file_stream<T: crate::Data>(&self, dir: impl Into<PathBuf>, format: impl FileFormat<T>) -> DStream<T> {
        let format = Arc::new(format);
        let decode = if format.line_based() {
            Decode::Lines(Arc::new(move |n, line: String| format.decode_line(n, &line)))
        } else {
            Decode::Whole(Arc::new(move |bytes: &[u8], out: &mut Vec<T>| format.decode_file(bytes, out)))
        };
        self.files("file stream", dir.into(), decode)
    }

    /// Records of the new Ember object files that appear in `dir` (as
    /// [`save_as_object_files`](crate::DStream::save_as_object_files) writes them).
    pub fn object_file_stream<T>(&self, dir: impl Into<PathBuf>) -> DStream<T>
    where
        T: crate::Data + serde::Serialize + serde::de::DeserializeOwned,
    {
        self.file_stream(dir, crate::format::ObjectFile)
    }

    fn files<T: crate::Data>(&self, kind: &str, dir: PathBuf, decode: Decode<T>) -> DStream<T> {
        let storage = match crate::storage::open(&dir.to_string_lossy(), &self.shared.settings.conf, false) {
            Ok(s) => s,
            Err(e) => {
                self.shared.defer(e);
                return DStream::detached(Arc::clone(&self.shared));
            }
        };
        let created = self.shared.clock.now_millis();
        let batch = self.shared.batch_ms;
        let remember_ms = self.shared.settings.file_min_remember_ms.div_ceil(batch).max(1) * batch;
        let reads = dir.display().to_string();
        let skipped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = Arc::clone(&skipped);
        let stream = self
            .planned_input(kind, &reads, Reads::OnDriver, move |_, rt| {
                Ok(FileSource::new(
                    Arc::clone(&storage),
                    created,
                    remember_ms,
                    Arc::clone(rt),
                    decode.clone(),
                    Arc::clone(&counter),
                ))
            })
            .0;
        crate::operator::SkipCounters::register_for_last_input(self, skipped);
        stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text file stream of the local directory `dir`, remembering a minute.
    fn local_text_source(dir: &std::path::Path, rt: &Arc<Runtime>) -> FileSource<String> {
        let storage = Arc::new(crate::storage::LocalStorage::open(dir, false));
        FileSource::new(storage, 0, 60_000, Arc::clone(rt), Decode::text(), Arc::default())
    }

    /// The millisecond after `file`'s modification time.
    fn just_after(file: &std::path::Path) -> Time {
        let mtime = std::fs::metadata(file).unwrap().modified().unwrap();
        Time::from_millis(mtime.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 + 1)
    }

    #[test]
    fn a_file_deleted_between_the_listing_and_the_read_is_skipped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.txt", "b.txt", "c.txt"] {
            std::fs::write(dir.path().join(name), format!("{name}\n")).unwrap();
        }
        let rt = Arc::new(crate::exec::runtime::tests::runtime(crate::Conf::new()));
        let mut d = local_text_source(dir.path(), &rt);
        let t = just_after(&dir.path().join("c.txt"));
        let files = d.plan(t, None).unwrap();
        assert_eq!(files.len(), 3);
        std::fs::remove_file(dir.path().join("b.txt")).unwrap();
        let mut out = Vec::new();
        d.read(t, &files, &mut out).unwrap();
        while d.has_more() {
            d.read_more(t, &mut out).unwrap();
        }
        out.sort();
        assert_eq!(out, vec!["a.txt", "c.txt"], "the other files are read");
        rt.bus.shutdown();
    }

    #[test]
    fn a_large_file_is_emitted_in_parts_never_whole() {
        let dir = tempfile::tempdir().unwrap();
        let line = "x".repeat(99);
        let lines = 3 * CHUNK_BYTES / 100 + 17;
        let mut text = String::with_capacity(lines * 100);
        for _ in 0..lines {
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(dir.path().join("big.txt"), &text).unwrap();
        drop(text);
        let rt = Arc::new(crate::exec::runtime::tests::runtime(crate::Conf::new()));
        let mut d = local_text_source(dir.path(), &rt);
        let t = just_after(&dir.path().join("big.txt"));
        let (mut out, mut parts, mut total) = (Vec::new(), 0, 0);
        let files = d.plan(t, None).unwrap();
        d.read(t, &files, &mut out).unwrap();
        loop {
            parts += 1;
            assert!(out.len() * 100 <= CHUNK_BYTES + 256 * 1024 + 100, "part {parts} holds {} lines", out.len());
            total += out.len();
            out.clear();
            if !d.has_more() {
                break;
            }
            d.read_more(t, &mut out).unwrap();
        }
        assert_eq!(total, lines);
        assert!(parts >= 3, "{parts} parts");
        rt.bus.shutdown();
    }
}
