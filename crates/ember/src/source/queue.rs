//! `queue_stream`: batches from an in-memory queue, for tests (spec §2.4).
//!
//! At every batch the driver worker takes one queued batch (`one_at_a_time`) or all of them;
//! an empty queue gives an empty batch. Ember dequeues once per batch interval, whatever consumes
//! the stream (Spark dequeues only when something computes the stream at that time). In cluster
//! mode the queue of process 0 is read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::clock::lock;
use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::exec::source::{spread_source, SourceDriver};
use crate::time::Time;
use crate::Data;

/// A handle to push more batches into a queue stream while it runs.
pub struct QueueHandle<T> {
    queue: Arc<Mutex<VecDeque<Vec<T>>>>,
}

impl<T> Clone for QueueHandle<T> {
    fn clone(&self) -> Self {
        QueueHandle { queue: Arc::clone(&self.queue) }
    }
}

impl<T> QueueHandle<T> {
    /// Appends a batch to the queue.
    pub fn push(&self, batch: Vec<T>) {
        lock(&self.queue).push_back(batch);
    }

    /// Batches waiting in the queue.
    pub fn len(&self) -> usize {
        lock(&self.queue).len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct QueueDriver<T> {
    queue: Option<Arc<Mutex<VecDeque<Vec<T>>>>>,
    one_at_a_time: bool,
}

impl<T: Data> SourceDriver<T> for QueueDriver<T> {
    fn close(&mut self, _t: Time, out: &mut Vec<T>) {
        let Some(q) = &self.queue else { return };
        let mut q = lock(q);
        if self.one_at_a_time {
            out.extend(q.pop_front().unwrap_or_default());
        } else {
            for b in q.drain(..) {
                out.extend(b);
            }
        }
    }
}

impl StreamingContext {
    /// A stream that takes its batches from a queue: one queued batch per batch interval when
    /// `one_at_a_time`, else everything queued.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let ssc = manual_context("local[2]");
    /// let out = ssc.queue_stream(vec![vec![1, 2], vec![3]], true).collect_batches();
    /// ssc.run_batches(3).unwrap();
    /// ssc.stop(false).unwrap();
    /// let sizes: Vec<usize> = out.batches().iter().map(|(_, b)| b.len()).collect();
    /// assert_eq!(sizes, vec![2, 1, 0]);
    /// ```
    pub fn queue_stream<T: Data>(&self, batches: impl IntoIterator<Item = Vec<T>>, one_at_a_time: bool) -> DStream<T> {
        self.queue_stream_with_handle(batches, one_at_a_time).0
    }

    /// Like [`queue_stream`](Self::queue_stream), with a handle to push more batches later.
    pub fn queue_stream_with_handle<T: Data>(
        &self,
        batches: impl IntoIterator<Item = Vec<T>>,
        one_at_a_time: bool,
    ) -> (DStream<T>, QueueHandle<T>) {
        let queue = Arc::new(Mutex::new(batches.into_iter().collect::<VecDeque<_>>()));
        let handle = QueueHandle { queue: Arc::clone(&queue) };
        let stream = self.input_stream("queue stream", "a queue", move |env, id, name| {
            let q = env.is_driver().then(|| Arc::clone(&queue));
            spread_source(env, name, id, |_| Box::new(QueueDriver { queue: q, one_at_a_time }))
        });
        (stream, handle)
    }
}
