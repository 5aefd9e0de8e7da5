//! The Redis sink against real Redis servers: the one `scripts/test.sh` starts on
//! 127.0.0.1:6379, and private ones (with an append-only file, killed and started again for the
//! restart test). Every test uses keys of its own.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ember::testing::{manual_context, Service};
use ember::StreamingContext;
use ember_redis::{RedisMode, RedisSink, SaveToRedis};
use redis::Commands;

const SHARED: &str = "redis://127.0.0.1:6379/";
const START: u64 = 1_700_000_000_000;
const BATCHES: u64 = 30;

fn connect(url: &str) -> redis::Connection {
    let c = redis::Client::open(url).unwrap();
    c.get_connection_with_timeout(Duration::from_secs(5)).unwrap_or_else(|e| {
        panic!("cannot reach Redis at {url}: {e}; run `scripts/test.sh`, which starts it on 127.0.0.1:6379")
    })
}

/// Deletes every key of test `test` (its keys and its sinks' markers start with its name).
fn fresh(url: &str, test: &str) {
    let mut c = connect(url);
    for pattern in [format!("{test}*"), format!("ember:sink:{test}*")] {
        let keys: Vec<String> = c.keys(pattern).unwrap();
        for k in keys {
            let _: () = c.del(k).unwrap();
        }
    }
}

fn hash(url: &str, key: &str) -> BTreeMap<String, i64> {
    connect(url).hgetall(key).unwrap()
}

#[test]
fn every_mode_writes_each_batch_once_and_a_rerun_is_skipped() {
    fresh(SHARED, "modes");
    let job = || {
        let ssc = manual_context("local[2]");
        let batches = vec![vec!["a", "b", "a"], vec!["b", "c"], vec![], vec!["a"]];
        let words = ssc.queue_stream(
            batches.into_iter().map(|b| b.into_iter().map(String::from).collect::<Vec<_>>()).collect::<Vec<_>>(),
            true,
        );
        let counts = words.map(|w: String| (w, 1i64)).reduce_by_key(|a, b| a + b);
        let incr = counts.save_to_redis(SHARED, RedisMode::hash_increment("modes_totals")).unwrap();
        counts.save_to_redis(SHARED, RedisMode::set("modes_last:")).unwrap();
        counts.save_to_redis(SHARED, RedisMode::stream_append("modes_events")).unwrap();
        (ssc, incr)
    };
    for run in 0..2 {
        let (ssc, incr) = job();
        ssc.run_batches(4).unwrap();
        ssc.stop(false).unwrap();
        let want: BTreeMap<String, i64> = [("a".into(), 3), ("b".into(), 2), ("c".into(), 1)].into();
        assert_eq!(hash(SHARED, "modes_totals"), want, "run {run}: increments once");
        let mut c = connect(SHARED);
        let last: Option<String> = c.get("modes_last:a").unwrap();
        assert_eq!(last.as_deref(), Some("1"), "run {run}: the last batch's value");
        let events: usize = c.xlen("modes_events").unwrap();
        assert_eq!(events, 5, "run {run}: stream entries once");
        let counters = incr.get();
        if run == 0 {
            assert_eq!((counters.records, counters.skipped), (5, 0), "{counters:?}");
        } else {
            assert_eq!(counters.records, 0, "the re-run wrote nothing: {counters:?}");
            assert!(counters.skipped >= 3, "{counters:?}");
        }
    }
}

#[test]
fn values_and_keys_redis_refuses_are_clear_errors() {
    fresh(SHARED, "bad");
    let ssc = manual_context("local[1]");
    ssc.queue_stream(vec![vec![("a".to_string(), "many".to_string())]], true)
        .save_to_redis(SHARED, RedisMode::hash_increment("bad_totals"))
        .unwrap();
    let e = ssc.run_batches(1).map(|_| ()).and_then(|_| ssc.stop(false)).unwrap_err().to_string();
    assert!(e.contains("`many` is not an integer") && e.contains("bad_totals") && e.contains("batch 1000"), "{e}");
    let _ = ssc.stop(false);
    // A key of another type.
    let _: () = connect(SHARED).set("bad_string", "x").unwrap();
    let ssc = manual_context("local[1]");
    ssc.queue_stream(vec![vec![("a".to_string(), 1i64)]], true)
        .save_to_redis(SHARED, RedisMode::hash_increment("bad_string"))
        .unwrap();
    let e = ssc.run_batches(1).map(|_| ()).and_then(|_| ssc.stop(false)).unwrap_err().to_string();
    assert!(e.contains("bad_string") && e.contains("WRONGTYPE"), "{e}");
    let _ = ssc.stop(false);
    // A URL that does not parse fails the start.
    let ssc = manual_context("local[1]");
    let none = ssc
        .queue_stream(vec![vec![("a".to_string(), 1i64)]], true)
        .save_to_redis("nonsense://x", RedisMode::set("bad"));
    assert!(none.is_none());
    let e = ssc.start().unwrap_err().to_string();
    assert!(e.contains("nonsense://x"), "{e}");
}

