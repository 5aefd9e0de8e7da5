//! Ember's storage on S3, against moto's S3 server (started per test on a free loopback port;
//! `scripts/test.sh` installs it): the storage's promises, checkpoints and outputs on S3 across
//! SIGKILLs, the conditional commit, the file stream, and the errors of a bad endpoint, bucket or
//! credentials.

use std::collections::BTreeMap;
use std::time::Duration;

use ember::storage::Storage;
use ember::testing::Service;
use ember::{Conf, StreamingContext};

const START: u64 = 1_700_000_000_000;
const BATCHES: u64 = 40;

/// moto with the bucket `bucket`.
fn moto() -> Service {
    let moto = Service::moto(None);
    assert_eq!(moto.http("PUT", "/bucket"), 200, "creating the bucket");
    moto
}

/// The configuration that reaches `endpoint`.
fn s3_conf(endpoint: &str) -> Conf {
    ember_store::register();
    Conf::new()
        .set("fs.s3.endpoint", endpoint)
        .set("fs.s3.region", "us-east-1")
        .set("fs.s3.access_key_id", "ember-test")
        .set("fs.s3.secret_access_key", "ember-test-secret")
        .set("fs.retry_timeout", "2s")
}

fn open(url: &str, conf: &Conf) -> std::sync::Arc<dyn Storage> {
    ember::storage::open(url, conf, true).unwrap_or_else(|e| panic!("opening {url}: {e}"))
}

#[test]
fn s3_keeps_the_promises_of_a_storage() {
    let moto = moto();
    let conf = s3_conf(&moto.endpoint);
    ember::testing::check_storage(open("s3://bucket/some/root", &conf));
    assert_eq!(open("s3://bucket", &conf).names("").unwrap(), vec!["some"]);
    assert_eq!(open("s3://bucket/some", &conf).names("").unwrap(), vec!["root"]);
    // A whole bucket as the root, named as Spark's s3a.
    assert_eq!(moto.http("PUT", "/whole"), 200);
    ember::testing::check_storage(open("s3a://whole", &conf));
}

/// The word count of the SIGKILL test: generated text counted into running totals, with its
/// checkpoint and its output (the totals after each batch) on S3.
fn build(conf: Conf, master: &str, out: &str, ck: &str) -> ember::Result<StreamingContext> {
    let conf = conf
        .master(master)
        .manual_clock(true)
        .set("clock.manual.start", START.to_string())
        .set("checkpoint.sync", "false");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    ssc.checkpoint(ck);
    let text = ember::GeneratedText { lines_per_second: 40, words_per_line: 3, vocabulary: 30, skew: 1.0, seed: 5 };
    ssc.generated_text_stream_with(text)
        .flat_map(|line: String| line.split(' ').map(|w| (w.to_owned(), 1u64)).collect::<Vec<_>>())
        .update_state_by_key(|new: Vec<u64>, total: Option<u64>| Some(total.unwrap_or(0) + new.len() as u64))
        .checkpoint(Duration::from_secs(3))
        .save_as_text_files(format!("{out}/totals"), "");
    Ok(ssc)
}

#[test]
#[ignore = "run as a child process by the tests below"]
fn s3_kill_child() {
    let endpoint = std::env::var("S3_ENDPOINT").expect("S3_ENDPOINT set");
    // KILL_OUT and KILL_CK hold URLs.
    ember::testing::run_kill_child(START + BATCHES * 1000, |_, out, ck, master| {
        build(s3_conf(&endpoint), master, &out.display().to_string(), &ck.display().to_string())
    });
}

fn child(endpoint: &str, master: &str, out: &str, ck: &str) -> std::process::Command {
    let env = [
        ("S3_ENDPOINT", endpoint.to_owned()),
        ("KILL_IN", String::new()),
        ("KILL_OUT", out.to_owned()),
        ("KILL_CK", ck.to_owned()),
        ("KILL_MASTER", master.to_owned()),
        ("RUST_LOG", "error".to_owned()),
    ];
    let mut cmd = ember::testing::child_command("s3_kill_child", &env);
    cmd.stdout(std::process::Stdio::null());
    cmd
}

/// The processes of one run: one, or two for `cluster` (2 processes x 2 workers, sharing
/// nothing but the checkpoint and the output on S3).
fn run(endpoint: &str, master: &str, out: &str, ck: &str) -> Vec<std::process::Command> {
    if master != "cluster" {
        return vec![child(endpoint, master, out, ck)];
    }
    let hosts = ember::testing::cluster_hosts();
    (0..2)
        .map(|i| {
            let mut c = child(endpoint, "local[1]", out, ck);
            c.envs(ember::testing::cluster_env(&hosts, i));
            c
        })
        .collect()
}

