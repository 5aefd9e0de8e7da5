//! [`Row`], the untyped record a query returns, and its conversions: from Arrow's record batches,
//! to a user's own type through serde, and to a record serde_arrow can write back into a table.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type};
use arrow::datatypes::{UInt16Type, UInt32Type, UInt64Type, UInt8Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::de::DeserializeOwned;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};

use crate::SqlError;

/// One value of a [`Row`]. Integers of every width are `Int` (an unsigned 64-bit value above
/// `i64::MAX` becomes `Float`), floating point is `Float`, text `Str`; dates, times, timestamps
/// and decimals are `Str` in the form Spark shows them (`2024-01-02`, `2024-01-02 03:04:05.12`,
/// `1.50`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer of any width.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text, and the display form of dates, timestamps and decimals.
    Str(String),
    /// Binary data.
    Bytes(Vec<u8>),
    /// An array.
    List(Vec<Value>),
    /// A struct: its fields in order, with their names.
    Struct(Vec<(String, Value)>),
    /// A map: its entries in order.
    Map(Vec<(Value, Value)>),
}

/// An untyped record, as Spark's `Row`: values by position, with the column names of the query
/// that made it. Read a column with [`get`](Row::get) or turn the row into your own type with
/// [`to`](Row::to).
///
/// To serde, in a human-readable format (JSON: `serde_json`, the PostgreSQL, Redis and Kafka
/// sinks) a row is an object of its columns, `{"word":"a","total":3}`, so a query's stream goes
/// to a sink as it is. In Ember's binary formats (between processes, in checkpoints) it keeps
/// its names and typed values.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

/// A row in a binary format (the same fields in the same order as [`WireRef`]).
#[derive(Deserialize)]
struct Wire {
    names: Arc<[String]>,
    values: Vec<Value>,
}

#[derive(Serialize)]
struct WireRef<'a> {
    names: &'a Arc<[String]>,
    values: &'a [Value],
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.as_record().serialize(s)
        } else {
            WireRef { names: &self.names, values: &self.values }.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Row, D::Error> {
        if d.is_human_readable() {
            let Columns(columns) = Columns::deserialize(d)?;
            let names: Arc<[String]> = columns.iter().map(|(n, _)| n.clone()).collect();
            let values = columns.into_iter().map(|(_, v)| Value::of_json(v)).collect();
            Ok(Row { names, values })
        } else {
            let w = Wire::deserialize(d)?;
            Ok(Row { names: w.names, values: w.values })
        }
    }
}

/// An object's fields in the order they came.
struct Columns(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Columns {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Columns, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Columns;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of a row's columns")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut m: M) -> Result<Columns, M::Error> {
                let mut columns = Vec::new();
                while let Some(entry) = m.next_entry::<String, serde_json::Value>()? {
                    columns.push(entry);
                }
                Ok(Columns(columns))
            }
        }
        d.deserialize_map(Visit)
    }
}

impl Row {
    /// A row of `values` named `names` (as many of each).
    pub fn new(names: Arc<[String]>, values: Vec<Value>) -> Row {
        debug_assert_eq!(names.len(), values.len());
        Row { names, values }
    }

    /// The column names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The value of column `name`, if the row has one.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.names.iter().position(|n| n == name).map(|i| &self.values[i])
    }

    /// The value of column `name` as an integer (`None` for a missing column, `NULL` or another type).
    pub fn get_i64(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The value of column `name` as a float (integers widen).
    pub fn get_f64(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            Value::Float(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    /// The value of column `name` as text.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }

    /// The row as a record of type `T`, matched by column name through serde (a `struct` with
    /// fields named as the columns; `Option` fields take `NULL`).
    pub fn to<T: DeserializeOwned>(&self) -> Result<T, SqlError> {
        serde_json::from_value(self.to_json()).map_err(|e| SqlError::Convert(format!("row {self} as a record: {e}")))
    }

    /// The row as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.names.iter().zip(&self.values).map(|(n, v)| (n.clone(), v.to_json())).collect())
    }

    /// The row as a record with named fields, for serde_arrow (Parquet and JSON outputs).
    pub(crate) fn as_record(&self) -> Record<'_> {
        Record(self)
    }
}

