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

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::runtime::Runtime;
use crate::clock::{lock, real_sleep, Stopwatch};
use crate::error::{Error, Result};

const MAGIC: u32 = 0x454d_4252; // "EMBR"
const VERSION: u8 = 1;
const DATA: u8 = 0;
const CONTROL: u8 = 1;

/// What this process is in its cluster.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub hosts: Vec<String>,
    pub process: usize,
    pub workers: usize,
    pub connect_timeout: Duration,
    pub failure_timeout: Duration,
    /// A hash of the job's plan (its fingerprint): every process must build the same dataflow.
    pub plan: u64,
}

impl Membership {
    fn peer(&self, p: usize) -> String {
        format!("process {p} ({})", self.hosts[p])
    }

    fn hello(&self, kind: u8) -> Hello {
        Hello {
            kind,
            process: self.process as u32,
            processes: self.hosts.len() as u32,
            workers: self.workers as u32,
            hosts: hosts_hash(&self.hosts),
            plan: self.plan,
        }
    }
}

/// The first bytes on every connection, both ways.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Hello {
    kind: u8,
    process: u32,
    processes: u32,
    workers: u32,
    hosts: u64,
    plan: u64,
}

impl Hello {
    const LEN: usize = 4 + 1 + 1 + 4 + 4 + 4 + 8 + 8;

    fn write(&self, s: &mut TcpStream) -> std::io::Result<()> {
        let mut b = Vec::with_capacity(Self::LEN);
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.push(VERSION);
        b.push(self.kind);
        b.extend_from_slice(&self.process.to_le_bytes());
        b.extend_from_slice(&self.processes.to_le_bytes());
        b.extend_from_slice(&self.workers.to_le_bytes());
        b.extend_from_slice(&self.hosts.to_le_bytes());
        b.extend_from_slice(&self.plan.to_le_bytes());
        s.write_all(&b)
    }

    fn read(s: &mut TcpStream) -> std::result::Result<Hello, String> {
        let mut b = [0u8; Self::LEN];
        s.read_exact(&mut b).map_err(|e| format!("no handshake: {e}"))?;
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        if u32_at(0) != MAGIC {
            return Err("not an Ember process (wrong handshake)".into());
        }
        if b[4] != VERSION {
            return Err(format!("another version of Ember's cluster protocol ({}, here {VERSION})", b[4]));
        }
        Ok(Hello {
            kind: b[5],
            process: u32_at(6),
            processes: u32_at(10),
            workers: u32_at(14),
            hosts: u64::from_le_bytes(b[18..26].try_into().unwrap_or_default()),
            plan: u64::from_le_bytes(b[26..34].try_into().unwrap_or_default()),
        })
    }

    /// Why a peer's hello does not fit this process's membership.
    fn mismatch(&self, me: &Membership) -> Option<String> {
        let mine = me.hello(self.kind);
        if self.processes != mine.processes || self.workers != mine.workers {
            return Some(format!(
                "it runs as one of {} processes x {} workers, this one as one of {} x {}",
                self.processes, self.workers, mine.processes, mine.workers
            ));
        }
        if self.hosts != mine.hosts {
            return Some("it was started with another cluster.hosts".into());
        }
        if self.plan != mine.plan {
            return Some(
                "it runs another job: its plan (streams and outputs, in declaration order, and the app name) differs from this process's; every process must run the same program with the same arguments".into(),
            );
        }
        if self.process as usize >= me.hosts.len() || self.process as usize == me.process {
            return Some(format!("it claims to be process {}", self.process));
        }
        None
    }
}

fn hosts_hash(hosts: &[String]) -> u64 {
    super::key_hash(hosts)
}

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

/// The connections of this process to its peers: the data connections go to timely, the
/// control connections stay here.
pub(crate) struct Connections {
    pub data: Vec<Option<TcpStream>>,
    pub control: Vec<Option<TcpStream>>,
}

