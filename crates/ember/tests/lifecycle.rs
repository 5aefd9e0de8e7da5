//! Context lifecycle (spec §1), batch grid (§0.2), listener events (§9.1) and batch edge cases.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ember::testing::{exclusive, manual_context};
use ember::{BatchInfo, Conf, ContextState, OutputOperationInfo, StreamingContext, StreamingListener};

fn err_text<T>(r: ember::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn batch_interval_must_be_whole_positive_millis() {
    assert!(err_text(StreamingContext::new(Conf::new(), Duration::ZERO)).contains("batch interval"));
    assert!(err_text(StreamingContext::new(Conf::new(), Duration::from_micros(500)))
        .contains("whole number of milliseconds"));
}

#[test]
fn bad_configuration_names_the_key() {
    let e = err_text(StreamingContext::new(Conf::new().master("local[0]"), Duration::from_secs(1)));
    assert!(e.contains("`master`") && e.contains("local[N]"), "{e}");
    let e = err_text(StreamingContext::new(Conf::new().set("no.such.key", "1"), Duration::from_secs(1)));
    assert!(e.contains("unknown configuration key `no.such.key`"), "{e}");
}

#[test]
fn start_without_outputs_fails_and_stops() {
    let _g = exclusive();
    let ssc = manual_context("local[1]");
    let _ = ssc.queue_stream(vec![vec![1]], true).map(|x: i32| x);
    assert!(err_text(ssc.start()).contains("No output operations registered"));
    assert_eq!(ssc.state(), ContextState::Stopped);
}

#[test]
fn states_and_repeated_calls() {
    let _g = exclusive();
    let ssc = manual_context("local[2]");
    assert_eq!(ssc.state(), ContextState::Initialized);
    let s = ssc.queue_stream(vec![vec![1]], true);
    let _c = s.count().collect_batches();
    ssc.start().unwrap();
    assert_eq!(ssc.state(), ContextState::Active);
    ssc.start().unwrap(); // a second start only warns
                          // Adding after start is an error returned by the next fallible call.
    let _late = s.map(|x: i32| x + 1);
    let e = err_text(ssc.run_batches(1));
    assert!(e.contains("cannot add `map`") && e.contains("after starting"), "{e}");
    ssc.stop(false).unwrap();
    assert_eq!(ssc.state(), ContextState::Stopped);
    ssc.stop(false).unwrap(); // idempotent
    assert!(err_text(ssc.start()).contains("already been stopped"));
}

#[test]
fn stop_before_start_moves_to_stopped() {
    let _g = exclusive();
    let ssc = manual_context("local[1]");
    ssc.stop(false).unwrap();
    assert_eq!(ssc.state(), ContextState::Stopped);
}

#[test]
fn only_one_active_context_per_process_when_asked() {
    let _g = exclusive();
    let single = || {
        let conf = Conf::new().master("local[1]").manual_clock(true).set("context.single_active", "true");
        let ssc = StreamingContext::new(conf, Duration::from_secs(1)).unwrap();
        ssc.queue_stream(vec![vec![1]], true).count().collect_batches();
        ssc
    };
    let plain = || {
        let ssc = manual_context("local[1]");
        ssc.queue_stream(vec![vec![1]], true).count().collect_batches();
        ssc
    };
    let a = single();
    a.start().unwrap();
    let b = single();
    assert!(err_text(b.start()).contains("Only one StreamingContext"));
    assert!(err_text(plain().start()).contains("Only one StreamingContext"), "nor one that did not ask");
    a.stop(false).unwrap();
    // Once the first stopped, a new one may start.
    let c = single();
    c.start().unwrap();
    c.stop(false).unwrap();
    // Without the rule, contexts run side by side; one that asks for it then may not start.
    let (d, e) = (plain(), plain());
    d.start().unwrap();
    e.start().unwrap();
    assert!(err_text(single().start()).contains("Only one StreamingContext"));
    d.run_batches(1).unwrap();
    e.run_batches(1).unwrap();
    d.stop(false).unwrap();
    e.stop(false).unwrap();
}

#[test]
fn union_of_different_contexts_is_a_declaration_error() {
    let _g = exclusive();
    let a = manual_context("local[1]");
    let b = manual_context("local[1]");
    let sa = a.queue_stream(vec![vec![1]], true);
    let sb = b.queue_stream(vec![vec![1]], true);
    sa.union(&sb).count().collect_batches();
    assert!(err_text(a.start()).contains("different StreamingContexts"));
    let e = err_text(a.run_batches(1));
    assert!(e.contains("stopped") || e.contains("union"), "{e}");
}

#[test]
fn run_batches_needs_the_manual_clock() {
    let _g = exclusive();
    let ssc = StreamingContext::new(Conf::new().master("local[1]"), Duration::from_secs(1)).unwrap();
    assert!(err_text(ssc.run_batches(1)).contains("manual clock"));
}

#[test]
fn batch_grid_follows_spark() {
    let _g = exclusive();
    // Spark's conformance case: now = 12,345 ms, B = 1 s -> first batch 13,000, zero 12,000.
    let conf = Conf::new().master("local[1]").manual_clock(true).set("clock.manual.start", "12345");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1)).unwrap();
    let out = ssc.queue_stream(vec![vec![1], vec![2]], true).collect_batches();
    ssc.run_batches(2).unwrap();
    assert_eq!(ssc.zero_time().unwrap().millis(), 12_000);
    ssc.stop(false).unwrap();
    let times: Vec<u64> = out.batches().iter().map(|(t, _)| t.millis()).collect();
    assert_eq!(times, vec![13_000, 14_000]);
}

