//! Counts words with SQL every second, like Spark's `SqlNetworkWordCount`: each batch becomes a
//! DataFrame, registered as the temporary view `words`, and `SELECT word, COUNT(*) …` runs on it
//! and prints its table as Spark's `show()` does.
//!
//! `sql_network_word_count <host> <port>` reads lines from a TCP server (start one with
//! `nc -lk 9999`); with no arguments it reads Ember's built-in generated text. `--batches N`
//! stops after N batches; Ctrl-C stops gracefully.
//!
//! The same count also runs as a distributed SQL operation (`ember_sql::sql`), whose running
//! totals (`update_state_by_key` over the query's rows) print every batch: the way to keep SQL
//! results as state. It needs a checkpoint directory, a temporary one here.

mod common;

use ember::prelude::*;
use ember_sql::{Row, ToRows};

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let batches = common::batches_arg(&mut args)?;
    let conf = Conf::new().master("local[2]").app_name("SqlNetworkWordCount");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    let checkpoint = std::env::temp_dir().join(format!("sql_network_word_count-{}", std::process::id()));
    ssc.checkpoint(&checkpoint);
    let lines = match args.as_slice() {
        [host, port] => ssc.socket_text_stream(host.clone(), port.parse()?),
        [] => {
            eprintln!("no <host> <port> given: counting words of the built-in generated text (Ctrl-C stops)");
            ssc.generated_text_stream()
        }
        _ => anyhow::bail!("usage: sql_network_word_count [<host> <port>] [--batches N]"),
    };
    let words = lines.flat_map(|line: String| line.split_owned(' '));

    // Spark's guide: foreachRDD, toDF, createOrReplaceTempView, spark.sql, show.
    words.to_rows(["word"]).foreach_rdd_df(|df, time| -> Result<(), ember_sql::SqlError> {
        println!("========= {time} =========");
        df.create_or_replace_temp_view("words")?;
        let counts =
            df.session().sql("SELECT word, COUNT(*) AS total FROM words GROUP BY word ORDER BY total DESC, word")?;
        counts.show()
    });

    // The same query as a stream operation on every worker, its rows feeding running totals.
    let totals = ember_sql::sql(&ssc, "SELECT word, COUNT(*) AS total FROM words GROUP BY word")
        .with_view("words", words.to_rows(["word"]))
        .stream()
        .map(|r: Row| (r.get_str("word").unwrap_or_default().to_string(), r.get_i64("total").unwrap_or(0)))
        .update_state_by_key(|counts: Vec<i64>, total: Option<i64>| {
            Some(total.unwrap_or(0) + counts.iter().sum::<i64>())
        });
    totals.print();
    let result = common::run(&ssc, batches);
    let _ = std::fs::remove_dir_all(&checkpoint);
    result
}
