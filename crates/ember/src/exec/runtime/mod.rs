//! The process-local state shared by the context and the timely workers of one process.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::Thread;
use std::time::Duration;

use crate::clock::{lock, Clock};
use crate::conf::Settings;
use crate::error::{Error, Result};
use crate::exec::plan::Graph;
use crate::listener::{Event, ListenerBus};

/// The broadcast variables of a context (a context extension), in declaration order.
#[derive(Default)]
pub(crate) struct Broadcasts(Mutex<Vec<Arc<dyn Slot>>>);

impl Broadcasts {
    /// Adds the variable `make(id)` makes.
    pub fn add<S: Slot + 'static>(&self, make: impl FnOnce(usize) -> Arc<S>) -> Arc<S> {
        let mut slots = lock(&self.0);
        let slot = make(slots.len());
        slots.push(Arc::clone(&slot) as Arc<dyn Slot>);
        slot
    }

    pub fn slots(&self) -> Vec<Arc<dyn Slot>> {
        lock(&self.0).clone()
    }
}

/// A broadcast variable as the job's start sees it, whatever its type (see `crate::broadcast`).
pub(crate) trait Slot: Send + Sync {
    /// This process's value, encoded (the driver sends it).
    fn encode(&self) -> Result<Vec<u8>>;
    /// Takes the driver's encoded value.
    fn adopt(&self, bytes: &[u8]) -> Result<()>;
}

/// A piece of work run by the driver once a batch has completed everywhere (e.g. committing the
/// files that every worker wrote for it).
pub(crate) type Commit = Box<dyn FnOnce() -> Result<()> + Send>;

const NOT_SET: u64 = u64::MAX;

/// Progress as seen by this process.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// The zero time once the workers agreed on it.
    pub zero: Option<u64>,
    /// The last batch time completed everywhere (0: none yet).
    pub completed_through: u64,
    /// All workers of this process left their loops.
    pub finished: bool,
    /// The first error of the job (a failed output, a panicked worker).
    pub error: Option<Error>,
    /// Whether `error` was already handed to the user.
    pub error_taken: bool,
    /// Workers still running in this process.
    pub running_workers: usize,
}

pub(crate) struct Runtime {
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    pub batch_ms: u64,
    pub graph: Arc<Graph>,
    pub bus: ListenerBus,
    stopping: AtomicBool,
    final_time: AtomicU64,
    completed: AtomicU64,
    /// The batch the job starts after: zero when fresh, the checkpoint's time when recovered.
    start: AtomicU64,
    /// The checkpoint directory, when checkpointing.
    pub checkpoints: Option<Arc<crate::checkpoint::Checkpoints>>,
    /// The checkpoint recovered from, if any.
    pub recovered: Option<crate::checkpoint::Commit>,
    /// The job's broadcast variables, whose driver values every process takes at the start.
    pub broadcasts: Vec<Arc<dyn Slot>>,
    /// Their values encoded, in a job of several processes (the driver sends its own).
    pub broadcast_values: Vec<Vec<u8>>,
    /// Whether the final batch of a graceful stop is checkpointed.
    final_checkpoint: AtomicBool,
    /// The job's accumulators.
    pub accumulators: Vec<crate::Accumulator>,
    /// A part of a checkpoint could not be written: no later checkpoint may commit.
    broken_from: AtomicU64,
    progress: Mutex<Progress>,
    changed: Condvar,
    workers: Mutex<Vec<Thread>>,
    /// Records taken in by the receivers of this process (a test aid: wait for input to arrive).
    pub received: AtomicU64,
    /// Input lines skipped because they were longer than the limit.
    pub oversized: AtomicU64,
    /// Input lines that were not valid UTF-8 (decoded with replacement characters).
    pub invalid_utf8: AtomicU64,
    commits: Mutex<BTreeMap<u64, Vec<Commit>>>,
    /// Sinks' figures per batch, summed over every process for listeners.
    pub sink_reports: sinks::SinkReports,
    /// Rate limiters of this process's sources, by input stream id, and whether the static
    /// receiver limit (`receiver.max_rate`) caps them (direct streams apply their own caps).
    limiters: Mutex<BTreeMap<usize, (Arc<crate::rate::RateLimiter>, bool)>>,
    /// Where direct streams' per-batch metadata is published for output operations.
    pub metadata: BTreeMap<usize, crate::operator::BatchMetadata>,
    /// The first batch that failed: an input could not read it, user code panicked on it, or
    /// (with checkpoints) one of its outputs failed (`NOT_SET`: none).
    failed_from: AtomicU64,
    /// Backpressure estimators, by input stream id (on the driver).
    estimators: Mutex<BTreeMap<usize, crate::rate::PidRateEstimator>>,
    /// The estimators' latest rates, capped as applied (on the driver).
    rates: Mutex<BTreeMap<usize, f64>>,
    /// Cancelled when the context stops, to cut receivers' back-off waits short.
    pub sleeper: Arc<crate::clock::Sleeper>,
    /// The control connections to the other processes of a cluster job.
    pub mesh: std::sync::OnceLock<Arc<super::cluster::Mesh>>,
}