/// An uninterrupted run, and a run killed 20 times at random points and restarted each time
/// from its checkpoint on S3, write the same outputs to S3.
fn killed_and_straight_agree_on_s3(master: &str) {
    let moto = moto();
    let conf = s3_conf(&moto.endpoint);
    let children: Vec<_> = run(&moto.endpoint, master, "s3://bucket/a", "s3://bucket/ck-a")
        .iter_mut()
        .map(|c| c.spawn().unwrap())
        .collect();
    for mut c in children {
        let status = c.wait().unwrap();
        assert!(status.success(), "the uninterrupted run failed: {status}");
    }
    let straight = ember::testing::committed_outputs_at("s3://bucket/a", &conf);
    assert_eq!(straight.len(), BATCHES as usize, "one output per batch");
    let last: BTreeMap<String, u64> = ember::testing::parse_counts(straight.values().last().unwrap());
    assert_eq!(last.values().sum::<u64>(), 40 * 3 * BATCHES, "every word counted once");
    let out = open("s3://bucket/b", &conf);
    let progress = || out.names("").unwrap_or_default().iter().filter(|n| !n.contains("._")).count() as u64;
    let kills = ember::testing::kill_and_restart_all(
        || run(&moto.endpoint, master, "s3://bucket/b", "s3://bucket/ck-b"),
        20,
        progress,
        BATCHES,
    );
    assert!(kills >= 14, "only {kills} kills landed");
    let killed = ember::testing::committed_outputs_at("s3://bucket/b", &conf);
    assert_eq!(killed, straight, "{master}: the output after {kills} kills equals the uninterrupted run's");
}

#[test]
fn a_word_count_checkpointed_on_s3_survives_sigkills_local_1() {
    killed_and_straight_agree_on_s3("local[1]");
}

#[test]
fn a_word_count_checkpointed_on_s3_survives_sigkills_local_3() {
    killed_and_straight_agree_on_s3("local[3]");
}

#[test]
fn a_word_count_checkpointed_on_s3_survives_sigkills_2_processes() {
    killed_and_straight_agree_on_s3("cluster");
}

/// The file stream's SIGKILL test job: running word totals of the objects under `input`.
fn build_files(
    conf: Conf,
    master: &str,
    input: &str,
    out: &str,
    ck: &str,
    start: u64,
) -> ember::Result<StreamingContext> {
    let conf = conf.master(master).manual_clock(true).set("clock.manual.start", start.to_string());
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    ssc.checkpoint(ck);
    ssc.text_file_stream(input)
        .flat_map(|line: String| line.split_whitespace().map(|w| (w.to_owned(), 1u64)).collect::<Vec<_>>())
        .update_state_by_key(|new: Vec<u64>, total: Option<u64>| Some(total.unwrap_or(0) + new.len() as u64))
        .checkpoint(Duration::from_secs(2))
        .save_as_text_files(format!("{out}/totals"), "");
    Ok(ssc)
}

const FILE_BATCHES: u64 = 12;

#[test]
#[ignore = "run as a child process by the tests below"]
fn s3_files_kill_child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let (endpoint, start): (String, u64) = (var("S3_ENDPOINT"), var("START_MS").parse().unwrap());
    ember::testing::run_kill_child(start + FILE_BATCHES * 1000, |input, out, ck, master| {
        let url = |p: &std::path::Path| p.display().to_string();
        build_files(s3_conf(&endpoint), master, &url(input), &url(out), &url(ck), start)
    });
}

#[test]
fn a_file_stream_on_s3_killed_and_recovered_reads_each_object_once() {
    let moto = moto();
    let conf = s3_conf(&moto.endpoint);
    let input = open("s3://bucket/in", &conf);
    let (lines, want) = ember::testing::random_word_lines(400, &["to", "be", "or", "not", "quick"]);
    for (i, chunk) in lines.chunks(40).enumerate() {
        input.put(&format!("part-{i}.txt"), chunk.join("\n").as_bytes()).unwrap();
    }
    // The clock starts before the oldest object was written (uploads may span seconds).
    let oldest = input.list("").unwrap().iter().filter_map(|e| e.modified_ms).min().unwrap();
    let start = oldest / 1000 * 1000 - 1000;
    let child = |out: &str, ck: &str| {
        let env = [
            ("S3_ENDPOINT", moto.endpoint.clone()),
            ("START_MS", start.to_string()),
            ("KILL_IN", "s3://bucket/in".to_owned()),
            ("KILL_OUT", out.to_owned()),
            ("KILL_CK", ck.to_owned()),
            ("KILL_MASTER", "local[2]".to_owned()),
            ("RUST_LOG", "error".to_owned()),
        ];
        let mut cmd = ember::testing::child_command("s3_files_kill_child", &env);
        cmd.stdout(std::process::Stdio::null());
        cmd
    };
    assert!(child("s3://bucket/a", "s3://bucket/ck-a").status().unwrap().success(), "the uninterrupted run failed");
    let straight = ember::testing::committed_outputs_at("s3://bucket/a", &conf);
    let last: BTreeMap<String, u64> = ember::testing::parse_counts(straight.values().last().unwrap());
    assert_eq!(last, want, "every object's words once");
    let out = open("s3://bucket/b", &conf);
    let progress = || out.names("").unwrap_or_default().iter().filter(|n| !n.contains("._")).count() as u64;
    let kills =
        ember::testing::kill_and_restart(|| child("s3://bucket/b", "s3://bucket/ck-b"), 8, progress, FILE_BATCHES);
    assert!(kills >= 5, "only {kills} kills landed");
    let killed = ember::testing::committed_outputs_at("s3://bucket/b", &conf);
    assert_eq!(killed, straight, "the output after {kills} kills equals the uninterrupted run's");
}

