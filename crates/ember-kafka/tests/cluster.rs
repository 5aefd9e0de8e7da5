//! A 3-process x 2-worker job under `ember-launch` (the `kafka_word_count` example with `--windowed`: a Kafka
//! direct stream, `update_state_by_key`, a window, `save_as_text_files`): a randomly chosen
//! process killed with SIGKILL at 20 random points of the job's progress; the launcher restarts
//! every process each time, and the output equals an uninterrupted run's.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ember::clock::{real_sleep, Stopwatch};

const START: u64 = 1_700_000_000_000;
const WORDS: [&str; 8] = ["ember", "spark", "stream", "batch", "window", "state", "kafka", "timely"];
const BATCHES: u64 = 34;

/// A topic of 6 partitions holding `n` lines of words; its name and the word counts.
fn fill_topic(servers: &str, name: &str, n: usize) -> (String, std::collections::BTreeMap<String, u64>) {
    let topic = common::topic(name);
    common::create_topic(servers, &topic, 6);
    let (lines, want) = ember::testing::random_word_lines(n, &WORDS);
    let records: Vec<(i32, Vec<u8>)> =
        lines.into_iter().enumerate().map(|(i, l)| ((i % 6) as i32, l.into_bytes())).collect();
    common::produce(&common::producer(servers), &topic, &records);
    (topic, want)
}

/// The example's arguments: `topic` into `out`, checkpointed to `ck`, with the window, 5
/// records/s per partition, on the manual clock until batch `batches`.
fn example_args(servers: &str, topic: &str, out: &Path, ck: &Path, batches: u64) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![servers.into(), topic.into(), out.into(), ck.into()];
    args.extend(["--windowed", "--max-rate", "5", "--manual-clock"].map(Into::into));
    args.extend([START.to_string().into(), "--batches".into(), batches.to_string().into()]);
    args
}

/// The launcher running the example as 3 processes x 2 workers on the manual clock.
fn launch(servers: &str, topic: &str, out: &Path, ck: &Path) -> Command {
    let mut cmd = Command::new(ember::testing::launcher_binary());
    cmd.args(["--workers", "2", "--hosts", &ember::testing::loopback_hosts(3)])
        .args(["--max-restarts", "40", "--backoff", "0", "--"])
        .arg(ember::testing::example_binary("kafka_word_count"))
        .args(example_args(servers, topic, out, ck, BATCHES))
        .env("RUST_LOG", "error");
    cmd
}

