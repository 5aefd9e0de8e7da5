//! The operator kit: how Ember's own operations are built, public so that other crates can build
//! theirs the same way.
//!
//! [`DStream::operator`](crate::DStream::operator) declares one user operation; its function
//! runs on every worker when the job starts and turns that worker's share of the input stream, a
//! [`Batches`], into the output's. A `Batches` is a stream of batches: records of batch `t` flow
//! as they come, and an operator that needs the whole batch waits until the batch is complete on
//! every worker. Its methods are the vocabulary:
//!
//! | method | what it does |
//! |---|---|
//! | [`pipeline`](Batches::pipeline), [`take_per_batch`](Batches::take_per_batch) | transforms (or limits) records as they stream through, on their worker |
//! | [`exchange`](Batches::exchange), [`exchange_by_key`](Batches::exchange_by_key), [`exchange_by_value`](Batches::exchange_by_value), [`exchange_to_worker`](Batches::exchange_to_worker), [`to_driver`](Batches::to_driver), [`round_robin`](Batches::round_robin), [`broadcast`](Batches::broadcast) | moves records between workers and processes |
//! | [`per_batch`](Batches::per_batch), [`fold_per_batch`](Batches::fold_per_batch), [`fold_per_batch_by_key`](Batches::fold_per_batch_by_key) | sees each worker's share of each batch once it is complete, empty batches included |
//! | [`per_batch_with`](Batches::per_batch_with) | the same for two streams (joins, set operations) |
//! | [`per_batch_stateful`](Batches::per_batch_stateful) | the same with a state kept across batches, checkpointed and recovered with the job's |
//! | [`driver_state`](Batches::driver_state) + [`with_state`](Batches::with_state) | a state folded on the driver each batch and handed to every worker |
//! | [`train_per_batch`](Batches::train_per_batch) | a state trained batch after batch: every worker uses the state after the previous batch, and every worker folds all workers' partial results into its copy (streaming machine learning) |
//! | [`train_per_batch_in_rounds`](Batches::train_per_batch_in_rounds) | the same in rounds within each batch, each worker keeping its share of the batch (gradient descent) |
//! | [`union`](Batches::union) | both streams' records |
//!
//! Sources and sinks have their own contracts: [`PlannedSource`] (a source whose batches are
//! planned on the driver and logged, so a batch re-runs exactly after a failure), [`Receiver`]
//! (a long-running receiver pushing records) and [`Sink`] (written per worker, committed once
//! per batch on the driver).
//!
//! The kit never names its engine; [`Batches::inner`] is the escape hatch to the timely
//! stream underneath, for what the methods do not cover.
//!
//! ## Failures
//!
//! A panic in an operator's function fails its batch: no output runs for it, no checkpoint at or
//! after it commits, and the job stops with an error naming the operator and the batch, as for
//! the DStream operations.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::rc::Rc;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::Concatenate;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use super::batch::{batch_binary, batch_unary};
use super::runtime::Runtime;
use super::state::{Registry, Rescale, Stateful};
use super::{key_hash, Guard};
use crate::time::{Grid, Time};
use crate::Data;

pub use super::connector::{
    count_skipped, BatchMetadata, PlanEnv, PlannedSource, Sink, SinkCounters, SinkCounts, SkipCounters,
};
pub use super::receiver::{Receiver, ReceiverContext};
/// The engine underneath, for operators written against [`Batches::inner`] (the same version
/// Ember runs).
pub use timely;

/// One worker's share of a stream of batches, while the job's dataflow is built.
///
/// Made by [`DStream::operator`](crate::DStream::operator); each method adds an operator to the
/// worker's dataflow and returns the stream it produces. Every worker runs the same calls.
pub struct Batches<'s, T> {
    pub(crate) stream: Stream<'s, u64, Vec<T>>,
    pub(crate) kit: Rc<Kit>,
}

impl<T: Clone + 'static> Clone for Batches<'_, T> {
    fn clone(&self) -> Self {
        Batches { stream: self.stream.clone(), kit: Rc::clone(&self.kit) }
    }
}

