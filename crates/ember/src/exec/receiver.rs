//! Receivers: inputs pushed to Ember by a thread of their own (spec §2.5).
//!
//! A [`Receiver`] runs on a dedicated thread beside one worker, chosen round-robin by input
//! stream id, and stores records through its [`ReceiverContext`]. Unlike Spark's `onStart`, which
//! must not block, Ember's [`Receiver::on_start`] *is* the receiving loop: it blocks, storing
//! records, until it fails, ends, or `ctx.is_stopped()`. The receiver is supervised: whenever
//! `on_start` returns while the context runs — an error, a `restart`, or simply the end of its
//! input — Ember calls `on_stop`, reports the reason to listeners, waits
//! `receiver.restart_delay`, and starts it again.
//!
//! Stored records join the open batch. `store` blocks while that batch is due but not closed —
//! its worker is busy, or the bound on batches in flight (`flow.max_batches_in_flight`) holds it
//! back — and while more than `receiver.max_buffered_records` wait to be taken; so when the job
//! is behind, a receiver that reads a connection stops reading and the sender is pushed back, and
//! no batch holds more than one interval of input. `store_block` is the reliable form: it returns
//! only once the block is held by Ember, so a receiver may acknowledge its source afterwards.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::runtime::Runtime;
use super::source::{spread_source, SourceDriver, SourceEnv};
use super::{Batches, BuildEnv};
use crate::clock::lock;
use crate::listener::{Event, ReceiverInfo};
use crate::time::Time;
use crate::Data;

/// An input that pushes records into Ember from its own thread.
pub trait Receiver<T>: Send + 'static {
    /// The receiver's name, for listeners and logs.
    fn name(&self) -> String {
        "receiver".to_owned()
    }

    /// What the receiver reads (`host:port`, a broker and its topics), part of the checkpoint's
    /// fingerprint: a checkpoint of a job that read something else is not recovered by mistake.
    /// By default, the name.
    fn source(&self) -> String {
        self.name()
    }

    /// Receives, storing records through `ctx`, until an error (`Err(reason)`), the end of the
    /// input (`Ok(())`), or `ctx.is_stopped()`. Ember starts it again after
    /// `receiver.restart_delay` while the context runs.
    fn on_start(&mut self, ctx: &ReceiverContext<T>) -> crate::Result<()>;

    /// Releases what `on_start` set up; called after every run.
    fn on_stop(&mut self) {}
}

/// What a receiver stores through, and how it learns that the context stops.
pub struct ReceiverContext<T> {
    shared: Arc<Shared<T>>,
    rt: Arc<Runtime>,
    waker: crate::exec::source::Waker,
    limiter: Arc<crate::rate::RateLimiter>,
    stream_id: usize,
    worker: usize,
    name: String,
}

struct Shared<T> {
    records: Mutex<Buffer<T>>,
    /// The next write-ahead-log block number.
    next_seq: std::sync::atomic::AtomicU64,
    /// The write-ahead log's name (`<input>-w<worker>`), when the log is on.
    wal: Option<String>,
    drained: Condvar,
    stopped: AtomicBool,
    restart: Mutex<Option<String>>,
    interrupt: Mutex<Option<Box<dyn Fn() + Send>>>,
    /// The time of the batch that stored records join (0: not known yet).
    open: AtomicU64,
}

/// Records stored and not yet taken by a batch, with the write-ahead-log blocks they came in.
struct Buffer<T> {
    records: Vec<T>,
    blocks: Vec<u64>,
    /// Since when records wait that the source was not woken for (see [`WAKE_AFTER`]).
    unwoken: Option<crate::clock::Stopwatch>,
}

/// A receiver wakes its source when this many records wait, or when the oldest record not yet
/// announced has waited [`WAKE_AFTER`]: a steady trickle of small writes then costs one worker
/// step per few milliseconds, not one per write. Records still waiting join their batch at its
/// close in any case.
const WAKE_RECORDS: usize = 4096;
const WAKE_AFTER: Duration = Duration::from_millis(5);

impl<T: Data> ReceiverContext<T> {
    /// Stores one record.
    pub fn store(&self, record: T) {
        self.store_many(vec![record]);
    }

