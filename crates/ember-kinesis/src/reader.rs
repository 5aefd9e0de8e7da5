//! One worker's share of a Kinesis stream: its shards, their positions, and the reads.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use base64::Engine;
use ember::clock::{Clock, SystemClock};
use ember::operator::{PlanEnv, PlannedSource};
use ember::Time;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::{KinesisClient, KinesisError};
use crate::{InitialPosition, KinesisRecord, KinesisSpec, SequenceNumberRange};

/// Where a shard's next read starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Pos {
    /// At the stream's initial position (a shard that existed when the stream first started).
    Initial,
    /// At the shard's first record (a shard created while the stream ran).
    TrimHorizon,
    /// At the first record that arrived at or after this time (ms since the epoch).
    AtTimestamp(u64),
    /// After this sequence number.
    After(String),
    /// The shard is closed and was read to its end.
    Finished,
}

/// What one batch reads of one shard: `count` records from `first` to `last` (inclusive), and
/// whether the shard ends there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShardPlan {
    shard: String,
    first: Option<String>,
    last: Option<String>,
    count: u64,
    ends: bool,
}

/// What is saved with every checkpoint.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    positions: BTreeMap<String, Pos>,
    owners: BTreeMap<String, usize>,
}

#[derive(Debug, Clone)]
struct Shard {
    parent: Option<String>,
    adjacent: Option<String>,
    closed: bool,
}

pub(crate) struct KinesisReader {
    client: KinesisClient,
    spec: KinesisSpec,
    worker: usize,
    workers: usize,
    batch_ms: u64,
    /// Every shard ever seen, with the worker that reads it (a child goes with its parent).
    owners: BTreeMap<String, usize>,
    /// This worker's shards and where each reads next.
    positions: BTreeMap<String, Pos>,
    /// The shards as last listed.
    shards: BTreeMap<String, Shard>,
    iterators: BTreeMap<String, String>,
    /// Records read while planning, taken by `read` of the same plan.
    buffered: BTreeMap<String, Vec<KinesisRecord>>,
    last_listing: Option<u64>,
    /// A shard of this worker ended since the last listing: its children are to be found.
    ended: bool,
    /// After a rescale: the old workers' shard positions, taken by the shards' new owners at
    /// the next listing.
    carried: BTreeMap<String, Pos>,
}

/// Compares sequence numbers (decimal strings of any length).
pub(crate) fn seq_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The worker of a shard with no known parent.
fn hashed_owner(shard: &str, workers: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in shard.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % workers as u64) as usize
}

impl KinesisReader {
    pub(crate) fn new(env: &PlanEnv, spec: KinesisSpec) -> Result<Self, String> {
        let client = spec.client()?;
        Ok(KinesisReader {
            client,
            spec,
            worker: env.worker,
            workers: env.workers.max(1),
            batch_ms: env.batch_ms,
            owners: BTreeMap::new(),
            positions: BTreeMap::new(),
            shards: BTreeMap::new(),
            iterators: BTreeMap::new(),
            buffered: BTreeMap::new(),
            last_listing: None,
            ended: false,
            carried: BTreeMap::new(),
        })
    }

    fn context(&self, e: KinesisError) -> String {
        format!("kinesis stream `{}` at {}: {e}", self.spec.stream, self.client.url())
    }

    fn call(&self, op: &str, body: &Value) -> Result<Value, String> {
        self.client.call_retrying(op, body, self.spec.read_timeout).map_err(|e| self.context(e))
    }

    /// Lists the stream's shards and takes this worker's new ones.
    fn list_shards(&mut self) -> Result<(), String> {
        let mut shards = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let body = match &token {
                Some(t) => json!({ "NextToken": t }),
                None => json!({ "StreamName": self.spec.stream }),
            };
            let v = self.call("ListShards", &body)?;
            for s in v.get("Shards").and_then(Value::as_array).into_iter().flatten() {
                let Some(id) = s.get("ShardId").and_then(Value::as_str) else { continue };
                let text = |k: &str| s.get(k).and_then(Value::as_str).map(str::to_owned);
                let closed = s.pointer("/SequenceNumberRange/EndingSequenceNumber").and_then(Value::as_str).is_some();
                shards.insert(
                    id.to_owned(),
                    Shard { parent: text("ParentShardId"), adjacent: text("AdjacentParentShardId"), closed },
                );
            }
            token = v.get("NextToken").and_then(Value::as_str).map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        // Owners: a shard goes with its parent when the parent is known, else by its id's hash.
        // Parents come first: shard ids (`shardId-` and 12 digits) sort in creation order.
        let first_listing = self.owners.is_empty() && self.carried.is_empty();
        for (id, shard) in &shards {
            if self.owners.contains_key(id) {
                continue;
            }
            let owner = match shard.parent.as_ref().and_then(|p| self.owners.get(p)) {
                Some(o) => *o % self.workers,
                None => hashed_owner(id, self.workers),
            };
            self.owners.insert(id.clone(), owner);
            if owner == self.worker && !self.positions.contains_key(id) {
                let pos = if let Some(p) = self.carried.remove(id) {
                    p
                } else if !first_listing {
                    Pos::TrimHorizon
                } else if shard.closed && self.spec.initial == InitialPosition::Latest {
                    Pos::Finished
                } else {
                    Pos::Initial
                };
                self.positions.insert(id.clone(), pos);
            }
        }
        self.shards = shards;
        Ok(())
    }

