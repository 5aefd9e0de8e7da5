//! Helpers for tests and doc examples, on the manual clock.
//!
//! A context is started per test. Contexts may run side by side in one process (unless one asks
//! for Spark's one-active-context rule, `context.single_active`), so the helpers need no lock;
//! [`exclusive`] remains for tests that want the process to themselves (a test of that rule, or
//! one whose child processes should not compete with other tests).

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::conf::Conf;
use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::Data;

mod services;
pub use services::{check_storage, installed, Service};

static EXCLUSIVE: Mutex<()> = Mutex::new(());

/// Takes the process-wide test lock, for tests that want the process to themselves.
pub fn exclusive() -> MutexGuard<'static, ()> {
    EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A context on the manual clock (starting at 0) with 1 s batches and `master`.
///
/// # Panics
/// When `master` is not a valid master (a test helper).
pub fn manual_context(master: &str) -> StreamingContext {
    StreamingContext::new(Conf::new().master(master).manual_clock(true), Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("manual_context({master}): {e}"))
}

/// Runs `build` on a queue stream fed one of `batches` per batch, under `local[1]`, and returns
/// what the result stream produced in each of those batches.
///
/// # Panics
/// When the job fails (a test helper).
pub fn run_on_batches<T: Data, U: Data>(
    batches: Vec<Vec<T>>,
    build: impl FnOnce(&DStream<T>) -> DStream<U>,
) -> Vec<Vec<U>> {
    let n = batches.len() as u64;
    let ssc = manual_context("local[1]");
    let out = build(&ssc.queue_stream(batches, true)).collect_batches();
    ssc.run_batches(n).unwrap_or_else(|e| panic!("run_on_batches: {e}"));
    ssc.stop(false).unwrap_or_else(|e| panic!("run_on_batches: {e}"));
    out.batches().into_iter().map(|(_, b)| b).collect()
}

/// Like [`run_on_batches`] with two input streams.
///
/// # Panics
/// When the job fails (a test helper).
pub fn run_on_two<A: Data, B: Data, U: Data>(
    left: Vec<Vec<A>>,
    right: Vec<Vec<B>>,
    build: impl FnOnce(&DStream<A>, &DStream<B>) -> DStream<U>,
) -> Vec<Vec<U>> {
    let n = left.len().max(right.len()) as u64;
    let ssc = manual_context("local[1]");
    let out = build(&ssc.queue_stream(left, true), &ssc.queue_stream(right, true)).collect_batches();
    ssc.run_batches(n).unwrap_or_else(|e| panic!("run_on_two: {e}"));
    ssc.stop(false).unwrap_or_else(|e| panic!("run_on_two: {e}"));
    out.batches().into_iter().map(|(_, b)| b).collect()
}

/// Sorts the records of every batch (order within a batch is unspecified across workers).
pub fn sorted<U: Ord>(mut batches: Vec<Vec<U>>) -> Vec<Vec<U>> {
    for b in &mut batches {
        b.sort();
    }
    batches
}

/// The output directories `save_as_text_files` committed under `dir`, each with its lines sorted
/// (staging and replaced directories of an interrupted commit are left out).
///
/// # Panics
/// When `dir` cannot be read, or a committed directory has no `_SUCCESS` marker (a test helper).
pub fn committed_outputs(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<String>> {
    committed_outputs_at(&dir.to_string_lossy(), &Conf::new())
}

/// [`committed_outputs`] of a directory given by URL: a local path or an object store's prefix
/// (`s3://bucket/out`, with its storage registered and configured by `conf`).
///
/// # Panics
/// As [`committed_outputs`].
pub fn committed_outputs_at(url: &str, conf: &Conf) -> std::collections::BTreeMap<String, Vec<String>> {
    let storage = crate::storage::open(url, conf, false).unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    fn fail<T>(url: &str) -> impl FnOnce(crate::Error) -> T + '_ {
        move |e| panic!("cannot read {url}: {e}")
    }
    let mut tree = std::collections::BTreeMap::new();
    for dir in storage.list("").unwrap_or_else(fail(url)) {
        let name = dir.file_name().to_owned();
        if name.contains("._") || !dir.is_dir {
            continue;
        }
        let files = storage.list(&dir.name).unwrap_or_else(fail(url));
        assert!(files.iter().any(|f| f.file_name() == "_SUCCESS"), "{name} has no _SUCCESS");
        let mut lines: Vec<String> = Vec::new();
        for f in files.iter().filter(|f| f.file_name().starts_with("part-")) {
            let bytes = storage.get(&f.name).unwrap_or_else(fail(url)).unwrap_or_default();
            lines.extend(String::from_utf8_lossy(&bytes).lines().map(str::to_owned));
        }
        lines.sort();
        tree.insert(name, lines);
    }
    tree
}

