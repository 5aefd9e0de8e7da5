//! Batch tracking and the listener bus (spec §9.1).
//!
//! Events are delivered asynchronously, in order, on one thread (`ember-listener-bus`) of the
//! process that plays the driver (process 0). Receiver events are posted by the process that runs
//! the receiver.
//!
//! Delays (Ember's definitions, close to Spark's): a batch is *submitted* when the clock crosses
//! its end time; its processing *starts* when it is submitted or when the previous batch completed,
//! whichever is later (stateless steps already ran while the batch was open); it *completes* when
//! every output operation of the batch has run on every worker. So the scheduling delay is the time
//! a batch waited for its predecessor, and the processing time is the rest.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::clock::lock;
use crate::time::Time;

/// Records of one input stream in one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInputInfo {
    /// The input stream's id (0, 1, ... in creation order).
    pub input_stream_id: usize,
    /// Records it contributed to the batch.
    pub num_records: u64,
    /// The stream's receiver rate limit (records/s) when the batch completed, if limited.
    pub rate_limit: Option<f64>,
    /// What the source reported of the batch (Spark's `StreamInputInfo.metadata`), e.g. a Kafka
    /// stream's offset ranges under `offsets` and a readable summary under `Description`.
    /// Values reported by several workers are joined with newlines.
    pub metadata: BTreeMap<String, String>,
}

/// One output operation's run in one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputOperationInfo {
    /// The batch.
    pub batch_time: Time,
    /// The operation's index in declaration order.
    pub id: usize,
    /// The operation's name (`print`, `foreach_batch`, ...).
    pub name: String,
    /// When it started on the driver worker (clock millis).
    pub start_time: Option<u64>,
    /// When it ended on the driver worker (clock millis).
    pub end_time: Option<u64>,
    /// Why it failed, if it did.
    pub failure_reason: Option<String>,
}

impl OutputOperationInfo {
    /// `end - start`, in milliseconds, once both are known.
    pub fn duration(&self) -> Option<u64> {
        Some(self.end_time?.saturating_sub(self.start_time?))
    }
}

/// What is known of one batch (Spark's `BatchInfo`).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchInfo {
    /// The batch time.
    pub batch_time: Time,
    /// Records per input stream.
    pub stream_input_info: Vec<StreamInputInfo>,
    /// When the batch was submitted (clock millis): when the clock reached the batch time, so
    /// usually the batch time itself, even when a busy driver worker posts the event later (a
    /// batch closed early by a graceful stop: the stop time). Scheduling delay counts from here.
    pub submission_time: u64,
    /// When processing started.
    pub processing_start_time: Option<u64>,
    /// When processing ended.
    pub processing_end_time: Option<u64>,
    /// The output operations, in declaration order.
    pub output_operation_infos: Vec<OutputOperationInfo>,
    /// Records each operation produced in this batch, over all workers and processes, by plan
    /// node id ([`crate::plan::PlanNode::id`]); empty unless the context tracks them
    /// ([`StreamingContext::track_operation_records`](crate::StreamingContext::track_operation_records)).
    pub operation_records: BTreeMap<usize, u64>,
}

impl BatchInfo {
    /// Records of all input streams.
    pub fn num_records(&self) -> u64 {
        self.stream_input_info.iter().map(|s| s.num_records).sum()
    }

    /// `processing_start - submission`, in milliseconds.
    pub fn scheduling_delay(&self) -> Option<u64> {
        Some(self.processing_start_time?.saturating_sub(self.submission_time))
    }

    /// `processing_end - processing_start`, in milliseconds.
    pub fn processing_delay(&self) -> Option<u64> {
        Some(self.processing_end_time?.saturating_sub(self.processing_start_time?))
    }

    /// `scheduling_delay + processing_delay`, in milliseconds.
    pub fn total_delay(&self) -> Option<u64> {
        Some(self.scheduling_delay()? + self.processing_delay()?)
    }
}

/// A receiver's status (Spark's `ReceiverInfo`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReceiverInfo {
    /// The input stream's id.
    pub stream_id: usize,
    /// The receiver's name.
    pub name: String,
    /// Whether it is receiving.
    pub active: bool,
    /// The global index of the worker it runs beside.
    pub worker: usize,
    /// The last error's message, empty if none.
    pub last_error_message: String,
    /// When the last error happened (clock millis), if any.
    pub last_error_time: Option<u64>,
    /// The receiver's current rate limit (records/s), if limited.
    pub rate_limit: Option<f64>,
}