#[test]
fn empty_batches_and_count_zero() {
    let _g = exclusive();
    let ssc = manual_context("local[2]");
    let s = ssc.queue_stream(Vec::<Vec<u8>>::new(), true);
    let counts = s.count().collect_batches();
    let reduced = s.reduce(|a, b| a.max(b)).collect_batches();
    ssc.run_batches(3).unwrap();
    ssc.stop(false).unwrap();
    assert_eq!(counts.batches().into_iter().map(|(_, c)| c).collect::<Vec<_>>(), vec![vec![0], vec![0], vec![0]]);
    assert!(reduced.batches().iter().all(|(_, b)| b.is_empty()));
    assert_eq!(reduced.batches().len(), 3, "an output runs for every batch, empty ones too");
}

#[test]
fn a_batch_of_one_million_records() {
    let _g = exclusive();
    let ssc = manual_context("local[2]");
    let batch: Vec<u32> = (0..1_000_000).collect();
    let s = ssc.queue_stream(vec![batch], true);
    let count = s.count().collect_batches();
    let buckets = s.map(|x| (x % 1000, 1u64)).reduce_by_key(|a, b| a + b).collect_batches();
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    assert_eq!(count.batches()[0].1, vec![1_000_000]);
    let b = &buckets.batches()[0].1;
    assert_eq!(b.len(), 1000);
    assert!(b.iter().all(|&(_, n)| n == 1000));
}

#[test]
fn outputs_run_in_declaration_order_once_per_batch() {
    let _g = exclusive();
    let ssc = manual_context("local[3]");
    let log = Arc::new(Mutex::new(Vec::new()));
    let s = ssc.queue_stream(vec![vec![1, 2, 3], vec![4]], true);
    for name in ["first", "second", "third"] {
        let log = Arc::clone(&log);
        s.foreach_batch(move |t, xs: Vec<i32>| log.lock().unwrap().push((t.millis(), name, xs.len())));
    }
    ssc.run_batches(2).unwrap();
    ssc.stop(false).unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            (1000, "first", 3),
            (1000, "second", 3),
            (1000, "third", 3),
            (2000, "first", 1),
            (2000, "second", 1),
            (2000, "third", 1)
        ]
    );
}

#[derive(Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl StreamingListener for Recorder {
    fn on_batch_submitted(&mut self, i: &BatchInfo) {
        self.0.lock().unwrap().push(format!("submitted {}", i.batch_time.millis()));
    }
    fn on_batch_started(&mut self, i: &BatchInfo) {
        self.0.lock().unwrap().push(format!("started {}", i.batch_time.millis()));
    }
    fn on_output_operation_started(&mut self, i: &OutputOperationInfo) {
        self.0.lock().unwrap().push(format!("op-started {} {}", i.batch_time.millis(), i.id));
    }
    fn on_output_operation_completed(&mut self, i: &OutputOperationInfo) {
        let failed = if i.failure_reason.is_some() { " failed" } else { "" };
        self.0.lock().unwrap().push(format!("op-completed {} {}{failed}", i.batch_time.millis(), i.id));
    }
    fn on_batch_completed(&mut self, i: &BatchInfo) {
        self.0.lock().unwrap().push(format!(
            "completed {} records={} delay={:?}",
            i.batch_time.millis(),
            i.num_records(),
            i.total_delay()
        ));
    }
}

