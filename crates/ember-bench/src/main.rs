//! `ember-bench`: Ember's workloads, measured.
//!
//! ```text
//! ember-bench wordcount [--workers N] [--lines-per-batch L] [--batches K]
//!     throughput of flat_map -> map -> reduce_by_key -> output on the generated text, manual
//!     clock (batches back to back), plus the hand-written single-thread loop on the same lines
//! ember-bench stability [--workers N] [--batch-ms B] [--rate R] [--seconds S]
//!     the same pipeline on the system clock at a fixed rate: per-batch processing and total delay
//! ember-bench windowed [--workers N] [--lines-per-batch L] [--batches K]
//!     windowed word count, 10 s window sliding 2 s, inverse form, batches back to back
//! ember-bench state [--workers N] [--keys K] [--touched T] [--batches B]
//!     update_state_by_key versus map_with_state: K keys in state, T of them touched per batch
//! ```
//! ember-bench loadgen --port P --schedule RATE:SECS,... [--json] [--log FILE]
//!     serves generated lines (or JSON ad events) over TCP at the scheduled rates
//! ember-bench socket --workload wordcount|windowed|yahoo|slow_sink --port P [--workers N]
//!         [--batch-ms B] [--seconds S] --csv FILE [--until-eof] [--record-us U] [--conf k=v]... [--ui]
//!     the side-by-side workloads on the load generator's lines, one CSV row per batch; with
//!     --until-eof it reads until the sender closes and reports lines processed and peak RSS
//!     (slow_sink: an output spending U µs per line, for the overload test; --ui: with the web UI)
//! ember-bench socket-hand --port P [--batch-ms B] [--seconds S] [--csv FILE]
//!     the word count's floor on the same socket: one thread, no engine (CPU per line to compare)
//! ember-bench kmeans [--workers W] [--dim D] [--k K] [--points-per-batch N] [--batches B]
//! ember-bench sgd [--workers W] [--dim D] [--iterations I] [--points-per-batch N] [--batches B]
//!     streaming k-means / linear-regression training throughput (points/s per worker)
//! ember-bench kafka [--brokers B] [--records N] [--workers W] [--batches K]
//!     Kafka (3 partitions, 100-byte records) -> word count -> Kafka sink, against the client alone
//!     and a hand-written consume-count-produce loop
//! ember-bench sql [--workers W] [--lines-per-batch L] [--batches K]
//!     the SQL word count (GROUP BY as a distributed operation) against the typed one: lines/s
//!     and CPU per million lines, batches back to back; then the fixed cost of an empty batch
//!     at 1 s and 100 ms batches for the typed count, the SQL operation and Spark's per-batch
//!     pattern (`foreach_rdd_df`: plan and run the query on the driver every batch)
//! Numbers are reported, never asserted; `scripts/bench.sh` runs the comparison with Spark.

mod connectors;
mod kafka;
mod loadgen;
mod ml;
mod socket;
mod sql;

/// A general-purpose allocator that handles records allocated on one thread and freed on another
/// (receiver -> workers) far better than glibc's; Ember programs should use one too.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use ember::clock::Stopwatch;
use ember::prelude::*;
use ember::{BatchInfo, GeneratedText, LineGenerator};

fn text(lines_per_second: u64) -> GeneratedText {
    GeneratedText { lines_per_second, words_per_line: 8, vocabulary: 10_000, skew: 1.0, seed: 42 }
}

fn word_count(lines: &DStream<String>) {
    lines
        .flat_map(|line: String| line.split_owned(' '))
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b)
        .foreach_partition(|_t, counts| {
            black_box(counts.len());
        });
}

fn arg(args: &[String], name: &str, default: u64) -> anyhow::Result<u64> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args.get(i + 1).context("missing value")?.parse().with_context(|| format!("{name} takes a number")),
    }
}

/// Lines per second of the engine on `workers`, batches back to back on the manual clock.
fn engine_throughput(workers: u64, lines_per_batch: u64, batches: u64) -> anyhow::Result<f64> {
    let conf = Conf::new().master(format!("local[{workers}]")).manual_clock(true);
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    word_count(&ssc.generated_text_stream_with(text(lines_per_batch)));
    ssc.run_batches(1)?; // warm-up: start, first batch
    let watch = Stopwatch::start();
    for _ in 0..batches {
        ssc.run_batches(1)?;
    }
    let secs = watch.elapsed().as_secs_f64();
    ssc.stop(false)?;
    Ok((lines_per_batch * batches) as f64 / secs)
}

