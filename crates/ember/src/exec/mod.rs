//! The kit: the plan, its launch on timely, and the primitives every operator is built from.
//! This module is the only place that names timely types; its public part is
//! [`crate::operator`].
//!
//! ## Layers
//!
//! ```text
//! satellites  ember-kafka, ember-mqtt, ember-kinesis, ember-zeromq, ember-ui   use ember::operator
//! api         context (lifecycle) · shared (what a context and its streams hold) ·
//!             dstream/* · source/* (thin constructors)                          no timely
//! exec        plan · job · cluster · operator (Batches and its primitives, Sink,
//!             PlannedSource, Receiver) · batch · source · receiver · output · state ·
//!             runtime                                                           the only timely
//! storage     storage (local disk; object stores by ember-store) · checkpoint (codec,
//!             batch log, WAL) · rate · listener · conf
//! base        time · error · clock · print · accumulator
//! ```
//!
//! Imports go down only; within the kit its files use each other.
//!
//! ## From plan to dataflow
//!
//! - [`plan`]: every user operation is one node of the plan, with the function that builds its
//!   operators; the checkpoint's fingerprint and the names of checkpointed state come from user
//!   operations only (`plan format 2`).
//! - [`job`]: `start` launches one timely worker per `local[N]` thread, or per worker of each
//!   process in cluster mode; each worker builds the same dataflow from the plan
//!   ([`run_worker`]) and steps it, submitting batches as the clock crosses their end.
//! - [`cluster`]: in cluster mode, the connections between the processes (Ember's own, with a
//!   deadline and a handshake) and the control connections beside timely's: failures, heartbeats,
//!   the parts of each checkpoint, the services that cover every process, the stop.
//! - [`state`]: checkpointed operator state, and how each kind moves when the job recovers with
//!   another number of workers (keyed, spread, replicated, or fixed).
//! - [`source`]: an input's operator holds a capability for the open batch and downgrades it when
//!   the clock crosses the boundary; [`receiver`] runs receivers beside it.
//! - [`operator`]: the primitives; records stream through (`pipeline`), move between workers
//!   (`exchange`, `to_driver`, `broadcast`), and per-batch operators ([`batch`]) fire when the
//!   frontier passes a batch, empty batches included; [`state`] saves and restores their state.
//! - [`output`]: every output operation of a worker in one operator, run per batch in
//!   declaration order once the batch is complete; the driver then commits sinks and checkpoints.
//! - [`runtime`]: what the workers share: progress, failures, commits, rates, the checkpoint store.
//!
//! Batch time is the timely timestamp, in milliseconds since the epoch.

pub(crate) mod batch;
pub(crate) mod cluster;
pub(crate) mod connector;
pub(crate) mod job;
pub mod operator;
pub(crate) mod output;
pub(crate) mod plan;
pub(crate) mod receiver;
pub(crate) mod runtime;
pub(crate) mod source;
pub(crate) mod state;
mod train;

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::Arc;

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::Probe;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::{Scope, Stream};
use timely::scheduling::Activator;
use timely::worker::Worker;

use crate::error::{Error, Result};
use crate::listener::{BatchInfo, Event, OutputOperationInfo, StreamInputInfo};
use crate::time::{Grid, Time};
use crate::Data;
use runtime::Runtime;

/// A stream of batches of `T` inside one worker's dataflow.
pub(crate) type Batches<'s, T> = Stream<'s, u64, Vec<T>>;

/// What a worker needs while it builds its dataflow from the plan.
pub(crate) struct BuildEnv<'s> {
    pub scope: Scope<'s, u64>,
    pub rt: Arc<Runtime>,
    /// Global index of this worker and number of workers.
    pub index: usize,
    pub peers: usize,
    pub zero: u64,
    /// The node being built.
    current: usize,
    /// Built streams by node id, with their lifetime erased (see `put`).
    streams: HashMap<usize, Box<dyn Any>>,
    /// Activators of this worker's source operators.
    pub sources: Vec<Activator>,
    /// What each source reports of each batch (records, metadata).
    pub metrics: Vec<Batches<'s, InputReport>>,
    /// Records each counted node produced, per batch: `(node, records)`.
    pub op_counts: Vec<Batches<'s, (usize, u64)>>,
    /// The driver worker's record of each batch.
    pub driver_log: Rc<RefCell<DriverLog>>,
    /// The state containers of this worker's stateful operators, and the first error met.
    registry: Rc<state::Registry>,
}

