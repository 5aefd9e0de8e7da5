//! Paths where a job used to lose data or stop: state with a checkpoint directory, a stop below a
//! slower operator's frontier, a panic on a worker other than the driver, an output that fails at
//! a checkpoint batch, damaged checkpoints, and a checkpoint of another job.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use ember::dstream::map_with_state::{State, StateSpec};
use ember::testing::exclusive;
use ember::{Clock, Conf, StreamingContext};

const START: u64 = 1_700_000_000_000;

fn conf(master: &str) -> Conf {
    Conf::new()
        .master(master)
        .manual_clock(true)
        .set("clock.manual.start", START.to_string())
        .set("checkpoint.sync", "false")
}

fn commits(ck: &Path) -> Vec<u64> {
    let mut t: Vec<u64> = std::fs::read_dir(ck.join("commits"))
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_string_lossy().parse().ok()).collect())
        .unwrap_or_default();
    t.sort();
    t
}

/// Files of words, one per batch `1..=batches`, with modification times inside their batch.
/// Batch 3's file also holds 1,100 `boom` lines: more than one worker's block of a batch, so
/// that some reach a worker other than the driver.
fn write_words(dir: &Path, batches: u64) -> BTreeMap<String, u64> {
    write_words_with(dir, batches, 1100)
}

fn write_words_with(dir: &Path, batches: u64, booms: usize) -> BTreeMap<String, u64> {
    std::fs::create_dir_all(dir).unwrap();
    let mut totals = BTreeMap::new();
    for b in 1..=batches {
        let mut lines: Vec<String> = (0..6).map(|i| format!("w{} w{}", (b + i) % 4, i % 3)).collect();
        if b == 3 {
            lines.extend((0..booms).map(|_| "boom".to_string()));
        }
        for w in lines.iter().flat_map(|l| l.split(' ')) {
            *totals.entry(w.to_string()).or_insert(0) += 1;
        }
        let path = dir.join(format!("f{b}.txt"));
        std::fs::write(&path, lines.join("\n")).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_millis(START + b * 1000 - 500)).unwrap();
    }
    totals
}

/// Word totals of the files in `input`, checkpointed every batch and saved per batch under `out`.
/// With `boom`, a `map` panics on `boom` lines on every worker but the driver.
fn totals_job(input: &Path, out: &Path, ck: &Path, boom: bool) -> ember::Result<StreamingContext> {
    totals_job_with(conf("local[2]"), input, out, ck, boom)
}

fn totals_job_with(conf: Conf, input: &Path, out: &Path, ck: &Path, boom: bool) -> ember::Result<StreamingContext> {
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    ssc.checkpoint(ck);
    // Failing workers: every one but the driver; in a job of two processes, the second one's.
    let process = std::env::var("EMBER_CLUSTER_PROCESS").ok();
    let words = ssc
        .text_file_stream(input)
        .map(move |l: String| {
            let fails = match process.as_deref() {
                Some(p) => p == "1",
                None => std::thread::current().name() != Some("timely:work-0"),
            };
            if boom && l == "boom" && fails {
                panic!("cannot take {l}");
            }
            l
        })
        .flat_map(|l: String| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .map(|w| (w, 1u64));
    words
        .update_state_by_key(|n: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + n.len() as u64))
        .checkpoint(Duration::from_secs(1))
        .save_as_text_files(out.join("totals").display().to_string(), "");
    Ok(ssc)
}

fn totals_at(out: &Path, t: u64) -> Vec<String> {
    ember::testing::committed_outputs(out).remove(&format!("totals-{t}")).unwrap_or_default()
}

fn expected_lines(totals: &BTreeMap<String, u64>) -> Vec<String> {
    let mut v: Vec<String> = totals.iter().map(|(w, n)| format!("({w},{n})")).collect();
    v.sort();
    v
}

/// Runs `f` on another thread; fails the test if it does not return within a minute.
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("{what} did not return within a minute"))
}

#[test]
fn map_with_state_with_a_checkpoint_directory_runs_through_its_checkpoints() {
    let _g = exclusive();
    for interval in [None, Some(Duration::from_secs(1))] {
        let dir = tempfile::tempdir().unwrap();
        let ssc = StreamingContext::new(conf("local[1]"), Duration::from_secs(1)).unwrap();
        ssc.checkpoint(dir.path());
        let spec = StateSpec::function(|_k: &char, v: Option<u64>, st: &mut State<u64>| {
            let n = st.get().copied().unwrap_or(0) + v.unwrap_or(0);
            st.update(n);
            n
        });
        let counts =
            ssc.queue_stream((0..12).map(|_| vec![('a', 1u64)]).collect::<Vec<_>>(), true).map_with_state(spec);
        if let Some(i) = interval {
            counts.checkpoint(i);
        }
        let out = (*counts).clone().collect_batches();
        ssc.run_batches(12).unwrap();
        ssc.stop(false).unwrap();
        let got: Vec<u64> = out.batches().into_iter().map(|(_, b)| b[0]).collect();
        assert_eq!(got, (1..=12).collect::<Vec<u64>>(), "interval {interval:?}");
        let c = commits(dir.path());
        assert!(c.contains(&(START + 10_000)), "checkpoint 10 s committed (interval {interval:?}): {c:?}");
    }
}

