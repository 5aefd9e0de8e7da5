//! Exactly-once word totals from Kinesis with idempotent output: a direct Kinesis stream,
//! running totals per word (`update_state_by_key`) saved as text files every batch, and
//! checkpoints. Kill it at any point and start it again with the same arguments: it recovers from
//! the checkpoint, re-reads the sequence-number ranges logged for the batches after it, and
//! rewrites their output with the same contents.
//!
//! `kinesis_word_count <endpoint> <stream> <output dir> <checkpoint dir> [--max-rate R]` runs on
//! 1 s batches until Ctrl-C; `--max-rate` limits each shard to R records/s. Credentials come from
//! `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (any values for an emulator); the region from
//! `AWS_REGION` (default `us-east-1`).
//! For tests: `--manual-clock <start ms> --batches N` runs on the manual clock until batch N
//! (`--graceful`: then stops gracefully, so that it can restart with another number of processes).

mod common;

use std::path::Path;

use ember::prelude::*;
use ember_kinesis::{InitialPosition, KinesisSpec};

fn build(
    endpoint: &str,
    stream: &str,
    output: &str,
    checkpoint: &str,
    opts: &common::Opts,
) -> ember::Result<StreamingContext> {
    let ssc = common::exactly_once_context("KinesisWordCount", checkpoint, opts)?;
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
    let kinesis = ember_kinesis::create_stream(
        &ssc,
        KinesisSpec::new(stream, region)
            .endpoint_url(endpoint)
            .initial_position(InitialPosition::TrimHorizon)
            .max_rate_per_shard(opts.max_rate),
    );
    common::save_word_totals(&kinesis.data_utf8(), output);
    Ok(ssc)
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let opts = common::Opts::take(&mut args)?;
    let [endpoint, stream, output, checkpoint] = args.as_slice() else {
        anyhow::bail!("usage: kinesis_word_count <endpoint> <stream> <output dir> <checkpoint dir> [--max-rate R] [--manual-clock START --batches N]")
    };
    let ssc =
        StreamingContext::get_or_create(Path::new(checkpoint), || build(endpoint, stream, output, checkpoint, &opts))?;
    opts.run(&ssc)
}
