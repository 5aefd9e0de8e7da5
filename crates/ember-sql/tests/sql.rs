//! SQL on streams against Apache Spark's own answers: every query of `golden/queries.sql` runs as
//! a distributed stream operator over the batches of `golden/*.jsonl` under `local[1]`,
//! `local[3]` and 2 processes x 2 workers, and its rows, batch by batch, equal what Spark SQL
//! returned for the same batch (`golden/generate.py` wrote them with the Spark peer).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ember::prelude::*;
use ember_sql::{sql, ForeachRddDf, Row, StaticTable, ToRows};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Click {
    user: String,
    page: String,
    amount: f64,
    qty: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Order {
    user: String,
    page: String,
    item: String,
    price: f64,
}

const BATCHES: usize = 5;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The records of `name.jsonl`, by batch.
fn batches<T: serde::de::DeserializeOwned>(name: &str) -> Vec<Vec<T>> {
    let text = std::fs::read_to_string(golden().join(format!("{name}.jsonl"))).unwrap();
    let mut out: Vec<Vec<T>> = (0..BATCHES).map(|_| Vec::new()).collect();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let b = v["batch"].as_u64().unwrap() as usize;
        out[b].push(serde_json::from_value(v).unwrap());
    }
    out
}

/// `(name, sql)` of every query of `queries.sql`.
fn queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(golden().join("queries.sql")).unwrap();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- name:") {
            out.push((name.trim().to_string(), String::new()));
        } else if !line.trim().is_empty() {
            let q = &mut out.last_mut().unwrap().1;
            if !q.is_empty() {
                q.push(' ');
            }
            q.push_str(line.trim());
        }
    }
    out
}

/// generate.py's Python functions `shout` and `bucket`, in Rust.
fn shout() -> ember_sql::Udf {
    ember_sql::Udf::new1("shout", |s: String| s.to_uppercase() + "!")
}

fn bucket() -> ember_sql::Udf {
    ember_sql::Udf::new2("bucket", |amount: f64, width: i64| (amount / width as f64).floor() as i64)
}

const WINDOW_SQL: &str = "SELECT page, COUNT(DISTINCT user) AS users, SUM(qty) AS items FROM clicks GROUP BY page";

/// Runs every golden query on `master` and returns `name -> lines` (`<batch> <row>`, sorted).
fn run_golden(conf: Conf) -> BTreeMap<String, Vec<String>> {
    let ssc = StreamingContext::new(conf.manual_clock(true), Duration::from_secs(1)).unwrap();
    let clicks = ssc.queue_stream(batches::<Click>("clicks"), true);
    let orders = ssc.queue_stream(batches::<Order>("orders"), true);
    let pages = StaticTable::json(&golden().join("pages.jsonl").display().to_string()).unwrap();
    let mut outs = Vec::new();
    for (name, q) in queries() {
        let out = sql(&ssc, &q)
            .with_view("clicks", clicks.to_rows_serde())
            .with_view("orders", orders.to_rows_serde())
            .with_table("pages", pages.clone())
            .with_udf(shout())
            .with_udf(bucket())
            .stream()
            .collect_batches();
        outs.push((name, out));
    }
    let windowed = sql(&ssc, WINDOW_SQL)
        .with_view("clicks", clicks.window(Duration::from_secs(2), Duration::from_secs(1)).to_rows_serde())
        .stream()
        .collect_batches();
    outs.push(("window".to_string(), windowed));
    ssc.run_batches(BATCHES as u64).unwrap();
    ssc.stop(false).unwrap();
    outs.into_iter()
        .map(|(name, out)| {
            let mut lines = Vec::new();
            for (t, rows) in out.batches() {
                let b = t.millis() / 1000 - 1;
                let mut batch: Vec<String> = rows.iter().map(|r: &Row| format!("{b} {r}")).collect();
                batch.sort();
                lines.extend(batch);
            }
            (name, lines)
        })
        .collect()
}

fn check_golden(got: &BTreeMap<String, Vec<String>>, master: &str) {
    let mut names: Vec<String> = queries().into_iter().map(|(n, _)| n).collect();
    names.push("window".into());
    assert_eq!(got.len(), names.len());
    for name in names {
        let want: Vec<String> = std::fs::read_to_string(golden().join(format!("{name}.txt")))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert!(!want.is_empty(), "{name}: Spark's answer is empty");
        assert_eq!(got[&name], want, "{master}: `{name}` differs from Spark's rows");
    }
}

