//! Operations on `(key, value)` streams, per batch: map_values, flat_map_values, reduce_by_key,
//! combine_by_key, group_by_key.
//!
//! Keys are exchanged between workers by a hash of the key. `reduce_by_key` and `combine_by_key`
//! combine on each worker before the exchange (Spark's map-side combine), so only one partial
//! aggregate per key and worker travels.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::DStream;
use crate::exec::batch::batch_unary;
use crate::exec::{by_key, local};
use crate::{Data, Key};

/// A per-batch map of keys to aggregates.
type Groups<K, C> = FxHashMap<K, C>;

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
        self.keyed("reduce_by_key", true, move || -> FoldFn<K, V, Option<V>> {
            let f = Arc::clone(&f);
            Box::new(move |groups, k, v| {
                let slot = groups.entry(k).or_insert(None);
                *slot = Some(match slot.take() {
                    Some(acc) => f(acc, v),
                    None => v,
                });
            })
        })
        .flat_map(|(k, v): (K, Option<V>)| v.map(|v| (k, v)))
        .internal()
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
        let (create, merge_value, merge_combiners) =
            (Arc::new(create), Arc::new(merge_value), Arc::new(merge_combiners));
        let slide = self.slide;
        self.derive("combine_by_key", move |env, s| {
            let grid = env.grid(slide);
            let (create, merge_value) = (Arc::clone(&create), Arc::clone(&merge_value));
            let partial = batch_unary(
                s,
                local(),
                "CombinePartial",
                grid,
                Arc::clone(&env.rt),
                Groups::<K, C>::default,
                move |groups, data: &mut Vec<(K, V)>| {
                    for (k, v) in data.drain(..) {
                        match groups.entry(k) {
                            Entry::Occupied(mut e) => merge_value(e.get_mut(), v),
                            Entry::Vacant(e) => {
                                e.insert(create(v));
                            }
                        }
                    }
                },
                |_t, groups, out| out.extend(groups),
            );
            let merge = Arc::clone(&merge_combiners);
            batch_unary(
                partial,
                by_key::<K, C>(),
                "Combine",
                grid,
                Arc::clone(&env.rt),
                Groups::<K, C>::default,
                move |groups, data: &mut Vec<(K, C)>| {
                    for (k, c) in data.drain(..) {
                        match groups.entry(k) {
                            Entry::Occupied(mut e) => merge(e.get_mut(), c),
                            Entry::Vacant(e) => {
                                e.insert(c);
                            }
                        }
                    }
                },
                |_t, groups, out| out.extend(groups),
            )
        })
    }

    /// Gathers the values of each key, per batch: `(key, values)`.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('a', 1), ('a', 2)]], |s| s.group_by_key().map_values(|mut v: Vec<i32>| { v.sort(); v }));
    /// assert_eq!(out, vec![vec![('a', vec![1, 2])]]);
    /// ```
    pub fn group_by_key(&self) -> DStream<(K, Vec<V>)> {
        self.keyed("group_by_key", false, || -> FoldFn<K, V, Vec<V>> {
            Box::new(|groups, k, v| groups.entry(k).or_default().push(v))
        })
    }

    /// A keyed per-batch aggregation: the fold made by `make` folds `(key, value)` into per-key
    /// aggregates of type `A`; with `combine`, each worker folds its share first and ships
    /// `(key, A)` partials, which `A::merge_partial` folds in after the exchange.
    fn keyed<A: Data + Default + Merge<V>>(
        &self,
        op: &'static str,
        combine: bool,
        make: impl Fn() -> FoldFn<K, V, A> + Send + Sync + 'static,
    ) -> DStream<(K, A)> {
        let make = Arc::new(make);
        let slide = self.slide;
        self.derive(op, move |env, s| {
            let grid = env.grid(slide);
            let rt = Arc::clone(&env.rt);
            if combine {
                let fold = make();
                let partial = batch_unary(
                    s,
                    local(),
                    "KeyedPartial",
                    grid,
                    Arc::clone(&rt),
                    Groups::<K, A>::default,
                    move |groups, data: &mut Vec<(K, V)>| {
                        for (k, v) in data.drain(..) {
                            fold(groups, k, v)
                        }
                    },
                    |_t, groups, out| out.extend(groups),
                );
                let fold = make();
                batch_unary(
                    partial,
                    by_key::<K, A>(),
                    op,
                    grid,
                    rt,
                    Groups::<K, A>::default,
                    move |groups, data: &mut Vec<(K, A)>| {
                        for (k, a) in data.drain(..) {
                            A::merge_partial(groups, k, a, &fold)
                        }
                    },
                    |_t, groups, out| out.extend(groups),
                )
            } else {
                let fold = make();
                batch_unary(
                    s,
                    by_key::<K, V>(),
                    op,
                    grid,
                    rt,
                    Groups::<K, A>::default,
                    move |groups, data: &mut Vec<(K, V)>| {
                        for (k, v) in data.drain(..) {
                            fold(groups, k, v)
                        }
                    },
                    |_t, groups, out| out.extend(groups),
                )
            }
        })
    }
}

/// Folds one `(key, value)` into the per-key aggregates.
type FoldFn<K, V, A> = Box<dyn Fn(&mut Groups<K, A>, K, V) + Send + Sync>;

/// How a partial aggregate shipped from another worker joins the local one.
trait Merge<V>: Sized {
    fn merge_partial<K: Key>(groups: &mut Groups<K, Self>, k: K, partial: Self, fold: &FoldFn<K, V, Self>);
}

impl<V: Data> Merge<V> for Option<V> {
    fn merge_partial<K: Key>(groups: &mut Groups<K, Self>, k: K, partial: Self, fold: &FoldFn<K, V, Self>) {
        if let Some(v) = partial {
            fold(groups, k, v)
        }
    }
}

impl<V: Data> Merge<V> for Vec<V> {
    fn merge_partial<K: Key>(groups: &mut Groups<K, Self>, k: K, partial: Self, _fold: &FoldFn<K, V, Self>) {
        groups.entry(k).or_default().extend(partial)
    }
}
