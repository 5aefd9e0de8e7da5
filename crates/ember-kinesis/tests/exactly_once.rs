//! The Kinesis word count example killed with SIGKILL at random points and restarted: its output
//! equals an uninterrupted run's (the logged sequence-number ranges are read again).

mod common;

use std::process::{Command, Stdio};

const START: u64 = 1_700_000_000_000;
const WORDS: [&str; 8] = ["ember", "spark", "stream", "batch", "window", "state", "kinesis", "timely"];

#[test]
fn idempotent_output_survives_kill_9_at_random_points() {
    const BATCHES: u64 = 40;
    let server = common::Server::kinesalite();
    let c = server.client();
    common::create_stream(&c, "words", 3);
    let (lines, want) = ember::testing::random_word_lines(600, &WORDS);
    let lines: Vec<(String, Vec<u8>)> =
        lines.into_iter().enumerate().map(|(i, l)| (format!("key{i}"), l.into_bytes())).collect();
    common::put(&c, "words", &lines);

    let dir = tempfile::tempdir().unwrap();
    let run = |out: &std::path::Path, ck: &std::path::Path| {
        let mut cmd = Command::new(ember::testing::example_binary("kinesis_word_count"));
        cmd.arg(&server.endpoint)
            .arg("words")
            .arg(out)
            .arg(ck)
            .args(["--max-rate", "7", "--manual-clock", &START.to_string(), "--batches", &BATCHES.to_string()])
            .env("AWS_ACCESS_KEY_ID", "AKIDEMBERTEST")
            .env("AWS_SECRET_ACCESS_KEY", "ember-test-secret")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    ember::testing::check_word_totals_survive_kills(dir.path(), run, BATCHES, &want);
}
