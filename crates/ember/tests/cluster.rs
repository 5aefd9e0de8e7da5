//! Cluster mode on loopback: the same program as 2 processes x 2 workers gives exactly the
//! output of local[1]; a lost, failed, missing or mismatched process stops the others with an
//! error naming it; a checkpoint is whole or absent; the services that cover every process
//! (accumulators, backpressure, the graceful stop); `ember-launch`. Rescaling is in `rescale.rs`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use ember::testing::exclusive;
use ember::{Conf, GeneratedText, StreamingContext};

const BATCHES: u64 = 4;

/// Word count on generated text; returns the sorted counts of every batch, one line each.
fn word_count(conf: Conf) -> Vec<String> {
    let ssc = StreamingContext::new(conf.manual_clock(true), Duration::from_secs(1)).unwrap();
    let text = GeneratedText { lines_per_second: 2_000, words_per_line: 8, vocabulary: 300, skew: 1.0, seed: 9 };
    // The generated text gives each worker its own share, so the input depends on the worker
    // count: feed the same lines to both runs through a queue instead.
    let mut generator = ember::LineGenerator::new(&text, 0);
    let batches: Vec<Vec<String>> = (0..BATCHES).map(|_| (0..2_000).map(|_| generator.next_line()).collect()).collect();
    let counts = ssc
        .queue_stream(batches, true)
        .flat_map(|line: String| line.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b)
        .collect_batches();
    ssc.run_batches(BATCHES).unwrap();
    ssc.stop(false).unwrap();
    counts
        .batches()
        .into_iter()
        .map(|(t, mut b)| {
            b.sort();
            format!("{} {b:?}", t.millis())
        })
        .collect()
}

#[test]
#[ignore = "run as a child process by `word_count_two_processes_equals_local_1`"]
fn word_count_cluster_child() {
    for line in word_count(Conf::new()) {
        println!("WC {line}");
    }
}

#[test]
fn word_count_two_processes_equals_local_1() {
    let local = {
        let _g = exclusive();
        word_count(Conf::new().master("local[1]"))
    };
    assert_eq!(local.len(), BATCHES as usize);
    let outputs = common::run_cluster("word_count_cluster_child", &[]);
    assert_eq!(common::tagged(&outputs[0].stdout, "WC"), local, "process 0 (the driver) prints the local[1] output");
    assert!(common::tagged(&outputs[1].stdout, "WC").iter().all(|l| l.ends_with(" []")), "process 1 collects nothing");
}

static START_OF_ENDLESS: std::sync::OnceLock<std::sync::Mutex<Option<u64>>> = std::sync::OnceLock::new();

/// A job that runs batch after batch until it fails; prints `STARTED`, then `BATCH n` after each
/// batch; on an error prints `ERROR <error>` to stderr and exits with 1. `CHILD_CONNECT_TIMEOUT`
/// sets `cluster.connect_timeout`.
#[test]
#[ignore = "run as a child process by the fail-fast tests"]
fn endless_cluster_child() {
    let connect = std::env::var("CHILD_CONNECT_TIMEOUT").unwrap_or_else(|_| "60s".into());
    let conf = Conf::new().manual_clock(true).set("cluster.connect_timeout", connect);
    let fail = |e: ember::Error| -> ! {
        eprintln!("ERROR {e}");
        std::process::exit(1)
    };
    let ssc = StreamingContext::new(conf, Duration::from_secs(1)).unwrap_or_else(|e| fail(e));
    let text = GeneratedText { lines_per_second: 200, words_per_line: 4, vocabulary: 50, skew: 1.0, seed: 3 };
    // `CHILD_PANIC_AFTER=n`: process 1's `flat_map` panics on its n-th line.
    let panic_after: Option<u64> = std::env::var("CHILD_PANIC_AFTER").ok().and_then(|n| n.parse().ok());
    let in_process_1 = std::env::var("EMBER_CLUSTER_PROCESS").as_deref() == Ok("1");
    let seen = std::sync::atomic::AtomicU64::new(0);
    if std::env::var("CHILD_ANOTHER_JOB").is_ok() {
        ssc.generated_text_stream_with(text.clone()).count().foreach_batch(|_, _: Vec<u64>| {});
    }
    let counts = ssc
        .generated_text_stream_with(text)
        .flat_map(move |line: String| {
            let n = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if in_process_1 && Some(n) == panic_after {
                panic!("line {n} is one too many");
            }
            line.split(' ').map(str::to_owned).collect::<Vec<_>>()
        })
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b)
        .count();
    let _c = counts.collect_batches();
    // `CHILD_BLOCK_OUTPUT`: the driver's output blocks for good from batch 3 on.
    if std::env::var("CHILD_BLOCK_OUTPUT").is_ok() {
        let first = START_OF_ENDLESS.get_or_init(|| std::sync::Mutex::new(None));
        counts.foreach_batch(move |t, _: Vec<u64>| {
            let start = *first.lock().unwrap().get_or_insert(t.millis());
            if t.millis() >= start + 2000 {
                println!("BLOCKED");
                loop {
                    ember::clock::real_sleep(Duration::from_secs(3600));
                }
            }
        });
    }
    ssc.start().unwrap_or_else(|e| fail(e));
    println!("STARTED");
    for n in 0.. {
        ssc.run_batches(1).unwrap_or_else(|e| fail(e));
        println!("BATCH {n}");
    }
}

