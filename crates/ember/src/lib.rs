//! # Ember: Spark Streaming's DStreams in Rust, on timely dataflow
//!
//! ```no_run
//! use ember::prelude::*;
//! # fn main() -> ember::Result<()> {
//! let conf = Conf::new().master("local[2]").app_name("NetworkWordCount");
//! let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
//! let lines = ssc.socket_text_stream("localhost", 9999);
//! let counts = lines
//!     .flat_map(|line: String| line.split_owned(' '))
//!     .map(|w| (w, 1u64))
//!     .reduce_by_key(|a, b| a + b);
//! counts.print();
//! ssc.start()?;
//! ssc.await_termination()?;
//! # Ok(()) }
//! ```
//!
//! ## The model
//!
//! A [`StreamingContext`] cuts its inputs into batches every batch interval. Batch time `t` is a
//! multiple of the interval in milliseconds since the epoch; batch `t` holds what arrived in
//! `[t - interval, t)` (named by its end time, as in Spark; Ember cuts exactly at the boundary
//! instead of at Spark's 200 ms block boundaries). The program declares input streams,
//! transformations and output operations ([`DStream`]); nothing runs until
//! [`start`](StreamingContext::start). Every output operation runs once per batch, in declaration
//! order, after the batch is complete.
//!
//! ## Execution
//!
//! ```text
//!  plan (Graph)  --start()-->  timely::execute: every worker builds the same dataflow
//!
//!  source ─▶ map/filter ─▶ combine ─exchange by key─▶ reduce ─▶ output stage ─▶ probe
//!  (capability per       (stream      (per batch, fires when the frontier      (completion,
//!   open batch)           through)     passes t)                                 listener)
//! ```
//!
//! The batch time is the timely timestamp. Sources hold a capability for the open batch and
//! downgrade it when the clock crosses the boundary; per-batch operators fire when their input
//! frontier passes `t`. `local[N]` runs N worker threads; `cluster` runs the same binary as P
//! processes connected over TCP, with process 0, worker 0 as the driver (print, `foreach_batch`,
//! listener events). Public signatures never name timely types; `exec` owns the translation.
//!
//! ## Declaring is infallible; mistakes surface at the next fallible call
//!
//! Operations return streams, not `Result`s, so pipelines read as in Spark. A mistake in a
//! declaration (a union of streams of different contexts, an operation added after start) is
//! logged at once and returned by the context's next fallible call: `start`, `run_batches`,
//! `await_termination`.
//!
//! ## Extension points
//!
//! - [`StreamingListener`]: batch, output-operation and receiver events.
//! - [`Clock`]: the system clock, or the [`ManualClock`] for tests ([`testing`]).
//! - [`Printable`]: how records print (`print`, `save_as_text_files`).
//! - `foreach_partition`: the scalable output to any external system.
//! - [`operator`]: the kit every operation is built from — `DStream::operator` with
//!   per-batch, stateful and driver-state primitives, `Sink`, `PlannedSource`, `Receiver`.
//!
//! ## Where Ember departs from Spark
//!
//! - Several contexts may run in one process (Spark allows one); `context.single_active` asks
//!   for Spark's rule.
//! - File streams report the number of lines read (Spark reports 0).
//! - `queue_stream` dequeues once per batch interval, whatever consumes it.
//! - Partitions are workers: `repartition(n)` spreads over at most the number of workers.
//! - A batch fails as a whole: a panic in a user function, on any worker, fails its batch (no
//!   output runs for it, no checkpoint at or after it commits) and stops the job with an error
//!   naming the operation and the batch. With a checkpoint directory, so does a failed output;
//!   Spark reports it and goes on, checkpointing past the batch whose output was lost.
//! - A checkpoint names the app and what its inputs read; recovering another job's checkpoint is
//!   an error unless `checkpoint.allow_changed_inputs` is set.

#![forbid(missing_docs)]

mod accumulator;
pub mod broadcast;
mod checkpoint;
pub mod clock;
pub mod conf;
mod context;
pub mod dstream;
mod error;
pub(crate) mod exec;
pub mod format;
mod handle;
pub mod listener;
pub mod plan;
mod print;
pub mod rate;
mod shared;
pub mod source;
pub mod storage;
pub mod testing;
pub mod text;
mod time;

