//! Parquet and JSON-lines outputs: one directory per batch with a file per worker and
//! `_SUCCESS`, the batch's rows in it (an empty batch's files carry the schema), a re-run batch's
//! directory replaced whole, on local disk and on S3 (moto); Spark's `df.write` with its save
//! modes, and an appended batch written again replacing its own file.

use std::time::Duration;

use ember::format::FileFormat;
use ember::prelude::*;
use ember::testing::Service;
use ember_sql::{ForeachRddDf, Parquet, SaveAsTable, SaveMode, SqlSession, ToRows};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, PartialOrd)]
struct Reading {
    sensor: String,
    value: f64,
    tags: Vec<String>,
    note: Option<String>,
}

fn readings() -> Vec<Vec<Reading>> {
    let r = |b: usize, i: usize| Reading {
        sensor: format!("s{}", i % 4),
        value: (b * 100 + i) as f64 / 4.0,
        tags: (0..i % 3).map(|k| format!("t{k}")).collect(),
        note: i.is_multiple_of(2).then(|| format!("n{i}")),
    };
    vec![(0..9).map(|i| r(0, i)).collect(), Vec::new(), (0..5).map(|i| r(2, i)).collect()]
}

fn sorted(mut v: Vec<Reading>) -> Vec<Reading> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

/// The settings of moto's S3 at `endpoint`.
fn s3_conf(endpoint: &str) -> Conf {
    Conf::new()
        .set("fs.s3.endpoint", endpoint)
        .set("fs.s3.region", "us-east-1")
        .set("fs.s3.access_key_id", "ember-test")
        .set("fs.s3.secret_access_key", "ember-test-secret")
}

fn context(master: &str) -> StreamingContext {
    StreamingContext::new(Conf::new().master(master).manual_clock(true), Duration::from_secs(1)).unwrap()
}

#[test]
fn parquet_and_json_directories_hold_each_batch() {
    let dir = tempfile::tempdir().unwrap();
    // A directory of batch 1 left by an earlier run, with a part no worker writes now.
    let stale = dir.path().join("pq").join("readings-1000.parquet");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("part-00007.parquet"), b"stale").unwrap();
    let ssc = context("local[3]");
    let stream = ssc.queue_stream(readings(), true);
    stream.save_as_parquet_files(dir.path().join("pq").join("readings").display().to_string());
    stream
        .to_rows(["sensor", "value", "tags", "note"])
        .save_as_json_files(dir.path().join("js").join("readings").display().to_string());
    ssc.run_batches(3).unwrap();
    ssc.stop(false).unwrap();
    let session = std::sync::Arc::new(SqlSession::new());
    for (b, want) in readings().into_iter().enumerate() {
        let out = dir.path().join("pq").join(format!("readings-{}.parquet", (b + 1) * 1000));
        let mut names: Vec<String> =
            std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        assert_eq!(names, ["_SUCCESS", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"], "batch {b}");
        let df = session.read_parquet(&out.display().to_string()).unwrap();
        assert_eq!(df.columns(), ["sensor", "value", "tags", "note"], "batch {b}: the schema, even with no rows");
        assert_eq!(sorted(df.collect_as::<Reading>().unwrap()), sorted(want.clone()), "batch {b}");
        let json = dir.path().join("js").join(format!("readings-{}.json", (b + 1) * 1000));
        let mut lines = Vec::new();
        for e in std::fs::read_dir(&json).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                lines.extend(std::fs::read_to_string(p).unwrap().lines().map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    // Spark leaves out null columns, as Arrow's writer does.
                    v.as_object_mut().unwrap().entry("note").or_insert(serde_json::Value::Null);
                    serde_json::from_value::<Reading>(v).unwrap()
                }));
            }
        }
        assert_eq!(sorted(lines), sorted(want), "batch {b}: JSON lines");
    }
}

/// The names in a directory, sorted.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    names.sort();
    names
}

