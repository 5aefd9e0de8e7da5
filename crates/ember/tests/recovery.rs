//! Checkpoints and recovery: kill -9 at random points against an uninterrupted run, golden runs
//! straight and with a stop-and-recover, corrupt checkpoints, changed graphs.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ember::testing::exclusive;
use ember::{Clock, Conf, GeneratedText, StreamingContext};

const START: u64 = 1_700_000_000_000;

/// The `recoverable_word_count` example, built next to the tests.
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let path = exe.parent().and_then(Path::parent).expect("target dir").join("examples/recoverable_word_count");
    assert!(path.exists(), "{} is missing: build the examples first (`cargo build --examples`)", path.display());
    path
}

/// Input files with modification times spread over `batches` 1 s batches after START.
fn write_input(dir: &Path, files: usize, batches: u64) {
    let mut r = common::rng(99);
    std::fs::create_dir_all(dir).unwrap();
    let words = ["ember", "spark", "stream", "batch", "window", "state", "kafka", "timely"];
    for i in 0..files {
        let lines: Vec<String> = (0..(r() % 5 + 1))
            .map(|_| (0..(r() % 6 + 1)).map(|_| words[(r() % 8) as usize]).collect::<Vec<_>>().join(" "))
            .collect();
        let path = dir.join(format!("part-{i:03}.txt"));
        std::fs::write(&path, lines.join("\n")).unwrap();
        let mtime = START + 1 + (i as u64 * (batches - 1) * 1000) / files as u64;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_millis(mtime)).unwrap();
    }
}

fn run_example(input: &Path, out: &Path, ck: &Path, batches: u64) -> Command {
    let mut cmd = Command::new(example());
    cmd.args([input.as_os_str(), out.as_os_str(), ck.as_os_str()])
        .args(["--manual-clock", &START.to_string(), "--batches", &batches.to_string()])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

#[test]
fn kill_9_at_random_points_changes_nothing() {
    const BATCHES: u64 = 120;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_input(&input, 150, BATCHES);

    let watch = ember::clock::Stopwatch::start();
    let status = run_example(&input, &dir.path().join("a"), &dir.path().join("ck-a"), BATCHES).status().unwrap();
    assert!(status.success(), "the uninterrupted run failed");
    let straight = watch.elapsed();
    let want = ember::testing::committed_outputs(&dir.path().join("a"));
    assert_eq!(want.len(), 2 * BATCHES as usize, "two outputs per batch");

    // Rounds of SIGKILLs, each from an empty output and checkpoint directory and each checked
    // against the uninterrupted run. The kill points are a fraction of the uninterrupted run's
    // time; when a round's restarts are faster than that run (it ran on a loaded machine) the job
    // finishes before all its kills, so the next round kills sooner.
    let mut r = common::rng(7);
    let mut kills = 0;
    let mut scale = 1.0;
    for round in 0.. {
        assert!(round < 8, "only {kills} kill points after {round} rounds");
        let (out, ck) = (dir.path().join(format!("b{round}")), dir.path().join(format!("ck-b{round}")));
        for attempt in 0.. {
            assert!(attempt < 400, "the job did not finish after {attempt} starts");
            let mut child = run_example(&input, &out, &ck, BATCHES).spawn().unwrap();
            if kills < 20 {
                // A kill point somewhere in the first few percent of an uninterrupted run (at
                // least 30 ms in, past the start-up), so that each run makes some progress first.
                let share = 0.005 + (r() % 1000) as f64 / 1000.0 * 0.025;
                let delay = Duration::from_millis(30) + straight.mul_f64(share * scale);
                ember::clock::real_sleep(delay);
                if child.try_wait().unwrap().is_none() {
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    kills += 1;
                    continue;
                }
            }
            // The kills are done (or it finished early): let it run to the end.
            let status = child.wait().unwrap();
            assert!(status.success(), "a restarted run failed: {status}");
            break;
        }
        let got = ember::testing::committed_outputs(&out);
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "the same batches have output");
        for (name, lines) in &want {
            assert_eq!(&got[name], lines, "output {name} after {kills} kills (round {round})");
        }
        if kills >= 20 {
            break;
        }
        scale /= 2.0;
    }
}

type Collected = (ember::BatchCollector<(String, u64)>, ember::BatchCollector<(String, u64)>);

