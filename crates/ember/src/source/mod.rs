//! Input streams: queue, socket text, text files and the built-in generated text.
//!
//! Every input stream gets an id (0, 1, ... in creation order) and a display name such as
//! `socket text stream [0]`. Queue and file streams are read on the driver worker; receivers
//! (socket, custom [`Receiver`](crate::operator::Receiver)s) run beside worker `id % workers`, a channel stream's
//! beside the driver; the generated text is produced by every worker. Inputs read on one worker are spread evenly over all workers right after the source,
//! so the stateless steps run in parallel.

pub mod channel;
mod dataset;
pub mod direct;
pub mod file;
pub mod generated;
mod lines;
pub mod queue;
mod receiver;
pub mod socket;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::exec::{Batches, BuildEnv};
use crate::operator::SkipCounters;
use crate::Data;

impl StreamingContext {
    /// Declares an input stream whose operators `make` builds on each worker.
    pub(crate) fn input_stream<T: Data>(
        &self,
        kind: &str,
        source: &str,
        make: impl for<'s> Fn(&mut BuildEnv<'s>, usize, &str) -> Batches<'s, T> + Send + Sync + 'static,
    ) -> DStream<T> {
        self.input_stream_with_id(kind, source, make).0
    }

    /// Like `input_stream`, and returns the stream's input id; `source` says what the stream
    /// reads (a directory, `host:port`, topics), for the checkpoint's fingerprint.
    pub(crate) fn input_stream_with_id<T: Data>(
        &self,
        kind: &str,
        source: &str,
        make: impl for<'s> Fn(&mut BuildEnv<'s>, usize, &str) -> Batches<'s, T> + Send + Sync + 'static,
    ) -> (DStream<T>, usize) {
        let shared = &self.shared;
        let id = shared.add_input(kind, source);
        let name = format!("{kind} [{id}]");
        let label = name.clone();
        let node = shared.add_node(
            &name,
            Vec::new(),
            shared.batch_ms,
            Arc::new(move |env: &mut BuildEnv<'_>| {
                let s = make(env, id, &label);
                env.put::<T>(s);
                Ok(())
            }),
        );
        (DStream::from_node(Arc::clone(shared), node, shared.batch_ms), id)
    }
}

impl SkipCounters {
    /// The counter of the input stream declared last on `ssc` (call it right after declaring).
    pub fn for_last_input(ssc: &StreamingContext) -> Arc<AtomicU64> {
        let counter = Arc::new(AtomicU64::new(0));
        Self::register_for_last_input(ssc, Arc::clone(&counter));
        counter
    }

    /// Registers `counter` as the count of the input stream declared last on `ssc`.
    pub(crate) fn register_for_last_input(ssc: &StreamingContext, counter: Arc<AtomicU64>) {
        let plan = ssc.plan();
        let name = plan.inputs.last().map_or_else(|| "input".to_owned(), |i| format!("{} [{}]", i.name, i.id));
        ssc.extension::<SkipCounters>().register(name, counter);
    }
}
