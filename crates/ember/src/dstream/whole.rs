//! Whole-batch operations, with Spark's RDD semantics per batch: distinct, subtract,
//! intersection, cartesian, sort_by, sort_by_key, zip_with_index, take_ordered, top, sample,
//! key_by, partition_by, count_by_key, aggregate_by_key.
//!
//! They see a batch as a whole, across every worker of every process. The ordered ones
//! (`sort_by`, `sort_by_key`, `zip_with_index`, `take_ordered`, `top`) give a total order: worker
//! `i`'s records come before worker `i + 1`'s, and driver-placed outputs (`foreach_batch`,
//! `collect_batches`) gather the workers' shares in that order, as Spark's `collect` reads
//! partitions in order.

use std::sync::Arc;

use super::DStream;
use crate::operator::Batches;
use crate::time::Time;
use crate::{Data, Key};
use rustc_hash::FxHashSet;

/// Keys each worker samples from its share to place the bounds of a sort.
const SORT_SAMPLES: usize = 64;

impl<T: Data> DStream<T> {
    /// The distinct records of each batch.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1, 2, 1, 3, 2]], |s| s.distinct());
    /// assert_eq!(sorted(out), vec![vec![1, 2, 3]]);
    /// ```
    pub fn distinct(&self) -> DStream<T>
    where
        T: Key,
    {
        self.kit("distinct", |b| {
            b.per_batch("DistinctPartial", dedupe).exchange_by_value().per_batch("distinct", dedupe)
        })
    }

    /// The records of each batch that are not in `other`'s batch of the same time (duplicates of
    /// this stream are kept, as Spark's `subtract` keeps them).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_two(vec![vec![1, 2, 2, 3]], vec![vec![3, 4]], |a, b| a.subtract(&b));
    /// assert_eq!(sorted(out), vec![vec![1, 2, 2]]);
    /// ```
    pub fn subtract(&self, other: &DStream<T>) -> DStream<T>
    where
        T: Key,
    {
        self.kit2("subtract", other, |a, b| {
            a.exchange_by_value().per_batch_with("subtract", b.exchange_by_value(), |_t, keep, drop, out| {
                let drop: FxHashSet<T> = drop.into_iter().collect();
                out.extend(keep.into_iter().filter(|x| !drop.contains(x)))
            })
        })
    }

    /// The distinct records of each batch that are also in `other`'s batch of the same time.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_two(vec![vec![1, 2, 2, 3]], vec![vec![2, 3, 4]], |a, b| a.intersection(&b));
    /// assert_eq!(sorted(out), vec![vec![2, 3]]);
    /// ```
    pub fn intersection(&self, other: &DStream<T>) -> DStream<T>
    where
        T: Key,
    {
        self.kit2("intersection", other, |a, b| {
            a.exchange_by_value().per_batch_with("intersection", b.exchange_by_value(), |_t, a, b, out| {
                let b: FxHashSet<T> = b.into_iter().collect();
                out.extend(a.into_iter().collect::<FxHashSet<T>>().into_iter().filter(|x| b.contains(x)))
            })
        })
    }

    /// Every pair of a record of this batch and a record of `other`'s batch of the same time.
    /// `other`'s batch is sent to every worker: make it the smaller one.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_two(vec![vec![1, 2]], vec![vec!['a', 'b']], |a, b| a.cartesian(&b));
    /// assert_eq!(sorted(out), vec![vec![(1, 'a'), (1, 'b'), (2, 'a'), (2, 'b')]]);
    /// ```
    pub fn cartesian<W: Data>(&self, other: &DStream<W>) -> DStream<(T, W)> {
        self.kit2("cartesian", other, |a, b| {
            a.per_batch_with("cartesian", b.broadcast(), |_t, a, b, out| {
                for x in &a {
                    out.extend(b.iter().map(|y| (x.clone(), y.clone())));
                }
            })
        })
    }