#[test]
fn listener_sees_events_in_order_and_failures_surface() {
    let _g = exclusive();
    let ssc = manual_context("local[2]");
    let events = Arc::new(Mutex::new(Vec::new()));
    ssc.add_streaming_listener(Recorder(Arc::clone(&events)));
    let s = ssc.queue_stream(vec![vec![1, 2], vec![3]], true);
    s.count().collect_batches();
    s.foreach_batch(|t, _xs: Vec<i32>| if t.millis() == 2000 { Err("sink unavailable") } else { Ok(()) });
    ssc.run_batches(1).unwrap();
    let e = err_text(ssc.run_batches(1));
    assert!(e.contains("output operation 1 (`foreach_batch`) failed at batch 2000 ms: sink unavailable"), "{e}");
    ssc.run_batches(1).unwrap(); // later batches go on
    ssc.stop(false).unwrap();
    let ev = events.lock().unwrap().clone();
    let want_first = [
        "submitted 1000",
        "started 1000",
        "op-started 1000 0",
        "op-completed 1000 0",
        "op-started 1000 1",
        "op-completed 1000 1",
        "completed 1000 records=2 delay=Some(0)",
    ];
    assert_eq!(&ev[..7], &want_first[..]);
    assert!(ev.contains(&"op-completed 2000 1 failed".to_string()), "{ev:?}");
    assert!(ev.contains(&"completed 3000 records=0 delay=Some(0)".to_string()), "{ev:?}");
}

#[test]
fn panicking_output_is_reported_not_fatal() {
    let _g = exclusive();
    let ssc = manual_context("local[1]");
    ssc.queue_stream(vec![vec![1]], true).foreach_batch::<()>(|_t, _x: Vec<i32>| panic!("boom"));
    let e = err_text(ssc.run_batches(1));
    assert!(e.contains("panicked: boom"), "{e}");
    ssc.stop(false).unwrap();
}

#[test]
fn graceful_stop_processes_the_open_batch() {
    let _g = exclusive();
    let ssc = manual_context("local[2]");
    let (s, q) = ssc.queue_stream_with_handle(vec![vec![1]], true);
    let out = s.collect_batches();
    ssc.run_batches(1).unwrap();
    q.push(vec![7, 8]);
    ssc.stop(true).unwrap();
    let b = out.batches();
    assert_eq!(b.len(), 2, "the open batch ran at the graceful stop: {:?}", b);
    let mut last = b[1].1.clone();
    last.sort();
    assert_eq!(last, vec![7, 8]);
}

#[test]
fn a_bound_of_one_batch_in_flight_still_runs_every_batch() {
    let _g = exclusive();
    let conf = Conf::new().master("local[2]").manual_clock(true).set("flow.max_batches_in_flight", "1");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1)).unwrap();
    let out = ssc.queue_stream((1..=5).map(|i| vec![i; i]).collect::<Vec<_>>(), true).count().collect_batches();
    // Five batches become due at once; the sources close them one at a time.
    ssc.run_batches(5).unwrap();
    ssc.stop(false).unwrap();
    let counts: Vec<u64> = out.batches().into_iter().map(|(_, c)| c[0]).collect();
    assert_eq!(counts, vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_panicking_transformation_fails_the_job_without_hanging_stop() {
    let _g = exclusive();
    let ssc = manual_context("local[2]");
    let out = ssc
        .queue_stream(vec![(0..100).collect::<Vec<u32>>()], true)
        .map(|x| if x == 57 { panic!("bad record {x}") } else { x })
        .reduce(|a, b| a + b)
        .collect_batches();
    let e = err_text(ssc.run_batches(1));
    assert!(e.contains("the function of `map` panicked at batch 1000 ms: bad record 57"), "{e}");
    let _ = ssc.stop(false);
    assert_eq!(ssc.state(), ContextState::Stopped);
    assert_eq!(out.batches(), vec![], "no output ran on the failed batch's partial records");
}

/// Batch time, submission time and scheduling delay of each completed batch, also sent on.
struct Delays(std::sync::mpsc::Sender<(u64, u64, Option<u64>)>);

impl StreamingListener for Delays {
    fn on_batch_completed(&mut self, i: &BatchInfo) {
        let _ = self.0.send((i.batch_time.millis(), i.submission_time, i.scheduling_delay()));
    }
}

#[test]
fn scheduling_delay_counts_from_the_batch_time_when_the_driver_worker_was_busy() {
    use std::sync::mpsc::channel;
    let _g = exclusive();
    let ssc = manual_context("local[1]");
    let (completed, delays) = channel();
    ssc.add_streaming_listener(Delays(completed));
    let (started, started_rx) = channel();
    let (gate, gate_rx) = channel::<()>();
    let gate_rx = Mutex::new(gate_rx);
    ssc.queue_stream(vec![vec![1]; 5], true).foreach_batch(move |t, _x: Vec<i32>| {
        if t.millis() == 1000 {
            let _ = started.send(());
            let _ = gate_rx.lock().unwrap().recv_timeout(Duration::from_secs(20));
        }
    });
    ssc.start().unwrap();
    let clock = ssc.manual_clock().unwrap();
    clock.advance(1000);
    started_rx.recv_timeout(Duration::from_secs(20)).expect("batch 1000 started");
    // Batches 2000..4000 become due while the only worker runs batch 1000's output.
    clock.advance(3000);
    gate.send(()).unwrap();
    let mut got: Vec<_> = (0..4).map(|_| delays.recv_timeout(Duration::from_secs(20)).expect("completed")).collect();
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    got.extend(delays.try_iter());
    assert_eq!(
        got,
        vec![
            (1000, 1000, Some(0)),
            (2000, 2000, Some(2000)),
            (3000, 3000, Some(1000)),
            (4000, 4000, Some(0)),
            (5000, 5000, Some(0))
        ]
    );
}

/// Per batch, the records of flat_map, filter, map and reduce_by_key (and the input's, first),
/// as `operation_records` counted them; only process 0 (the driver) has them.
fn operation_records(ssc: &StreamingContext) -> Vec<Vec<u64>> {
    let lines: Vec<Vec<String>> = vec![
        (0..100).map(|i| format!("a b{} c", i % 7)).collect(),
        Vec::new(),
        (0..10).map(|_| "a a".to_owned()).collect(),
    ];
    let words = ssc.queue_stream(lines, true).flat_map(|l: String| l.split(' ').map(String::from).collect::<Vec<_>>());
    let counts = words.filter(|w| w != "c").map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b);
    counts.foreach_batch(|_t, _c: Vec<(String, u64)>| {});
    ssc.track_operation_records();
    let completed = ember::testing::completed_batches(ssc);
    ssc.run_batches(3).unwrap();
    ssc.stop(false).unwrap();
    let plan = ssc.plan();
    let names = ["flat_map", "filter", "map", "reduce_by_key"];
    assert_eq!(plan.nodes.iter().map(|n| n.name.as_str()).skip(1).collect::<Vec<_>>(), names, "user operations only");
    let ids: Vec<usize> = plan.nodes.iter().map(|n| n.id).collect();
    let batches = completed.lock().unwrap().clone();
    batches.iter().map(|b| ids.iter().map(|id| b.operation_records.get(id).copied().unwrap_or(0)).collect()).collect()
}

