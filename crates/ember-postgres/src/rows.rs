//! Records to table rows: a record is serialized with serde and its values are matched to the
//! table's columns by name (a struct or a map) or by position (a tuple), then converted to each
//! column's type for binary COPY.

use std::error::Error as StdError;

use chrono::{DateTime, NaiveDateTime, Utc};
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use serde_json::Value;

/// A record that does not fit the table.
#[derive(Debug)]
pub struct RowError(pub String);

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for RowError {}

/// One value, converted to its column's type.
#[derive(Debug)]
pub enum Cell {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Text(String),
    Json(Value),
    Bytes(Vec<u8>),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
}

impl ToSql for Cell {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Bool(v) => v.to_sql(ty, out),
            Cell::I16(v) => v.to_sql(ty, out),
            Cell::I32(v) => v.to_sql(ty, out),
            Cell::I64(v) => v.to_sql(ty, out),
            Cell::F32(v) => v.to_sql(ty, out),
            Cell::F64(v) => v.to_sql(ty, out),
            Cell::Text(v) => v.to_sql(ty, out),
            Cell::Json(v) => v.to_sql(ty, out),
            Cell::Bytes(v) => v.to_sql(ty, out),
            Cell::Timestamp(v) => v.to_sql(ty, out),
            Cell::TimestampTz(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        // The cell was made for its column's type (see `cell`).
        true
    }

    to_sql_checked!();
}

/// The column types a record's values can be written to.
pub fn supported(ty: &Type) -> bool {
    [
        Type::BOOL,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::JSON,
        Type::JSONB,
        Type::BYTEA,
        Type::TIMESTAMP,
        Type::TIMESTAMPTZ,
    ]
    .contains(ty)
}

/// The cells of `record` for the columns `names` of types `types`.
pub fn row(record: &Value, names: &[String], types: &[Type]) -> Result<Vec<Cell>, RowError> {
    let values: Vec<&Value> = match record {
        Value::Object(fields) => {
            if let Some(extra) = fields.keys().find(|k| !names.contains(k)) {
                return Err(RowError(format!("the field `{extra}` is not a column (columns: {})", names.join(", "))));
            }
            names.iter().map(|n| fields.get(n).unwrap_or(&Value::Null)).collect()
        }
        Value::Array(items) if names.len() != 1 => {
            if items.len() != names.len() {
                return Err(RowError(format!(
                    "a tuple of {} values for {} columns ({})",
                    items.len(),
                    names.len(),
                    names.join(", ")
                )));
            }
            items.iter().collect()
        }
        single if names.len() == 1 => vec![single],
        other => {
            return Err(RowError(format!(
                "a single value ({other}) for {} columns: write a struct, a map or a tuple",
                names.len()
            )))
        }
    };
    values
        .into_iter()
        .zip(names.iter().zip(types))
        .map(|(v, (name, ty))| cell(v, ty).map_err(|why| RowError(format!("column `{name}` ({ty}): {why}"))))
        .collect()
}

fn cell(v: &Value, ty: &Type) -> Result<Cell, String> {
    let int = |min: i64, max: i64| -> Result<i64, String> {
        let n = v.as_i64().ok_or_else(|| format!("{v} is not an integer"))?;
        (min..=max).contains(&n).then_some(n).ok_or_else(|| format!("{n} is out of range"))
    };
    let float = || v.as_f64().ok_or_else(|| format!("{v} is not a number"));
    Ok(match (v, ty) {
        (Value::Null, _) => Cell::Null,
        (_, t) if *t == Type::JSON || *t == Type::JSONB => Cell::Json(v.clone()),
        (Value::Bool(b), t) if *t == Type::BOOL => Cell::Bool(*b),
        (_, t) if *t == Type::INT2 => Cell::I16(int(i16::MIN.into(), i16::MAX.into())? as i16),
        (_, t) if *t == Type::INT4 => Cell::I32(int(i32::MIN.into(), i32::MAX.into())? as i32),
        (_, t) if *t == Type::INT8 => Cell::I64(
            v.as_i64().ok_or_else(|| format!("{v} is not an integer of 64 bits"))?,
        ),
        (_, t) if *t == Type::FLOAT4 => Cell::F32(float()? as f32),
        (_, t) if *t == Type::FLOAT8 => Cell::F64(float()?),
        (Value::String(s), t) if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(t) => {
            Cell::Text(s.clone())
        }
        (Value::Array(bytes), t) if *t == Type::BYTEA => Cell::Bytes(
            bytes
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()).ok_or_else(|| format!("{b} is not a byte")))
                .collect::<Result<_, _>>()?,
        ),
        (_, t) if *t == Type::TIMESTAMPTZ => Cell::TimestampTz(timestamp(v)?),
        (_, t) if *t == Type::TIMESTAMP => Cell::Timestamp(timestamp(v)?.naive_utc()),
        (_, t) if !supported(t) => {
            return Err(format!(
                "the type {t} is not supported: use bool, int2/4/8, float4/8, text, varchar, json(b), bytea or timestamp(tz)"
            ))
        }
        _ => return Err(format!("{v} does not convert")),
    })
}

/// A timestamp from an RFC 3339 string or a number of milliseconds since the epoch.
fn timestamp(v: &Value) -> Result<DateTime<Utc>, String> {
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}")),
        _ => v
            .as_i64()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(|| format!("{v} is neither an RFC 3339 string nor milliseconds since the epoch")),
    }
}

/// `name` as a quoted SQL identifier; `schema.table` quotes each part.
pub fn quoted(name: &str) -> String {
    name.split('.').map(|p| format!("\"{}\"", p.replace('"', "\"\""))).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_fit_columns_by_name_or_position() {
        let names = vec!["word".to_owned(), "n".to_owned()];
        let types = vec![Type::TEXT, Type::INT8];
        let by_name = row(&json!({"n": 3, "word": "a"}), &names, &types).unwrap();
        assert!(matches!(&by_name[..], [Cell::Text(w), Cell::I64(3)] if w == "a"));
        let by_position = row(&json!(["a", 3]), &names, &types).unwrap();
        assert!(matches!(&by_position[..], [Cell::Text(_), Cell::I64(3)]));
        let missing = row(&json!({"word": "a"}), &names, &types).unwrap();
        assert!(matches!(missing[1], Cell::Null), "a missing field is NULL");
        let e = row(&json!({"word": "a", "extra": 1}), &names, &types).unwrap_err().to_string();
        assert!(e.contains("`extra`"), "{e}");
        let e = row(&json!(["a", 3, 4]), &names, &types).unwrap_err().to_string();
        assert!(e.contains("3 values for 2 columns"), "{e}");
        let e = row(&json!(["a", "three"]), &names, &types).unwrap_err().to_string();
        assert!(e.contains("column `n`") && e.contains("not an integer"), "{e}");
        let e = row(&json!(["a", 70000]), &names, &[Type::TEXT, Type::INT2]).unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = row(&json!(["a", 1]), &names, &[Type::TEXT, Type::NUMERIC]).unwrap_err().to_string();
        assert!(e.contains("not supported"), "{e}");
        let t = row(&json!(["2026-11-29T10:00:00Z", 0]), &names, &[Type::TIMESTAMPTZ, Type::TIMESTAMP]).unwrap();
        assert!(matches!(t[0], Cell::TimestampTz(_)) && matches!(t[1], Cell::Timestamp(_)));
        assert_eq!(quoted("public.Word \"x\""), "\"public\".\"Word \"\"x\"\"\"");
    }
}