/// Process `process` of a 2 x 2 job at `hosts`, running `endless_cluster_child`.
fn spawn_endless(hosts: &str, process: usize, extra: &[(&str, &str)]) -> std::process::Child {
    spawn_child("endless_cluster_child", hosts, process, extra)
}

/// Process `process` of a 2 x 2 job at `hosts`, running the ignored test `name` with `extra` in
/// its environment, its output piped.
fn spawn_child(name: &str, hosts: &str, process: usize, extra: &[(&str, &str)]) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    std::process::Command::new(exe)
        .args(["--exact", name, "--ignored", "--nocapture", "--test-threads", "1"])
        .envs(ember::testing::cluster_env(hosts, process))
        .envs(extra.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads `child`'s stdout until a line contains `tag` (panics if the output ends first); the
/// rest of stdout is drained in the background.
fn wait_for_line(child: &mut std::process::Child, tag: &str) {
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains(tag) => break,
            Some(Ok(_)) => {}
            _ => panic!("the process ended before printing {tag}"),
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
}

/// Waits for `child` to exit (a hang guard of 60 s, not a speed test); its exit code, its
/// stderr, and the seconds it took.
fn exit_of(mut child: std::process::Child) -> (Option<i32>, String, f64) {
    let watch = ember::clock::Stopwatch::start();
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), stderr.join().unwrap(), watch.elapsed().as_secs_f64());
        }
        if watch.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the process did not stop within 60 s");
        }
        ember::clock::real_sleep(Duration::from_millis(20));
    }
}

/// What a clean stop with an error looks like: exit code 1, the error named, none of timely's
/// raw panics and no "bug in Ember".
fn assert_clean_failure(code: Option<i32>, stderr: &str, wanted: &str) {
    assert_eq!(code, Some(1), "exit code 1; stderr:\n{stderr}");
    let error =
        stderr.lines().find(|l| l.starts_with("ERROR ")).unwrap_or_else(|| panic!("no error line in:\n{stderr}"));
    assert!(error.contains(wanted), "`{error}` names {wanted}");
    for noise in ["panicked", "timely communication error", "MergeQueue", "bug in Ember"] {
        assert!(!stderr.contains(noise), "stderr shows `{noise}`:\n{stderr}");
    }
}

#[test]
fn a_process_killed_mid_run_stops_the_other_with_an_error_naming_it() {
    for victim in [1, 0] {
        let hosts = ember::testing::cluster_hosts();
        let mut p0 = spawn_endless(&hosts, 0, &[]);
        let mut p1 = spawn_endless(&hosts, 1, &[]);
        let survivor_index = 1 - victim;
        let (victim_child, survivor) = if victim == 1 { (&mut p1, &mut p0) } else { (&mut p0, &mut p1) };
        wait_for_line(survivor, "BATCH 5");
        victim_child.kill().unwrap(); // SIGKILL
        victim_child.wait().unwrap();
        let survivor = if victim == 1 { p0 } else { p1 };
        let (code, stderr, secs) = exit_of(survivor);
        eprintln!("process {survivor_index} stopped {secs:.2} s after process {victim} was killed");
        let addr = hosts.split(',').nth(victim).unwrap();
        assert_clean_failure(code, &stderr, &format!("lost process {victim} ({addr})"));
    }
}

