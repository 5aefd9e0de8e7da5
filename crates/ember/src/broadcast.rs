//! Broadcast variables: a read-only value for every closure on every worker of every process.
//!
//! `ssc.broadcast(value)` returns a [`Broadcast`] handle; closures capture a clone of it and read
//! [`value`](Broadcast::value). Within a process the value is shared, never copied per worker or
//! per batch. In a job of several processes, every process runs the program and so makes its own
//! value; when the job starts, the driver process's value (bincode-encoded) is handed to every
//! other process, which reads it instead of its own, so all workers read the driver's value, as
//! in Spark. After a recovery, `get_or_create`'s build function makes the variable anew (Spark
//! cannot recover broadcast variables from a checkpoint; in Ember they are simply declared again).
//!
//! ```
//! # use ember::testing::*;
//! let ssc = manual_context("local[2]");
//! let stop_words = ssc.broadcast(vec!["a".to_string(), "the".to_string()]);
//! let kept = ssc
//!     .queue_stream(vec![vec!["the".to_string(), "stream".to_string()]], true)
//!     .filter(move |w| !stop_words.value().contains(w))
//!     .collect_batches();
//! ssc.run_batches(1).unwrap();
//! ssc.stop(false).unwrap();
//! assert_eq!(kept.batches()[0].1, vec!["stream".to_string()]);
//! ```

use std::sync::{Arc, OnceLock};

use crate::context::StreamingContext;
use crate::error::{Error, Result};
use crate::exec::runtime::{Broadcasts, Slot};
use crate::Data;

/// A read-only value readable in any closure, on any worker and process (Spark's `Broadcast`).
pub struct Broadcast<T> {
    cell: Arc<Cell<T>>,
}

struct Cell<T> {
    id: usize,
    /// The value this process made.
    local: T,
    /// The driver process's value, once the job of several processes started.
    driver: OnceLock<T>,
}

impl<T> Clone for Broadcast<T> {
    fn clone(&self) -> Self {
        Broadcast { cell: Arc::clone(&self.cell) }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Broadcast<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcast").field("id", &self.cell.id).field("value", self.value()).finish()
    }
}

impl<T> Broadcast<T> {
    /// The value: the driver process's (the only one in a job of one process).
    pub fn value(&self) -> &T {
        self.cell.driver.get().unwrap_or(&self.cell.local)
    }

    /// The variable's number in its context, in declaration order (Spark's `id`).
    pub fn id(&self) -> usize {
        self.cell.id
    }
}

impl<T: Data + Sync> Slot for Cell<T> {
    fn encode(&self) -> Result<Vec<u8>> {
        bincode::serialize(&self.local).map_err(|e| {
            Error::declaration("broadcast", format!("broadcast variable {} does not encode: {e}", self.id))
        })
    }

    fn adopt(&self, bytes: &[u8]) -> Result<()> {
        let value: T = bincode::deserialize(bytes).map_err(|e| {
            Error::Internal(format!("broadcast variable {}: the driver's value does not decode here: {e}", self.id))
        })?;
        let _ = self.driver.set(value); // every worker of a process offers it; the first one sets it
        Ok(())
    }
}

impl StreamingContext {
    /// Makes `value` a broadcast variable (Spark's `sc.broadcast`): see [`Broadcast`]. Declare it
    /// before `start`, in the function given to `get_or_create` when the job checkpoints.
    pub fn broadcast<T: Data + Sync>(&self, value: T) -> Broadcast<T> {
        let all = self.extension::<Broadcasts>();
        let cell = all.add(|id| Arc::new(Cell { id, local: value, driver: OnceLock::new() }));
        Broadcast { cell }
    }
}