    /// Whether a shard may be read: its parents on this worker are read to their end.
    fn readable(&self, id: &str) -> bool {
        let Some(s) = self.shards.get(id) else { return true };
        [&s.parent, &s.adjacent].into_iter().flatten().all(|p| match self.positions.get(p) {
            Some(pos) => *pos == Pos::Finished,
            None => true,
        })
    }

    fn iterator(&mut self, shard: &str) -> Result<String, String> {
        if let Some(it) = self.iterators.get(shard) {
            return Ok(it.clone());
        }
        let pos = self.positions.get(shard).cloned().unwrap_or(Pos::TrimHorizon);
        let mut body = json!({ "StreamName": self.spec.stream, "ShardId": shard });
        let pos = match pos {
            Pos::Initial => match self.spec.initial {
                InitialPosition::TrimHorizon => Pos::TrimHorizon,
                InitialPosition::AtTimestamp(ms) => Pos::AtTimestamp(ms),
                InitialPosition::Latest => {
                    // Read from LATEST now; should the job restart before a record was read, it
                    // goes on from this time, so nothing that arrived meanwhile is skipped.
                    body["ShardIteratorType"] = json!("LATEST");
                    Pos::AtTimestamp(SystemClock.now_millis())
                }
            },
            other => other,
        };
        match &pos {
            _ if body.get("ShardIteratorType").is_some() => {}
            Pos::TrimHorizon | Pos::Initial => body["ShardIteratorType"] = json!("TRIM_HORIZON"),
            Pos::AtTimestamp(ms) => {
                body["ShardIteratorType"] = json!("AT_TIMESTAMP");
                body["Timestamp"] = json!(*ms as f64 / 1000.0);
            }
            Pos::After(seq) => {
                body["ShardIteratorType"] = json!("AFTER_SEQUENCE_NUMBER");
                body["StartingSequenceNumber"] = json!(seq);
            }
            Pos::Finished => return Err(format!("shard {shard} is read to its end")),
        }
        let v = self.call("GetShardIterator", &body)?;
        let it = v
            .get("ShardIterator")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                format!("kinesis stream `{}`: GetShardIterator answered without an iterator", self.spec.stream)
            })?
            .to_owned();
        self.positions.insert(shard.to_owned(), pos);
        self.iterators.insert(shard.to_owned(), it.clone());
        Ok(it)
    }

    /// One GetRecords call: the records, the next iterator (None: the shard ended) and how far
    /// behind the tip the read is.
    fn get_records(&self, shard: &str, iterator: &str, limit: u64) -> Result<GetRecords, KinesisError> {
        let v = self.client.call_retrying(
            "GetRecords",
            &json!({ "ShardIterator": iterator, "Limit": limit.clamp(1, 10_000) }),
            self.spec.read_timeout,
        )?;
        let mut records = Vec::new();
        for r in v.get("Records").and_then(Value::as_array).into_iter().flatten() {
            let seq = r.get("SequenceNumber").and_then(Value::as_str);
            let data =
                r.get("Data").and_then(Value::as_str).map(|d| base64::engine::general_purpose::STANDARD.decode(d));
            let (Some(seq), Some(Ok(data))) = (seq, data) else {
                return Err(KinesisError::Protocol(format!("GetRecords on {shard} answered with a malformed record")));
            };
            records.push(KinesisRecord {
                shard_id: shard.to_owned(),
                sequence_number: seq.to_owned(),
                partition_key: r.get("PartitionKey").and_then(Value::as_str).unwrap_or_default().to_owned(),
                data,
                arrival_ms: r
                    .get("ApproximateArrivalTimestamp")
                    .and_then(Value::as_f64)
                    .map(|s| (s * 1000.0).round() as u64),
            });
        }
        Ok(GetRecords {
            records,
            next: v.get("NextShardIterator").and_then(Value::as_str).map(str::to_owned),
            behind_ms: v.get("MillisBehindLatest").and_then(Value::as_u64).unwrap_or(0),
        })
    }

    /// Reads up to `limit` records of `shard` from where it stands, into the buffer.
    fn fetch(&mut self, shard: &str, limit: u64) -> Result<ShardPlan, String> {
        let mut got: Vec<KinesisRecord> = Vec::new();
        let mut ends = false;
        let mut empty_calls = 0;
        while (got.len() as u64) < limit {
            let it = self.iterator(shard)?;
            let answer = match self.get_records(shard, &it, limit - got.len() as u64) {
                Ok(a) => a,
                Err(e) if e.kind() == Some("ExpiredIteratorException") => {
                    self.iterators.remove(shard);
                    if let Some(last) = got.last() {
                        self.positions.insert(shard.to_owned(), Pos::After(last.sequence_number.clone()));
                    }
                    continue;
                }
                Err(e) => return Err(self.context(e)),
            };
            let n = answer.records.len();
            got.extend(answer.records);
            match answer.next {
                Some(next) => {
                    self.iterators.insert(shard.to_owned(), next);
                }
                None => {
                    self.iterators.remove(shard);
                    ends = true;
                    break;
                }
            }
            if answer.behind_ms == 0 {
                break;
            }
            if n == 0 {
                // Behind the tip with nothing here: a gap in the shard; a few more calls cross it.
                empty_calls += 1;
                if empty_calls >= 5 {
                    break;
                }
            }
        }
        let plan = ShardPlan {
            shard: shard.to_owned(),
            first: got.first().map(|r| r.sequence_number.clone()),
            last: got.last().map(|r| r.sequence_number.clone()),
            count: got.len() as u64,
            ends,
        };
        self.buffered.insert(shard.to_owned(), got);
        Ok(plan)
    }

    /// Reads a logged plan's range again (after a recovery): from `first` to `last`.
    fn reread(&mut self, p: &ShardPlan, out: &mut Vec<KinesisRecord>) -> Result<(), String> {
        let (Some(first), Some(last)) = (&p.first, &p.last) else { return Ok(()) };
        tracing::debug!("kinesis: reading {} again from {first} to {last} ({} records)", p.shard, p.count);
        let v = self.call(
            "GetShardIterator",
            &json!({ "StreamName": self.spec.stream, "ShardId": p.shard,
                     "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": first }),
        )?;
        let mut it = v.get("ShardIterator").and_then(Value::as_str).map(str::to_owned);
        let mut n = 0u64;
        let mut empty_calls = 0;
        while let Some(iterator) = it {
            let answer = self.get_records(&p.shard, &iterator, p.count - n).map_err(|e| self.context(e))?;
            if answer.records.is_empty() {
                empty_calls += 1;
                if answer.behind_ms == 0 || empty_calls >= 5 {
                    break;
                }
            }
            for r in answer.records {
                if seq_cmp(&r.sequence_number, last) == Ordering::Greater {
                    break;
                }
                n += 1;
                let done = r.sequence_number == *last;
                out.push(r);
                if done {
                    return self.check_reread(p, n);
                }
            }
            it = answer.next;
        }
        self.check_reread(p, n)
    }

    fn check_reread(&self, p: &ShardPlan, n: u64) -> Result<(), String> {
        if n == p.count {
            return Ok(());
        }
        Err(format!(
            "kinesis stream `{}`: shard {} from {} to {} held {} records when first read, {n} now \
             (records past the stream's retention period are gone)",
            self.spec.stream,
            p.shard,
            p.first.as_deref().unwrap_or("-"),
            p.last.as_deref().unwrap_or("-"),
            p.count
        ))
    }

    /// The most records a shard contributes to one batch (None: no limit).
    fn limit(&self, rate: Option<f64>) -> Option<u64> {
        let secs = self.batch_ms as f64 / 1000.0;
        let open = self.shards.values().filter(|s| !s.closed).count().max(1) as f64;
        let share = rate.filter(|r| *r > 0.0).map(|r| r / open);
        let max = Some(self.spec.max_rate_per_shard).filter(|m| *m > 0.0);
        let per_second = match (share, max) {
            (Some(s), Some(m)) => Some(s.min(m)),
            (s, m) => s.or(m),
        }?;
        Some(((per_second * secs).floor() as u64).max(1))
    }
}