impl<'s> BuildEnv<'s> {
    /// The batch grid of a stream with the given slide.
    pub fn grid(&self, slide: u64) -> Grid {
        Grid { zero: self.zero, slide }
    }

    /// Whether this worker plays the driver.
    pub fn is_driver(&self) -> bool {
        self.index == 0
    }

    /// A guard for an operator of this worker (see [`Guard`]).
    pub fn guard(&self) -> Guard {
        Guard::new(Arc::clone(&self.rt), self.peers)
    }

    /// Keeps the first error met while building (e.g. a state that does not restore).
    pub fn fail(&mut self, e: Error) {
        self.registry.fail(e);
    }

    /// The kit of the current node, for a stream of the given slide.
    pub fn kit(&self, slide: u64) -> Rc<operator::Kit> {
        Rc::new(operator::Kit {
            rt: Arc::clone(&self.rt),
            index: self.index,
            peers: self.peers,
            grid: self.grid(slide),
            user_id: self.rt.graph.user_id(self.current),
            registry: Rc::clone(&self.registry),
        })
    }

    /// Records the stream built for the current node.
    pub fn put<T: Data>(&mut self, stream: Batches<'s, T>) {
        let counted =
            self.rt.graph.track_operations && self.rt.graph.nodes.get(self.current).is_some_and(|n| !n.internal);
        let stream = if counted { self.counted(stream) } else { stream };
        // SAFETY: the stored value only differs from `stream` in its lifetime parameter. It never
        // leaves this `BuildEnv<'s>`, which lives inside the dataflow-building closure of lifetime
        // 's, and `get` hands it out again only as `Batches<'s, T>`. `Any` needs `'static`; the
        // lifetime is erased for storage only.
        let erased: Batches<'static, T> = unsafe { std::mem::transmute::<Batches<'s, T>, Batches<'static, T>>(stream) };
        self.streams.insert(self.current, Box::new(erased));
    }

