//! Spark's `transform`: a function of whole batches, as RDDs.
//!
//! [`DStream::transform`] hands its function an [`Rdd`]: the stream's batch as one collection
//! distributed over every worker of every process, with Spark's RDD operations. The function runs
//! **once**, when the job is declared, and the operations it chains run on every batch: this is
//! where Ember departs from Spark, whose function runs on the driver every batch. Work that needs
//! the batch time goes into the functions the operations take
//! ([`map_partitions_with_time`](Rdd::map_partitions_with_time)); a value read on the driver per
//! batch becomes a stream of its own to join with.
//!
//! ```
//! # use ember::testing::*;
//! let out = run_on_batches(vec![vec![('b', 1), ('a', 2), ('b', 3)]], |s| {
//!     s.transform(|rdd| rdd.reduce_by_key(|x, y| x + y).sort_by_key(true))
//! });
//! assert_eq!(out, vec![vec![('a', 2), ('b', 4)]]);
//! ```

use super::DStream;
use crate::time::Time;
use crate::{Data, Key};

/// One batch of a stream as a distributed collection, inside [`DStream::transform`].
///
/// Its operations have Spark's RDD semantics and names; each is the per-batch operation of the
/// same name on [`DStream`], which documents it with an example.
pub struct Rdd<T> {
    pub(crate) stream: DStream<T>,
}

impl<T> Clone for Rdd<T> {
    fn clone(&self) -> Self {
        Rdd { stream: self.stream.clone() }
    }
}

impl<T> std::fmt::Debug for Rdd<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rdd").field("node", &self.stream.node).finish()
    }
}

impl<T: Data> DStream<T> {
    /// Spark's `transform`: `f` gets the batch as an [`Rdd`] and returns the batch of the new
    /// stream. `f` runs once, when the job is declared; what it chains runs every batch (see the
    /// [module docs](crate::dstream::rdd)).
    pub fn transform<U: Data>(&self, f: impl FnOnce(Rdd<T>) -> Rdd<U>) -> DStream<U> {
        f(Rdd { stream: self.clone() }).stream
    }

    /// Spark's `transformWith`: `f` gets the batches of this stream and `other` of the same time.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_two(vec![vec![1, 2, 3]], vec![vec![2]], |a, b| a.transform_with(b, |x, y| x.subtract(&y)));
    /// assert_eq!(sorted(out), vec![vec![1, 3]]);
    /// ```
    pub fn transform_with<W: Data, U: Data>(
        &self,
        other: &DStream<W>,
        f: impl FnOnce(Rdd<T>, Rdd<W>) -> Rdd<U>,
    ) -> DStream<U> {
        if let Some(e) = self.check_compatible("transform_with", other.ctx.as_ref(), other.slide) {
            self.ctx.defer(e);
            return DStream::detached(std::sync::Arc::clone(&self.ctx));
        }
        f(Rdd { stream: self.clone() }, Rdd { stream: other.clone() }).stream
    }
}

impl<T: Data> Rdd<T> {
    fn of<U>(stream: DStream<U>) -> Rdd<U> {
        Rdd { stream }
    }

    /// The stream of these batches (to use a stream operation inside `transform`).
    pub fn into_stream(self) -> DStream<T> {
        self.stream
    }

    /// See [`DStream::map`].
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> Rdd<U> {
        Self::of(self.stream.map(f))
    }

