//! # ember-zeromq: ZeroMQ input for Ember
//!
//! Spark's `ZeroMQUtils.createStream`: a SUB socket connected to a publisher, with topic filters,
//! as an Ember [`Receiver`]; and a PULL socket connected to a pusher. Built on `zeromq`, a pure
//! Rust ZeroMQ (ZMTP 3) that talks to libzmq peers (the tests publish with pyzmq).
//!
//! ```no_run
//! use ember::prelude::*;
//! use ember_zeromq::{zeromq_stream, ZmqSpec};
//! # fn main() -> ember::Result<()> {
//! let ssc = StreamingContext::new(Conf::new().master("local[2]"), Duration::from_secs(1))?;
//! let messages = zeromq_stream(&ssc, ZmqSpec::sub("tcp://127.0.0.1:5556", ["prices."]));
//! messages.text().map(|(_topic, body)| body).count().print();
//! ssc.start()?;
//! ssc.await_termination()
//! # }
//! ```
//!
//! - **Messages** are their frames ([`ZmqMessage::frames`]); with a SUB socket the first frame is
//!   the topic, as publishers send it. A subscription is a prefix of the first frame (`""`
//!   takes everything), as in ZeroMQ. [`ZeroMqStream::text`] gives `(topic, body)` as UTF-8
//!   (the first frame and the rest joined); a message that is not UTF-8 is skipped, counted in
//!   [`ZeroMqStream::bad_messages`] and logged.
//! - **Guarantees.** ZeroMQ has no acknowledgements: a publisher sends to the subscribers
//!   connected at that moment and drops the rest, so the stream is **at most once**. A message
//!   is stored (and written to the write-ahead log when `receiver.write_ahead_log.enable` is on)
//!   in blocks of what arrived together; with the log on, a message stored before a crash is
//!   not lost — it joins the first batch after recovery — but messages sent while the job is
//!   down are gone.
//! - **Failures.** When the connection breaks (the publisher stops or restarts), the receiver
//!   reports the error to listeners and connects again after `receiver.restart_delay`, while the
//!   context runs. A publisher that is not there yet is waited for the same way. A URL that is
//!   not a ZeroMQ endpoint (`tcp://host:port`, `ipc://path`) is reported at every start.

#![forbid(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ember::operator::{Receiver, ReceiverContext};
use ember::{DStream, StreamingContext};
use serde::{Deserialize, Serialize};
use zeromq::{PullSocket, Socket, SocketOptions, SocketRecv, SubSocket};

/// Which socket the receiver opens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Sub(Vec<String>),
    Pull,
}

/// What to connect to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZmqSpec {
    url: String,
    kind: Kind,
    connect_timeout: Duration,
    max_block: usize,
}

impl ZmqSpec {
    /// A SUB socket connected to the publisher at `url` (`tcp://host:port`), subscribed to each
    /// topic prefix in `topics` (Spark's `Subscribe`; give `[""]` for every message).
    pub fn sub<S: Into<String>>(url: impl Into<String>, topics: impl IntoIterator<Item = S>) -> Self {
        ZmqSpec::new(url, Kind::Sub(topics.into_iter().map(Into::into).collect()))
    }

    /// A PULL socket connected to the PUSH socket bound at `url`.
    pub fn pull(url: impl Into<String>) -> Self {
        ZmqSpec::new(url, Kind::Pull)
    }

    fn new(url: impl Into<String>, kind: Kind) -> Self {
        ZmqSpec { url: url.into(), kind, connect_timeout: Duration::from_secs(1), max_block: 1000 }
    }

    /// How long one attempt to connect waits for the peer (default 1 s); the receiver tries
    /// again after `receiver.restart_delay`.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The most messages stored as one block (default 1000): messages that arrived together are
    /// stored together, one write-ahead-log write per block.
    pub fn max_block(mut self, n: usize) -> Self {
        self.max_block = n.max(1);
        self
    }
}

/// One ZeroMQ message: its frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZmqMessage {
    /// The frames, in order (with SUB, the first is the topic).
    pub frames: Vec<Vec<u8>>,
}

impl ZmqMessage {
    /// The first frame (the topic, with SUB), or an empty one.
    pub fn topic(&self) -> &[u8] {
        self.frames.first().map_or(&[], Vec::as_slice)
    }
}

struct ZmqReceiver {
    spec: ZmqSpec,
}

/// Why receiving ended.
enum End {
    Stopped,
    Failed(String),
}

impl ZmqReceiver {
    /// Connects `socket`, then receives until the connection breaks or the context stops.
    async fn serve<S: Socket + SocketRecv>(&self, mut socket: S, ctx: &ReceiverContext<ZmqMessage>) -> End {
        let url = &self.spec.url;
        let connected = tokio::select! {
            r = socket.connect(url) => r.map_err(|e| End::Failed(format!("cannot connect to {url}: {e}"))),
            () = until_stopped(ctx) => Err(End::Stopped),
        };
        let end = match connected {
            Ok(()) => self.receive(&mut socket, ctx).await,
            Err(end) => end,
        };
        let _ = socket.close().await;
        end
    }

