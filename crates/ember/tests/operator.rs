//! The operator kit's failure paths, through the public API only: a sink's write and commit, a
//! planned source's read and an operator's function fail their batch with an error that names
//! them and keeps the failure's own type.

use std::sync::{Arc, Mutex};

use ember::operator::{PlanEnv, PlannedSource, Sink};
use ember::testing::manual_context;
use ember::{Error, Time};

/// The job's error, whose source is the failure as the sink or source reported it.
fn cause(e: &Error) -> &(dyn std::error::Error + 'static) {
    std::error::Error::source(e).unwrap_or_else(|| panic!("`{e}` keeps no source"))
}

/// Fails its write of batch `write_fails`, with an I/O error, and its commit of batch
/// `commit_fails`, with text.
#[derive(Clone, Default)]
struct Flaky {
    write_fails: u64,
    commit_fails: u64,
    committed: Arc<Mutex<Vec<u64>>>,
}

impl Sink<i32> for Flaky {
    fn write(&self, t: Time, _worker: usize, _records: Vec<i32>) -> ember::Result<()> {
        if t.millis() == self.write_fails {
            let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "the store said no");
            return Err(Error::io(format!("writing batch {}", t.millis()), refused));
        }
        Ok(())
    }

    fn commit(&self, t: Time, _workers: usize) -> ember::Result<()> {
        if t.millis() == self.commit_fails {
            return Err(Error::Other("the commit marker could not be written".into()));
        }
        self.committed.lock().unwrap().push(t.millis());
        Ok(())
    }
}

/// Runs three batches into `sink`: the error of the second, and the batches committed.
fn three_batches(sink: Flaky) -> (Error, Vec<u64>) {
    let ssc = manual_context("local[2]");
    ssc.queue_stream(vec![vec![1], vec![2], vec![3]], true).sink("flaky store", sink.clone());
    ssc.run_batches(1).unwrap();
    let e = ssc.run_batches(1).unwrap_err();
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let committed = sink.committed.lock().unwrap().clone();
    (e, committed)
}

#[test]
fn a_sink_whose_write_fails_fails_its_batch_with_its_own_error_and_the_batch_is_not_committed() {
    let (e, committed) = three_batches(Flaky { write_fails: 2000, ..Flaky::default() });
    assert!(e.to_string().contains("(`flaky store`) failed at batch 2000 ms: writing batch 2000"), "{e}");
    let io = cause(&e).downcast_ref::<Error>().and_then(Error::io_kind);
    assert_eq!(io, Some(std::io::ErrorKind::ConnectionRefused), "the I/O error survives: {e}");
    assert_eq!(committed, vec![1000, 3000]);
}

#[test]
fn a_sink_whose_commit_fails_fails_its_batch() {
    let (e, committed) = three_batches(Flaky { commit_fails: 2000, ..Flaky::default() });
    assert!(
        e.to_string().contains("committing `flaky store` at batch 2000 ms: the commit marker could not be written"),
        "{e}"
    );
    assert_eq!(committed, vec![1000, 3000]);
}

/// The error a planned source reports, as its own type.
#[derive(Debug, thiserror::Error)]
#[error("partition {0} is gone")]
struct Gone(u32);

/// Plans one record per batch; reading batch 2000 fails.
struct OnePerBatch;

impl PlannedSource for OnePerBatch {
    type Item = u64;
    type Plan = u64;

    fn plan(&mut self, batch: Time, _rate: Option<f64>) -> ember::Result<u64> {
        Ok(batch.millis())
    }

    fn read(&mut self, _batch: Time, plan: &u64, out: &mut Vec<u64>) -> ember::Result<()> {
        if *plan == 2000 {
            return Err(Error::external("reading the log", Gone(7)));
        }
        out.push(*plan);
        Ok(())
    }
}

#[test]
fn a_planned_source_that_fails_stops_the_job_with_its_own_error() {
    let ssc = manual_context("local[1]");
    let (numbers, _meta) = ssc.planned_source("numbers", "a test log", |_env: &PlanEnv| Ok(OnePerBatch));
    let out = numbers.collect_batches();
    ssc.run_batches(1).unwrap();
    let e = ssc.run_batches(1).unwrap_err();
    assert!(e.to_string().contains("input stream `numbers [0]` failed at batch 2000 ms"), "{e}");
    let gone = cause(&e).downcast_ref::<Error>().and_then(|e| std::error::Error::source(e)?.downcast_ref::<Gone>());
    assert_eq!(gone.map(|g| g.0), Some(7), "the source's error type survives: {e}");
    let _ = ssc.stop(false);
    assert_eq!(out.batches().into_iter().map(|(t, b)| (t.millis(), b)).collect::<Vec<_>>(), vec![(1000, vec![1000])]);
}

