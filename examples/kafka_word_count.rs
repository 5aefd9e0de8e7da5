//! Exactly-once word totals from Kafka with idempotent output (Spark's "checkpoints" recipe):
//! a direct stream, running totals per word (`update_state_by_key`) saved as text files every
//! batch, and checkpoints. Kill it at any point and start it again with the same arguments: it
//! recovers from the checkpoint, re-reads the offset ranges logged for the batches after it, and
//! rewrites their output with the same contents.
//!
//! `kafka_word_count <brokers> <topic> <output dir> <checkpoint dir> [--max-rate R] [--windowed]`
//! runs on 1 s batches until Ctrl-C; `--max-rate` limits each partition to R records/s;
//! `--windowed` also saves word counts over a 4 s window sliding by 2 s.
//! For tests: `--manual-clock <start ms> --batches N` runs on the manual clock until batch N
//! (`--graceful`: then stops gracefully, checkpointing its last batch, so that it can restart
//! with another number of processes).
//!
//! It runs as `local[2]`, or as one process of a cluster when `EMBER_CLUSTER_*` say so, as
//! `ember-launch` does (the README's "Running on a cluster"):
//!
//! ```sh
//! ember-launch --processes 3 --workers 2 -- ./target/release/examples/kafka_word_count \
//!     127.0.0.1:9092 words /tmp/out /tmp/checkpoint --windowed
//! ```

mod common;

use std::path::Path;

use ember::prelude::*;
use ember_kafka::{ConsumerStrategy, KafkaParams, RateLimits};

fn build(
    brokers: &str,
    topic: &str,
    output: &str,
    checkpoint: &str,
    opts: &common::Opts,
) -> ember::Result<StreamingContext> {
    let ssc = common::exactly_once_context("KafkaWordCount", checkpoint, opts)?;
    let kafka = ember_kafka::create_direct_stream_with_limits(
        &ssc,
        ConsumerStrategy::subscribe([topic]),
        KafkaParams::new(brokers).group_id("kafka-word-count"),
        RateLimits::max_per_partition(opts.max_rate),
    );
    let lines = kafka.values_utf8();
    common::save_word_totals(&lines, output);
    if opts.windowed {
        common::save_windowed_counts(&lines, output);
    }
    Ok(ssc)
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let opts = common::Opts::take(&mut args)?;
    let [brokers, topic, output, checkpoint] = args.as_slice() else {
        anyhow::bail!("usage: kafka_word_count <brokers> <topic> <output dir> <checkpoint dir> [--max-rate R] [--windowed] [--manual-clock START --batches N [--graceful]]")
    };
    let ssc =
        StreamingContext::get_or_create(Path::new(checkpoint), || build(brokers, topic, output, checkpoint, &opts))?;
    opts.run(&ssc)
}
