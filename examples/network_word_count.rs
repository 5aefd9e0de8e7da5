//! Counts words in text received every second, like Spark's `NetworkWordCount`.
//!
//! `network_word_count <host> <port>` reads lines from a TCP server (start one with
//! `nc -lk 9999`); with no arguments it reads Ember's built-in generated text. It prints the
//! counts of every 1 s batch until Ctrl-C, then stops gracefully. `--batches N` stops after N
//! batches.
//!
//! The web UI is open while it runs (its address is printed to stderr): the Streaming page, and
//! the top words of each batch on the dashboard `/dashboard/word%20counts`. `EMBER_UI=off`
//! leaves it closed.

mod common;

use ember::prelude::*;
use ember_ui::DashboardExt;

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let batches = common::batches_arg(&mut args)?;
    let ui_on = std::env::var("EMBER_UI").map_or(true, |v| v != "off");
    let conf = Conf::new().master("local[2]").app_name("NetworkWordCount").set("ui.enabled", ui_on.to_string());
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    let ui = ember_ui::attach(&ssc)?;
    if let Some(ui) = &ui {
        eprintln!("web UI: {}/streaming/ (dashboard: {}/dashboard/word%20counts)", ui.url(), ui.url());
    }
    let lines = match args.as_slice() {
        [host, port] => ssc.socket_text_stream(host.clone(), port.parse()?),
        [] => {
            eprintln!("no <host> <port> given: counting words of the built-in generated text (Ctrl-C stops)");
            ssc.generated_text_stream()
        }
        _ => anyhow::bail!("usage: network_word_count [<host> <port>] [--batches N]"),
    };
    let counts = lines.flat_map(|line: String| line.split_owned(' ')).map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b);
    counts.print();
    counts.dashboard("word counts");
    common::run(&ssc, batches)
}
