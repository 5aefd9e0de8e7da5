//! `map_with_state`: a state per key, touched only by the keys that have records (spec §3.4).
//!
//! The mapping function runs **once per record** of the batch, in arrival order per key, with the
//! key's [`State`]; it may read, update or remove the state and returns the mapped record. Keys
//! without records in a batch are not touched, so the work grows with the batch, not with the
//! number of keys. With a timeout, a key idle for longer than it gets one last call with no value
//! and `is_timing_out() == true`, and is removed. Ember times keys out at the first batch where
//! their idle time exceeds the timeout (Spark only checks on checkpoint batches, so its timeouts
//! fire up to a checkpoint interval late). `state_snapshots()` gives the whole state after each
//! batch.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::update_state_by_key::owned;
use super::DStream;
use crate::error::Error;
use crate::time::{whole_millis, Time};
use crate::{Data, Key};

/// A key's state inside the mapping function (Spark's `State`).
#[derive(Debug)]
pub struct State<S> {
    value: Option<S>,
    updated: bool,
    removed: bool,
    timing_out: bool,
    /// What the mapping function did that Spark's `State` refuses, if it did.
    misuse: Option<&'static str>,
}

impl<S> State<S> {
    fn new(value: Option<S>, timing_out: bool) -> Self {
        State { value, updated: false, removed: false, timing_out, misuse: None }
    }

    /// Whether the key has a state.
    pub fn exists(&self) -> bool {
        self.value.is_some()
    }

    /// The state, if set.
    pub fn get(&self) -> Option<&S> {
        self.value.as_ref()
    }

    /// Sets the state. After `remove`, and for a key that is timing out, it is a mistake (as
    /// Spark's `update` throws): the batch fails and the job stops with an error saying so.
    pub fn update(&mut self, value: S) {
        if self.removed {
            self.misuse.get_or_insert("the state was updated after it had been removed");
        } else if self.timing_out {
            self.misuse.get_or_insert("the state of a key that is timing out was updated");
        } else {
            self.value = Some(value);
            self.updated = true;
        }
    }

    /// Removes the state. Twice, and for a key that is timing out, it is a mistake that fails
    /// the batch (see [`update`](Self::update)).
    pub fn remove(&mut self) {
        if self.timing_out {
            self.misuse.get_or_insert("the state of a key that is timing out was removed");
        } else if self.removed {
            self.misuse.get_or_insert("the state was removed twice");
        } else {
            self.value = None;
            self.removed = true;
        }
    }

    /// Fails batch `t` when the mapping function misused the state: the operator's guard
    /// reports the error as the job's.
    fn check(&self, t: Time) {
        if let Some(what) = self.misuse {
            std::panic::panic_any(Error::IllegalState(format!(
                "the function of `map_with_state` misused a key's State at batch {t}: {what} (Spark's State refuses it too)"
            )));
        }
    }

    /// Whether this is the last call for a key that timed out.
    pub fn is_timing_out(&self) -> bool {
        self.timing_out
    }
}

type MapFn<K, V, S, M> = Arc<dyn Fn(Time, &K, Option<V>, &mut State<S>) -> Option<M> + Send + Sync>;

/// What `map_with_state` does: the mapping function, an initial state, an idle timeout (Spark's
/// `StateSpec`).
pub struct StateSpec<K, V, S, M> {
    func: MapFn<K, V, S, M>,
    initial: Vec<(K, S)>,
    timeout: Option<Duration>,
}

impl<K: Key, V: Data, S: Data, M: Data> StateSpec<K, V, S, M> {
    /// A spec whose function maps each record to exactly one output record.
    pub fn function(f: impl Fn(&K, Option<V>, &mut State<S>) -> M + Send + Sync + 'static) -> Self {
        Self::function_with_time(move |_t, k, v, s| Some(f(k, v, s)))
    }

    /// A spec whose function also sees the batch time and maps each record to zero or one record.
    pub fn function_with_time(
        f: impl Fn(Time, &K, Option<V>, &mut State<S>) -> Option<M> + Send + Sync + 'static,
    ) -> Self {
        StateSpec { func: Arc::new(f), initial: Vec::new(), timeout: None }
    }

    /// Starts from these states.
    pub fn initial_state(mut self, initial: Vec<(K, S)>) -> Self {
        self.initial = initial;
        self
    }

    /// Removes keys idle for longer than `idle` (after one last call with `is_timing_out`).
    pub fn timeout(mut self, idle: Duration) -> Self {
        self.timeout = Some(idle);
        self
    }
}

/// The states of one worker's keys with their last update time: serializable, for checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "K: Key, S: Data")]
pub(crate) struct TimedStates<K, S> {
    pub values: FxHashMap<K, (S, u64)>,
}

impl<K: Key, S> crate::exec::state::KeyedStates for TimedStates<K, S> {
    type Key = K;
    type Value = (S, u64);
    fn values(&mut self) -> &mut FxHashMap<K, (S, u64)> {
        &mut self.values
    }
}