/// The path of example `name`, built beside the running test binary (`cargo build --examples`).
///
/// # Panics
/// When the example is not built (a test helper).
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let path = exe.parent().and_then(std::path::Path::parent).expect("target dir").join("examples").join(name);
    assert!(path.exists(), "{} is missing: build the examples first (`cargo build --examples`)", path.display());
    path
}

/// The path of the `ember-launch` binary, built beside the running test binary.
///
/// # Panics
/// When it is not built (a test helper).
pub fn launcher_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let path = exe.parent().and_then(std::path::Path::parent).expect("target dir").join("ember-launch");
    assert!(path.exists(), "{} is missing: build it first (`cargo build -p ember --bins`)", path.display());
    path
}

/// Starts `cmd()` again and again, killing it with SIGKILL `kills` times, then lets it run to the
/// end. Kill `i` lands at a pseudo-random point of the job's progress: once `progress()` (batches
/// committed, records consumed — anything that grows to `total` as the job runs) has reached a
/// target that rises with `i`, plus a pseudo-random 0–20 ms so kills fall anywhere inside a batch.
/// Kills follow the job's progress, not a wall-clock guess, so they land on a slow machine and a
/// fast one alike. Returns the kills that landed (a run may finish before its kill).
///
/// # Panics
/// When a run that was not killed fails, when a run makes no progress for two minutes, or when the
/// job does not finish in 200 starts (a test helper).
pub fn kill_and_restart(
    mut cmd: impl FnMut() -> std::process::Command,
    kills: usize,
    progress: impl FnMut() -> u64,
    total: u64,
) -> usize {
    kill_and_restart_all(move || vec![cmd()], kills, progress, total)
}

/// [`kill_and_restart`] for a job of several processes: `cmds()` gives the commands of every
/// process of one run, and a kill SIGKILLs them all at once.
///
/// # Panics
/// As [`kill_and_restart`].
pub fn kill_and_restart_all(
    mut cmds: impl FnMut() -> Vec<std::process::Command>,
    kills: usize,
    mut progress: impl FnMut() -> u64,
    total: u64,
) -> usize {
    let mut seed = 7u64;
    let mut random = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };
    let step = total as f64 / (kills + 1) as f64;
    let mut done = 0;
    for attempt in 0.. {
        assert!(attempt < 200, "the job did not finish after {attempt} starts");
        let mut children: Vec<std::process::Child> =
            cmds().iter_mut().map(|c| c.spawn().unwrap_or_else(|e| panic!("cannot start the job: {e}"))).collect();
        let running = |children: &mut Vec<std::process::Child>| {
            children.iter_mut().any(|c| c.try_wait().ok().flatten().is_none())
        };
        if done < kills {
            let target = (step * (done as f64 + random())) as u64;
            let watch = crate::clock::Stopwatch::start();
            while progress() < target && running(&mut children) {
                assert!(
                    watch.elapsed() < Duration::from_secs(120),
                    "the job made no progress past {target} of {total}"
                );
                crate::clock::real_sleep(Duration::from_millis(2));
            }
            crate::clock::real_sleep(Duration::from_micros((20_000.0 * random()) as u64));
            if running(&mut children) {
                for c in &mut children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                done += 1;
                continue;
            }
        }
        for mut c in children {
            let status = c.wait().unwrap_or_else(|e| panic!("waiting for the job: {e}"));
            assert!(status.success(), "a restarted run failed: {status}");
        }
        break;
    }
    done
}

