//! Streams as tables: a [`Rows`] is a stream whose batches are Arrow record batches of one
//! schema, made from any `DStream<T: Serialize>` ([`ToRows`]).
//!
//! The schema is declared, never guessed from data: it is traced from the record type when the
//! stream is declared (serde_arrow: structs by field name, tuples by position, `Option` as
//! nullable, `Vec` as a list, nested structs as structs). So every batch has the same schema, an
//! empty batch included, and a query can be planned before the first batch runs. A record that
//! does not fit the schema (a value out of range, say) is skipped, counted and logged with the
//! column it failed on; the rest of its batch goes on.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use ember::{DStream, Data};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_arrow::schema::{SchemaLike, TracingOptions};
use serde_arrow::utils::{Item, Items};

use crate::rows::Row;
use crate::SqlError;

/// One worker's share of a batch as an Arrow record batch. It crosses processes in Arrow's IPC
/// stream format; within a process it moves as it is.
#[derive(Clone, Debug)]
pub struct Chunk(pub RecordBatch);

impl Serialize for Chunk {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes = ipc_bytes(&self.0).map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for Chunk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: serde_bytes_buf::Buf = Deserialize::deserialize(d)?;
        from_ipc(&bytes.0).map(Chunk).map_err(serde::de::Error::custom)
    }
}

/// Bytes deserialized from `serialize_bytes` whatever the format gives (borrowed or owned).
mod serde_bytes_buf {
    pub struct Buf(pub Vec<u8>);
    impl<'de> serde::Deserialize<'de> for Buf {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Buf;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Buf, E> {
                    Ok(Buf(v.to_vec()))
                }
                fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Buf, E> {
                    Ok(Buf(v))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Buf, A::Error> {
                    let mut v = Vec::new();
                    while let Some(b) = a.next_element()? {
                        v.push(b);
                    }
                    Ok(Buf(v))
                }
            }
            d.deserialize_bytes(V)
        }
    }
}

pub(crate) fn ipc_bytes(batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &batch.schema())?;
    w.write(batch)?;
    w.finish()?;
    drop(w);
    Ok(out)
}

fn from_ipc(bytes: &[u8]) -> Result<RecordBatch, String> {
    let mut r = StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    let schema = r.schema();
    match r.next() {
        Some(b) => b.map_err(|e| e.to_string()),
        None => Ok(RecordBatch::new_empty(schema)),
    }
}

/// A stream as a table: each worker's share of each batch is one [`Chunk`] of `schema`. Made by
/// [`ToRows`]; named in a query with [`Query::with_view`](crate::Query::with_view).
#[derive(Clone, Debug)]
pub struct Rows {
    pub(crate) schema: SchemaRef,
    pub(crate) stream: DStream<Chunk>,
    pub(crate) skipped: Arc<AtomicU64>,
}

impl Rows {
    /// The table's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The stream of chunks.
    pub fn stream(&self) -> &DStream<Chunk> {
        &self.stream
    }

    /// Records skipped so far in this process because they did not fit the schema.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Rows of your own making as a table of a declared schema: Spark's
    /// `createDataFrame(rowRDD, schema)`. Each row's values are matched to the schema's columns
    /// by name; a column a row lacks is null, a name the schema lacks is ignored. A row that does
    /// not fit (a text where the schema has a number, a null in a column that is not nullable) is
    /// skipped, counted in [`skipped`](Self::skipped) and logged with Arrow's message, which
    /// names the column; the rest of its batch goes on.
    ///
    /// ```
    /// use ember_sql::{Row, Rows, Value};
    /// # let ssc = ember::testing::manual_context("local[1]");
    /// let names: std::sync::Arc<[String]> = vec!["word".to_string(), "n".to_string()].into();
    /// let rows = ssc.queue_stream(vec![vec![Row::new(names, vec![Value::Str("a".into()), Value::Int(2)])]], true);
    /// let table = Rows::with_schema(&rows, ember_sql::schema("word STRING NOT NULL, n BIGINT")?);
    /// # Ok::<(), ember_sql::SqlError>(())
    /// ```
    pub fn with_schema(rows: &DStream<Row>, schema: SchemaRef) -> Rows {
        let sch = Arc::clone(&schema);
        chunks_of(rows, schema, move |rows: &[Row]| batch_of_rows(&sch, rows))
    }

