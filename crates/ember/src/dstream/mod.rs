//! DStreams: the declared streams and their operations.
//!
//! A [`DStream<T>`] is a handle on a node of the plan: a stream of batches of `T`, one batch per
//! time of its grid. Operations take `&self` and return a new stream, as in Spark, so one stream
//! can feed several operations. Each operation family lives in its own file:
//!
//! - [`map`]: map, flat_map, filter, map_partitions, glom, repartition, union
//! - [`rdd`]: transform and transform_with, whose functions see each batch as an [`Rdd`](rdd::Rdd)
//! - [`whole`]: whole-batch operations: distinct, subtract, intersection, cartesian, sort_by,
//!   sort_by_key, zip_with_index, take_ordered, top, sample, key_by, partition_by, count_by_key,
//!   aggregate_by_key, map_partitions_with_time
//! - [`aggregate`]: count, reduce, count_by_value
//! - [`pair`]: map_values, flat_map_values, reduce_by_key, combine_by_key, group_by_key
//! - [`join`]: join, left/right/full outer join, cogroup
//! - [`window`]: window, reduce_by_window (plain and inverse), count_by_window
//! - [`reduce_by_key_and_window`]: reduce_by_key_and_window (plain
//!   and inverse, with an optional filter), count_by_value_and_window, group_by_key_and_window
//! - [`update_state_by_key`] and [`map_with_state`]:
//!   state per key across batches
//! - [`output`]: print, foreach_batch, foreach_partition, save_as_text_files,
//!   collect_batches
//!
//! Within a batch, records are ordered by worker (as an RDD's by partition): driver-placed outputs
//! gather worker 0's share first, then worker 1's, each in its order. After a shuffle the order
//! within a worker is unspecified, as in Spark; the ordered operations (`sort_by`,
//! `zip_with_index`, `top`) give a total order. With `local[1]` it is the input order.

pub mod aggregate;
pub mod files;
pub mod join;
pub mod map;
pub mod map_with_state;
pub mod output;
pub mod pair;
pub mod rdd;
pub mod reduce_by_key_and_window;
pub mod update_state_by_key;
pub mod whole;
pub mod window;

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::Error;
use crate::exec::{Batches as Stream, BuildEnv};
use crate::operator::Batches;
use crate::shared::Shared;
use crate::Data;

/// A discretized stream: a stream of batches of `T`, one batch per batch time.
pub struct DStream<T> {
    pub(crate) ctx: Arc<Shared>,
    pub(crate) node: usize,
    pub(crate) slide: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for DStream<T> {
    fn clone(&self) -> Self {
        DStream { ctx: Arc::clone(&self.ctx), node: self.node, slide: self.slide, _t: PhantomData }
    }
}

impl<T> std::fmt::Debug for DStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DStream").field("node", &self.node).field("slide_ms", &self.slide).finish()
    }
}

impl<T: Data> DStream<T> {
    pub(crate) fn from_node(ctx: Arc<Shared>, node: usize, slide: u64) -> Self {
        DStream { ctx, node, slide, _t: PhantomData }
    }

    /// A stream that stands for a failed declaration: the error is already deferred, so the
    /// context will not start; the node only keeps later declarations type-correct.
    pub(crate) fn detached(ctx: Arc<Shared>) -> Self {
        let slide = ctx.batch_ms;
        let node = ctx.add_node(
            "detached",
            Vec::new(),
            slide,
            Arc::new(|_env: &mut BuildEnv<'_>| Err(Error::Internal("a failed declaration was built".into()))),
        );
        DStream::from_node(ctx, node, slide)
    }

    /// Asks for this stream's state to be checkpointed every `interval` (a multiple of its
    /// slide). Ember checkpoints all state of a job together, at the least common multiple of the
    /// intervals asked for (by default: the smallest multiple of every stateful stream's slide of
    /// at least 10 s).
    pub fn checkpoint(&self, interval: std::time::Duration) -> DStream<T> {
        match crate::time::whole_millis("the checkpoint interval", interval) {
            Ok(ms) => self.ctx.request_checkpoint_interval("checkpoint", ms, self.slide),
            Err(e) => self.ctx.defer(crate::Error::declaration("checkpoint", e)),
        }
        self.clone()
    }

    /// Refuses a declaration on this stream that a connector crate found wrong (a URL that does
    /// not parse, say): the context does not start, and `start` returns `error`.
    pub fn declaration_error(&self, error: Error) {
        self.ctx.defer(error);
    }

    /// Its context's value of type `T` (see [`StreamingContext::extension`](crate::StreamingContext::extension)).
    pub fn extension<E: Default + Send + Sync + 'static>(&self) -> Arc<E> {
        self.ctx.extension()
    }

    /// Its context's configuration (see [`StreamingContext::conf`](crate::StreamingContext::conf)).
    pub fn conf(&self) -> &crate::Conf {
        &self.ctx.settings.conf
    }

    /// Marks this stream's node as a part of the user operation that made it (see
    /// `Node::internal`).
    pub(crate) fn internal(self) -> Self {
        self.ctx.note_internal(self.node);
        self
    }