    /// Passes `stream` through and reports how many records each batch of it holds.
    fn counted<T: Data>(&mut self, stream: Batches<'s, T>) -> Batches<'s, T> {
        use timely::container::CapacityContainerBuilder;
        use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
        use timely::dataflow::operators::generic::OutputBuilder;
        let node = self.current;
        let mut builder = OperatorBuilder::new(format!("Count node-{node}"), self.scope);
        let mut input = builder.new_input(stream, Pipeline);
        let (data_out, data) = builder.new_output::<Vec<T>>();
        let (count_out, counts) = builder.new_output::<Vec<(usize, u64)>>();
        let mut data_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<T>>>::from(data_out);
        let mut count_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<(usize, u64)>>>::from(count_out);
        builder.build(move |mut caps| {
            caps.clear();
            move |_frontiers| {
                let mut data_session = data_out.activate();
                let mut count_session = count_out.activate();
                input.for_each(|cap, data| {
                    if !data.is_empty() {
                        count_session.session(&cap.retain(1)).give((node, data.len() as u64));
                    }
                    data_session.session(&cap.retain(0)).give_container(data);
                });
            }
        });
        self.op_counts.push(counts);
        data
    }

    /// The records of all `streams`, batch by batch.
    pub fn concatenate<T: Data>(&self, streams: Vec<Batches<'s, T>>) -> Batches<'s, T> {
        use timely::dataflow::operators::core::Concatenate;
        self.scope.concatenate(streams)
    }

    /// The stream built for `node`.
    pub fn get<T: Data>(&self, node: usize) -> Result<Batches<'s, T>> {
        let erased = self
            .streams
            .get(&node)
            .and_then(|b| b.downcast_ref::<Batches<'static, T>>())
            .ok_or_else(|| Error::Internal(format!("stream of node {node} missing or of another type")))?
            .clone();
        // SAFETY: see `put`; this restores the lifetime the stream was built with.
        Ok(unsafe { std::mem::transmute::<Batches<'static, T>, Batches<'s, T>>(erased) })
    }
}

/// Runs the user's code of one operator, and holds the frontier at a batch that failed.
///
/// A panic in user code is caught on the worker that met it, before any progress of the batch
/// leaves the operator, and fails the batch ([`Runtime::fail_batch`](runtime::Runtime::fail_batch)):
/// within the process, every worker then skips its outputs and no checkpoint at or after it
/// commits. Other processes learn nothing from that and would see the batch pass once this
/// worker's capabilities move on; so when the job runs as several processes, the operator that
/// met a failure (its own, or an input's or output's in this process) keeps a capability at the
/// batch for good, and no process can complete it.
pub(crate) struct Guard {
    rt: Arc<Runtime>,
    cluster: bool,
    held: Option<timely::dataflow::operators::Capability<u64>>,
}

impl Guard {
    /// A guard for an operator of a job of `peers` workers.
    pub fn new(rt: Arc<Runtime>, peers: usize) -> Self {
        let cluster = peers > rt.settings.local_workers();
        Guard { rt, cluster, held: None }
    }

    /// Runs `f`, the user's code of operation `op` on batch `t`; `None` when it panicked, and
    /// the operator then drops the batch's records (`cap` is its capability at the batch).
    pub fn run<R>(
        &mut self,
        op: &str,
        t: u64,
        cap: impl FnOnce() -> timely::dataflow::operators::Capability<u64>,
        f: impl FnOnce() -> R,
    ) -> Option<R> {
        let r = self.rt.user_code(op, t, f);
        if r.is_none() {
            self.keep(cap);
        }
        r
    }

    /// Batch `cap` failed: keep its capability (the first one) when other processes run too.
    pub fn keep(&mut self, cap: impl FnOnce() -> timely::dataflow::operators::Capability<u64>) {
        if self.cluster && self.held.is_none() {
            self.held = Some(cap());
        }
    }
}

/// A pact that sends every record to the driver worker.
pub(crate) fn to_driver<T: Data>() -> Exchange<T, impl FnMut(&T) -> u64 + 'static> {
    Exchange::new(|_: &T| 0)
}

/// The pact that keeps records on their worker.
pub(crate) fn local() -> Pipeline {
    Pipeline
}

/// A hash of a key that every process of the job computes alike.
pub(crate) fn key_hash<K: Hash + ?Sized>(k: &K) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    k.hash(&mut h);
    // Fx leaves the low bits weak; the exchange takes `hash % workers`, so mix them in.
    let mut x = h.finish();
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// What the driver worker knows of each batch until it completes.
#[derive(Default)]
pub(crate) struct DriverLog {
    pub batches: BTreeMap<u64, BatchInfo>,
    /// Accumulator values right after the outputs of a checkpointed batch ran.
    pub accumulators: BTreeMap<u64, BTreeMap<String, i64>>,
    /// When the previous batch completed (clock millis).
    pub last_completion: u64,
    /// Checkpoints whose batch completed, waiting for every process's parts before they commit.
    pub pending_commits: Vec<crate::checkpoint::Commit>,
}

impl DriverLog {
    pub fn batch(&mut self, t: u64, now: u64) -> &mut BatchInfo {
        self.batches.entry(t).or_insert_with(|| Self::blank(t, now))
    }

    /// What is known of batch `t` before anything was recorded for it. It was submitted when the
    /// clock reached `t`; a driver worker busy running outputs may only see that later, at `now`.
    fn blank(t: u64, now: u64) -> BatchInfo {
        BatchInfo {
            batch_time: Time::from_millis(t),
            stream_input_info: Vec::new(),
            submission_time: t.min(now),
            processing_start_time: None,
            processing_end_time: None,
            output_operation_infos: Vec::new(),
            operation_records: BTreeMap::new(),
        }
    }