#[test]
fn a_second_incarnation_cannot_commit_a_checkpoint_the_first_committed() {
    let moto = moto();
    let conf = s3_conf(&moto.endpoint);
    let first = build(conf.clone(), "local[2]", "s3://bucket/one", "s3://bucket/ck").unwrap();
    // The second starts while the first runs, on the same checkpoint directory.
    let second = build(conf.clone(), "local[2]", "s3://bucket/two", "s3://bucket/ck").unwrap();
    first.start().unwrap();
    second.start().unwrap();
    first.run_batches(3).unwrap();
    assert!(open("s3://bucket/ck", &conf).get(&format!("commits/{}", START + 3000)).unwrap().is_some());
    let e = second.run_batches(3).map(|_| ()).and_then(|_| second.stop(false)).unwrap_err().to_string();
    assert!(e.contains("already committed") && e.contains("s3://bucket/ck"), "{e}");
    first.run_batches(3).unwrap();
    first.stop(false).unwrap();
    assert!(open("s3://bucket/ck", &conf).get(&format!("commits/{}", START + 6000)).unwrap().is_some());
}

#[test]
fn the_file_stream_reads_each_new_object_once_in_its_batch() {
    use ember::Clock;
    let moto = moto();
    let conf = s3_conf(&moto.endpoint);
    let input = open("s3://bucket/in", &conf);
    // Objects have the store's own modification times (whole seconds on this server): the
    // manual clock starts a second before the store's present, read off an object written for it.
    let store_now = || {
        input.put("_now", b"").unwrap();
        let listed = input.list("").unwrap();
        listed.iter().find(|e| e.file_name() == "_now").and_then(|e| e.modified_ms).expect("a modification time")
    };
    let now = store_now();
    let start = now / 1000 * 1000 - 1000;
    let conf_job = conf.clone().master("local[2]").manual_clock(true).set("clock.manual.start", start.to_string());
    let ssc = StreamingContext::new(conf_job, Duration::from_secs(1)).unwrap();
    let lines = ssc.text_file_stream("s3://bucket/in").collect_batches();
    ssc.start().unwrap();
    let clock = ssc.manual_clock().unwrap();
    let mut expected: Vec<(u64, Vec<String>)> = Vec::new();
    let mut last_mtime = 0;
    for i in 0..3 {
        // Each object in a second of its own: wait for the store's clock to move on.
        let watch = ember::clock::Stopwatch::start();
        while store_now() <= last_mtime {
            assert!(watch.elapsed() < Duration::from_secs(10), "the store's clock does not move");
            ember::clock::real_sleep(Duration::from_millis(50));
        }
        let name = format!("part-{i}.txt");
        let body: Vec<String> = (0..50).map(|j| format!("{i}-{j}")).collect();
        input.put(&name, body.join("\n").as_bytes()).unwrap();
        // Temporary names are never read.
        input.put(&format!("part-{i}.txt.tmp"), b"not yet").unwrap();
        let mtime = input.list("").unwrap().iter().find(|e| e.file_name() == name).unwrap().modified_ms.unwrap();
        last_mtime = mtime;
        // The object belongs to the first batch whose time is at or after its modification time.
        let batch = mtime.div_ceil(1000) * 1000;
        while clock.now_millis() < batch {
            ssc.run_batches(1).unwrap();
        }
        expected.push((batch, body));
    }
    ssc.run_batches(3).unwrap();
    ssc.stop(false).unwrap();
    let mut got: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (t, mut batch) in lines.batches() {
        batch.sort();
        if !batch.is_empty() {
            got.entry(t.millis()).or_default().extend(batch);
        }
    }
    let mut want: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (t, body) in expected {
        want.entry(t).or_default().extend(body);
    }
    for v in want.values_mut().chain(got.values_mut()) {
        v.sort();
    }
    assert_eq!(got, want, "each object once, in the batch of its modification time");
}

