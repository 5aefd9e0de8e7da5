//! The two exactly-once recipes, as shipped in the examples, killed with SIGKILL at random points
//! and restarted: the result equals an uninterrupted run.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

const START: u64 = 1_700_000_000_000;
const WORDS: [&str; 8] = ["ember", "spark", "stream", "batch", "window", "state", "kafka", "timely"];

/// A run of example `name` with `args`, 7 records/s per partition, on the manual clock for
/// `batches` batches, quiet.
fn example_run(name: &str, args: &[&std::ffi::OsStr], batches: u64) -> Command {
    let mut cmd = Command::new(ember::testing::example_binary(name));
    cmd.args(args)
        .args(["--max-rate", "7", "--manual-clock", &START.to_string(), "--batches", &batches.to_string()])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// A topic of 3 partitions holding `lines` lines of words; returns the expected word counts.
fn fill_topic(servers: &str, topic: &str, lines: usize) -> BTreeMap<String, u64> {
    common::create_topic(servers, topic, 3);
    let (lines, want) = ember::testing::random_word_lines(lines, &WORDS);
    let records: Vec<(i32, Vec<u8>)> =
        lines.into_iter().enumerate().map(|(i, l)| ((i % 3) as i32, l.into_bytes())).collect();
    common::produce(&common::producer(servers), topic, &records);
    want
}

#[test]
fn idempotent_output_survives_kill_9_at_random_points() {
    const BATCHES: u64 = 40;
    let servers = common::broker();
    let topic = common::topic("eo-files");
    let want = fill_topic(servers, &topic, 600);
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &std::path::Path, ck: &std::path::Path| {
        example_run("kafka_word_count", &[servers.as_ref(), topic.as_ref(), out.as_os_str(), ck.as_os_str()], BATCHES)
    };
    // 600 lines at 7 per partition and batch: the last totals hold every word.
    ember::testing::check_word_totals_survive_kills(dir.path(), run, BATCHES, &want);
}

fn db_url() -> String {
    std::env::var("EMBER_POSTGRES").unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned())
}

fn database(name: &str) -> String {
    let url = db_url();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| {
        panic!("no PostgreSQL at `{url}`: {e}; start one with `scripts/test.sh` (or set EMBER_POSTGRES)")
    });
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    format!("{url} dbname={name}")
}

fn table(url: &str) -> BTreeMap<String, u64> {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let rows = c.query("SELECT word, n FROM word_counts", &[]).unwrap();
    rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect()
}

#[test]
fn transactional_output_survives_kill_9_at_random_points() {
    const BATCHES: u64 = 40;
    let servers = common::broker();
    let topic = common::topic("eo-db");
    let want = fill_topic(servers, &topic, 600);
    let run =
        |url: &str| example_run("kafka_transactional", &[servers.as_ref(), topic.as_ref(), url.as_ref()], BATCHES);
    let straight_db = database(&format!("ember_eo_a_{}", std::process::id()));
    assert!(run(&straight_db).status().unwrap().success(), "the uninterrupted run failed");
    assert_eq!(table(&straight_db), want, "the uninterrupted run counted every record once");

    let killed_db = database(&format!("ember_eo_b_{}", std::process::id()));
    // Progress: the records whose offsets the job committed with its counts.
    let mut db = postgres::Client::connect(&killed_db, postgres::NoTls).unwrap();
    let consumed = move || {
        db.query_one("SELECT COALESCE(SUM(until_offset), 0)::bigint FROM kafka_offsets", &[])
            .map_or(0, |r| r.get::<_, i64>(0) as u64)
    };
    let kills = ember::testing::kill_and_restart(|| run(&killed_db), 12, consumed, 600);
    assert!(kills >= 8, "only {kills} kills landed");
    assert_eq!(table(&killed_db), want, "the table after {kills} kills equals the uninterrupted run's");
}