    /// Stores records as one block; blocks while Ember's buffer for this receiver is full. With
    /// the write-ahead log on, the block is in the log when this returns; a failed log write is
    /// reported to listeners and to the job (use `store_block` to handle it).
    /// These forms wait for the receiver's rate limit (`receiver.max_rate`, backpressure); the
    /// reliable `store_block` does not (a reliable receiver paces itself, as in Spark).
    /// Under a rate limit, a large block is stored in pieces of about 50 ms of the rate each, so
    /// it is paced smoothly and a new rate applies to its rest.
    pub fn store_many(&self, mut records: Vec<T>) {
        while !records.is_empty() {
            let piece = self.limiter.piece();
            let rest = if records.len() > piece { records.split_off(piece) } else { Vec::new() };
            self.limiter.acquire(records.len() as u64);
            if let Err(e) = self.store_block(records) {
                self.report_error(e.to_string());
                self.rt.report_error(e);
                return;
            }
            records = rest;
        }
    }

    /// Stores a block reliably: when this returns `Ok`, Ember holds the block — in the
    /// write-ahead log when it is on — and the receiver may acknowledge it to its source.
    pub fn store_block(&self, mut records: Vec<T>) -> crate::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let n = records.len() as u64;
        let seq = match (&self.shared.wal, self.rt.checkpoints.as_deref()) {
            (Some(log), Some(ck)) => {
                let seq = self.shared.next_seq.fetch_add(1, Ordering::SeqCst);
                let bytes = bincode::serialize(&records)
                    .map_err(|e| crate::Error::Internal(format!("encoding a received block: {e}")))?;
                ck.put_block(log, seq, &bytes)?;
                Some(seq)
            }
            _ => None,
        };
        let max = self.rt.settings.max_buffered_records;
        let mut held = lock(&self.shared.records);
        while (held.records.len() >= max || self.batch_is_late()) && !self.is_stopped() {
            held =
                self.shared.drained.wait_timeout(held, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner()).0;
        }
        held.records.append(&mut records);
        held.blocks.extend(seq);
        let due =
            held.records.len() >= WAKE_RECORDS || held.unwoken.as_ref().is_some_and(|w| w.elapsed() >= WAKE_AFTER);
        if due {
            held.unwoken = None;
        } else {
            held.unwoken.get_or_insert_with(crate::clock::Stopwatch::start);
        }
        drop(held);
        if due {
            self.waker.wake();
        }
        self.rt.add_received(n);
        Ok(())
    }
}

impl<T> ReceiverContext<T> {
    /// Whether the batch that stored records would join is due and not yet closed: its worker
    /// is busy, or the bound on batches in flight holds it back. The job is behind, so the
    /// receiver waits (and a connection it reads pushes back on its sender) instead of adding
    /// more to that batch.
    fn batch_is_late(&self) -> bool {
        let open = self.shared.open.load(Ordering::Acquire);
        open != 0 && self.rt.now() >= open
    }
}

impl<T: Data> ReceiverContext<T> {
    /// The records in this receiver's write-ahead log now (empty when the log is off): blocks
    /// that a crash may have left stored but not acknowledged to their source. A receiver whose
    /// source redelivers unacknowledged records uses them to recognise those redeliveries.
    pub fn logged_records(&self) -> crate::Result<Vec<T>> {
        let (Some(log), Some(ck)) = (&self.shared.wal, self.rt.checkpoints.as_deref()) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for seq in ck.blocks(log)? {
            let bytes = ck.get_block(log, seq)?;
            let records: Vec<T> = bincode::deserialize(&bytes)
                .map_err(|e| crate::Error::Corrupt { what: format!("wal/{log}/{seq}"), reason: e.to_string() })?;
            out.extend(records);
        }
        Ok(out)
    }
}

impl<T> ReceiverContext<T> {
    /// Asks Ember to restart the receiver: `on_start` should return soon after.
    pub fn restart(&self, reason: impl Into<String>) {
        *lock(&self.shared.restart) = Some(reason.into());
    }

    /// Whether a restart was asked for, or the context stops: `on_start` should return.
    pub fn should_return(&self) -> bool {
        self.is_stopped() || lock(&self.shared.restart).is_some()
    }

    /// Reports an error to listeners; receiving goes on.
    pub fn report_error(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!("{}: {message}", self.name);
        self.rt.post(Event::ReceiverError(self.info(true, Some(&message))));
    }

