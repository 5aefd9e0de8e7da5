//! File outputs: `save_as_text_files`, `save_as_files`, `save_as_object_files` (a directory per
//! batch, committed by the driver) and `save_as_rolling_files` (one file per worker and roll of
//! batches, its open roll kept in the checkpoint).

use std::sync::Arc;

use super::output::batch_file_name;
use super::DStream;
use crate::error::Error;
use crate::format::FileFormat;
use crate::operator::Sink;
use crate::print::Printable;
use crate::storage::Storage;
use crate::time::Time;
use crate::Data;

impl<T: Data> DStream<T> {
    /// Writes every batch as a directory `prefix-<ms>[.suffix]` of text files, one record per line.
    /// Every worker writes its share as `part-NNNNN`; once the batch completed everywhere, the
    /// driver moves the directory into place (replacing an earlier one, so re-running a batch
    /// overwrites its output; atomically on local disk) and adds an empty `_SUCCESS` file, last.
    /// `prefix` is a local path or an object store's URL (`s3://bucket/out/counts`).
    pub fn save_as_text_files(&self, prefix: impl Into<String>, suffix: impl Into<String>)
    where
        T: Printable,
    {
        let encode = |records: &[T], out: &mut Vec<u8>| crate::format::Text.encode(records, out);
        self.save_files("save_as_text_files", prefix.into(), suffix.into(), String::new(), Arc::new(encode));
    }

    /// Writes every batch as a directory `prefix-<ms>[.suffix]` of files in `format` (Spark's
    /// `saveAsHadoopFiles`: [`JsonLines`](crate::format::JsonLines), [`Csv`](crate::format::Csv),
    /// [`ObjectFile`](crate::format::ObjectFile) or your own), committed as
    /// [`save_as_text_files`](Self::save_as_text_files) commits.
    pub fn save_as_files(&self, prefix: impl Into<String>, suffix: impl Into<String>, format: impl FileFormat<T>) {
        let extension = match format.extension() {
            "" => String::new(),
            e => format!(".{e}"),
        };
        let format = Arc::new(format);
        let encode = move |records: &[T], out: &mut Vec<u8>| format.encode(records, out);
        self.save_files("save_as_files", prefix.into(), suffix.into(), extension, Arc::new(encode));
    }

    /// Writes every batch as a directory `prefix-<ms>[.suffix]` of Ember object files (Spark's
    /// `saveAsObjectFiles`; the format is [`ObjectFile`](crate::format::ObjectFile)'s), read back
    /// by [`object_file_stream`](crate::StreamingContext::object_file_stream).
    pub fn save_as_object_files(&self, prefix: impl Into<String>, suffix: impl Into<String>)
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let encode = |records: &[T], out: &mut Vec<u8>| crate::format::ObjectFile.encode(records, out);
        self.save_files("save_as_object_files", prefix.into(), suffix.into(), String::new(), Arc::new(encode));
    }

    /// Writes the stream in files of many batches, against many small files: each worker
    /// gathers its records into a file until `roll` closes it — at every batch whose time is a
    /// multiple of `roll.batches` batch intervals (the same batches on every worker and in every
    /// run), or once it holds `roll.bytes` bytes (0: no limit) — and then writes it whole as
    /// `prefix-<first ms>-<last ms>-w<worker>[.suffix]`, one object.
    ///
    /// The open file is part of the checkpoint (the gathered bytes are the worker's state), so a
    /// recovered job closes the same files with the same contents and names: each record is in
    /// exactly one file. As with every per-worker state, the job recovers with the number of
    /// workers it was checkpointed with; without a checkpoint directory the open file is lost
    /// with the process. A file still open when the job stops is written when it closes after
    /// the restart.
    pub fn save_as_rolling_files(
        &self,
        prefix: impl Into<String>,
        suffix: impl Into<String>,
        format: impl FileFormat<T>,
        roll: Roll,
    ) {
        let (parent, base) = crate::storage::split_last(&prefix.into());
        let storage = match crate::storage::open(&parent, &self.ctx.settings.conf, false) {
            Ok(s) => s,
            Err(e) => return self.ctx.defer(e),
        };
        if roll.batches == 0 {
            return self.ctx.defer(Error::declaration("save_as_rolling_files", "`roll.batches` must be at least 1"));
        }
        let (format, batch_ms) = (Arc::new(format), self.slide);
        let closed = self.operator("save_as_rolling_files", move |b| {
            let format = Arc::clone(&format);
            b.per_batch_stateful("open file", Open::default(), move |t, records: Vec<T>, open: &mut Open, out| {
                if open.first == 0 {
                    open.first = t.millis();
                }
                if !records.is_empty() {
                    let fresh = open.bytes.is_empty();
                    let r = if fresh {
                        format.encode(&records, &mut open.bytes)
                    } else {
                        format.encode_more(&records, &mut open.bytes)
                    };
                    // A record the format cannot encode fails the batch (and the job), never lost.
                    if let Err(e) = r {
                        panic!("save_as_rolling_files: {e}");
                    }
                }
                let batches_done = (t.millis() / batch_ms) % roll.batches == 0;
                let full = roll.bytes > 0 && open.bytes.len() >= roll.bytes;
                if batches_done || full {
                    let file = std::mem::take(open);
                    if !file.bytes.is_empty() {
                        out.push((file.first, t.millis(), file.bytes));
                    }
                }
            })
        });
        let suffix = suffix.into();
        closed.sink("save_as_rolling_files", RollingFiles { storage, base, suffix });
    }

    fn save_files(&self, name: &str, prefix: String, suffix: String, part_extension: String, encode: Encode<T>) {
        let (parent, base) = crate::storage::split_last(&prefix);
        match crate::storage::open(&parent, &self.ctx.settings.conf, false) {
            Ok(storage) => self.sink(name, BatchFiles { storage, base, suffix, part_extension, encode }),
            Err(e) => self.ctx.defer(e),
        }
    }
}

