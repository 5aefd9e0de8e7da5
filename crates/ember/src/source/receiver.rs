//! Receiver streams (Spark's `receiverStream`): an input that pushes records from its own thread
//! through a [`Receiver`]; the machinery is the kit's ([`crate::operator::Receiver`]).

use std::sync::Mutex;

use crate::clock::lock;
use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::exec::receiver::receiver_source;
pub(crate) use crate::exec::receiver::ReceiverPlacement;
use crate::operator::Receiver;
use crate::Data;

impl StreamingContext {
    /// A stream of what `receiver` stores (Spark's `receiverStream`).
    ///
    /// ```
    /// # use ember::testing::*;
    /// use ember::operator::{Receiver, ReceiverContext};
    /// struct Numbers;
    /// impl Receiver<u32> for Numbers {
    ///     fn on_start(&mut self, ctx: &ReceiverContext<u32>) -> ember::Result<()> {
    ///         ctx.store_many((0..10).collect());
    ///         while !ctx.should_return() { ctx.wait_for_stop(); }
    ///         Ok(())
    ///     }
    /// }
    /// let ssc = manual_context("local[2]");
    /// let out = ssc.receiver_stream(Numbers).count().collect_batches();
    /// ssc.start().unwrap();
    /// assert!(ssc.wait_for_received(10, std::time::Duration::from_secs(10)).unwrap());
    /// ssc.run_batches(1).unwrap();
    /// ssc.stop(false).unwrap();
    /// assert_eq!(out.batches()[0].1, vec![10]);
    /// ```
    pub fn receiver_stream<T: Data, R: Receiver<T>>(&self, receiver: R) -> DStream<T> {
        self.receiver_stream_placed(receiver, ReceiverPlacement::RoundRobin)
    }

    pub(crate) fn receiver_stream_placed<T: Data, R: Receiver<T>>(
        &self,
        receiver: R,
        placement: ReceiverPlacement,
    ) -> DStream<T> {
        let (name, reads) = (receiver.name(), receiver.source());
        let receiver = Mutex::new(Some(receiver));
        self.input_stream("receiver stream", &reads, move |env, id, label| {
            let taken = match placement {
                ReceiverPlacement::RoundRobin if id % env.peers == env.index => lock(&receiver).take(),
                ReceiverPlacement::Driver if env.is_driver() => lock(&receiver).take(),
                _ => None,
            };
            receiver_source(env, id, label, &name, taken)
        })
    }
}
