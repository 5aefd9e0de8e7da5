//! Overload: a socket sender at ten times the rate the job sustains, for 60 s, against the real
//! `ember-bench` binary (load generator and engine in separate processes, as a user would run
//! them).
//!
//! The job's output spends 20 µs per line (`slow_sink`), so it sustains about 50,000 lines/s
//! whatever else the machine runs; the sender offers 500,000 lines/s. Both runs read until the
//! sender closes the connection and then stop gracefully, so every line sent must be processed.
//!
//! - Backpressure on: the scheduling delay of the last 20 s of batches is below two batch
//!   intervals, peak memory stays bounded, nothing is lost.
//! - Backpressure off, the in-flight bound on (its default): peak memory stays bounded, the
//!   sender is slowed (TCP pushes back), nothing is lost.
//!
//! Unbounded, the 27,000,000 lines the sender is kept from sending would have to queue in the
//! job: at about 100 bytes a line held, over 2.5 GiB. The memory bound asserted is 256 MiB.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BENCH: &str = env!("CARGO_BIN_EXE_ember-bench");
const SECONDS: u64 = 60;
const OFFERED_PER_SECOND: u64 = 500_000;
const BATCH_MS: u64 = 1000;
const PEAK_RSS_BOUND_MIB: u64 = 256;

struct Run {
    offered: u64,
    sent: u64,
    processed: u64,
    peak_rss_mib: u64,
    /// `(batch_ms, num_records, sched_delay_ms, rate_limit)` per completed batch.
    batches: Vec<(u64, u64, u64, f64)>,
}

/// The `KEY=value` number on a `PREFIX …` line of `out`.
fn reported(out: &str, prefix: &str, key: &str) -> u64 {
    out.lines()
        .filter(|l| l.starts_with(prefix))
        .flat_map(|l| l.split_whitespace())
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in the output:\n{out}"))
}

fn stdout_of(mut child: Child, what: &str) -> String {
    let mut out = String::new();
    child.stdout.take().expect("piped").read_to_string(&mut out).expect("reading stdout");
    let status = child.wait().expect("waiting");
    assert!(status.success(), "{what} failed ({status}); its output:\n{out}");
    out
}

fn overload(name: &str, confs: &[&str]) -> Run {
    let dir = std::env::temp_dir().join(format!("ember-overload-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut gen = Command::new(BENCH)
        .args(["loadgen", "--port", &port.to_string(), "--schedule", &format!("{OFFERED_PER_SECOND}:{SECONDS}")])
        .args(["--log", dir.join("gen.csv").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the load generator");
    // Wait until it listens (it says so on stderr), then let its stderr drain on a thread.
    let mut stderr = BufReader::new(gen.stderr.take().expect("piped"));
    let mut line = String::new();
    while stderr.read_line(&mut line).expect("reading the load generator") > 0 && !line.contains("listening") {
        line.clear();
    }
    assert!(line.contains("listening"), "the load generator did not start");
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));

    let csv = dir.join("batches.csv");
    let mut engine = Command::new(BENCH);
    engine
        .args(["socket", "--workload", "slow_sink", "--record-us", "20", "--workers", "1", "--until-eof"])
        .args(["--port", &port.to_string(), "--batch-ms", &BATCH_MS.to_string(), "--seconds", &SECONDS.to_string()])
        .args(["--csv", csv.to_str().unwrap()])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped());
    for c in confs {
        engine.args(["--conf", c]);
    }
    let engine = engine.spawn().expect("starting the engine");
    let engine_out = stdout_of(engine, "the engine");
    let gen_out = stdout_of(gen, "the load generator");
    let run = Run {
        offered: reported(&gen_out, "LOADGEN", "offered"),
        sent: reported(&gen_out, "LOADGEN", "sent"),
        processed: reported(&engine_out, "BENCH", "processed_lines"),
        peak_rss_mib: reported(&engine_out, "BENCH", "peak_rss_kib") / 1024,
        batches: read_batches(&csv),
    };
    eprintln!(
        "{name}: offered {}, sent {}, processed {}, peak RSS {} MiB, {} batches; delays (ms) {:?}",
        run.offered,
        run.sent,
        run.processed,
        run.peak_rss_mib,
        run.batches.len(),
        run.batches.iter().map(|b| b.2).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
    run
}

fn read_batches(csv: &Path) -> Vec<(u64, u64, u64, f64)> {
    let text = std::fs::read_to_string(csv).expect("the engine's batch CSV");
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap(), f[5].parse().unwrap())
        })
        .collect()
}

fn assert_nothing_lost_and_memory_bounded(run: &Run) {
    assert_eq!(run.offered, OFFERED_PER_SECOND * SECONDS);
    assert!(run.sent > 0, "nothing was sent");
    assert_eq!(run.processed, run.sent, "every line sent is processed exactly once");
    assert!(
        run.peak_rss_mib < PEAK_RSS_BOUND_MIB,
        "peak memory {} MiB is not below {PEAK_RSS_BOUND_MIB} MiB",
        run.peak_rss_mib
    );
}

#[test]
fn backpressure_on_the_scheduling_delay_converges_below_two_batch_intervals() {
    let run = overload("on", &["backpressure.enabled=true"]);
    assert_nothing_lost_and_memory_bounded(&run);
    let first = run.batches.first().expect("batches completed").0;
    let late: Vec<_> =
        run.batches.iter().filter(|b| b.0 >= first + (SECONDS - 20) * 1000 && b.0 < first + SECONDS * 1000).collect();
    assert!(late.len() >= 15, "too few batches in the last 20 s: {}", late.len());
    for b in &late {
        assert!(b.2 < 2 * BATCH_MS, "batch {} started {} ms late (the rate limit was {})", b.0, b.2, b.3);
        assert!(b.3 > 0.0, "batch {} has no rate limit in its input info", b.0);
    }
    assert!(run.sent < run.offered / 4, "the sender was not pushed back: {} of {}", run.sent, run.offered);
}

#[test]
fn backpressure_off_the_in_flight_bound_keeps_memory_bounded_and_slows_the_sender() {
    let run = overload("off", &["receiver.max_buffered_records=50000"]);
    assert_nothing_lost_and_memory_bounded(&run);
    assert!(run.sent < run.offered / 4, "the sender was not slowed: {} of {}", run.sent, run.offered);
    assert!(run.batches.iter().all(|b| b.3 == 0.0), "no rate limit without backpressure");
}
