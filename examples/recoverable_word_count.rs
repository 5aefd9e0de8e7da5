//! A word count that survives crashes, like Spark's `RecoverableNetworkWordCount`, on a
//! directory of text files: running totals per word (`update_state_by_key`) and counts over a
//! 4-batch window, both saved as text files every batch, with checkpoints.
//!
//! `recoverable_word_count <input dir> <output dir> <checkpoint dir>` runs on 1 s batches until
//! Ctrl-C. Kill it at any moment and start it again with the same arguments: it recovers from the
//! checkpoint and re-runs the batches after it, overwriting their output.
//!
//! For tests: `--manual-clock <start ms> --batches N` runs on the manual clock, batch after batch,
//! until batch N after the start, then stops.

mod common;

use std::path::Path;

use ember::prelude::*;

fn build(input: &str, output: &str, checkpoint: &str, manual_start: Option<u64>) -> ember::Result<StreamingContext> {
    let mut conf = Conf::new().master("local[2]").app_name("RecoverableWordCount");
    if let Some(start) = manual_start {
        conf = conf.manual_clock(true).set("clock.manual.start", start.to_string());
    }
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    ssc.checkpoint(checkpoint);
    let words = ssc
        .text_file_stream(input)
        .flat_map(|line: String| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .map(|w| (w, 1u64));
    let totals = words
        .update_state_by_key(|new: Vec<u64>, total: Option<u64>| Some(total.unwrap_or(0) + new.iter().sum::<u64>()))
        .checkpoint(Duration::from_secs(2));
    totals.save_as_text_files(format!("{output}/totals"), "");
    words
        .reduce_by_key_and_window_inverse_filtered(
            |a, b| a + b,
            |a, b| a - b,
            |_w, n| *n > 0,
            Duration::from_secs(4),
            Duration::from_secs(1),
        )
        .save_as_text_files(format!("{output}/windowed"), "");
    Ok(ssc)
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let opts = common::Opts::take(&mut args)?;
    let [input, output, checkpoint] = args.as_slice() else {
        anyhow::bail!("usage: recoverable_word_count <input dir> <output dir> <checkpoint dir> [--manual-clock START --batches N]")
    };
    let ssc =
        StreamingContext::get_or_create(Path::new(checkpoint), || build(input, output, checkpoint, opts.manual_start))?;
    opts.run(&ssc)
}
