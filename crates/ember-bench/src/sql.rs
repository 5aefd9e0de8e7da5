//! The SQL word count against the typed one (`ember-bench sql`), and the socket workload `sql`.

use std::hint::black_box;
use std::time::Duration;

use ember::clock::Stopwatch;
use ember::prelude::*;
use ember_sql::{Row, ToRows};

use crate::{arg, text, word_count};

const QUERY: &str = "SELECT word, COUNT(*) AS total FROM words GROUP BY word";

/// The word count as SQL: `words` as the view `words`, the query on every worker, its rows
/// consumed where they are.
pub fn sql_word_count(ssc: &StreamingContext, words: &DStream<String>) {
    ember_sql::sql(ssc, QUERY).with_view("words", words.to_rows(["word"])).stream().foreach_partition(
        |_t, rows: Vec<Row>| {
            black_box(rows.len());
        },
    );
}

fn words(lines: &DStream<String>) -> DStream<String> {
    lines.flat_map(|l: String| l.split_owned(' '))
}

/// Spark's guide pattern: every batch gathered on the driver, a DataFrame, a view, `sql`.
fn per_batch_word_count(words: &DStream<String>) {
    words.to_rows(["word"]).foreach_rdd_df(|df, _t| -> Result<(), ember_sql::SqlError> {
        df.create_or_replace_temp_view("words")?;
        black_box(df.session().sql(QUERY)?.collect()?.len());
        Ok(())
    });
}

/// This process's CPU time (user + system), from `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of the whole line are the 12th and 13th after the command's `)`.
    (tick(11) + tick(12)) / 100.0
}

/// Wall seconds and CPU seconds of `batches` batches of the job `build` declares on the generated lines, back to back
/// on the manual clock (the first batch, which starts the job, not counted).
fn measure(
    workers: u64,
    batch: Duration,
    lines_per_batch: u64,
    batches: u64,
    build: impl FnOnce(&StreamingContext, &DStream<String>),
) -> anyhow::Result<(f64, f64)> {
    let conf = Conf::new().master(format!("local[{workers}]")).manual_clock(true);
    let ssc = StreamingContext::new(conf, batch)?;
    let per_second = lines_per_batch * 1000 / batch.as_millis().max(1) as u64;
    build(&ssc, &ssc.generated_text_stream_with(text(per_second)));
    ssc.run_batches(1)?;
    let (watch, cpu) = (Stopwatch::start(), cpu_seconds());
    ssc.run_batches(batches)?;
    let out = (watch.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    ssc.stop(false)?;
    Ok(out)
}

/// `ember-bench sql [--workers W] [--lines-per-batch L] [--batches K]`.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let workers = arg(args, "--workers", 2)?;
    let lines = arg(args, "--lines-per-batch", 200_000)?;
    let batches = arg(args, "--batches", 10)?;
    println!("word count of generated text (8 words a line, 10,000 words), {workers} workers, {lines} lines a batch, {batches} batches back to back:");
    println!("| job | lines/s | CPU s per M lines |");
    println!("|---|---|---|");
    let mut cpu_per_m = Vec::new();
    for (name, typed) in [("typed (reduce_by_key)", true), ("SQL (GROUP BY on every worker)", false)] {
        let (wall, cpu) = measure(workers, Duration::from_secs(1), lines, batches, |ssc, lines| {
            if typed {
                word_count(lines)
            } else {
                sql_word_count(ssc, &words(lines))
            }
        })?;
        let m = (lines * batches) as f64 / 1e6;
        println!("| {name} | {:.0} | {:.2} |", (lines * batches) as f64 / wall, cpu / m);
        cpu_per_m.push(cpu / m);
    }
    println!("SQL / typed CPU per line: {:.2}x", cpu_per_m[1] / cpu_per_m[0]);
    println!();
    let empty = arg(args, "--empty-batches", 300)?;
    println!("fixed cost of an empty batch ({empty} empty batches back to back, {workers} workers), ms per batch:");
    println!(
        "| batch interval | typed | SQL operation | SQL operation - typed | per-batch pattern (plans every batch) |"
    );
    println!("|---|---|---|---|---|");
    for ms in [1000u64, 100] {
        let batch = Duration::from_millis(ms);
        let each = |f: &dyn Fn(&StreamingContext, &DStream<String>)| -> anyhow::Result<f64> {
            Ok(measure(workers, batch, 0, empty, |ssc, lines| f(ssc, lines))?.0 * 1000.0 / empty as f64)
        };
        let typed = each(&|_ssc, l| word_count(l))?;
        let sql = each(&|ssc, l| sql_word_count(ssc, &words(l)))?;
        let pattern = each(&|_ssc, l| per_batch_word_count(&words(l)))?;
        println!("| {ms} ms | {typed:.3} | {sql:.3} | {:.3} | {pattern:.3} |", sql - typed);
    }
    Ok(())
}