#[test]
fn a_process_killed_right_after_the_start_stops_the_other() {
    let hosts = ember::testing::cluster_hosts();
    let p0 = spawn_endless(&hosts, 0, &[]);
    let mut p1 = spawn_endless(&hosts, 1, &[]);
    wait_for_line(&mut p1, "STARTED");
    p1.kill().unwrap();
    p1.wait().unwrap();
    let (code, stderr, _) = exit_of(p0);
    assert_clean_failure(code, &stderr, "process 1");
}

#[test]
fn a_process_started_alone_stops_after_the_connect_timeout_naming_the_missing_one() {
    let hosts = ember::testing::cluster_hosts();
    let p1 = spawn_endless(&hosts, 1, &[("CHILD_CONNECT_TIMEOUT", "1500ms")]);
    let (code, stderr, secs) = exit_of(p1);
    assert_clean_failure(
        code,
        &stderr,
        &format!("no connection with process 0 ({})", hosts.split(',').next().unwrap()),
    );
    assert!(stderr.contains("cluster.connect_timeout"), "the error names the setting:\n{stderr}");
    eprintln!("stopped after {secs:.2} s");
}

#[test]
fn processes_of_different_shapes_refuse_each_other() {
    let hosts = ember::testing::cluster_hosts();
    let p0 = spawn_endless(&hosts, 0, &[("CHILD_CONNECT_TIMEOUT", "20s")]);
    let p1 = spawn_endless(&hosts, 1, &[("CHILD_CONNECT_TIMEOUT", "20s"), ("EMBER_CLUSTER_WORKERS", "3")]);
    for (i, p) in [p0, p1].into_iter().enumerate() {
        let (code, stderr, _) = exit_of(p);
        assert_clean_failure(code, &stderr, "processes x");
        eprintln!("process {i}: {}", stderr.lines().find(|l| l.starts_with("ERROR")).unwrap_or(""));
    }
}

#[test]
fn a_failed_batch_in_one_process_stops_every_process_with_its_error() {
    let hosts = ember::testing::cluster_hosts();
    let p0 = spawn_endless(&hosts, 0, &[("CHILD_PANIC_AFTER", "300")]);
    let p1 = spawn_endless(&hosts, 1, &[("CHILD_PANIC_AFTER", "300")]);
    let (code0, err0, _) = exit_of(p0);
    let (code1, err1, _) = exit_of(p1);
    assert_eq!((code0, code1), (Some(1), Some(1)), "both exit with 1:\n{err0}\n{err1}");
    let line = |s: &str| s.lines().find(|l| l.starts_with("ERROR ")).unwrap_or("").to_owned();
    let addr = hosts.split(',').nth(1).unwrap();
    assert!(line(&err1).contains("the function of `flat_map` panicked"), "{err1}");
    assert!(line(&err1).contains("line 300 is one too many"), "{err1}");
    let want = format!("process 1 ({addr}) failed: the function of `flat_map` panicked");
    assert!(line(&err0).contains(&want), "process 0 names process 1 and its error: {err0}");
    assert!(line(&err0).contains("line 300 is one too many"), "{err0}");
    for noise in ["timely communication error", "MergeQueue", "bug in Ember"] {
        assert!(!err0.contains(noise) && !err1.contains(noise), "`{noise}` in\n{err0}\n{err1}");
    }
}

const START: u64 = 1_700_000_000_000;

/// Running totals of the words of 100 generated lines a second.
fn word_totals(ssc: &StreamingContext) -> ember::DStream<(String, u64)> {
    let text = GeneratedText { lines_per_second: 100, words_per_line: 3, vocabulary: 20, skew: 1.0, seed: 5 };
    ssc.generated_text_stream_with(text)
        .flat_map(|line: String| line.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .map(|w| (w, 1u64))
        .update_state_by_key(|n: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + n.len() as u64))
}

