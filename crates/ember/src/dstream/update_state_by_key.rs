//! `update_state_by_key`: a state per key, updated every batch (spec §3.3).
//!
//! In every batch, `f(new_values, previous_state)` is called for **every key that has state or new
//! values** — so the work grows with the number of keys, not with the batch (use
//! [`map_with_state`](super::map_with_state) to touch only the keys that changed). Returning `None`
//! removes the key; a key that comes back starts from no state. The stream emits the whole state
//! after each batch. Keys are partitioned over workers by hash; each worker keeps the state of its
//! keys in memory. Ember needs no checkpoint directory to run this (there is no lineage to cut),
//! but the state is only recoverable with one; a warning at start says so.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::DStream;
use crate::exec::key_hash;
use crate::{Data, Key};

/// The state of one worker's keys: serializable, so a checkpoint can snapshot and restore it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "K: Key, S: Data")]
pub(crate) struct StateMap<K, S> {
    pub values: FxHashMap<K, S>,
}

impl<K, S> Default for StateMap<K, S> {
    fn default() -> Self {
        StateMap { values: FxHashMap::default() }
    }
}

/// The pairs of `initial` whose keys this worker owns (the same rule as the key exchange).
impl<K: Key, S> crate::exec::state::KeyedStates for StateMap<K, S> {
    type Key = K;
    type Value = S;
    fn values(&mut self) -> &mut FxHashMap<K, S> {
        &mut self.values
    }
}

pub(crate) fn owned<K: Key, S: Clone>(initial: &[(K, S)], index: usize, peers: usize) -> FxHashMap<K, S> {
    initial.iter().filter(|(k, _)| key_hash(k) % peers as u64 == index as u64).cloned().collect()
}

impl<K: Key, V: Data> DStream<(K, V)> {
    /// Updates a state per key with `f(new_values, previous_state) -> new_state` every batch.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('a', 1)], vec![('b', 1)], vec![('a', 2)]], |s| {
    ///     s.update_state_by_key(|vs: Vec<i32>, state: Option<i32>| Some(state.unwrap_or(0) + vs.iter().sum::<i32>()))
    /// });
    /// assert_eq!(sorted(out), vec![vec![('a', 1)], vec![('a', 1), ('b', 1)], vec![('a', 3), ('b', 1)]]);
    /// ```
    pub fn update_state_by_key<S: Data>(
        &self,
        f: impl Fn(Vec<V>, Option<S>) -> Option<S> + Send + Sync + 'static,
    ) -> DStream<(K, S)> {
        self.update_state_by_key_with_initial(f, Vec::new())
    }

    /// Like [`update_state_by_key`](Self::update_state_by_key), starting from `initial` states.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('a', 1)], vec![]], |s| {
    ///     s.update_state_by_key_with_initial(|vs: Vec<i32>, st: Option<i32>| Some(st.unwrap_or(0) + vs.len() as i32), vec![('z', 10)])
    /// });
    /// assert_eq!(sorted(out), vec![vec![('a', 1), ('z', 10)], vec![('a', 1), ('z', 10)]]);
    /// ```
    pub fn update_state_by_key_with_initial<S: Data>(
        &self,
        f: impl Fn(Vec<V>, Option<S>) -> Option<S> + Send + Sync + 'static,
        initial: Vec<(K, S)>,
    ) -> DStream<(K, S)> {
        let (f, initial) = (Arc::new(f), Arc::new(std::sync::Mutex::new(initial)));
        self.ctx.note_stateful("update_state_by_key", self.slide);
        self.kit("update_state_by_key", move |b| {
            let f = Arc::clone(&f);
            let mine = StateMap { values: owned(&crate::clock::lock(&initial), b.worker(), b.workers()) };
            let rescale = <StateMap<K, S> as crate::exec::state::KeyedStates>::rescale();
            b.exchange_by_key().per_batch_state("update_state_by_key", mine, rescale, move |_t, records, state, out| {
                let mut new: FxHashMap<K, Vec<V>> = FxHashMap::default();
                records.into_iter().for_each(|(k, v)| new.entry(k).or_default().push(v));
                let mut old = std::mem::take(&mut state.values);
                let mut next = FxHashMap::with_capacity_and_hasher(old.len() + new.len(), Default::default());
                for (k, vs) in new {
                    let prev = old.remove(&k);
                    if let Some(s) = f(vs, prev) {
                        next.insert(k, s);
                    }
                }
                for (k, s) in old {
                    if let Some(s) = f(Vec::new(), Some(s)) {
                        next.insert(k, s);
                    }
                }
                state.values = next;
                out.extend(state.values.iter().map(|(k, s)| (k.clone(), s.clone())));
            })
        })
    }
}
