//! `channel_stream`: records sent from the program through a channel (the Rust counterpart of
//! Spark's actor stream), received by a [`Receiver`] beside the driver worker.

use std::sync::mpsc;
use std::time::Duration;

use super::receiver::ReceiverPlacement;
use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::operator::{Receiver, ReceiverContext};
use crate::Data;

struct ChannelReceiver<T> {
    rx: Option<mpsc::Receiver<T>>,
}

impl<T: Data> Receiver<T> for ChannelReceiver<T> {
    fn name(&self) -> String {
        "ChannelReceiver".to_owned()
    }

    fn on_start(&mut self, ctx: &ReceiverContext<T>) -> crate::Result<()> {
        let Some(rx) = self.rx.as_ref() else { return Ok(()) };
        while !ctx.should_return() {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(first) => {
                    let mut block = vec![first];
                    block.extend(rx.try_iter().take(65_535));
                    ctx.store_many(block);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Every sender is gone: nothing more will come.
                    self.rx = None;
                    while !ctx.should_return() {
                        ctx.wait_for_stop();
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

impl StreamingContext {
    /// A stream fed through the returned sender; records sent while batch `t` is open belong to
    /// batch `t`. In cluster mode, the channel of process 0 is read.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let ssc = manual_context("local[2]");
    /// let (tx, stream) = ssc.channel_stream::<u64>();
    /// let out = stream.reduce(|a, b| a + b).collect_batches();
    /// ssc.start().unwrap();
    /// for i in 1..=100 { tx.send(i).unwrap(); }
    /// assert!(ssc.wait_for_received(100, std::time::Duration::from_secs(10)).unwrap());
    /// ssc.run_batches(1).unwrap();
    /// ssc.stop(false).unwrap();
    /// assert_eq!(out.batches()[0].1, vec![5050]);
    /// ```
    pub fn channel_stream<T: Data>(&self) -> (mpsc::Sender<T>, DStream<T>) {
        let (tx, rx) = mpsc::channel();
        let stream = self.receiver_stream_placed(ChannelReceiver { rx: Some(rx) }, ReceiverPlacement::Driver);
        (tx, stream)
    }
}