/// Generated text -> word totals and a windowed count, collected per batch.
fn stateful_job(ssc: &StreamingContext) -> Collected {
    let text = GeneratedText { lines_per_second: 40, words_per_line: 4, vocabulary: 30, skew: 1.0, seed: 5 };
    let words = ssc
        .generated_text_stream_with(text)
        .flat_map(|l: String| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .map(|w| (w, 1u64));
    let totals = words
        .update_state_by_key(|n: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + n.len() as u64))
        .checkpoint(Duration::from_secs(3));
    let windowed = words.reduce_by_key_and_window_inverse(
        |a, b| a + b,
        |a, b| a - b,
        Duration::from_secs(4),
        Duration::from_secs(2),
    );
    (totals.collect_batches(), windowed.collect_batches())
}

fn manual_conf() -> Conf {
    Conf::new()
        .master("local[2]")
        .manual_clock(true)
        .set("clock.manual.start", START.to_string())
        .set("checkpoint.sync", "false")
}

/// Both outputs by batch time, each batch sorted; a later run of a batch replaces an earlier one.
fn by_time(c: &Collected) -> BTreeMap<(u64, &'static str), Vec<(String, u64)>> {
    let tag = |name: &'static str, col: &ember::BatchCollector<(String, u64)>| {
        col.batches().into_iter().map(move |(t, mut b)| {
            b.sort();
            ((t.millis(), name), b)
        })
    };
    tag("totals", &c.0).chain(tag("windowed", &c.1)).collect()
}

#[test]
fn golden_straight_and_with_stop_and_recover_at_batch_k() {
    let _g = exclusive();
    let straight = {
        let ssc = StreamingContext::new(manual_conf(), Duration::from_secs(1)).unwrap();
        let out = stateful_job(&ssc);
        ssc.run_batches(14).unwrap();
        ssc.stop(false).unwrap();
        by_time(&out)
    };
    for k in [4, 7, 11] {
        let dir = tempfile::tempdir().unwrap();
        let mut merged = BTreeMap::new();
        let build = || -> ember::Result<(StreamingContext, _)> {
            let ssc = StreamingContext::new(manual_conf(), Duration::from_secs(1))?;
            let out = stateful_job(&ssc);
            Ok((ssc, out))
        };
        let (ssc, out) = build().unwrap();
        ssc.checkpoint(dir.path());
        ssc.run_batches(k).unwrap();
        ssc.stop(false).unwrap();
        merged.extend(by_time(&out));
        let mut collector = None;
        let ssc = StreamingContext::get_or_create(dir.path(), || {
            let (ssc, out) = build()?;
            collector = Some(out);
            Ok(ssc)
        })
        .unwrap();
        ssc.start().unwrap();
        let now = ssc.manual_clock().unwrap().now_millis();
        assert!(now < START + k * 1000, "recovered from a checkpoint before batch {k}");
        ssc.run_batches((START + 14_000 - now) / 1000).unwrap();
        ssc.stop(false).unwrap();
        merged.extend(by_time(collector.as_ref().unwrap()));
        assert_eq!(merged, straight, "stopped at batch {k} and recovered");
    }
}

fn small_job(dir: &Path, with_extra_output: bool, factor: u64) -> ember::Result<StreamingContext> {
    let ssc = StreamingContext::new(manual_conf(), Duration::from_secs(1))?;
    ssc.checkpoint(dir);
    let text = GeneratedText { lines_per_second: 5, words_per_line: 2, vocabulary: 5, skew: 0.0, seed: 1 };
    let counts = ssc.generated_text_stream_with(text).map(move |l: String| (l, factor)).reduce_by_key(|a, b| a + b);
    counts.count().collect_batches();
    if with_extra_output {
        counts.print();
    }
    Ok(ssc)
}

fn make_checkpoints(dir: &Path, batches: u64) {
    let ssc = small_job(dir, false, 1).unwrap();
    ssc.run_batches(batches).unwrap();
    ssc.stop(false).unwrap();
}

#[test]
fn a_changed_graph_is_an_error_a_changed_closure_is_not() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    make_checkpoints(dir.path(), 12);
    let e = StreamingContext::get_or_create(dir.path(), || small_job(dir.path(), true, 1))
        .err()
        .expect("a changed graph must not recover");
    let e = e.to_string();
    assert!(e.contains("differ from the checkpoint's") && e.contains("print"), "{e}");
    // Same graph, another closure: recovers.
    let ssc = StreamingContext::get_or_create(dir.path(), || small_job(dir.path(), false, 7)).unwrap();
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
}

