//! Table outputs: Parquet and JSON-lines files per batch, written and committed as Ember's file
//! outputs are (one directory per batch, moved into place whole, replaced when a batch re-runs),
//! on local disk or any storage Ember opens (S3 with `ember-store`).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use ember::format::FileFormat;
use ember::DStream;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::table::{Chunk, Encoder, Rows};

fn encoding(what: &str, e: impl std::fmt::Display) -> ember::Error {
    ember::Error::Other(format!("cannot write {what}: {e}"))
}

/// Record batches as one Parquet file (Snappy-compressed, as Spark writes by default).
pub(crate) fn write_parquet<'a>(
    schema: &SchemaRef,
    batches: impl IntoIterator<Item = &'a RecordBatch>,
    out: &mut Vec<u8>,
) -> ember::Result<()> {
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut w =
        ArrowWriter::try_new(out, Arc::clone(schema), Some(props)).map_err(|e| encoding("a Parquet file", e))?;
    for b in batches {
        w.write(b).map_err(|e| encoding("a Parquet file", e))?;
    }
    w.close().map_err(|e| encoding("a Parquet file", e))?;
    Ok(())
}

/// Record batches as JSON lines (one object per row, null columns left out, as Spark writes).
pub(crate) fn write_json<'a>(
    batches: impl IntoIterator<Item = &'a RecordBatch>,
    out: &mut Vec<u8>,
) -> ember::Result<()> {
    let mut w = arrow::json::LineDelimitedWriter::new(out);
    for b in batches {
        w.write(b).map_err(|e| encoding("JSON lines", e))?;
    }
    w.finish().map_err(|e| encoding("JSON lines", e))
}

fn read_parquet(bytes: &[u8]) -> Result<Vec<RecordBatch>, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .and_then(|b| b.build())
        .map_err(|e| format!("not a Parquet file: {e}"))?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| format!("a damaged Parquet file: {e}"))
}

/// Parquet files of records of `T`, columns as [`ToRows::to_rows_serde`](crate::ToRows::to_rows_serde)
/// names them: a [`FileFormat`] for `save_as_files`, `save_as_rolling_files` and `file_stream`.
pub struct Parquet<T> {
    encoder: Result<Encoder, String>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Parquet<T> {
    /// The format of `T`'s records (a type whose schema cannot be traced fails every write, with
    /// the reason).
    pub fn new() -> Parquet<T> {
        Parquet { encoder: Encoder::of::<T>(None), _t: std::marker::PhantomData }
    }
}

impl<T: Serialize + DeserializeOwned> Default for Parquet<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> FileFormat<T> for Parquet<T> {
    fn encode(&self, records: &[T], out: &mut Vec<u8>) -> ember::Result<()> {
        let encoder = self.encoder.as_ref().map_err(|e| encoding("a Parquet file", e))?;
        let (batch, skipped, first) = encoder.encode(records);
        if skipped > 0 {
            return Err(encoding(
                "a Parquet file",
                format!("{skipped} records do not fit the schema; the first: {}", first.unwrap_or_default()),
            ));
        }
        write_parquet(encoder.schema(), &[batch], out)
    }

    fn extension(&self) -> &str {
        "parquet"
    }

    fn line_based(&self) -> bool {
        false
    }

    fn decode_file(&self, bytes: &[u8], out: &mut Vec<T>) -> Result<(), String> {
        for b in read_parquet(bytes)? {
            let records: Vec<T> =
                serde_arrow::from_record_batch(&b).map_err(|e| format!("records do not fit the type: {e}"))?;
            out.extend(records);
        }
        Ok(())
    }
}

/// A table's chunks as Parquet files.
struct ParquetChunks(SchemaRef);

impl FileFormat<Chunk> for ParquetChunks {
    fn encode(&self, records: &[Chunk], out: &mut Vec<u8>) -> ember::Result<()> {
        write_parquet(&self.0, records.iter().map(|c| &c.0), out)
    }

    fn extension(&self) -> &str {
        "parquet"
    }

    fn line_based(&self) -> bool {
        false
    }

    fn decode_file(&self, bytes: &[u8], out: &mut Vec<Chunk>) -> Result<(), String> {
        out.extend(read_parquet(bytes)?.into_iter().map(Chunk));
        Ok(())
    }
}

/// A table's chunks as JSON lines (one object per row, null columns left out, as Spark writes).
struct JsonChunks;

impl FileFormat<Chunk> for JsonChunks {
    fn encode(&self, records: &[Chunk], out: &mut Vec<u8>) -> ember::Result<()> {
        write_json(records.iter().map(|c| &c.0), out)
    }

    fn extension(&self) -> &str {
        "json"
    }

    fn line_based(&self) -> bool {
        true
    }
}

impl Rows {
    /// Writes every batch as a directory `prefix-<ms>.parquet` with one Parquet file per worker
    /// (`part-00000.parquet`, …; an empty share is a file of no rows, so the directory always
    /// carries the schema) and `_SUCCESS`, committed as `save_as_text_files` commits.
    pub fn save_as_parquet_files(&self, prefix: impl Into<String>) {
        self.stream.save_as_files(prefix, "parquet", ParquetChunks(Arc::clone(&self.schema)));
    }

    /// Writes every batch as a directory `prefix-<ms>.json` of JSON-lines files.
    pub fn save_as_json_files(&self, prefix: impl Into<String>) {
        self.stream.save_as_files(prefix, "json", JsonChunks);
    }
}

/// The table outputs on any stream of serializable records.
pub trait SaveAsTable<T> {
    /// [`Rows::save_as_parquet_files`] on this stream's records (columns named as
    /// [`ToRows::to_rows_serde`](crate::ToRows::to_rows_serde) names them).
    fn save_as_parquet_files(&self, prefix: impl Into<String>);
}

impl<T: ember::Data + Serialize + DeserializeOwned> SaveAsTable<T> for DStream<T> {
    fn save_as_parquet_files(&self, prefix: impl Into<String>) {
        crate::ToRows::to_rows_serde(self).save_as_parquet_files(prefix)
    }
}