    /// See [`DStream::flat_map`].
    pub fn flat_map<U: Data, I>(&self, f: impl Fn(T) -> I + Send + Sync + 'static) -> Rdd<U>
    where
        I: IntoIterator<Item = U> + 'static,
    {
        Self::of(self.stream.flat_map(f))
    }

    /// See [`DStream::filter`].
    pub fn filter(&self, p: impl Fn(&T) -> bool + Send + Sync + 'static) -> Rdd<T> {
        Self::of(self.stream.filter(p))
    }

    /// See [`DStream::map_partitions`].
    pub fn map_partitions<U: Data, I>(&self, f: impl Fn(Vec<T>) -> I + Send + Sync + 'static) -> Rdd<U>
    where
        I: IntoIterator<Item = U> + 'static,
    {
        Self::of(self.stream.map_partitions(f))
    }

    /// See [`DStream::map_partitions_with_time`].
    pub fn map_partitions_with_time<U: Data, I>(&self, f: impl Fn(Time, Vec<T>) -> I + Send + Sync + 'static) -> Rdd<U>
    where
        I: IntoIterator<Item = U> + 'static,
    {
        Self::of(self.stream.map_partitions_with_time(f))
    }

    /// See [`DStream::union`].
    pub fn union(&self, other: &Rdd<T>) -> Rdd<T> {
        Self::of(self.stream.union(&other.stream))
    }

    /// See [`DStream::distinct`].
    pub fn distinct(&self) -> Rdd<T>
    where
        T: Key,
    {
        Self::of(self.stream.distinct())
    }

    /// See [`DStream::subtract`].
    pub fn subtract(&self, other: &Rdd<T>) -> Rdd<T>
    where
        T: Key,
    {
        Self::of(self.stream.subtract(&other.stream))
    }

    /// See [`DStream::intersection`].
    pub fn intersection(&self, other: &Rdd<T>) -> Rdd<T>
    where
        T: Key,
    {
        Self::of(self.stream.intersection(&other.stream))
    }

    /// See [`DStream::cartesian`].
    pub fn cartesian<W: Data>(&self, other: &Rdd<W>) -> Rdd<(T, W)> {
        Self::of(self.stream.cartesian(&other.stream))
    }

    /// See [`DStream::sort_by`].
    pub fn sort_by<K: Data + Ord>(&self, key: impl Fn(&T) -> K + Send + Sync + 'static, ascending: bool) -> Rdd<T> {
        Self::of(self.stream.sort_by(key, ascending))
    }

    /// See [`DStream::zip_with_index`].
    pub fn zip_with_index(&self) -> Rdd<(T, u64)> {
        Self::of(self.stream.zip_with_index())
    }

    /// See [`DStream::take_ordered`].
    pub fn take_ordered(&self, n: usize) -> Rdd<T>
    where
        T: Ord,
    {
        Self::of(self.stream.take_ordered(n))
    }

    /// See [`DStream::top`].
    pub fn top(&self, n: usize) -> Rdd<T>
    where
        T: Ord,
    {
        Self::of(self.stream.top(n))
    }

    /// See [`DStream::sample`].
    pub fn sample(&self, with_replacement: bool, fraction: f64, seed: u64) -> Rdd<T> {
        Self::of(self.stream.sample(with_replacement, fraction, seed))
    }

    /// See [`DStream::key_by`].
    pub fn key_by<K: Data>(&self, f: impl Fn(&T) -> K + Send + Sync + 'static) -> Rdd<(K, T)> {
        Self::of(self.stream.key_by(f))
    }

    /// See [`DStream::count`]: the batch's record count, one record.
    pub fn count(&self) -> Rdd<u64> {
        Self::of(self.stream.count())
    }

    /// See [`DStream::repartition`].
    pub fn repartition(&self, n: usize) -> Rdd<T> {
        Self::of(self.stream.repartition(n))
    }
}

impl<K: Key, V: Data> Rdd<(K, V)> {
    /// See [`DStream::map_values`].
    pub fn map_values<W: Data>(&self, f: impl Fn(V) -> W + Send + Sync + 'static) -> Rdd<(K, W)> {
        Self::of(self.stream.map_values(f))
    }

    /// See [`DStream::flat_map_values`].
    pub fn flat_map_values<W: Data, I>(&self, f: impl Fn(V) -> I + Send + Sync + 'static) -> Rdd<(K, W)>
    where
        I: IntoIterator<Item = W> + 'static,
        I::IntoIter: 'static,
    {
        Self::of(self.stream.flat_map_values(f))
    }

    /// See [`DStream::reduce_by_key`].
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> Rdd<(K, V)> {
        Self::of(self.stream.reduce_by_key(f))
    }

    /// See [`DStream::group_by_key`].
    pub fn group_by_key(&self) -> Rdd<(K, Vec<V>)> {
        Self::of(self.stream.group_by_key())
    }

    /// See [`DStream::combine_by_key`].
    pub fn combine_by_key<C: Data>(
        &self,
        create: impl Fn(V) -> C + Send + Sync + 'static,
        merge_value: impl Fn(&mut C, V) + Send + Sync + 'static,
        merge_combiners: impl Fn(&mut C, C) + Send + Sync + 'static,
    ) -> Rdd<(K, C)> {
        Self::of(self.stream.combine_by_key(create, merge_value, merge_combiners))
    }

    /// See [`DStream::aggregate_by_key`].
    pub fn aggregate_by_key<C: Data + Sync>(
        &self,
        zero: C,
        seq: impl Fn(C, V) -> C + Send + Sync + 'static,
        comb: impl Fn(C, C) -> C + Send + Sync + 'static,
    ) -> Rdd<(K, C)> {
        Self::of(self.stream.aggregate_by_key(zero, seq, comb))
    }

    /// See [`DStream::count_by_key`].
    pub fn count_by_key(&self) -> Rdd<(K, u64)> {
        Self::of(self.stream.count_by_key())
    }

    /// See [`DStream::join`].
    pub fn join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, W))> {
        Self::of(self.stream.join(&other.stream))
    }

    /// See [`DStream::left_outer_join`].
    pub fn left_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (V, Option<W>))> {
        Self::of(self.stream.left_outer_join(&other.stream))
    }

    /// See [`DStream::right_outer_join`].
    pub fn right_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Option<V>, W))> {
        Self::of(self.stream.right_outer_join(&other.stream))
    }

    /// See [`DStream::full_outer_join`].
    pub fn full_outer_join<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Option<V>, Option<W>))> {
        Self::of(self.stream.full_outer_join(&other.stream))
    }

    /// See [`DStream::cogroup`].
    pub fn cogroup<W: Data>(&self, other: &Rdd<(K, W)>) -> Rdd<(K, (Vec<V>, Vec<W>))> {
        Self::of(self.stream.cogroup(&other.stream))
    }

    /// See [`DStream::sort_by_key`].
    pub fn sort_by_key(&self, ascending: bool) -> Rdd<(K, V)>
    where
        K: Ord,
    {
        Self::of(self.stream.sort_by_key(ascending))
    }

    /// See [`DStream::partition_by`].
    pub fn partition_by(&self, n: usize) -> Rdd<(K, V)> {
        Self::of(self.stream.partition_by(n))
    }
}
