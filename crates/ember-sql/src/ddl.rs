//! Schemas written as Spark writes them in DDL text: `"user STRING, amount DOUBLE NOT NULL,
//! tags ARRAY<STRING>, place STRUCT<lat: DOUBLE, lon: DOUBLE>"`, for
//! [`Rows::from_json`](crate::Rows::from_json) and [`Rows::with_schema`](crate::Rows::with_schema).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::SqlError;

/// The schema of Spark's DDL text (what `StructType.fromDDL` and `spark.read.schema(..)` take):
/// columns `name TYPE [NOT NULL]`, separated by commas, names in backquotes where they need them.
/// Spark's type names, in any case: `BOOLEAN`, `TINYINT`/`BYTE`, `SMALLINT`/`SHORT`,
/// `INT`/`INTEGER`, `BIGINT`/`LONG`, `FLOAT`/`REAL`, `DOUBLE`, `DECIMAL(p, s)`, `STRING`
/// (`VARCHAR(n)`, `CHAR(n)`), `BINARY`, `DATE`, `TIMESTAMP` (an instant, UTC), `TIMESTAMP_NTZ`,
/// `ARRAY<t>`, `MAP<k, v>`, `STRUCT<name: t, ..>`. Text it cannot read is an error naming the
/// place.
///
/// ```
/// let s = ember_sql::schema("user STRING, amount DOUBLE NOT NULL, tags ARRAY<STRING>").unwrap();
/// assert_eq!(s.field(1).name(), "amount");
/// assert!(!s.field(1).is_nullable());
/// ```
pub fn schema(ddl: &str) -> Result<SchemaRef, SqlError> {
    let mut p = Parser { text: ddl, at: 0 };
    let fields = p.fields(None)?;
    p.space();
    if p.at < ddl.len() {
        return Err(p.error("a comma or the end"));
    }
    Ok(Arc::new(Schema::new(fields)))
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn error(&self, expected: &str) -> SqlError {
        let found: String = self.rest().chars().take(20).collect();
        let found = if found.is_empty() { "the end".to_string() } else { format!("`{found}`") };
        SqlError::Schema(format!(
            "cannot read the schema `{}`: expected {expected} at character {}, found {found}",
            self.text,
            self.at + 1
        ))
    }

    /// Takes `c` if it comes next.
    fn eat(&mut self, c: char) -> bool {
        self.space();
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), SqlError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(&format!("`{c}`")))
        }
    }

    /// A name: letters, digits and `_`, or anything in backquotes (two for one inside).
    fn name(&mut self) -> Result<String, SqlError> {
        self.space();
        if self.eat('`') {
            let mut name = String::new();
            loop {
                let Some(c) = self.rest().chars().next() else { return Err(self.error("a closing backquote")) };
                self.at += c.len_utf8();
                if c == '`' {
                    if self.rest().starts_with('`') {
                        self.at += 1;
                    } else {
                        return Ok(name);
                    }
                }
                name.push(c);
            }
        }
        let len = self.rest().find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.error("a name"));
        }
        let name = self.rest()[..len].to_string();
        self.at += len;
        Ok(name)
    }

    /// Whether the next word is `word` (any case); takes it if so.
    fn keyword(&mut self, word: &str) -> bool {
        self.space();
        let rest = self.rest();
        let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if rest[..len].eq_ignore_ascii_case(word) {
            self.at += len;
            true
        } else {
            false
        }
    }

    /// Columns, or a struct's fields up to `close` (`>`), separated by commas.
    fn fields(&mut self, close: Option<char>) -> Result<Vec<Field>, SqlError> {
        let mut fields = Vec::new();
        loop {
            if let Some(c) = close {
                if fields.is_empty() && self.eat(c) {
                    return Ok(fields);
                }
            }
            let name = self.name()?;
            if close.is_some() {
                self.eat(':');
            }
            let t = self.data_type()?;
            let nullable = if self.keyword("NOT") {
                if !self.keyword("NULL") {
                    return Err(self.error("`NULL` after `NOT`"));
                }
                false
            } else {
                true
            };
            fields.push(Field::new(name, t, nullable));
            if self.eat(',') {
                continue;
            }
            if let Some(c) = close {
                self.expect(c)?;
            }
            return Ok(fields);
        }
    }

    /// `(n)` or `(p, s)` after a type name.
    fn numbers(&mut self) -> Result<Vec<u32>, SqlError> {
        let mut out = Vec::new();
        if !self.eat('(') {
            return Ok(out);
        }
        loop {
            self.space();
            let len = self.rest().find(|c: char| !c.is_ascii_digit()).unwrap_or(self.rest().len());
            let n = self.rest()[..len].parse().map_err(|_| self.error("a number"))?;
            self.at += len;
            out.push(n);
            if !self.eat(',') {
                self.expect(')')?;
                return Ok(out);
            }
        }
    }

    fn data_type(&mut self) -> Result<DataType, SqlError> {
        self.space();
        let start = self.at;
        let word = self.name().map_err(|_| self.error("a type"))?.to_ascii_uppercase();
        let t = match word.as_str() {
            "BOOLEAN" | "BOOL" => DataType::Boolean,
            "TINYINT" | "BYTE" => DataType::Int8,
            "SMALLINT" | "SHORT" => DataType::Int16,
            "INT" | "INTEGER" => DataType::Int32,
            "BIGINT" | "LONG" => DataType::Int64,
            "FLOAT" | "REAL" => DataType::Float32,
            "DOUBLE" => DataType::Float64,
            "DECIMAL" | "DEC" | "NUMERIC" => {
                let (p, s) = match self.numbers()?[..] {
                    [] => (10, 0),
                    [p] => (p, 0),
                    [p, s] => (p, s),
                    _ => return Err(self.error("a precision and a scale")),
                };
                match (u8::try_from(p), i8::try_from(s)) {
                    (Ok(p), Ok(s)) if (1..=38).contains(&p) && s as u8 <= p => DataType::Decimal128(p, s),
                    _ => return Err(self.error("a precision from 1 to 38 and a scale no greater")),
                }
            }
            "STRING" | "VARCHAR" | "CHAR" => {
                self.numbers()?;
                DataType::Utf8
            }
            "BINARY" => DataType::Binary,
            "DATE" => DataType::Date32,
            "TIMESTAMP" | "TIMESTAMP_LTZ" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            "TIMESTAMP_NTZ" => DataType::Timestamp(TimeUnit::Microsecond, None),
            "ARRAY" => {
                self.expect('<')?;
                let element = self.data_type()?;
                self.expect('>')?;
                DataType::List(Arc::new(Field::new("item", element, true)))
            }
            "MAP" => {
                self.expect('<')?;
                let key = self.data_type()?;
                self.expect(',')?;
                let value = self.data_type()?;
                self.expect('>')?;
                let entries = Fields::from(vec![Field::new("key", key, false), Field::new("value", value, true)]);
                DataType::Map(Arc::new(Field::new("entries", DataType::Struct(entries), false)), false)
            }
            "STRUCT" => {
                self.expect('<')?;
                DataType::Struct(Fields::from(self.fields(Some('>'))?))
            }
            _ => {
                self.at = start;
                return Err(self.error("a type"));
            }
        };
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_backquotes_and_bad_text() {
        let s = schema("`a b` INT, `c``d` STRUCT<>").unwrap();
        assert_eq!(s.field(0).name(), "a b");
        assert_eq!(s.field(1).name(), "c`d");
        for (ddl, needle) in [
            ("a INT,", "expected a name at character 7, found the end"),
            ("a FOO", "expected a type at character 3, found `FOO`"),
            ("a ARRAY<INT", "expected `>` at character 12"),
            ("a INT NOT", "`NULL` after `NOT`"),
            ("a DECIMAL(40, 2)", "precision from 1 to 38"),
            ("a INT b INT", "expected a comma or the end at character 7, found `b INT`"),
        ] {
            let e = schema(ddl).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains(ddl), "{ddl}: {e}");
        }
    }
}