    /// Each batch sorted by `key`, ascending or descending, in a total order across workers:
    /// records are placed on workers by ranges of keys (bounds taken from a sample of every
    /// worker's keys, as Spark's range partitioner does) and sorted there.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![3, 1, 2]], |s| s.sort_by(|x: &i32| *x, false));
    /// assert_eq!(out, vec![vec![3, 2, 1]]);
    /// ```
    pub fn sort_by<K: Data + Ord>(&self, key: impl Fn(&T) -> K + Send + Sync + 'static, ascending: bool) -> DStream<T> {
        let key = Arc::new(key);
        self.kit("sort_by", move |b| {
            let (k1, k2, k3) = (Arc::clone(&key), Arc::clone(&key), Arc::clone(&key));
            let peers = b.workers();
            let placed = with_summaries(
                b,
                "sort_by (sample)",
                move |x: &T| k1(x),
                sample_keys,
                move |_t, samples: Vec<Vec<K>>, share: Vec<T>, out: &mut Vec<(usize, T)>| {
                    let bounds = range_bounds(samples, peers);
                    out.extend(share.into_iter().map(|x| {
                        let k = k2(&x);
                        let below = bounds.partition_point(|b| *b < k);
                        (if ascending { below } else { peers - 1 - below }, x)
                    }));
                },
            );
            placed.exchange_to_worker(|(worker, _)| *worker).per_batch("sort_by", move |_t, placed, out| {
                let mut records: Vec<T> = placed.into_iter().map(|(_, x)| x).collect();
                if ascending {
                    records.sort_by_key(|x| k3(x));
                } else {
                    records.sort_by_key(|x| std::cmp::Reverse(k3(x)));
                }
                out.append(&mut records);
            })
        })
    }

    /// Pairs every record with its index in the batch, `(record, index)`: indices count worker
    /// 0's records first, then worker 1's, each worker's in its order (Spark's `zipWithIndex`,
    /// which counts partition by partition). After `sort_by` the index is the rank.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec!['a', 'b']], |s| s.zip_with_index());
    /// assert_eq!(out, vec![vec![('a', 0), ('b', 1)]]);
    /// ```
    pub fn zip_with_index(&self) -> DStream<(T, u64)> {
        self.kit("zip_with_index", |b| {
            let index = b.worker();
            with_summaries(
                b,
                "zip_with_index",
                |_: &T| (),
                |units: Vec<()>| units.len() as u64,
                move |_t, counts: Vec<u64>, share: Vec<T>, out: &mut Vec<(T, u64)>| {
                    let first: u64 = counts[..index].iter().sum();
                    out.extend(share.into_iter().zip(first..));
                },
            )
        })
    }

    /// The `n` smallest records of each batch, in ascending order (Spark's `takeOrdered`), held
    /// by the driver worker: every worker sends at most `n`.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![5, 1, 4, 2]], |s| s.take_ordered(2));
    /// assert_eq!(out, vec![vec![1, 2]]);
    /// ```
    pub fn take_ordered(&self, n: usize) -> DStream<T>
    where
        T: Ord,
    {
        self.first_n("take_ordered", n, false)
    }

    /// The `n` largest records of each batch, in descending order (Spark's `top`).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![5, 1, 4, 2]], |s| s.top(2));
    /// assert_eq!(out, vec![vec![5, 4]]);
    /// ```
    pub fn top(&self, n: usize) -> DStream<T>
    where
        T: Ord,
    {
        self.first_n("top", n, true)
    }

