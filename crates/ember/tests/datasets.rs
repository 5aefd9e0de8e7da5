//! Static datasets inside `transform`: joins of a stream with a keyed dataset, a subtract of a
//! dataset, and the lines of a file, against a naive model under local[1], local[3] and 2
//! processes x 2 workers; a keyed dataset is never sent between processes.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ember::testing::exclusive;
use ember::{Conf, StreamingContext};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const BATCHES: usize = 4;

/// Times a `Name` was encoded (to be sent to another process) in this process.
static ENCODED: AtomicUsize = AtomicUsize::new(0);

/// A dataset value that counts its encodings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Name(String);

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ENCODED.fetch_add(1, Ordering::Relaxed);
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Name)
    }
}

fn table() -> Vec<(u32, Name)> {
    (0..30).filter(|k| k % 3 != 0).map(|k| (k, Name(format!("name{k}")))).collect()
}

fn input() -> Vec<Vec<(u32, u32)>> {
    (0..BATCHES as u32).map(|b| (0..25).map(|i| ((i * 7 + b * 5) % 40, i + 100 * b)).collect()).collect()
}

/// `join <batch> <sorted pairs>` and `subtract <batch> <sorted keys>` lines.
fn model() -> Vec<String> {
    let names: Vec<(u32, Name)> = table();
    let mut out = Vec::new();
    for (i, batch) in input().iter().enumerate() {
        let mut joined: Vec<(u32, u32, String)> = Vec::new();
        for (k, v) in batch {
            for (k2, n) in &names {
                if k == k2 {
                    joined.push((*k, *v, n.0.clone()));
                }
            }
        }
        joined.sort();
        out.push(format!("join {i} {joined:?}"));
        let known: BTreeSet<u32> = names.iter().map(|(k, _)| *k).collect();
        let unknown: BTreeSet<u32> = batch.iter().map(|(k, _)| *k).filter(|k| !known.contains(k)).collect();
        out.push(format!("subtract {i} {:?}", unknown.into_iter().collect::<Vec<_>>()));
        out.push(format!("text_file {i} {}", batch.len() * 2));
    }
    out
}

fn run(conf: Conf, dir: &std::path::Path) -> Vec<String> {
    let ssc = StreamingContext::new(conf.manual_clock(true), Duration::from_secs(1)).unwrap();
    let names = ssc.keyed_dataset(table());
    let known = ssc.dataset(table().into_iter().map(|(k, _)| k).collect());
    let file = dir.join("lines.txt");
    std::fs::write(&file, "first\nsecond\n").unwrap();
    let lines = ssc.text_file(&file);
    let stream = ssc.queue_stream(input(), true);
    // The dataset's names never leave their worker: only keys, values and the name's text move.
    let joined = stream.transform(|rdd| rdd.join(&names)).map(|(k, (v, n))| (k, v, n.0)).collect_batches();
    let unknown = stream.map(|(k, _)| k).transform(|rdd| rdd.subtract(&known).distinct()).collect_batches();
    let crossed = stream.transform(|rdd| rdd.cartesian(&lines)).count().collect_batches();
    ssc.run_batches(BATCHES as u64).unwrap();
    ssc.stop(false).unwrap();
    if joined.batches().is_empty() {
        return Vec::new(); // a process other than the driver's collects nothing
    }
    let mut out = Vec::new();
    for i in 0..BATCHES {
        let mut j = joined.batches()[i].1.clone();
        j.sort();
        out.push(format!("join {i} {j:?}"));
        let mut u = unknown.batches()[i].1.clone();
        u.sort();
        out.push(format!("subtract {i} {u:?}"));
        out.push(format!("text_file {i} {}", crossed.batches()[i].1.iter().sum::<u64>()));
    }
    out
}

#[test]
fn joins_with_datasets_match_the_model_under_local_1_and_local_3() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(Conf::new().master("local[1]"), dir.path()), model());
    assert_eq!(run(Conf::new().master("local[3]"), dir.path()), model());
}

#[test]
#[ignore = "run as a child process by `joins_with_datasets_match_the_model_on_two_processes`"]
fn datasets_cluster_child() {
    println!(); // the test harness's `test ... ` line has no newline of its own
    let dir = tempfile::tempdir().unwrap();
    for l in run(Conf::new(), dir.path()) {
        println!("DS {l}");
    }
    println!("ENCODED {}", ENCODED.load(Ordering::Relaxed));
}

#[test]
fn joins_with_datasets_match_the_model_on_two_processes() {
    let outputs = common::run_cluster("datasets_cluster_child", &[]);
    assert_eq!(common::tagged(&outputs[0].stdout, "DS"), model());
    for (p, o) in outputs.iter().enumerate() {
        assert_eq!(common::tagged(&o.stdout, "ENCODED"), vec!["0".to_string()], "process {p} sent no dataset value");
    }
}

#[test]
fn an_unreadable_text_file_is_an_error_at_start() {
    let _g = exclusive();
    let ssc = ember::testing::manual_context("local[1]");
    let lines = ssc.text_file("/nonexistent/ember/lines.txt");
    ssc.queue_stream(vec![vec![1]], true).transform(|rdd| rdd.cartesian(&lines)).print();
    let e = ssc.run_batches(1).unwrap_err().to_string();
    assert!(e.contains("text_file") && e.contains("/nonexistent/ember/lines.txt"), "{e}");
}