    /// The rate this receiver may store at, records per second (`receiver.max_rate`, or the
    /// backpressure estimator's rate); `None` when unlimited (Spark's `getCurrentRateLimit`).
    pub fn current_rate_limit(&self) -> Option<f64> {
        Some(self.limiter.rate()).filter(|r| *r > 0.0)
    }

    /// Whether the context stops: `on_start` must return.
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Acquire) || self.rt.stopping()
    }

    /// Sets what unblocks `on_start` when the context stops (e.g. shutting a socket down).
    pub fn on_interrupt(&self, f: impl Fn() + Send + 'static) {
        *lock(&self.shared.interrupt) = Some(Box::new(f));
    }

    /// Counts records that were not valid UTF-8 (see `StreamingContext::input_counters`).
    pub fn count_invalid_utf8(&self, n: u64) {
        self.rt.invalid_utf8.fetch_add(n, Ordering::Relaxed);
    }

    /// The runtime, for counters.
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.rt
    }

    fn info(&self, active: bool, error: Option<&str>) -> ReceiverInfo {
        ReceiverInfo {
            stream_id: self.stream_id,
            name: self.name.clone(),
            active,
            worker: self.worker,
            last_error_message: error.unwrap_or_default().to_owned(),
            last_error_time: error.map(|_| self.rt.now()),
            rate_limit: Some(self.limiter.rate()).filter(|r| *r > 0.0),
        }
    }
}

/// Runs `receiver` until the context stops, restarting it after every return.
fn supervise<T, R: Receiver<T>>(mut receiver: R, ctx: ReceiverContext<T>) {
    let rt = Arc::clone(&ctx.rt);
    rt.post(Event::ReceiverStarted(ctx.info(true, None)));
    let delay = Duration::from_millis(rt.settings.restart_delay_ms);
    loop {
        let outcome = receiver.on_start(&ctx);
        receiver.on_stop();
        if ctx.is_stopped() {
            break;
        }
        let reason = match (lock(&ctx.shared.restart).take(), outcome) {
            (Some(r), _) => format!("restart requested: {r}"),
            (None, Err(e)) => e.to_string(),
            (None, Ok(())) => "the receiver ended".to_owned(),
        };
        tracing::warn!("{}: {reason}; restarting in {} ms", ctx.name, delay.as_millis());
        rt.post(Event::ReceiverError(ctx.info(true, Some(&reason))));
        if !rt.sleeper.sleep(delay) {
            break;
        }
    }
    rt.post(Event::ReceiverStopped(ctx.info(false, None)));
}

struct ReceiverDriver<T> {
    shared: Arc<Shared<T>>,
    /// The receiver's rate limit, closed when the source finishes so no wait outlives it.
    limiter: Arc<crate::rate::RateLimiter>,
    rt: Arc<Runtime>,
    /// The last write-ahead-log block assigned to a batch.
    last_assigned: u64,
    /// Blocks logged before a crash and assigned to no batch: they join the first new batch.
    unassigned: Vec<u64>,
    /// Positions written at earlier checkpoints (for cleaning the log up).
    saved: std::collections::VecDeque<u64>,
    /// The first block number of this run: blocks from here on are this run's, still in the
    /// buffer, never to be replayed from the log.
    first_new_seq: u64,
    /// Signalled when the receiver's thread has ended (its last event posted).
    done: Option<std::sync::mpsc::Receiver<()>>,
}

impl<T: Data> ReceiverDriver<T> {
    fn take(&self, out: &mut Vec<T>) -> Vec<u64> {
        let mut held = lock(&self.shared.records);
        out.append(&mut held.records);
        held.unwoken = None;
        let blocks = std::mem::take(&mut held.blocks);
        drop(held);
        self.shared.drained.notify_all();
        blocks
    }

    fn read_block(
        &self,
        ck: &crate::checkpoint::Checkpoints,
        log: &str,
        seq: u64,
        out: &mut Vec<T>,
    ) -> crate::Result<()> {
        let bytes = ck.get_block(log, seq)?;
        let records: Vec<T> = bincode::deserialize(&bytes)
            .map_err(|e| crate::Error::Corrupt { what: format!("wal/{log}/{seq}"), reason: e.to_string() })?;
        out.extend(records);
        Ok(())
    }

