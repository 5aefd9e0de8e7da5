//! Record-wise and per-partition operations: map, flat_map, filter, map_partitions, glom,
//! repartition, union.
//!
//! map, flat_map and filter stream through: records move on as soon as their source emits them,
//! without waiting for the batch to close. The per-partition operations (`map_partitions`, `glom`)
//! see one worker's share of a batch — Ember's partitions are its workers.

use std::sync::Arc;

use super::DStream;
use crate::exec::BuildEnv;
use crate::time::Time;
use crate::Data;

impl<T: Data> DStream<T> {
    /// Applies `f` to every record.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1, 2], vec![3]], |s| s.map(|x: i32| x * 10));
    /// assert_eq!(out, vec![vec![10, 20], vec![30]]);
    /// ```
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> DStream<U> {
        let f = Arc::new(f);
        self.kit("map", move |b| {
            let f = Arc::clone(&f);
            b.pipeline("map", move |_t, xs, out| out.extend(xs.drain(..).map(|x| f(x))))
        })
    }

    /// Applies `f` to every record and flattens the results. `f` gets the record by value and
    /// returns anything iterable that owns its items; a Rust closure cannot return an iterator
    /// that borrows its argument, so text is split with
    /// [`split_owned`](crate::text::SplitOwned::split_owned) (in the prelude) rather than `split`.
    ///
    /// ```
    /// # use ember::testing::*;
    /// use ember::prelude::*;
    /// let out = run_on_batches(vec![vec!["a b".to_string()]], |s| s.flat_map(|l: String| l.split_owned(' ')));
    /// assert_eq!(out, vec![vec!["a".to_string(), "b".to_string()]]);
    /// ```
    pub fn flat_map<U: Data, I>(&self, f: impl Fn(T) -> I + Send + Sync + 'static) -> DStream<U>
    where
        I: IntoIterator<Item = U> + 'static,
    {
        let f = Arc::new(f);
        self.kit("flat_map", move |b| {
            let f = Arc::clone(&f);
            b.pipeline("flat_map", move |_t, xs, out| xs.drain(..).for_each(|x| out.extend(f(x))))
        })
    }

    /// Keeps the records for which `p` is true.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1, 2, 3, 4]], |s| s.filter(|x: &i32| x % 2 == 0));
    /// assert_eq!(out, vec![vec![2, 4]]);
    /// ```
    pub fn filter(&self, p: impl Fn(&T) -> bool + Send + Sync + 'static) -> DStream<T> {
        let p = Arc::new(p);
        self.kit("filter", move |b| {
            let p = Arc::clone(&p);
            b.pipeline("filter", move |_t, xs, out| out.extend(xs.drain(..).filter(|x| p(x))))
        })
    }

    /// Calls `f` once per batch on each worker's share of the batch (Spark's `mapPartitions`,
    /// where a partition is a worker's share). `f` is called for empty shares too.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1, 2, 3]], |s| s.map_partitions(|xs: Vec<i32>| vec![xs.iter().sum::<i32>()]));
    /// assert_eq!(out, vec![vec![6]]);
    /// ```
    pub fn map_partitions<U: Data, I>(&self, f: impl Fn(Vec<T>) -> I + Send + Sync + 'static) -> DStream<U>
    where
        I: IntoIterator<Item = U> + 'static,
    {
        let f = Arc::new(f);
        self.per_partition("map_partitions", move |_t, xs, out| out.extend(f(xs)))
    }

    /// Turns each worker's share of a batch into one `Vec` (Spark's `glom`). Workers that hold no
    /// record of the batch contribute nothing.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1, 2], vec![]], |s| s.glom());
    /// assert_eq!(out, vec![vec![vec![1, 2]], vec![]]);
    /// ```
    pub fn glom(&self) -> DStream<Vec<T>> {
        self.per_partition("glom", |_t, xs, out| {
            if !xs.is_empty() {
                out.push(xs)
            }
        })
    }

    pub(crate) fn per_partition<U: Data>(
        &self,
        op: &'static str,
        f: impl Fn(Time, Vec<T>, &mut Vec<U>) + Send + Sync + 'static,
    ) -> DStream<U> {
        let f = Arc::new(f);
        self.kit(op, move |b| {
            let f = Arc::clone(&f);
            b.per_batch(op, move |t, xs, out| f(t, xs, out))
        })
    }

    /// Spreads the records evenly over `n` workers (at most the number of workers there are).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1, 2, 3]], |s| s.repartition(2));
    /// assert_eq!(out, vec![vec![1, 2, 3]]);
    /// ```
    pub fn repartition(&self, n: usize) -> DStream<T> {
        self.kit("repartition", move |b| b.round_robin_over(n))
    }

    /// The union of this stream and `other`, batch by batch.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1]], |s| s.union(&s.map(|x: i32| x + 1)));
    /// assert_eq!(out, vec![vec![1, 2]]);
    /// ```
    pub fn union(&self, other: &DStream<T>) -> DStream<T> {
        self.union_all(std::slice::from_ref(other))
    }

    pub(crate) fn union_all(&self, others: &[DStream<T>]) -> DStream<T> {
        for o in others {
            if let Some(e) = self.check_compatible("union", o.ctx.as_ref(), o.slide) {
                self.ctx.defer(e);
                return DStream::detached(Arc::clone(&self.ctx));
            }
        }
        let parents: Vec<usize> = std::iter::once(self.node).chain(others.iter().map(|o| o.node)).collect();
        let ids = parents.clone();
        let node = self.ctx.add_node(
            "union",
            parents,
            self.slide,
            Arc::new(move |env: &mut BuildEnv<'_>| {
                let streams = ids.iter().map(|&id| env.get::<T>(id)).collect::<crate::Result<Vec<_>>>()?;
                let out = env.concatenate(streams);
                env.put::<T>(out);
                Ok(())
            }),
        );
        DStream::from_node(Arc::clone(&self.ctx), node, self.slide)
    }
}
