//! The Kinesis word count example killed with SIGKILL at random points and restarted: its output
//! equals an uninterrupted run's (the logged sequence-number ranges are read again).

mod common;
use common::KinesisServer;

use std::process::{Command, Stdio};

const START: u64 = 1_700_000_000_000;
const WORDS: [&str; 8] = ["ember", "spark", "stream", "batch", "window", "state", "kinesis", "timely"];

/// The example reading stream `words` at `endpoint` into `out`, checkpointed to `ck`, 7 records/s
/// per shard, on the manual clock until batch `batches`; quiet.
fn example(endpoint: &str, out: &std::path::Path, ck: &std::path::Path, batches: u64) -> Command {
    let mut cmd = Command::new(ember::testing::example_binary("kinesis_word_count"));
    cmd.arg(endpoint)
        .arg("words")
        .arg(out)
        .arg(ck)
        .args(["--max-rate", "7", "--manual-clock", &START.to_string(), "--batches", &batches.to_string()])
        .env("AWS_ACCESS_KEY_ID", "AKIDEMBERTEST")
        .env("AWS_SECRET_ACCESS_KEY", "ember-test-secret")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null());
    cmd
}

#[test]
fn idempotent_output_survives_kill_9_at_random_points() {
    const BATCHES: u64 = 40;
    let server = common::kinesalite();
    let c = server.client();
    common::create_stream(&c, "words", 3);
    let (lines, want) = ember::testing::random_word_lines(600, &WORDS);
    let lines: Vec<(String, Vec<u8>)> =
        lines.into_iter().enumerate().map(|(i, l)| (format!("key{i}"), l.into_bytes())).collect();
    common::put(&c, "words", &lines);

    let dir = tempfile::tempdir().unwrap();
    let run = |out: &std::path::Path, ck: &std::path::Path| {
        let mut cmd = example(&server.endpoint, out, ck, BATCHES);
        cmd.stderr(Stdio::null());
        cmd
    };
    ember::testing::check_word_totals_survive_kills(dir.path(), run, BATCHES, &want);
}

#[test]
fn a_stream_rescaled_from_2_to_3_processes_to_1_reads_every_record_once() {
    const END: u64 = 24;
    let server = common::kinesalite();
    let c = server.client();
    common::create_stream(&c, "words", 4);
    let (lines, want) = ember::testing::random_word_lines(500, &WORDS);
    let lines: Vec<(String, Vec<u8>)> =
        lines.into_iter().enumerate().map(|(i, l)| (format!("key{i}"), l.into_bytes())).collect();
    common::put(&c, "words", &lines);
    let dir = tempfile::tempdir().unwrap();
    // `processes` processes x 2 workers (0: one process of `local[2]`) to batch `batches`, stopped
    // gracefully.
    let run = |out: &std::path::Path, ck: &std::path::Path, processes: usize, batches: u64| {
        let hosts = ember::testing::loopback_hosts(processes.max(1));
        let children: Vec<_> = (0..processes.max(1))
            .map(|i| {
                let mut cmd = example(&server.endpoint, out, ck, batches);
                cmd.arg("--graceful").stderr(Stdio::piped());
                if processes > 0 {
                    cmd.envs(ember::testing::cluster_env(&hosts, i));
                }
                cmd.spawn().unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{processes} processes: {}", String::from_utf8_lossy(&o.stderr));
        }
    };
    run(&dir.path().join("a"), &dir.path().join("ck-a"), 0, END);
    let expected = ember::testing::committed_outputs(&dir.path().join("a"));
    let last = expected.values().last().unwrap();
    assert_eq!(ember::testing::parse_counts::<u64>(last), want, "500 lines at 28 a batch: all read by the end");
    let (out, ck) = (dir.path().join("b"), dir.path().join("ck-b"));
    for (processes, batches) in [(2, 7), (3, 15), (0, END)] {
        run(&out, &ck, processes, batches);
    }
    assert_eq!(ember::testing::committed_outputs(&out), expected, "2, then 3 processes, then 1: the output of one");
}