#[test]
fn a_stop_runs_no_output_past_the_final_batch() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let ssc = StreamingContext::new(conf("local[2]"), Duration::from_secs(1)).unwrap();
    let s = ssc.queue_stream((1..=8).map(|i| vec![i]).collect::<Vec<_>>(), true);
    let plain = s.collect_batches();
    let windowed = s.reduce_by_window(|a, b| a + b, Duration::from_secs(2), Duration::from_secs(2)).collect_batches();
    s.save_as_text_files(dir.path().join("x").display().to_string(), "");
    ssc.run_batches(4).unwrap();
    ssc.stop(false).unwrap();
    let times = |b: Vec<(ember::Time, Vec<i32>)>| b.into_iter().map(|(t, _)| t.millis() - START).collect::<Vec<_>>();
    assert_eq!(times(plain.batches()), vec![1000, 2000, 3000, 4000]);
    assert_eq!(times(windowed.batches()), vec![2000, 4000]);
    let dirs: Vec<String> = ember::testing::committed_outputs(dir.path()).into_keys().collect();
    let want: Vec<String> = (1..=4).map(|i| format!("x-{}", START + i * 1000)).collect();
    assert_eq!(dirs, want, "no output directory for a batch past the end");
}

#[test]
fn a_panic_on_another_worker_fails_the_batch_and_commits_nothing_past_it() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (input, out, ck) = (dir.path().join("in"), dir.path().join("out"), dir.path().join("ck"));
    let totals = write_words(&input, 6);
    let ssc = totals_job(&input, &out, &ck, true).unwrap();
    let e = within_a_minute("run_batches", move || {
        let e = ssc.run_batches(6).unwrap_err().to_string();
        let stopped = ssc.stop(true);
        (e, stopped.is_ok() || stopped.is_err())
    })
    .0;
    assert!(
        e.contains(&format!("the function of `map` panicked at batch {} ms: cannot take boom", START + 3000)),
        "{e}"
    );
    let outputs: Vec<String> = ember::testing::committed_outputs(&out).into_keys().collect();
    assert_eq!(
        outputs,
        vec![format!("totals-{}", START + 1000), format!("totals-{}", START + 2000)],
        "no partial batch"
    );
    assert_eq!(commits(&ck).last(), Some(&(START + 2000)), "no checkpoint past the failed batch");

    // Fixed and restarted: batch 3 runs again, with all its records.
    let ssc = StreamingContext::get_or_create(&ck, || totals_job(&input, &out, &ck, false)).unwrap();
    ssc.start().unwrap();
    assert_eq!(ssc.manual_clock().unwrap().now_millis(), START + 2000);
    ssc.run_batches(4).unwrap();
    ssc.stop(false).unwrap();
    assert_eq!(totals_at(&out, START + 6000), expected_lines(&totals));
    assert!(totals_at(&out, START + 3000).iter().any(|l| l == "(boom,1100)"));
}

#[test]
fn an_output_failing_at_a_checkpoint_batch_is_run_again_by_the_recovery() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (input, out, ck) = (dir.path().join("in"), dir.path().join("out"), dir.path().join("ck"));
    let totals = write_words(&input, 6);
    // Batch 3's output cannot be written: a file stands where its directory must go.
    std::fs::create_dir_all(&out).unwrap();
    let in_the_way = out.join(format!("totals-{}._temporary", START + 3000));
    std::fs::write(&in_the_way, "in the way").unwrap();
    let ssc = totals_job(&input, &out, &ck, false).unwrap();
    let e = ssc.run_batches(6).unwrap_err().to_string();
    assert!(e.contains("save_as_text_files") && e.contains(&format!("{} ms", START + 3000)), "{e}");
    let _ = ssc.stop(false);
    assert_eq!(commits(&ck).last(), Some(&(START + 2000)), "no checkpoint at or after the failed output");

    std::fs::remove_file(&in_the_way).unwrap();
    let ssc = StreamingContext::get_or_create(&ck, || totals_job(&input, &out, &ck, false)).unwrap();
    ssc.start().unwrap();
    assert_eq!(ssc.manual_clock().unwrap().now_millis(), START + 2000);
    ssc.run_batches(4).unwrap();
    ssc.stop(false).unwrap();
    let outputs = ember::testing::committed_outputs(&out);
    for b in 1..=6 {
        assert!(outputs.contains_key(&format!("totals-{}", START + b * 1000)), "batch {b}'s output");
    }
    assert_eq!(totals_at(&out, START + 6000), expected_lines(&totals));
}

