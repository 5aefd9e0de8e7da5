//! Keyed windows: reduce_by_key_and_window (plain and inverse, with an optional filter),
//! count_by_value_and_window, group_by_key_and_window.
//!
//! Every batch is first reduced by key (combined on each worker, then exchanged by key), so each
//! worker keeps, for the keys it owns, one partial aggregate per key and batch — never raw records.
//! The plain form merges the panes of the window at each slide time. The inverse form keeps the
//! running aggregate of each key and updates it with Spark's algorithm (spec §4.4): the previous
//! window's value, minus the batches that left (`inv`), plus those that entered (`f`). Like
//! Spark's, it never drops a key by itself: a key whose value went back to the neutral value stays
//! (emitted with that value) unless the filter removes it. For windows shorter than their slide
//! (`W < S`), Ember subtracts exactly the previous window and adds exactly the current one; Spark
//! also adds and subtracts the batches in the gap between windows, which gives a key first seen in
//! a gap a wrong value.

use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::window::{Panes, WindowSpec};
use super::DStream;
use crate::time::Time;
use crate::{Data, Key};

/// The running aggregates of the inverse form on one worker: serializable, for checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "K: Key, V: Data")]
pub(crate) struct RunningWindow<K, V> {
    pub values: FxHashMap<K, V>,
}

impl<K: Key, V> crate::exec::state::KeyedStates for RunningWindow<K, V> {
    type Key = K;
    type Value = V;
    fn values(&mut self) -> &mut FxHashMap<K, V> {
        &mut self.values
    }
}

impl<K, V> Default for RunningWindow<K, V> {
    fn default() -> Self {
        RunningWindow { values: FxHashMap::default() }
    }
}

impl<K: Key, V: Data> DStream<(K, V)> {
    /// Reduces the values of each key over each window with `f` (associative and commutative):
    /// Spark's `reduceByKey -> window -> reduceByKey`.
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use std::time::Duration;
    /// let out = run_on_batches(vec![vec![('a', 1)], vec![('a', 2), ('b', 5)], vec![]], |s| {
    ///     s.reduce_by_key_and_window(|x: i32, y| x + y, Duration::from_secs(2), Duration::from_secs(1))
    /// });
    /// assert_eq!(sorted(out), vec![vec![('a', 1)], vec![('a', 3), ('b', 5)], vec![('a', 2), ('b', 5)]]);
    /// ```
    pub fn reduce_by_key_and_window(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        window: Duration,
        slide: Duration,
    ) -> DStream<(K, V)> {
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        self.reduce_by_key(move |a, b| f(a, b)).windowed(
            "reduce_by_key_and_window",
            window,
            slide,
            Panes::keyed,
            |records: Vec<(K, V)>| records,
            move |_b| {
                let f = Arc::clone(&g);
                Box::new(
                    move |t: Time, w: &WindowSpec, panes: &Panes<Vec<(K, V)>>, out: &mut Vec<(K, V)>, ends: bool| {
                        if !ends {
                            return;
                        }
                        let mut acc: FxHashMap<K, V> = FxHashMap::default();
                        for (k, v) in panes.in_window(t, w).flatten() {
                            merge(&mut acc, k.clone(), v.clone(), &*f);
                        }
                        out.extend(acc);
                    },
                )
            },
        )
    }

    /// The incremental form of [`reduce_by_key_and_window`](Self::reduce_by_key_and_window):
    /// `inv` undoes `f` (`inv(f(a, b), b) == a`). Keys stay in the window state, at the neutral
    /// value once their records left; see
    /// [`reduce_by_key_and_window_inverse_filtered`](Self::reduce_by_key_and_window_inverse_filtered)
    /// to drop them.
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use std::time::Duration;
    /// let out = run_on_batches(vec![vec![('a', 1)], vec![('b', 5)], vec![], vec![]], |s| {
    ///     s.reduce_by_key_and_window_inverse(|x: i32, y| x + y, |x, y| x - y, Duration::from_secs(2), Duration::from_secs(1))
    /// });
    /// assert_eq!(sorted(out), vec![vec![('a', 1)], vec![('a', 1), ('b', 5)], vec![('a', 0), ('b', 5)], vec![('a', 0), ('b', 0)]]);
    /// ```
    pub fn reduce_by_key_and_window_inverse(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inv: impl Fn(V, V) -> V + Send + Sync + 'static,
        window: Duration,
        slide: Duration,
    ) -> DStream<(K, V)> {
        self.inverse_window("reduce_by_key_and_window_inverse", Arc::new(f), Arc::new(inv), None, window, slide)
    }

    /// The incremental form with a filter: after each window, keys for which `keep` is false are
    /// dropped from the window state (and not emitted).
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use std::time::Duration;
    /// let out = run_on_batches(vec![vec![('a', 1)], vec![('b', 5)], vec![]], |s| {
    ///     s.reduce_by_key_and_window_inverse_filtered(|x: i32, y| x + y, |x, y| x - y, |_k, v| *v != 0, Duration::from_secs(2), Duration::from_secs(1))
    /// });
    /// assert_eq!(sorted(out), vec![vec![('a', 1)], vec![('a', 1), ('b', 5)], vec![('b', 5)]]);
    /// ```
    pub fn reduce_by_key_and_window_inverse_filtered(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inv: impl Fn(V, V) -> V + Send + Sync + 'static,
        keep: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        window: Duration,
        slide: Duration,
    ) -> DStream<(K, V)> {
        let keep: Arc<dyn Fn(&K, &V) -> bool + Send + Sync> = Arc::new(keep);
        self.inverse_window("reduce_by_key_and_window_inverse", Arc::new(f), Arc::new(inv), Some(keep), window, slide)
    }