impl Value {
    /// A JSON value as a value: a whole number that fits `i64` is `Int`, another number `Float`,
    /// an object a `Struct`.
    fn of_json(v: serde_json::Value) -> Value {
        use serde_json::Value as J;
        match v {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => n.as_i64().map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::Int),
            J::String(s) => Value::Str(s),
            J::Array(xs) => Value::List(xs.into_iter().map(Value::of_json).collect()),
            J::Object(fs) => Value::Struct(fs.into_iter().map(|(n, v)| (n, Value::of_json(v))).collect()),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or(J::Null),
            Value::Str(s) => J::String(s.clone()),
            Value::Bytes(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
            Value::List(xs) => J::Array(xs.iter().map(Value::to_json).collect()),
            Value::Struct(fs) => J::Object(fs.iter().map(|(n, v)| (n.clone(), v.to_json())).collect()),
            Value::Map(es) => J::Object(es.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect()),
        }
    }
}

/// `Row` prints as Spark's `Row.toString`: `[a,1,null]`.
impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{v}")?;
        }
        f.write_str("]")
    }
}

/// A value prints as in Spark's `show()`, but for `null` in lower case (as Spark's `Row` prints
/// it): Java's form of a double (`1.0`, `1.0E10`), `[1, 2]` for arrays, `{a, 1}` for structs,
/// `{k -> 1}` for maps, `[0A 1B]` for binary.
impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.write(f, "null")
    }
}

impl Value {
    /// The text of a cell of Spark 4's `show()`, where null is `NULL` at every depth.
    pub(crate) fn shown(&self) -> String {
        struct Shown<'a>(&'a Value);
        impl std::fmt::Display for Shown<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.write(f, "NULL")
            }
        }
        Shown(self).to_string()
    }

    fn write(&self, f: &mut std::fmt::Formatter<'_>, null: &str) -> std::fmt::Result {
        /// `items` written by `one`, separated by `, `.
        fn joined<I>(
            f: &mut std::fmt::Formatter<'_>,
            items: impl IntoIterator<Item = I>,
            mut one: impl FnMut(&mut std::fmt::Formatter<'_>, I) -> std::fmt::Result,
        ) -> std::fmt::Result {
            for (i, x) in items.into_iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                one(f, x)?;
            }
            Ok(())
        }
        match self {
            Value::Null => f.write_str(null),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => f.write_str(&java_double(*x)),
            Value::Str(s) => f.write_str(s),
            Value::Bytes(b) => {
                f.write_str("[")?;
                for (i, x) in b.iter().enumerate() {
                    write!(f, "{}{:02X}", if i > 0 { " " } else { "" }, x)?;
                }
                f.write_str("]")
            }
            Value::List(xs) => {
                f.write_str("[")?;
                joined(f, xs, |f, x| x.write(f, null))?;
                f.write_str("]")
            }
            Value::Struct(fs) => {
                f.write_str("{")?;
                joined(f, fs, |f, (_, x)| x.write(f, null))?;
                f.write_str("}")
            }
            Value::Map(es) => {
                f.write_str("{")?;
                joined(f, es, |f, (k, v)| {
                    k.write(f, null)?;
                    f.write_str(" -> ")?;
                    v.write(f, null)
                })?;
                f.write_str("}")
            }
        }
    }
}

/// Java's `Double.toString`: the shortest digits that read back, plain between 10⁻³ and 10⁷
/// (always with a fractional digit), otherwise `d.dddE±n`.
pub(crate) fn java_double(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let a = x.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            s + ".0"
        }
    } else {
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') { mantissa.to_string() } else { format!("{mantissa}.0") };
        format!("{mantissa}E{exp}")
    }
}

impl ember::Printable for Row {
    fn print_to(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(out, "{self}");
    }
}

/// A row seen by serde as a map from column name to plain value (no enum tags), which is what
/// Arrow's JSON decoder reads into a table.
pub(crate) struct Record<'a>(&'a Row);

struct Plain<'a>(&'a Value);

struct Hex<'a>(&'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.values.len()))?;
        for (n, v) in self.0.names.iter().zip(&self.0.values) {
            m.serialize_entry(n, &Plain(v))?;
        }
        m.end()
    }
}

