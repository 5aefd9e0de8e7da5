//! Word counts of the new text files in `<input dir>`, written to PostgreSQL every batch: each
//! batch's counts exactly once into `word_counts (batch_time, word, n)` (with the batch's marker,
//! in one transaction per worker) and the running totals upserted into `word_totals (word, n)`,
//! with checkpoints. The tables are created if missing.
//!
//! `postgres_word_count <input dir> <postgres conn> <checkpoint dir>` runs on 1 s batches until
//! Ctrl-C (the connection as `host=127.0.0.1 user=postgres`). Kill it at any moment and start it
//! again: the batches re-run after the checkpoint write nothing twice.
//!
//! For tests: `--manual-clock <start ms> --batches N` runs on the manual clock until batch N
//! after the start, then stops.

mod common;

use ember::prelude::*;
use ember_postgres::{Mode, SaveToPostgres};

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let opts = common::Opts::take(&mut args)?;
    let [input, db, checkpoint] = args.as_slice() else {
        anyhow::bail!("usage: postgres_word_count <input dir> <postgres conn> <checkpoint dir> [--manual-clock START --batches N]")
    };
    postgres::Client::connect(db, postgres::NoTls)?.batch_execute(
        "CREATE TABLE IF NOT EXISTS word_counts (batch_time bigint NOT NULL, word text NOT NULL, n bigint NOT NULL);
         CREATE TABLE IF NOT EXISTS word_totals (word text PRIMARY KEY, n bigint NOT NULL);",
    )?;
    let ssc = StreamingContext::get_or_create(checkpoint, || {
        let ssc = common::exactly_once_context("PostgresWordCount", checkpoint, &opts)?;
        let counts = ssc
            .text_file_stream(input)
            .flat_map(|line: String| line.split_whitespace().map(|w| (w.to_owned(), 1i64)).collect::<Vec<_>>())
            .reduce_by_key(|a, b| a + b);
        counts
            .map_partitions_with_time(|t, part: Vec<(String, i64)>| {
                part.into_iter().map(move |(w, n)| (t.millis() as i64, w, n)).collect::<Vec<_>>()
            })
            .save_to_postgres(db, "word_counts", Mode::transactional("postgres_word_count"));
        counts
            .update_state_by_key(|new: Vec<i64>, total: Option<i64>| Some(total.unwrap_or(0) + new.iter().sum::<i64>()))
            .save_to_postgres(db, "word_totals", Mode::upsert(&["word"]));
        Ok(ssc)
    })?;
    opts.run(&ssc)
}
