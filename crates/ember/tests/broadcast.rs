//! Broadcast variables: read on every worker, the driver's value in every process of a cluster,
//! and declared anew by `get_or_create`'s build function after a recovery.

mod common;

use std::time::Duration;

use ember::testing::exclusive;
use ember::{Conf, GeneratedText, StreamingContext};

/// Every record, on whichever worker it lands, tagged with the broadcast value read there.
fn tagged_run(conf: Conf, value: String) -> Vec<(u32, String)> {
    let ssc = StreamingContext::new(conf.manual_clock(true), Duration::from_secs(1)).unwrap();
    let b = ssc.broadcast(value);
    let batches: Vec<Vec<u32>> = vec![(0..40).collect(), (40..80).collect()];
    let out = ssc.queue_stream(batches, true).repartition(4).map(move |x| (x, b.value().clone())).collect_batches();
    ssc.run_batches(2).unwrap();
    ssc.stop(false).unwrap();
    let mut all: Vec<(u32, String)> = out.batches().into_iter().flat_map(|(_, b)| b).collect();
    all.sort();
    all
}

#[test]
fn every_worker_reads_the_value() {
    let _g = exclusive();
    let all = tagged_run(Conf::new().master("local[3]"), "stop words".into());
    assert_eq!(all.len(), 80);
    assert!(all.iter().all(|(_, v)| v == "stop words"), "{all:?}");
}

#[test]
#[ignore = "run as a child process by `every_process_reads_the_drivers_value`"]
fn broadcast_cluster_child() {
    let process = std::env::var("EMBER_CLUSTER_PROCESS").unwrap();
    for (x, v) in tagged_run(Conf::new(), format!("made by process {process}")) {
        println!("BC {x} {v}");
    }
}

#[test]
fn every_process_reads_the_drivers_value() {
    let outputs = common::run_cluster("broadcast_cluster_child", &[]);
    let lines = common::tagged(&outputs[0].stdout, "BC");
    assert_eq!(lines.len(), 80, "the driver collects every record");
    assert!(lines.iter().all(|l| l.ends_with(" made by process 0")), "{lines:?}");
}

#[test]
fn after_a_recovery_the_build_function_declares_it_again() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let build = |value: &str| -> ember::Result<(StreamingContext, ember::BatchCollector<String>)> {
        let conf = Conf::new().master("local[2]").manual_clock(true).set("clock.manual.start", "1700000000000");
        let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
        ssc.checkpoint(dir.path());
        let b = ssc.broadcast(value.to_owned());
        let text = GeneratedText { lines_per_second: 4, words_per_line: 2, vocabulary: 5, skew: 0.0, seed: 1 };
        let counts = ssc
            .generated_text_stream_with(text)
            .map(|l: String| (l, 1u64))
            .update_state_by_key(|n: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + n.len() as u64))
            .checkpoint(Duration::from_secs(2));
        let out = counts.map(move |(l, n)| format!("{} {l} {n}", b.value())).collect_batches();
        Ok((ssc, out))
    };
    let (ssc, first) = build("v1").unwrap();
    ssc.run_batches(5).unwrap();
    ssc.stop(false).unwrap();
    assert!(first.batches().iter().flat_map(|(_, b)| b).all(|l| l.starts_with("v1 ")));
    let mut again = None;
    let ssc = StreamingContext::get_or_create(dir.path(), || {
        let (ssc, out) = build("v2")?;
        again = Some(out);
        Ok(ssc)
    })
    .unwrap();
    ssc.run_batches(3).unwrap();
    ssc.stop(false).unwrap();
    let lines: Vec<String> = again.unwrap().batches().into_iter().flat_map(|(_, b)| b).collect();
    assert!(!lines.is_empty() && lines.iter().all(|l| l.starts_with("v2 ")), "{lines:?}");
}