    /// A stream of JSON texts, one object each (a Kafka or MQTT message, a line of a file), as a
    /// table of a declared schema: Spark's `spark.read.schema(schema).json(rdd)`. Fields are
    /// matched by name; a field the schema lacks is ignored and one an object lacks is null.
    /// Blank texts hold no row. A text that is not one JSON object, or whose value does not fit
    /// its column, is skipped, counted in [`skipped`](Self::skipped) and logged with the reason
    /// (Arrow's message names the field). Spark's default, `PERMISSIVE`, keeps such a record as
    /// a row of nulls; a counted skip does not feed nulls to the query.
    ///
    /// ```
    /// # let ssc = ember::testing::manual_context("local[1]");
    /// let messages = ssc.queue_stream(vec![vec![r#"{"page": "home", "ms": 12}"#.to_string()]], true);
    /// let clicks = ember_sql::Rows::from_json(&messages, ember_sql::schema("page STRING, ms BIGINT")?);
    /// # Ok::<(), ember_sql::SqlError>(())
    /// ```
    pub fn from_json(texts: &DStream<String>, schema: SchemaRef) -> Rows {
        let sch = Arc::clone(&schema);
        chunks_of(texts, schema, move |texts: &[String]| batch_of_json(&sch, texts))
    }
}

/// Turns a stream of records into a table ([`Rows`]).
///
/// A query's output, a `DStream<Row>`, is not meant for these: its schema comes from the query,
/// so take it as a table with [`Query::table`](crate::Query::table) (these would trace `Row`'s
/// own layout instead of its columns).
pub trait ToRows<T> {
    /// Columns named by position: `words.to_rows(["word"])` for a `DStream<String>`,
    /// `pairs.to_rows(["word", "count"])` for a `DStream<(String, i64)>`; a struct's fields are
    /// renamed in their order. A count of names that does not match the record's columns is a
    /// declaration error.
    fn to_rows<const N: usize>(&self, names: [&str; N]) -> Rows;
    /// Columns named as the record's fields (a struct; a tuple's columns are `0`, `1`, …; a
    /// primitive's one column is `value`): Spark's `toDF()`.
    fn to_rows_serde(&self) -> Rows;
}

impl<T: Data + Serialize + DeserializeOwned> ToRows<T> for DStream<T> {
    fn to_rows<const N: usize>(&self, names: [&str; N]) -> Rows {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        rows_of_stream(self, Some(names))
    }

    fn to_rows_serde(&self) -> Rows {
        rows_of_stream(self, None)
    }
}

/// A static dataset as a table (Spark's `rdd.toDF()` of a `parallelize`d or `textFile` RDD):
/// `ssc.dataset(pages).to_rows_serde()`, `ssc.text_file(path).to_rows(["line"])`. It is a view like
/// a stream's, holding the same rows every batch, each worker its share, so it joins streams of
/// the batch interval's slide. A table that is only read is cheaper as a
/// [`StaticTable`](crate::StaticTable): loaded once and, when small, broadcast.
impl<T: Data + Serialize + DeserializeOwned> ToRows<T> for ember::Rdd<T> {
    fn to_rows<const N: usize>(&self, names: [&str; N]) -> Rows {
        self.clone().into_stream().to_rows(names)
    }

    fn to_rows_serde(&self) -> Rows {
        self.clone().into_stream().to_rows_serde()
    }
}

/// How records of `T` become a record batch.
#[derive(Clone)]
pub(crate) struct Encoder {
    /// The fields serde_arrow writes (the traced ones).
    fields: Vec<FieldRef>,
    /// The schema batches get (the fields renamed).
    schema: SchemaRef,
    /// A primitive record is written as `Item(x)`, a struct with one field.
    wrapped: bool,
}

fn options() -> TracingOptions {
    TracingOptions::default()
        .allow_null_fields(true)
        .strings_as_large_utf8(false)
        .sequence_as_large_list(false)
        .bytes_as_large_binary(false)
        .enums_without_data_as_strings(true)
}