#[test]
fn a_process_killed_at_20_random_points_under_the_launcher_changes_nothing() {
    let servers = common::broker();
    // 900 lines at 5 per partition and batch: 30 batches of input, then 4 of windows closing.
    let (topic, want) = fill_topic(servers, "cluster", 900);
    let dir = tempfile::tempdir().unwrap();

    let straight = launch(servers, &topic, &dir.path().join("a"), &dir.path().join("ck-a"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(straight.success(), "the uninterrupted run failed: {straight}");
    let expected = ember::testing::committed_outputs(&dir.path().join("a"));
    let totals: Vec<&String> = expected.keys().filter(|k| k.starts_with("totals")).collect();
    assert_eq!(totals.len(), BATCHES as usize, "one totals output per batch");
    let last = ember::testing::parse_counts::<u64>(&expected[totals[totals.len() - 1]]);
    assert_eq!(last, want, "the uninterrupted run counted every record once");
    assert!(expected.keys().any(|k| k.starts_with("windowed")), "windowed outputs too");

    // The killed run: the launcher's `process i started (pid N)` lines say whom to kill.
    let out = dir.path().join("b");
    let mut launcher = launch(servers, &topic, &out, &dir.path().join("ck-b")).stderr(Stdio::piped()).spawn().unwrap();
    // The latest attempt and its processes' pids.
    let pids: Arc<Mutex<(u32, [u32; 3])>> = Arc::default();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let reader = {
        let (pids, log) = (Arc::clone(&pids), Arc::clone(&log));
        let stderr = launcher.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                // `ember-launch: attempt A: process I started (pid P)`
                let fields: Vec<&str> = line.split([' ', ':', '(', ')']).filter(|f| !f.is_empty()).collect();
                if let ["ember-launch", "attempt", a, "process", i, "started", "pid", p] = fields.as_slice() {
                    if let (Ok(a), Ok(i), Ok(p)) = (a.parse(), i.parse::<usize>(), p.parse()) {
                        let mut pids = pids.lock().unwrap();
                        pids.0 = a;
                        pids.1[i] = p;
                    }
                }
                log.lock().unwrap().push(line);
            }
        })
    };
    // Progress: the batches whose totals are committed (`totals-<ms>` with its `_SUCCESS`).
    let progress = || {
        std::fs::read_dir(&out)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("totals-") && e.path().join("_SUCCESS").exists())
            .count() as u64
    };
    let mut seed = 11u64;
    let mut random = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    let step = BATCHES as f64 / 21.0;
    let mut restarts = Vec::new();
    for k in 0..20 {
        let target = (step * (k as f64 + (random() % 1000) as f64 / 1000.0)) as u64;
        let watch = Stopwatch::start();
        while progress() < target.max(1) {
            assert!(watch.elapsed() < Duration::from_secs(120), "no progress past {target}: {:?}", log.lock().unwrap());
            assert!(launcher.try_wait().unwrap().is_none(), "the launcher ended early: {:?}", log.lock().unwrap());
            real_sleep(Duration::from_millis(2));
        }
        real_sleep(Duration::from_micros(random() % 20_000));
        let victim = (random() % 3) as usize;
        let (attempt, pid) = {
            let pids = pids.lock().unwrap();
            (pids.0, pids.1[victim])
        };
        let before = progress();
        let killed = Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
        assert!(killed.success(), "kill -9 {pid}");
        // The restart's time to its first new batch (a batch the killed run was finishing
        // when the kill landed does not count).
        let watch = Stopwatch::start();
        while (progress() <= before || pids.lock().unwrap().0 == attempt) && launcher.try_wait().unwrap().is_none() {
            assert!(watch.elapsed() < Duration::from_secs(120), "no batch after kill {k}: {:?}", log.lock().unwrap());
            real_sleep(Duration::from_millis(2));
        }
        restarts.push(watch.elapsed().as_secs_f64());
    }
    let status = launcher.wait().unwrap();
    reader.join().unwrap();
    let log = log.lock().unwrap();
    assert!(status.success(), "the launcher failed: {status}: {log:?}");
    let restarted = log.iter().filter(|l| l.contains("every process stopped; restart")).count();
    assert!(restarted >= 20, "{restarted} restarts for 20 kills: {log:?}");
    let noise: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("panicked") || l.contains("timely communication") || l.contains("bug in Ember"))
        .collect();
    assert!(noise.is_empty(), "the processes stop cleanly after a kill: {noise:?}");
    assert_eq!(
        ember::testing::committed_outputs(&out),
        expected,
        "the output after 20 kills equals the uninterrupted run's"
    );
    restarts.sort_by(f64::total_cmp);
    eprintln!(
        "time from a kill to the first new batch, over {} kills: median {:.2} s, max {:.2} s",
        restarts.len(),
        restarts[restarts.len() / 2],
        restarts[restarts.len() - 1]
    );
}

/// The example as `processes` processes x 2 workers (0: one process, `local[2]`) on the manual
/// clock to batch `batches`, stopped gracefully; waits for it.
fn run_shape(servers: &str, topic: &str, out: &Path, ck: &Path, processes: usize, batches: u64) {
    let hosts = ember::testing::loopback_hosts(processes.max(1));
    let children: Vec<_> = (0..processes.max(1))
        .map(|i| {
            let mut c = Command::new(ember::testing::example_binary("kafka_word_count"));
            c.args(example_args(servers, topic, out, ck, batches))
                .arg("--graceful")
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            if processes > 0 {
                c.envs(ember::testing::cluster_env(&hosts, i));
            }
            c.spawn().unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{processes} processes: {}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn a_direct_stream_rescaled_from_2_to_3_processes_to_1_reads_every_record_once() {
    let servers = common::broker();
    let (topic, want) = fill_topic(servers, "rescale", 600);
    let dir = tempfile::tempdir().unwrap();
    const END: u64 = 24;
    run_shape(servers, &topic, &dir.path().join("a"), &dir.path().join("ck-a"), 0, END);
    let expected = ember::testing::committed_outputs(&dir.path().join("a"));
    let last = expected.keys().rfind(|k| k.starts_with("totals")).unwrap();
    assert_eq!(
        ember::testing::parse_counts::<u64>(&expected[last]),
        want,
        "600 lines at 30 a batch: all read by the end"
    );

    let (out, ck) = (dir.path().join("b"), dir.path().join("ck-b"));
    for (processes, batches) in [(2, 7), (3, 15), (0, END)] {
        run_shape(servers, &topic, &out, &ck, processes, batches);
    }
    assert_eq!(ember::testing::committed_outputs(&out), expected, "2, then 3 processes, then 1: the output of one");
}