#[test]
fn a_corrupt_checkpoint_falls_back_to_the_previous_one() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    make_checkpoints(dir.path(), 31);
    let commits = dir.path().join("commits");
    let mut times: Vec<u64> = std::fs::read_dir(&commits)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    times.sort();
    assert_eq!(times.len(), 3, "older checkpoints are pruned");
    // Flip a byte of the newest commit record.
    let newest = commits.join(times[2].to_string());
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&newest, bytes).unwrap();
    let ssc = StreamingContext::get_or_create(dir.path(), || small_job(dir.path(), false, 1)).unwrap();
    ssc.start().unwrap();
    assert_eq!(ssc.manual_clock().unwrap().now_millis(), times[1], "recovered from the previous checkpoint");
    // The damaged record is removed, so the re-run batch commits its checkpoint anew.
    assert!(!newest.exists(), "the damaged commit record is removed");
    ssc.run_batches((times[2] - times[1]) / 1000).unwrap();
    ssc.stop(false).unwrap();
    assert!(newest.exists(), "the re-run committed checkpoint {}", times[2]);
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[mid] ^= 0x40;
    std::fs::write(&newest, bytes).unwrap();
    // Truncate the others too: no readable checkpoint is an error, not a fresh start.
    for t in &times[..2] {
        let p = commits.join(t.to_string());
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len / 2).unwrap();
    }
    let e = StreamingContext::get_or_create(dir.path(), || small_job(dir.path(), false, 1))
        .err()
        .expect("no readable checkpoint");
    assert!(e.to_string().contains("none is readable"), "{e}");
}

#[test]
fn an_unusable_checkpoint_directory_is_a_clear_error() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let ssc = small_job(&file.join("ckpt"), false, 1).unwrap();
    let e = ssc.start().unwrap_err().to_string();
    assert!(e.contains("checkpoint directory") && e.contains("a-file"), "{e}");
}