    fn inverse_window(
        &self,
        op: &'static str,
        f: Arc<dyn Fn(V, V) -> V + Send + Sync>,
        inv: Arc<dyn Fn(V, V) -> V + Send + Sync>,
        keep: Option<Arc<dyn Fn(&K, &V) -> bool + Send + Sync>>,
        window: Duration,
        slide: Duration,
    ) -> DStream<(K, V)> {
        let g = Arc::clone(&f);
        self.reduce_by_key(move |a, b| g(a, b)).windowed(
            op,
            window,
            slide,
            Panes::keyed,
            |records: Vec<(K, V)>| records,
            move |b| {
                let (f, inv, keep) = (Arc::clone(&f), Arc::clone(&inv), keep.clone());
                let rescale = <RunningWindow<K, V> as crate::exec::state::KeyedStates>::rescale();
                let running = b.stateful(op, RunningWindow::<K, V>::default(), rescale);
                Box::new(
                    move |t: Time, w: &WindowSpec, panes: &Panes<Vec<(K, V)>>, out: &mut Vec<(K, V)>, ends: bool| {
                        let t = t.millis();
                        running.update(t, |running| {
                            if !ends {
                                return;
                            }
                            // Leaving: the previous window minus the current one; entering: the current
                            // window minus the previous one. (Spark takes (t-S-W, t-W] and (t-S, t],
                            // which for W < S both hold the gap between windows; a key first seen in
                            // the gap then gets a wrong value. Ember skips the gap.)
                            let leaving_to = t.saturating_sub(w.slide).min(t.saturating_sub(w.window));
                            let entering_from = t.saturating_sub(w.slide).max(t.saturating_sub(w.window));
                            let mut old: FxHashMap<K, V> = FxHashMap::default();
                            for (k, v) in panes.range(t.saturating_sub(w.slide + w.window), leaving_to).flatten() {
                                merge(&mut old, k.clone(), v.clone(), &*f);
                            }
                            let mut new: FxHashMap<K, V> = FxHashMap::default();
                            for (k, v) in panes.range(entering_from, t).flatten() {
                                merge(&mut new, k.clone(), v.clone(), &*f);
                            }
                            for (k, o) in old {
                                if let Some(v) = running.values.remove(&k) {
                                    running.values.insert(k, inv(v, o));
                                }
                            }
                            for (k, n) in new {
                                merge(&mut running.values, k, n, &*f);
                            }
                            if let Some(keep) = &keep {
                                running.values.retain(|k, v| keep(k, v));
                            }
                            out.extend(running.values.iter().map(|(k, v)| (k.clone(), v.clone())));
                        })
                    },
                )
            },
        )
    }

    /// The values of each key over each window: `(key, values)`.
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use std::time::Duration;
    /// let out = run_on_batches(vec![vec![('a', 1)], vec![('a', 2)]], |s| {
    ///     s.group_by_key_and_window(Duration::from_secs(2), Duration::from_secs(1)).map_values(|mut v: Vec<i32>| { v.sort(); v })
    /// });
    /// assert_eq!(out, vec![vec![('a', vec![1])], vec![('a', vec![1, 2])]]);
    /// ```
    pub fn group_by_key_and_window(&self, window: Duration, slide: Duration) -> DStream<(K, Vec<V>)> {
        self.group_by_key().windowed(
            "group_by_key_and_window",
            window,
            slide,
            Panes::keyed,
            |records: Vec<(K, Vec<V>)>| records,
            |_b| {
                Box::new(
                    |t: Time,
                     w: &WindowSpec,
                     panes: &Panes<Vec<(K, Vec<V>)>>,
                     out: &mut Vec<(K, Vec<V>)>,
                     ends: bool| {
                        if !ends {
                            return;
                        }
                        let mut acc: FxHashMap<K, Vec<V>> = FxHashMap::default();
                        for (k, vs) in panes.in_window(t, w).flatten() {
                            acc.entry(k.clone()).or_default().extend(vs.iter().cloned());
                        }
                        out.extend(acc);
                    },
                )
            },
        )
    }
}

impl<T: Key> DStream<T> {
    /// Counts each distinct record over each window; records whose count went to 0 are dropped
    /// (Spark's `countByValueAndWindow`, incremental).
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use std::time::Duration;
    /// let out = run_on_batches(vec![vec!['x', 'x'], vec!['y'], vec![]], |s| {
    ///     s.count_by_value_and_window(Duration::from_secs(2), Duration::from_secs(1))
    /// });
    /// assert_eq!(sorted(out), vec![vec![('x', 2)], vec![('x', 2), ('y', 1)], vec![('y', 1)]]);
    /// ```
    pub fn count_by_value_and_window(&self, window: Duration, slide: Duration) -> DStream<(T, u64)> {
        self.map(|x| (x, 1u64)).reduce_by_key_and_window_inverse_filtered(
            |a, b| a + b,
            |a, b| a - b,
            |_k, n| *n != 0,
            window,
            slide,
        )
    }
}

fn merge<K: Key, V>(acc: &mut FxHashMap<K, V>, k: K, v: V, f: &(dyn Fn(V, V) -> V + Send + Sync)) {
    match acc.remove(&k) {
        Some(a) => {
            acc.insert(k, f(a, v));
        }
        None => {
            acc.insert(k, v);
        }
    }
}