impl Encoder {
    /// The encoder of `T`, with its columns renamed to `names` if given.
    pub(crate) fn of<T: Serialize + DeserializeOwned>(names: Option<Vec<String>>) -> Result<Encoder, String> {
        let (fields, wrapped) = match Vec::<FieldRef>::from_type::<T>(options()) {
            Ok(f) => (f, false),
            Err(first) => match Vec::<FieldRef>::from_type::<Item<T>>(options()) {
                Ok(f) => (f, true),
                Err(_) => return Err(format!("the record type's schema cannot be traced: {first}")),
            },
        };
        let renamed: Vec<Field> = match &names {
            // A primitive's one column is `value`, as Spark names the column of a `Dataset[String]`.
            None if wrapped => fields.iter().map(|f| f.as_ref().clone().with_name("value")).collect(),
            None => fields.iter().map(|f| f.as_ref().clone()).collect(),
            Some(names) => {
                if names.len() != fields.len() {
                    return Err(format!(
                        "{} column names ({}) for a record of {} columns ({})",
                        names.len(),
                        names.join(", "),
                        fields.len(),
                        fields.iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
                fields.iter().zip(names).map(|(f, n)| f.as_ref().clone().with_name(n)).collect()
            }
        };
        Ok(Encoder { fields, schema: Arc::new(Schema::new(renamed)), wrapped })
    }

    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn encode_all<T: Serialize>(&self, xs: &[T]) -> Result<RecordBatch, String> {
        let batch = if self.wrapped {
            serde_arrow::to_record_batch(&self.fields, &Items(xs))
        } else {
            serde_arrow::to_record_batch(&self.fields, &xs)
        }
        .map_err(|e| e.to_string())?;
        RecordBatch::try_new(Arc::clone(&self.schema), batch.columns().to_vec()).map_err(|e| e.to_string())
    }

    /// The records as one batch; records that do not fit are left out, with the count and the
    /// first one's error returned beside it.
    pub(crate) fn encode<T: Serialize>(&self, xs: &[T]) -> (RecordBatch, usize, Option<String>) {
        fitting(xs, &self.schema, |fit| self.encode_all(fit))
    }
}

/// `items` as one batch by `attempt`; when that fails, the items that fit on their own, with the
/// count of those left out and the first one's error.
fn fitting<X>(
    items: &[X],
    schema: &SchemaRef,
    attempt: impl Fn(&[&X]) -> Result<RecordBatch, String>,
) -> (RecordBatch, usize, Option<String>) {
    let all: Vec<&X> = items.iter().collect();
    if let Ok(b) = attempt(&all) {
        return (b, 0, None);
    }
    let mut first = None;
    let fit: Vec<&X> = all
        .into_iter()
        .filter(|x| match attempt(std::slice::from_ref(x)) {
            Ok(_) => true,
            Err(e) => {
                first.get_or_insert(e);
                false
            }
        })
        .collect();
    let batch = attempt(&fit).unwrap_or_else(|_| RecordBatch::new_empty(Arc::clone(schema)));
    (batch, items.len() - fit.len(), first)
}

/// A table of `s`, each worker's share of a batch encoded by `encode`; what it leaves out is
/// counted and logged.
fn chunks_of<X: Data>(
    s: &DStream<X>,
    schema: SchemaRef,
    encode: impl Fn(&[X]) -> (RecordBatch, usize, Option<String>) + Clone + Send + Sync + 'static,
) -> Rows {
    let skipped = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&skipped);
    let stream = s.operator("to rows", move |b| {
        let (encode, counter) = (encode.clone(), Arc::clone(&counter));
        b.per_batch("to rows", move |t, xs: Vec<X>, out| {
            let (batch, n, first) = encode(&xs);
            if n > 0 {
                counter.fetch_add(n as u64, Ordering::Relaxed);
                tracing::warn!(batch = %t, skipped = n, "records that do not fit the table's schema were skipped; the first: {}", first.unwrap_or_default());
            }
            out.push(Chunk(batch))
        })
    });
    Rows { schema, stream, skipped }
}

fn rows_of_stream<T: Data + Serialize + DeserializeOwned>(s: &DStream<T>, names: Option<Vec<String>>) -> Rows {
    match Encoder::of::<T>(names) {
        Ok(encoder) => chunks_of(s, Arc::clone(encoder.schema()), move |xs: &[T]| encoder.encode(xs)),
        Err(e) => {
            s.declaration_error(SqlError::Schema(e).into());
            chunks_of(s, Arc::new(Schema::empty()), |_xs: &[T]| {
                (RecordBatch::new_empty(Arc::new(Schema::empty())), 0, None)
            })
        }
    }
}

/// Rows of a known schema as a record batch (rows that do not fit are left out and counted).
fn batch_of_rows(schema: &SchemaRef, rows: &[Row]) -> (RecordBatch, usize, Option<String>) {
    fitting(rows, schema, |fit| {
        decoded(schema, fit.len(), |d| {
            let records: Vec<_> = fit.iter().map(|r| r.as_record()).collect();
            d.serialize(&records).map_err(|e| e.to_string())
        })
    })
}

/// A batch of `schema` from Arrow's JSON decoder, with room for `rows` rows (it stops at that
/// many), fed by `feed`.
fn decoded(
    schema: &SchemaRef,
    rows: usize,
    feed: impl FnOnce(&mut arrow::json::reader::Decoder) -> Result<(), String>,
) -> Result<RecordBatch, String> {
    let builder = arrow::json::ReaderBuilder::new(Arc::clone(schema)).with_batch_size(rows.max(1));
    let mut d = builder.build_decoder().map_err(|e| e.to_string())?;
    feed(&mut d)?;
    Ok(d.flush().map_err(|e| e.to_string())?.unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema))))
}

