//! The contracts between the kit and connector crates: sources whose batches are planned and
//! logged ([`PlannedSource`]), sinks written per worker and committed on the driver ([`Sink`]),
//! and what they report (batch metadata, skipped records). Re-exported by [`crate::operator`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock::lock;
use crate::time::Time;
use crate::Data;

/// Where a stream's batches go ([`DStream::sink`](crate::DStream::sink)): every worker writes
/// its share of a batch, then the driver commits the batch once, after it completed everywhere.
///
/// The commit is where a sink makes a batch visible at once (moves staged files into place,
/// commits a transaction, writes a marker); with a checkpoint directory, a batch re-runs after a
/// failure until it committed, so a commit must accept a batch written again. A failed write or
/// commit fails the batch as a failed output does. One value serves every worker of a process
/// (hold per-worker connections inside, by `worker`); each process has its own.
pub trait Sink<T>: Send + Sync + 'static {
    /// Writes worker `worker`'s share of batch `t` (called for empty shares too).
    fn write(&self, t: Time, worker: usize, records: Vec<T>) -> crate::Result<()>;

    /// Makes batch `t` visible, on the driver, once every one of the job's `workers` wrote its
    /// share and every output of the batch ran.
    fn commit(&self, _t: Time, _workers: usize) -> crate::Result<()> {
        Ok(())
    }

    /// This process's figures for batch `t` (records written, retries, ...): asked on the driver
    /// right after the commit, and in every other process once the batch completed there;
    /// listeners get their sums over every process
    /// ([`StreamingListener::on_sink_committed`](crate::StreamingListener::on_sink_committed)).
    /// None by default. [`SinkCounters::batch`] gives them for sinks that count with it.
    fn metrics(&self, _t: Time) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}

/// One worker's share of a planned source (see [`StreamingContext::planned_source`]): when
/// batch `t` closes, the driver of each worker's share asks [`plan`](Self::plan) what the batch
/// reads, writes the plan to the checkpoint directory's batch log, and only then asks
/// [`read`](Self::read) to read exactly that. A batch re-run after a failure reads its logged
/// plan again, so it holds the same records.
///
/// [`StreamingContext::planned_source`]: crate::StreamingContext::planned_source
pub trait PlannedSource: 'static {
    /// The records of the stream.
    type Item: Data;
    /// What defines one batch on this worker (written to the batch log).
    type Plan: Serialize + DeserializeOwned + 'static;

    /// Decides what batch `batch` reads. `rate` is the stream's backpressure rate in records per
    /// second for the whole stream, when backpressure is on and a rate is known.
    fn plan(&mut self, batch: Time, rate: Option<f64>) -> crate::Result<Self::Plan>;

    /// Reads exactly what `plan` says into `out`. The plan may be one logged by an earlier run
    /// of the job (after a recovery), so it need not continue from the reader's last read.
    fn read(&mut self, batch: Time, plan: &Self::Plan, out: &mut Vec<Self::Item>) -> crate::Result<()>;

    /// Whether the last [`read`](Self::read) or [`read_more`](Self::read_more) left part of the
    /// batch unread. A source whose batches may not fit in memory (the file stream reads whole
    /// files) reads a few megabytes per call and says so here; the kit then lets what it read move
    /// on through the dataflow before it calls `read_more`.
    fn has_more(&self) -> bool {
        false
    }

    /// Reads the next part of the batch being read (see [`has_more`](Self::has_more)).
    fn read_more(&mut self, _batch: Time, _out: &mut Vec<Self::Item>) -> crate::Result<()> {
        Ok(())
    }

    /// Facts of the batch for the listener and output operations (key, value). Values of the
    /// same key from several workers are joined with newlines.
    fn metadata(&self, _plan: &Self::Plan) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The reader's position, saved with every checkpoint (e.g. the next offset per partition).
    fn position(&self) -> Option<Vec<u8>> {
        None
    }

    /// Restores a position saved by [`position`](Self::position) when the job recovers.
    fn restore(&mut self, _position: &[u8]) -> crate::Result<()> {
        Ok(())
    }

    /// Restores this worker's position when the job recovers with another number of workers
    /// than its checkpoint's (a rescale): `positions` holds what every old worker saved, and this
    /// worker keeps what is now its own (the Kafka stream: the offsets of the partitions it now
    /// reads). By default a source with a position per worker cannot move: an error.
    fn restore_rescaled(&mut self, _positions: Vec<Vec<u8>>) -> crate::Result<()> {
        Err(crate::Error::Other("its positions cannot move to another number of workers".into()))
    }

    /// The context stops: release connections.
    fn stop(&mut self) {}
}

/// Where a direct reader runs.
#[derive(Debug, Clone)]
pub struct PlanEnv {
    /// This worker's index (0-based) and the number of workers in the job.
    pub worker: usize,
    /// Workers in the job.
    pub workers: usize,
    /// The input stream's id.
    pub stream_id: usize,
    /// The batch interval in milliseconds.
    pub batch_ms: u64,
    /// Whether the job is recovering from a checkpoint (the reader's position will be restored).
    pub recovering: bool,
}

/// The per-batch metadata of a direct stream, as output operations see it: each batch's entry is
/// published on the driver before the batch's outputs run, and kept for 100 batches.
#[derive(Debug, Clone, Default)]
pub struct BatchMetadata {
    batches: Arc<Mutex<BTreeMap<u64, BTreeMap<String, String>>>>,
}

