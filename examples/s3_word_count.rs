//! A recoverable word count on an object store: running totals per word of the new objects under
//! `<input url>`, saved under `<output url>/totals-<ms>` every batch, with checkpoints at
//! `<checkpoint url>` (Spark's `HdfsWordCount` and `RecoverableNetworkWordCount` on S3).
//!
//! `s3_word_count <input url> <output url> <checkpoint url>` runs on 1 s batches until Ctrl-C;
//! the URLs are `s3://bucket/prefix` (or local paths). Credentials, region and endpoint come from
//! the AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` for an S3-compatible server). Kill it at any moment and start it again with
//! the same arguments: it recovers from the checkpoint on S3 and re-runs the batches after it.
//!
//! For tests: `--manual-clock <start ms> --batches N` runs on the manual clock until batch N
//! after the start, then stops.

mod common;

use ember::prelude::*;

fn main() -> anyhow::Result<()> {
    common::init_logging();
    ember_store::register();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let opts = common::Opts::take(&mut args)?;
    let [input, output, checkpoint] = args.as_slice() else {
        anyhow::bail!(
            "usage: s3_word_count <input url> <output url> <checkpoint url> [--manual-clock START --batches N]"
        )
    };
    let ssc = StreamingContext::get_or_create(checkpoint, || {
        let ssc = common::exactly_once_context("S3WordCount", checkpoint, &opts)?;
        common::save_word_totals(&ssc.text_file_stream(input), output);
        Ok(ssc)
    })?;
    opts.run(&ssc)
}