impl<K, S> Default for TimedStates<K, S> {
    fn default() -> Self {
        TimedStates { values: FxHashMap::default() }
    }
}

/// What the stateful operator emits: mapped records, and (when asked for) the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Emitted<M, K, S> {
    Mapped(M),
    Snapshot(K, S),
}

/// The stream of mapped records of `map_with_state`, with access to the state snapshots.
pub struct MapWithStateDStream<K, S, M> {
    mapped: DStream<M>,
    all: DStream<Emitted<M, K, S>>,
    want_snapshots: Arc<AtomicBool>,
}

impl<K: Key, S: Data, M: Data> MapWithStateDStream<K, S, M> {
    /// The stream of mapped records, as a plain [`DStream`] (every stream operation is also
    /// callable on `self` directly, as on Spark's `MapWithStateDStream`).
    pub fn into_stream(self) -> DStream<M> {
        self.mapped
    }

    /// The whole state `(key, state)` after each batch.
    pub fn state_snapshots(&self) -> DStream<(K, S)> {
        self.want_snapshots.store(true, Ordering::Release);
        self.all.flat_map(|e| match e {
            Emitted::Snapshot(k, s) => Some((k, s)),
            Emitted::Mapped(_) => None,
        })
    }
}

impl<K, S, M> Deref for MapWithStateDStream<K, S, M> {
    type Target = DStream<M>;
    fn deref(&self) -> &DStream<M> {
        &self.mapped
    }
}

impl<K: Key, V: Data> DStream<(K, V)> {
    /// Maps every record with its key's state (Spark's `mapWithState`).
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use ember::{State, StateSpec};
    /// let out = run_on_batches(vec![vec![('a', 1), ('a', 2)], vec![('a', 3)]], |s| {
    ///     let spec = StateSpec::function(|_k: &char, v: Option<i32>, st: &mut State<i32>| {
    ///         let total = st.get().copied().unwrap_or(0) + v.unwrap_or(0);
    ///         st.update(total);
    ///         total
    ///     });
    ///     s.map_with_state(spec).into_stream()
    /// });
    /// assert_eq!(out, vec![vec![1, 3], vec![6]]);
    /// ```
    pub fn map_with_state<S: Data, M: Data>(&self, spec: StateSpec<K, V, S, M>) -> MapWithStateDStream<K, S, M> {
        let timeout = match spec.timeout.map(|d| whole_millis("the state timeout", d)).transpose() {
            Ok(t) => t,
            Err(e) => {
                self.ctx.defer(Error::declaration("map_with_state", e));
                None
            }
        };
        let want_snapshots = Arc::new(AtomicBool::new(false));
        let (func, initial, want) =
            (spec.func, Arc::new(std::sync::Mutex::new(spec.initial)), Arc::clone(&want_snapshots));
        self.ctx.note_stateful("map_with_state", self.slide);
        let all = self.kit("map_with_state", move |b| {
            let (func, want) = (Arc::clone(&func), Arc::clone(&want));
            // Initial states count as updated at the start: they time out after idling from there.
            let start = b.zero();
            let mine = TimedStates {
                values: owned(&crate::clock::lock(&initial), b.worker(), b.workers())
                    .into_iter()
                    .map(|(k, s)| (k, (s, start)))
                    .collect(),
            };
            let rescale = <TimedStates<K, S> as crate::exec::state::KeyedStates>::rescale();
            b.exchange_by_key().per_batch_state("map_with_state", mine, rescale, move |t, records, states, out| {
                let now = t.millis();
                for (k, v) in records {
                    let prev = states.values.remove(&k).map(|(s, _)| s);
                    let mut state = State::new(prev, false);
                    if let Some(m) = func(t, &k, Some(v), &mut state) {
                        out.push(Emitted::Mapped(m));
                    }
                    state.check(t);
                    // Stored with the batch time when updated, or whenever a timeout is set
                    // (`remove` cleared the value, so a removed key is not stored).
                    if let Some(s) = state.value {
                        let last = if state.updated || timeout.is_some() { now } else { 0 };
                        states.values.insert(k, (s, last));
                    }
                }
                if let Some(idle) = timeout {
                    let expired: Vec<K> = states
                        .values
                        .iter()
                        .filter(|(_, (_, last))| *last + idle < now)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in expired {
                        if let Some((s, _)) = states.values.remove(&k) {
                            let mut state = State::new(Some(s), true);
                            if let Some(m) = func(t, &k, None, &mut state) {
                                out.push(Emitted::Mapped(m));
                            }
                            state.check(t);
                        }
                    }
                }
                if want.load(Ordering::Acquire) {
                    out.extend(states.values.iter().map(|(k, (s, _))| Emitted::Snapshot(k.clone(), s.clone())));
                }
            })
        });
        let mapped = all.flat_map(|e| match e {
            Emitted::Mapped(m) => Some(m),
            Emitted::Snapshot(..) => None,
        });
        MapWithStateDStream { mapped, all, want_snapshots }
    }
}