impl BatchMetadata {
    /// The metadata of batch `t` (empty when the batch reported none or is unknown).
    pub fn get(&self, t: Time) -> BTreeMap<String, String> {
        lock(&self.batches).get(&t.millis()).cloned().unwrap_or_default()
    }

    pub(crate) fn publish(&self, t: u64, meta: BTreeMap<String, String>, forget_before: u64) {
        let mut batches = lock(&self.batches);
        batches.insert(t, meta);
        let keep = batches.split_off(&forget_before);
        *batches = keep;
    }
}

/// The counters of records that decoding helpers skipped, one per input stream, by the input's
/// name in the plan (`kafka direct stream [0]`): a context extension
/// ([`StreamingContext::extension`](crate::StreamingContext::extension)) that connector crates register their counters with, and that
/// the web UI reports. Counts are this process's.
#[derive(Debug, Default)]
pub struct SkipCounters(std::sync::Mutex<std::collections::BTreeMap<String, Arc<AtomicU64>>>);

impl SkipCounters {
    /// Registers `counter` as the count of input `name`.
    pub(crate) fn register(&self, name: String, counter: Arc<AtomicU64>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(name, counter);
    }

    /// Each input's count so far.
    pub fn values(&self) -> Vec<(String, u64)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed))).collect()
    }
}

/// What a sink to an external system did in this process: records and shares written, shares
/// skipped as written before (re-run batches), retries and time spent. A sink holds one in an
/// `Arc` and hands a clone to its user; [`get`](Self::get) reads it at any time.
#[derive(Debug, Default)]
pub struct SinkCounters {
    records: AtomicU64,
    shares: AtomicU64,
    skipped: AtomicU64,
    retries: AtomicU64,
    write_micros: AtomicU64,
    /// The same, per batch not yet reported (microseconds in `write_ms` until then).
    batches: Mutex<BTreeMap<u64, SinkCounts>>,
}

/// A reading of [`SinkCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkCounts {
    /// Records written (committed).
    pub records: u64,
    /// Workers' shares of batches written.
    pub shares: u64,
    /// Shares skipped because they were written before (a re-run batch).
    pub skipped: u64,
    /// Attempts retried after an error that may pass.
    pub retries: u64,
    /// Time spent writing, in milliseconds.
    pub write_ms: u64,
}

impl SinkCounts {
    /// The counts by name, as listeners get them.
    pub fn metrics(&self) -> BTreeMap<String, u64> {
        [
            ("records", self.records),
            ("shares", self.shares),
            ("skipped", self.skipped),
            ("retries", self.retries),
            ("write_ms", self.write_ms),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

impl SinkCounters {
    fn in_batch(&self, t: Time, f: impl FnOnce(&mut SinkCounts)) {
        f(lock(&self.batches).entry(t.millis()).or_default());
    }

    /// A share of batch `t` of `records` records was written.
    pub fn wrote(&self, t: Time, records: usize) {
        self.records.fetch_add(records as u64, Ordering::Relaxed);
        self.shares.fetch_add(1, Ordering::Relaxed);
        self.in_batch(t, |c| {
            c.records += records as u64;
            c.shares += 1;
        });
    }

    /// A share of batch `t` was skipped as written before.
    pub fn skipped(&self, t: Time) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        self.in_batch(t, |c| c.skipped += 1);
    }

    /// This process's counts of batch `t`, forgetting them and those of earlier batches (for
    /// [`Sink::metrics`]).
    pub fn batch(&self, t: Time) -> SinkCounts {
        let mut batches = lock(&self.batches);
        let later = batches.split_off(&(t.millis() + 1));
        let mut c = std::mem::replace(&mut *batches, later).remove(&t.millis()).unwrap_or_default();
        c.write_ms /= 1000;
        c
    }

    /// The counts now.
    pub fn get(&self) -> SinkCounts {
        SinkCounts {
            records: self.records.load(Ordering::Relaxed),
            shares: self.shares.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            write_ms: self.write_micros.load(Ordering::Relaxed) / 1000,
        }
    }

    /// Runs `attempt` (a write of batch `t`) until it succeeds, fails with an error `retryable`
    /// refuses, or `timeout` has passed: between attempts it logs the error (naming `what`), counts a retry, and waits
    /// 100 ms, doubling up to 2 s. The time spent is counted too. Sinks of external systems use
    /// it around one transactional write, which makes the retry safe.
    pub fn with_retries<T, E: std::fmt::Display>(
        &self,
        t: Time,
        what: &str,
        timeout: std::time::Duration,
        retryable: impl Fn(&E) -> bool,
        mut attempt: impl FnMut() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let watch = crate::clock::Stopwatch::start();
        let mut backoff = std::time::Duration::from_millis(100);
        let r = loop {
            match attempt() {
                Err(e) if retryable(&e) && watch.elapsed() + backoff < timeout => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    self.in_batch(t, |c| c.retries += 1);
                    tracing::warn!("{what}: {e}; retrying in {backoff:?}");
                    crate::clock::real_sleep(backoff);
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
                }
                r => break r,
            }
        };
        let micros = watch.elapsed().as_micros() as u64;
        self.write_micros.fetch_add(micros, Ordering::Relaxed);
        self.in_batch(t, |c| c.write_ms += micros);
        r
    }
}

/// Counts one bad record that a decoding helper skipped, in `counter`; returns the count so far
/// when this skip should be logged — the first 10, then every 1000th — so that a flood of bad
/// input is seen without flooding the log.
pub fn count_skipped(counter: &AtomicU64) -> Option<u64> {
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    (n <= 10 || n.is_multiple_of(1000)).then_some(n)
}
