//! Whole-batch aggregates: count, reduce, count_by_value.
//!
//! Each worker aggregates its share first; only the partial results travel to the driver worker,
//! which combines them. `count` of an empty batch is `0`; `reduce` of an empty batch is an empty
//! batch (spec §3.1).

use std::sync::Arc;

use super::DStream;
use crate::{Data, Key};

impl<T: Data> DStream<T> {
    /// The number of records of each batch, as a one-record batch (`0` for an empty batch).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec!['a', 'b'], vec![]], |s| s.count());
    /// assert_eq!(out, vec![vec![2], vec![0]]);
    /// ```
    pub fn count(&self) -> DStream<u64> {
        self.kit("count", move |b| {
            let driver = b.is_driver();
            let some = |_t, n: u64, out: &mut Vec<u64>| out.extend((n > 0).then_some(n));
            b.fold_per_batch("CountPartial", || 0u64, |n, data: &mut Vec<T>| *n += data.drain(..).count() as u64, some)
                .to_driver()
                .fold_per_batch(
                    "Count",
                    || 0u64,
                    |n, data| *n += data.drain(..).sum::<u64>(),
                    move |_t, n, out| {
                        if driver {
                            out.push(n)
                        }
                    },
                )
        })
    }

    /// Reduces each batch with `f` (associative and commutative) to one record; an empty batch
    /// stays empty.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![1, 2, 3], vec![]], |s| s.reduce(|a: i32, b| a + b));
    /// assert_eq!(out, vec![vec![6], vec![]]);
    /// ```
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> DStream<T> {
        let f: Arc<dyn Fn(T, T) -> T + Send + Sync> = Arc::new(f);
        self.kit("reduce", move |b| {
            let absorb = |f: Arc<dyn Fn(T, T) -> T + Send + Sync>| {
                move |acc: &mut Option<T>, data: &mut Vec<T>| {
                    for x in data.drain(..) {
                        *acc = Some(match acc.take() {
                            Some(a) => f(a, x),
                            None => x,
                        });
                    }
                }
            };
            let emit = |_t, acc: Option<T>, out: &mut Vec<T>| out.extend(acc);
            b.fold_per_batch("ReducePartial", || None, absorb(Arc::clone(&f)), emit).to_driver().fold_per_batch(
                "Reduce",
                || None,
                absorb(Arc::clone(&f)),
                emit,
            )
        })
    }

    /// Counts each distinct record of each batch: `(record, count)` pairs.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec!['a', 'b', 'a']], |s| s.count_by_value());
    /// assert_eq!(sorted(out), vec![vec![('a', 2), ('b', 1)]]);
    /// ```
    pub fn count_by_value(&self) -> DStream<(T, u64)>
    where
        T: Key,
    {
        self.map(|x| (x, 1u64)).reduce_by_key(|a, b| a + b)
    }
}