    pub fn record_inputs(&mut self, t: u64, now: u64, reports: Vec<InputReport>) {
        let b = self.batch(t, now);
        for r in reports {
            let info = match b.stream_input_info.iter().position(|s| s.input_stream_id == r.stream) {
                Some(i) => &mut b.stream_input_info[i],
                None => {
                    b.stream_input_info.push(StreamInputInfo {
                        input_stream_id: r.stream,
                        num_records: 0,
                        rate_limit: None,
                        metadata: BTreeMap::new(),
                    });
                    b.stream_input_info.last_mut().expect("just pushed")
                }
            };
            info.num_records += r.records;
            for (k, v) in r.metadata {
                match info.metadata.entry(k) {
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(v);
                    }
                    std::collections::btree_map::Entry::Occupied(mut e) => {
                        let joined = e.get_mut();
                        joined.push('\n');
                        joined.push_str(&v);
                    }
                }
            }
        }
    }

    pub fn record_output(&mut self, t: u64, now: u64, info: OutputOperationInfo) {
        self.batch(t, now).output_operation_infos.push(info);
    }
}

/// What one worker's share of a source reports of one batch, gathered on the driver.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct InputReport {
    /// The input stream id.
    pub stream: usize,
    /// Records in the batch.
    pub records: u64,
    /// Source-specific facts of the batch (see `StreamInputInfo::metadata`).
    pub metadata: Vec<(String, String)>,
}

/// Runs one timely worker: builds the dataflow from the plan, then steps it until it ends.
pub(crate) fn run_worker(worker: &mut Worker, rt: Arc<Runtime>, cluster: bool) -> Result<()> {
    rt.register_worker(std::thread::current());
    let result = worker_body(worker, &rt, cluster);
    if let Err(e) = &result {
        rt.report_error(e.clone());
    }
    rt.worker_finished();
    result
}

fn worker_body(worker: &mut Worker, rt: &Arc<Runtime>, cluster: bool) -> Result<()> {
    let index = worker.index();
    let peers = worker.peers();
    let local_leader = index.is_multiple_of(rt.settings.local_workers());
    let proposed = rt.zero().ok_or_else(|| Error::Internal("zero time not set before execution".into()))?;
    let zero = if cluster { agree_on_start(worker, rt, proposed)? } else { proposed };
    rt.set_zero(zero);
    let grid = Grid { zero, slide: rt.batch_ms };

    let probe = ProbeHandle::new();
    let driver_log = Rc::new(RefCell::new(DriverLog::default()));
    let mut restore_failed = None;
    let (sources, states) =
        worker.dataflow::<u64, _, _>(|scope| -> Result<(Vec<Activator>, Vec<(String, state::StateHandle)>)> {
            let mut env = BuildEnv {
                scope,
                rt: Arc::clone(rt),
                index,
                peers,
                zero,
                current: 0,
                streams: HashMap::new(),
                sources: Vec::new(),
                metrics: Vec::new(),
                op_counts: Vec::new(),
                driver_log: Rc::clone(&driver_log),
                registry: Rc::default(),
            };
            // Every worker builds the whole dataflow, also when a restore failed on it, so that
            // all workers have the same operators and channels and can wind down together.
            for (id, node) in rt.graph.nodes.iter().enumerate() {
                env.current = id;
                (node.build)(&mut env)?;
            }
            let done = output::build_stage(&mut env)?;
            done.probe_with(&probe);
            restore_failed = env.registry.take_failure();
            Ok((std::mem::take(&mut env.sources), env.registry.take_states()))
        })?;

    let start = rt.start();
    if let Some(e) = restore_failed {
        // No batch runs: the job stops before its first batch, on every worker, with the error.
        rt.fail_batch(start + grid.slide, e);
    }
    let is_driver = index == 0;
    let in_flight = rt.settings.max_batches_in_flight;
    let mut submitted = start;
    let mut next_boundary = grid.first_after(start);
    let mut completed = start;
    let mut seen_completed = 0u64;
    loop {
        let now = rt.now();
        let stopping = rt.stopping();
        // One read: a batch completed between two reads would be taken as seen, and no source
        // would be woken for it (sources held back by the in-flight bound then wait for ever).
        let completed_now = rt.completed();
        let progressed = completed_now != seen_completed;
        seen_completed = completed_now;
        if progressed {
            for a in &sources {
                a.activate();
            }
        }
        if is_driver && !stopping {
            // Batches are submitted as the sources may close them: after a long down time, the
            // missed batches are announced as they run, not all at once before anything else.
            let due = grid.floor(now).unwrap_or(start);
            let limit = due.min(rt.completed().max(start) + in_flight * grid.slide);
            if submitted < limit {
                let mut log = driver_log.borrow_mut();
                while submitted < limit {
                    submitted += grid.slide;
                    let info = log.batch(submitted, now).clone();
                    rt.post(Event::BatchSubmitted(info));
                }
            }
        }
        if now >= next_boundary || stopping {
            for a in &sources {
                a.activate();
            }
            next_boundary = grid.first_after(now.max(start));
        }
        if local_leader {
            completed = track_completion(rt, &probe, grid, completed, is_driver, peers, &driver_log);
        }
        if is_driver && !driver_log.borrow().pending_commits.is_empty() {
            commit_ready(rt, &mut driver_log.borrow_mut(), std::time::Duration::ZERO);
        }
        let park = if stopping { None } else { rt.clock.park_for(next_boundary) };
        if !worker.step_or_park(park) {
            break;
        }
    }
    if local_leader {
        track_completion(rt, &probe, grid, completed, is_driver, peers, &driver_log);
    }
    if is_driver {
        // The other processes report the parts of the last checkpoints as they finish too.
        let wait = std::time::Duration::from_millis(rt.settings.failure_timeout_ms);
        commit_ready(rt, &mut driver_log.borrow_mut(), wait);
    }
    if tracing::enabled!(tracing::Level::DEBUG) {
        for (name, handle) in &states {
            match handle.borrow().snapshot() {
                Ok(bytes) => tracing::debug!("worker {index}: state {name} is {} bytes encoded", bytes.len()),
                Err(e) => tracing::debug!("worker {index}: state {name}: {e}"),
            }
        }
    }
    Ok(())
}