/// Receives streaming events. Every method has a no-op default.
pub trait StreamingListener: Send + 'static {
    /// The context started; `time` is the clock reading.
    fn on_streaming_started(&mut self, _time: u64) {}
    /// A receiver started.
    fn on_receiver_started(&mut self, _info: &ReceiverInfo) {}
    /// A receiver reported an error (it keeps trying).
    fn on_receiver_error(&mut self, _info: &ReceiverInfo) {}
    /// A receiver stopped.
    fn on_receiver_stopped(&mut self, _info: &ReceiverInfo) {}
    /// A batch was submitted.
    fn on_batch_submitted(&mut self, _info: &BatchInfo) {}
    /// A batch started processing.
    fn on_batch_started(&mut self, _info: &BatchInfo) {}
    /// A batch completed (also when an output operation failed).
    fn on_batch_completed(&mut self, _info: &BatchInfo) {}
    /// An output operation started.
    fn on_output_operation_started(&mut self, _info: &OutputOperationInfo) {}
    /// An output operation completed.
    fn on_output_operation_completed(&mut self, _info: &OutputOperationInfo) {}
    /// A sink committed a batch and reported what writing it took (an Ember addition).
    fn on_sink_committed(&mut self, _info: &SinkCommitInfo) {}
}

/// What a sink reports when it committed a batch: its figures for the batch (for the sinks of
/// `ember-postgres` and `ember-redis`: `records`, `shares`, `skipped`, `retries`, `write_ms`),
/// summed over every worker of every process (each process sends its own to process 0).
#[derive(Debug, Clone, PartialEq)]
pub struct SinkCommitInfo {
    /// The batch.
    pub batch_time: Time,
    /// The output operation's name (`save_to_postgres`, ...).
    pub name: String,
    /// The sink's figures for the batch.
    pub metrics: std::collections::BTreeMap<String, u64>,
}

/// One event on the bus.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    StreamingStarted(u64),
    ReceiverStarted(ReceiverInfo),
    ReceiverError(ReceiverInfo),
    ReceiverStopped(ReceiverInfo),
    BatchSubmitted(BatchInfo),
    BatchStarted(BatchInfo),
    BatchCompleted(BatchInfo),
    OutputStarted(OutputOperationInfo),
    OutputCompleted(OutputOperationInfo),
    SinkCommitted(SinkCommitInfo),
}

pub(crate) type Listeners = Arc<Mutex<Vec<Box<dyn StreamingListener>>>>;

/// The thread that delivers events to listeners.
pub(crate) struct ListenerBus {
    tx: Mutex<Option<mpsc::Sender<Event>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

pub(crate) const BUS_THREAD: &str = "ember-listener-bus";

impl ListenerBus {
    pub fn start(listeners: Listeners) -> Self {
        let (tx, rx) = mpsc::channel::<Event>();
        let thread = std::thread::Builder::new()
            .name(BUS_THREAD.into())
            .spawn(move || {
                for event in rx {
                    let mut ls = lock(&listeners);
                    for l in ls.iter_mut() {
                        deliver(l.as_mut(), &event);
                    }
                }
            })
            .ok();
        ListenerBus { tx: Mutex::new(Some(tx)), thread: Mutex::new(thread) }
    }

    pub fn post(&self, event: Event) {
        if let Some(tx) = lock(&self.tx).as_ref() {
            let _ = tx.send(event);
        }
    }

    /// Delivers what was posted, then ends the bus thread.
    pub fn shutdown(&self) {
        lock(&self.tx).take();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

fn deliver(l: &mut dyn StreamingListener, e: &Event) {
    match e {
        Event::StreamingStarted(t) => l.on_streaming_started(*t),
        Event::ReceiverStarted(i) => l.on_receiver_started(i),
        Event::ReceiverError(i) => l.on_receiver_error(i),
        Event::ReceiverStopped(i) => l.on_receiver_stopped(i),
        Event::BatchSubmitted(i) => l.on_batch_submitted(i),
        Event::BatchStarted(i) => l.on_batch_started(i),
        Event::BatchCompleted(i) => l.on_batch_completed(i),
        Event::OutputStarted(i) => l.on_output_operation_started(i),
        Event::OutputCompleted(i) => l.on_output_operation_completed(i),
        Event::SinkCommitted(i) => l.on_sink_committed(i),
    }
}