/// `df.write()` with each of Spark's save modes, in Parquet and JSON lines.
#[test]
fn data_frame_writes_follow_sparks_save_modes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("readings");
    let path = out.display().to_string();
    let session = std::sync::Arc::new(SqlSession::new());
    let (first, second) = (readings().swap_remove(0), readings().swap_remove(2));
    let df1 = session.create_data_frame(&first, None).unwrap();
    let df2 = session.create_data_frame(&second, None).unwrap();
    // One session throughout: it sees every write, as Spark's `read.parquet` does.
    let read = |p: &str| sorted(session.read_parquet(p).unwrap().collect_as::<Reading>().unwrap());

    df1.write().parquet(&path).unwrap();
    assert_eq!(read(&path), sorted(first.clone()));
    let e = df2.write().parquet(&path).unwrap_err().to_string();
    assert!(e.contains(&path) && e.contains("exists"), "the default mode refuses an existing directory: {e}");
    df2.write().mode(SaveMode::Ignore).parquet(&path).unwrap();
    assert_eq!(read(&path), sorted(first.clone()), "ignore leaves the directory as it was");
    df2.write().mode(SaveMode::Append).parquet(&path).unwrap();
    assert_eq!(read(&path), sorted(first.iter().chain(&second).cloned().collect()), "append adds");
    assert_eq!(names_in(&out).len(), 3, "two part files and _SUCCESS: {:?}", names_in(&out));
    df2.write().mode("overwrite".parse().unwrap()).parquet(&path).unwrap();
    assert_eq!(read(&path), sorted(second.clone()), "overwrite replaces");
    assert_eq!(names_in(&out).len(), 2, "{:?}", names_in(&out));
    assert_eq!(names_in(dir.path()), ["readings"], "nothing is left beside the directory");

    let json = dir.path().join("json");
    df1.write().json(&json.display().to_string()).unwrap();
    let back = session.read_json(&json.display().to_string()).unwrap().order_by(&["value"]).unwrap();
    assert_eq!(back.count().unwrap(), first.len());
    assert!(names_in(&json).iter().any(|n| n.ends_with(".json")) && names_in(&json).contains(&"_SUCCESS".into()));

    let e = "sometimes".parse::<SaveMode>().unwrap_err().to_string();
    assert!(e.contains("unknown save mode `sometimes`"), "{e}");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let e = df1.write().parquet(&file.join("under").display().to_string()).unwrap_err().to_string();
    assert!(e.contains("cannot write") && e.contains("a-file"), "a path under a file is a clear error: {e}");
}

/// The per-batch pattern appending every batch: run again (as batches re-run after a recovery),
/// each batch replaces its own file and no row is written twice.
#[test]
fn an_appended_batch_written_again_replaces_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all");
    for _run in 0..2 {
        let ssc = context("local[2]");
        let path = out.display().to_string();
        ssc.queue_stream(readings(), true)
            .foreach_rdd_df(move |df, time| df.write().mode(SaveMode::Append).for_batch(time).parquet(&path));
        ssc.run_batches(3).unwrap();
        ssc.stop(false).unwrap();
    }
    assert_eq!(
        names_in(&out),
        ["_SUCCESS", "part-1000.parquet", "part-2000.parquet", "part-3000.parquet"],
        "one file per batch"
    );
    let session = std::sync::Arc::new(SqlSession::new());
    let got = session.read_parquet(&out.display().to_string()).unwrap().collect_as::<Reading>().unwrap();
    assert_eq!(sorted(got), sorted(readings().concat()), "every row once");
}

/// `df.write()` to a store that went away fails with an error naming the path; once the store is
/// back, the next write goes in.
#[test]
fn a_data_frame_write_fails_clearly_while_the_store_is_away_and_works_when_it_is_back() {
    ember_store::register();
    let moto = Service::moto(None);
    let port = moto.port;
    assert_eq!(moto.http("PUT", "/bucket"), 200, "creating the bucket");
    let conf = s3_conf(&moto.endpoint).set("fs.retry_timeout", "1s");
    let session = std::sync::Arc::new(SqlSession::with_conf(conf.clone()));
    let df = session.create_data_frame(&readings()[0], None).unwrap();
    let write =
        |ms: u64| df.write().mode(SaveMode::Append).for_batch(Time::from_millis(ms)).parquet("s3://bucket/w/readings");
    write(1000).unwrap();
    drop(moto);
    let e = write(2000).unwrap_err().to_string();
    assert!(e.contains("cannot write s3://bucket/w/readings"), "the error names the path: {e}");
    let moto = Service::moto_on(port, None);
    assert_eq!(moto.http("PUT", "/bucket"), 200, "creating the bucket again");
    write(2000).unwrap();
    let storage = ember::storage::open("s3://bucket/w", &conf, false).unwrap();
    let names = storage.names("readings").unwrap();
    assert_eq!(names, ["readings/_SUCCESS", "readings/part-2000.parquet"], "the write after the store came back");
}

