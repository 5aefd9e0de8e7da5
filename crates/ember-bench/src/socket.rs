//! The socket workloads that run side by side with the Spark peer, on lines from the load
//! generator: `wordcount`, `windowed` (10 s window sliding 2 s, inverse form) and `yahoo` (JSON ad
//! events, filtered by type, joined with a static campaign table, counted per campaign in 10 s
//! windows). Every completed batch is written as a CSV row in the peer's format:
//! `batch_ms,num_records,sched_delay_ms,proc_delay_ms,total_delay_ms`.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use ember::clock::{real_sleep, Stopwatch};
use ember::prelude::*;
use ember::{BatchInfo, ReceiverInfo};

use crate::loadgen::campaign_table;

struct CsvListener {
    out: Arc<Mutex<std::fs::File>>,
    first_done: Arc<Mutex<Option<f64>>>,
    watch: Stopwatch,
    processed: Arc<AtomicU64>,
    /// Told once when the receiver reports the end of its connection's data.
    eof: Option<mpsc::Sender<()>>,
}

impl StreamingListener for CsvListener {
    fn on_receiver_error(&mut self, info: &ReceiverInfo) {
        if info.last_error_message.contains("no more data") {
            if let Some(tx) = self.eof.take() {
                let _ = tx.send(());
            }
        }
    }

    fn on_batch_completed(&mut self, b: &BatchInfo) {
        self.processed.fetch_add(b.num_records(), Ordering::Relaxed);
        let mut first = self.first_done.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(self.watch.elapsed().as_secs_f64() * 1000.0);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let limit = b.stream_input_info.iter().filter_map(|s| s.rate_limit).fold(0.0, |a, b| a + b);
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.0}",
            b.batch_time.millis(),
            b.num_records(),
            b.scheduling_delay().unwrap_or(0),
            b.processing_delay().unwrap_or(0),
            b.total_delay().unwrap_or(0),
            limit
        );
    }
}

fn consume<K: ember::Data, V: ember::Data + Into<u64>>(counts: &DStream<(K, V)>) {
    counts.foreach_partition(|_t, kv: Vec<(K, V)>| {
        let keys = kv.len() as u64;
        let sum: u64 = kv.into_iter().map(|(_, v)| v.into()).sum();
        black_box((keys, sum));
    });
}

fn words(lines: &DStream<String>) -> DStream<(String, u64)> {
    lines.flat_map(|line: String| line.split_owned(' ')).map(|w| (w, 1u64))
}

/// `ember-bench socket-hand --port P [--batch-ms B] [--seconds S]`: the word count's physical
/// floor on the same socket, without Ember: one thread reads lines into a reused buffer, splits
/// them and counts the words into an Fx hash map with owned keys, dropped every batch interval.
/// Its CPU per line is what any engine must spend at least.
pub fn hand(args: &[String]) -> anyhow::Result<()> {
    use std::io::BufRead;
    let get = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let port: u16 = get("--port").context("--port is required")?.parse()?;
    let batch = Duration::from_millis(get("--batch-ms").map_or(Ok(1000), |w| w.parse())?);
    let seconds: u64 = get("--seconds").map_or(Ok(60), |w| w.parse())?;
    if let Some(csv) = get("--csv") {
        std::fs::write(&csv, "batch_ms,num_records,sched_delay_ms,proc_delay_ms,total_delay_ms,rate_limit\n")?;
    }
    let conn = std::net::TcpStream::connect(("127.0.0.1", port)).context("connecting to the load generator")?;
    conn.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, conn);
    let (start, mut next_batch) = (Stopwatch::start(), batch);
    let mut counts: rustc_hash::FxHashMap<String, u64> = Default::default();
    let (mut line, mut lines) = (Vec::new(), 0u64);
    while start.elapsed() < Duration::from_secs(seconds) {
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                let text = std::str::from_utf8(&line).unwrap_or("").trim_end_matches(['\n', '\r']);
                for w in text.split(' ') {
                    *counts.entry(w.to_owned()).or_insert(0) += 1;
                }
                lines += 1;
                line.clear();
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
        if start.elapsed() >= next_batch {
            black_box(std::mem::take(&mut counts).len());
            next_batch += batch;
        }
    }
    println!("BENCH processed_lines={lines}");
    Ok(())
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct AdEvent {
    ad_id: String,
    event_type: String,
}