/// Connects this process to every other process of the cluster, or fails after
/// `connect_timeout` with an error naming the processes that did not answer.
pub(crate) fn connect(me: &Membership) -> Result<Connections> {
    install_panic_hook();
    let n = me.hosts.len();
    let listener = TcpListener::bind(&me.hosts[me.process]).map_err(|e| {
        Error::Cluster(format!("process {} cannot listen on {}: {e}", me.process, me.hosts[me.process]))
    })?;
    listener.set_nonblocking(true).map_err(|e| Error::Cluster(format!("listening socket: {e}")))?;
    let watch = Stopwatch::start();
    let mut data: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    let mut control: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    let mut last_note = Duration::ZERO;
    // Lower-numbered processes are connected to, higher-numbered ones accepted: one data and
    // one control connection per pair, each opened by the higher-numbered process.
    loop {
        let missing: Vec<usize> =
            (0..n).filter(|&p| p != me.process && (data[p].is_none() || control[p].is_none())).collect();
        if missing.is_empty() {
            break;
        }
        let elapsed = watch.elapsed();
        let waiting = || missing.iter().map(|&p| me.peer(p)).collect::<Vec<_>>().join(", ");
        if elapsed >= me.connect_timeout {
            return Err(Error::Cluster(format!(
                "process {} of {n}: no connection with {} after {:.1} s (cluster.connect_timeout); start every process of the job, each with the same cluster.hosts",
                me.process,
                waiting(),
                elapsed.as_secs_f64()
            )));
        }
        if elapsed >= last_note + Duration::from_secs(5) {
            last_note = elapsed;
            tracing::info!("process {} is waiting for {}", me.process, waiting());
        }
        // A peer that connected and then went away (killed during the start) never returns on
        // that connection: stop now rather than at the timeout.
        for (p, s) in control.iter().enumerate().filter_map(|(p, s)| Some((p, s.as_ref()?))) {
            let _ = s.set_nonblocking(true);
            let gone = matches!(s.peek(&mut [0u8; 1]), Ok(0));
            let _ = s.set_nonblocking(false);
            if gone {
                return Err(Error::Cluster(format!(
                    "lost {} during the start: its connection closed (the process exited or was killed)",
                    me.peer(p)
                )));
            }
        }
        let mut progressed = false;
        for &p in missing.iter().filter(|&&p| p < me.process) {
            for (kind, slot) in [(DATA, &mut data[p]), (CONTROL, &mut control[p])] {
                if slot.is_some() {
                    continue;
                }
                if let Ok(mut s) = TcpStream::connect_timeout(&resolve(&me.hosts[p])?, Duration::from_millis(500)) {
                    match handshake(&mut s, me, kind, true) {
                        Ok((q, _)) if q == p => {
                            *slot = Some(s);
                            progressed = true;
                        }
                        Ok((q, _)) => tracing::warn!("{} answered as process {q}", me.peer(p)),
                        Err(e) if e.starts_with("mismatch:") => {
                            return Err(Error::Cluster(format!("{}: {}", me.peer(p), e[9..].trim())))
                        }
                        // Not listening for us yet, or a process of an earlier run going away.
                        Err(e) => tracing::debug!("connecting to {}: {e}", me.peer(p)),
                    }
                }
            }
        }
        loop {
            match listener.accept() {
                Ok((mut s, from)) => {
                    let _ = s.set_nonblocking(false);
                    match handshake(&mut s, me, 0, false) {
                        Ok((q, kind)) => {
                            let slot = if kind == CONTROL { &mut control[q] } else { &mut data[q] };
                            *slot = Some(s);
                            progressed = true;
                        }
                        Err(e) => {
                            if let Some(why) = e.strip_prefix("mismatch:") {
                                return Err(Error::Cluster(format!("a process at {from}: {}", why.trim())));
                            }
                            tracing::warn!("ignoring a connection from {from}: {e}");
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    return Err(Error::Cluster(format!("accepting connections on {}: {e}", me.hosts[me.process])))
                }
            }
        }
        if !progressed {
            real_sleep(Duration::from_millis(50));
        }
    }
    for s in data.iter().flatten() {
        let _ = s.set_nodelay(true);
    }
    Ok(Connections { data, control })
}

fn resolve(host: &str) -> Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    host.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::Cluster(format!("cannot resolve the cluster host `{host}`")))
}

/// Exchanges hellos on a new connection; the peer's process index and the connection's kind.
/// The connecting side sends first. A peer of another cluster is an error starting with
/// `mismatch:`.
fn handshake(
    s: &mut TcpStream,
    me: &Membership,
    kind: u8,
    connecting: bool,
) -> std::result::Result<(usize, u8), String> {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let io = |e: std::io::Error| format!("handshake: {e}");
    let theirs = if connecting {
        me.hello(kind).write(s).map_err(io)?;
        Hello::read(s)?
    } else {
        let theirs = Hello::read(s)?;
        me.hello(theirs.kind).write(s).map_err(io)?;
        theirs
    };
    if let Some(why) = theirs.mismatch(me) {
        return Err(format!("mismatch: {why}"));
    }
    let _ = s.set_read_timeout(None);
    Ok((theirs.process as usize, theirs.kind))
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
        let lost = loop {
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
        let (lost, at) = lost;
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

    /// How long the job's workers get to wind down after a failure.
    pub fn failure_timeout(&self) -> Duration {
        self.me.failure_timeout
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
fn install_panic_hook() {
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
