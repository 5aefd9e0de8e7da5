//! Checkpoints, the batch log and recovery.
//!
//! Layout of a checkpoint directory (all names under a [`Storage`](crate::storage::Storage): a local
//! directory or an object store):
//!
//! ```text
//! state/<t>/w<worker>/<operator name>   one worker's snapshot of one stateful operator after batch t
//! positions/<t>/<input id>-w<worker>    a source's position after batch t
//! batchlog/<t>/<input id>               what defined batch t of an input (e.g. its file list),
//!                                       written before the batch is processed
//! commits/<t>                           the commit record: checkpoint t exists; it lists every
//!                                       part above, of every process, with size and CRC-32
//! ```
//!
//! Every `checkpoint interval` (a multiple of every stateful stream's slide, by default the
//! smallest such multiple of at least 10 s), each stateful operator writes its snapshot right
//! after it processed batch `t` and each source its position after closing `t`; once batch `t`
//! completed everywhere and every process reported the parts it wrote (see `exec::cluster`),
//! the driver writes the commit record. A checkpoint without its commit
//! record does not exist. Recovery takes the newest commit record that reads back intact
//! (skipping corrupt ones with a warning), restores every operator and source, and re-runs the
//! batches after it with the inputs logged for them. Older checkpoints are pruned (the newest
//! `KEEP` are kept).

pub(crate) mod codec;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::conf::Conf;
use crate::error::{Error, Result};
use crate::storage::Storage;
use codec::FrameKind;

/// How many committed checkpoints are kept.
pub(crate) const KEEP: usize = 3;

/// The commit record of checkpoint `t`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Commit {
    /// The batch after which the checkpoint was taken.
    pub time: u64,
    /// The job's zero time: the batch grid survives restarts.
    pub zero: u64,
    pub batch_ms: u64,
    /// Workers in the job: state is partitioned by worker.
    pub workers: usize,
    /// The plan's shape (see `Graph::describe`).
    pub fingerprint: Vec<String>,
    /// Accumulator values at `t`.
    pub accumulators: BTreeMap<String, i64>,
    /// Every state and position file of the checkpoint — written by every process of the job —
    /// with its size and checksum: recovery checks them all before it takes the checkpoint, and
    /// falls back to an older one when one is damaged.
    pub parts: Vec<Part>,
}

/// One file of a checkpoint, as its commit record lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Part {
    pub name: String,
    pub len: u64,
    /// The CRC-32 of the whole file (`None` in records of the format before checksums).
    pub crc: Option<u32>,
}

/// The fields every format of the commit record starts with (time, zero, batch interval,
/// workers, fingerprint, accumulators); bincode encodes a tuple as it encodes the struct.
type CommitHead = (u64, u64, u64, usize, Vec<String>, BTreeMap<String, i64>);

impl Commit {
    fn encode(&self) -> Result<Vec<u8>> {
        codec::encode(FrameKind::CommitWithChecksums, self)
    }

    /// Reads a commit record of any format: the current one, the one whose parts had no
    /// checksums, and the first, which listed no parts (both read, never written).
    fn decode(bytes: &[u8], what: &str) -> Result<Commit> {
        if bytes.get(5) == Some(&(FrameKind::CommitWithChecksums as u8)) {
            return codec::decode::<Commit>(FrameKind::CommitWithChecksums, bytes, what);
        }
        let old = |(time, zero, batch_ms, workers, fingerprint, accumulators): CommitHead, parts| Commit {
            time,
            zero,
            batch_ms,
            workers,
            fingerprint,
            accumulators,
            parts,
        };
        codec::decode::<(CommitHead, Vec<(String, u64)>)>(FrameKind::Commit, bytes, what)
            .map(|(head, parts)| {
                old(head, parts.into_iter().map(|(name, len)| Part { name, len, crc: None }).collect())
            })
            .or_else(|e| {
                let head: CommitHead = codec::decode(FrameKind::Commit, bytes, what).map_err(|_| e)?;
                Ok(old(head, Vec::new()))
            })
    }
}