/// What every operator of one worker's node needs: the runtime, where it runs, the stream's grid
/// and where its state is registered.
pub(crate) struct Kit {
    pub rt: Arc<Runtime>,
    pub index: usize,
    pub peers: usize,
    pub grid: Grid,
    /// The user operation being built (see `Graph::user_id`), for the names of its state.
    pub user_id: usize,
    pub registry: Rc<Registry>,
}

impl Kit {
    pub fn guard(&self) -> Guard {
        Guard::new(Arc::clone(&self.rt), self.peers)
    }
}

impl<'s, T: Data> Batches<'s, T> {
    pub(crate) fn new(stream: Stream<'s, u64, Vec<T>>, kit: Rc<Kit>) -> Self {
        Batches { stream, kit }
    }

    /// A state registered with the job's checkpoints, starting as `initial` (or as the
    /// recovered checkpoint has it), for an operator that keeps more than one (see
    /// [`per_batch_stateful`](Self::per_batch_stateful)).
    pub(crate) fn stateful<S: Serialize + DeserializeOwned + 'static>(
        &self,
        op: &str,
        initial: S,
        rescale: Rescale<S>,
    ) -> Stateful<S> {
        let kit = &self.kit;
        kit.registry.stateful(&kit.rt, kit.index, kit.peers, kit.user_id, op, initial, rescale)
    }

    /// The job's zero time: batch `k` is at `zero + k * interval`.
    pub(crate) fn zero(&self) -> u64 {
        self.kit.grid.zero
    }

    pub(crate) fn into_stream(self) -> Stream<'s, u64, Vec<T>> {
        self.stream
    }

    /// The timely stream underneath: batch time (milliseconds since the epoch) as the timestamp,
    /// `Vec<T>` containers. For operators the kit has no method for; wrap the result with
    /// [`wrap`](Self::wrap). An operator built this way must hold a capability for a batch until
    /// it emitted all of that batch's records, as timely's operators do.
    pub fn inner(&self) -> &Stream<'s, u64, Vec<T>> {
        &self.stream
    }

    /// A timely stream of this dataflow as a `Batches` of the same grid (see [`inner`](Self::inner)).
    ///
    /// ```
    /// # use ember::testing::*;
    /// use ember::operator::timely::dataflow::operators::vec::Map;
    /// let out = run_on_batches(vec![vec![1, 2]], |s| {
    ///     s.operator("timely's own map", |b| b.wrap(b.inner().clone().map(|x: i32| x + 1)))
    /// });
    /// assert_eq!(out, vec![vec![2, 3]]);
    /// ```
    pub fn wrap<U: Data>(&self, stream: Stream<'s, u64, Vec<U>>) -> Batches<'s, U> {
        Batches { stream, kit: Rc::clone(&self.kit) }
    }

    /// This worker's index among all the job's workers (0 is the driver).
    pub fn worker(&self) -> usize {
        self.kit.index
    }

    /// The number of the job's workers, over all processes.
    pub fn workers(&self) -> usize {
        self.kit.peers
    }

    /// Whether this worker is the driver (process 0, worker 0).
    pub fn is_driver(&self) -> bool {
        self.kit.index == 0
    }

    /// Transforms records as they stream through, on the worker that holds them, without waiting
    /// for their batch to complete (how `map`, `flat_map` and `filter` are built). `f` gets the
    /// batch time, records that arrived and the output to fill; it may be called several times per
    /// batch, or not at all for a batch with no records here.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1, 2], vec![3]], |s| {
    ///     s.operator("times ten", |b| b.pipeline("times ten", |_t, xs: &mut Vec<i32>, out| out.extend(xs.drain(..).map(|x| x * 10))))
    /// });
    /// assert_eq!(out, vec![vec![10, 20], vec![30]]);
    /// ```
    pub fn pipeline<U: Data>(
        self,
        name: &str,
        mut f: impl FnMut(Time, &mut Vec<T>, &mut Vec<U>) + 'static,
    ) -> Batches<'s, U> {
        let (name, grid, mut guard) = (name.to_owned(), self.kit.grid, self.kit.guard());
        let stream = self.stream.unary(Pipeline, &name.clone(), move |_, _| {
            let mut out = Vec::new();
            move |input, output| {
                input.for_each(|cap, data| {
                    let t = grid.ceil(*cap.time());
                    let done = guard.run(&name, t, || cap.retain(0), || f(Time::from_millis(t), data, &mut out));
                    if done.is_some() && !out.is_empty() {
                        output.session(&cap).give_container(&mut out);
                    }
                    out.clear();
                });
            }
        });
        Batches { stream, kit: self.kit }
    }

    /// Sends every record to the worker that owns `key(record)`: every worker of every process
    /// sends equal keys to the same worker (the hash is the same in every process).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let ssc = manual_context("local[3]");
    /// let owners = ssc.queue_stream(vec![vec![1, 2, 1, 2, 1]], true).operator("owner", |b| {
    ///     b.exchange(|x: &i32| *x).per_batch("owner", |_t, xs: Vec<i32>, out| {
    ///         out.extend(xs.into_iter().map(|x| (x, 0)).take(1))
    ///     })
    /// });
    /// let out = owners.collect_batches();
    /// ssc.run_batches(1).unwrap();
    /// ssc.stop(false).unwrap();
    /// // each key's records all met on one worker: one output per distinct key
    /// assert_eq!(sorted(out.batches().into_iter().map(|(_, b)| b).collect()), vec![vec![(1, 0), (2, 0)]]);
    /// ```
    pub fn exchange<K: Hash>(self, key: impl Fn(&T) -> K + 'static) -> Self {
        self.moved("Exchange", Exchange::new(move |x: &T| key_hash(&key(x))))
    }

    /// Sends every record to the driver worker (process 0, worker 0).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let ssc = manual_context("local[2]");
    /// let counts = ssc.queue_stream(vec![vec![1, 2, 3, 4]], true).repartition(2).operator("count", |b| {
    ///     let driver = b.is_driver();
    ///     b.to_driver().per_batch("count", move |_t, xs: Vec<i32>, out| if driver { out.push(xs.len()) })
    /// });
    /// let out = counts.collect_batches();
    /// ssc.run_batches(1).unwrap();
    /// ssc.stop(false).unwrap();
    /// assert_eq!(out.batches()[0].1, vec![4]);
    /// ```
    pub fn to_driver(self) -> Self {
        self.moved("ToDriver", super::to_driver::<T>())
    }

    /// Spreads records evenly over all workers, each worker starting with the next one.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let ssc = manual_context("local[2]");
    /// let shares = ssc.queue_stream(vec![(0..10).collect::<Vec<i32>>()], true).operator("share", |b| {
    ///     b.round_robin().per_batch("share", |_t, xs: Vec<i32>, out| if !xs.is_empty() { out.push(xs.len()) })
    /// });
    /// let out = shares.collect_batches();
    /// ssc.run_batches(1).unwrap();
    /// ssc.stop(false).unwrap();
    /// assert_eq!(out.batches()[0].1, vec![5, 5]);
    /// ```
    pub fn round_robin(self) -> Self {
        let workers = self.kit.peers;
        self.round_robin_over(workers)
    }

    /// Like [`round_robin`](Self::round_robin), over the first `n` workers (at least one, at
    /// most all).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let ssc = manual_context("local[3]");
    /// let shares = ssc.queue_stream(vec![(0..6).collect::<Vec<i32>>()], true).operator("two of three", |b| {
    ///     b.round_robin_over(2).per_batch("share", |_t, xs: Vec<i32>, out| out.push(xs.len()))
    /// });
    /// let out = shares.collect_batches();
    /// ssc.run_batches(1).unwrap();
    /// ssc.stop(false).unwrap();
    /// assert_eq!(out.batches()[0].1, vec![3, 3, 0]);
    /// ```
    pub fn round_robin_over(self, n: usize) -> Self {
        let targets = n.clamp(1, self.kit.peers) as u64;
        let mut next = self.kit.index as u64;
        self.moved(
            "RoundRobin",
            Exchange::new(move |_: &T| {
                next = (next + 1) % targets;
                next
            }),
        )
    }

    /// Sends every record to every worker.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let ssc = manual_context("local[3]");
    /// let seen = ssc.queue_stream(vec![vec![7]], true).operator("everywhere", |b| {
    ///     let me = b.worker();
    ///     b.broadcast().pipeline("tag", move |_t, xs: &mut Vec<i32>, out| out.extend(xs.drain(..).map(|x| (me, x))))
    /// });
    /// let out = seen.collect_batches();
    /// ssc.run_batches(1).unwrap();
    /// ssc.stop(false).unwrap();
    /// assert_eq!(out.batches()[0].1, vec![(0, 7), (1, 7), (2, 7)]);
    /// ```
    pub fn broadcast(self) -> Self {
        use timely::dataflow::operators::vec::Broadcast;
        Batches { stream: self.stream.broadcast(), kit: self.kit }
    }

    /// The records of both streams (same grid).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1, 2]], |s| {
    ///     s.operator("and doubled", |b| {
    ///         let doubled = b.clone().pipeline("double", |_t, xs: &mut Vec<i32>, out| out.extend(xs.iter().map(|x| x * 2)));
    ///         b.union(doubled)
    ///     })
    /// });
    /// assert_eq!(sorted(out), vec![vec![1, 2, 2, 4]]);
    /// ```
    pub fn union(self, other: Batches<'s, T>) -> Self {
        let scope = self.stream.scope();
        Batches { stream: scope.concatenate([self.stream, other.stream]), kit: self.kit }
    }

    fn moved<P: timely::dataflow::channels::pact::ParallelizationContract<u64, Vec<T>>>(
        self,
        name: &str,
        pact: P,
    ) -> Self {
        let stream = self.stream.unary(pact, name, |_, _| {
            move |input, output| input.for_each(|cap, data| output.session(&cap).give_container(data))
        });
        Batches { stream, kit: self.kit }
    }

    /// Passes on the first `n` records of each batch on this worker as they arrive, and drops
    /// the rest: no wait for the batch to complete (how `print` limits what reaches the driver).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![5, 6, 7], vec![8]], |s| s.operator("first two", |b| b.take_per_batch(2)));
    /// assert_eq!(out, vec![vec![5, 6], vec![8]]);
    /// ```
    pub fn take_per_batch(self, n: usize) -> Self {
        let grid = self.kit.grid;
        let stream = self.stream.unary_frontier(Pipeline, "TakePerBatch", move |_, _| {
            let mut taken: BTreeMap<u64, usize> = BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let seen = taken.entry(grid.ceil(*cap.time())).or_default();
                    data.truncate(n.saturating_sub(*seen));
                    *seen += data.len();
                    if !data.is_empty() {
                        output.session(&cap).give_container(data);
                    }
                });
                // A batch the frontier passed is complete: its count is no longer needed.
                match frontier.frontier().first() {
                    Some(&f) => taken = taken.split_off(&grid.ceil(f)),
                    None => taken.clear(),
                }
            }
        });
        Batches { stream, kit: self.kit }
    }

    /// Calls `f` once per batch with this worker's share of it, once the batch is complete on
    /// every worker: for **every** batch time of the stream, empty ones included, in time order.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1, 2, 3], vec![]], |s| {
    ///     s.operator("sum", |b| b.per_batch("sum", |_t, xs: Vec<i32>, out| out.push(xs.iter().sum::<i32>())))
    /// });
    /// assert_eq!(out, vec![vec![6], vec![0]]);
    /// ```
    pub fn per_batch<U: Data>(self, name: &str, f: impl FnMut(Time, Vec<T>, &mut Vec<U>) + 'static) -> Batches<'s, U> {
        self.fold_per_batch(name, Vec::new, |acc, data| acc.append(data), f)
    }

    /// Like [`per_batch`](Self::per_batch), folding records into an accumulator as they arrive
    /// instead of holding the batch: `init` makes a batch's accumulator, `absorb` takes records
    /// in, `fire` turns the complete batch's accumulator into output.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1, 2, 3]], |s| {
    ///     s.operator("max", |b| b.fold_per_batch("max", || None, |m: &mut Option<i32>, xs: &mut Vec<i32>| {
    ///         *m = xs.drain(..).chain(m.take()).max()
    ///     }, |_t, m, out| out.extend(m)))
    /// });
    /// assert_eq!(out, vec![vec![3]]);
    /// ```
    pub fn fold_per_batch<A: 'static, U: Data>(
        self,
        name: &str,
        init: impl Fn() -> A + 'static,
        absorb: impl FnMut(&mut A, &mut Vec<T>) + 'static,
        fire: impl FnMut(Time, A, &mut Vec<U>) + 'static,
    ) -> Batches<'s, U> {
        let (grid, rt) = (self.kit.grid, Arc::clone(&self.kit.rt));
        let stream = batch_unary(self.stream, Pipeline, name, grid, rt, init, absorb, fire);
        Batches { stream, kit: self.kit }
    }

    /// Like [`per_batch`](Self::per_batch), with a state that `f` may change and that lives
    /// across batches. The state is part of the job's checkpoints: it is saved after every
    /// checkpointed batch and restored when the job recovers, with nothing more to wire. Each
    /// worker keeps its own (exchange by key first for a state per key). `name` names it in the
    /// checkpoint, with the operation's place in the plan. Such a state means something only on
    /// its worker, so a job that holds one recovers only with the number of workers it was
    /// checkpointed with (Ember's keyed states, windows and models move to another number).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1, 2], vec![3], vec![]], |s| {
    ///     s.operator("running sum", |b| {
    ///         b.per_batch_stateful("total", 0i64, |_t, xs: Vec<i64>, total: &mut i64, out| {
    ///             *total += xs.iter().sum::<i64>();
    ///             out.push(*total);
    ///         })
    ///     })
    /// });
    /// assert_eq!(out, vec![vec![3], vec![6], vec![6]]);
    /// ```
    pub fn per_batch_stateful<S: Serialize + DeserializeOwned + 'static, U: Data>(
        self,
        name: &str,
        initial: S,
        f: impl FnMut(Time, Vec<T>, &mut S, &mut Vec<U>) + 'static,
    ) -> Batches<'s, U> {
        self.per_batch_state(name, initial, Rescale::Fixed, f)
    }

    /// [`per_batch_stateful`](Self::per_batch_stateful) with a state that `rescale` moves when
    /// the job recovers with another number of workers.
    pub(crate) fn per_batch_state<S: Serialize + DeserializeOwned + 'static, U: Data>(
        self,
        name: &str,
        initial: S,
        rescale: Rescale<S>,
        mut f: impl FnMut(Time, Vec<T>, &mut S, &mut Vec<U>) + 'static,
    ) -> Batches<'s, U> {
        let state = self.stateful(name, initial, rescale);
        self.per_batch(name, move |t, records, out| state.update(t.millis(), |s| f(t, records, s, out)))
    }

    /// A state held on the driver: every batch, the records of all workers are gathered on the
    /// driver and `f` folds them into the state; the resulting state is then sent to every worker
    /// (one record per worker and batch). The state is checkpointed and recovered with the job.
    /// Send small records (each worker's partial sums), not the batch: the fold runs on one worker.
    /// [`with_state`](Self::with_state) hands it to another operator.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let ssc = manual_context("local[2]");
    /// let totals = ssc.queue_stream(vec![vec![1, 2], vec![3, 4]], true).operator("total", |b| {
    ///     b.per_batch("partial", |_t, xs: Vec<i64>, out| out.push(xs.iter().sum::<i64>()))
    ///         .driver_state("total", 0i64, |_t, partials, total| *total += partials.iter().sum::<i64>())
    /// });
    /// let out = totals.collect_batches();
    /// ssc.run_batches(2).unwrap();
    /// ssc.stop(false).unwrap();
    /// // every one of the 2 workers got the total after each batch
    /// assert_eq!(out.batches().into_iter().map(|(_, b)| b).collect::<Vec<_>>(), vec![vec![3, 3], vec![10, 10]]);
    /// ```
    pub fn driver_state<S: Data>(
        self,
        name: &str,
        initial: S,
        mut f: impl FnMut(Time, Vec<T>, &mut S) + 'static,
    ) -> Batches<'s, S> {
        let driver = self.is_driver();
        self.to_driver()
            .per_batch_state(name, initial, Rescale::Replicated, move |t, records, state, out| {
                if driver {
                    f(t, records, state);
                    out.push(state.clone());
                }
            })
            .broadcast()
    }

    /// Calls `f` once per batch with this worker's share of the batch and the latest value of
    /// `state` at or before the batch (`None` before the first): the way to use a
    /// [`driver_state`](Self::driver_state) (a model trained on the stream) on every worker. Batch
    /// `t` waits for `state`'s batch `t`.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1.0, 2.0], vec![10.0]], |s| {
    ///     s.operator("above mean", |b| {
    ///         let mean = b.clone()
    ///             .per_batch("partial", |_t, xs: Vec<f64>, out| out.push((xs.iter().sum::<f64>(), xs.len())))
    ///             .driver_state("mean", (0.0, 0), |_t, parts: Vec<(f64, usize)>, (sum, n): &mut (f64, usize)| {
    ///                 parts.iter().for_each(|(s, c)| { *sum += s; *n += c; })
    ///             });
    ///         b.with_state("above", mean, |_t, xs: Vec<f64>, mean: Option<&(f64, usize)>, out| {
    ///             let (sum, n) = mean.copied().unwrap_or((0.0, 1));
    ///             out.extend(xs.into_iter().filter(|x| *x > sum / n as f64))
    ///         })
    ///     })
    /// });
    /// assert_eq!(out, vec![vec![2.0], vec![10.0]]);
    /// ```
    pub fn with_state<S: Data, U: Data>(
        self,
        name: &str,
        state: Batches<'s, S>,
        mut f: impl FnMut(Time, Vec<T>, Option<&S>, &mut Vec<U>) + 'static,
    ) -> Batches<'s, U> {
        let mut latest: Option<S> = None;
        self.per_batch_with(name, state, move |t, records, states, out| {
            if let Some(s) = states.into_iter().last() {
                latest = Some(s);
            }
            f(t, records, latest.as_ref(), out)
        })
    }

    /// Calls `f` once per batch with this worker's share of the batch of this stream and of
    /// `other` (same grid), once both are complete: the two-input [`per_batch`](Self::per_batch),
    /// for joins, set operations and the like (exchange both sides alike first).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_two(vec![vec![1, 2, 3]], vec![vec![2]], |a, b| {
    ///     a.operator_with("not in b", b, |a, b| {
    ///         a.per_batch_with("not in b", b, |_t, xs: Vec<i32>, ys: Vec<i32>, out| {
    ///             out.extend(xs.into_iter().filter(|x| !ys.contains(x)))
    ///         })
    ///     })
    /// });
    /// assert_eq!(out, vec![vec![1, 3]]);
    /// ```
    pub fn per_batch_with<W: Data, U: Data>(
        self,
        name: &str,
        other: Batches<'s, W>,
        f: impl FnMut(Time, Vec<T>, Vec<W>, &mut Vec<U>) + 'static,
    ) -> Batches<'s, U> {
        let (grid, rt) = (self.kit.grid, Arc::clone(&self.kit.rt));
        let stream = batch_binary(
            self.stream,
            other.stream,
            (Pipeline, Pipeline),
            name,
            grid,
            rt,
            || (Vec::new(), Vec::new()),
            |acc: &mut Vec<T>, data| acc.append(data),
            |acc: &mut Vec<W>, data| acc.append(data),
            f,
        );
        Batches { stream, kit: self.kit }
    }

    /// Sends every record to worker `worker(record) % workers`: a placement decided by the
    /// operator (ranges of a sort), where [`exchange`](Self::exchange) hashes.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let ssc = manual_context("local[2]");
    /// let placed = ssc.queue_stream(vec![vec![1, 2, 3, 4]], true).operator("odd to 1", |b| {
    ///     let me = b.worker();
    ///     b.exchange_to_worker(|x: &i32| (*x % 2) as usize)
    ///         .pipeline("tag", move |_t, xs: &mut Vec<i32>, out| out.extend(xs.drain(..).map(|x| (me, x))))
    /// });
    /// let out = placed.collect_batches();
    /// ssc.run_batches(1).unwrap();
    /// ssc.stop(false).unwrap();
    /// assert_eq!(sorted(vec![out.batches()[0].1.clone()]), vec![vec![(0, 2), (0, 4), (1, 1), (1, 3)]]);
    /// ```
    pub fn exchange_to_worker(self, worker: impl Fn(&T) -> usize + 'static) -> Self {
        self.moved("ExchangeToWorker", Exchange::new(move |x: &T| worker(x) as u64))
    }

    /// Sends every record to the worker that owns its hash, the record being its own key (for
    /// distinct records, set operations).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![3, 1, 3, 3]], |s| {
    ///     s.operator("distinct", |b| {
    ///         b.exchange_by_value().per_batch("distinct", |_t, mut xs: Vec<i32>, out| {
    ///             xs.sort();
    ///             xs.dedup();
    ///             out.extend(xs)
    ///         })
    ///     })
    /// });
    /// assert_eq!(sorted(out), vec![vec![1, 3]]);
    /// ```
    pub fn exchange_by_value(self) -> Self
    where
        T: Hash,
    {
        self.moved("ExchangeByValue", Exchange::new(|x: &T| key_hash(x)))
    }
}

