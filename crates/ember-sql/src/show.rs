//! `show()` in Spark's exact text layout (`Dataset.showString`): a `+---+` frame, cells of at
//! least three characters, right-aligned and cut to 20 characters (`...` marks the cut) when
//! truncating, left-aligned otherwise, and `only showing top N rows` under a table with more rows
//! than shown (no newline after it: `show()` prints the text with one). Spark 4 shows `NULL`, inside
//! arrays, structs and maps too.

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