/// The context of a SIGKILL test's job: `master`, 1 s batches on a manual clock that starts at
/// `start_millis`, checkpointed to `checkpoint` without syncing files to disk (a killed process
/// loses nothing the operating system holds).
///
/// # Errors
/// As [`StreamingContext::new`].
pub fn kill_test_context(
    master: &str,
    start_millis: u64,
    checkpoint: &std::path::Path,
) -> crate::Result<StreamingContext> {
    let conf = Conf::new()
        .master(master)
        .manual_clock(true)
        .set("clock.manual.start", start_millis.to_string())
        .set("checkpoint.sync", "false");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    ssc.checkpoint(checkpoint);
    Ok(ssc)
}

/// The body of a child process of a SIGKILL test: reads the directories `KILL_IN`, `KILL_OUT`,
/// `KILL_CK` and the master `KILL_MASTER` from the environment, gets the job from its checkpoint
/// or creates it with `build(input, out, checkpoint, master)`, and runs it on its manual clock
/// until the clock reads `end_millis`.
///
/// # Panics
/// When a variable is not set or the job fails (a test helper).
pub fn run_kill_child(
    end_millis: u64,
    build: impl FnOnce(&std::path::Path, &std::path::Path, &std::path::Path, &str) -> crate::Result<StreamingContext>,
) {
    use crate::clock::Clock;
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let (input, out, ck) = (var("KILL_IN"), var("KILL_OUT"), var("KILL_CK"));
    let (input, out, ck) = (std::path::Path::new(&input), std::path::Path::new(&out), std::path::Path::new(&ck));
    let master = var("KILL_MASTER");
    let ssc = StreamingContext::get_or_create(ck, || build(input, out, ck, &master))
        .unwrap_or_else(|e| panic!("cannot get or create the job: {e}"));
    let clock = ssc.manual_clock().unwrap_or_else(|| panic!("the job has no manual clock"));
    ssc.start().unwrap_or_else(|e| panic!("cannot start the job: {e}"));
    while clock.now_millis() < end_millis {
        ssc.run_batches(1).unwrap_or_else(|e| panic!("the job failed: {e}"));
    }
    ssc.stop(false).unwrap_or_else(|e| panic!("cannot stop the job: {e}"));
}

/// The commands of one run of a SIGKILL test's job, whose body is the ignored test `test`
/// (calling [`run_kill_child`]) with output `out` and checkpoint `ck`: one child process under
/// `master`, or for `"cluster"` the 2 processes x 2 workers of one job on loopback. Their stdout
/// is dropped.
pub fn kill_run_commands(
    test: &str,
    out: &std::path::Path,
    ck: &std::path::Path,
    master: &str,
) -> Vec<std::process::Command> {
    let child = |m: &str| {
        let env = [
            ("KILL_IN", String::new()),
            ("KILL_OUT", out.display().to_string()),
            ("KILL_CK", ck.display().to_string()),
            ("KILL_MASTER", m.to_owned()),
            ("RUST_LOG", "error".to_owned()),
        ];
        let mut c = child_command(test, &env);
        c.stdout(std::process::Stdio::null());
        c
    };
    if master != "cluster" {
        return vec![child(master)];
    }
    let hosts = cluster_hosts();
    (0..2)
        .map(|i| {
            let mut c = child("local[1]");
            c.envs(cluster_env(&hosts, i));
            c
        })
        .collect()
}