/// A private Redis server with an append-only file (synced on every write) in `dir`.
fn private_redis(dir: &Path, port: u16) -> Service {
    let bin = ember::testing::installed("EMBER_REDIS_SERVER", "/usr/bin/redis-server", "apt-get install redis-server");
    let child = Command::new(bin)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "yes"])
        .args(["--appendfsync", "always", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Service::listening(child, port, "redis-server")
}

#[test]
fn a_redis_restarted_mid_run_is_retried_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = private_redis(dir.path(), port);
    let url = format!("redis://127.0.0.1:{port}/");
    let ssc = manual_context("local[2]");
    let batches: Vec<Vec<(String, i64)>> =
        (0..6).map(|i| vec![(format!("w{}", i % 2), 1), ("all".into(), 2)]).collect();
    let sink =
        RedisSink::new(&url, RedisMode::hash_increment("restart")).unwrap().retry_timeout(Duration::from_secs(120));
    let counters = ssc.queue_stream(batches, true).save_to_redis_with(sink);
    ssc.run_batches(3).unwrap();
    drop(server);
    let done = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = ssc.run_batches(3).map(|_| ()).and_then(|_| ssc.stop(false).map(|_| ()));
        let _ = done.0.send(r);
    });
    // The writes of batch 4 fail and are retried while the server is down ...
    let watch = ember::clock::Stopwatch::start();
    while counters.get().retries == 0 {
        assert!(watch.elapsed() < Duration::from_secs(60), "no retry while Redis was down");
        ember::clock::real_sleep(Duration::from_millis(20));
    }
    // ... and succeed once it is back, with what it had.
    let _server = private_redis(dir.path(), port);
    done.1.recv_timeout(Duration::from_secs(120)).expect("the batches finished").unwrap();
    let want: BTreeMap<String, i64> = [("all".into(), 12), ("w0".into(), 3), ("w1".into(), 3)].into();
    assert_eq!(hash(&url, "restart"), want, "every increment of the six batches, once");
}

/// The job of the SIGKILL test: generated words counted per batch into a hash.
fn build(master: &str, ck: &Path, hash: &str) -> ember::Result<StreamingContext> {
    let ssc = ember::testing::kill_test_context(master, START, ck)?;
    ember::testing::generated_word_counts(&ssc).save_to_redis(SHARED, RedisMode::hash_increment(hash));
    Ok(ssc)
}

#[test]
#[ignore = "run as a child process by the tests below"]
fn redis_kill_child() {
    // The hash is named after KILL_OUT.
    ember::testing::run_kill_child(START + BATCHES * 1000, |_, hash, ck, master| {
        build(master, ck, &hash.display().to_string())
    });
}

fn killed_and_straight_agree(master: &str, test: &str) {
    fresh(SHARED, test);
    let dir = tempfile::tempdir().unwrap();
    let run = |hash: String, ck: &str| {
        let env = [
            ("KILL_CK", dir.path().join(ck).display().to_string()),
            ("KILL_MASTER", master.to_owned()),
            ("KILL_IN", String::new()),
            ("KILL_OUT", hash),
            ("RUST_LOG", "error".to_owned()),
        ];
        let mut c = ember::testing::child_command("redis_kill_child", &env);
        c.stdout(Stdio::null());
        c
    };
    let straight = format!("{test}_straight");
    assert!(run(straight.clone(), "ck-a").status().unwrap().success(), "the uninterrupted run failed");
    let want = hash(SHARED, &straight);
    assert_eq!(
        want.values().sum::<i64>(),
        (ember::testing::GENERATED_WORDS_PER_BATCH * BATCHES) as i64,
        "every word once"
    );
    let killed = format!("{test}_killed");
    let mut c = connect(SHARED);
    let marker = format!("ember:sink:{killed}:w0");
    let kills = ember::testing::kill_and_restart(
        || run(killed.clone(), "ck-b"),
        20,
        || c.zcard::<_, u64>(&marker).unwrap_or(0),
        BATCHES,
    );
    assert!(kills >= 14, "only {kills} kills landed");
    assert_eq!(hash(SHARED, &killed), want, "{master}: the totals after {kills} kills equal the uninterrupted run's");
}

#[test]
fn a_job_killed_20_times_increments_once_local_1() {
    killed_and_straight_agree("local[1]", "kill1");
}

#[test]
fn a_job_killed_20_times_increments_once_local_3() {
    killed_and_straight_agree("local[3]", "kill3");
}

/// Adds up the records sinks report to listeners.
#[derive(Clone, Default)]
struct Reported(std::sync::Arc<std::sync::atomic::AtomicU64>, std::sync::Arc<std::sync::atomic::AtomicU64>);

impl ember::StreamingListener for Reported {
    fn on_sink_committed(&mut self, info: &ember::SinkCommitInfo) {
        self.0.fetch_add(info.metrics["records"], std::sync::atomic::Ordering::Relaxed);
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
#[ignore = "run as a process of a cluster by the test below"]
fn redis_cluster_child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let ssc = ember::testing::kill_test_context("local[1]", START, Path::new(&var("KILL_CK"))).unwrap();
    ember::testing::generated_word_counts(&ssc).save_to_redis(SHARED, RedisMode::hash_increment(&var("KILL_OUT")));
    let reported = Reported::default();
    ssc.add_streaming_listener(reported.clone());
    ssc.run_batches(10).unwrap();
    ssc.stop(false).unwrap();
    let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    println!("REPORTED {} {}", n(&reported.0), n(&reported.1));
}

#[test]
fn listeners_get_each_batch_figures_summed_over_every_process() {
    fresh(SHARED, "cluster");
    let dir = tempfile::tempdir().unwrap();
    let env = [("KILL_CK", dir.path().join("ck").display().to_string()), ("KILL_OUT", "cluster_totals".to_owned())];
    let outputs = ember::testing::run_cluster("redis_cluster_child", &env);
    let reported = ember::testing::tagged(&outputs[0].stdout, "REPORTED");
    // Every batch holds all 20 words: 20 records a batch, written by 4 workers in 2 processes.
    let written: u64 = hash(SHARED, "cluster_totals").len() as u64;
    assert_eq!(written, 20);
    assert_eq!(
        reported,
        vec![format!("{} 10", 20 * 10)],
        "process 0's listener saw every process's records, per batch"
    );
}