#[test]
fn a_graceful_stop_writes_a_final_checkpoint() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let ssc = small_job(dir.path(), false, 1).unwrap();
    ssc.run_batches(4).unwrap(); // the interval is 10 s: no checkpoint yet
    assert!(
        !dir.path().join("commits").exists() || std::fs::read_dir(dir.path().join("commits")).unwrap().next().is_none()
    );
    ssc.stop(true).unwrap();
    let commits: Vec<String> = std::fs::read_dir(dir.path().join("commits"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(commits, vec![(START + 5000).to_string()], "the open batch ran and was checkpointed");
    let ssc = StreamingContext::get_or_create(dir.path(), || small_job(dir.path(), false, 1)).unwrap();
    ssc.start().unwrap();
    assert_eq!(ssc.manual_clock().unwrap().now_millis(), START + 5000);
    ssc.stop(false).unwrap();
}

fn wal_job(dir: &Path, port: u16) -> ember::Result<(StreamingContext, ember::BatchCollector<String>)> {
    let conf = manual_conf().set("receiver.write_ahead_log.enable", "true").set("receiver.restart_delay", "20ms");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    ssc.checkpoint(dir);
    let out = ssc.socket_text_stream("127.0.0.1", port).checkpoint(Duration::from_secs(2)).collect_batches();
    Ok((ssc, out))
}

#[test]
fn lines_in_the_write_ahead_log_survive_a_stop_exactly_once() {
    use std::io::Write;
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let mut merged: BTreeMap<u64, Vec<String>> = BTreeMap::new();

    let (ssc, out) = wal_job(dir.path(), port).unwrap();
    ssc.start().unwrap();
    let (mut conn, _) = server.accept().unwrap();
    let first: Vec<String> = (0..100).map(|i| format!("first {i}")).collect();
    conn.write_all(format!("{}\n", first.join("\n")).as_bytes()).unwrap();
    assert!(ssc.wait_for_received(100, Duration::from_secs(20)).unwrap());
    ssc.run_batches(3).unwrap();
    let second: Vec<String> = (0..50).map(|i| format!("second {i}")).collect();
    conn.write_all(format!("{}\n", second.join("\n")).as_bytes()).unwrap();
    assert!(ssc.wait_for_received(150, Duration::from_secs(20)).unwrap());
    // An immediate stop drops the open batch: the second lines are only in the write-ahead log.
    ssc.stop(false).unwrap();
    drop(conn);
    merged.extend(out.batches().into_iter().map(|(t, b)| (t.millis(), b)));
    assert!(merged.values().flatten().all(|l| l.starts_with("first")));

    let mut collector = None;
    let ssc = StreamingContext::get_or_create(dir.path(), || {
        let (ssc, out) = wal_job(dir.path(), port)?;
        collector = Some(out);
        Ok(ssc)
    })
    .unwrap();
    ssc.start().unwrap();
    let (_conn, _) = server.accept().unwrap(); // the receiver reconnects; nothing more is sent
    ssc.run_batches(3).unwrap();
    ssc.stop(false).unwrap();
    merged.extend(collector.unwrap().batches().into_iter().map(|(t, b)| (t.millis(), b)));

    let mut got: Vec<String> = merged.into_values().flatten().collect();
    got.sort();
    let mut want: Vec<String> = first.into_iter().chain(second).collect();
    want.sort();
    assert_eq!(got, want, "every logged line once");
}

fn counting_job(dir: Option<&Path>) -> ember::Result<(StreamingContext, ember::Accumulator)> {
    let ssc = StreamingContext::new(manual_conf(), Duration::from_secs(1))?;
    if let Some(d) = dir {
        ssc.checkpoint(d);
    }
    let records = ssc.accumulator("records");
    let acc = records.clone();
    let text = GeneratedText { lines_per_second: 7, words_per_line: 1, vocabulary: 3, skew: 0.0, seed: 3 };
    ssc.generated_text_stream_with(text)
        .checkpoint(Duration::from_secs(3))
        .foreach_batch(move |_t, lines: Vec<String>| acc.add(lines.len() as i64));
    Ok((ssc, records))
}

#[test]
fn accumulators_are_recovered_and_count_outputs_once() {
    let _g = exclusive();
    let (ssc, acc) = counting_job(None).unwrap();
    ssc.run_batches(10).unwrap();
    ssc.stop(false).unwrap();
    assert_eq!(acc.value(), 70);

    let dir = tempfile::tempdir().unwrap();
    let (ssc, acc) = counting_job(Some(dir.path())).unwrap();
    ssc.run_batches(7).unwrap(); // checkpoints at 3 and 6; batch 7 runs again after recovery
    ssc.stop(false).unwrap();
    assert_eq!(acc.value(), 49);
    let mut recovered = None;
    let ssc = StreamingContext::get_or_create(dir.path(), || {
        let (ssc, acc) = counting_job(Some(dir.path()))?;
        recovered = Some(acc);
        Ok(ssc)
    })
    .unwrap();
    ssc.start().unwrap();
    let acc = recovered.unwrap();
    assert_eq!(acc.value(), 42, "the value at the checkpoint of batch 6");
    ssc.run_batches(4).unwrap();
    ssc.stop(false).unwrap();
    assert_eq!(acc.value(), 70, "the same total as the uninterrupted run");
}

proptest::proptest! {
    #[test]
    fn garbage_in_place_of_a_commit_record_is_never_taken_for_one(time in 0u64..u64::MAX / 2, text in ".{0,64}") {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("commits")).unwrap();
        std::fs::write(dir.path().join("commits").join(time.to_string()), text.as_bytes()).unwrap();
        let e = StreamingContext::get_or_create(dir.path(), || small_job(dir.path(), false, 1)).err();
        proptest::prop_assert!(e.is_some_and(|e| e.to_string().contains("none is readable")));
    }
}

/// Child side of the WAL kill test: a socket stream with the write-ahead log, saved per batch.
#[test]
#[ignore = "run as a child process by `kill_9_with_the_write_ahead_log_loses_no_logged_line`"]
fn wal_kill_child() {
    let dir = PathBuf::from(std::env::var("WAL_TEST_DIR").unwrap());
    let port: u16 = std::env::var("WAL_TEST_PORT").unwrap().parse().unwrap();
    let batches: u64 = std::env::var("WAL_TEST_BATCHES").unwrap().parse().unwrap();
    let ck = dir.join("ck");
    let build = || {
        let conf = manual_conf().set("receiver.write_ahead_log.enable", "true").set("receiver.restart_delay", "10ms");
        let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
        ssc.checkpoint(&ck);
        ssc.socket_text_stream("127.0.0.1", port)
            .checkpoint(Duration::from_secs(2))
            .save_as_text_files(dir.join("out").join("lines").to_string_lossy().into_owned(), "");
        Ok(ssc)
    };
    let ssc = StreamingContext::get_or_create(&ck, build).unwrap();
    let clock = ssc.manual_clock().unwrap();
    ssc.start().unwrap();
    while clock.now_millis() < START + batches * 1000 {
        ember::clock::real_sleep(Duration::from_millis(3)); // lets lines arrive between batches
        ssc.run_batches(1).unwrap();
    }
    ssc.stop(false).unwrap();
}