    /// Batch `t` with the write-ahead log: a batch logged before a crash replays its blocks; a new
    /// batch takes the unassigned and the newly stored blocks, and logs them before it is emitted.
    fn close_logged(
        &mut self,
        t: u64,
        log: &str,
        ck: &crate::checkpoint::Checkpoints,
        out: &mut Vec<T>,
    ) -> crate::Result<()> {
        let (blocks, replayed) = ck.replay_or_log(t, log, || {
            let mut blocks = std::mem::take(&mut self.unassigned);
            for &seq in &blocks {
                self.read_block(ck, log, seq, out)?;
            }
            blocks.extend(self.take(out));
            Ok(blocks)
        })?;
        if replayed {
            for &seq in &blocks {
                self.read_block(ck, log, seq, out)?;
            }
        }
        self.last_assigned = blocks.iter().copied().max().unwrap_or(self.last_assigned).max(self.last_assigned);
        if !replayed && self.rt.checkpoint_at(t).is_some() {
            // Blocks already in batches two checkpoints ago are covered by a committed checkpoint
            // (batches in flight are bounded), so nothing will replay them: remove them.
            self.saved.push_back(self.last_assigned);
            if self.saved.len() > 2 {
                if let Some(through) = self.saved.pop_front() {
                    ck.delete_blocks_through(log, through)?;
                }
            }
        }
        Ok(())
    }
}

impl<T: Data> SourceDriver<T> for ReceiverDriver<T> {
    fn poll(&mut self, open: Time, out: &mut Vec<T>) -> bool {
        self.shared.open.store(open.millis(), Ordering::Release);
        // With the write-ahead log, records join their batch at its close, after the batch log.
        if self.shared.wal.is_none() {
            self.take(out);
        }
        false
    }

    fn close(&mut self, t: Time, out: &mut Vec<T>) {
        // Stored records join the next batch from now on (`take` wakes a waiting receiver).
        self.shared.open.store(t.millis() + self.rt.batch_ms, Ordering::Release);
        match (self.shared.wal.clone(), self.rt.checkpoints.clone()) {
            (Some(log), Some(ck)) => {
                if let Err(e) = self.close_logged(t.millis(), &log, &ck, out) {
                    self.rt.checkpoint_failed(t.millis(), e);
                }
            }
            _ => {
                self.take(out);
            }
        }
    }

    fn position(&self) -> Option<Vec<u8>> {
        self.shared.wal.as_ref()?;
        Some(self.last_assigned.to_le_bytes().to_vec())
    }

    fn restore(&mut self, position: &[u8]) -> crate::Result<()> {
        let (Some(log), Some(ck)) = (self.shared.wal.clone(), self.rt.checkpoints.clone()) else { return Ok(()) };
        let bytes: [u8; 8] = position
            .try_into()
            .map_err(|_| crate::Error::Corrupt { what: format!("position of {log}"), reason: "not 8 bytes".into() })?;
        self.last_assigned = u64::from_le_bytes(bytes);
        let after = self.rt.recovered.as_ref().map_or(0, |c| c.time);
        let logged: std::collections::HashSet<u64> =
            ck.batch_logs_after::<Vec<u64>>(&log, after)?.into_iter().flat_map(|(_, b)| b).collect();
        let first_new = self.first_new_seq;
        self.unassigned = ck
            .blocks(&log)?
            .into_iter()
            .filter(|s| *s > self.last_assigned && *s < first_new && !logged.contains(s))
            .collect();
        if !self.unassigned.is_empty() {
            tracing::info!(
                "{log}: {} logged block(s) joined no batch before the restart; they join the first new batch",
                self.unassigned.len()
            );
        }
        Ok(())
    }

    /// A rescale starts from a graceful stop's checkpoint: every block the old receivers logged
    /// joined a batch at or before it, so none is replayed. This share's log (named by its new
    /// worker) goes on after its last block; blocks it may hold from an earlier run are taken as
    /// assigned, never read again.
    fn restore_rescaled(&mut self, _positions: Vec<(usize, Vec<u8>)>) -> crate::Result<()> {
        let (Some(log), Some(ck)) = (self.shared.wal.clone(), self.rt.checkpoints.clone()) else { return Ok(()) };
        self.last_assigned = ck.blocks(&log)?.last().copied().unwrap_or(0);
        self.unassigned.clear();
        Ok(())
    }