use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use accumulator::Accumulator;
pub use broadcast::Broadcast;
pub use clock::{Clock, ManualClock, SystemClock};
pub use conf::Conf;
pub use context::{ContextState, StreamingContext};
pub use dstream::files::Roll;
pub use dstream::map_with_state::{State, StateSpec};
pub use dstream::output::{BatchCollector, OutputResult};
pub use dstream::rdd::Rdd;
pub use dstream::DStream;
pub use error::{Cause, Error, Result};
pub use exec::operator;
pub use handle::ContextHandle;
pub use listener::{BatchInfo, OutputOperationInfo, ReceiverInfo, SinkCommitInfo, StreamInputInfo, StreamingListener};
pub use print::Printable;
pub use source::generated::{GeneratedText, LineGenerator};
pub use source::queue::QueueHandle;
pub use time::{Time, Utc};

/// What a DStream can carry: owned, cloneable, sendable between threads, and serializable so it
/// can travel between processes.
pub trait Data: Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> Data for T {}

/// What can be a key of a keyed operation.
pub trait Key: Data + Hash + Eq {}
impl<T: Data + Hash + Eq> Key for T {}

#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The names a streaming program needs.
pub mod prelude {
    pub use crate::text::SplitOwned;
    pub use crate::{
        Clock, Conf, ContextState, DStream, Data, Key, Printable, Rdd, State, StateSpec, StreamingContext,
        StreamingListener, Time,
    };
    pub use std::time::Duration;
}

impl StreamingContext {
    /// Counters of the inputs: records received, lines skipped for length, lines with invalid
    /// UTF-8. On the driver of a job of several processes, over every process (the others' as of
    /// the batches they completed); elsewhere, this process's.
    pub fn input_counters(&self) -> InputCounters {
        counters_of(self.runtime_handle())
    }

    /// What was written to the checkpoint directory (zeros without one). On the driver of a job
    /// of several processes, the write-ahead-log counts are over every process.
    pub fn storage_counters(&self) -> StorageCounters {
        storage_of(self.runtime_handle())
    }
}

pub(crate) fn storage_of(rt: Option<std::sync::Arc<exec::runtime::Runtime>>) -> StorageCounters {
    let Some(rt) = rt else { return StorageCounters::default() };
    let mut c = rt.checkpoints.as_ref().map(|c| c.counters()).unwrap_or_default();
    if let Some(remote) = rt.mesh.get().filter(|m| m.is_driver()).map(|m| m.remote_counters()) {
        c.wal_blocks += remote.wal_blocks;
        c.wal_bytes += remote.wal_bytes;
    }
    c
}

pub(crate) fn counters_of(rt: Option<std::sync::Arc<exec::runtime::Runtime>>) -> InputCounters {
    use std::sync::atomic::Ordering::Relaxed;
    match rt {
        Some(rt) => {
            let remote = rt.mesh.get().filter(|m| m.is_driver()).map(|m| m.remote_counters()).unwrap_or_default();
            InputCounters {
                received: rt.received.load(Relaxed) + remote.received,
                oversized_skipped: rt.oversized.load(Relaxed) + remote.oversized,
                invalid_utf8: rt.invalid_utf8.load(Relaxed) + remote.invalid_utf8,
            }
        }
        None => InputCounters::default(),
    }
}

/// What a process wrote to the checkpoint directory: checkpoints and the write-ahead log.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StorageCounters {
    /// Checkpoints this process committed (the driver process commits them all).
    pub checkpoints: u64,
    /// The batch time of the last one, if any.
    pub last_checkpoint_time: Option<u64>,
    /// Its size: every state and position file it lists, in bytes.
    pub last_checkpoint_bytes: u64,
    /// Time this process spent writing its files and commit record, summed over its workers.
    pub last_checkpoint_write_ms: f64,
    /// Write-ahead-log blocks the receivers wrote (on the driver: of every process).
    pub wal_blocks: u64,
    /// Their bytes, framing included.
    pub wal_bytes: u64,
}

/// Counters of a process's inputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputCounters {
    /// Records taken in by receivers.
    pub received: u64,
    /// Lines skipped because they were longer than `receiver.max_line_bytes`.
    pub oversized_skipped: u64,
    /// Lines that were not valid UTF-8 (kept, with U+FFFD replacement characters).
    pub invalid_utf8: u64,
}