/// Running word totals, checkpointed every 2 s to `CHILD_CK`, run for `CHILD_BATCHES` batches
/// (recovering from the checkpoint when there is one); the driver prints `TOT <t> <totals>` per
/// batch. Fails as `endless_cluster_child` does.
#[test]
#[ignore = "run as a child process by the checkpoint tests"]
fn checkpointed_cluster_child() {
    use ember::Clock;
    let ck = std::path::PathBuf::from(std::env::var("CHILD_CK").unwrap());
    let batches: u64 = std::env::var("CHILD_BATCHES").unwrap().parse().unwrap();
    let fail = |e: ember::Error| -> ! {
        eprintln!("ERROR {e}");
        std::process::exit(1)
    };
    let build = || -> ember::Result<StreamingContext> {
        let conf =
            Conf::new().manual_clock(true).set("clock.manual.start", START.to_string()).set("checkpoint.sync", "false");
        let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
        ssc.checkpoint(&ck);
        word_totals(&ssc).checkpoint(Duration::from_secs(2)).foreach_batch(|t, mut totals: Vec<(String, u64)>| {
            totals.sort();
            println!("TOT {} {totals:?}", t.millis());
        });
        Ok(ssc)
    };
    let ssc = StreamingContext::get_or_create(&ck, build).unwrap_or_else(|e| fail(e));
    let clock = ssc.manual_clock().unwrap();
    ssc.start().unwrap_or_else(|e| fail(e));
    while clock.now_millis() < START + batches * 1000 {
        ssc.run_batches(1).unwrap_or_else(|e| fail(e));
    }
    ssc.stop(false).unwrap_or_else(|e| fail(e));
}

/// Runs `checkpointed_cluster_child` as 2 processes x 2 workers; their exit codes, the driver's
/// `TOT` lines by batch time, and both stderrs.
fn run_checkpointed(ck: &std::path::Path, batches: u64) -> (Vec<Option<i32>>, BTreeMap<u64, String>, Vec<String>) {
    let hosts = ember::testing::cluster_hosts();
    let (ck, batches) = (ck.to_str().unwrap(), batches.to_string());
    let extra = [("CHILD_CK", ck), ("CHILD_BATCHES", batches.as_str())];
    let children: Vec<_> = (0..2).map(|i| spawn_child("checkpointed_cluster_child", &hosts, i, &extra)).collect();
    let outs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let totals = ember::testing::tagged(&outs[0].stdout, "TOT")
        .into_iter()
        .map(|l| {
            let (t, rest) = l.split_once(' ').unwrap();
            (t.parse().unwrap(), rest.to_owned())
        })
        .collect();
    let codes = outs.iter().map(|o| o.status.code()).collect();
    (codes, totals, outs.iter().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).collect())
}

fn commits(ck: &std::path::Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(ck.join("commits")) else { return Vec::new() };
    let mut times: Vec<u64> = entries.filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok()).collect();
    times.sort_unstable();
    times
}

#[test]
fn a_checkpoint_part_that_one_process_cannot_write_commits_nothing_and_stops_every_process() {
    const BATCHES: u64 = 8;
    let dir = tempfile::tempdir().unwrap();
    let (codes, straight, errs) = run_checkpointed(&dir.path().join("a"), BATCHES);
    assert_eq!(codes, [Some(0), Some(0)], "the uninterrupted run: {errs:?}");
    assert_eq!(straight.len(), BATCHES as usize);

    // Worker 2 (process 1) cannot write its state of checkpoint START + 4000: a file stands
    // where its directory goes.
    let ck = dir.path().join("b");
    let broken = START + 4000;
    std::fs::create_dir_all(ck.join(format!("state/{broken}"))).unwrap();
    std::fs::write(ck.join(format!("state/{broken}/w2")), "in the way").unwrap();
    let (codes, _, errs) = run_checkpointed(&ck, BATCHES);
    assert_eq!(codes, [Some(1), Some(1)], "both processes stop with an error: {errs:?}");
    let error = |s: &str| s.lines().find(|l| l.starts_with("ERROR ")).unwrap_or("").to_owned();
    let path = format!("state/{broken}/w2");
    assert!(error(&errs[1]).contains(&path), "process 1 names the path: {}", errs[1]);
    assert!(
        error(&errs[0]).contains("process 1 (") && error(&errs[0]).contains(&path),
        "process 0 names process 1 and the path: {}",
        errs[0]
    );
    // Checkpoint `broken` never commits. The one before does, unless the driver, on a loaded
    // machine, stopped before it saw that batch complete in every process.
    let committed = commits(&ck);
    assert!(committed == [START + 2000] || committed.is_empty(), "checkpoint {broken} is not committed: {committed:?}");

    // Recovery takes the previous checkpoint and goes on as the uninterrupted run did.
    std::fs::remove_file(ck.join(&path)).unwrap();
    let (codes, recovered, errs) = run_checkpointed(&ck, BATCHES);
    assert_eq!(codes, [Some(0), Some(0)], "the recovered run: {errs:?}");
    let first = committed.last().map_or(START + 1000, |c| c + 1000);
    assert_eq!(recovered.keys().next(), Some(&first), "the batches after checkpoint {committed:?}");
    for (t, line) in &recovered {
        assert_eq!(line, &straight[t], "batch {t}");
    }
}