    async fn receive<S: SocketRecv>(&self, socket: &mut S, ctx: &ReceiverContext<ZmqMessage>) -> End {
        loop {
            // Wait for a message, take what else has arrived already, and store it all as one block.
            let mut next = Some(tokio::select! {
                m = socket.recv() => m,
                () = until_stopped(ctx) => return End::Stopped,
            });
            let (mut block, mut broke) = (Vec::new(), None);
            while let Some(m) = next.take() {
                match m {
                    Ok(m) => block.push(ZmqMessage { frames: m.into_vec().into_iter().map(|f| f.to_vec()).collect() }),
                    Err(e) => broke = Some(e),
                }
                if broke.is_none() && block.len() < self.spec.max_block {
                    next = tokio::time::timeout(Duration::ZERO, socket.recv()).await.ok();
                }
            }
            if let Err(e) = ctx.store_block(block) {
                return End::Failed(format!("cannot store received messages: {e}"));
            }
            if let Some(e) = broke {
                return End::Failed(format!("the connection to {} broke: {e}", self.spec.url));
            }
        }
    }

    async fn run(&self, ctx: &ReceiverContext<ZmqMessage>) -> End {
        let mut options = SocketOptions::default();
        options.connect_timeout(self.spec.connect_timeout);
        match &self.spec.kind {
            Kind::Sub(topics) => {
                let mut socket = SubSocket::with_options(options);
                for t in topics {
                    if let Err(e) = socket.subscribe(t).await {
                        return End::Failed(format!("cannot subscribe to `{t}`: {e}"));
                    }
                }
                self.serve(socket, ctx).await
            }
            Kind::Pull => self.serve(PullSocket::with_options(options), ctx).await,
        }
    }
}

/// Resolves when the receiver should return (the context stops or a restart was asked for).
async fn until_stopped(ctx: &ReceiverContext<ZmqMessage>) {
    while !ctx.should_return() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Receiver<ZmqMessage> for ZmqReceiver {
    fn name(&self) -> String {
        "ZeroMQReceiver".to_owned()
    }

    fn source(&self) -> String {
        match &self.spec.kind {
            Kind::Sub(topics) => format!("zeromq sub {} topics {}", self.spec.url, topics.join(",")),
            Kind::Pull => format!("zeromq pull {}", self.spec.url),
        }
    }

    fn on_start(&mut self, ctx: &ReceiverContext<ZmqMessage>) -> ember::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ember::Error::io("cannot start the ZeroMQ runtime", e))?;
        match rt.block_on(self.run(ctx)) {
            End::Stopped => Ok(()),
            End::Failed(m) => Err(ember::Error::Other(m)),
        }
    }
}

/// A ZeroMQ input stream: the messages, and the count of those [`text`](Self::text) skipped.
#[derive(Clone)]
pub struct ZeroMqStream {
    stream: DStream<ZmqMessage>,
    bad: Arc<AtomicU64>,
}

impl ZeroMqStream {
    /// The messages.
    pub fn stream(&self) -> &DStream<ZmqMessage> {
        &self.stream
    }

    /// `(topic, body)` as UTF-8: the first frame, and the other frames joined (a message of one
    /// frame has an empty body). A message that is not UTF-8 is skipped, counted and logged.
    pub fn text(&self) -> DStream<(String, String)> {
        let bad = Arc::clone(&self.bad);
        self.stream.flat_map(move |m: ZmqMessage| {
            let mut frames = m.frames.into_iter().map(String::from_utf8);
            let topic = frames.next().unwrap_or(Ok(String::new()));
            match (topic, frames.collect::<Result<String, _>>()) {
                (Ok(t), Ok(b)) => Some((t, b)),
                _ => {
                    if let Some(n) = ember::operator::count_skipped(&bad) {
                        tracing::warn!("zeromq: skipped a message that is not UTF-8; {n} skipped so far");
                    }
                    None
                }
            }
        })
    }

    /// Messages [`text`](Self::text) skipped.
    pub fn bad_messages(&self) -> u64 {
        self.bad.load(Ordering::Relaxed)
    }
}

/// The messages of a SUB or PULL socket (Spark's `ZeroMQUtils.createStream`).
pub fn zeromq_stream(ssc: &StreamingContext, spec: ZmqSpec) -> ZeroMqStream {
    let stream = ssc.receiver_stream(ZmqReceiver { spec });
    ZeroMqStream { stream, bad: ember::operator::SkipCounters::for_last_input(ssc) }
}