#[test]
fn every_query_gives_sparks_rows_local_1() {
    check_golden(&run_golden(Conf::new().master("local[1]")), "local[1]");
}

#[test]
fn every_query_gives_sparks_rows_local_3() {
    check_golden(&run_golden(Conf::new().master("local[3]")), "local[3]");
}

#[test]
#[ignore = "run as a child process by `every_query_gives_sparks_rows_2_processes`"]
fn golden_cluster_child() {
    let got = run_golden(Conf::new());
    if std::env::var("EMBER_CLUSTER_PROCESS").as_deref() == Ok("0") {
        println!("GOLDEN {}", serde_json::to_string(&got).unwrap());
    }
}

#[test]
fn every_query_gives_sparks_rows_2_processes() {
    let outputs = ember::testing::run_cluster("golden_cluster_child", &[]);
    let lines = ember::testing::tagged(&outputs[0].stdout, "GOLDEN");
    assert_eq!(lines.len(), 1, "the driver prints the outputs once");
    let got: BTreeMap<String, Vec<String>> = serde_json::from_str(&lines[0]).unwrap();
    check_golden(&got, "2 processes x 2 workers");
}

/// `show()` text equals Spark's, byte for byte.
#[test]
fn show_prints_sparks_layout() {
    let session = std::sync::Arc::new(ember_sql::SqlSession::new());
    let clicks = batches::<Click>("clicks").swap_remove(0);
    let df = session.create_data_frame(&clicks, None).unwrap().order_by(&["user", "page", "amount", "qty"]).unwrap();
    let read = |name: &str| std::fs::read_to_string(golden().join(format!("{name}.txt"))).unwrap();
    assert_eq!(df.show_string(20, 20).unwrap(), read("show_default"));
    assert_eq!(df.show_string(5, 20).unwrap(), read("show_5_rows"));
    assert_eq!(df.select(&["user"]).unwrap().show_string(1, 20).unwrap(), read("show_one_row"));
    let q = "SELECT 'a rather long text that is cut' AS long_text, CAST(1.0E10 AS DOUBLE) AS big, \
             CAST(NULL AS STRING) AS nothing, CAST(0.001 AS DOUBLE) AS small, 'ab' AS x";
    let df = session.sql(q).unwrap();
    assert_eq!(df.show_string(20, 20).unwrap(), read("show_truncated"));
    assert_eq!(df.show_string(20, 0).unwrap(), read("show_untruncated"));
    // generate.py's TYPES_SQL, in DataFusion's words.
    let types = "SELECT make_array(1, NULL, 3) AS arr, named_struct('a', 1, 'b', CAST(NULL AS VARCHAR)) AS st, \
                 MAP {'k': 1} AS m, DATE '2024-01-02' AS d, TIMESTAMP '2024-01-02 03:04:05.120' AS ts, \
                 TIMESTAMP '2024-01-02 03:04:05' AS ts0, CAST(1.5 AS DECIMAL(10,2)) AS dec, true AS flag, \
                 X'0A1B' AS bin, CAST(0.1 AS REAL) AS f, '' AS empty, '日本語' AS wide, \
                 make_array(named_struct('x', 1, 'y', make_array('p', NULL))) AS nested, \
                 CAST(NULL AS INT[]) AS nullarr, make_array() AS emptyarr";
    let df = session.sql(types).unwrap();
    assert_eq!(df.show_string(20, 20).unwrap(), read("show_types"));
    assert_eq!(df.show_string(20, 0).unwrap(), read("show_types_untruncated"));
}