    fn first_n(&self, op: &'static str, n: usize, descending: bool) -> DStream<T>
    where
        T: Ord,
    {
        let keep = move |_t: Time, mut acc: Vec<T>, out: &mut Vec<T>| {
            if descending {
                acc.sort_by(|a, b| b.cmp(a));
            } else {
                acc.sort();
            }
            acc.truncate(n);
            out.append(&mut acc);
        };
        self.kit(op, move |b| b.per_batch(op, keep).to_driver().per_batch(op, keep))
    }

    /// A sample of each batch (Spark's `sample`): with `with_replacement`, each record appears a
    /// Poisson-distributed number of times with mean `fraction`; without, each record is kept
    /// with probability `fraction`. The draws are seeded by `seed`, the batch time and the
    /// worker, so a batch re-run after a recovery draws the same sample. A fraction below 0 (or
    /// above 1 without replacement) is an error at `start`, as Spark refuses it.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![(0..1000).collect::<Vec<i32>>()], |s| s.sample(false, 0.1, 7));
    /// assert!((50..150).contains(&out[0].len()));
    /// ```
    pub fn sample(&self, with_replacement: bool, fraction: f64, seed: u64) -> DStream<T> {
        let valid = if with_replacement { fraction >= 0.0 } else { (0.0..=1.0).contains(&fraction) };
        if !valid || !fraction.is_finite() {
            let range = if with_replacement { "at least 0" } else { "between 0 and 1 without replacement" };
            self.ctx
                .defer(crate::Error::declaration("sample", format!("the fraction must be {range}, not {fraction}")));
            return DStream::detached(Arc::clone(&self.ctx));
        }
        self.kit("sample", move |b| {
            let index = b.worker() as u64;
            b.per_batch("sample", move |t, records, out| {
                let mut rng = SplitMix(seed ^ t.millis().rotate_left(17) ^ index.rotate_left(43));
                for x in records {
                    let times = if with_replacement { rng.poisson(fraction) } else { u64::from(rng.unit() < fraction) };
                    for _ in 1..times {
                        out.push(x.clone());
                    }
                    if times > 0 {
                        out.push(x);
                    }
                }
            })
        })
    }

    /// Pairs every record with `f` of it, `(f(x), x)` (Spark's `keyBy`).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec!["ab".to_string()]], |s| s.key_by(|w: &String| w.len()));
    /// assert_eq!(out, vec![vec![(2, "ab".to_string())]]);
    /// ```
    pub fn key_by<K: Data>(&self, f: impl Fn(&T) -> K + Send + Sync + 'static) -> DStream<(K, T)> {
        self.map(move |x| (f(&x), x))
    }

    /// Calls `f` with the batch time and each worker's share of the batch, once per batch on
    /// every worker (Spark's `mapPartitions` with the batch time at hand). For the whole batch,
    /// use [`transform`](DStream::transform).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1], vec![2]], |s| {
    ///     s.map_partitions_with_time(|t, xs: Vec<i32>| xs.into_iter().map(move |x| (t.millis(), x)).collect::<Vec<_>>())
    /// });
    /// assert_eq!(out, vec![vec![(1000, 1)], vec![(2000, 2)]]);
    /// ```
    pub fn map_partitions_with_time<U: Data, I>(
        &self,
        f: impl Fn(Time, Vec<T>) -> I + Send + Sync + 'static,
    ) -> DStream<U>
    where
        I: IntoIterator<Item = U> + 'static,
    {
        let f = Arc::new(f);
        self.per_partition("map_partitions_with_time", move |t, xs, out| out.extend(f(t, xs)))
    }
}

impl<K: Key, V: Data> DStream<(K, V)> {
    /// Each batch sorted by key (Spark's `sortByKey`), in a total order across workers.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('b', 1), ('a', 2)]], |s| s.sort_by_key(true));
    /// assert_eq!(out, vec![vec![('a', 2), ('b', 1)]]);
    /// ```
    pub fn sort_by_key(&self, ascending: bool) -> DStream<(K, V)>
    where
        K: Ord,
    {
        self.sort_by(|(k, _): &(K, V)| k.clone(), ascending)
    }

    /// The records of each key on one worker: `hash(key) % n` of the first `n` workers (Spark's
    /// `partitionBy` with a hash partitioner of `n` partitions; Ember's partitions are workers).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('a', 1)]], |s| s.partition_by(4));
    /// assert_eq!(out, vec![vec![('a', 1)]]);
    /// ```
    pub fn partition_by(&self, n: usize) -> DStream<(K, V)> {
        self.kit("partition_by", move |b| {
            let n = n.clamp(1, b.workers()) as u64;
            b.exchange_to_worker(move |(k, _): &(K, V)| (crate::exec::key_hash(k) % n) as usize)
        })
    }