/// `ember-launch` around a shell command; its exit code and stderr.
fn launch_shell(args: &[&str], script: &str) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ember-launch"))
        .args(args)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_launcher_gives_each_process_its_place_in_the_cluster() {
    let (code, stdout, stderr) = launch_shell(
        &["--processes", "3", "--workers", "2", "--port", "7300"],
        "echo \"$EMBER_CLUSTER_PROCESS $EMBER_CLUSTER_WORKERS $EMBER_CLUSTER_HOSTS $EMBER_LAUNCH_ATTEMPT\"",
    );
    assert_eq!(code, Some(0), "{stderr}");
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort_unstable();
    let hosts = "127.0.0.1:7300,127.0.0.1:7301,127.0.0.1:7302";
    assert_eq!(lines, [0, 1, 2].map(|i| format!("{i} 2 {hosts} 0")));
    assert!(stderr.contains("ember-launch: every process finished"), "{stderr}");
}

#[test]
fn the_launcher_restarts_every_process_until_its_budget_is_spent() {
    // Process 1 fails at once; process 0 would run for a minute: the launcher stops it, starts
    // both again, twice, then gives up with process 1's exit code.
    let (code, stdout, stderr) = launch_shell(
        &["--hosts", "127.0.0.1:7310,127.0.0.1:7311", "--max-restarts", "2", "--backoff", "0", "--grace", "200ms"],
        "echo attempt $EMBER_LAUNCH_ATTEMPT; if [ $EMBER_CLUSTER_PROCESS = 1 ]; then exit 3; else exec sleep 60; fi",
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("attempt")).count(), 6, "3 runs of 2 processes: {stdout}");
    assert!(stderr.contains("process 1 exited with 3"), "{stderr}");
    assert!(stderr.contains("killing the processes still running"), "{stderr}");
    assert!(stderr.contains("giving up after 2 restarts"), "{stderr}");
}

/// Generated lines counted with the accumulator `lines` in a transformation, on every worker of
/// every process, and with `seen` in `foreach_batch` on the driver; checkpointed to `CHILD_CK`,
/// run to batch `CHILD_BATCHES` (recovering when a checkpoint is there), then stopped gracefully
/// (a final checkpoint). The driver prints `ACC <lines> <seen>`.
#[test]
#[ignore = "run as a child process by the accumulator test"]
fn accumulators_cluster_child() {
    use ember::Clock;
    let ck = std::path::PathBuf::from(std::env::var("CHILD_CK").unwrap());
    let batches: u64 = std::env::var("CHILD_BATCHES").unwrap().parse().unwrap();
    let build = || -> ember::Result<StreamingContext> {
        let conf =
            Conf::new().manual_clock(true).set("clock.manual.start", START.to_string()).set("checkpoint.sync", "false");
        let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
        ssc.checkpoint(&ck);
        let (lines, seen) = (ssc.accumulator("lines"), ssc.accumulator("seen"));
        let text = GeneratedText { lines_per_second: 3_000, words_per_line: 2, vocabulary: 20, skew: 1.0, seed: 8 };
        ssc.generated_text_stream_with(text)
            .map(move |l: String| {
                lines.add(1);
                l
            })
            .count()
            .foreach_batch(move |_, n: Vec<u64>| seen.add(n.iter().sum::<u64>() as i64));
        Ok(ssc)
    };
    let ssc = StreamingContext::get_or_create(&ck, build).unwrap();
    let clock = ssc.manual_clock().unwrap();
    ssc.start().unwrap();
    while clock.now_millis() < START + batches * 1000 {
        ssc.run_batches(1).unwrap();
    }
    ssc.stop(true).unwrap();
    if ssc.is_driver() {
        println!("ACC {} {}", ssc.accumulator("lines").value(), ssc.accumulator("seen").value());
    }
}