/// JSON texts as a record batch of `schema` (texts that do not fit are left out and counted).
fn batch_of_json(schema: &SchemaRef, texts: &[String]) -> (RecordBatch, usize, Option<String>) {
    // Room for one row a text: the decoder stops there, so a text holding more than one object
    // is caught below.
    fitting(texts, schema, |fit| {
        decoded(schema, fit.len(), |d| {
            for text in fit {
                let read = d.decode(text.as_bytes()).map_err(|e| e.to_string())?;
                if read < text.len() || d.has_partial_record() {
                    return Err(format!("not one JSON object: {}", text.chars().take(80).collect::<String>()));
                }
            }
            Ok(())
        })
    })
}

/// A query's rows back as records of your own type.
pub trait FromRows {
    /// Each row as a record of `T` through serde, matched by column name (see [`Row::to`]). A
    /// row that does not convert is skipped and logged with the reason, and counted in
    /// `skipped`.
    fn to_records<T: Data + DeserializeOwned>(&self, skipped: Arc<AtomicU64>) -> DStream<T>;
}

impl FromRows for DStream<Row> {
    fn to_records<T: Data + DeserializeOwned>(&self, skipped: Arc<AtomicU64>) -> DStream<T> {
        self.flat_map(move |r: Row| match r.to::<T>() {
            Ok(t) => Some(t),
            Err(e) => {
                skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("a row that is not a record of the type asked for was skipped: {e}");
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::Value;
    use arrow::datatypes::DataType;

    #[test]
    fn a_row_that_does_not_fit_a_declared_schema_is_left_out_with_its_columns_name() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("word", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]));
        let names: Arc<[String]> = vec!["word".to_string(), "n".to_string()].into();
        let row = |w: Value, n: Value| Row::new(Arc::clone(&names), vec![w, n]);
        let ok = row(Value::Str("a".into()), Value::Int(1));
        let (batch, skipped, first) =
            batch_of_rows(&schema, &[ok.clone(), row(Value::Str("b".into()), Value::Str("x".into()))]);
        assert_eq!((batch.num_rows(), skipped), (1, 1));
        let e = first.unwrap();
        assert!(e.contains("field 'n'") && e.contains("\"x\""), "the error names the column and the value: {e}");
        let (batch, skipped, first) = batch_of_rows(&schema, &[row(Value::Null, Value::Int(2)), ok]);
        assert_eq!((batch.num_rows(), skipped), (1, 1));
        let e = first.unwrap();
        assert!(e.contains("\"word\""), "a null where the column is not nullable names it: {e}");
    }

    /// A query's rows go back into a table of its schema unchanged (what `Query::table` and the
    /// Parquet outputs do with them), for every kind of value `show()` knows.
    #[test]
    fn rows_of_every_kind_of_value_go_back_into_the_same_table() {
        let session = Arc::new(crate::SqlSession::new());
        let q = "SELECT make_array(1, NULL, 3) AS arr, named_struct('a', 1, 'b', CAST(NULL AS VARCHAR)) AS st, \
                 MAP {'k': 1, 'l': NULL} AS m, DATE '2024-01-02' AS d, TIMESTAMP '2024-01-02 03:04:05.120' AS ts, \
                 CAST(1.5 AS DECIMAL(10,2)) AS dec, true AS flag, X'0A1B' AS bin, CAST(0.1 AS REAL) AS f, \
                 CAST(0.1 AS DOUBLE) AS g, '日本語' AS wide, make_array(named_struct('x', 1, 'y', make_array('p', NULL))) AS nested, \
                 CAST(NULL AS INT[]) AS nullarr, arrow_cast(7, 'UInt64') AS u, arrow_cast('v', 'Utf8View') AS view";
        let batches = session.sql(q).unwrap().collect_batches().unwrap();
        let schema = batches[0].schema();
        let rows = crate::rows::rows_of(&batches);
        let (batch, skipped, first) = batch_of_rows(&schema, &rows);
        assert_eq!(skipped, 0, "{first:?}");
        assert_eq!(batch, batches[0]);
    }
}