/// `print_schema()` names every type as Spark 4.3's `printSchema()` does (generate.py's SCHEMA_DDL).
#[test]
fn print_schema_names_types_as_spark_does() {
    use ember_sql::datafusion::arrow::datatypes::{DataType as T, Field, Fields, Schema, TimeUnit};
    let f = |n: &str, t: T| Field::new(n, t, true);
    let list = |t: T| T::List(std::sync::Arc::new(Field::new("item", t, true)));
    let entries = Field::new(
        "entries",
        T::Struct(Fields::from(vec![Field::new("key", T::Utf8, false), f("value", T::Int32)])),
        false,
    );
    let schema = Schema::new(vec![
        f("b", T::Int8),
        f("s", T::Int16),
        Field::new("i", T::Int32, false),
        f("l", T::Int64),
        f("f", T::Float32),
        f("d", T::Float64),
        f("dec", T::Decimal128(10, 2)),
        f("str", T::Utf8),
        f("flag", T::Boolean),
        f("bin", T::Binary),
        f("day", T::Date32),
        f("ts", T::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))),
        f("ntz", T::Timestamp(TimeUnit::Microsecond, None)),
        f("arr", list(T::Int32)),
        f("st", T::Struct(Fields::from(vec![f("a", T::Int32), Field::new("b", T::Utf8, false)]))),
        f("m", T::Map(std::sync::Arc::new(entries), false)),
        f("nested", list(T::Struct(Fields::from(vec![f("x", T::Int32), f("y", list(T::Utf8))])))),
    ]);
    let session = std::sync::Arc::new(ember_sql::SqlSession::new());
    let batch = ember_sql::datafusion::arrow::array::RecordBatch::new_empty(std::sync::Arc::new(schema));
    let df = session.read_batch(batch).unwrap();
    let want = std::fs::read_to_string(golden().join("print_schema.txt")).unwrap();
    assert_eq!(df.schema_string(), want);
    // The DDL text Spark read (generate.py's SCHEMA_DDL) gives the same schema.
    let script = std::fs::read_to_string(golden().join("generate.py")).unwrap();
    let ddl: String = script
        .split("SCHEMA_DDL = (")
        .nth(1)
        .and_then(|rest| rest.split(")\n").next())
        .map(|lines| lines.split('"').skip(1).step_by(2).collect())
        .expect("generate.py names SCHEMA_DDL");
    let declared = ember_sql::schema(&ddl).unwrap();
    assert_eq!(ember_sql::show::tree_string(&declared), want, "{ddl}");
    assert_eq!(declared.as_ref(), df.schema().as_ref());
}

/// Spark's guide pattern: each batch as a DataFrame, a temporary view, `sql`, DataFrame methods.
#[test]
fn the_per_batch_pattern_runs_on_every_batch() {
    let ssc = ember::testing::manual_context("local[2]");
    let clicks = ssc.queue_stream(batches::<Click>("clicks"), true);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = std::sync::Arc::clone(&seen);
    clicks.foreach_rdd_df(move |df, t| -> Result<(), ember_sql::SqlError> {
        df.create_or_replace_temp_view("clicks")?;
        let by_sql =
            df.session().sql("SELECT page, SUM(qty) AS items FROM clicks GROUP BY page")?.order_by(&["page"])?;
        let by_methods = df
            .filter("amount > 0")?
            .group_by(&["page"])?
            .agg(&["sum(qty) AS items"])?
            .order_by(&["page"])?
            .select(&["page", "items"])?;
        assert_eq!(by_sql.collect()?, by_methods.collect()?);
        let n = df.count()?;
        let top = df.order_by(&["amount DESC", "user", "page", "qty"])?.limit(1)?.collect_as::<Click>()?;
        ember::clock::lock(&s).push((t.millis(), n, top.first().map(|c| c.amount)));
        Ok(())
    });
    ssc.run_batches(BATCHES as u64).unwrap();
    ssc.stop(false).unwrap();
    let want: Vec<(u64, usize, Option<f64>)> = batches::<Click>("clicks")
        .iter()
        .enumerate()
        .map(|(i, b)| ((i as u64 + 1) * 1000, b.len(), b.iter().map(|c| c.amount).reduce(f64::max)))
        .collect();
    assert_eq!(*ember::clock::lock(&seen), want);
}