#[test]
fn accumulators_add_up_over_every_process_and_across_a_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let mut last = 0;
    for batches in [4, 8] {
        let outputs = ember::testing::run_cluster(
            "accumulators_cluster_child",
            &[("CHILD_CK", ck.display().to_string()), ("CHILD_BATCHES", batches.to_string())],
        );
        let line = ember::testing::tagged(&outputs[0].stdout, "ACC");
        let [lines, seen]: [i64; 2] =
            line[0].split(' ').map(|n| n.parse().unwrap()).collect::<Vec<_>>().try_into().unwrap();
        assert!(lines > last, "{lines} lines after {batches} batches");
        assert_eq!(lines, seen, "the lines counted on every worker of both processes are the lines the driver saw");
        last = lines;
    }
}

/// A receiver that stores as fast as its rate limit lets it; the one beside a worker of process
/// 1 prints `RATE <r>` the first time its limit differs from the initial rate.
struct Firehose;

impl ember::operator::Receiver<u64> for Firehose {
    fn on_start(&mut self, ctx: &ember::operator::ReceiverContext<u64>) -> ember::Result<()> {
        let mut reported = false;
        while !ctx.is_stopped() {
            ctx.store_many(vec![1; 20]);
            let rate = ctx.current_rate_limit();
            if !reported && rate.is_some_and(|r| r != 500.0) {
                println!("RATE {}", rate.unwrap_or(0.0));
                reported = true;
            }
        }
        Ok(())
    }
}

