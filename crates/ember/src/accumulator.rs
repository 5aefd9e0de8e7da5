//! Recoverable accumulators: named counters whose values are part of every checkpoint.
//!
//! Spark's accumulators are not recoverable; Ember's are: a recovered job starts with the values
//! the checkpoint recorded. Updates made in output operations (`foreach_batch`, ...) count exactly
//! once across a recovery: the checkpoint records the values right after the outputs of its batch
//! ran, and the batches after it run again. Updates made inside transformations may also count
//! records of those later batches, since records stream through before their batch completes.
//! In a job of several processes, every process counts its own updates and reports its counts
//! to process 0 (the driver) as each batch completes; there `value()` is the sum over every
//! process, and the checkpoint records that sum. Elsewhere `value()` is the process's own count
//! since it started.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A named counter.
#[derive(Debug, Clone)]
pub struct Accumulator {
    pub(crate) name: String,
    /// This process's count (on the driver, with the value recovered from a checkpoint).
    pub(crate) value: Arc<AtomicI64>,
    /// On the driver: the counts the other processes reported.
    pub(crate) remote: Arc<AtomicI64>,
}

impl Accumulator {
    /// Adds `n`.
    pub fn add(&self, n: i64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value: on the driver, over every process (the others' counts as of the
    /// batches they completed).
    pub fn value(&self) -> i64 {
        self.value.load(Ordering::Relaxed) + self.remote.load(Ordering::Relaxed)
    }

    /// This process's own count.
    pub(crate) fn local(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }

    pub(crate) fn new(name: String) -> Self {
        Accumulator { name, value: Arc::default(), remote: Arc::default() }
    }

    /// The accumulator's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