/// Input of 6 batches in `dir/in`, run by the totals job with checkpoints in `dir/ck`; returns
/// the input, output and checkpoint paths.
fn checkpointed_in(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (input, out, ck) = (dir.join("in"), dir.join("out"), dir.join("ck"));
    write_words(&input, 6);
    checkpointed(&ck, &input, &out);
    (input, out, ck)
}

/// A job with state on two workers, checkpointed after batches 2, 4 and 6.
fn checkpointed(ck: &Path, input: &Path, out: &Path) -> PathBuf {
    let ssc = totals_job(input, out, ck, false).unwrap();
    ssc.run_batches(6).unwrap();
    ssc.stop(false).unwrap();
    let c = commits(ck);
    assert_eq!(c.len(), 3, "three checkpoints kept: {c:?}");
    ck.join("state").join(c[2].to_string())
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_previous_one() {
    let _g = exclusive();
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 4] = [
        ("truncated state", |f| {
            let len = std::fs::metadata(f).unwrap().len();
            std::fs::OpenOptions::new().write(true).open(f).unwrap().set_len(len / 2).unwrap();
        }),
        ("zero-length state", |f| std::fs::write(f, b"").unwrap()),
        ("missing state", |f| std::fs::remove_file(f).unwrap()),
        ("flipped byte", |f| {
            let mut b = std::fs::read(f).unwrap();
            let i = b.len() - 6;
            b[i] ^= 1;
            std::fs::write(f, b).unwrap();
        }),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let (input, out, ck) = (dir.path().join("in"), dir.path().join("out"), dir.path().join("ck"));
        let totals = write_words(&input, 8);
        let newest = checkpointed(&ck, &input, &out);
        let file = std::fs::read_dir(newest.join("w1")).unwrap().flatten().next().unwrap().path();
        damage(&file);
        let times = commits(&ck);
        let (ck2, input2, out2) = (ck.clone(), input.clone(), out.clone());
        let recovered_at = within_a_minute(what, move || {
            let ssc = StreamingContext::get_or_create(&ck2, || totals_job(&input2, &out2, &ck2, false)).unwrap();
            ssc.start().unwrap();
            let at = ssc.manual_clock().unwrap().now_millis();
            ssc.run_batches(3).unwrap();
            ssc.stop(false).unwrap();
            at
        });
        assert_eq!(recovered_at, times[1], "{what}: recovered from the previous checkpoint");
        assert_eq!(totals_at(&out, START + 8000), expected_lines(&totals), "{what}");
    }
}

#[test]
fn no_whole_checkpoint_is_an_error_that_names_each_damage() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (input, out, ck) = checkpointed_in(dir.path());
    for t in commits(&ck) {
        for w in ["w0", "w1"] {
            for f in std::fs::read_dir(ck.join(format!("state/{t}/{w}"))).unwrap().flatten() {
                std::fs::write(f.path(), b"").unwrap();
            }
        }
    }
    let (ck2, input2, out2) = (ck.clone(), input.clone(), out.clone());
    let e = within_a_minute("get_or_create", move || {
        StreamingContext::get_or_create(&ck2, || totals_job(&input2, &out2, &ck2, false)).err().map(|e| e.to_string())
    })
    .expect("no usable checkpoint is an error");
    assert!(e.contains("none is readable") && e.matches("0 bytes where the commit record says").count() == 3, "{e}");
}

#[test]
fn a_checkpoint_of_another_job_is_not_taken_for_this_one() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (input, out, ck) = checkpointed_in(dir.path());
    // The same plan reading another directory.
    let other = dir.path().join("other-in");
    let e = StreamingContext::get_or_create(&ck, || totals_job(&other, &out, &ck, false)).err().expect("another job");
    let e = e.to_string();
    assert!(
        e.contains("belongs to another job")
            && e.contains(&input.display().to_string())
            && e.contains(&other.display().to_string())
            && e.contains("checkpoint.allow_changed_inputs"),
        "{e}"
    );
    // Another app name.
    let e = StreamingContext::get_or_create(&ck, || {
        totals_job_with(conf("local[2]").app_name("Other"), &input, &out, &ck, false)
    })
    .err()
    .expect("another app")
    .to_string();
    assert!(e.contains("`app ember`") && e.contains("`app Other`"), "{e}");
    // Meant: the override recovers, with a warning.
    let allowed = conf("local[2]").set("checkpoint.allow_changed_inputs", "true");
    let ssc = StreamingContext::get_or_create(&ck, || totals_job_with(allowed, &other, &out, &ck, false)).unwrap();
    ssc.start().unwrap();
    assert_eq!(ssc.manual_clock().unwrap().now_millis(), START + 6000);
    ssc.stop(false).unwrap();
}

