//! Operations on `(key, value)` streams, per batch: map_values, flat_map_values, reduce_by_key,
//! combine_by_key, group_by_key.
//!
//! Keys are exchanged between workers by a hash of the key. `reduce_by_key` and `combine_by_key`
//! combine on each worker before the exchange (Spark's map-side combine), so only one partial
//! aggregate per key and worker travels.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::DStream;
use crate::time::Time;
use crate::{Data, Key};

impl<K: Key, V: Data> DStream<(K, V)> {
    /// Applies `f` to every value, keeping the keys.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('a', 1)]], |s| s.map_values(|v: i32| v + 1));
    /// assert_eq!(out, vec![vec![('a', 2)]]);
    /// ```
    pub fn map_values<W: Data>(&self, f: impl Fn(V) -> W + Send + Sync + 'static) -> DStream<(K, W)> {
        self.map(move |(k, v)| (k, f(v)))
    }

    /// Applies `f` to every value and pairs each result with the key.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('a', 2)]], |s| s.flat_map_values(|v: i32| 0..v));
    /// assert_eq!(out, vec![vec![('a', 0), ('a', 1)]]);
    /// ```
    pub fn flat_map_values<W: Data, I>(&self, f: impl Fn(V) -> I + Send + Sync + 'static) -> DStream<(K, W)>
    where
        I: IntoIterator<Item = W> + 'static,
        I::IntoIter: 'static,
    {
        self.flat_map(move |(k, v): (K, V)| f(v).into_iter().map(move |w| (k.clone(), w)))
    }

    /// Merges the values of each key with `f` (associative and commutative), per batch.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('a', 1), ('b', 1), ('a', 1)]], |s| s.reduce_by_key(|x: i32, y| x + y));
    /// assert_eq!(sorted(out), vec![vec![('a', 2), ('b', 1)]]);
    /// ```
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> DStream<(K, V)> {
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        self.combine("reduce_by_key", true, |v| v, move |a, b| f(a, b), move |a, b| g(a, b))
    }

    /// Spark's `combineByKey`: `create` makes a combiner from a key's first value in a partition,
    /// `merge_value` adds a value to it, `merge_combiners` merges two partitions' combiners.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('a', 1), ('a', 2)]], |s| {
    ///     s.combine_by_key(|v: i32| vec![v], |c: &mut Vec<i32>, v| c.push(v), |c: &mut Vec<i32>, d| c.extend(d))
    ///         .map_values(|mut c: Vec<i32>| { c.sort(); c })
    /// });
    /// assert_eq!(out, vec![vec![('a', vec![1, 2])]]);
    /// ```
    pub fn combine_by_key<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(&mut C, V) + Send + Sync + 'static,
        merge_combiners: impl Fn(&mut C, C) + Send + Sync + 'static,
    ) -> DStream<(K, C)> {
        let merge_value = move |mut c: C, v: V| {
            merge_value(&mut c, v);
            c
        };
        let merge_combiners = move |mut c: C, d: C| {
            merge_combiners(&mut c, d);
            c
        };
        self.combine("combine_by_key", true, create, merge_value, merge_combiners)
    }

    /// Gathers the values of each key, per batch: `(key, values)`.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('a', 1), ('a', 2)]], |s| s.group_by_key().map_values(|mut v: Vec<i32>| { v.sort(); v }));
    /// assert_eq!(out, vec![vec![('a', vec![1, 2])]]);
    /// ```
    pub fn group_by_key(&self) -> DStream<(K, Vec<V>)> {
        let push = |mut c: Vec<V>, v| {
            c.push(v);
            c
        };
        let extend = |mut c: Vec<V>, d: Vec<V>| {
            c.extend(d);
            c
        };
        self.combine("group_by_key", false, |v| vec![v], push, extend)
    }

    /// The one keyed per-batch aggregation behind the others. With `map_side`, each worker folds
    /// its share into combiners first and only one `(key, combiner)` per key and worker travels
    /// (Spark's map-side combine); without, the values travel and are folded after the exchange.
    pub(crate) fn combine<C: Data>(
        &self,
        op: &'static str,
        map_side: bool,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(C, V) -> C + Send + Sync + 'static,
        merge_combiners: impl Fn(C, C) -> C + Send + Sync + 'static,
    ) -> DStream<(K, C)> {
        let (create, merge_value, merge) = (Arc::new(create), Arc::new(merge_value), Arc::new(merge_combiners));
        self.kit(op, move |b| {
            let (create, merge_value) = (Arc::clone(&create), Arc::clone(&merge_value));
            let values = move |groups: &mut Groups<K, C>, data: &mut Vec<(K, V)>| {
                for (k, v) in data.drain(..) {
                    fold_into(groups, k, v, &*create, &*merge_value);
                }
            };
            if !map_side {
                return b.fold_per_batch_by_key(op, Groups::default, values, emit);
            }
            let merge = Arc::clone(&merge);
            let combiners = move |groups: &mut Groups<K, C>, data: &mut Vec<(K, C)>| {
                for (k, c) in data.drain(..) {
                    fold_into(groups, k, c, |c| c, &*merge);
                }
            };
            b.fold_per_batch("CombinePartial", Groups::default, values, emit).fold_per_batch_by_key(
                op,
                Groups::default,
                combiners,
                emit,
            )
        })
    }
}

/// A per-batch map of keys to combiners (a slot is empty only while it is being folded).
type Groups<K, C> = FxHashMap<K, Option<C>>;

/// Folds `x` into `k`'s combiner: `first` makes one, `more` adds to it.
fn fold_into<K: Key, X, C>(groups: &mut Groups<K, C>, k: K, x: X, first: impl Fn(X) -> C, more: impl Fn(C, X) -> C) {
    let slot = groups.entry(k).or_insert(None);
    *slot = Some(match slot.take() {
        Some(c) => more(c, x),
        None => first(x),
    });
}

/// Every key's combiner, when the batch fires.
fn emit<K: Key, C: Data>(_t: Time, groups: Groups<K, C>, out: &mut Vec<(K, C)>) {
    out.extend(groups.into_iter().filter_map(|(k, c)| Some((k, c?))));
}