/// Lines per second of the hand-written single-thread loop on the same lines, counting into a
/// std `HashMap` (`fx = false`) or an Fx hash map (`fx = true`, the hasher Ember uses).
fn hand_loop(lines_per_batch: u64, batches: u64, fx: bool) -> f64 {
    if fx {
        hand_loop_with::<rustc_hash::FxBuildHasher>(lines_per_batch, batches)
    } else {
        hand_loop_with::<std::collections::hash_map::RandomState>(lines_per_batch, batches)
    }
}

fn hand_loop_with<S: std::hash::BuildHasher + Default>(lines_per_batch: u64, batches: u64) -> f64 {
    let mut generator = LineGenerator::new(&text(lines_per_batch), 0);
    let watch = Stopwatch::start();
    for _ in 0..batches {
        let mut counts: HashMap<String, u64, S> = HashMap::default();
        for _ in 0..lines_per_batch {
            let line = generator.next_line();
            for w in line.split(' ') {
                *counts.entry(w.to_owned()).or_insert(0) += 1;
            }
        }
        black_box(counts.len());
    }
    (lines_per_batch * batches) as f64 / watch.elapsed().as_secs_f64()
}

/// Lines per second of the generator alone (the input's own cost).
fn generator_only(lines_per_batch: u64, batches: u64) -> f64 {
    let mut generator = LineGenerator::new(&text(lines_per_batch), 0);
    let watch = Stopwatch::start();
    for _ in 0..lines_per_batch * batches {
        black_box(generator.next_line());
    }
    (lines_per_batch * batches) as f64 / watch.elapsed().as_secs_f64()
}

struct Collect(Arc<Mutex<Vec<BatchInfo>>>);

