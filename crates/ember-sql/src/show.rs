//! `show()` in Spark's exact text layout (`Dataset.showString`): a `+---+` frame, cells of at
//! least three characters, right-aligned and cut to 20 characters (`...` marks the cut) when
//! truncating, left-aligned otherwise, and `only showing top N rows` under a table with more rows
//! than shown (no newline after it: `show()` prints the text with one). Spark 4 shows `NULL`, inside
//! arrays, structs and maps too.

use arrow::datatypes::DataType;

use crate::rows::Row;

/// The table of `rows` (at most `n` of them; `more` says whether the data had more than `n`)
/// under `names`, as Spark's `show(n, truncate)` prints it. `truncate` is the longest cell
/// (`0` for no cut, `20` in Spark's `show()`).
pub fn show_string(names: &[String], rows: &[Row], n: usize, truncate: usize, more: bool) -> String {
    let cell = |s: String| -> String {
        if truncate > 0 && width(&s) > truncate {
            let keep = if truncate < 4 { truncate } else { truncate - 3 };
            let cut: String = s.chars().take(keep).collect();
            if truncate < 4 {
                cut
            } else {
                cut + "..."
            }
        } else {
            s
        }
    };
    let header: Vec<String> = names.iter().map(|n| cell(n.clone())).collect();
    let body: Vec<Vec<String>> =
        rows.iter().take(n).map(|r| r.values().iter().map(|v| cell(v.shown())).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h).max(3)).collect();
    for r in &body {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(width(c));
        }
    }
    let mut out = String::new();
    let line: String = widths.iter().fold("+".to_string(), |s, w| s + &"-".repeat(*w) + "+") + "\n";
    let row_line = |cells: &[String], out: &mut String| {
        out.push('|');
        for (c, w) in cells.iter().zip(&widths) {
            let pad = " ".repeat(w.saturating_sub(width(c)));
            if truncate > 0 {
                out.push_str(&pad);
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&pad);
            }
            out.push('|');
        }
        out.push('\n');
    };
    out.push_str(&line);
    row_line(&header, &mut out);
    out.push_str(&line);
    for r in &body {
        row_line(r, &mut out);
    }
    out.push_str(&line);
    if more {
        out.push_str(&format!("only showing top {n} {}", if n == 1 { "row" } else { "rows" }));
    }
    out
}

/// Characters on screen: East Asian wide characters take two columns, as Spark counts them.
fn width(s: &str) -> usize {
    s.chars().map(|c| if is_wide(c) { 2 } else { 1 }).sum()
}

fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6 | 0x20000..=0x2FFFD | 0x30000..=0x3FFFD)
}

/// Spark's `schema.treeString` (what `printSchema()` prints): `root`, then a `|--` line per
/// column with Spark's type name and nullability, and the element of an array, the fields of a
/// struct and the key and value of a map below their column. Arrow types Spark lacks keep
/// Arrow's name (`uint32`).
pub fn tree_string(schema: &arrow::datatypes::Schema) -> String {
    let mut out = String::from("root\n");
    for f in schema.fields() {
        tree_line(&mut out, 1, f.name(), f.data_type(), Some(("nullable", f.is_nullable())));
    }
    out
}

fn tree_line(out: &mut String, depth: usize, name: &str, t: &DataType, null: Option<(&str, bool)>) {
    out.push_str(" |");
    out.push_str(&"    |".repeat(depth - 1));
    out.push_str(&format!("-- {name}: {}", spark_type(t)));
    if let Some((label, nullable)) = null {
        out.push_str(&format!(" ({label} = {nullable})"));
    }
    out.push('\n');
    match t {
        DataType::List(e)
        | DataType::LargeList(e)
        | DataType::ListView(e)
        | DataType::LargeListView(e)
        | DataType::FixedSizeList(e, _) => {
            tree_line(out, depth + 1, "element", e.data_type(), Some(("containsNull", e.is_nullable())))
        }
        DataType::Struct(fields) => {
            for f in fields {
                tree_line(out, depth + 1, f.name(), f.data_type(), Some(("nullable", f.is_nullable())));
            }
        }
        DataType::Map(entries, _) => {
            if let DataType::Struct(kv) = entries.data_type() {
                if let [k, v] = &kv[..] {
                    tree_line(out, depth + 1, "key", k.data_type(), None);
                    tree_line(out, depth + 1, "value", v.data_type(), Some(("valueContainsNull", v.is_nullable())));
                }
            }
        }
        _ => {}
    }
}

/// Spark's name of an Arrow type.
fn spark_type(t: &DataType) -> String {
    match t {
        DataType::Null => "void".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "byte".into(),
        DataType::Int16 => "short".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "long".into(),
        DataType::Float16 | DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            "binary".into()
        }
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp".into(),
        DataType::Timestamp(_, None) => "timestamp_ntz".into(),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(_, _) => "array".into(),
        DataType::Struct(_) => "struct".into(),
        DataType::Map(_, _) => "map".into(),
        other => other.to_string().to_lowercase(),
    }
}