mod rates;
pub(crate) mod sinks;

impl Runtime {
    pub fn new(
        settings: Arc<Settings>,
        clock: Arc<dyn Clock>,
        batch_ms: u64,
        graph: Arc<Graph>,
        bus: ListenerBus,
    ) -> Self {
        // Every worker of this process counts from the start: one that ends before the others
        // registered must not mark the process finished.
        Runtime {
            progress: Mutex::new(Progress { running_workers: settings.local_workers(), ..Progress::default() }),
            settings,
            clock,
            batch_ms,
            graph,
            bus,
            stopping: AtomicBool::new(false),
            final_time: AtomicU64::new(NOT_SET),
            completed: AtomicU64::new(0),
            start: AtomicU64::new(0),
            checkpoints: None,
            recovered: None,
            broadcasts: Vec::new(),
            broadcast_values: Vec::new(),
            final_checkpoint: AtomicBool::new(false),
            accumulators: Vec::new(),
            broken_from: AtomicU64::new(NOT_SET),
            changed: Condvar::new(),
            workers: Mutex::new(Vec::new()),
            received: AtomicU64::new(0),
            oversized: AtomicU64::new(0),
            invalid_utf8: AtomicU64::new(0),
            commits: Mutex::new(BTreeMap::new()),
            sink_reports: sinks::SinkReports::default(),
            limiters: Mutex::new(BTreeMap::new()),
            metadata: BTreeMap::new(),
            failed_from: AtomicU64::new(NOT_SET),
            estimators: Mutex::new(BTreeMap::new()),
            rates: Mutex::new(BTreeMap::new()),
            sleeper: Arc::new(crate::clock::Sleeper::default()),
            mesh: std::sync::OnceLock::new(),
        }
    }

    /// Posts `e` to this process's listeners; a receiver event of another process than the
    /// driver's also goes to the driver's.
    /// Adds one process's figures of a sink at batch `t` (process 0's own, or another's that
    /// arrived); once every process's are in, listeners get the sums.
    pub fn report_sink(&self, t: u64, key: &str, name: &str, figures: sinks::Figures) {
        let processes = (self.settings.total_workers() / self.settings.local_workers().max(1)).max(1);
        if let Some(info) = self.sink_reports.add(t, key, name, figures, processes) {
            self.post(Event::SinkCommitted(info));
        }
    }