/// Starts every command of `cmds` (the processes of one job run) at once and waits for all.
///
/// # Panics
/// When a process cannot start or fails (a test helper); `what` names the run.
pub fn run_all(cmds: Vec<std::process::Command>, what: &str) {
    let children: Vec<_> =
        cmds.into_iter().map(|mut c| c.spawn().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"))).collect();
    for mut c in children {
        let status = c.wait().unwrap_or_else(|e| panic!("{what}: waiting: {e}"));
        assert!(status.success(), "{what} failed: {status}");
    }
}

/// The command that runs this test binary again as a child process, running only the ignored
/// test `test` with the environment `env` (the child of a SIGKILL or cluster test).
///
/// # Panics
/// When the test binary's path is unknown (a test helper).
pub fn child_command(test: &str, env: &[(&str, String)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("the test binary's path"));
    cmd.args(["--exact", test, "--ignored", "--nocapture", "--test-threads", "1"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The environment of process `process` of a job of 2 processes x 2 workers on loopback, at the
/// addresses `hosts` (from [`cluster_hosts`]).
pub fn cluster_env(hosts: &str, process: usize) -> Vec<(&'static str, String)> {
    vec![
        ("EMBER_CLUSTER_HOSTS", hosts.to_owned()),
        ("EMBER_CLUSTER_PROCESS", process.to_string()),
        ("EMBER_CLUSTER_WORKERS", "2".to_owned()),
    ]
}

/// Two free loopback addresses for a job of 2 processes, as `EMBER_CLUSTER_HOSTS` takes them.
///
/// # Panics
/// When no port can be bound (a test helper).
pub fn cluster_hosts() -> String {
    loopback_hosts(2)
}

/// `n` free loopback addresses, as `EMBER_CLUSTER_HOSTS` and `ember-launch --hosts` take them.
///
/// # Panics
/// When no port can be bound (a test helper).
pub fn loopback_hosts(n: usize) -> String {
    let listeners: Vec<_> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"))).collect();
    let hosts: Vec<String> =
        listeners.iter().map(|l| format!("{}", l.local_addr().unwrap_or_else(|e| panic!("addr: {e}")))).collect();
    hosts.join(",")
}

/// How many outputs under `dir` carry their `_SUCCESS` marker (0 before `dir` exists): the
/// progress of a job that saves one output per batch, for [`kill_and_restart`].
pub fn committed_output_count(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).into_iter().flatten().flatten().filter(|e| e.path().join("_SUCCESS").exists()).count() as u64
}

/// Every batch the listener sees completed, in order (register before the context starts).
pub fn completed_batches(ssc: &StreamingContext) -> std::sync::Arc<Mutex<Vec<crate::BatchInfo>>> {
    struct Completed(std::sync::Arc<Mutex<Vec<crate::BatchInfo>>>);
    impl crate::StreamingListener for Completed {
        fn on_batch_completed(&mut self, b: &crate::BatchInfo) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(b.clone());
        }
    }
    let infos = std::sync::Arc::new(Mutex::new(Vec::new()));
    ssc.add_streaming_listener(Completed(std::sync::Arc::clone(&infos)));
    infos
}

/// The `(word,count)` lines of a text-file output as a map.
///
/// # Panics
/// When a line is not `(word,count)` (a test helper).
pub fn parse_counts<N: std::str::FromStr>(lines: &[String]) -> std::collections::BTreeMap<String, N> {
    lines
        .iter()
        .map(|l| {
            let (w, n) = l
                .trim_matches(|c| c == '(' || c == ')')
                .split_once(',')
                .unwrap_or_else(|| panic!("`{l}` is not (word,count)"));
            (w.to_owned(), n.parse().unwrap_or_else(|_| panic!("`{l}` is not (word,count)")))
        })
        .collect()
}

/// Each receiver error's message, as listeners see it (register before the context starts).
pub fn receiver_errors(ssc: &StreamingContext) -> std::sync::mpsc::Receiver<String> {
    struct Errors(std::sync::mpsc::Sender<String>);
    impl crate::StreamingListener for Errors {
        fn on_receiver_error(&mut self, i: &crate::ReceiverInfo) {
            let _ = self.0.send(i.last_error_message.clone());
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    ssc.add_streaming_listener(Errors(tx));
    rx
}

/// The lines of a child process's `stdout` that carry `tag` (`TAG rest`), without the tag. The
/// test harness may print `test <name> ... ` on the line of the child's first output, so the tag
/// is also found after that.
pub fn tagged(stdout: &[u8], tag: &str) -> Vec<String> {
    let prefix = format!("{tag} ");
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| {
            let at = l.find(&prefix)?;
            (at == 0 || l[..at].ends_with("... ")).then(|| l[at + prefix.len()..].to_owned())
        })
        .collect()
}

/// Runs the `#[ignore]`d test `name` of the running test binary as the 2 processes × 2 workers of
/// one job on loopback (`EMBER_CLUSTER_*` set for each), with `extra` in their environment; waits
/// for both and returns their outputs, process 0 (the driver) first.
///
/// # Panics
/// When a process cannot start or fails; the panic shows its output (a test helper).
pub fn run_cluster(name: &str, extra: &[(&str, String)]) -> Vec<std::process::Output> {
    let hosts = cluster_hosts();
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("test binary: {e}"));
    let children: Vec<_> = (0..2)
        .map(|i| {
            std::process::Command::new(&exe)
                .args(["--exact", name, "--ignored", "--nocapture", "--test-threads", "1"])
                .envs(cluster_env(&hosts, i))
                .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start a process of the cluster: {e}"))
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap_or_else(|e| panic!("waiting for a process: {e}"));
            assert!(
                out.status.success(),
                "a process of the cluster failed: {}\nstdout:\n{}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            out
        })
        .collect()
}

/// The exactly-once check of a job that saves running word totals as text files: `run(out, ck)`
/// builds the job's command with an output and a checkpoint directory under `dir`. One run goes
/// through uninterrupted: one output per batch (`batches`), its last totals equal to `want`. A
/// second run is killed with SIGKILL 12 times at random points of its progress and restarted: its outputs equal
/// the first run's. Returns the kills that landed (at least 8).
///
/// # Panics
/// When a check fails (a test helper).
pub fn check_word_totals_survive_kills(
    dir: &std::path::Path,
    run: impl Fn(&std::path::Path, &std::path::Path) -> std::process::Command,
    batches: u64,
    want: &std::collections::BTreeMap<String, u64>,
) -> usize {
    let status = run(&dir.join("a"), &dir.join("ck-a")).status().unwrap_or_else(|e| panic!("cannot start: {e}"));
    assert!(status.success(), "the uninterrupted run failed: {status}");
    let expected = committed_outputs(&dir.join("a"));
    assert_eq!(expected.len(), batches as usize, "one output per batch");
    let last: std::collections::BTreeMap<String, u64> =
        parse_counts(expected.values().last().map(Vec::as_slice).unwrap_or_default());
    assert_eq!(&last, want, "the uninterrupted run counted every record once");
    let out = dir.join("b");
    let kills = kill_and_restart(|| run(&out, &dir.join("ck-b")), 12, || committed_output_count(&out), batches);
    assert!(kills >= 8, "only {kills} kills landed");
    let got = committed_outputs(&dir.join("b"));
    assert_eq!(got, expected, "the output after {kills} kills equals the uninterrupted run's");
    kills
}

/// `n` lines of 1 to 5 words drawn from `words` by a fixed pseudo-random sequence (the same
/// lines on every call), and how often each word occurs in them.
pub fn random_word_lines(n: usize, words: &[&str]) -> (Vec<String>, std::collections::BTreeMap<String, u64>) {
    let mut seed = 17u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut counts = std::collections::BTreeMap::new();
    let lines = (0..n)
        .map(|_| {
            let line: Vec<&str> =
                (0..(next() % 5 + 1)).map(|_| words[(next() % words.len() as u64) as usize]).collect();
            for w in &line {
                *counts.entry((*w).to_owned()).or_insert(0) += 1;
            }
            line.join(" ")
        })
        .collect();
    (lines, counts)
}

/// Words per batch of [`generated_word_counts`].
pub const GENERATED_WORDS_PER_BATCH: u64 = 9000;

/// The word counts of each batch of generated text (3000 lines of 3 words a second, from 20
/// words, seeded): the input of the sinks' SIGKILL tests, the same after every recovery, and
/// enough work per batch that kills land inside the run.
pub fn generated_word_counts(ssc: &StreamingContext) -> DStream<(String, i64)> {
    let text = crate::GeneratedText { lines_per_second: 3000, words_per_line: 3, vocabulary: 20, skew: 1.0, seed: 9 };
    ssc.generated_text_stream_with(text)
        .flat_map(|l: String| l.split(' ').map(|w| (w.to_owned(), 1i64)).collect::<Vec<_>>())
        .reduce_by_key(|a, b| a + b)
}
