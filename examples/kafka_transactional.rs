//! Exactly-once word counts from Kafka with transactional output (Spark's "own store" recipe):
//! each batch's counts and its offset ranges are written to PostgreSQL in one transaction, and
//! the job starts from the offsets stored there (`assign` with offsets), so no checkpoint is
//! needed. A batch whose ranges do not start where the table says is refused, so nothing is
//! counted twice or skipped, whenever the job is killed.
//!
//! `kafka_transactional <brokers> <topic> <postgres url> [--max-rate R]` runs on 1 s batches
//! until Ctrl-C (the URL as `host=127.0.0.1 user=postgres`).
//! For tests: `--manual-clock <start ms> --batches N` runs on the manual clock for N batches.

mod common;

use ember::prelude::*;
use ember_kafka::{ConsumerStrategy, KafkaParams, RateLimits, TopicPartition};

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let opts = common::Opts::take(&mut args)?;
    let [brokers, topic, url] = args.as_slice() else {
        anyhow::bail!("usage: kafka_transactional <brokers> <topic> <postgres url> [--max-rate R] [--manual-clock START --batches N]")
    };
    let mut db = postgres::Client::connect(url, postgres::NoTls)?;
    db.batch_execute(
        "CREATE TABLE IF NOT EXISTS word_counts (word text PRIMARY KEY, n bigint NOT NULL);
         CREATE TABLE IF NOT EXISTS kafka_offsets (topic text, part int, until_offset bigint NOT NULL, PRIMARY KEY (topic, part));",
    )?;
    // The first run stores offset 0 for every partition; later runs start where the table says.
    for p in ember_kafka::partitions_of(brokers, topic)? {
        db.execute("INSERT INTO kafka_offsets VALUES ($1, $2, 0) ON CONFLICT DO NOTHING", &[&p.topic, &p.partition])?;
    }
    let stored: Vec<(TopicPartition, i64)> = db
        .query("SELECT topic, part, until_offset FROM kafka_offsets WHERE topic = $1", &[topic])?
        .iter()
        .map(|r| (TopicPartition::new(r.get::<_, String>(0), r.get(1)), r.get(2)))
        .collect();

    let mut conf = Conf::new().master("local[2]").app_name("KafkaTransactional");
    if let Some(start) = opts.manual_start {
        conf = conf.manual_clock(true).set("clock.manual.start", start.to_string());
    }
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    let kafka = ember_kafka::create_direct_stream_with_limits(
        &ssc,
        ConsumerStrategy::assign_at(stored),
        KafkaParams::new(brokers.as_str()),
        RateLimits::max_per_partition(opts.max_rate),
    );
    let ranges = kafka.offset_ranges();
    kafka
        .values_utf8()
        .flat_map(|line: String| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .map(|w| (w, 1i64))
        .reduce_by_key(|a, b| a + b)
        .foreach_batch(move |t, counts: Vec<(String, i64)>| -> anyhow::Result<()> {
            let mut tx = db.transaction()?;
            for r in ranges.get(t) {
                let moved = tx.execute(
                    "UPDATE kafka_offsets SET until_offset = $1 WHERE topic = $2 AND part = $3 AND until_offset = $4",
                    &[&r.until_offset, &r.topic, &r.partition, &r.from_offset],
                )?;
                anyhow::ensure!(moved == 1, "batch {t}: {r:?} does not start where the stored offsets end");
            }
            for (word, n) in &counts {
                tx.execute(
                    "INSERT INTO word_counts VALUES ($1, $2) ON CONFLICT (word) DO UPDATE SET n = word_counts.n + EXCLUDED.n",
                    &[word, n],
                )?;
            }
            tx.commit()?;
            Ok(())
        });
    opts.run(&ssc)
}