/// Encodes one part file.
type Encode<T> = Arc<dyn Fn(&[T], &mut Vec<u8>) -> Result<(), Error> + Send + Sync>;

/// The file outputs: a directory `prefix-<ms>[.suffix]` per batch, one `part-NNNNN` per worker,
/// staged in `<dir>._temporary` and moved into place by the commit.
struct BatchFiles<T> {
    storage: Arc<dyn Storage>,
    /// The last component of the prefix; the storage is rooted at its parent.
    base: String,
    suffix: String,
    /// `.parquet` and such, or empty.
    part_extension: String,
    encode: Encode<T>,
}

impl<T: Data> Sink<T> for BatchFiles<T> {
    fn write(&self, t: Time, worker: usize, records: Vec<T>) -> Result<(), Error> {
        let mut bytes = Vec::new();
        (self.encode)(&records, &mut bytes)?;
        self.storage.put(&format!("{}/part-{worker:05}{}", self.staging(t), self.part_extension), &bytes)
    }

    fn commit(&self, t: Time, workers: usize) -> Result<(), Error> {
        commit_dir(self.storage.as_ref(), &self.staging(t), &batch_file_name(&self.base, &self.suffix, t), workers)
    }
}

impl<T> BatchFiles<T> {
    fn staging(&self, t: Time) -> String {
        format!("{}._temporary", batch_file_name(&self.base, &self.suffix, t))
    }
}

/// Moves a batch's staged parts to `dir` with an empty `_SUCCESS` file: inside the directory
/// before an atomic move (local disk), written last after a copy (an object store). Parts of workers that no longer exist (a
/// re-run with fewer workers) do not belong and are dropped.
pub(crate) fn commit_dir(storage: &dyn Storage, staging: &str, dir: &str, peers: usize) -> Result<(), Error> {
    for e in storage.list(staging)? {
        let worker =
            e.file_name().strip_prefix("part-").and_then(|n| n.split('.').next()).and_then(|n| n.parse::<usize>().ok());
        if worker.is_some_and(|n| n >= peers) {
            storage.delete(&e.name)?;
        }
    }
    if storage.renames_atomically() {
        // On disk the directory appears whole, `_SUCCESS` with it.
        storage.put(&format!("{staging}/_SUCCESS"), b"")?;
        return storage.rename_dir(staging, dir);
    }
    storage.delete(&format!("{dir}/_SUCCESS"))?;
    storage.rename_dir(staging, dir)?;
    storage.put(&format!("{dir}/_SUCCESS"), b"")
}

/// When [`save_as_rolling_files`](DStream::save_as_rolling_files) closes a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roll {
    /// Close files every this many batches (at least 1).
    pub batches: u64,
    /// Close a file once it holds this many bytes (0: no limit).
    pub bytes: usize,
}

/// A worker's open rolling file: its first batch (0: none yet) and its bytes.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Open {
    first: u64,
    bytes: Vec<u8>,
}

/// Writes each closed rolling file as one object.
struct RollingFiles {
    storage: Arc<dyn Storage>,
    base: String,
    suffix: String,
}

impl Sink<(u64, u64, Vec<u8>)> for RollingFiles {
    fn write(&self, _t: Time, worker: usize, files: Vec<(u64, u64, Vec<u8>)>) -> Result<(), Error> {
        for (first, last, bytes) in files {
            let mut name = format!("{}-{first}-{last}-w{worker:05}", self.base);
            if !self.suffix.is_empty() {
                name.push('.');
                name.push_str(&self.suffix);
            }
            self.storage.put(&name, &bytes)?;
        }
        Ok(())
    }
}