    pub fn post(&self, e: Event) {
        use super::cluster::ReceiverEvent;
        if let Some(mesh) = self.mesh.get().filter(|m| !m.is_driver()) {
            let forward = match &e {
                Event::ReceiverStarted(i) => Some((ReceiverEvent::Started, i)),
                Event::ReceiverError(i) => Some((ReceiverEvent::Error, i)),
                Event::ReceiverStopped(i) => Some((ReceiverEvent::Stopped, i)),
                _ => None,
            };
            if let Some((kind, info)) = forward {
                mesh.send_receiver_event(kind, info.clone());
            }
        }
        self.bus.post(e)
    }

    pub fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    /// The final batch time when the context is stopping.
    pub fn final_time(&self) -> Option<u64> {
        if !self.stopping.load(Ordering::Acquire) {
            return None;
        }
        match self.final_time.load(Ordering::Acquire) {
            NOT_SET => None,
            t => Some(t),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// A graceful stop of the whole job: the open batch is the last, processed and checkpointed.
    /// In a job of several processes every process must end at the same batch: the driver
    /// picks it and tells the others; another process asks the driver to.
    pub fn stop_gracefully(&self) {
        let open = || {
            let zero = self.zero().unwrap_or(0);
            let grid = crate::time::Grid { zero, slide: self.batch_ms };
            grid.floor(self.now()).unwrap_or(zero) + self.batch_ms
        };
        match self.mesh.get() {
            Some(mesh) if !mesh.is_driver() => {
                if !self.stopping() {
                    mesh.ask_to_stop();
                }
            }
            Some(mesh) => {
                let end = self.final_time().unwrap_or_else(open);
                self.request_stop_with_checkpoint(end);
                mesh.send_stop(end);
            }
            None => self.request_stop_with_checkpoint(open()),
        }
    }

    /// Like `request_stop`, and checkpoints the final batch (a graceful stop).
    pub fn request_stop_with_checkpoint(&self, final_time: u64) {
        self.final_checkpoint.store(true, Ordering::Release);
        self.request_stop(final_time);
    }

    /// Asks every source to close its batches through `final_time` and end.
    pub fn request_stop(&self, final_time: u64) {
        self.final_time.store(final_time, Ordering::Release);
        self.stopping.store(true, Ordering::Release);
        self.sleeper.cancel();
        self.wake_workers();
    }

    pub fn register_worker(&self, t: Thread) {
        self.clock.register_waker(t.clone());
        lock(&self.workers).push(t);
    }

    pub fn wake_workers(&self) {
        for t in lock(&self.workers).iter() {
            t.unpark();
        }
    }

    pub fn worker_finished(&self) {
        let mut p = lock(&self.progress);
        p.running_workers = p.running_workers.saturating_sub(1);
        if p.running_workers == 0 {
            p.finished = true;
        }
        self.changed.notify_all();
    }

    pub fn set_zero(&self, zero: u64) {
        let mut p = lock(&self.progress);
        let zero = *p.zero.get_or_insert(zero);
        let start = self.recovered.as_ref().map_or(zero, |c| c.time);
        self.start.store(start, Ordering::Release);
        self.completed.store(start, Ordering::Release);
        p.completed_through = p.completed_through.max(start);
        self.changed.notify_all();
    }

    /// The batch the job starts after (zero, or the recovered checkpoint's time).
    pub fn start(&self) -> u64 {
        self.start.load(Ordering::Acquire)
    }

    /// Whether state and positions are saved after batch `t`.
    pub fn checkpoint_at(&self, t: u64) -> Option<&crate::checkpoint::Checkpoints> {
        let ck = self.checkpoints.as_deref()?;
        let at_final = self.final_checkpoint.load(Ordering::Acquire) && self.final_time() == Some(t);
        (ck.is_checkpoint_time(t) || at_final).then_some(ck)
    }

    /// Whether checkpoint `t` may commit: nothing at or before it failed to be written, and no
    /// batch at or before it failed.
    pub fn checkpoint_ok(&self, t: u64) -> bool {
        t < self.broken_from.load(Ordering::Acquire)
    }

    /// A write to the checkpoint directory for batch `t` failed: the job stops with the error,
    /// no checkpoint at or after `t` commits, and the last committed one stays as it was.
    pub fn checkpoint_failed(&self, t: u64, e: Error) {
        self.broken_from.fetch_min(t, Ordering::AcqRel);
        self.report_fatal(t, e);
        if !self.stopping() {
            let done = self.completed();
            self.request_stop(done);
        }
    }

    pub fn zero(&self) -> Option<u64> {
        lock(&self.progress).zero
    }

    pub fn set_completed(&self, t: u64) {
        let mut p = lock(&self.progress);
        if t > p.completed_through {
            p.completed_through = t;
            self.completed.store(t, Ordering::Release);
            self.changed.notify_all();
            drop(p);
            // Sources held back by the bound on batches in flight may go on.
            self.wake_workers();
        }
    }

    /// The last batch completed everywhere (0: none yet).
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    /// Records the job's first error; later ones are logged only.
    pub fn report_error(&self, e: Error) {
        self.record_error(e, |_| {});
    }

    /// Records `e` as the job's error if it is the first, running `first(&e)` before anyone
    /// waiting for an error can see it.
    fn record_error(&self, e: Error, first: impl FnOnce(&Error)) {
        let mut p = lock(&self.progress);
        if p.error.is_some() {
            tracing::debug!("{e}");
            return;
        }
        tracing::error!("{e}");
        first(&e);
        p.error = Some(e);
        self.changed.notify_all();
    }

    /// Records an error that stops the job at batch `t`. The first one is sent to the job's
    /// other processes (unless it is a peer's own failure) before this process's waiters see it
    /// — a program that exits on the error must not exit before its peers know why.
    fn report_fatal(&self, t: u64, e: Error) {
        let from_peer = matches!(e, Error::Cluster(_));
        self.record_error(e, |e| {
            if let (Some(mesh), false) = (self.mesh.get(), from_peer) {
                mesh.announce_failure(t, e);
            }
        });
    }

    /// Waits until `pred(progress)` holds, an unseen error is reported or `timeout` passes
    /// (real time; `None` waits for ever). Returns whether `pred` holds.
    pub fn wait(&self, timeout: Option<Duration>, pred: impl Fn(&Progress) -> bool) -> Result<bool> {
        let mut p = lock(&self.progress);
        let done = |p: &Progress| pred(p) || (p.error.is_some() && !p.error_taken) || p.finished;
        match timeout {
            None => {
                while !done(&p) {
                    p = self.changed.wait(p).unwrap_or_else(|e| e.into_inner());
                }
            }
            Some(t) => {
                p = self.changed.wait_timeout_while(p, t, |p| !done(p)).unwrap_or_else(|e| e.into_inner()).0;
            }
        }
        if p.error.is_some() && !p.error_taken {
            p.error_taken = true;
            return Err(p.error.clone().unwrap_or_else(|| Error::Internal("error vanished".into())));
        }
        Ok(pred(&p))
    }

    /// Counts records taken in by a receiver and wakes whoever waits for input.
    pub fn add_received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
        let _p = lock(&self.progress);
        self.changed.notify_all();
    }

    /// Waits until the receivers took in `n` records (or `timeout` passes).
    pub fn wait_received(&self, n: u64, timeout: Duration) -> Result<bool> {
        self.wait(Some(timeout), |_| self.received.load(Ordering::Relaxed) >= n)
    }

    /// Waits until every worker of this process left its loop, at most `timeout` when given.
    pub fn wait_finished(&self, timeout: Option<Duration>) -> bool {
        let p = lock(&self.progress);
        let p = match timeout {
            None => self.changed.wait_while(p, |p| !p.finished).unwrap_or_else(|e| e.into_inner()),
            Some(t) => self.changed.wait_timeout_while(p, t, |p| !p.finished).unwrap_or_else(|e| e.into_inner()).0,
        };
        p.finished
    }

    /// Whether the job reported an error.
    pub fn failed(&self) -> bool {
        lock(&self.progress).error.is_some()
    }

    /// Batch `t` failed (an input could not read it, user code panicked on it, an output failed
    /// with checkpoints on): no output runs for it or a later batch, no checkpoint at or after it
    /// commits, and the job stops with `e`, so that a recovery re-runs `t`.
    pub fn fail_batch(&self, t: u64, e: Error) {
        self.failed_from.fetch_min(t, Ordering::AcqRel);
        self.broken_from.fetch_min(t, Ordering::AcqRel);
        self.report_fatal(t, e);
        if !self.stopping() {
            self.request_stop(self.completed());
        }
    }

    /// Whether batch `t` or an earlier one failed.
    pub fn failed_at(&self, t: u64) -> bool {
        self.failed_from.load(Ordering::Acquire) <= t
    }

    /// Runs user code of operation `op` on batch `t`; a panic fails batch `t` (see
    /// [`fail_batch`](Self::fail_batch)). Operators call it through their [`Guard`](super::Guard).
    pub fn user_code<R>(&self, op: &str, t: u64, f: impl FnOnce() -> R) -> Option<R> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(r) => Some(r),
            Err(panic) => {
                // An operator raises its own error (a misused `State`) as a panic with an `Error`.
                let e = match panic.downcast::<Error>() {
                    Ok(e) => *e,
                    Err(panic) => Error::UserCode {
                        operation: op.to_owned(),
                        time: crate::time::Time::from_millis(t),
                        message: panic_text(&panic),
                    },
                };
                self.fail_batch(t, e);
                None
            }
        }
    }

    /// Hands batch `t`'s source metadata to the direct streams' handles (on the driver, before
    /// the batch's outputs run), forgetting batches long done.
    pub fn publish_metadata(&self, t: u64, inputs: &[crate::listener::StreamInputInfo]) {
        for (id, handle) in &self.metadata {
            let meta = inputs.iter().find(|i| i.input_stream_id == *id).map(|i| i.metadata.clone()).unwrap_or_default();
            handle.publish(t, meta, t.saturating_sub(100 * self.batch_ms));
        }
    }
    pub fn add_commit(&self, t: u64, c: Commit) {
        lock(&self.commits).entry(t).or_default().push(c);
    }

    /// Runs the commits of every batch up to `t`; a failed batch's commits are dropped (its
    /// outputs are incomplete).
    pub fn run_commits(&self, t: u64) {
        let due: Vec<(u64, Vec<Commit>)> = {
            let mut commits = lock(&self.commits);
            let later = commits.split_off(&(t + 1));
            std::mem::replace(&mut *commits, later).into_iter().collect()
        };
        for (bt, cs) in due {
            for c in cs {
                if self.failed_at(bt) {
                    break;
                }
                if let Err(e) = c() {
                    self.output_failed(bt, e);
                }
            }
        }
    }

    /// An output operation of batch `t` failed. With checkpoints, the batch fails (the job stops
    /// and no checkpoint at or after `t` commits, so a recovery runs `t` again); without, the
    /// error is reported and the job goes on, as Spark's does.
    pub fn output_failed(&self, t: u64, e: Error) {
        if self.checkpoints.is_some() {
            self.fail_batch(t, e);
        } else {
            self.report_error(e);
        }
    }
}

/// The message of a caught panic.
pub(crate) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A runtime of an empty plan on the manual clock, for tests of the parts that use one.
    pub(crate) fn runtime(conf: crate::Conf) -> Runtime {
        let settings = Arc::new(conf.settings().unwrap());
        let clock: Arc<dyn Clock> = Arc::new(crate::ManualClock::new(0));
        let bus = ListenerBus::start(Arc::new(Mutex::new(Vec::new())));
        Runtime::new(settings, clock, 1000, Arc::new(Graph::default()), bus)
    }
}