/// The lines in the write-ahead-log blocks under `dir`.
fn logged_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let Ok(logs) = std::fs::read_dir(dir) else { return lines };
    for log in logs.flatten() {
        for block in std::fs::read_dir(log.path()).unwrap().flatten() {
            if block.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let bytes = std::fs::read(block.path()).unwrap();
            // magic, version, kind, length (14 bytes), payload, CRC-32 (4 bytes)
            let records: Vec<String> = bincode::deserialize(&bytes[14..bytes.len() - 4]).unwrap();
            lines.extend(records);
        }
    }
    lines
}

#[test]
fn kill_9_with_the_write_ahead_log_loses_no_logged_line() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    const BATCHES: u64 = 600;
    let dir = tempfile::tempdir().unwrap();
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let (sent, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let (sent2, done2) = (Arc::clone(&sent), Arc::clone(&done));
    server.set_nonblocking(true).unwrap();
    // The server: every connection gets fresh numbered lines until it breaks (lines in flight
    // when a job dies are lost: the socket source cannot replay them).
    let feeder = std::thread::spawn(move || {
        while !done2.load(Ordering::SeqCst) {
            match server.accept() {
                Ok((mut conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    while !done2.load(Ordering::SeqCst) {
                        let start = sent2.fetch_add(20, Ordering::SeqCst);
                        let chunk: String = (start..start + 20).map(|i| format!("line {i}\n")).collect();
                        if conn.write_all(chunk.as_bytes()).is_err() {
                            break;
                        }
                        ember::clock::real_sleep(Duration::from_millis(1));
                    }
                }
                Err(_) => ember::clock::real_sleep(Duration::from_millis(2)),
            }
        }
    });
    let env = [
        ("WAL_TEST_DIR", dir.path().to_string_lossy().into_owned()),
        ("WAL_TEST_PORT", port.to_string()),
        ("WAL_TEST_BATCHES", BATCHES.to_string()),
    ];
    let mut logged = std::collections::BTreeSet::new();
    let mut r = common::rng(11);
    let mut kills = 0;
    for attempt in 0.. {
        assert!(attempt < 300, "the job did not finish");
        let mut child = common::run_child("wal_kill_child", &env);
        if kills < 20 {
            ember::clock::real_sleep(Duration::from_millis(20 + r() % 60));
            if child.try_finished().is_none() {
                child.kill();
                kills += 1;
                logged.extend(logged_lines(&dir.path().join("ck").join("wal")));
                continue;
            }
        }
        child.finish();
        break;
    }
    done.store(true, Ordering::SeqCst);
    feeder.join().unwrap();
    // Lines logged after the last batch closed stay in the log for the next start.
    let pending: std::collections::BTreeSet<String> =
        logged_lines(&dir.path().join("ck").join("wal")).into_iter().collect();
    let out = ember::testing::committed_outputs(&dir.path().join("out"));
    let lines: Vec<&String> = out.values().flatten().collect();
    let unique: std::collections::BTreeSet<&String> = lines.iter().copied().collect();
    assert_eq!(lines.len(), unique.len(), "no line appears twice");
    let missing: Vec<&String> =
        logged.iter().filter(|l| !unique.contains(l) && !pending.contains(*l)).take(5).collect();
    assert!(missing.is_empty(), "lines that reached the log are missing from the output: {missing:?}");
    assert!(kills >= 20, "only {kills} kill points");
    assert!(logged.len() > 100 && unique.len() > 100, "{} logged, {} output", logged.len(), unique.len());
}

#[test]
fn a_checkpoint_that_cannot_be_written_stops_the_job_and_keeps_the_last_good_one() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (ssc, _acc) = counting_job(Some(dir.path())).unwrap();
    ssc.run_batches(3).unwrap(); // checkpoint 3 committed
                                 // The next checkpoint's position area is unwritable (a file where a directory must go); the
                                 // committed checkpoint's files stay intact.
    let in_the_way = dir.path().join(format!("positions/{}", START + 6000));
    std::fs::write(&in_the_way, "in the way").unwrap();
    let e = ssc.run_batches(3).unwrap_err().to_string();
    assert!(e.contains("positions"), "the error names what could not be written: {e}");
    let _ = ssc.stop(false);
    std::fs::remove_file(&in_the_way).unwrap();
    let mut recovered = None;
    let ssc = StreamingContext::get_or_create(dir.path(), || {
        let (ssc, acc) = counting_job(Some(dir.path()))?;
        recovered = Some(acc);
        Ok(ssc)
    })
    .unwrap();
    ssc.start().unwrap();
    assert_eq!(ssc.manual_clock().unwrap().now_millis(), START + 3000, "the last good checkpoint");
    assert_eq!(recovered.unwrap().value(), 21);
    ssc.stop(false).unwrap();
}