impl Serialize for Plain<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_none(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(x) => s.serialize_str(x),
            // Arrow's JSON decoder reads binary as hex text.
            Value::Bytes(b) => s.collect_str(&format_args!("{}", Hex(b))),
            Value::List(xs) => {
                let mut q = s.serialize_seq(Some(xs.len()))?;
                for x in xs {
                    q.serialize_element(&Plain(x))?;
                }
                q.end()
            }
            Value::Struct(fs) => {
                let mut m = s.serialize_map(Some(fs.len()))?;
                for (n, v) in fs {
                    m.serialize_entry(n, &Plain(v))?;
                }
                m.end()
            }
            Value::Map(es) => {
                let mut m = s.serialize_map(Some(es.len()))?;
                for (k, v) in es {
                    m.serialize_entry(&Plain(k), &Plain(v))?;
                }
                m.end()
            }
        }
    }
}

/// The rows of record batches, named by their schema's fields.
pub fn rows_of(batches: &[RecordBatch]) -> Vec<Row> {
    let Some(first) = batches.first() else { return Vec::new() };
    let names: Arc<[String]> = first.schema().fields().iter().map(|f| f.name().clone()).collect();
    let mut rows = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for batch in batches {
        let columns: Vec<Vec<Value>> = batch.columns().iter().map(values_of).collect();
        let mut columns: Vec<std::vec::IntoIter<Value>> = columns.into_iter().map(Vec::into_iter).collect();
        for _ in 0..batch.num_rows() {
            let values = columns.iter_mut().map(|c| c.next().unwrap_or(Value::Null)).collect();
            rows.push(Row { names: Arc::clone(&names), values });
        }
    }
    rows
}

macro_rules! ints {
    ($a:expr, $t:ty) => {
        $a.as_primitive::<$t>().iter().map(|v| v.map_or(Value::Null, |v| Value::Int(v as i64))).collect()
    };
}

/// One column's values.
fn values_of(a: &ArrayRef) -> Vec<Value> {
    match a.data_type() {
        DataType::Null => vec![Value::Null; a.len()],
        DataType::Boolean => a.as_boolean().iter().map(|v| v.map_or(Value::Null, Value::Bool)).collect(),
        DataType::Int8 => ints!(a, Int8Type),
        DataType::Int16 => ints!(a, Int16Type),
        DataType::Int32 => ints!(a, Int32Type),
        DataType::Int64 => ints!(a, Int64Type),
        DataType::UInt8 => ints!(a, UInt8Type),
        DataType::UInt16 => ints!(a, UInt16Type),
        DataType::UInt32 => ints!(a, UInt32Type),
        DataType::UInt64 => a
            .as_primitive::<UInt64Type>()
            .iter()
            .map(|v| match v {
                None => Value::Null,
                Some(v) => i64::try_from(v).map_or(Value::Float(v as f64), Value::Int),
            })
            .collect(),
        // A float's shortest text read as a double, so that 0.1f32 shows `0.1`, as in Spark.
        DataType::Float32 => a
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| v.map_or(Value::Null, |v| Value::Float(v.to_string().parse().unwrap_or(v as f64))))
            .collect(),
        DataType::Float64 => {
            a.as_primitive::<Float64Type>().iter().map(|v| v.map_or(Value::Null, Value::Float)).collect()
        }
        DataType::Utf8 => strings(a.as_string::<i32>().iter()),
        DataType::LargeUtf8 => strings(a.as_string::<i64>().iter()),
        DataType::Utf8View => strings(a.as_string_view().iter()),
        DataType::Binary => {
            a.as_binary::<i32>().iter().map(|v| v.map_or(Value::Null, |b| Value::Bytes(b.to_vec()))).collect()
        }
        DataType::LargeBinary => {
            a.as_binary::<i64>().iter().map(|v| v.map_or(Value::Null, |b| Value::Bytes(b.to_vec()))).collect()
        }
        DataType::List(_) => lists(a.as_list::<i32>().iter()),
        DataType::LargeList(_) => lists(a.as_list::<i64>().iter()),
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let columns: Vec<Vec<Value>> = s.columns().iter().map(values_of).collect();
            (0..a.len())
                .map(|i| {
                    if a.is_null(i) {
                        Value::Null
                    } else {
                        Value::Struct(
                            fields.iter().zip(&columns).map(|(f, c)| (f.name().clone(), c[i].clone())).collect(),
                        )
                    }
                })
                .collect()
        }
        DataType::Map(_, _) => {
            let m = a.as_map();
            let (keys, values) = (values_of(m.keys()), values_of(m.values()));
            let offsets = m.value_offsets();
            (0..a.len())
                .map(|i| {
                    if a.is_null(i) {
                        return Value::Null;
                    }
                    let range = offsets[i] as usize..offsets[i + 1] as usize;
                    Value::Map(range.map(|j| (keys[j].clone(), values[j].clone())).collect())
                })
                .collect()
        }
        // Spark's form: a space between date and time, the fraction without trailing zeros.
        DataType::Timestamp(_, _) => {
            const FORM: &str = "%Y-%m-%d %H:%M:%S%.f";
            let options =
                FormatOptions::default().with_timestamp_format(Some(FORM)).with_timestamp_tz_format(Some(FORM));
            formatted(a, &options, |s| {
                if s.contains('.') {
                    s.trim_end_matches('0').trim_end_matches('.').to_string()
                } else {
                    s
                }
            })
        }
        _ => formatted(a, &FormatOptions::default(), |s| s),
    }
}