    /// How many records each key has in the batch, `(key, count)` (Spark's `countByKey`, as a
    /// stream rather than a map on the driver).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('a', 7), ('b', 1), ('a', 3)]], |s| s.count_by_key());
    /// assert_eq!(sorted(out), vec![vec![('a', 2), ('b', 1)]]);
    /// ```
    pub fn count_by_key(&self) -> DStream<(K, u64)> {
        self.combine("count_by_key", true, |_| 1u64, |n, _| n + 1, |a, b| a + b)
    }

    /// Spark's `aggregateByKey`: each key's values folded into `zero` with `seq`, the partial
    /// results of the workers merged with `comb`.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![('a', 3), ('a', 5)]], |s| {
    ///     s.aggregate_by_key((0, 0), |(n, sum), v: i32| (n + 1, sum + v), |a, b| (a.0 + b.0, a.1 + b.1))
    /// });
    /// assert_eq!(out, vec![vec![('a', (2, 8))]]);
    /// ```
    pub fn aggregate_by_key<C: Data + Sync>(
        &self,
        zero: C,
        seq: impl Fn(C, V) -> C + Send + Sync + 'static,
        comb: impl Fn(C, C) -> C + Send + Sync + 'static,
    ) -> DStream<(K, C)> {
        let seq = Arc::new(seq);
        let first = Arc::clone(&seq);
        self.combine("aggregate_by_key", true, move |v| first(zero.clone(), v), move |c, v| seq(c, v), comb)
    }
}

/// Per batch, every worker's summary of its share reaches every worker: `project` maps each
/// record as it streams in, `summarize` turns a worker's projections into its summary, and
/// `then` gets the summaries (indexed by worker) with the worker's own share.
fn with_summaries<'s, T: Data, P: Data, S: Data, U: Data>(
    b: Batches<'s, T>,
    op: &str,
    project: impl Fn(&T) -> P + 'static,
    summarize: impl Fn(Vec<P>) -> S + 'static,
    mut then: impl FnMut(Time, Vec<S>, Vec<T>, &mut Vec<U>) + 'static,
) -> Batches<'s, U> {
    let index = b.worker();
    let summaries = b
        .clone()
        .pipeline(op, move |_t, xs, out| out.extend(xs.iter().map(&project)))
        .per_batch(op, move |_t, projected, out| out.push((index, summarize(projected))))
        .broadcast();
    b.per_batch_with(op, summaries, move |t, share, mut sums, out| {
        sums.sort_by_key(|(worker, _)| *worker);
        then(t, sums.into_iter().map(|(_, s)| s).collect(), share, out)
    })
}

/// At most `SORT_SAMPLES` keys spread evenly over a worker's sorted keys.
fn sample_keys<K: Ord + Clone>(mut keys: Vec<K>) -> Vec<K> {
    keys.sort();
    if keys.len() <= SORT_SAMPLES {
        return keys;
    }
    (0..SORT_SAMPLES).map(|i| keys[i * keys.len() / SORT_SAMPLES].clone()).collect()
}

/// `peers - 1` keys that split the samples of every worker into `peers` ranges of about equal size.
fn range_bounds<K: Ord + Clone>(samples: Vec<Vec<K>>, peers: usize) -> Vec<K> {
    let mut all: Vec<K> = samples.into_iter().flatten().collect();
    all.sort();
    if all.is_empty() {
        return Vec::new();
    }
    (1..peers).map(|i| all[(i * all.len() / peers).min(all.len() - 1)].clone()).collect()
}

fn dedupe<T: Key>(_t: Time, records: Vec<T>, out: &mut Vec<T>) {
    out.extend(records.into_iter().collect::<FxHashSet<T>>());
}

/// A small seeded generator (SplitMix64) for `sample`.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A Poisson draw with mean `mean` (Knuth's method; `sample` means are small).
    fn poisson(&mut self, mean: f64) -> u64 {
        let limit = (-mean).exp();
        let (mut k, mut p) = (0u64, 1.0);
        loop {
            p *= self.unit();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
}