impl<'s, K: Data + Hash, V: Data> Batches<'s, (K, V)> {
    /// Sends every `(key, value)` record to the worker that owns its key: the exchange of
    /// Ember's keyed operations, so a state kept per key here lines up with theirs.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('a', 1), ('b', 2), ('a', 3)]], |s| {
    ///     s.operator("sum per key", |b| {
    ///         b.exchange_by_key().per_batch("sum", |_t, kvs: Vec<(char, i32)>, out| {
    ///             let mut sums = std::collections::BTreeMap::new();
    ///             kvs.into_iter().for_each(|(k, v)| *sums.entry(k).or_insert(0) += v);
    ///             out.extend(sums)
    ///         })
    ///     })
    /// });
    /// assert_eq!(sorted(out), vec![vec![('a', 4), ('b', 2)]]);
    /// ```
    pub fn exchange_by_key(self) -> Self {
        self.moved("ExchangeByKey", by_key::<K, V>())
    }

    /// [`exchange_by_key`](Self::exchange_by_key) and [`fold_per_batch`](Batches::fold_per_batch)
    /// in one operator: the records are folded as they arrive on the key's worker, with no
    /// operator between (the keyed aggregations' hot path).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('a', 1), ('b', 2), ('a', 3)]], |s| {
    ///     s.operator("sum per key", |b| {
    ///         b.fold_per_batch_by_key(
    ///             "sum",
    ///             std::collections::BTreeMap::new,
    ///             |sums, kvs: &mut Vec<(char, i32)>| kvs.drain(..).for_each(|(k, v)| *sums.entry(k).or_insert(0) += v),
    ///             |_t, sums, out| out.extend(sums),
    ///         )
    ///     })
    /// });
    /// assert_eq!(sorted(out), vec![vec![('a', 4), ('b', 2)]]);
    /// ```
    pub fn fold_per_batch_by_key<A: 'static, U: Data>(
        self,
        name: &str,
        init: impl Fn() -> A + 'static,
        absorb: impl FnMut(&mut A, &mut Vec<(K, V)>) + 'static,
        fire: impl FnMut(Time, A, &mut Vec<U>) + 'static,
    ) -> Batches<'s, U> {
        let (grid, rt) = (self.kit.grid, Arc::clone(&self.kit.rt));
        let stream = batch_unary(self.stream, by_key::<K, V>(), name, grid, rt, init, absorb, fire);
        Batches { stream, kit: self.kit }
    }
}

/// The channel that sends `(key, value)` records to the worker owning the key, alike in every
/// process.
fn by_key<K: Data + Hash, V: Data>() -> Exchange<(K, V), impl FnMut(&(K, V)) -> u64 + 'static> {
    Exchange::new(|kv: &(K, V)| key_hash(&kv.0))
}
