//! The control connections of a running job: heartbeats, failures, checkpoint parts, the
//! services that cover every process, and the stop.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Membership;
use crate::clock::{lock, real_sleep};
use crate::error::{Error, Result};
use crate::exec::runtime::Runtime;

/// A message on a control connection.
#[derive(Debug, Serialize, Deserialize)]
enum Message {
    Heartbeat,
    /// The sender's job failed with this error at batch `at`; it is stopping.
    Failed {
        error: String,
        at: u64,
    },
    /// The sender's job ended cleanly; its connections close next.
    Bye,
    /// The parts of checkpoint `time` the sender wrote, all durable, and its accumulators' counts
    /// when `time` completed (sent to process 0 only).
    Parts {
        time: u64,
        parts: Vec<crate::checkpoint::Part>,
        accumulators: Vec<(String, i64)>,
    },
    /// The sender's counters as its latest batch completed (to process 0).
    Progress(Counters),
    /// The sender has a rate-controlled input `stream`; `capped`: `receiver.max_rate` caps it.
    Limited {
        stream: usize,
        capped: bool,
    },
    /// From process 0: the backpressure estimator's new rate of `stream`, before any cap.
    Rate {
        stream: usize,
        rate: f64,
    },
    /// From process 0: the job stops gracefully after batch `end` (every process ends there).
    Stop {
        end: u64,
    },
    /// To process 0: a graceful stop was asked here; process 0 picks the last batch.
    StopAsked,
    /// The sender's figures of a sink at batch `time` (`Sink::metrics`), to process 0.
    SinkMetrics {
        time: u64,
        key: String,
        name: String,
        figures: BTreeMap<String, u64>,
    },
    /// An event of one of the sender's receivers, for the driver's listeners.
    Receiver {
        kind: ReceiverEvent,
        info: crate::listener::ReceiverInfo,
    },
}

/// Which receiver event.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum ReceiverEvent {
    Started,
    Error,
    Stopped,
}

/// What a process counted since it started: its accumulators, its inputs, its write-ahead log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Counters {
    pub accumulators: Vec<(String, i64)>,
    pub received: u64,
    pub oversized: u64,
    pub invalid_utf8: u64,
    pub wal_blocks: u64,
    pub wal_bytes: u64,
}

impl Counters {
    /// This process's counters.
    pub fn of(rt: &Runtime) -> Counters {
        use std::sync::atomic::Ordering::Relaxed;
        let storage = rt.checkpoints.as_ref().map(|c| c.counters()).unwrap_or_default();
        Counters {
            accumulators: rt.accumulators.iter().map(|a| (a.name.clone(), a.local())).collect(),
            received: rt.received.load(Relaxed),
            oversized: rt.oversized.load(Relaxed),
            invalid_utf8: rt.invalid_utf8.load(Relaxed),
            wal_blocks: storage.wal_blocks,
            wal_bytes: storage.wal_bytes,
        }
    }
}

/// What process 0 holds of checkpoint `t`: each other process's parts and accumulator counts.
type Reported = std::collections::BTreeMap<usize, (Vec<crate::checkpoint::Part>, Vec<(String, i64)>)>;

fn send(s: &mut TcpStream, m: &Message) -> std::io::Result<()> {
    let body = bincode::serialize(m).map_err(std::io::Error::other)?;
    let mut b = Vec::with_capacity(4 + body.len());
    b.extend_from_slice(&(body.len() as u32).to_le_bytes());
    b.extend_from_slice(&body);
    s.write_all(&b)
}