#[test]
fn a_bad_endpoint_bucket_or_key_is_a_clear_error_at_start() {
    // Nothing listens: an error within the retry timeout, naming the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conf = s3_conf(&format!("http://127.0.0.1:{closed}"));
    let watch = ember::clock::Stopwatch::start();
    let e = ember::storage::open("s3://bucket/ck", &conf, true).err().expect("unreachable").to_string();
    assert!(e.contains("cannot reach s3://bucket/ck"), "{e}");
    assert!(watch.elapsed() < Duration::from_secs(60), "no hang: {:?}", watch.elapsed());
    // The checkpoint directory is opened when the job is created from it.
    let e = StreamingContext::get_or_create("s3://bucket/ck", || {
        build(conf.clone(), "local[1]", "s3://bucket/o", "s3://bucket/ck")
    })
    .err()
    .expect("unreachable")
    .to_string();
    assert!(e.contains("cannot reach s3://bucket/ck"), "{e}");

    let moto = moto();
    let conf = s3_conf(&moto.endpoint);
    let e = ember::storage::open("s3://no-such-bucket/x", &conf, true).err().expect("no bucket").to_string();
    assert!(e.contains("no-such-bucket") && e.contains("NoSuchBucket"), "{e}");
    // An output to a missing bucket is an error of `start`.
    let ssc = StreamingContext::new(conf.clone().manual_clock(true), Duration::from_secs(1)).unwrap();
    ssc.queue_stream(vec![vec![1]], true).save_as_text_files("s3://no-such-bucket/out/n", "");
    let e = ssc.start().unwrap_err().to_string();
    assert!(e.contains("no-such-bucket"), "{e}");
    // A scheme nothing serves names the crate that would.
    let e = ember::storage::open("gs://bucket/x", &conf, true).err().expect("no gcs in this build").to_string();
    assert!(e.contains("gs://"), "{e}");

    // Credentials the store does not know (moto checks them after the bucket exists).
    let strict = Service::moto(Some(1));
    assert_eq!(strict.http("PUT", "/bucket"), 200);
    let e = ember::storage::open("s3://bucket/x", &s3_conf(&strict.endpoint), true).err().expect("refused").to_string();
    assert!(e.contains("InvalidAccessKeyId") || e.contains("403"), "{e}");
    assert!(!e.contains("ember-test-secret"), "the secret is never shown: {e}");
}

#[test]
fn a_store_that_goes_away_fails_the_job_with_a_clear_error() {
    let moto = moto();
    let conf = s3_conf(&moto.endpoint);
    let ssc = build(conf.clone(), "local[2]", "s3://bucket/out", "s3://bucket/ck").unwrap();
    ssc.start().unwrap();
    ssc.run_batches(3).unwrap();
    let port = moto.port;
    drop(moto);
    let e = ssc.run_batches(3).map(|_| ()).and_then(|_| ssc.stop(false)).unwrap_err().to_string();
    assert!(e.contains(&format!("127.0.0.1:{port}")) || e.contains("s3://bucket"), "{e}");
    let _ = ssc.stop(false);
}

#[test]
fn the_s3_word_count_example_counts_each_object_once_across_a_restart() {
    let moto = moto();
    let conf = s3_conf(&moto.endpoint);
    let input = open("s3://bucket/in", &conf);
    input.put("a.txt", b"to be or not to be\n").unwrap();
    input.put("b.txt", b"be quick\n").unwrap();
    // The clock starts before the oldest object was written, so the first batches read them.
    let oldest = input.list("").unwrap().iter().filter_map(|e| e.modified_ms).min().unwrap();
    let start = oldest / 1000 * 1000 - 1000;
    let run = |batches: u64| {
        let status = std::process::Command::new(ember::testing::example_binary("s3_word_count"))
            .args(["s3://bucket/in", "s3://bucket/out", "s3://bucket/ck"])
            .args(["--manual-clock", &start.to_string(), "--batches", &batches.to_string()])
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "ember-test")
            .env("AWS_SECRET_ACCESS_KEY", "ember-test-secret")
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "error")
            .status()
            .unwrap();
        assert!(status.success(), "s3_word_count failed: {status}");
    };
    run(3);
    run(6); // recovers from the checkpoint on S3 and goes on
    let outputs = ember::testing::committed_outputs_at("s3://bucket/out", &conf);
    assert_eq!(outputs.len(), 6, "one output per batch: {:?}", outputs.keys());
    let last: BTreeMap<String, u64> = ember::testing::parse_counts(outputs.values().last().unwrap());
    let want: BTreeMap<String, u64> =
        [("be", 3), ("not", 1), ("or", 1), ("quick", 1), ("to", 2)].iter().map(|(w, n)| (w.to_string(), *n)).collect();
    assert_eq!(last, want, "each object read once");
}