/// `ember-bench socket --workload W --port P [--workers N] [--batch-ms B] [--seconds S] --csv FILE
/// [--wal CHECKPOINT_DIR] [--record-us U] [--until-eof] [--conf key=value]...`
///
/// Runs for `S` seconds and stops at once, or with `--until-eof` until the sender closes the
/// connection (at most `S` + 300 s), then stops gracefully so every line read is processed.
/// Prints `BENCH` lines: time to the first completed batch, lines processed, peak RSS.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let watch = Stopwatch::start();
    let get = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let workload = get("--workload").unwrap_or_else(|| "wordcount".into());
    let port: u16 = get("--port").context("--port is required")?.parse()?;
    let workers: u64 = get("--workers").map_or(Ok(2), |w| w.parse())?;
    let batch_ms: u64 = get("--batch-ms").map_or(Ok(1000), |w| w.parse())?;
    let seconds: u64 = get("--seconds").map_or(Ok(60), |w| w.parse())?;
    let csv = get("--csv").context("--csv is required")?;

    let wal = get("--wal");
    let mut conf = Conf::new().master(format!("local[{workers}]")).app_name(format!("bench-{workload}"));
    // `--conf key=value`, repeatable: any Ember setting (e.g. backpressure.enabled=true).
    for (i, a) in args.iter().enumerate() {
        if a == "--conf" {
            let kv = args.get(i + 1).context("--conf needs key=value")?;
            let (k, v) = kv.split_once('=').context("--conf needs key=value")?;
            conf = conf.set(k, v);
        }
    }
    if wal.is_some() {
        conf = conf.set("receiver.write_ahead_log.enable", "true");
    }
    let ssc = StreamingContext::new(conf, Duration::from_millis(batch_ms))?;
    if let Some(dir) = &wal {
        ssc.checkpoint(dir);
    }
    // `--ui`: the web UI on (`ui.port` through `--conf`), to measure what it costs.
    let _ui = if args.iter().any(|a| a == "--ui") {
        let ui = ember_ui::attach(&ssc)?;
        if let Some(ui) = &ui {
            eprintln!("BENCH ui {}", ui.url());
        }
        ui
    } else {
        None
    };
    let out = Arc::new(Mutex::new(std::fs::File::create(&csv).with_context(|| format!("creating {csv}"))?));
    writeln!(
        out.lock().unwrap_or_else(|e| e.into_inner()),
        "batch_ms,num_records,sched_delay_ms,proc_delay_ms,total_delay_ms,rate_limit"
    )?;
    let first_done = Arc::new(Mutex::new(None));
    let processed = Arc::new(AtomicU64::new(0));
    let until_eof = args.iter().any(|a| a == "--until-eof");
    let (eof_tx, eof_rx) = mpsc::channel();
    ssc.add_streaming_listener(CsvListener {
        out,
        first_done: Arc::clone(&first_done),
        watch,
        processed: Arc::clone(&processed),
        eof: Some(eof_tx),
    });
    let record_cost = Duration::from_micros(get("--record-us").map_or(Ok(20), |w| w.parse())?);
    let lines = ssc.socket_text_stream("127.0.0.1", port);
    match workload.as_str() {
        "wordcount" => consume(&words(&lines).reduce_by_key(|a, b| a + b)),
        "windowed" => consume(&words(&lines).reduce_by_key_and_window_inverse_filtered(
            |a, b| a + b,
            |a, b| a - b,
            |_k, v| *v > 0,
            Duration::from_secs(10),
            Duration::from_secs(2),
        )),
        "yahoo" => {
            let table: Arc<HashMap<String, String>> = Arc::new(campaign_table().into_iter().collect());
            let per_campaign = lines
                .flat_map(|line: String| serde_json::from_str::<AdEvent>(&line).ok())
                .filter(|e| e.event_type == "view")
                .flat_map(move |e| table.get(&e.ad_id).cloned())
                .map(|campaign| (campaign, 1u64))
                .reduce_by_key_and_window(|a, b| a + b, Duration::from_secs(10), Duration::from_secs(10));
            consume(&per_campaign);
        }
        // An output that spends a fixed time per line, as a remote store would: its sustainable
        // rate is known and does not depend on how busy the machine's cores are.
        "slow_sink" => lines.foreach_partition(move |_t, part: Vec<String>| {
            black_box(part.iter().map(String::len).sum::<usize>());
            real_sleep(record_cost * part.len() as u32);
        }),
        // The word count in SQL, as a distributed stream operation (GROUP BY on every worker).
        "sql" => crate::sql::sql_word_count(&ssc, &lines.flat_map(|line: String| line.split_owned(' '))),
        other => bail!("unknown workload `{other}` (wordcount, sql, windowed, yahoo, slow_sink)"),
    }
    ssc.start()?;
    if until_eof {
        if eof_rx.recv_timeout(Duration::from_secs(seconds + 300)).is_err() {
            bail!("the sender did not close the connection within {} s", seconds + 300);
        }
    } else {
        real_sleep(Duration::from_secs(seconds));
    }
    let first = *first_done.lock().unwrap_or_else(|e| e.into_inner());
    ssc.stop(until_eof)?;
    println!("BENCH start_to_first_batch_done_ms={:.0}", first.unwrap_or(-1.0));
    println!("BENCH processed_lines={}", processed.load(Ordering::Relaxed));
    println!("BENCH peak_rss_kib={}", peak_rss_kib());
    Ok(())
}

/// The process's peak resident set (`VmHWM`), in KiB; 0 where `/proc` does not say.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