#[test]
fn a_panic_in_an_operator_fails_its_batch_naming_the_operator() {
    let ssc = manual_context("local[2]");
    let out = ssc
        .queue_stream(vec![vec![1], vec![2]], true)
        .operator("checked", |b| {
            b.per_batch("no twos", |_t, xs: Vec<i32>, out| {
                assert!(!xs.contains(&2), "a two");
                out.extend(xs)
            })
        })
        .collect_batches();
    ssc.run_batches(1).unwrap();
    let e = ssc.run_batches(1).unwrap_err();
    assert!(e.to_string().contains("`no twos` panicked at batch 2000 ms: a two"), "{e}");
    let _ = ssc.stop(false);
    assert_eq!(out.batches().len(), 1, "no output ran for the failed batch");
}

#[test]
fn a_panic_on_a_worker_other_than_the_driver_fails_the_batch_everywhere() {
    let ssc = manual_context("local[2]");
    let out = ssc
        .queue_stream(vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]], true)
        .operator("checked", |b| {
            let worker = b.worker();
            b.round_robin().per_batch("worker 1 fails", move |t, xs: Vec<i32>, out| {
                assert!(!(worker == 1 && t.millis() == 2000), "worker 1 gave up");
                out.extend(xs)
            })
        })
        .collect_batches();
    ssc.run_batches(1).unwrap();
    let e = ssc.run_batches(1).unwrap_err();
    assert!(e.to_string().contains("`worker 1 fails` panicked at batch 2000 ms: worker 1 gave up"), "{e}");
    let _ = ssc.stop(false);
    assert_eq!(out.batches().len(), 1, "no output ran for the failed batch, not even the driver's share");
}

#[test]
fn a_panic_while_training_on_a_worker_other_than_the_driver_fails_the_batch_and_never_hangs() {
    // In a round after the first (partial or update), and in train_per_batch's partial step.
    for (fails_in, name) in [("partial", "rounds"), ("update", "rounds"), ("partial", "per batch")] {
        let ssc = manual_context("local[2]");
        let out = ssc
            .queue_stream(vec![vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0, 7.0, 8.0]], true)
            .operator("trained", move |b| {
                let worker = b.worker();
                let fail = move |t: ember::Time, round: u32, at: &str| {
                    assert!(!(worker == 1 && t.millis() == 2000 && round == 2 && at == fails_in), "worker 1 gave up");
                };
                let b = b.round_robin();
                if name == "rounds" {
                    b.train_per_batch_in_rounds(
                        "rounds",
                        0.0f64,
                        3,
                        move |t, round, xs: &[f64], _s: &f64| {
                            fail(t, round, "partial");
                            xs.iter().sum::<f64>()
                        },
                        move |t, round, parts: Vec<(usize, f64)>, s: &mut f64| {
                            fail(t, round, "update");
                            *s += parts.iter().map(|(_, p)| p).sum::<f64>();
                            true
                        },
                    )
                } else {
                    b.train_per_batch(
                        "per batch",
                        0.0f64,
                        move |t, xs: Vec<f64>, _s: &f64, out| {
                            fail(t, 2, "partial");
                            out.push(xs.iter().sum::<f64>())
                        },
                        |_t, parts: Vec<(usize, f64)>, s: &mut f64| *s += parts.iter().map(|(_, p)| p).sum::<f64>(),
                    )
                }
            })
            .collect_batches();
        ssc.run_batches(1).unwrap();
        let e = ssc.run_batches(1).unwrap_err();
        assert!(
            e.to_string().contains(&format!("`{name}` panicked at batch 2000 ms: worker 1 gave up")),
            "{fails_in}: {e}"
        );
        let _ = ssc.stop(false);
        assert_eq!(out.batches().len(), 1, "{fails_in}: no output ran for the failed batch");
    }
}