/// Three receivers (input 2 beside worker 2, in process 1) under backpressure on 200 ms batches
/// of the real clock, for 3 s. The driver prints `RECEIVER <stream> <worker>` for each receiver
/// start it hears of and `LIMIT <stream> <rate>` for the rates in the last completed batch.
#[test]
#[ignore = "run as a child process by the backpressure test"]
fn backpressure_cluster_child() {
    let conf = Conf::new().set("backpressure.enabled", "true").set("backpressure.initial_rate", "500");
    let ssc = StreamingContext::new(conf, Duration::from_millis(200)).unwrap();
    struct Heard(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    impl ember::StreamingListener for Heard {
        fn on_receiver_started(&mut self, i: &ember::ReceiverInfo) {
            self.0.lock().unwrap().push(format!("RECEIVER {} {}", i.stream_id, i.worker));
        }
        fn on_batch_completed(&mut self, b: &ember::BatchInfo) {
            let mut heard = self.0.lock().unwrap();
            heard.retain(|l| !l.starts_with("LIMIT"));
            for s in &b.stream_input_info {
                heard.push(format!("LIMIT {} {}", s.input_stream_id, s.rate_limit.unwrap_or(0.0)));
            }
        }
    }
    let heard = std::sync::Arc::default();
    ssc.add_streaming_listener(Heard(std::sync::Arc::clone(&heard)));
    let streams: Vec<_> = (0..3).map(|_| ssc.receiver_stream(Firehose)).collect();
    streams[0].union(&streams[1]).union(&streams[2]).count().foreach_batch(|_, _: Vec<u64>| {});
    ssc.start().unwrap();
    let _ = ssc.await_termination_or_timeout(Duration::from_secs(3));
    ssc.stop(false).unwrap();
    for line in heard.lock().unwrap().iter() {
        println!("{line}");
    }
}

#[test]
fn backpressure_reaches_a_receiver_in_another_process() {
    let outputs = ember::testing::run_cluster("backpressure_cluster_child", &[]);
    let driver = |tag| ember::testing::tagged(&outputs[0].stdout, tag);
    let mut receivers = driver("RECEIVER");
    receivers.sort();
    assert_eq!(receivers, ["0 0", "1 1", "2 2"], "the driver hears of every receiver's start");
    let limits = driver("LIMIT");
    assert!(
        limits.iter().any(|l| l.starts_with("2 ") && l != "2 0"),
        "the driver reports a rate for input 2: {limits:?}"
    );
    let rate = ember::testing::tagged(&outputs[1].stdout, "RATE");
    assert_eq!(
        rate.len(),
        1,
        "the receiver in process 1 got a rate from the driver's estimator: {:?}",
        String::from_utf8_lossy(&outputs[1].stdout)
    );
}

#[test]
fn processes_of_different_jobs_refuse_each_other() {
    let hosts = ember::testing::cluster_hosts();
    let p0 = spawn_endless(&hosts, 0, &[("CHILD_CONNECT_TIMEOUT", "20s")]);
    let p1 = spawn_endless(&hosts, 1, &[("CHILD_CONNECT_TIMEOUT", "20s"), ("CHILD_ANOTHER_JOB", "1")]);
    for p in [p0, p1] {
        let (code, stderr, _) = exit_of(p);
        assert_clean_failure(code, &stderr, "it runs another job");
    }
}

/// Word totals checkpointed to `CHILD_CK`, run to batch 4; then process 1 asks for a graceful
/// stop, and process 0 only waits for the job to end.
#[test]
#[ignore = "run as a child process by the graceful stop test"]
fn graceful_stop_cluster_child() {
    use ember::Clock;
    let ck = std::path::PathBuf::from(std::env::var("CHILD_CK").unwrap());
    let conf =
        Conf::new().manual_clock(true).set("clock.manual.start", START.to_string()).set("checkpoint.sync", "false");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1)).unwrap();
    ssc.checkpoint(&ck);
    word_totals(&ssc).foreach_batch(|t, v: Vec<(String, u64)>| println!("TOT {} {}", t.millis(), v.len()));
    let clock = ssc.manual_clock().unwrap();
    ssc.start().unwrap();
    while clock.now_millis() < START + 4000 {
        ssc.run_batches(1).unwrap();
    }
    if ssc.is_driver() {
        ssc.await_termination().unwrap();
    } else {
        ssc.stop(true).unwrap();
    }
}

#[test]
fn a_graceful_stop_asked_in_one_process_stops_every_process_at_one_checkpointed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let hosts = ember::testing::cluster_hosts();
    let extra = [("CHILD_CK", ck.to_str().unwrap())];
    let children: Vec<_> = (0..2).map(|i| spawn_child("graceful_stop_cluster_child", &hosts, i, &extra)).collect();
    let mut driver_out = String::new();
    for (i, mut c) in children.into_iter().enumerate() {
        let mut out = c.stdout.take().unwrap();
        let (code, stderr, _) = exit_of(c);
        assert_eq!(code, Some(0), "process {i}: {stderr}");
        if i == 0 {
            std::io::Read::read_to_string(&mut out, &mut driver_out).unwrap();
        }
    }
    let last = ember::testing::tagged(driver_out.as_bytes(), "TOT").last().cloned().unwrap_or_default();
    assert!(last.starts_with(&(START + 5000).to_string()), "the open batch ran last: {driver_out}");
    assert_eq!(commits(&ck).last(), Some(&(START + 5000)), "and both processes' parts of it are committed");
}

#[test]
fn a_process_blocked_in_an_output_stops_within_the_failure_timeout_when_its_peer_dies() {
    let hosts = ember::testing::cluster_hosts();
    let mut p0 = spawn_endless(&hosts, 0, &[("CHILD_BLOCK_OUTPUT", "1")]);
    let mut p1 = spawn_endless(&hosts, 1, &[("CHILD_BLOCK_OUTPUT", "1")]);
    wait_for_line(&mut p0, "BLOCKED");
    p1.kill().unwrap();
    p1.wait().unwrap();
    let (code, stderr, secs) = exit_of(p0);
    eprintln!("the driver, blocked in its output, stopped {secs:.2} s after its peer was killed");
    assert_clean_failure(code, &stderr, "lost process 1");
}
