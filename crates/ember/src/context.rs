//! The `StreamingContext`: creation, graph building, lifecycle (spec §1) and the testing surface.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{lock, Clock, ManualClock, SystemClock};
use crate::conf::{Conf, Master};
use crate::dstream::DStream;
use crate::error::{Error, Result};
use crate::exec::plan::Graph;
use crate::exec::runtime::Runtime;
use crate::listener::{Event, ListenerBus, StreamingListener, BUS_THREAD};
pub use crate::shared::ContextState;
use crate::shared::{state_error, Inner, Shared, NEXT_ID};
use crate::time::{whole_millis, Grid, Time};

/// The active contexts of the process, each with whether it asked to be the only one
/// (`context.single_active`, Spark's rule).
static ACTIVE: Mutex<Vec<(usize, bool)>> = Mutex::new(Vec::new());
/// The entry point of a streaming program (Spark's `StreamingContext`).
///
/// Declare input streams, transformations and output operations, then `start()`. Nothing runs
/// before `start()`. One context can be active per process at a time.
pub struct StreamingContext {
    pub(crate) shared: Arc<Shared>,
}

impl StreamingContext {
    /// A context with `conf` cutting batches every `batch_interval` (a positive whole number of
    /// milliseconds).
    pub fn new(conf: Conf, batch_interval: Duration) -> Result<Self> {
        let batch_ms = whole_millis("the batch interval", batch_interval).map_err(Error::IllegalState)?;
        let settings = Arc::new(conf.settings()?);
        let (clock, manual): (Arc<dyn Clock>, _) = if settings.manual_clock {
            let m = Arc::new(ManualClock::new(settings.manual_start));
            (m.clone(), Some(m))
        } else {
            (Arc::new(SystemClock), None)
        };
        if settings.master == Master::Local(1) {
            tracing::warn!(
                "master is local[1]: a receiver would hold the only worker; use local[n] with n > 1 when reading sockets"
            );
        }
        Ok(StreamingContext {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                settings,
                batch_ms,
                clock,
                manual,
                listeners: Arc::new(Mutex::new(Vec::new())),
                accumulators: Mutex::new(Vec::new()),
                extensions: Mutex::new(Vec::new()),
                inner: Mutex::new(Inner {
                    state: ContextState::Initialized,
                    graph: Graph::default(),
                    deferred: None,
                    runtime: None,
                    stateful: Vec::new(),
                    operator_slides: Vec::new(),
                    checkpoint_dir: None,
                    checkpoint_intervals: Vec::new(),
                    recovered: None,
                    job: None,
                    metadata: BTreeMap::new(),
                    started_plan: None,
                }),
            }),
        })
    }

    /// The batch interval.
    pub fn batch_interval(&self) -> Duration {
        Duration::from_millis(self.shared.batch_ms)
    }

    /// The current state.
    pub fn state(&self) -> ContextState {
        lock(&self.shared.inner).state
    }

    /// The application name.
    pub fn app_name(&self) -> &str {
        &self.shared.settings.app_name
    }

    /// The configuration, as validated (with the `EMBER_CLUSTER_*` environment applied).
    pub fn conf(&self) -> &Conf {
        &self.shared.settings.conf
    }

    /// Whether this process plays the driver (process 0): the one that delivers listener events
    /// and runs driver-side outputs.
    pub fn is_driver(&self) -> bool {
        match &self.shared.settings.master {
            crate::conf::Master::Local(_) => true,
            crate::conf::Master::Cluster { process, .. } => *process == 0,
        }
    }

    /// The declared plan: input streams, nodes and output operations, without the closures.
    pub fn plan(&self) -> crate::plan::Plan {
        self.shared.plan()
    }

    /// This context's value of type `T`, created with `T::default()` on first use: how a crate
    /// built on Ember keeps per-context state (the web UI's dashboards, a SQL session) that
    /// streams and the context both reach (see [`DStream::extension`]).
    pub fn extension<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        self.shared.extension()
    }

    /// Counts the records each operation produces in each batch, over every worker and process,
    /// into [`BatchInfo::operation_records`](crate::BatchInfo::operation_records) (the web UI
    /// calls this). It costs one small pass-through operator per operation, so it is off unless
    /// asked for; call it before `start`, in every process of a job (the counters are part of
    /// the dataflow, which every process builds alike).
    pub fn track_operation_records(&self) {
        lock(&self.shared.inner).graph.track_operations = true;
    }

    /// The manual clock, when the context runs on one (`Conf::manual_clock(true)`).
    pub fn manual_clock(&self) -> Option<Arc<ManualClock>> {
        self.shared.manual.clone()
    }

    /// The zero time once started: batch `k` has time `zero + k * interval` (spec §0.2).
    pub fn zero_time(&self) -> Option<Time> {
        self.runtime().and_then(|rt| rt.zero()).map(Time::from_millis)
    }

    /// A named counter whose value is part of every checkpoint (see [`crate::Accumulator`]).
    /// A recovered context starts it at the checkpoint's value.
    pub fn accumulator(&self, name: impl Into<String>) -> crate::Accumulator {
        let name = name.into();
        let mut accs = lock(&self.shared.accumulators);
        if let Some(a) = accs.iter().find(|a| a.name == name) {
            return a.clone();
        }
        let a = crate::Accumulator::new(name);
        accs.push(a.clone());
        a
    }

    /// Adds a listener; events reach it on the listener-bus thread of process 0.
    pub fn add_streaming_listener(&self, listener: impl StreamingListener) {
        lock(&self.shared.listeners).push(Box::new(listener));
    }

    /// The union of `streams` (same context and slide required).
    pub fn union<T: crate::Data>(&self, streams: &[DStream<T>]) -> DStream<T> {
        match streams.split_first() {
            None => {
                self.shared.defer(Error::declaration("union", "the list of streams to union is empty"));
                DStream::detached(Arc::clone(&self.shared))
            }
            Some((first, rest)) => first.union_all(rest),
        }
    }

    pub(crate) fn runtime_handle(&self) -> Option<Arc<Runtime>> {
        self.runtime()
    }

    fn runtime(&self) -> Option<Arc<Runtime>> {
        self.shared.runtime()
    }

    /// Starts the job. Starting an active context only warns; starting a stopped one is an error.
    pub fn start(&self) -> Result<()> {
        let mut inner = lock(&self.shared.inner);
        match inner.state {
            ContextState::Active => {
                tracing::warn!("StreamingContext has already been started");
                return Ok(());
            }
            ContextState::Stopped => {
                return Err(Error::IllegalState("StreamingContext has already been stopped".into()))
            }
            ContextState::Initialized => {}
        }
        let problem = inner.deferred.take().or_else(|| {
            inner
                .graph
                .outputs
                .is_empty()
                .then(|| Error::IllegalState("No output operations registered, so nothing to execute".into()))
        });
        if let Some(e) = problem {
            inner.state = ContextState::Stopped;
            return Err(e);
        }
        {
            let mut active = lock(&ACTIVE);
            let single = self.shared.settings.single_active;
            if !active.is_empty() && (single || active.iter().any(|(_, s)| *s)) {
                inner.state = ContextState::Stopped;
                return Err(Error::IllegalState(
                    "Only one StreamingContext may be started in this process (context.single_active); stop the running one first"
                        .into(),
                ));
            }
            active.push((self.shared.id, single));
        }
        match self.launch(&mut inner) {
            Ok(()) => {
                inner.state = ContextState::Active;
                Ok(())
            }
            Err(e) => {
                inner.state = ContextState::Stopped;
                release_active(self.shared.id);
                Err(e)
            }
        }
    }

    fn launch(&self, inner: &mut Inner) -> Result<()> {
        let s = &self.shared;
        // The plan view outlives the graph, which the job takes.
        inner.started_plan = Some(inner.graph.view());
        let graph = Arc::new(std::mem::take(&mut inner.graph));
        if !inner.stateful.is_empty() && inner.checkpoint_dir.is_none() {
            let ops: Vec<&str> = inner.stateful.iter().map(|(op, _)| op.as_str()).collect();
            tracing::warn!(
                "{} keep(s) state in memory only: without a checkpoint directory (StreamingContext::checkpoint) it is lost when the job stops",
                ops.join(", ")
            );
        }
        for line in graph.describe() {
            tracing::debug!("plan {line}");
        }
        let bus = ListenerBus::start(Arc::clone(&s.listeners));
        let mut rt = Runtime::new(Arc::clone(&s.settings), Arc::clone(&s.clock), s.batch_ms, graph, bus);
        let now = s.clock.now_millis();
        let zero = inner.recovered.as_ref().map_or(now / s.batch_ms * s.batch_ms, |c| c.zero);
        if let Some(c) = &inner.recovered {
            let workers = s.settings.total_workers();
            if c.workers != workers {
                // A rescale: every state moves to the new workers. The batches after the
                // checkpoint were planned per old worker, so a rescale starts from a checkpoint
                // that nothing ran after (a graceful stop's).
                let dir = inner.checkpoint_dir.as_deref().unwrap_or(".");
                let after = crate::checkpoint::logged_after(dir, &s.settings.conf, c.time)?;
                if let Some(first) = after.first() {
                    return Err(Error::Recovery(format!(
                        "checkpoint {} was taken with {} workers and this job has {workers}, but batches after it ({} from {first} on) were planned for {} workers: recover with {} workers, stop gracefully (`stop(true)`, which checkpoints the last batch), then restart with {workers}",
                        c.time, c.workers, after.len(), c.workers, c.workers
                    )));
                }
                tracing::info!("rescaling from {} workers (checkpoint {}) to {workers}", c.workers, c.time);
            }
            if let Some(m) = &s.manual {
                m.set(c.time);
            }
            tracing::info!("recovering from checkpoint {} (zero time {})", c.time, c.zero);
        }
        if let Some(dir) = &inner.checkpoint_dir {
            let slides: Vec<u64> =
                inner.stateful.iter().map(|(_, slide)| *slide).chain(inner.operator_slides.iter().copied()).collect();
            let interval = checkpoint_interval(s.batch_ms, &slides, &inner.checkpoint_intervals);
            tracing::info!("checkpointing to {dir} every {interval} ms");
            rt.checkpoints = Some(Arc::new(crate::checkpoint::Checkpoints::open(
                dir,
                &s.settings.conf,
                interval,
                zero,
                s.settings.checkpoint_sync,
                s.settings.wal_sync,
            )?));
        }
        if s.settings.backpressure {
            s.settings.estimator(s.batch_ms)?;
        }
        if s.settings.wal && inner.checkpoint_dir.is_none() {
            return Err(Error::Config {
                key: "receiver.write_ahead_log.enable".into(),
                value: "true".into(),
                expected: "a checkpoint directory as well (StreamingContext::checkpoint), where the log is written"
                    .into(),
            });
        }
        rt.recovered = inner.recovered.clone();
        rt.broadcasts = s.extension::<crate::exec::runtime::Broadcasts>().slots();
        if s.settings.total_workers() > s.settings.local_workers() {
            // Sent to the other processes at the start: a value that does not encode fails here.
            rt.broadcast_values = rt.broadcasts.iter().map(|b| b.encode()).collect::<Result<_>>()?;
        }
        rt.metadata = inner.metadata.clone();
        rt.accumulators = lock(&s.accumulators).clone();
        // The checkpoint holds the sum over every process: the driver starts from it, the other
        // processes from zero.
        if let Some(c) = inner.recovered.as_ref().filter(|_| self.is_driver()) {
            for a in &rt.accumulators {
                a.value.store(c.accumulators.get(&a.name).copied().unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
            }
        }
        let rt = Arc::new(rt);
        rt.set_zero(zero);
        rt.post(Event::StreamingStarted(now));
        let job = crate::exec::job::launch(&s.settings.master, &rt)?;
        tracing::info!("StreamingContext started ({}, batch interval {} ms)", s.settings.app_name, s.batch_ms);
        inner.runtime = Some(rt);
        inner.job = Some(job);
        Ok(())
    }

    /// Blocks until the context stops; returns the job's first error if one happened.
    pub fn await_termination(&self) -> Result<()> {
        self.take_deferred()?;
        let Some(rt) = self.runtime() else {
            return Err(Error::IllegalState("the StreamingContext has not been started".into()));
        };
        rt.wait(None, |p| p.finished).map(|_| ())
    }

    /// Blocks until the context stops (`true`) or `timeout` passes (`false`); returns the job's
    /// first error if one happened.
    pub fn await_termination_or_timeout(&self, timeout: Duration) -> Result<bool> {
        self.take_deferred()?;
        let Some(rt) = self.runtime() else {
            return Err(Error::IllegalState("the StreamingContext has not been started".into()));
        };
        rt.wait(Some(timeout), |p| p.finished)
    }

    fn take_deferred(&self) -> Result<()> {
        match lock(&self.shared.inner).deferred.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stops the job. `graceful = false` finishes the batches whose time has passed and drops
    /// what arrived for the open batch; `graceful = true` also closes the open batch early and
    /// processes it, so nothing received is lost. Stopping twice, or before start, only warns.
    pub fn stop(&self, graceful: bool) -> Result<()> {
        if std::thread::current().name() == Some(BUS_THREAD) {
            return Err(Error::IllegalState("Cannot stop StreamingContext within listener bus thread.".into()));
        }
        let (rt, job) = {
            let mut inner = lock(&self.shared.inner);
            match inner.state {
                ContextState::Initialized => {
                    tracing::warn!("StreamingContext has not been started yet");
                    inner.state = ContextState::Stopped;
                    return Ok(());
                }
                ContextState::Stopped => {
                    tracing::warn!("StreamingContext has already been stopped");
                    return Ok(());
                }
                ContextState::Active => {}
            }
            inner.state = ContextState::Stopped;
            (inner.runtime.clone(), inner.job.take())
        };
        let result = match rt {
            Some(rt) => {
                let zero = rt.zero().unwrap_or(0);
                let grid = Grid { zero, slide: self.shared.batch_ms };
                let now = rt.now();
                let closed = grid.floor(now).unwrap_or(zero);
                if graceful {
                    rt.stop_gracefully();
                } else {
                    rt.request_stop(closed);
                }
                // After a failure (a worker that died, a checkpoint that could not be written) the
                // other workers may wait for ever for the dead one's progress: give them a while,
                // then leave them.
                let limit = rt.failed().then(|| Duration::from_millis(rt.settings.failure_timeout_ms));
                let finished = rt.wait_finished(limit);
                let mut result = Ok(());
                if !finished {
                    tracing::error!("workers did not finish after the job failed; leaving them");
                    if let Some(job) = job {
                        job.abandon();
                    }
                } else if let Some(job) = job {
                    result = job.join();
                }
                rt.bus.shutdown();
                result
            }
            None => Ok(()),
        };
        release_active(self.shared.id);
        tracing::info!("StreamingContext stopped successfully");
        result
    }

    /// Sets the checkpoint directory: state, source positions and the batch log are saved there,
    /// and [`get_or_create`](Self::get_or_create) recovers from it. Call before `start`. A local
    /// path, or the URL of an object store (`s3://bucket/dir`; see [`crate::storage`]).
    pub fn checkpoint(&self, dir: impl AsRef<std::path::Path>) {
        let mut inner = lock(&self.shared.inner);
        if let Some(e) = state_error(inner.state, "checkpoint") {
            inner.deferred.get_or_insert(e);
            return;
        }
        inner.checkpoint_dir = Some(dir.as_ref().to_string_lossy().into_owned());
    }

    /// Recovers the context from the newest intact checkpoint in `dir`, or builds a fresh one.
    ///
    /// `build` always runs — closures cannot be saved, so the program's own code rebuilds the
    /// graph — and must declare the same streams and outputs (same kinds, names and order) as
    /// the program that wrote the checkpoint; a changed graph is an error naming the first
    /// difference. Closures may change. With a checkpoint, the job keeps its batch grid, restores
    /// every operator's state and every source's position, and re-runs the batches after the
    /// checkpoint with the same inputs; outputs run again for them (`save_as_text_files`
    /// overwrites). A directory whose commit records are all unreadable is an error, never a
    /// silent fresh start.
    pub fn get_or_create(
        dir: impl AsRef<std::path::Path>,
        build: impl FnOnce() -> Result<StreamingContext>,
    ) -> Result<StreamingContext> {
        let dir = dir.as_ref().to_string_lossy().into_owned();
        let ssc = build()?;
        {
            let mut inner = lock(&ssc.shared.inner);
            if inner.checkpoint_dir.is_none() {
                inner.checkpoint_dir = Some(dir.clone());
            }
        }
        if let Some(commit) = crate::checkpoint::latest_commit(&dir, &ssc.shared.settings.conf)? {
            ssc.recover_from(commit)?;
        }
        Ok(ssc)
    }

    fn recover_from(&self, commit: crate::checkpoint::Commit) -> Result<()> {
        let mut inner = lock(&self.shared.inner);
        if commit.batch_ms != self.shared.batch_ms {
            return Err(Error::Recovery(format!(
                "the batch interval changed: the checkpoint has {} ms, the program {} ms",
                commit.batch_ms, self.shared.batch_ms
            )));
        }
        let show = |l: Option<&String>| l.map_or("(nothing)".to_owned(), |l| format!("`{l}`"));
        let (now_id, now_plan): (Vec<String>, Vec<String>) = inner
            .graph
            .fingerprint(&self.shared.settings.app_name)
            .into_iter()
            .partition(|l| crate::exec::plan::is_identity(l));
        let (was_id, was_plan): (Vec<String>, Vec<String>) =
            commit.fingerprint.iter().cloned().partition(|l| crate::exec::plan::is_identity(l));
        crate::exec::plan::check_format(&was_plan)?;
        if let Some(i) = first_difference(&was_plan, &now_plan) {
            return Err(Error::Recovery(format!(
                "the program's streams differ from the checkpoint's at entry {i}: the checkpoint has {}, the program has {}",
                show(was_plan.get(i)),
                show(now_plan.get(i))
            )));
        }
        // A checkpoint of another job (another app name, other input paths, topics or hosts)
        // with the same plan: an error, unless the user says the change is meant. Checkpoints
        // written before inputs were fingerprinted have no identity lines and are not checked.
        if let Some(i) = first_difference(&was_id, &now_id).filter(|_| !was_id.is_empty()) {
            let what = format!(
                "the checkpoint belongs to another job: it has {}, the program has {}",
                show(was_id.get(i)),
                show(now_id.get(i))
            );
            if !self.shared.settings.allow_changed_inputs {
                return Err(Error::Recovery(format!(
                    "{what}; set `checkpoint.allow_changed_inputs` to `true` to recover from it anyway"
                )));
            }
            tracing::warn!("{what}; recovering anyway (checkpoint.allow_changed_inputs)");
        }
        if inner.graph.inputs.iter().any(|n| n == "queue stream") {
            return Err(Error::Recovery(
                "queue_stream does not support checkpointing; do not use it with a checkpoint directory".into(),
            ));
        }
        inner.recovered = Some(commit);
        Ok(())
    }

    /// Testing: starts the context if needed, advances the manual clock by `n` batch intervals and
    /// returns when those batches have completed (an error if the job failed meanwhile).
    pub fn run_batches(&self, n: u64) -> Result<()> {
        let Some(manual) = self.shared.manual.clone() else {
            return Err(Error::IllegalState("run_batches needs the manual clock: set Conf::manual_clock(true)".into()));
        };
        self.take_deferred()?;
        match self.state() {
            ContextState::Initialized => self.start()?,
            ContextState::Stopped => {
                return Err(Error::IllegalState("StreamingContext has already been stopped".into()))
            }
            ContextState::Active => {}
        }
        let rt = self.runtime().ok_or_else(|| Error::IllegalState("the StreamingContext is not running".into()))?;
        if rt.stopping() {
            // Stopping because the job failed: the failure, once, rather than the stop.
            rt.wait(Some(Duration::ZERO), |_| false)?;
            return Err(Error::IllegalState("StreamingContext has already been stopped".into()));
        }
        manual.advance(n * self.shared.batch_ms);
        let zero = rt.zero().unwrap_or(0);
        let Some(target) = (Grid { zero, slide: self.shared.batch_ms }).floor(manual.now_millis()) else {
            return Ok(());
        };
        let done = rt.wait(None, |p| p.completed_through >= target)?;
        if !done {
            return Err(Error::IllegalState("the job ended before the batches completed".into()));
        }
        Ok(())
    }

    /// Testing: waits until the receivers of this process have taken in at least `n` records in
    /// all, or `timeout` (real time) passes. Returns whether they had.
    pub fn wait_for_received(&self, n: u64, timeout: Duration) -> Result<bool> {
        let rt =
            self.runtime().ok_or_else(|| Error::IllegalState("the StreamingContext has not been started".into()))?;
        rt.wait_received(n, timeout)
    }

    /// Records taken in by the receivers of this process so far.
    pub fn received_records(&self) -> u64 {
        self.runtime().map_or(0, |rt| rt.received.load(Ordering::Relaxed))
    }
}

impl Drop for StreamingContext {
    fn drop(&mut self) {
        if self.state() == ContextState::Active {
            let _ = self.stop(false);
        }
    }
}

/// The job's checkpoint interval: a multiple of every stateful stream's slide (and of the batch
/// interval) — the least common multiple of the intervals streams asked for, or else the smallest
/// such multiple of at least 10 s.
fn checkpoint_interval(batch_ms: u64, slides: &[u64], requested: &[u64]) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let lcm = |a: u64, b: u64| a / gcd(a, b) * b;
    let base = slides.iter().copied().fold(batch_ms, lcm);
    if !requested.is_empty() {
        return requested.iter().copied().fold(base, lcm);
    }
    base * 10_000u64.div_ceil(base).max(1)
}

fn release_active(id: usize) {
    lock(&ACTIVE).retain(|(active, _)| *active != id);
}

/// The first entry at which two fingerprints differ (one ending early counts as a difference).
fn first_difference(a: &[String], b: &[String]) -> Option<usize> {
    (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i))
}