/// Notes the batches that completed everywhere since `completed`; on the driver, posts their
/// events and runs their commits. Returns the new last completed batch.
fn track_completion(
    rt: &Runtime,
    probe: &ProbeHandle<u64>,
    grid: Grid,
    completed: u64,
    is_driver: bool,
    peers: usize,
    log: &Rc<RefCell<DriverLog>>,
) -> u64 {
    let limit = probe.with_frontier(|f| f.first().copied());
    let through = match limit {
        Some(l) => grid.floor(l.saturating_sub(1)),
        None => rt.final_time().and_then(|f| grid.floor(f)),
    };
    let Some(through) = through else {
        return completed;
    };
    if through <= completed {
        return completed;
    }
    if is_driver {
        let now = rt.now();
        let mut log = log.borrow_mut();
        let mut t = completed + grid.slide;
        while t <= through {
            let mut info = log.batches.remove(&t).unwrap_or_else(|| DriverLog::blank(t, now));
            info.processing_start_time.get_or_insert(now);
            info.processing_end_time = Some(now);
            rt.control_rates(&mut info);
            log.last_completion = now;
            tracing::info!(
                "Total delay: {:.3} s for time {} (execution: {:.3} s)",
                info.total_delay().unwrap_or(0) as f64 / 1000.0,
                info.batch_time,
                info.processing_delay().unwrap_or(0) as f64 / 1000.0
            );
            rt.post(Event::BatchCompleted(info));
            rt.run_commits(t);
            if let Some(ck) = rt.checkpoint_at(t).filter(|_| rt.checkpoint_ok(t)) {
                let accumulators = log.accumulators.remove(&t).unwrap_or_default();
                log.pending_commits.push(crate::checkpoint::Commit {
                    time: t,
                    zero: grid.zero,
                    batch_ms: rt.batch_ms,
                    workers: peers,
                    fingerprint: rt.graph.fingerprint(&rt.settings.app_name),
                    accumulators,
                    parts: ck.take_parts(t),
                });
            }
            t += grid.slide;
        }
        commit_ready(rt, &mut log, std::time::Duration::ZERO);
    } else if let Some(mesh) = rt.mesh.get() {
        // Another process's local leader: every worker of the job is past these batches, so
        // this process's parts of their checkpoints are written; process 0 commits once it
        // has every process's.
        let counters = cluster::Counters::of(rt);
        mesh.send_progress(counters.clone());
        let mut t = completed + grid.slide;
        while t <= through {
            if let Some(ck) = rt.checkpoint_at(t).filter(|_| rt.checkpoint_ok(t)) {
                mesh.send_parts(t, ck.take_parts(t), counters.accumulators.clone());
            }
            for (key, name, figures) in rt.sink_reports.collect(Time::from_millis(t)) {
                mesh.send_sink_metrics(t, key, name, figures);
            }
            t += grid.slide;
        }
    }
    rt.set_completed(through);
    through
}