struct GetRecords {
    records: Vec<KinesisRecord>,
    next: Option<String>,
    behind_ms: u64,
}

impl PlannedSource for KinesisReader {
    type Item = KinesisRecord;
    type Plan = Vec<ShardPlan>;

    fn plan(&mut self, batch: Time, rate: Option<f64>) -> ember::Result<Vec<ShardPlan>> {
        let due = self.last_listing.is_none_or(|l| batch.millis() >= l + self.spec.shard_discovery_interval_ms);
        if due || self.ended {
            self.list_shards().map_err(ember::Error::Other)?;
            self.last_listing = Some(batch.millis());
            self.ended = false;
        }
        let limit = self.limit(rate).unwrap_or(u64::MAX);
        let mut plans = Vec::new();
        let mine: Vec<String> =
            self.positions.iter().filter(|(_, p)| **p != Pos::Finished).map(|(s, _)| s.clone()).collect();
        for shard in mine {
            if !self.readable(&shard) {
                continue;
            }
            let plan = self.fetch(&shard, limit).map_err(ember::Error::Other)?;
            if plan.count > 0 || plan.ends {
                plans.push(plan);
            }
        }
        Ok(plans)
    }

    fn read(&mut self, _batch: Time, plan: &Vec<ShardPlan>, out: &mut Vec<KinesisRecord>) -> ember::Result<()> {
        for p in plan {
            let buffered = self.buffered.remove(&p.shard).unwrap_or_default();
            let same = buffered.len() as u64 == p.count
                && buffered.first().map(|r| &r.sequence_number) == p.first.as_ref()
                && buffered.last().map(|r| &r.sequence_number) == p.last.as_ref();
            if same {
                out.extend(buffered);
            } else {
                // A plan logged by an earlier run: read its range again.
                self.iterators.remove(&p.shard);
                self.reread(p, out).map_err(ember::Error::Other)?;
            }
            if let Some(last) = &p.last {
                self.positions.insert(p.shard.clone(), Pos::After(last.clone()));
            }
            if p.ends {
                self.positions.insert(p.shard.clone(), Pos::Finished);
                self.iterators.remove(&p.shard);
                self.ended = true;
            }
        }
        self.buffered.clear();
        Ok(())
    }