/// A query's rows go to PostgreSQL as they are (a row is an object of its columns to serde):
/// Spark's `df.write.jdbc` in the per-batch pattern becomes a sink on the query's stream.
#[test]
fn a_querys_rows_go_to_postgresql_as_they_are() {
    use ember_postgres::{Mode, SaveToPostgres};
    let conn = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";
    let mut db = postgres::Client::connect(conn, postgres::NoTls).unwrap_or_else(|e| {
        panic!("cannot reach PostgreSQL at `{conn}`: {e}; run `scripts/test.sh`, which starts it on 127.0.0.1:5432")
    });
    db.batch_execute(
        "DROP TABLE IF EXISTS ember_sql_totals; \
         CREATE TABLE ember_sql_totals (sensor TEXT PRIMARY KEY, total DOUBLE PRECISION, n BIGINT)",
    )
    .unwrap();
    let ssc = context("local[2]");
    let stream = ssc.queue_stream(readings(), true);
    ember_sql::sql(&ssc, "SELECT sensor, SUM(value) AS total, COUNT(*) AS n FROM r GROUP BY sensor")
        .with_view("r", stream.to_rows_serde())
        .stream()
        .save_to_postgres(conn, "ember_sql_totals", Mode::upsert(&["sensor"]));
    ssc.run_batches(3).unwrap();
    ssc.stop(false).unwrap();
    let got: Vec<(String, f64, i64)> = db
        .query("SELECT sensor, total, n FROM ember_sql_totals ORDER BY sensor", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    // Every sensor is in the last batch: its upserted row is that batch's.
    let mut want: std::collections::BTreeMap<String, (f64, i64)> = Default::default();
    for r in readings().swap_remove(2) {
        let e = want.entry(r.sensor).or_default();
        *e = (e.0 + r.value, e.1 + 1);
    }
    let want: Vec<(String, f64, i64)> = want.into_iter().map(|(s, (t, n))| (s, t, n)).collect();
    assert_eq!(got, want);
}

#[test]
fn the_parquet_format_reads_back_what_it_wrote_and_refuses_a_damaged_file() {
    let format = Parquet::<Reading>::new();
    let rows = readings().swap_remove(0);
    let mut bytes = Vec::new();
    format.encode(&rows, &mut bytes).unwrap();
    let mut back = Vec::new();
    format.decode_file(&bytes, &mut back).unwrap();
    assert_eq!(back, rows);
    let e = format.decode_file(&bytes[..bytes.len() / 2], &mut Vec::new()).unwrap_err();
    assert!(e.contains("Parquet"), "{e}");
    assert_eq!(FileFormat::<Reading>::extension(&format), "parquet");
}

#[test]
fn a_record_type_without_a_table_schema_is_a_declaration_error() {
    #[derive(Clone, Serialize, Deserialize)]
    struct Loose {
        any: serde_json::Value,
    }
    let ssc = context("local[1]");
    ssc.queue_stream(vec![vec![Loose { any: serde_json::Value::Null }]], true).save_as_parquet_files("/tmp/never");
    let e = ssc.start().unwrap_err().to_string();
    assert!(e.contains("invalid declaration of `sql`") && e.contains("schema cannot be traced"), "{e}");
}

/// On S3 the same directories appear, `_SUCCESS` written last.
#[test]
fn parquet_outputs_go_to_s3() {
    let moto = Service::moto(None);
    assert_eq!(moto.http("PUT", "/bucket"), 200, "creating the bucket");
    ember_store::register();
    let conf = s3_conf(&moto.endpoint);
    let ssc =
        StreamingContext::new(conf.clone().master("local[2]").manual_clock(true), Duration::from_secs(1)).unwrap();
    ssc.queue_stream(readings(), true).save_as_parquet_files("s3://bucket/out/readings");
    ssc.run_batches(3).unwrap();
    // Spark's `df.write` to S3, with the context's settings; an overwrite replaces the objects.
    let session = SqlSession::get_or_create(&ssc);
    for rows in [readings().swap_remove(2), readings().swap_remove(0)] {
        let df = session.create_data_frame(&rows, None).unwrap();
        df.write().mode(SaveMode::Overwrite).parquet("s3://bucket/out/written").unwrap();
    }
    ssc.stop(false).unwrap();
    let storage = ember::storage::open("s3://bucket/out", &conf, false).unwrap();
    let names = storage.names("written").unwrap();
    assert_eq!(names.len(), 2, "one part and _SUCCESS: {names:?}");
    let part = names.iter().find(|n| n.ends_with(".parquet")).unwrap();
    let mut got = Vec::new();
    Parquet::<Reading>::new().decode_file(&storage.get(part).unwrap().unwrap(), &mut got).unwrap();
    assert_eq!(sorted(got), sorted(readings().swap_remove(0)), "the second write replaced the first");
    for (b, want) in readings().into_iter().enumerate() {
        let dir = format!("readings-{}.parquet", (b + 1) * 1000);
        let names: Vec<String> = storage.names(&dir).unwrap();
        assert!(names.iter().any(|n| n.ends_with("/_SUCCESS")), "{names:?}");
        let mut got = Vec::new();
        for n in names.iter().filter(|n| n.ends_with(".parquet")) {
            let bytes = storage.get(n).unwrap().unwrap();
            Parquet::<Reading>::new().decode_file(&bytes, &mut got).unwrap();
        }
        assert_eq!(sorted(got), sorted(want), "batch {b}");
    }
}
