//! The PostgreSQL and Redis sinks fed by Kafka, killed with SIGKILL at 20 random points and
//! restarted from the checkpoint: each input record is counted exactly once in both databases.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use ember::StreamingContext;
use ember_kafka::{ConsumerStrategy, KafkaParams, RateLimits};
use ember_postgres::{Mode, SaveToPostgres};
use ember_redis::{RedisMode, SaveToRedis};

const START: u64 = 1_700_000_000_000;
const BATCHES: u64 = 40;
const REDIS: &str = "redis://127.0.0.1:6379/";
const WORDS: [&str; 6] = ["ember", "spark", "stream", "batch", "kafka", "timely"];

fn postgres_url(db: Option<&str>) -> String {
    let base = std::env::var("EMBER_POSTGRES").unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".to_owned());
    db.map_or(base.clone(), |d| format!("{base} dbname={d}"))
}

/// The job: words of the topic counted per batch, each batch's counts written to PostgreSQL in
/// transactions with their markers and added to a Redis hash, both exactly once.
fn build(topic: &str, name: &str, ck: &Path, master: &str) -> ember::Result<StreamingContext> {
    let ssc = ember::testing::kill_test_context(master, START, ck)?;
    let counts = ember_kafka::create_direct_stream_with_limits(
        &ssc,
        ConsumerStrategy::subscribe([topic]),
        KafkaParams::new(common::BROKER).group_id(name),
        RateLimits::max_per_partition(7.0),
    )
    .values_utf8()
    .flat_map(|l: String| l.split_whitespace().map(|w| (w.to_owned(), 1i64)).collect::<Vec<_>>())
    .reduce_by_key(|a, b| a + b);
    counts
        .map_partitions_with_time(|t, part: Vec<(String, i64)>| {
            part.into_iter().map(move |(w, n)| (t.millis() as i64, w, n)).collect::<Vec<_>>()
        })
        .save_to_postgres(&postgres_url(Some(name)), "counts", Mode::transactional(name));
    counts.save_to_redis(REDIS, RedisMode::hash_increment(name));
    Ok(ssc)
}

#[test]
#[ignore = "run as a child process by the tests below"]
fn sinks_kill_child() {
    // The topic is KILL_IN; the database, the Redis hash and the sinks are named after KILL_OUT.
    ember::testing::run_kill_child(START + BATCHES * 1000, |topic, name, ck, master| {
        build(&topic.display().to_string(), &name.display().to_string(), ck, master)
    });
}

fn killed_job_counts_every_record_once(master: &str) {
    let servers = common::broker();
    let topic = common::topic("sinks");
    common::create_topic(servers, &topic, 3);
    let (lines, want) = ember::testing::random_word_lines(600, &WORDS);
    let records: Vec<(i32, Vec<u8>)> =
        lines.into_iter().enumerate().map(|(i, l)| ((i % 3) as i32, l.into_bytes())).collect();
    common::produce(&common::producer(servers), &topic, &records);
    // A database and a hash of this run's own.
    let name = format!("ember_sinks_{}_{}", master.replace(['[', ']'], ""), std::process::id());
    let mut admin = postgres::Client::connect(&postgres_url(None), postgres::NoTls)
        .unwrap_or_else(|e| panic!("no PostgreSQL on 127.0.0.1:5432: {e}; start it with `scripts/test.sh`"));
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let mut db = postgres::Client::connect(&postgres_url(Some(&name)), postgres::NoTls).unwrap();
    db.batch_execute("CREATE TABLE counts (batch bigint NOT NULL, word text NOT NULL, n bigint NOT NULL)").unwrap();
    let mut r =
        redis::Client::open(REDIS).unwrap().get_connection().expect("Redis on 127.0.0.1:6379: run `scripts/test.sh`");
    let _: () = redis::cmd("DEL").arg(&name).query(&mut r).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("KILL_IN", topic.clone()),
        ("KILL_OUT", name.clone()),
        ("KILL_CK", dir.path().join("ck").display().to_string()),
        ("KILL_MASTER", master.to_owned()),
        ("RUST_LOG", "error".to_owned()),
    ];
    let batches = "SELECT count(DISTINCT batch) FROM counts";
    let kills = ember::testing::kill_and_restart(
        || {
            let mut c = ember::testing::child_command("sinks_kill_child", &env);
            c.stdout(std::process::Stdio::null());
            c
        },
        20,
        || db.query_one(batches, &[]).map(|row| row.get::<_, i64>(0) as u64).unwrap_or(0),
        BATCHES,
    );
    assert!(kills >= 14, "only {kills} kills landed");
    // 600 lines at 7 per partition and batch: all read by the last batch.
    let rows = db.query("SELECT word, sum(n)::bigint FROM counts GROUP BY word", &[]).unwrap();
    let in_postgres: BTreeMap<String, u64> = rows.iter().map(|row| (row.get(0), row.get::<_, i64>(1) as u64)).collect();
    assert_eq!(in_postgres, want, "{master}: PostgreSQL counted every record once after {kills} kills");
    let in_redis: BTreeMap<String, u64> = redis::cmd("HGETALL").arg(&name).query(&mut r).unwrap();
    assert_eq!(in_redis, want, "{master}: Redis counted every record once after {kills} kills");
    drop(db);
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"));
}

#[test]
fn kafka_fed_sinks_count_every_record_once_across_sigkills_local_1() {
    killed_job_counts_every_record_once("local[1]");
}

#[test]
fn kafka_fed_sinks_count_every_record_once_across_sigkills_local_3() {
    killed_job_counts_every_record_once("local[3]");
}
