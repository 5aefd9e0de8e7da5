//! Counts words in text received every second, like Spark's `NetworkWordCount`.
//!
//! `network_word_count <host> <port>` reads lines from a TCP server (start one with
//! `nc -lk 9999`); with no arguments it reads Ember's built-in generated text. It prints the
//! counts of every 1 s batch until Ctrl-C, then stops gracefully. `--batches N` stops after N
//! batches.

mod common;

use ember::prelude::*;

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let batches = common::batches_arg(&mut args)?;
    let conf = Conf::new().master("local[2]").app_name("NetworkWordCount");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    let lines = match args.as_slice() {
        [host, port] => ssc.socket_text_stream(host.clone(), port.parse()?),
        [] => {
            eprintln!("no <host> <port> given: counting words of the built-in generated text (Ctrl-C stops)");
            ssc.generated_text_stream()
        }
        _ => anyhow::bail!("usage: network_word_count [<host> <port>] [--batches N]"),
    };
    let counts = lines
        .flat_map(|line: String| line.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b);
    counts.print();
    common::run(&ssc, batches)
}