/// The newest batch's word totals saved by `recoverable_word_count` under `out`.
fn latest_totals(out: &Path) -> Vec<String> {
    if !out.exists() {
        return Vec::new();
    }
    let outputs = ember::testing::committed_outputs(out);
    outputs
        .into_iter()
        .filter_map(|(name, lines)| Some((name.strip_prefix("totals-")?.parse::<u64>().ok()?, lines)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, lines)| lines)
        .unwrap_or_default()
}

/// The newest batch time with saved totals (0: none).
fn newest_totals_batch(out: &Path) -> u64 {
    std::fs::read_dir(out)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_string_lossy().strip_prefix("totals-")?.parse::<u64>().ok())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// The committed checkpoint times in `ck`, ascending.
fn committed_times(ck: &Path) -> Vec<u64> {
    let mut t: Vec<u64> = std::fs::read_dir(ck.join("commits"))
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_string_lossy().parse().ok()).collect())
        .unwrap_or_default();
    t.sort();
    t
}

/// Waits (real time, at most a minute) until `done` holds; panics with `what` and `show()` if not.
fn wait_until(what: &str, mut done: impl FnMut() -> bool, show: impl Fn() -> String) {
    let watch = ember::clock::Stopwatch::start();
    while !done() {
        assert!(watch.elapsed() < Duration::from_secs(60), "{what} within a minute: {}", show());
        ember::clock::real_sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_file_stream_recovered_on_the_real_clock_reads_the_files_that_arrived_while_it_was_down() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out, ck) = (dir.path().join("in"), dir.path().join("out"), dir.path().join("ck"));
    std::fs::create_dir_all(&input).unwrap();
    // The job's log, shown when the test fails.
    let log = dir.path().join("job.log");
    let log_tail = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut write = |from: usize, to: usize| {
        for i in from..to {
            let words: Vec<String> = (0..4).map(|j| format!("w{}", (i * 3 + j) % 7)).collect();
            for w in &words {
                *totals.entry(w.clone()).or_insert(0) += 1;
            }
            // Written elsewhere and renamed in, as file streams expect.
            let tmp = input.join(format!("f{i}.txt.tmp"));
            std::fs::write(&tmp, words.join(" ")).unwrap();
            std::fs::rename(&tmp, input.join(format!("f{i}.txt"))).unwrap();
        }
        let mut want: Vec<String> = totals.iter().map(|(w, n)| format!("({w},{n})")).collect();
        want.sort();
        want
    };
    let start = || {
        let mut cmd = Command::new(example());
        cmd.args([input.as_os_str(), out.as_os_str(), ck.as_os_str()])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap());
        cmd.spawn().unwrap()
    };
    let mut child = start();
    // The job is up once its checkpoint directory exists; files from then on are new to it.
    wait_until("the job starts", || ck.exists(), String::new);
    let want = write(0, 5);
    wait_until("the first files are counted", || latest_totals(&out) == want, || format!("{:?}", latest_totals(&out)));
    // A checkpoint that holds them: one taken at or after the batch that counted them.
    let counted = newest_totals_batch(&out);
    wait_until(
        "a checkpoint after the files were counted is committed",
        || committed_times(&ck).last().is_some_and(|&t| t >= counted),
        || format!("{:?}, counted at {counted}", committed_times(&ck)),
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Files arrive while the job is down, then more once it is back.
    write(5, 10);
    let mut child = start();
    let want = write(10, 12);
    wait_until(
        "every file is counted once after the restart",
        || latest_totals(&out) == want,
        || format!("got {:?}, want {want:?}; the job's log ends:\n{}", latest_totals(&out), log_tail()),
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
