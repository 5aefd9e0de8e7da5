//! `text_file_stream`: new text files in a directory (spec §2.3).
//!
//! At batch `t` the driver worker lists the directory (one level, no recursion) and selects each
//! file whose modification time is in `(threshold, t]`, where
//! `threshold = max(creation time of the stream, t - remember window)` and the remember window is
//! `file_stream.min_remember` rounded up to whole batches; a file selected in a remembered batch
//! is not selected again. Names starting with `.` or `_`, and the temporary names `*.tmp` and
//! `*._COPYING_`, are ignored: write elsewhere and rename into the directory. A file's lines are
//! read once, when it is selected. Unlike Spark, which reports 0 records for file streams, Ember
//! reports the lines read. A missing directory logs a warning and gives an empty batch.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::exec::runtime::Runtime;
use crate::exec::source::{source, SourceDriver};
use crate::time::Time;

struct FileDriver {
    input: usize,
    dir: PathBuf,
    initial_threshold: u64,
    remember_ms: u64,
    /// Files selected per remembered batch.
    selected: BTreeMap<u64, Vec<PathBuf>>,
    rt: Arc<Runtime>,
}

/// Whether a file name is one the stream ignores.
pub(crate) fn ignored_name(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_') || name.ends_with(".tmp") || name.ends_with("._COPYING_")
}

impl FileDriver {
    fn select(&mut self, t: u64) -> Vec<PathBuf> {
        let threshold = self.initial_threshold.max(t.saturating_sub(self.remember_ms));
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("file stream: cannot list {}: {e}; the batch at {t} ms is empty", self.dir.display());
                return Vec::new();
            }
        };
        let seen: HashSet<&PathBuf> = self.selected.values().flatten().collect();
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if ignored_name(&name) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let Some(mtime) = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64)
            else {
                continue;
            };
            let path = entry.path();
            if mtime > threshold && mtime <= t && !seen.contains(&path) {
                found.push((mtime, path));
            }
        }
        found.sort();
        found.into_iter().map(|(_, p)| p).collect()
    }

    fn read(&self, path: &Path, out: &mut Vec<String>) {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("file stream: cannot read {}: {e}; skipped", path.display());
                return;
            }
        };
        let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        if body.is_empty() && bytes.is_empty() {
            return;
        }
        for line in body.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match std::str::from_utf8(line) {
                Ok(s) => out.push(s.to_owned()),
                Err(_) => {
                    self.rt.invalid_utf8.fetch_add(1, Ordering::Relaxed);
                    out.push(String::from_utf8_lossy(line).into_owned());
                }
            }
        }
    }
}

impl SourceDriver<String> for FileDriver {
    fn close(&mut self, t: Time, out: &mut Vec<String>) {
        let t = t.millis();
        // The batch log: a batch re-run after a recovery reads the files it read the first time.
        let logged = self.rt.checkpoints.as_deref().map(|ck| ck.get_batch_log::<Vec<PathBuf>>(t, self.input));
        let files = match logged {
            Some(Ok(Some(files))) => files,
            Some(Err(e)) => {
                self.rt.checkpoint_failed(e);
                Vec::new()
            }
            Some(Ok(None)) | None => {
                let files = self.select(t);
                if let Some(ck) = self.rt.checkpoints.as_deref() {
                    if let Err(e) = ck.put_batch_log(t, self.input, &files) {
                        self.rt.checkpoint_failed(e);
                    }
                }
                files
            }
        };
        for f in &files {
            self.read(f, out);
        }
        if !files.is_empty() {
            tracing::debug!("file stream: batch {t} ms reads {} file(s)", files.len());
        }
        self.selected.insert(t, files);
        let keep_after = t.saturating_sub(self.remember_ms);
        self.selected.retain(|&bt, _| bt > keep_after);
    }

    fn position(&self) -> Option<Vec<u8>> {
        bincode::serialize(&self.selected).ok()
    }

    fn restore(&mut self, position: &[u8]) -> crate::Result<()> {
        self.selected = bincode::deserialize(position)
            .map_err(|e| crate::Error::Corrupt { what: "file stream position".into(), reason: e.to_string() })?;
        Ok(())
    }
}

impl StreamingContext {
    /// Lines of the new text files that appear in `dir` (Spark's `textFileStream`).
    pub fn text_file_stream(&self, dir: impl Into<PathBuf>) -> DStream<String> {
        let dir = dir.into();
        let created = self.shared.clock.now_millis();
        let batch = self.shared.batch_ms;
        let remember_ms = self.shared.settings.file_min_remember_ms.div_ceil(batch).max(1) * batch;
        self.input_stream("file stream", move |env, id, name| {
            let dir = dir.clone();
            let driver = env.is_driver();
            let s = source(env, name, id, move |senv| -> Box<dyn SourceDriver<String>> {
                if driver {
                    Box::new(FileDriver {
                        input: id,
                        dir,
                        initial_threshold: created,
                        remember_ms,
                        selected: BTreeMap::new(),
                        rt: senv.rt,
                    })
                } else {
                    Box::new(Idle)
                }
            });
            env.round_robin(s)
        })
    }
}

/// The share of a source on a worker that does not read it.
pub(crate) struct Idle;

impl<T> SourceDriver<T> for Idle {
    fn close(&mut self, _t: Time, _out: &mut Vec<T>) {}
}
