//! Counts words in the messages of a ZeroMQ publisher every second, like Spark's
//! `ZeroMQWordCount`.
//!
//! `zeromq_word_count <url> <topic>` subscribes to `topic` on the publisher at `url`
//! (`tcp://127.0.0.1:5556`), counts the words of each message's body (the frames after the
//! topic) and prints the counts of every 1 s batch until Ctrl-C. `--batches N` stops after N
//! batches. A publisher in Python: `pyzmq`'s `PUB` socket bound on the URL, sending
//! `[topic, line]` multipart messages.

mod common;

use ember::prelude::*;
use ember_zeromq::{zeromq_stream, ZmqSpec};

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let batches = common::batches_arg(&mut args)?;
    let [url, topic] = args.as_slice() else { anyhow::bail!("usage: zeromq_word_count <url> <topic> [--batches N]") };
    let conf = Conf::new().master("local[2]").app_name("ZeroMQWordCount");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    let messages = zeromq_stream(&ssc, ZmqSpec::sub(url.clone(), [topic.clone()]));
    messages
        .text()
        .flat_map(|(_topic, body)| body.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .count_by_value()
        .print();
    common::run(&ssc, batches)
}
