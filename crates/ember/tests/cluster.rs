//! Cluster mode: the same program as 2 processes x 2 workers on loopback gives exactly the output
//! of local[1].

mod common;

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
