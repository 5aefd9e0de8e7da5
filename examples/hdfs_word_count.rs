//! Counts words in new text files of a directory, like Spark's `HdfsWordCount` (on a local
//! directory). Write files elsewhere and move them in: `hdfs_word_count <dir> [--batches N]`.

mod common;

use ember::prelude::*;

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let batches = common::batches_arg(&mut args)?;
    let [dir] = args.as_slice() else { anyhow::bail!("usage: hdfs_word_count <directory> [--batches N]") };
    let conf = Conf::new().master("local[2]").app_name("HdfsWordCount");
    let ssc = StreamingContext::new(conf, Duration::from_secs(2))?;
    let counts = ssc
        .text_file_stream(dir)
        .flat_map(|line: String| line.split_owned(' '))
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b);
    counts.print();
    common::run(&ssc, batches)
}