/// A join of two DataFrames by column names keeps each key once, as Spark's `join(right, Seq(..))`.
#[test]
fn data_frame_joins_keep_each_key_once() {
    let session = std::sync::Arc::new(ember_sql::SqlSession::new());
    let left = session.create_data_frame(&[("a".to_string(), 1i64), ("b".to_string(), 2)], Some(&["k", "x"])).unwrap();
    let right =
        session.create_data_frame(&[("b".to_string(), 20i64), ("c".to_string(), 30)], Some(&["k", "y"])).unwrap();
    let text = |df: ember_sql::DataFrame| {
        let mut v: Vec<String> = df.collect().unwrap().iter().map(|r| r.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(left.join(&right, &["k"], "inner").unwrap().columns(), ["k", "x", "y"]);
    assert_eq!(text(left.join(&right, &["k"], "inner").unwrap()), ["[b,2,20]"]);
    assert_eq!(text(left.join(&right, &["k"], "left").unwrap()), ["[a,1,null]", "[b,2,20]"]);
    assert_eq!(text(left.join(&right, &["k"], "full").unwrap()), ["[a,1,null]", "[b,2,20]", "[c,null,30]"]);
    assert_eq!(text(left.join(&right, &["k"], "left_anti").unwrap()), ["[a,1]"]);
    let err = left.join(&right, &["k"], "sideways").unwrap_err().to_string();
    assert!(err.contains("unknown join type `sideways`"), "{err}");
}

fn start_error(build: impl FnOnce(&StreamingContext)) -> String {
    let ssc = ember::testing::manual_context("local[1]");
    build(&ssc);
    match ssc.start() {
        Ok(()) => {
            ssc.stop(false).unwrap();
            panic!("the context started")
        }
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_queries_are_declaration_errors_with_datafusions_message() {
    let clicks = |ssc: &StreamingContext| ssc.queue_stream(batches::<Click>("clicks"), true).to_rows_serde();
    let cases: [(&str, &str); 4] = [
        ("SELEC page FROM clicks", "SELEC"),
        ("SELECT nope FROM clicks", "nope"),
        ("SELECT page FROM nowhere", "nowhere"),
        ("SELECT SUM(page) FROM clicks", "'sum' failed to match"),
    ];
    for (q, needle) in cases {
        let e = start_error(|ssc| {
            sql(ssc, q).with_view("clicks", clicks(ssc)).stream().print();
        });
        assert!(e.contains("invalid declaration of `sql`") && e.contains(needle) && e.contains(q), "{q}: {e}");
    }
    let e = start_error(|ssc| {
        sql(ssc, "SELECT * FROM clicks")
            .with_view("clicks", clicks(ssc))
            .with_view("CLICKS", clicks(ssc))
            .stream()
            .print();
    });
    assert!(e.contains("`CLICKS` is used twice"), "{e}");
    // A function called with arguments it does not take.
    let e = start_error(|ssc| {
        sql(ssc, "SELECT shout(user, page) FROM clicks")
            .with_view("clicks", clicks(ssc))
            .with_udf(shout())
            .stream()
            .print();
    });
    assert!(e.contains("a call to 'shout' function"), "{e}");
    let e = start_error(|ssc| {
        sql(ssc, "SELECT 1").stream().print();
    });
    assert!(e.contains("at least one stream"), "{e}");
    let e = start_error(|ssc| {
        let s = ssc.queue_stream(vec![vec![("a".to_string(), 1i64)]], true);
        sql(ssc, "SELECT * FROM t").with_view("t", s.to_rows(["only_one"])).stream().print();
    });
    assert!(e.contains("1 column names (only_one) for a record of 2 columns"), "{e}");
    let e = start_error(|ssc| {
        let a = ssc.queue_stream(batches::<Click>("clicks"), true);
        sql(ssc, "SELECT * FROM a JOIN b USING (user)")
            .with_view("a", a.to_rows_serde())
            .with_view("b", a.window(Duration::from_secs(2), Duration::from_secs(2)).to_rows_serde())
            .stream()
            .print();
    });
    assert!(e.contains("must have the same slide"), "{e}");
}

/// A record that does not fit its table's schema is skipped and counted; the rest of its batch
/// is queried.
#[test]
fn records_that_do_not_fit_the_schema_are_counted_and_skipped() {
    #[derive(Clone, Serialize, Deserialize)]
    struct Reading {
        sensor: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<i64>,
        #[serde(skip_serializing_if = "String::is_empty")]
        unit: String,
    }
    let r = |s: &str, v: Option<i64>, u: &str| Reading { sensor: s.into(), value: v, unit: u.into() };
    let ssc = ember::testing::manual_context("local[2]");
    let readings = ssc.queue_stream(
        vec![vec![r("a", Some(1), "C"), r("b", None, "C"), r("c", Some(3), ""), r("a", Some(5), "C")]],
        true,
    );
    let rows = readings.to_rows_serde();
    let got =
        sorted_outputs(&ssc, "SELECT sensor, SUM(value) AS total FROM readings GROUP BY sensor", "readings", &rows, 1);
    assert_eq!(rows.skipped(), 1, "the record without a unit is skipped");
    assert_eq!(got[0], ["[a,6]", "[b,null]"]);
}

/// Runs `q` over `rows` named `view` for `batches` batches: each batch's rows as text, sorted.
fn sorted_outputs(
    ssc: &StreamingContext,
    q: &str,
    view: &str,
    rows: &ember_sql::Rows,
    batches: u64,
) -> Vec<Vec<String>> {
    let out = sql(ssc, q).with_view(view, rows.clone()).stream().collect_batches();
    ssc.run_batches(batches).unwrap();
    ssc.stop(false).unwrap();
    out.batches()
        .into_iter()
        .map(|(_, b)| {
            let mut rows: Vec<String> = b.iter().map(|r| r.to_string()).collect();
            rows.sort();
            rows
        })
        .collect()
}

/// Static tables from CSV, Parquet and JSON-lines files and from a static dataset join a stream;
/// rows come back as typed records.
#[test]
fn static_tables_from_files_join_a_stream_and_rows_become_records() {
    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq, PartialOrd)]
    struct PageUsers {
        page: String,
        category: Option<String>,
        users: i64,
    }
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("pages.csv");
    std::fs::write(&csv, "page,category\nhome,main\ncart,buy\nshop,buy\nhelp,info\n").unwrap();
    let session = std::sync::Arc::new(ember_sql::SqlSession::new());
    let pq = dir.path().join("pages.parquet");
    let df = session.read_csv(&csv.display().to_string(), true).unwrap();
    let mut bytes = Vec::new();
    {
        let batches = df.collect_batches().unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, batches[0].schema(), None).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
    }
    std::fs::write(&pq, bytes).unwrap();
    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct Page {
        page: String,
        category: String,
    }
    let pages: Vec<Page> = df.collect_as().unwrap();
    assert_eq!(pages.len(), 4);
    let json = dir.path().join("pages.jsonl");
    let lines: Vec<String> = pages.iter().map(|p| serde_json::to_string(p).unwrap()).collect();
    std::fs::write(&json, lines.join("\n")).unwrap();
    let q = "SELECT c.page, p.category, COUNT(DISTINCT c.user) AS users FROM clicks c LEFT JOIN pages p ON c.page = p.page GROUP BY c.page, p.category";
    let mut results = Vec::new();
    for source in ["csv", "parquet", "json lines", "a dataset"] {
        let ssc = ember::testing::manual_context("local[2]");
        let clicks = ssc.queue_stream(batches::<Click>("clicks"), true);
        let skipped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let query = sql(&ssc, q).with_view("clicks", clicks.to_rows_serde());
        let query = match source {
            "csv" => query.with_table("pages", StaticTable::csv(&csv.display().to_string(), true).unwrap()),
            "parquet" => query.with_table("pages", StaticTable::parquet(&pq.display().to_string()).unwrap()),
            "json lines" => query.with_table("pages", StaticTable::json(&json.display().to_string()).unwrap()),
            // Spark's `sc.parallelize(pages).toDF()`: a static dataset as a view.
            _ => query.with_view("pages", ssc.dataset(pages.clone()).to_rows_serde()),
        };
        let out = ember_sql::FromRows::to_records::<PageUsers>(&query.stream(), std::sync::Arc::clone(&skipped))
            .collect_batches();
        ssc.run_batches(1).unwrap();
        ssc.stop(false).unwrap();
        let mut got = out.batches()[0].1.clone();
        got.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(skipped.load(std::sync::atomic::Ordering::Relaxed), 0);
        results.push(got);
    }
    // Spark's answer for the same query over batch 0 (join_static_left counts rows; this counts users).
    let want: Vec<String> = std::fs::read_to_string(golden().join("join_static_left.txt"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("0 "))
        .map(|l| l[2..].split(',').take(2).collect::<Vec<_>>().join(","))
        .collect();
    let got: Vec<String> =
        results[0].iter().map(|r| format!("[{},{}", r.page, r.category.clone().unwrap_or("null".into()))).collect();
    assert_eq!(got, want, "the same groups as Spark's");
    for (i, source) in ["parquet", "json lines", "a dataset"].iter().enumerate() {
        assert_eq!(results[0], results[i + 1], "{source} gives the CSV file's table");
    }
    assert!(results[0].iter().any(|r| r.category.is_none()), "a page without a category is kept by the left join");
}

#[test]
fn a_temporary_view_that_exists_is_refused_by_create_temp_view() {
    let session = std::sync::Arc::new(ember_sql::SqlSession::new());
    let df = session.create_data_frame(&[1i64, 2, 3], None).unwrap();
    df.create_temp_view("numbers").unwrap();
    let e = df.create_temp_view("numbers").unwrap_err().to_string();
    assert!(e.contains("`numbers` already exists"), "{e}");
    df.create_or_replace_temp_view("numbers").unwrap();
    assert_eq!(session.sql("SELECT SUM(value) AS s FROM numbers").unwrap().collect().unwrap()[0].get_i64("s"), Some(6));
}

/// Rows of the user's own making with a declared schema (Spark's `createDataFrame(rowRDD,
/// schema)`): values matched by name, a missing column null, rows that do not fit skipped.
#[test]
fn rows_with_a_declared_schema_are_a_table() {
    use ember_sql::datafusion::arrow::datatypes::{DataType, Field, Schema};
    use ember_sql::{Rows, Value};
    let names = |ns: &[&str]| -> std::sync::Arc<[String]> { ns.iter().map(|n| n.to_string()).collect() };
    let (wn, w) = (names(&["word", "n"]), names(&["word"]));
    let row = |ns: &std::sync::Arc<[String]>, vs: Vec<Value>| Row::new(std::sync::Arc::clone(ns), vs);
    let s = |x: &str| Value::Str(x.into());
    let batch = vec![
        row(&wn, vec![s("a"), Value::Int(1)]),
        row(&wn, vec![s("b"), s("x")]),             // a text where the schema has a number
        row(&w, vec![s("a")]),                      // no `n`: null
        row(&wn, vec![Value::Null, Value::Int(2)]), // a null word, which is not nullable
        row(&names(&["n", "word", "extra"]), vec![Value::Int(4), s("c"), Value::Bool(true)]),
    ];
    let ssc = ember::testing::manual_context("local[2]");
    let stream = ssc.queue_stream(vec![batch, vec![]], true);
    let schema = Schema::new(vec![Field::new("word", DataType::Utf8, false), Field::new("n", DataType::Int64, true)]);
    let rows = Rows::with_schema(&stream, std::sync::Arc::new(schema));
    let got = sorted_outputs(&ssc, "SELECT word, SUM(n) AS total, COUNT(*) AS c FROM t GROUP BY word", "t", &rows, 2);
    assert_eq!(got[0], ["[a,1,2]", "[c,4,1]"]);
    assert_eq!(rows.skipped(), 2, "the text in `n` and the null word are skipped");
    assert!(got[1].is_empty(), "an empty batch is an empty table");
}

/// JSON messages as a table of a declared schema (Spark's `spark.read.schema(s).json(rdd)`):
/// fields by name, a missing one null, an extra one ignored; a text that is not one object, or
/// whose value does not fit, skipped and counted; a batch of thousands of texts whole.
#[test]
fn json_texts_with_a_declared_schema_are_a_table() {
    use ember_sql::datafusion::arrow::datatypes::{DataType, Field, Schema};
    let texts: Vec<String> = [
        r#"{"user": "ann", "page": "home", "amount": 1.5}"#,
        r#"{"user": "bob", "page": "cart", "amount": "a lot"}"#,
        "not json",
        r#"{"user": "cid", "page": "home"}"#,
        r#"{"user": "dee", "page": "home", "amount": 2, "extra": [1, 2]}"#,
        "",
        r#"{"user": "eve", "page": "shop", "amount": 4.0"#,
        r#"{"user": "fay", "page": "shop", "amount": 0.5}"#,
        r#"{"user": "gus", "page": "help", "amount": 1} {"user": "hal", "page": "help", "amount": 1}"#,
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    let ssc = ember::testing::manual_context("local[2]");
    let bulk: Vec<String> = (0..3000).map(|i| format!(r#"{{"user": "u{i}", "page": "bulk", "amount": 1}}"#)).collect();
    let stream = ssc.queue_stream(vec![texts, vec![], bulk], true);
    let schema = Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("page", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]);
    let clicks = ember_sql::Rows::from_json(&stream, std::sync::Arc::new(schema));
    let q = "SELECT page, COUNT(*) AS n, SUM(amount) AS total FROM clicks GROUP BY page";
    let got = sorted_outputs(&ssc, q, "clicks", &clicks, 3);
    assert_eq!(got[0], ["[home,3,3.5]", "[shop,1,0.5]"]);
    assert_eq!(
        clicks.skipped(),
        4,
        "a text amount, a text that is not JSON, a cut-off object and two objects in one text"
    );
    assert!(got[1].is_empty());
    assert_eq!(got[2], ["[bulk,3000,3000.0]"], "a batch of more texts than the decoder's default batch");
}