/// 100 lines: 300 words, 200 without `c`, 8 distinct; none; 10 lines: 20 words, 1 distinct.
const OPERATION_RECORDS: [[u64; 5]; 3] = [[100, 300, 200, 200, 8], [0; 5], [10, 20, 20, 20, 1]];

#[test]
fn operation_records_count_what_each_operation_produced_in_each_batch() {
    let _g = exclusive();
    for master in ["local[1]", "local[3]"] {
        assert_eq!(operation_records(&manual_context(master)), OPERATION_RECORDS, "{master}");
    }
    let outputs = ember::testing::run_cluster("operation_records_cluster_child", &[]);
    let got: Vec<Vec<u64>> = ember::testing::tagged(&outputs[0].stdout, "OPS")
        .iter()
        .map(|l| l.split(',').map(|n| n.parse().unwrap()).collect())
        .collect();
    assert_eq!(got, OPERATION_RECORDS, "2 processes x 2 workers: counted in every process, summed on the driver");
}

#[test]
#[ignore = "run as a child process by `operation_records_count_what_each_operation_produced_in_each_batch`"]
fn operation_records_cluster_child() {
    let ssc = StreamingContext::new(Conf::new().manual_clock(true), Duration::from_secs(1)).unwrap();
    let batches = operation_records(&ssc);
    for b in batches {
        println!("OPS {}", b.iter().map(u64::to_string).collect::<Vec<_>>().join(","));
    }
}

#[test]
fn on_batch_sees_every_batch_time_once_and_reports_its_errors() {
    let _g = exclusive();
    for master in ["local[1]", "local[3]"] {
        let ssc = manual_context(master);
        let times = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&times);
        let batches: Vec<Vec<u32>> = vec![(0..1000).collect(), Vec::new(), vec![7]];
        ssc.queue_stream(batches, true).on_batch(move |t| -> Result<(), String> {
            seen.lock().unwrap().push(t.millis());
            if t.millis() == 2000 {
                return Err("refused".into());
            }
            Ok(())
        });
        let err = ssc.run_batches(4).expect_err("the error of batch 2 is reported");
        assert!(err.to_string().contains("on_batch") && err.to_string().contains("refused"), "{master}: {err}");
        ssc.stop(false).unwrap();
        assert_eq!(*times.lock().unwrap(), vec![1000, 2000, 3000, 4000], "{master}: once per batch, empty ones too");
        let plan = ssc.plan();
        assert_eq!(plan.outputs[0].name, "on_batch");
        assert_eq!(plan.nodes.len(), 1, "{master}: the dropping step is internal to on_batch");
    }
}