    fn metadata(&self, plan: &Vec<ShardPlan>) -> Vec<(String, String)> {
        let lines: Vec<String> = plan
            .iter()
            .filter_map(|p| {
                Some(
                    SequenceNumberRange {
                        stream: self.spec.stream.clone(),
                        shard_id: p.shard.clone(),
                        from_seq: p.first.clone()?,
                        to_seq: p.last.clone()?,
                        count: p.count,
                    }
                    .to_line(),
                )
            })
            .collect();
        if lines.is_empty() {
            return Vec::new();
        }
        vec![("sequence_ranges".to_owned(), lines.join("\n"))]
    }

    fn position(&self) -> Option<Vec<u8>> {
        serde_json::to_vec(&Saved { positions: self.positions.clone(), owners: self.owners.clone() }).ok()
    }

    /// A rescale: the shards get their owners anew at the next listing (by the same rule, for
    /// the new number of workers, a child with its parent), each with the position its old
    /// owner saved.
    fn restore_rescaled(&mut self, positions: Vec<Vec<u8>>) -> ember::Result<()> {
        self.carried.clear();
        for position in positions {
            let saved: Saved =
                serde_json::from_slice(&position).map_err(|e| ember::Error::external("not a Kinesis position", e))?;
            self.carried.extend(saved.positions);
        }
        self.positions.clear();
        self.owners.clear();
        self.iterators.clear();
        self.buffered.clear();
        Ok(())
    }

    fn restore(&mut self, position: &[u8]) -> ember::Result<()> {
        let saved: Saved =
            serde_json::from_slice(position).map_err(|e| ember::Error::external("not a Kinesis position", e))?;
        self.positions = saved.positions;
        self.owners = saved.owners;
        self.iterators.clear();
        self.buffered.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(seq_cmp("99", "100"), Ordering::Less);
        assert_eq!(
            seq_cmp(
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692538361571095921575989136588899"
            ),
            Ordering::Less
        );
        assert_eq!(seq_cmp("007", "7"), Ordering::Equal);
        assert_eq!(seq_cmp("1000", "999"), Ordering::Greater);
    }

    #[test]
    fn shards_spread_over_workers() {
        let counts = (0..30).fold([0; 3], |mut c, i| {
            c[hashed_owner(&format!("shardId-{i:012}"), 3)] += 1;
            c
        });
        assert!(counts.iter().all(|n| *n >= 5), "{counts:?}");
    }
}