/// Batch submissions and starts, in the order the listener sees them.
struct Order(std::sync::Arc<std::sync::Mutex<Vec<(bool, u64)>>>);

impl ember::StreamingListener for Order {
    fn on_batch_submitted(&mut self, i: &ember::BatchInfo) {
        self.0.lock().unwrap().push((true, i.batch_time.millis()));
    }
    fn on_batch_started(&mut self, i: &ember::BatchInfo) {
        self.0.lock().unwrap().push((false, i.batch_time.millis()));
    }
}

#[test]
fn batches_long_overdue_are_submitted_as_they_can_run_not_all_at_once() {
    let _g = exclusive();
    let ssc = StreamingContext::new(conf("local[2]"), Duration::from_secs(1)).unwrap();
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    ssc.add_streaming_listener(Order(std::sync::Arc::clone(&events)));
    ssc.queue_stream(vec![vec![1]], true).count().collect_batches();
    // 500 batches fall due at once, as after a long down time.
    ssc.run_batches(500).unwrap();
    ssc.stop(false).unwrap();
    let events = events.lock().unwrap().clone();
    let (mut submitted, mut started) = (0, 0);
    for (is_submit, t) in events {
        if is_submit {
            submitted = submitted.max(t - START);
        } else {
            started += 1;
            assert!(
                submitted <= t - START + 2000,
                "batch {} started with batches up to {submitted} submitted",
                t - START
            );
        }
    }
    assert_eq!((started, submitted), (500, 500_000));
}

/// Child side of the two-process panic test: the totals job with `boom`, as one process of two.
#[test]
#[ignore = "run as a child process by `a_panic_in_one_process_completes_the_batch_in_no_process`"]
fn panic_cluster_child() {
    let var = |k: &str| PathBuf::from(std::env::var(k).unwrap());
    let (input, out, ck) = (var("PANIC_IN"), var("PANIC_OUT"), var("PANIC_CK"));
    let ssc = totals_job_with(
        Conf::new().manual_clock(true).set("clock.manual.start", START.to_string()),
        &input,
        &out,
        &ck,
        true,
    )
    .unwrap();
    match ssc.run_batches(6) {
        Ok(()) => println!("RESULT ok"),
        Err(e) => println!("RESULT {e}"),
    }
    let _ = ssc.stop(false);
    // The failing process stays a while: long enough for the other to complete the failed batch,
    // were it able to.
    ember::clock::real_sleep(Duration::from_secs(3));
}

#[test]
fn a_panic_in_one_process_completes_the_batch_in_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out, ck) = (dir.path().join("in"), dir.path().join("out"), dir.path().join("ck"));
    // 3,000 `boom` lines: blocks of 1,024 reach workers 0, 1 and 2; worker 2 is in the second process.
    write_words_with(&input, 6, 3000);
    let hosts = common::free_ports(2).iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    let mut children: Vec<common::Child> = (0..2)
        .map(|i| {
            let env = [
                ("EMBER_CLUSTER_HOSTS", hosts.clone()),
                ("EMBER_CLUSTER_PROCESS", i.to_string()),
                ("EMBER_CLUSTER_WORKERS", "2".to_string()),
                ("PANIC_IN", input.display().to_string()),
                ("PANIC_OUT", out.display().to_string()),
                ("PANIC_CK", ck.display().to_string()),
                ("RUST_LOG", "off".to_string()),
            ];
            common::run_child("panic_cluster_child", &env)
        })
        .collect();
    // Both processes end: the failing one with the error, the other when it loses its peer.
    let watch = ember::clock::Stopwatch::start();
    while children.iter_mut().any(|c| c.try_finished().is_none()) {
        if watch.elapsed() > Duration::from_secs(60) {
            for c in children {
                c.kill();
            }
            panic!("the processes did not end within a minute");
        }
        ember::clock::real_sleep(Duration::from_millis(20));
    }
    let outputs: Vec<String> =
        if out.exists() { ember::testing::committed_outputs(&out).into_keys().collect() } else { Vec::new() };
    assert!(
        outputs.iter().all(|o| o == &format!("totals-{}", START + 1000) || o == &format!("totals-{}", START + 2000)),
        "no output of the failed batch or a later one: {outputs:?}"
    );
    assert!(
        commits(&ck).iter().all(|&t| t <= START + 2000),
        "no checkpoint at or after the failed batch: {:?}",
        commits(&ck)
    );
    let second = children.pop().unwrap().output();
    let said = String::from_utf8_lossy(&second.stdout);
    assert!(
        said.contains(&format!("the function of `map` panicked at batch {} ms: cannot take boom", START + 3000)),
        "the failing process returns the error: {said}"
    );
}
