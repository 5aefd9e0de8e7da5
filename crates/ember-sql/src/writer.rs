//! Spark's `DataFrameWriter` for the per-batch pattern: `df.write().mode(..).parquet(path)`, on
//! local disk or any storage Ember opens (S3 with `ember-store`).
//!
//! A write makes `path` a directory of part files and `_SUCCESS`, as Spark's does. Where Ember
//! departs from Spark, to lose and duplicate less:
//! - a new directory (and every [`SaveMode::Overwrite`]) is written beside `path` and moved into
//!   place whole, so a reader never sees half of it (atomic on local disk; on an object store
//!   `_SUCCESS` is written last);
//! - [`DataFrameWriter::for_batch`] names an appended part file by the batch time, so a batch that
//!   runs again after a recovery replaces its own file instead of adding a second copy, which
//!   Spark's `append` inside `foreachRDD` does.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use ember::storage::Storage;
use ember::Time;

use crate::session::DataFrame;
use crate::SqlError;

/// What a write does when its directory exists (Spark's `SaveMode`; `errorifexists` is the
/// default, as in Spark).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SaveMode {
    /// Refuse to write: an error naming the directory.
    #[default]
    ErrorIfExists,
    /// Add part files beside those there.
    Append,
    /// Replace the directory whole.
    Overwrite,
    /// Write nothing, and succeed.
    Ignore,
}

impl std::str::FromStr for SaveMode {
    type Err = SqlError;

    /// Spark's names, in any case: `errorifexists` (or `error`, `default`), `append`,
    /// `overwrite`, `ignore`.
    fn from_str(s: &str) -> Result<SaveMode, SqlError> {
        match s.to_ascii_lowercase().as_str() {
            "errorifexists" | "error" | "default" => Ok(SaveMode::ErrorIfExists),
            "append" => Ok(SaveMode::Append),
            "overwrite" => Ok(SaveMode::Overwrite),
            "ignore" => Ok(SaveMode::Ignore),
            _ => Err(SqlError::Write(format!(
                "unknown save mode `{s}`: expected errorifexists, append, overwrite or ignore"
            ))),
        }
    }
}

/// A write of a [`DataFrame`], made by [`DataFrame::write`].
#[must_use = "a writer writes nothing until parquet() or json() is called"]
pub struct DataFrameWriter<'a> {
    df: &'a DataFrame,
    mode: SaveMode,
    batch: Option<Time>,
}

impl DataFrame {
    /// Spark's `df.write`: `df.write().mode(SaveMode::Append).for_batch(time).parquet(path)`.
    /// It runs on the calling thread (the driver, in `foreach_rdd_df`).
    pub fn write(&self) -> DataFrameWriter<'_> {
        DataFrameWriter { df: self, mode: SaveMode::default(), batch: None }
    }
}

impl DataFrameWriter<'_> {
    /// What to do when the directory exists.
    pub fn mode(mut self, mode: SaveMode) -> Self {
        self.mode = mode;
        self
    }

    /// Names the part file by the batch time `time` (`part-<ms>.parquet`), so that writing the
    /// same batch again, as a re-run after a recovery does, replaces that file. Without it an
    /// appended part file gets a name of its own every time, as in Spark.
    pub fn for_batch(mut self, time: Time) -> Self {
        self.batch = Some(time);
        self
    }

    /// Writes the rows as one Snappy-compressed Parquet file in the directory `path` (a file of
    /// no rows still carries the schema).
    pub fn parquet(self, path: &str) -> Result<(), SqlError> {
        self.save(path, "parquet", |schema, batches, out| crate::outputs::write_parquet(schema, batches, out))
    }

    /// Writes the rows as one JSON-lines file in the directory `path` (null columns left out,
    /// as Spark writes).
    pub fn json(self, path: &str) -> Result<(), SqlError> {
        self.save(path, "json", |_, batches, out| crate::outputs::write_json(batches, out))
    }

    fn save(
        self,
        path: &str,
        ext: &str,
        encode: impl Fn(&SchemaRef, &[RecordBatch], &mut Vec<u8>) -> ember::Result<()>,
    ) -> Result<(), SqlError> {
        let failed = |e: &dyn std::fmt::Display| SqlError::Write(format!("cannot write {path}: {e}"));
        let (parent, name) = ember::storage::split_last(path.trim_end_matches('/'));
        if name.is_empty() {
            return Err(failed(&"give a directory under the bucket or root, not the root itself"));
        }
        let name = name.as_str();
        let storage = ember::storage::open(&parent, self.df.session().conf(), true).map_err(|e| failed(&e))?;
        storage.create_root().map_err(|e| failed(&e))?;
        let exists = !storage.list(name).map_err(|e| failed(&e))?.is_empty();
        match (self.mode, exists) {
            (SaveMode::ErrorIfExists, true) => {
                return Err(failed(&"the directory exists (SaveMode::Append adds to it, Overwrite replaces it)"))
            }
            (SaveMode::Ignore, true) => return Ok(()),
            _ => {}
        }
        let schema = self.df.schema();
        let batches = self.df.collect_batches()?;
        let mut bytes = Vec::new();
        encode(&schema, &batches, &mut bytes).map_err(|e| failed(&e))?;
        let part = match self.batch {
            Some(t) => format!("part-{}.{ext}", t.millis()),
            None => format!("part-{}.{ext}", unique()),
        };
        if self.mode == SaveMode::Append && exists {
            storage.put(&format!("{name}/{part}"), &bytes).map_err(|e| failed(&e))?;
        } else {
            write_whole(storage.as_ref(), name, &part, &bytes).map_err(|e| failed(&e))?;
        }
        storage.put(&format!("{name}/_SUCCESS"), b"").map_err(|e| failed(&e))
    }
}

/// The directory `name` with the one file `part`, written beside it and moved into place.
fn write_whole(storage: &dyn Storage, name: &str, part: &str, bytes: &[u8]) -> ember::Result<()> {
    let temporary = format!(".{name}-{}.temporary", unique());
    storage.put(&format!("{temporary}/{part}"), bytes)?;
    storage.rename_dir(&temporary, name)
}

/// A name no other write of this process or another has taken: the wall time in milliseconds,
/// the process and a counter.
fn unique() -> String {
    use ember::clock::Clock;
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}-{:x}-{n}", ember::clock::SystemClock.now_millis(), std::process::id())
}