/// Values in Arrow's display form, adjusted by `adjust`.
fn formatted(a: &ArrayRef, options: &FormatOptions<'_>, adjust: impl Fn(String) -> String) -> Vec<Value> {
    match ArrayFormatter::try_new(a.as_ref(), options) {
        Ok(f) => (0..a.len())
            .map(|i| if a.is_null(i) { Value::Null } else { Value::Str(adjust(f.value(i).to_string())) })
            .collect(),
        Err(_) => vec![Value::Null; a.len()],
    }
}

fn strings<'a>(it: impl Iterator<Item = Option<&'a str>>) -> Vec<Value> {
    it.map(|v| v.map_or(Value::Null, |s| Value::Str(s.to_string()))).collect()
}

fn lists(it: impl Iterator<Item = Option<ArrayRef>>) -> Vec<Value> {
    it.map(|v| v.map_or(Value::Null, |inner| Value::List(values_of(&inner)))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_an_object_in_json_and_keeps_its_values_in_binary() {
        let names: Arc<[String]> = ["word", "total", "note", "ratio"].iter().map(|s| s.to_string()).collect();
        let row = Row::new(names, vec![Value::Str("a".into()), Value::Int(3), Value::Null, Value::Float(0.5)]);
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(json, r#"{"word":"a","total":3,"note":null,"ratio":0.5}"#);
        assert_eq!(serde_json::from_str::<Row>(&json).unwrap(), row, "columns keep their order");
        // What JSON cannot tell apart (a whole double, bytes, a map) survives the binary form.
        let names: Arc<[String]> = ["d", "b", "m"].iter().map(|s| s.to_string()).collect();
        let map = Value::Map(vec![(Value::Str("k".into()), Value::Int(1))]);
        let row = Row::new(names, vec![Value::Float(1.0), Value::Bytes(vec![0, 255]), map]);
        let bytes = bincode::serialize(&row).unwrap();
        assert_eq!(bincode::deserialize::<Row>(&bytes).unwrap(), row);
    }

    #[test]
    fn doubles_print_as_java_does() {
        for (x, s) in [(1.0, "1.0"), (2.5, "2.5"), (0.001, "0.001"), (1e7, "1.0E7"), (1.5e-4, "1.5E-4"), (-3.0, "-3.0")]
        {
            assert_eq!(java_double(x), s, "{x}");
        }
    }

    #[test]
    fn a_row_becomes_a_record_of_the_users_type() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct WordCount {
            word: String,
            total: i64,
            note: Option<String>,
        }
        let row = Row::new(
            ["word".to_string(), "total".to_string(), "note".to_string()].into(),
            vec![Value::Str("a".into()), Value::Int(3), Value::Null],
        );
        assert_eq!(row.to::<WordCount>().unwrap(), WordCount { word: "a".into(), total: 3, note: None });
        assert_eq!(row.to_string(), "[a,3,null]");
        let err = row.to::<(String,)>().unwrap_err().to_string();
        assert!(err.contains("[a,3,null]"), "{err}");
    }
}