fn receive(s: &mut TcpStream) -> std::io::Result<Message> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > 1 << 24 {
        return Err(std::io::Error::other(format!("a control message of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    bincode::deserialize(&body).map_err(std::io::Error::other)
}

/// The control connections of a running job.
pub(crate) struct Mesh {
    me: Membership,
    writers: Vec<Option<Mutex<TcpStream>>>,
    closing: AtomicBool,
    /// This process's job failed (it told its peers).
    failed: AtomicBool,
    /// The first peer failure seen, for workers whose timely connection broke.
    lost: Mutex<Option<Error>>,
    /// On process 0: the checkpoint parts each other process reported, by checkpoint time.
    parts: Mutex<std::collections::BTreeMap<u64, Reported>>,
    /// On process 0: each other process's latest counters.
    counters: Mutex<std::collections::BTreeMap<usize, Counters>>,
    /// The peers that said goodbye (their last reports are in).
    done: Mutex<std::collections::BTreeSet<usize>>,
    /// On process 0: the rate-controlled inputs of the other processes (and whether capped).
    limited: Mutex<std::collections::BTreeMap<usize, bool>>,
    changed: Condvar,
    rt: Weak<Runtime>,
}

impl Mesh {
    /// Starts watching the control connections: a reader per peer and one heartbeat thread.
    pub fn start(me: Membership, control: Vec<Option<TcpStream>>, rt: &Arc<Runtime>) -> Result<Arc<Mesh>> {
        let mut writers = Vec::with_capacity(control.len());
        let mut readers = Vec::new();
        for (p, s) in control.into_iter().enumerate() {
            match s {
                None => writers.push(None),
                Some(s) => {
                    let reader = s.try_clone().map_err(|e| Error::Cluster(format!("control connection: {e}")))?;
                    let _ = reader.set_read_timeout(Some(me.failure_timeout));
                    let _ = s.set_write_timeout(Some(me.failure_timeout));
                    readers.push((p, reader));
                    writers.push(Some(Mutex::new(s)));
                }
            }
        }
        let mesh = Arc::new(Mesh {
            me,
            writers,
            closing: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            lost: Mutex::new(None),
            parts: Mutex::new(std::collections::BTreeMap::new()),
            counters: Mutex::new(std::collections::BTreeMap::new()),
            limited: Mutex::new(std::collections::BTreeMap::new()),
            done: Mutex::new(std::collections::BTreeSet::new()),
            changed: Condvar::new(),
            rt: Arc::downgrade(rt),
        });
        for (p, reader) in readers {
            let m = Arc::clone(&mesh);
            std::thread::Builder::new()
                .name(format!("ember:peer-{p}"))
                .spawn(move || m.watch(p, reader))
                .map_err(|e| Error::Cluster(format!("starting a control thread: {e}")))?;
        }
        let m = Arc::downgrade(&mesh);
        let beat = (mesh.me.failure_timeout / 4).max(Duration::from_millis(10));
        std::thread::Builder::new()
            .name("ember:heartbeat".into())
            .spawn(move || loop {
                real_sleep(beat);
                let Some(m) = m.upgrade() else { return };
                if m.closing.load(Ordering::Acquire) {
                    return;
                }
                m.broadcast(&Message::Heartbeat);
            })
            .map_err(|e| Error::Cluster(format!("starting the heartbeat thread: {e}")))?;
        Ok(mesh)
    }

    fn broadcast(&self, m: &Message) {
        for w in self.writers.iter().flatten() {
            let _ = send(&mut lock(w), m);
        }
    }

    /// Reads peer `p`'s control connection until it ends.
    fn watch(&self, p: usize, mut s: TcpStream) {
        let (lost, at) = loop {
            match receive(&mut s) {
                Ok(Message::Heartbeat) => {}
                Ok(Message::Bye) => {
                    lock(&self.done).insert(p);
                    self.changed.notify_all();
                    return;
                }
                Ok(Message::Parts { time, parts, accumulators }) => {
                    lock(&self.parts).entry(time).or_default().insert(p, (parts, accumulators));
                    self.changed.notify_all();
                    if let Some(rt) = self.rt.upgrade() {
                        rt.wake_workers();
                    }
                }
                Ok(Message::Progress(counters)) => self.progress(p, counters),
                Ok(Message::SinkMetrics { time, key, name, figures }) => {
                    if let Some(rt) = self.rt.upgrade() {
                        rt.report_sink(time, &key, &name, figures);
                    }
                }
                Ok(Message::Limited { stream, capped }) => {
                    lock(&self.limited).insert(stream, capped);
                }
                Ok(Message::Stop { end }) => {
                    if let Some(rt) = self.rt.upgrade() {
                        rt.request_stop_with_checkpoint(end);
                    }
                }
                Ok(Message::StopAsked) => {
                    if let Some(rt) = self.rt.upgrade() {
                        rt.stop_gracefully();
                    }
                }
                Ok(Message::Rate { stream, rate }) => {
                    if let Some(rt) = self.rt.upgrade() {
                        rt.apply_rate(stream, rate);
                    }
                }
                Ok(Message::Receiver { kind, info }) => {
                    if let Some(rt) = self.rt.upgrade() {
                        rt.post(match kind {
                            ReceiverEvent::Started => crate::listener::Event::ReceiverStarted(info),
                            ReceiverEvent::Error => crate::listener::Event::ReceiverError(info),
                            ReceiverEvent::Stopped => crate::listener::Event::ReceiverStopped(info),
                        });
                    }
                }
                Ok(Message::Failed { error, at }) => {
                    break (format!("{} failed: {error}", self.me.peer(p)), Some(at));
                }
                Err(e) => {
                    if self.closing.load(Ordering::Acquire) {
                        return;
                    }
                    let why = match e.kind() {
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
                            "its connection closed (the process exited or was killed)".to_owned()
                        }
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => format!(
                            "it sent nothing for {:.1} s (cluster.failure_timeout)",
                            self.me.failure_timeout.as_secs_f64()
                        ),
                        _ => e.to_string(),
                    };
                    break (format!("lost {}: {why}", self.me.peer(p)), None);
                }
            }
        };
        let e = Error::Cluster(lost);
        lock(&self.lost).get_or_insert_with(|| e.clone());
        self.changed.notify_all();
        if let Some(rt) = self.rt.upgrade() {
            // A failed peer says which batch failed; a lost one, everything after what completed
            // (its parts of earlier checkpoints are already reported and durable).
            rt.fail_batch(at.unwrap_or(rt.completed() + rt.batch_ms), e);
            rt.wake_workers();
        }
    }

    /// Whether this is process 0, the driver's.
    pub fn is_driver(&self) -> bool {
        self.me.process == 0
    }

    /// Sends `m` to process 0.
    fn to_driver(&self, m: &Message) {
        if let Some(Some(w)) = self.writers.first() {
            if let Err(e) = send(&mut lock(w), m) {
                tracing::debug!("reporting to process 0: {e}");
            }
        }
    }

    /// Reports to process 0 the parts of checkpoint `t` this process wrote, with its
    /// accumulators' counts.
    pub fn send_parts(&self, t: u64, parts: Vec<crate::checkpoint::Part>, accumulators: Vec<(String, i64)>) {
        self.to_driver(&Message::Parts { time: t, parts, accumulators });
    }

    /// Reports this process's figures of a sink at batch `t` to process 0.
    pub fn send_sink_metrics(&self, t: u64, key: String, name: String, figures: BTreeMap<String, u64>) {
        self.to_driver(&Message::SinkMetrics { time: t, key, name, figures });
    }

    /// Reports this process's counters to process 0.
    pub fn send_progress(&self, counters: Counters) {
        self.to_driver(&Message::Progress(counters));
    }

    /// Tells process 0 that this process has a rate-controlled input.
    pub fn send_limited(&self, stream: usize, capped: bool) {
        self.to_driver(&Message::Limited { stream, capped });
    }

    /// Forwards a receiver event to process 0.
    pub fn send_receiver_event(&self, kind: ReceiverEvent, info: crate::listener::ReceiverInfo) {
        self.to_driver(&Message::Receiver { kind, info });
    }

    /// From process 0: every process stops gracefully after batch `end`.
    pub fn send_stop(&self, end: u64) {
        self.broadcast(&Message::Stop { end });
    }

    /// Asks process 0 to stop the job gracefully.
    pub fn ask_to_stop(&self) {
        self.to_driver(&Message::StopAsked);
    }

    /// From process 0: the estimator's new rate of `stream`, for every process.
    pub fn send_rate(&self, stream: usize, rate: f64) {
        self.broadcast(&Message::Rate { stream, rate });
    }

    /// On process 0: the other processes' rate-controlled inputs.
    pub fn remote_limited(&self) -> std::collections::BTreeMap<usize, bool> {
        lock(&self.limited).clone()
    }

    /// On process 0: the sum of the other processes' latest counters.
    pub fn remote_counters(&self) -> Counters {
        let mut sum = Counters::default();
        for c in lock(&self.counters).values() {
            sum.received += c.received;
            sum.oversized += c.oversized;
            sum.invalid_utf8 += c.invalid_utf8;
            sum.wal_blocks += c.wal_blocks;
            sum.wal_bytes += c.wal_bytes;
        }
        sum
    }

    /// Process `p` reported its counters: its accumulators join the driver's values.
    fn progress(&self, p: usize, counters: Counters) {
        let mut all = lock(&self.counters);
        all.insert(p, counters);
        if let Some(rt) = self.rt.upgrade() {
            for a in &rt.accumulators {
                let remote: i64 = all
                    .values()
                    .flat_map(|c| c.accumulators.iter())
                    .filter(|(n, _)| *n == a.name)
                    .map(|(_, v)| v)
                    .sum();
                a.remote.store(remote, Ordering::Relaxed);
            }
        }
    }

    /// On process 0: the parts of checkpoint `t` of every other process and the sum of their
    /// accumulator counts, once all reported them, waiting up to `wait` for them.
    pub fn take_parts(&self, t: u64, wait: Duration) -> Option<(Vec<crate::checkpoint::Part>, Vec<(String, i64)>)> {
        let others = self.me.hosts.len() - 1;
        let parts = lock(&self.parts);
        let (mut parts, _) = self
            .changed
            .wait_timeout_while(parts, wait, |p| p.get(&t).map_or(0, |m| m.len()) < others)
            .unwrap_or_else(|e| e.into_inner());
        if parts.get(&t).map_or(0, |m| m.len()) < others {
            return None;
        }
        let later = parts.split_off(&(t + 1));
        let all = std::mem::replace(&mut *parts, later).remove(&t).unwrap_or_default();
        let (parts, counts): (Vec<_>, Vec<_>) = all.into_values().unzip();
        Some((parts.into_iter().flatten().collect(), counts.into_iter().flatten().collect()))
    }

    /// Tells every peer that this process's job failed with `e` (it stops next).
    pub fn announce_failure(&self, at: u64, e: &Error) {
        self.failed.store(true, Ordering::Release);
        self.broadcast(&Message::Failed { error: e.to_string(), at });
    }

    /// Whether the job failed here or lost a peer: timely's network threads may have panicked.
    fn troubled(&self) -> bool {
        self.failed.load(Ordering::Acquire) || lock(&self.lost).is_some()
    }

    /// The error of the peer whose loss broke a timely connection of this process, waiting up to
    /// `cluster.failure_timeout` for the control connections to name it.
    pub fn cause_of_broken_connection(&self, what: &str) -> Error {
        let lost = lock(&self.lost);
        let (lost, _) = self
            .changed
            .wait_timeout_while(lost, self.me.failure_timeout, |l| l.is_none())
            .unwrap_or_else(|e| e.into_inner());
        lost.clone().unwrap_or_else(|| Error::Cluster(format!("a connection to another process broke: {what}")))
    }

    /// On process 0, after a clean end: waits up to `cluster.failure_timeout` for every other
    /// process to say goodbye, so that their last counters are in before anyone reads them.
    pub fn await_peers(&self) {
        if !self.is_driver() {
            return;
        }
        let others = self.me.hosts.len() - 1;
        let done = lock(&self.done);
        let _ = self.changed.wait_timeout_while(done, self.me.failure_timeout, |d| d.len() < others);
    }

    /// Ends the control connections; `clean` says goodbye first, so peers do not take the
    /// closing for a loss.
    pub fn close(&self, clean: bool) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        if clean {
            self.broadcast(&Message::Bye);
        }
        for w in self.writers.iter().flatten() {
            let _ = lock(w).shutdown(std::net::Shutdown::Write);
        }
    }
}

/// timely's network threads, which the job's end joins. After a failure or a lost peer they may
/// have panicked (and joining them would panic again, or wait for a dead peer): then they are
/// left to the process's exit.
pub(crate) struct NetworkThreads {
    pub guard: Option<Box<dyn std::any::Any + Send>>,
    pub mesh: Arc<Mesh>,
}

impl Drop for NetworkThreads {
    fn drop(&mut self) {
        if self.mesh.troubled() {
            std::mem::forget(self.guard.take());
        }
    }
}

/// Whether a panic is timely's reaction to a broken connection to another process.
pub(crate) fn is_connection_panic(text: &str) -> bool {
    text.contains("timely communication error") || text.contains("MergeQueue") || text.contains("thread panic")
}

/// Keeps timely's panics about broken connections — expected once a peer is lost, and reported
/// by Ember as the peer's loss — out of the output; every other panic goes to the previous hook.
pub(super) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            let network = name.starts_with("timely:send") || name.starts_with("timely:recv");
            if network || (name.starts_with("timely:") && is_connection_panic(&text)) {
                tracing::debug!("{name}: {text}");
                return;
            }
            previous(info);
        }));
    });
}
