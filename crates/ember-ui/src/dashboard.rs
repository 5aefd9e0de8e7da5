//! Live dashboards: `stream.dashboard("name")` shows each batch of a stream on `/dashboard/name`,
//! updated as batches complete — the "results on a big screen" of a streaming job without a web
//! application of its own.
//!
//! Each batch is gathered on the driver (like `foreach_batch`), so a dashboard is for small
//! results: a windowed count, the top N of something. A stream of `(key, number)` pairs is drawn
//! as a bar chart of its largest values; anything else is a table of its first records.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ember::{DStream, Data, Time};
use serde_json::Value;
use tokio::sync::watch;

/// Rows a table dashboard shows.
pub const TABLE_ROWS: usize = 100;
/// Bars a bar-chart dashboard shows unless told otherwise.
pub const TOP_BARS: usize = 20;

/// What one dashboard shows now.
#[derive(Debug, Clone)]
pub(crate) enum View {
    /// `(label, value)` pairs, largest first.
    Bars(Vec<(String, f64)>),
    /// Column names and rows of cells.
    Table(Vec<String>, Vec<Vec<String>>),
}

/// One dashboard.
#[derive(Debug, Clone)]
pub(crate) struct Board {
    /// The batch shown, once one completed.
    pub batch: Option<Time>,
    /// Records of that batch.
    pub records: usize,
    pub view: View,
    /// How many batches it has shown.
    pub updates: u64,
}

/// The dashboards of one context (a context extension, so streams declared before or after
/// `ember_ui::attach` both reach the UI).
pub struct Boards {
    pub(crate) boards: Mutex<BTreeMap<String, (usize, Option<Board>)>>,
    pub(crate) changes: watch::Sender<u64>,
}

impl Default for Boards {
    fn default() -> Self {
        Boards { boards: Mutex::new(BTreeMap::new()), changes: watch::channel(0).0 }
    }
}

impl std::fmt::Debug for Boards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Boards").finish_non_exhaustive()
    }
}

impl Boards {
    pub(crate) fn snapshot(&self) -> BTreeMap<String, (usize, Option<Board>)> {
        self.boards.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn show(&self, name: &str, t: Time, records: Vec<Value>) {
        let mut boards = self.boards.lock().unwrap_or_else(|e| e.into_inner());
        let Some((top, board)) = boards.get_mut(name) else { return };
        let view = view(&records, *top);
        let updates = board.as_ref().map_or(0, |b| b.updates) + 1;
        *board = Some(Board { batch: Some(t), records: records.len(), view, updates });
        drop(boards);
        self.changes.send_modify(|v| *v += 1);
    }
}

/// A cell's text: strings without quotes, everything else as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

fn view(records: &[Value], top: usize) -> View {
    let pair = |v: &Value| match v {
        Value::Array(a) if a.len() == 2 => a[1].as_f64().map(|n| (cell(&a[0]), n)),
        _ => None,
    };
    if !records.is_empty() && records.iter().all(|r| pair(r).is_some()) {
        let mut bars: Vec<(String, f64)> = records.iter().filter_map(pair).collect();
        bars.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        bars.truncate(top);
        return View::Bars(bars);
    }
    let shown = &records[..records.len().min(TABLE_ROWS)];
    let columns: Vec<String> = match shown.first() {
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        Some(Value::Array(a)) => (1..=a.len()).map(|i| format!("_{i}")).collect(),
        _ => vec!["value".to_owned()],
    };
    let rows = shown
        .iter()
        .map(|r| match r {
            Value::Object(m) => columns.iter().map(|c| m.get(c).map(cell).unwrap_or_default()).collect(),
            Value::Array(a) => a.iter().map(cell).collect(),
            v => vec![cell(v)],
        })
        .collect();
    View::Table(columns, rows)
}

/// Dashboards on any stream.
pub trait DashboardExt {
    /// Shows each batch of this stream on the UI's page `/dashboard/<name>`: a bar chart of the
    /// 20 largest values for `(key, number)` pairs, otherwise a table of the first 100 records.
    /// The batch is gathered on the driver: use it on small results (counts, top N).
    fn dashboard(&self, name: &str) -> Self;

    /// Like [`dashboard`](Self::dashboard), with the `n` largest values of `(key, number)` pairs.
    fn dashboard_top(&self, name: &str, n: usize) -> Self;
}

impl<T: Data> DashboardExt for DStream<T> {
    fn dashboard(&self, name: &str) -> Self {
        self.dashboard_top(name, TOP_BARS)
    }

    fn dashboard_top(&self, name: &str, n: usize) -> Self {
        let boards = self.extension::<Boards>();
        boards.boards.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned(), (n.max(1), None));
        let name = name.to_owned();
        self.foreach_batch(move |t, records: Vec<T>| -> Result<(), String> {
            let values = records
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("dashboard `{name}`: a record cannot be shown: {e}"))?;
            boards.show(&name, t, values);
            Ok(())
        });
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pairs_of_a_key_and_a_number_are_bars_largest_first() {
        let View::Bars(bars) = view(&[json!(["a", 1]), json!(["b", 5]), json!(["c", 3])], 2) else { panic!("bars") };
        assert_eq!(bars, vec![("b".to_owned(), 5.0), ("c".to_owned(), 3.0)]);
    }

    #[test]
    fn other_records_are_tables() {
        let View::Table(cols, rows) = view(&[json!({"word": "x", "n": 2})], 5) else { panic!("table") };
        assert_eq!(cols, vec!["n", "word"]);
        assert_eq!(rows, vec![vec!["2".to_owned(), "x".to_owned()]]);
        let View::Table(cols, rows) = view(&[json!("line")], 5) else { panic!("table") };
        assert_eq!((cols, rows), (vec!["value".to_owned()], vec![vec!["line".to_owned()]]));
    }
}
