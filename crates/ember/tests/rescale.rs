//! Rescaling: a job stopped gracefully restarts with another number of processes or workers,
//! and every state and input position moves; compared batch for batch with one uninterrupted
//! process. Also what cannot move (a crash recovery: refused), and the cost of moving about 1 M
//! keys (a measurement run by hand).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use ember::testing::exclusive;
use ember::{Conf, GeneratedText, StreamingContext};

const START: u64 = 1_700_000_000_000;

/// Input files for the rescale test: one per batch `1..=batches`, modified inside its batch;
/// some words come back after idling longer than the 3 s timeout, some never do.
fn rescale_input(dir: &std::path::Path, batches: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut r = common::rng(31);
    for b in 1..=batches {
        let mut words: Vec<String> = (0..(r() % 40 + 10)).map(|_| format!("w{}", r() % 25)).collect();
        if b <= 2 || b % 6 == 0 {
            words.push(format!("rare{}", b % 4));
        }
        let path = dir.join(format!("part-{b:03}.txt"));
        std::fs::write(&path, words.join(" ")).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_millis(START + b * 1000 - 500)).unwrap();
    }
}

/// Word totals (`update_state_by_key`), counts over a 4 s window sliding by 2 s (the inverse
/// form), the records of a 3 s window (`window`), and `map_with_state` with a 3 s timeout, of the
/// files in `CHILD_IN`; checkpointed to `CHILD_CK`; run to batch `CHILD_BATCHES` (recovering
/// when a checkpoint is there) and stopped gracefully. The driver prints `OUT <output> <t> <records>`.
#[test]
#[ignore = "run as a child process by the rescale test"]
fn rescale_child() {
    use ember::prelude::*;
    let var = |k: &str| std::env::var(k).unwrap();
    let (input, ck) = (var("CHILD_IN"), std::path::PathBuf::from(var("CHILD_CK")));
    let batches: u64 = var("CHILD_BATCHES").parse().unwrap();
    let build = || -> ember::Result<StreamingContext> {
        let mut conf =
            Conf::new().manual_clock(true).set("clock.manual.start", START.to_string()).set("checkpoint.sync", "false");
        if let Ok(master) = std::env::var("CHILD_MASTER") {
            conf = conf.master(&master);
        }
        let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
        ssc.checkpoint(&ck);
        let words = ssc
            .text_file_stream(&input)
            .flat_map(|l: String| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
            .map(|w| (w, 1i64));
        fn out<T: std::fmt::Debug + Ord + ember::Data>(name: &'static str, s: &DStream<T>) {
            s.foreach_batch(move |t, mut v: Vec<T>| {
                v.sort();
                println!("OUT {name} {} {v:?}", t.millis());
            });
        }
        let totals = words
            .update_state_by_key(|n: Vec<i64>, s: Option<i64>| Some(s.unwrap_or(0) + n.iter().sum::<i64>()))
            .checkpoint(Duration::from_secs(2));
        out("totals", &totals);
        out(
            "windowed",
            &words.reduce_by_key_and_window_inverse(
                |a, b| a + b,
                |a, b| a - b,
                Duration::from_secs(4),
                Duration::from_secs(2),
            ),
        );
        out("window", &words.window(Duration::from_secs(3), Duration::from_secs(1)));
        let spec = StateSpec::function(|w: &String, n: Option<i64>, st: &mut State<i64>| {
            if st.is_timing_out() {
                return format!("{w} idle after {}", st.get().copied().unwrap_or(0));
            }
            let total = st.get().copied().unwrap_or(0) + n.unwrap_or(0);
            st.update(total);
            format!("{w} {total}")
        })
        .timeout(Duration::from_secs(3));
        out("mapped", &words.map_with_state(spec));
        Ok(ssc)
    };
    let ssc = StreamingContext::get_or_create(&ck, build).unwrap_or_else(|e| panic!("{e}"));
    let clock = ssc.manual_clock().unwrap();
    ssc.start().unwrap_or_else(|e| panic!("{e}"));
    while clock.now_millis() < START + batches * 1000 {
        ssc.run_batches(1).unwrap();
    }
    // `CHILD_ABRUPT`: a stop that checkpoints nothing more (batches after the last checkpoint
    // stay in the batch log, as after a crash).
    ssc.stop(std::env::var("CHILD_ABRUPT").is_err()).unwrap();
}

/// Runs `rescale_child` as `processes` processes x 2 workers (or, for 0, one process of
/// `local[2]`); the driver's `OUT` lines.
fn run_rescale(
    input: &std::path::Path,
    ck: &std::path::Path,
    processes: usize,
    batches: u64,
    master: &str,
) -> Vec<String> {
    let outs = spawn_rescale(input, ck, processes, batches, master, &[]);
    for o in &outs {
        assert!(o.status.success(), "a run failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    ember::testing::tagged(&outs[0].stdout, "OUT")
}

/// The processes of one `rescale_child` run, with `extra` in their environment, waited for.
fn spawn_rescale(
    input: &std::path::Path,
    ck: &std::path::Path,
    processes: usize,
    batches: u64,
    master: &str,
    extra: &[(&str, &str)],
) -> Vec<std::process::Output> {
    let exe = std::env::current_exe().unwrap();
    let hosts = ember::testing::loopback_hosts(processes.max(1));
    let children: Vec<_> = (0..processes.max(1))
        .map(|i| {
            let mut c = std::process::Command::new(&exe);
            c.args(["--exact", "rescale_child", "--ignored", "--nocapture", "--test-threads", "1"])
                .env("CHILD_IN", input)
                .env("CHILD_CK", ck)
                .env("CHILD_BATCHES", batches.to_string())
                .env("RUST_LOG", "warn")
                .envs(extra.iter().copied())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            if processes == 0 {
                c.env("CHILD_MASTER", master);
            } else {
                c.env("EMBER_CLUSTER_HOSTS", &hosts)
                    .env("EMBER_CLUSTER_PROCESS", i.to_string())
                    .env("EMBER_CLUSTER_WORKERS", "2");
            }
            c.spawn().unwrap()
        })
        .collect();
    children.into_iter().map(|c| c.wait_with_output().unwrap()).collect()
}

/// `OUT` lines by (output, batch time); a later line of the same batch replaces an earlier one.
fn by_batch(lines: &[String]) -> BTreeMap<(String, u64), String> {
    lines
        .iter()
        .map(|l| {
            let mut f = l.splitn(3, ' ');
            let (name, t, rest) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap_or(""));
            ((name.to_owned(), t.parse().unwrap()), rest.to_owned())
        })
        .collect()
}

#[test]
fn a_job_rescaled_from_2_to_3_processes_to_1_gives_the_output_of_one_uninterrupted_process() {
    const END: u64 = 16;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    rescale_input(&input, END + 1);
    let straight = by_batch(&run_rescale(&input, &dir.path().join("ck-a"), 0, END, "local[1]"));

    let ck = dir.path().join("ck-b");
    let mut got = BTreeMap::new();
    for (processes, batches) in [(2, 5), (3, 10), (0, END)] {
        let watch = ember::clock::Stopwatch::start();
        got.extend(by_batch(&run_rescale(&input, &ck, processes, batches, "local[2]")));
        eprintln!("{processes} processes to batch {batches}: {:.2} s", watch.elapsed().as_secs_f64());
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        straight.keys().collect::<Vec<_>>(),
        "the same outputs of the same batches"
    );
    for (k, v) in &straight {
        assert_eq!(&got[k], v, "{k:?}");
    }
    assert!(straight.values().any(|v| v.contains("idle after")), "keys time out");
}

#[test]
fn a_rescale_after_a_crash_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    rescale_input(&input, 8);
    let ck = dir.path().join("ck");
    // Stopped without a last checkpoint: batches after checkpoint 4000 are in the batch log.
    let outs = spawn_rescale(&input, &ck, 2, 5, "", &[("CHILD_ABRUPT", "1")]);
    assert!(outs.iter().all(|o| o.status.success()));
    let outs = spawn_rescale(&input, &ck, 0, 8, "local[3]", &[]);
    let stderr = String::from_utf8_lossy(&outs[0].stderr);
    assert!(!outs[0].status.success(), "the rescale is refused");
    assert!(
        stderr.contains("taken with 4 workers and this job has 3") && stderr.contains("stop gracefully"),
        "the error says why and what to do: {stderr}"
    );
    // Recovered with its 4 workers it goes on.
    assert!(spawn_rescale(&input, &ck, 2, 8, "", &[]).iter().all(|o| o.status.success()));
}

/// The cost of a rescale (a measurement, not a check; run it in a release build:
/// `cargo test --release -p ember --test rescale -- --ignored --nocapture rescale_cost`):
/// a job with about 1 M keys of `update_state_by_key` state stopped gracefully on 4 workers, then
/// recovered on 4 workers, on 2, and on 4 again, each timed from `get_or_create` to the end of
/// its first batch (of 10 lines: the time is the state's).
#[test]
#[ignore = "a measurement, run by hand"]
fn rescale_cost_of_a_million_keys() {
    use ember::Clock;
    const KEYS: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let build = |master: &str, lines_per_second: u64| {
        let conf = Conf::new()
            .master(master)
            .manual_clock(true)
            .set("clock.manual.start", START.to_string())
            .set("checkpoint.sync", "false");
        let ssc = StreamingContext::new(conf, Duration::from_secs(1)).unwrap();
        ssc.checkpoint(&ck);
        // 3 M words drawn evenly from 1 M: about 950,000 distinct keys after the first batch.
        let text =
            GeneratedText { lines_per_second, words_per_line: 10, vocabulary: KEYS as usize, skew: 0.0, seed: 1 };
        ssc.generated_text_stream_with(text)
            .flat_map(|l: String| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
            .map(|w| (w, 1u64))
            .update_state_by_key(|n: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + n.len() as u64))
            .count()
            .foreach_batch(|_, n: Vec<u64>| println!("keys in the state: {}", n.iter().sum::<u64>()));
        Ok(ssc)
    };
    let ssc = build("local[4]", 300_000).unwrap();
    ssc.run_batches(1).unwrap();
    ssc.stop(true).unwrap();
    for master in ["local[4]", "local[2]", "local[4]"] {
        let watch = ember::clock::Stopwatch::start();
        // The recovered runs read 10 lines a batch: the time is the state's.
        let ssc = StreamingContext::get_or_create(&ck, || build(master, 10)).unwrap();
        let clock = ssc.manual_clock().unwrap();
        ssc.start().unwrap();
        ssc.run_batches(1).unwrap();
        let secs = watch.elapsed().as_secs_f64();
        let _ = clock.now_millis();
        ssc.stop(true).unwrap();
        println!("recovering about 1 M keys on {master}: {secs:.2} s to the end of the first batch");
    }
}

/// Stores 100 records, `base..base + 100`, in one reliable block, then waits for the stop.
struct Hundred(u64);

impl ember::operator::Receiver<u64> for Hundred {
    fn on_start(&mut self, ctx: &ember::operator::ReceiverContext<u64>) -> ember::Result<()> {
        ctx.store_block((self.0..self.0 + 100).collect())?;
        while !ctx.is_stopped() {
            ctx.wait_for_stop();
        }
        Ok(())
    }
}

#[test]
fn receivers_with_the_write_ahead_log_move_with_a_rescale() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    // Each run's two receivers store 100 new records each; every record counts once. The second
    // receiver's log is named by its worker: run 3 finds run 1's log again, whose batch logs the
    // 40 batches of run 2 pruned (four checkpoints later), and must not replay it.
    for (run, (master, batches)) in
        [("local[2]", 2), ("local[1]", 40), ("local[2]", 2), ("local[3]", 2)].into_iter().enumerate()
    {
        let last: std::sync::Arc<std::sync::Mutex<Vec<(u64, u64)>>> = Default::default();
        let (seen, dir_ck) = (std::sync::Arc::clone(&last), ck.clone());
        let build = move || -> ember::Result<StreamingContext> {
            let conf = Conf::new()
                .master(master)
                .manual_clock(true)
                .set("clock.manual.start", START.to_string())
                .set("checkpoint.sync", "false")
                .set("receiver.write_ahead_log.enable", "true");
            let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
            ssc.checkpoint(&dir_ck);
            let base = run as u64 * 1000;
            let (a, b) = (ssc.receiver_stream(Hundred(base)), ssc.receiver_stream(Hundred(base + 100)));
            a.union(&b)
                .map(|x| (x, 1u64))
                .update_state_by_key(|n: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + n.len() as u64))
                .foreach_batch(move |_, totals: Vec<(u64, u64)>| *seen.lock().unwrap() = totals);
            Ok(ssc)
        };
        let ssc = StreamingContext::get_or_create(&ck, build).unwrap();
        ssc.start().unwrap();
        assert!(ssc.wait_for_received(200, Duration::from_secs(30)).unwrap(), "{master}: the receivers stored");
        ssc.run_batches(batches).unwrap();
        ssc.stop(true).unwrap();
        let mut totals = last.lock().unwrap().clone();
        totals.sort_unstable();
        let want: Vec<(u64, u64)> = (0..=run as u64).flat_map(|r| (r * 1000..r * 1000 + 200).map(|x| (x, 1))).collect();
        let twice: Vec<_> = totals.iter().filter(|(_, n)| *n != 1).collect();
        let missing: Vec<_> = want.iter().filter(|w| !totals.contains(w)).map(|(x, _)| x).collect();
        assert!(
            twice.is_empty() && missing.is_empty(),
            "run {run} on {master}: counted again {twice:?}, missing {missing:?}"
        );
        assert_eq!(totals, want);
    }
}