    /// The stream's slide: how often it produces a batch (the batch interval for non-window streams).
    pub fn slide_duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.slide)
    }

    /// Declares an operation built with the operator kit ([`crate::operator`]): `build` runs
    /// on every worker when the job starts, gets that worker's share of this stream as
    /// [`Batches`] and returns the operation's output. The operation is
    /// one node of the plan, named `name`, whatever operators `build` adds; state it keeps with
    /// [`per_batch_stateful`](crate::operator::Batches::per_batch_stateful) is checkpointed and
    /// recovered with the job's.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_batches(vec![vec![3, 1, 2]], |s| {
    ///     s.operator("sorted share", |b| b.per_batch("sort", |_t, mut xs: Vec<i32>, out| {
    ///         xs.sort();
    ///         out.extend(xs)
    ///     }))
    /// });
    /// assert_eq!(out, vec![vec![1, 2, 3]]);
    /// ```
    pub fn operator<U: Data>(
        &self,
        name: &str,
        build: impl for<'s> Fn(Batches<'s, T>) -> Batches<'s, U> + Send + Sync + 'static,
    ) -> DStream<U> {
        self.ctx.note_operator_slide(self.slide);
        self.kit(name, build)
    }

    /// Like [`operator`](Self::operator), with two input streams (same context and slide):
    /// `build` gets this worker's share of both.
    pub fn operator_with<W: Data, U: Data>(
        &self,
        name: &str,
        other: &DStream<W>,
        build: impl for<'s> Fn(Batches<'s, T>, Batches<'s, W>) -> Batches<'s, U> + Send + Sync + 'static,
    ) -> DStream<U> {
        self.ctx.note_operator_slide(self.slide);
        self.kit2(name, other, build)
    }

    /// Like [`operator_with`](Self::operator_with), for Ember's own operations.
    pub(crate) fn kit2<W: Data, U: Data>(
        &self,
        name: &str,
        other: &DStream<W>,
        build: impl for<'s> Fn(Batches<'s, T>, Batches<'s, W>) -> Batches<'s, U> + Send + Sync + 'static,
    ) -> DStream<U> {
        let slide = self.slide;
        self.derive2(name, other, move |env, a, b| {
            let kit = env.kit(slide);
            build(Batches::new(a, Rc::clone(&kit)), Batches::new(b, kit)).into_stream()
        })
    }

    /// Like [`operator`](Self::operator), for Ember's own operations (no slide to note).
    pub(crate) fn kit<U: Data>(
        &self,
        name: &str,
        build: impl for<'s> Fn(Batches<'s, T>) -> Batches<'s, U> + Send + Sync + 'static,
    ) -> DStream<U> {
        self.kit_with_slide(name, self.slide, build)
    }

    /// Like [`kit`](Self::kit), for an operation whose output has a slide of its own (a window):
    /// `build`'s operators fire on this stream's batches.
    pub(crate) fn kit_with_slide<U: Data>(
        &self,
        name: &str,
        slide: u64,
        build: impl for<'s> Fn(Batches<'s, T>) -> Batches<'s, U> + Send + Sync + 'static,
    ) -> DStream<U> {
        let parent = self.slide;
        self.derive_with_slide(name, slide, move |env, s| build(Batches::new(s, env.kit(parent))).into_stream())
    }

    /// Declares a stream of the given slide computed from this one by `build`, on every worker
    /// (the kit's operations are declared through it).
    pub(crate) fn derive_with_slide<U: Data>(
        &self,
        op: &str,
        slide: u64,
        build: impl for<'s> Fn(&mut BuildEnv<'s>, Stream<'s, T>) -> Stream<'s, U> + Send + Sync + 'static,
    ) -> DStream<U> {
        let parent = self.node;
        let node = self.ctx.add_node(
            op,
            vec![parent],
            slide,
            Arc::new(move |env: &mut BuildEnv<'_>| {
                let input = env.get::<T>(parent)?;
                let out = build(env, input);
                env.put::<U>(out);
                Ok(())
            }),
        );
        DStream::from_node(Arc::clone(&self.ctx), node, slide)
    }

    /// Declares a stream computed from this one and `other` (same context and slide required).
    pub(crate) fn derive2<W: Data, U: Data>(
        &self,
        op: &str,
        other: &DStream<W>,
        build: impl for<'s> Fn(&mut BuildEnv<'s>, Stream<'s, T>, Stream<'s, W>) -> Stream<'s, U> + Send + Sync + 'static,
    ) -> DStream<U> {
        if let Some(e) = self.check_compatible(op, other.ctx.as_ref(), other.slide) {
            self.ctx.defer(e);
            return DStream::detached(Arc::clone(&self.ctx));
        }
        let (a, b) = (self.node, other.node);
        let node = self.ctx.add_node(
            op,
            vec![a, b],
            self.slide,
            Arc::new(move |env: &mut BuildEnv<'_>| {
                let left = env.get::<T>(a)?;
                let right = env.get::<W>(b)?;
                let out = build(env, left, right);
                env.put::<U>(out);
                Ok(())
            }),
        );
        DStream::from_node(Arc::clone(&self.ctx), node, self.slide)
    }

    pub(crate) fn check_compatible(&self, op: &str, other: &Shared, other_slide: u64) -> Option<Error> {
        if !self.ctx.same_context(other) {
            return Some(Error::declaration(op, "the streams belong to different StreamingContexts"));
        }
        if self.slide != other_slide {
            return Some(Error::declaration(
                op,
                format!("the streams have different slide durations ({} ms and {} ms)", self.slide, other_slide),
            ));
        }
        None
    }
}
