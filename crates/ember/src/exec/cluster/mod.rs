//! The job's processes, connected. Ember opens the TCP connections between its processes itself
//! — with a deadline and a handshake that checks both ends run the same cluster — hands timely
//! one data connection per peer, and keeps a second, control connection per peer for what
//! timely does not carry:
//!
//! - heartbeats, so that a peer that died or hangs is noticed within `cluster.failure_timeout`
//!   (a closed connection at once, silence after the timeout);
//! - a process's failure, sent to every peer before it stops, so that all stop with the error
//!   that caused it, naming the process;
//! - `Bye`, sent by a process whose job ended cleanly, so its closing is not taken for a loss;
//! - the parts of each checkpoint a process wrote, to process 0, which commits a checkpoint only
//!   when every process has reported (a checkpoint is whole or absent);
//! - what makes the driver's services cover every process: each process's counters
//!   (accumulators, records received, write-ahead-log writes) as its batches complete, its
//!   rate-controlled inputs, its receivers' events; and from the driver, the backpressure
//!   estimator's rates for every process's receivers and direct streams.
//!
//! timely itself is fail-stop: when a peer's connection breaks, its network threads panic and
//! its workers follow. Those panics are expected once a peer is lost; the panic hook installed
//! here keeps them out of the output (they are logged at debug level), and the job stops with
//! the control connection's error instead.

mod connect;
mod mesh;

pub(crate) use connect::{connect, Membership};
pub(crate) use mesh::{is_connection_panic, Counters, Mesh, NetworkThreads, ReceiverEvent};
