//! Recoverable accumulators: named counters whose values are part of every checkpoint.
//!
//! Spark's accumulators are not recoverable; Ember's are: a recovered job starts with the values
//! the checkpoint recorded. Updates made in output operations (`foreach_batch`, ...) count exactly
//! once across a recovery: the checkpoint records the values right after the outputs of its batch
//! ran, and the batches after it run again. Updates made inside transformations may also count
//! records of those later batches, since records stream through before their batch completes.
//! An accumulator counts in the process that updates it (in cluster mode, update it on the
//! driver: in `foreach_batch`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A named counter.
#[derive(Debug, Clone)]
pub struct Accumulator {
    pub(crate) name: String,
    pub(crate) value: Arc<AtomicI64>,
}

impl Accumulator {
    /// Adds `n`.
    pub fn add(&self, n: i64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn value(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }

    /// The accumulator's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