/// What this process wrote to the checkpoint directory (see [`crate::StorageCounters`]).
#[derive(Default)]
pub(crate) struct StorageStats {
    checkpoints: AtomicU64,
    last_time: AtomicU64,
    last_bytes: AtomicU64,
    last_write_micros: AtomicU64,
    /// Time spent writing the parts of the checkpoint being taken.
    pending_micros: AtomicU64,
    wal_blocks: AtomicU64,
    wal_bytes: AtomicU64,
}

/// The checkpoint directory of a running job, shared by its workers.
pub(crate) struct Checkpoints {
    store: Arc<dyn Storage>,
    /// The write-ahead log's store: the same directory, with its own sync setting.
    wal: Arc<dyn Storage>,
    /// The checkpoint interval in milliseconds.
    pub interval: u64,
    pub zero: u64,
    stats: StorageStats,
    /// The parts this process wrote, by checkpoint time, until the checkpoint commits.
    written: std::sync::Mutex<BTreeMap<u64, Vec<Part>>>,
}

impl Checkpoints {
    pub fn open(url: &str, conf: &Conf, interval: u64, zero: u64, sync: bool, wal_sync: bool) -> Result<Self> {
        let store = crate::storage::open(url, conf, sync)?;
        store.create_root().map_err(|e| Error::external(format!("opening the checkpoint directory {url}"), e))?;
        Ok(Checkpoints {
            store,
            wal: crate::storage::open(url, conf, wal_sync)?,
            interval,
            zero,
            stats: StorageStats::default(),
            written: std::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// Writes part `name` of checkpoint `t` and notes it for the commit record.
    fn put_part(&self, t: u64, name: String, framed: Vec<u8>) -> Result<()> {
        self.timed(|| self.store.put(&name, &framed))?;
        let part = Part { name, len: framed.len() as u64, crc: Some(crc32fast::hash(&framed)) };
        crate::clock::lock(&self.written).entry(t).or_default().push(part);
        Ok(())
    }

    /// The parts of checkpoint `t` this process wrote (each once), forgetting them and any of
    /// earlier checkpoints.
    pub fn take_parts(&self, t: u64) -> Vec<Part> {
        let mut written = crate::clock::lock(&self.written);
        let later = written.split_off(&(t + 1));
        let mut parts = std::mem::replace(&mut *written, later).remove(&t).unwrap_or_default();
        parts.sort_by(|a, b| a.name.cmp(&b.name));
        parts
    }

    /// Runs one write of a checkpoint part, adding its time to the checkpoint being taken.
    fn timed(&self, write: impl FnOnce() -> Result<()>) -> Result<()> {
        let watch = crate::clock::Stopwatch::start();
        let r = write();
        self.stats.pending_micros.fetch_add(watch.elapsed().as_micros() as u64, Ordering::Relaxed);
        r
    }

    /// [`timed`](Self::timed) for a conditional write.
    fn timed_new(&self, write: impl FnOnce() -> Result<bool>) -> Result<bool> {
        let mut created = false;
        self.timed(|| {
            created = write()?;
            Ok(())
        })?;
        Ok(created)
    }

    /// What this process wrote so far.
    pub fn counters(&self) -> crate::StorageCounters {
        let s = &self.stats;
        crate::StorageCounters {
            checkpoints: s.checkpoints.load(Ordering::Relaxed),
            last_checkpoint_time: Some(s.last_time.load(Ordering::Relaxed)).filter(|&t| t > 0),
            last_checkpoint_bytes: s.last_bytes.load(Ordering::Relaxed),
            last_checkpoint_write_ms: s.last_write_micros.load(Ordering::Relaxed) as f64 / 1000.0,
            wal_blocks: s.wal_blocks.load(Ordering::Relaxed),
            wal_bytes: s.wal_bytes.load(Ordering::Relaxed),
        }
    }

    /// Whether a checkpoint is taken after batch `t`.
    pub fn is_checkpoint_time(&self, t: u64) -> bool {
        t > self.zero && (t - self.zero).is_multiple_of(self.interval)
    }

    pub fn put_state(&self, t: u64, worker: usize, name: &str, bytes: &[u8]) -> Result<()> {
        self.put_part(t, format!("state/{t}/w{worker}/{}", safe(name)), codec::frame_bytes(FrameKind::State, bytes))
    }

    pub fn get_state(&self, t: u64, worker: usize, name: &str) -> Result<Option<Vec<u8>>> {
        let what = format!("state/{t}/w{worker}/{}", safe(name));
        match self.store.get(&what)? {
            None => Ok(None),
            Some(b) => Ok(Some(codec::unframe(FrameKind::State, &b, &what)?.to_vec())),
        }
    }

    pub fn put_position<P: Serialize>(&self, t: u64, input: usize, worker: usize, p: &P) -> Result<()> {
        self.put_part(t, format!("positions/{t}/{input}-w{worker}"), codec::encode(FrameKind::Position, p)?)
    }

    pub fn get_position<P: serde::de::DeserializeOwned>(
        &self,
        t: u64,
        input: usize,
        worker: usize,
    ) -> Result<Option<P>> {
        let what = format!("positions/{t}/{input}-w{worker}");
        self.store.get(&what)?.map(|b| codec::decode(FrameKind::Position, &b, &what)).transpose()
    }

    /// Writes block `seq` of a receiver's write-ahead log (`log` names the receiver).
    pub fn put_block(&self, log: &str, seq: u64, records: &[u8]) -> Result<()> {
        let framed = codec::frame_bytes(FrameKind::Block, records);
        self.wal.put(&format!("wal/{log}/{seq:020}"), &framed)?;
        self.stats.wal_blocks.fetch_add(1, Ordering::Relaxed);
        self.stats.wal_bytes.fetch_add(framed.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Reads block `seq` of a write-ahead log.
    pub fn get_block(&self, log: &str, seq: u64) -> Result<Vec<u8>> {
        let what = format!("wal/{log}/{seq:020}");
        let bytes = self
            .store
            .get(&what)?
            .ok_or_else(|| Error::Recovery(format!("write-ahead log block {what} is missing")))?;
        Ok(codec::unframe(FrameKind::Block, &bytes, &what)?.to_vec())
    }

    /// The block numbers in a write-ahead log, ascending.
    pub fn blocks(&self, log: &str) -> Result<Vec<u64>> {
        let mut seqs: Vec<u64> = self
            .store
            .names(&format!("wal/{log}"))?
            .iter()
            .filter_map(|n| n.rsplit('/').next()?.parse().ok())
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Removes the blocks up to `seq` of a write-ahead log.
    pub fn delete_blocks_through(&self, log: &str, seq: u64) -> Result<()> {
        for s in self.blocks(log)?.into_iter().take_while(|&s| s <= seq) {
            self.store.delete(&format!("wal/{log}/{s:020}"))?;
        }
        Ok(())
    }

    /// The batch-log entries of `key` for batches after `after`.
    pub fn batch_logs_after<L: serde::de::DeserializeOwned>(&self, key: &str, after: u64) -> Result<Vec<(u64, L)>> {
        let mut out = Vec::new();
        for dir in self.store.names("batchlog")? {
            let Some(t) = dir.rsplit('/').next().and_then(|s| s.parse::<u64>().ok()) else { continue };
            if t <= after {
                continue;
            }
            let what = format!("batchlog/{t}/{key}");
            if let Some(b) = self.store.get(&what)? {
                out.push((t, codec::decode(FrameKind::BatchLog, &b, &what)?));
            }
        }
        Ok(out)
    }

    /// The batch-log protocol, the one place it is written: the entry of batch `t` under `key` as
    /// logged by an earlier run (`(entry, true)`, a re-run reads exactly that again), or else
    /// `plan()`'s entry, durable in the log before it is returned (`(entry, false)`).
    pub fn replay_or_log<L: Serialize + serde::de::DeserializeOwned>(
        &self,
        t: u64,
        key: &str,
        plan: impl FnOnce() -> Result<L>,
    ) -> Result<(L, bool)> {
        if let Some(logged) = self.get_keyed_batch_log(t, key)? {
            return Ok((logged, true));
        }
        let entry = plan()?;
        self.put_keyed_batch_log(t, key, &entry)?;
        Ok((entry, false))
    }

    pub fn put_keyed_batch_log<L: Serialize>(&self, t: u64, key: &str, entry: &L) -> Result<()> {
        self.store.put(&format!("batchlog/{t}/{key}"), &codec::encode(FrameKind::BatchLog, entry)?)
    }

    pub fn get_keyed_batch_log<L: serde::de::DeserializeOwned>(&self, t: u64, key: &str) -> Result<Option<L>> {
        let what = format!("batchlog/{t}/{key}");
        self.store.get(&what)?.map(|b| codec::decode(FrameKind::BatchLog, &b, &what)).transpose()
    }

    /// Writes the commit record of `commit.time`, which lists the parts every process wrote,
    /// then prunes what older checkpoints left.
    pub fn commit(&self, commit: &Commit) -> Result<()> {
        // Created only if absent: of two incarnations of a job writing the same checkpoint
        // directory, one commits checkpoint `t`, the other stops here.
        let name = format!("commits/{}", commit.time);
        if !self.timed_new(|| self.store.put_new(&name, &commit.encode()?))? {
            return Err(Error::Recovery(format!(
                "checkpoint {} is already committed in {}: another incarnation of this job is writing the same checkpoint directory; this one stops",
                commit.time,
                self.store.url()
            )));
        }
        let s = &self.stats;
        s.checkpoints.fetch_add(1, Ordering::Relaxed);
        s.last_time.store(commit.time, Ordering::Relaxed);
        s.last_bytes.store(commit.parts.iter().map(|p| p.len).sum(), Ordering::Relaxed);
        s.last_write_micros.store(s.pending_micros.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        self.prune()
    }

    fn prune(&self) -> Result<()> {
        let mut times = committed_times(self.store.as_ref())?;
        if times.len() <= KEEP {
            return Ok(());
        }
        let keep_from = times[times.len() - KEEP];
        times.retain(|&t| t < keep_from);
        for t in times {
            self.store.delete(&format!("commits/{t}"))?;
        }
        for area in ["state", "positions", "batchlog"] {
            for name in self.store.names(area)? {
                let t: u64 = name.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
                // Batch logs after the oldest kept checkpoint are still needed to re-run batches.
                if t < keep_from {
                    self.store.delete(&name)?;
                }
            }
        }
        Ok(())
    }
}

fn committed_times(store: &dyn Storage) -> Result<Vec<u64>> {
    let mut times: Vec<u64> =
        store.names("commits")?.iter().filter_map(|n| n.rsplit('/').next().and_then(|s| s.parse().ok())).collect();
    times.sort_unstable();
    Ok(times)
}

/// The newest checkpoint of `dir` that reads back whole: its commit record decodes and every
/// part it lists is there, of its size, with an intact frame. Damaged ones are skipped with a
/// warning (the older ones kept are tried). `Ok(None)` when the directory holds no commit record
/// at all; an error when it holds some and none is usable (never a silent fresh start).
pub(crate) fn latest_commit(url: &str, conf: &Conf) -> Result<Option<Commit>> {
    let store = crate::storage::open(url, conf, false)?;
    let times = committed_times(store.as_ref())?;
    if times.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    for t in times.iter().rev() {
        let what = format!("commits/{t}");
        let checked = store.get(&what).and_then(|b| match b {
            None => Ok(None),
            Some(b) => {
                let c = Commit::decode(&b, &what)?;
                check_parts(store.as_ref(), &c)?;
                Ok(Some(c))
            }
        });
        match checked {
            Ok(Some(c)) => {
                if !problems.is_empty() {
                    tracing::warn!("recovering from the older checkpoint {t}");
                }
                // The damaged records are removed: the batches after `t` commit anew.
                for (damaged, _) in &problems {
                    store.delete(&format!("commits/{damaged}"))?;
                }
                return Ok(Some(c));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("skipping checkpoint {t}: {e}");
                problems.push((*t, format!("checkpoint {t}: {e}")));
            }
        }
    }
    Err(Error::Recovery(format!(
        "the checkpoint directory {} holds {} commit record(s) and none is readable with all its parts: {}",
        store.url(),
        times.len(),
        problems.into_iter().map(|(_, p)| p).collect::<Vec<_>>().join("; ")
    )))
}

/// The batches after `t` whose inputs are in the batch log of `dir`: batches a recovery from
/// checkpoint `t` runs again.
pub(crate) fn logged_after(url: &str, conf: &Conf, t: u64) -> Result<Vec<u64>> {
    let store = crate::storage::open(url, conf, false)?;
    let mut times: Vec<u64> =
        store.names("batchlog")?.iter().filter_map(|n| n.rsplit('/').next()?.parse().ok()).filter(|&b| b > t).collect();
    times.sort_unstable();
    Ok(times)
}

/// Every part a commit record lists is present, of its size, and its frame is intact.
fn check_parts(store: &dyn Storage, c: &Commit) -> Result<()> {
    for Part { name, len, crc } in &c.parts {
        let kind = if name.starts_with("state/") { FrameKind::State } else { FrameKind::Position };
        let corrupt = |reason: String| Error::Corrupt { what: name.clone(), reason };
        let bytes = store.get(name)?.ok_or_else(|| corrupt("missing".into()))?;
        if bytes.len() as u64 != *len {
            return Err(corrupt(format!("{} bytes where the commit record says {len}", bytes.len())));
        }
        if crc.is_some_and(|crc| crc != crc32fast::hash(&bytes)) {
            return Err(corrupt("its checksum differs from the commit record's".into()));
        }
        codec::unframe(kind, &bytes, name)?;
    }
    Ok(())
}

/// File names may not carry `/`.
fn safe(name: &str) -> String {
    name.replace('/', "_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn commit_records_round_trip(
            time in any::<u64>(), zero in any::<u64>(), workers in 1usize..512,
            fingerprint in proptest::collection::vec(".{0,40}", 0..8),
            accs in proptest::collection::btree_map(".{0,10}", any::<i64>(), 0..5),
        ) {
            let part = |crc| Part { name: "state/1/w0/x".into(), len: 7, crc };
            let c = Commit { time, zero, batch_ms: 1000, workers, fingerprint, accumulators: accs, parts: vec![part(Some(time as u32))] };
            prop_assert_eq!(Commit::decode(&c.encode().unwrap(), "commit").unwrap(), c.clone());
            // The format before checksums is still read.
            let v2 = (c.time, c.zero, c.batch_ms, c.workers, c.fingerprint.clone(), c.accumulators.clone(), vec![("state/1/w0/x".to_string(), 7u64)]);
            let old = Commit::decode(&codec::encode(FrameKind::Commit, &v2).unwrap(), "commit").unwrap();
            prop_assert_eq!(old, Commit { parts: vec![part(None)], ..c });
        }

        #[test]
        fn batch_logs_and_positions_round_trip(files in proptest::collection::vec(".{0,30}", 0..10), seqs in proptest::collection::vec(any::<u64>(), 0..20)) {
            let dir = tempfile::tempdir().unwrap();
            let ck = Checkpoints::open(&dir.path().display().to_string(), &crate::Conf::new(), 1000, 0, false, false).unwrap();
            let paths: Vec<std::path::PathBuf> = files.iter().map(std::path::PathBuf::from).collect();
            ck.put_keyed_batch_log(5000, "0", &paths).unwrap();
            prop_assert_eq!(ck.get_keyed_batch_log::<Vec<std::path::PathBuf>>(5000, "0").unwrap(), Some(paths));
            ck.put_keyed_batch_log(5000, "1-w0", &seqs).unwrap();
            prop_assert_eq!(ck.get_keyed_batch_log::<Vec<u64>>(5000, "1-w0").unwrap(), Some(seqs.clone()));
            ck.put_position(5000, 2, 1, &seqs).unwrap();
            prop_assert_eq!(ck.get_position::<Vec<u64>>(5000, 2, 1).unwrap(), Some(seqs));
        }
    }

    /// Rewrites checkpoint `t`'s commit record in the first format, which listed no parts.
    fn as_first_format(dir: &std::path::Path, t: u64) {
        let path = dir.join(format!("commits/{t}"));
        let c = Commit::decode(&std::fs::read(&path).unwrap(), "commit").unwrap();
        let v1 = (c.time, c.zero, c.batch_ms, c.workers, c.fingerprint, c.accumulators);
        std::fs::write(&path, codec::encode(FrameKind::Commit, &v1).unwrap()).unwrap();
    }

    #[test]
    fn a_state_that_does_not_restore_stops_every_worker_with_the_error() {
        let _g = crate::testing::exclusive();
        let dir = tempfile::tempdir().unwrap();
        let job = || {
            let conf = crate::Conf::new().master("local[2]").manual_clock(true).set("checkpoint.sync", "false");
            let ssc = crate::StreamingContext::new(conf, std::time::Duration::from_secs(1))?;
            ssc.checkpoint(dir.path());
            let text =
                crate::GeneratedText { lines_per_second: 20, words_per_line: 2, vocabulary: 7, skew: 0.0, seed: 3 };
            ssc.generated_text_stream_with(text)
                .map(|w: String| (w, 1u64))
                .update_state_by_key(|n: Vec<u64>, s: Option<u64>| Some(s.unwrap_or(0) + n.len() as u64))
                .count()
                .collect_batches();
            Ok(ssc)
        };
        let ssc = job().unwrap();
        ssc.run_batches(10).unwrap();
        ssc.stop(false).unwrap();
        // A checkpoint in the first format cannot be checked before the start, and the driver
        // worker's state is gone: the restore fails on one worker only.
        as_first_format(dir.path(), 10_000);
        std::fs::remove_dir_all(dir.path().join("state/10000/w0")).unwrap();
        let ssc = crate::StreamingContext::get_or_create(dir.path(), job).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let e = ssc.run_batches(1).map_err(|e| e.to_string());
            let stopped = ssc.stop(false).map_err(|e| e.to_string());
            let _ = tx.send((e, stopped));
        });
        let (e, stopped) = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the job ended, no hang");
        let e = e.unwrap_err();
        assert!(e.contains("has no state for") && e.contains("worker 0"), "{e}");
        assert!(stopped.is_ok(), "{stopped:?}");
    }

    #[test]
    fn write_ahead_log_blocks_round_trip_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let ck =
            Checkpoints::open(&dir.path().display().to_string(), &crate::Conf::new(), 1000, 0, false, false).unwrap();
        for seq in 0..5u64 {
            ck.put_block("0-w0", seq, &seq.to_le_bytes()).unwrap();
        }
        assert_eq!(ck.blocks("0-w0").unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(ck.get_block("0-w0", 3).unwrap(), 3u64.to_le_bytes().to_vec());
        ck.delete_blocks_through("0-w0", 2).unwrap();
        assert_eq!(ck.blocks("0-w0").unwrap(), vec![3, 4]);
        let e = ck.get_block("0-w0", 1).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
        // A flipped byte in a block is a clear error.
        let path = dir.path().join(format!("wal/0-w0/{:020}", 4));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[15] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let e = ck.get_block("0-w0", 4).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
    }
}