impl ember::StreamingListener for Collect {
    fn on_batch_completed(&mut self, info: &BatchInfo) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(info.clone());
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn stability(workers: u64, batch_ms: u64, rate: u64, seconds: u64) -> anyhow::Result<()> {
    let conf = Conf::new().master(format!("local[{workers}]"));
    let ssc = StreamingContext::new(conf, Duration::from_millis(batch_ms))?;
    let infos = Arc::new(Mutex::new(Vec::new()));
    ssc.add_streaming_listener(Collect(Arc::clone(&infos)));
    word_count(&ssc.generated_text_stream_with(text(rate)));
    ssc.start()?;
    ember::clock::real_sleep(Duration::from_secs(seconds));
    ssc.stop(false)?;
    let infos = infos.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // Skip the first second: start-up.
    let skip = (1000 / batch_ms) as usize;
    let steady: Vec<&BatchInfo> = infos.iter().skip(skip).collect();
    if steady.is_empty() {
        bail!("no batches completed");
    }
    if std::env::var("EMBER_BENCH_TRACE").is_ok() {
        for i in &steady {
            eprintln!(
                "{} records={} sched={:?} proc={:?}",
                i.batch_time,
                i.num_records(),
                i.scheduling_delay(),
                i.processing_delay()
            );
        }
    }
    let mut processing: Vec<u64> = steady.iter().filter_map(|i| i.processing_delay()).collect();
    let mut total: Vec<u64> = steady.iter().filter_map(|i| i.total_delay()).collect();
    let mut sched: Vec<u64> = steady.iter().filter_map(|i| i.scheduling_delay()).collect();
    let records: u64 = steady.iter().map(|i| i.num_records()).sum();
    processing.sort_unstable();
    total.sort_unstable();
    sched.sort_unstable();
    let over = processing.iter().filter(|&&p| p >= batch_ms).count();
    let half = steady.len() / 2;
    let sched_first: f64 =
        steady[..half].iter().filter_map(|i| i.scheduling_delay()).sum::<u64>() as f64 / half.max(1) as f64;
    let sched_second: f64 = steady[half..].iter().filter_map(|i| i.scheduling_delay()).sum::<u64>() as f64
        / (steady.len() - half).max(1) as f64;
    println!(
        "stability workers={workers} batch={batch_ms}ms rate={rate} lines/s: batches={} lines={} \
         processing p50/p99/max={}/{}/{} ms, total delay p50/p99/max={}/{}/{} ms, \
         batches with processing >= interval: {over}, mean scheduling delay first/second half: {sched_first:.2}/{sched_second:.2} ms",
        steady.len(),
        records,
        percentile(&processing, 0.5),
        percentile(&processing, 0.99),
        processing.last().copied().unwrap_or(0),
        percentile(&total, 0.5),
        percentile(&total, 0.99),
        total.last().copied().unwrap_or(0),
    );
    Ok(())
}

/// Windowed word count (10 s window sliding 2 s, inverse form) on 1 s batches, back to back.
fn windowed(workers: u64, lines_per_batch: u64, batches: u64) -> anyhow::Result<()> {
    let conf = Conf::new().master(format!("local[{workers}]")).manual_clock(true);
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    ssc.generated_text_stream_with(text(lines_per_batch))
        .flat_map(|line: String| line.split_owned(' '))
        .map(|w| (w, 1u64))
        .reduce_by_key_and_window_inverse(|a, b| a + b, |a, b| a - b, Duration::from_secs(10), Duration::from_secs(2))
        .foreach_partition(|_t, counts| {
            black_box(counts.len());
        });
    ssc.run_batches(10)?; // fill the first window
    let watch = Stopwatch::start();
    for _ in 0..batches {
        ssc.run_batches(1)?;
    }
    let secs = watch.elapsed().as_secs_f64();
    ssc.stop(false)?;
    println!(
        "windowed word count (10 s / 2 s, inverse) local[{workers}]: {:.0} lines/s back to back ({} lines per 1 s batch)",
        (lines_per_batch * batches) as f64 / secs,
        lines_per_batch
    );
    Ok(())
}

/// update_state_by_key versus map_with_state with `keys` keys in state and batches that touch
/// `touched` of them.
fn state(workers: u64, keys: u64, touched: u64, batches: u64) -> anyhow::Result<()> {
    for op in ["update_state_by_key", "map_with_state"] {
        let conf = Conf::new().master(format!("local[{workers}]")).manual_clock(true);
        let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
        let mut queue: Vec<Vec<(u64, u64)>> = vec![(0..keys).map(|k| (k, 1)).collect()];
        for b in 0..batches {
            queue.push((0..touched).map(|i| ((i * 7919 + b * 104_729) % keys, 1)).collect());
        }
        let pairs = ssc.queue_stream(queue, true);
        if op == "update_state_by_key" {
            pairs
                .update_state_by_key(|vs: Vec<u64>, st: Option<u64>| Some(st.unwrap_or(0) + vs.len() as u64))
                .foreach_partition(|_t, xs| {
                    black_box(xs.len());
                });
        } else {
            let spec = ember::dstream::map_with_state::StateSpec::function(
                |_k: &u64, v: Option<u64>, st: &mut ember::dstream::map_with_state::State<u64>| {
                    let n = st.get().copied().unwrap_or(0) + v.unwrap_or(0);
                    st.update(n);
                    n
                },
            );
            pairs.map_with_state(spec).foreach_partition(|_t, xs| {
                black_box(xs.len());
            });
        }
        ssc.run_batches(1)?; // load the keys
        let watch = Stopwatch::start();
        ssc.run_batches(batches)?;
        let per_batch = watch.elapsed().as_secs_f64() * 1000.0 / batches as f64;
        ssc.stop(false)?;
        println!(
            "{op}: {keys} keys in state, {touched} touched per batch, local[{workers}]: {per_batch:.1} ms per batch"
        );
    }
    Ok(())
}

/// The cost of checkpointing `keys` keys of update_state_by_key state, and of recovering them.
fn checkpoint_cost(keys: u64, batches: u64) -> anyhow::Result<()> {
    const START: u64 = 1_700_000_000_000;
    let root = std::env::temp_dir().join(format!("ember-bench-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (input, ck) = (root.join("in"), root.join("ck"));
    std::fs::create_dir_all(&input)?;
    let set_mtime = |path: &std::path::Path, ms: u64| -> anyhow::Result<()> {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_millis(ms))?;
        Ok(())
    };
    let all: String = (0..keys).map(|k| format!("key{k}\n")).collect();
    std::fs::write(input.join("all.txt"), all)?;
    set_mtime(&input.join("all.txt"), START + 500)?;
    for b in 1..=batches + 2 {
        let some: String = (0..1000u64).map(|i| format!("key{}\n", (i * 7919 + b * 104_729) % keys)).collect();
        let path = input.join(format!("b{b}.txt"));
        std::fs::write(&path, some)?;
        set_mtime(&path, START + b * 1000 + 500)?;
    }
    let build = |checkpoint: Option<&std::path::Path>| -> ember::Result<StreamingContext> {
        let conf = Conf::new().master("local[2]").manual_clock(true).set("clock.manual.start", START.to_string());
        let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
        if let Some(d) = checkpoint {
            ssc.checkpoint(d);
        }
        ssc.text_file_stream(&input)
            .map(|w: String| (w, 1u64))
            .update_state_by_key(|vs: Vec<u64>, st: Option<u64>| Some(st.unwrap_or(0) + vs.len() as u64))
            .checkpoint(Duration::from_secs(1))
            .foreach_partition(|_t, xs| {
                black_box(xs.len());
            });
        Ok(ssc)
    };
    for with in [false, true] {
        let ssc = build(with.then_some(ck.as_path()))?;
        ssc.run_batches(1)?; // loads the keys
        let watch = Stopwatch::start();
        ssc.run_batches(batches)?;
        let per_batch = watch.elapsed().as_secs_f64() * 1000.0 / batches as f64;
        ssc.stop(false)?;
        println!(
            "update_state_by_key with {keys} keys, checkpointing every batch: {with}: {per_batch:.1} ms per batch"
        );
    }
    let newest = std::fs::read_dir(ck.join("state"))?.flatten().map(|e| e.path()).max().context("no state")?;
    let bytes = walk(&newest);
    println!("one checkpoint's state: {:.1} MB, {:.1} bytes per key", bytes as f64 / 1e6, bytes as f64 / keys as f64);
    let watch = Stopwatch::start();
    let ssc = StreamingContext::get_or_create(&ck, || build(Some(ck.as_path())))?;
    ssc.run_batches(1)?;
    println!("recovery (restore {keys} keys, run one batch): {:.0} ms", watch.elapsed().as_secs_f64() * 1000.0);
    ssc.stop(false)?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| if e.path().is_dir() { walk(&e.path()) } else { e.metadata().map_or(0, |m| m.len()) })
            .sum()
    })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("wordcount") => {
            let lines = arg(&args, "--lines-per-batch", 1_000_000)?;
            let batches = arg(&args, "--batches", 5)?;
            let gen = generator_only(lines, batches);
            let hand = hand_loop(lines, batches, false);
            let hand_fx = hand_loop(lines, batches, true);
            println!("generator alone:                {gen:>12.0} lines/s");
            println!("hand-written loop, std HashMap: {hand:>12.0} lines/s");
            println!("hand-written loop, Fx HashMap:  {hand_fx:>12.0} lines/s");
            for workers in [1, 2] {
                let e = engine_throughput(workers, lines, batches)?;
                println!(
                    "ember local[{workers}]:                {e:>12.0} lines/s  ({:.0} % / {:.0} % of the std / Fx hand loop per worker)",
                    100.0 * e / workers as f64 / hand,
                    100.0 * e / workers as f64 / hand_fx
                );
            }
            Ok(())
        }
        Some("loadgen") => loadgen::main(&args[1..]),
        Some("kafka") => kafka::main(&args[1..]),
        Some("kinesis") => connectors::kinesis(&args[1..]),
        Some("zeromq") => connectors::zeromq(&args[1..]),
        Some("socket") => socket::main(&args[1..]),
        Some("socket-hand") => socket::hand(&args[1..]),
        Some(mode @ ("kmeans" | "sgd")) => ml::main(mode, &args[1..]),
        Some("sql") => sql::main(&args[1..]),
        Some("checkpoint") => checkpoint_cost(arg(&args, "--keys", 1_000_000)?, arg(&args, "--batches", 5)?),
        Some("windowed") => windowed(arg(&args, "--workers", 2)?, arg(&args, "--lines-per-batch", 500_000)?, arg(&args, "--batches", 10)?),
        Some("state") => state(arg(&args, "--workers", 2)?, arg(&args, "--keys", 1_000_000)?, arg(&args, "--touched", 10_000)?, arg(&args, "--batches", 5)?),
        Some("stability") => stability(
            arg(&args, "--workers", 2)?,
            arg(&args, "--batch-ms", 10)?,
            arg(&args, "--rate", 1_000_000)?,
            arg(&args, "--seconds", 10)?,
        ),
        _ => bail!(
            "usage: ember-bench wordcount [--lines-per-batch L] [--batches K] | stability [--workers N] [--batch-ms B] [--rate R] [--seconds S] \
             | windowed [--workers N] [--lines-per-batch L] [--batches K] | state [--workers N] [--keys K] [--touched T] [--batches B] \
             | kinesis --endpoint URL [--records N] [--shards S] | zeromq [--messages N] [--wal 0|1]"
        ),
    }
}