    fn finish(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.limiter.close();
        self.shared.drained.notify_all();
        if let Some(f) = lock(&self.shared.interrupt).as_ref() {
            f();
        }
        // The receiver's last events (its stop) reach listeners before the context's stop
        // returns; a receiver that ignores the stop is left after a while.
        if let Some(done) = self.done.take() {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(Duration::from_secs(10)) {
                tracing::warn!("a receiver did not return from on_start within 10 s of the stop; leaving it");
            }
        }
    }
}

/// Where a receiver runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReceiverPlacement {
    /// Beside worker `input id % workers`.
    RoundRobin,
    /// Beside the driver worker (inputs that live in process 0, such as a channel).
    Driver,
}

impl<T> ReceiverContext<T> {
    /// Blocks until the context stops or a restart is asked for (up to 100 ms at a time), for
    /// receivers with nothing more to do.
    pub fn wait_for_stop(&self) {
        let held = lock(&self.shared.records);
        let _ = self.shared.drained.wait_timeout(held, Duration::from_millis(100));
    }
}

/// One worker's share of a receiver stream: the source operator that takes what the receiver
/// stored, and, on the worker that owns it (`receiver` is `Some`), the receiver's own thread.
pub(crate) fn receiver_source<'s, T: Data, R: Receiver<T>>(
    env: &mut BuildEnv<'s>,
    id: usize,
    label: &str,
    name: &str,
    taken: Option<R>,
) -> Batches<'s, T> {
    let name = format!("{name}-{id}");
    let wal = env.rt.settings.wal.then(|| format!("{id}-w{}", env.index));
    // Blocks already in the log continue the numbering; those that joined no batch (a
    // crash before their batch was logged) join the first new batch. Recovery from a
    // checkpoint refines this in `restore`.
    let (next_seq, unassigned) = match (&wal, env.rt.checkpoints.as_deref()) {
        (Some(log), Some(ck)) => {
            let found = ck.blocks(log).and_then(|seqs| {
                let logged: std::collections::HashSet<u64> =
                    ck.batch_logs_after::<Vec<u64>>(log, 0)?.into_iter().flat_map(|(_, b)| b).collect();
                Ok((seqs.last().map_or(0, |s| s + 1), seqs.into_iter().filter(|s| !logged.contains(s)).collect()))
            });
            found.unwrap_or_else(|e| {
                env.fail(e);
                (0, Vec::new())
            })
        }
        _ => (0, Vec::new()),
    };
    spread_source(env, label, id, move |senv: SourceEnv| {
        let shared = Arc::new(Shared {
            records: Mutex::new(Buffer { records: Vec::new(), blocks: Vec::new(), unwoken: None }),
            next_seq: std::sync::atomic::AtomicU64::new(next_seq),
            wal,
            drained: Condvar::new(),
            stopped: AtomicBool::new(false),
            restart: Mutex::new(None),
            interrupt: Mutex::new(None),
            open: AtomicU64::new(0),
        });
        let rt = Arc::clone(&senv.rt);
        let limiter = Arc::new(crate::rate::RateLimiter::new(rt.settings.initial_receiver_rate()));
        let mut done = None;
        if let Some(r) = taken {
            rt.register_limiter(id, Arc::clone(&limiter));
            let ctx = ReceiverContext {
                shared: Arc::clone(&shared),
                rt: senv.rt,
                waker: senv.waker,
                limiter: Arc::clone(&limiter),
                stream_id: id,
                worker: senv.index,
                name,
            };
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            done = Some(rx);
            let spawned = std::thread::Builder::new().name(format!("ember-receiver-{id}")).spawn(move || {
                supervise(r, ctx);
                let _ = tx.send(());
            });
            if let Err(e) = spawned {
                tracing::error!("receiver {id}: could not start its thread: {e}");
            }
        }
        Box::new(ReceiverDriver {
            shared,
            limiter,
            rt: Arc::clone(&rt),
            last_assigned: 0,
            unassigned,
            saved: Default::default(),
            first_new_seq: next_seq,
            done,
        })
    })
}