/// On the driver: commits the pending checkpoints, in order, whose parts every process has
/// reported (waiting up to `wait` for them). A checkpoint is whole or absent: none commits
/// after a part of any process failed to be written.
fn commit_ready(rt: &Runtime, log: &mut DriverLog, wait: std::time::Duration) {
    let Some(ck) = rt.checkpoints.as_deref() else { return };
    while !log.pending_commits.is_empty() {
        let t = log.pending_commits[0].time;
        if !rt.checkpoint_ok(t) {
            // This and every later pending checkpoint: a batch or a part at or before it failed.
            log.pending_commits.clear();
            return;
        }
        if let Some(mesh) = rt.mesh.get() {
            match mesh.take_parts(t, wait) {
                Some((parts, counts)) => {
                    let c = &mut log.pending_commits[0];
                    c.parts.extend(parts);
                    for (name, n) in counts {
                        *c.accumulators.entry(name).or_insert(0) += n;
                    }
                }
                None => {
                    if !wait.is_zero() {
                        tracing::warn!("checkpoint {t} is not committed: not every process reported its parts");
                        log.pending_commits.clear();
                    }
                    return;
                }
            }
        }
        let mut commit = log.pending_commits.remove(0);
        commit.parts.sort_by(|a, b| a.name.cmp(&b.name));
        match ck.commit(&commit) {
            Ok(()) => tracing::info!("checkpoint {t} committed"),
            Err(e) => rt.checkpoint_failed(t, e),
        }
    }
}

/// In cluster mode, every worker takes what worker 0 proposes: the zero time, so that all
/// processes cut batches on the same grid, and the values of the broadcast variables, so that all
/// read the driver's.
fn agree_on_start(worker: &mut Worker, rt: &Runtime, proposed: u64) -> Result<u64> {
    use timely::dataflow::operators::core::Inspect;
    use timely::dataflow::operators::vec::Broadcast;
    use timely::dataflow::InputHandle;

    type Start = (u64, Vec<Vec<u8>>);
    let agreed: Rc<RefCell<Option<Start>>> = Rc::new(RefCell::new(None));
    let mut input = InputHandle::new();
    let probe = ProbeHandle::new();
    let seen = Rc::clone(&agreed);
    worker.dataflow::<u64, _, _>(|scope| {
        input
            .to_stream(scope)
            .broadcast()
            .inspect(move |s: &Start| *seen.borrow_mut() = Some(s.clone()))
            .probe_with(&probe);
    });
    if worker.index() == 0 {
        input.send((proposed, rt.broadcast_values.clone()));
    }
    input.advance_to(1);
    drop(input);
    while !probe.done() {
        if rt.failed() {
            // A peer was lost during the start: its part of the agreement never comes.
            return Err(Error::Cluster("the job failed while its processes agreed on the start".into()));
        }
        worker.step_or_park(Some(std::time::Duration::from_millis(10)));
    }
    let Some((zero, values)) = agreed.borrow_mut().take() else { return Ok(proposed) };
    if worker.index() >= rt.settings.local_workers() {
        for (slot, bytes) in rt.broadcasts.iter().zip(&values) {
            slot.adopt(bytes)?;
        }
    }
    Ok(zero)
}
