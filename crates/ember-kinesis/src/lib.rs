//! # ember-kinesis: Amazon Kinesis for Ember
//!
//! Spark's `KinesisInputDStream`, built as a **direct** stream: no receiver, no Kinesis Client
//! Library and no DynamoDB lease table. Each batch plans a sequence-number range per shard,
//! writes it to the checkpoint's batch log, and reads exactly that range, so a job recovered
//! from its checkpoint re-reads the same records: with idempotent or transactional outputs the
//! stream is exactly-once (Spark's receiver-based stream is at-least-once).
//!
//! ```no_run
//! use ember::prelude::*;
//! use ember_kinesis::{InitialPosition, KinesisSpec};
//! # fn main() -> ember::Result<()> {
//! let ssc = StreamingContext::new(Conf::new().master("local[2]"), Duration::from_secs(1))?;
//! let kinesis = ember_kinesis::create_stream(
//!     &ssc,
//!     KinesisSpec::new("lines", "us-east-1")                 // the stream and its region
//!         .endpoint_url("http://127.0.0.1:4567")             // or the region's public endpoint
//!         .initial_position(InitialPosition::TrimHorizon),   // or Latest, AtTimestamp(ms)
//! );
//! kinesis.data_utf8().flat_map(|l: String| l.split_owned(' ')).count_by_value().print();
//! ssc.start()?;
//! ssc.await_termination()
//! # }
//! ```
//!
//! - **Shards and workers.** Shards are the stream's partitions: each is read by one worker, and
//!   its records stay on that worker until the first shuffle. A shard with no known parent goes to
//!   the worker given by a hash of its id; a shard created by a split or a merge goes to the worker
//!   of its parent (`ParentShardId`), which remembers that choice in its checkpointed position.
//! - **Resharding.** Shards are listed at the first batch, every
//!   [`shard_discovery_interval`](KinesisSpec::shard_discovery_interval) of batch time (default
//!   10 s), and at the next batch after one of the worker's shards ended. A closed parent is read
//!   to its end before its children start (from their first record), so the records of one
//!   partition key keep their order across a split. A merge's child waits for both parents when
//!   both are read on its worker; a parent read on another worker may still be finishing in the
//!   batch where the child starts.
//! - **Where a shard starts**: the checkpoint's position when recovering; else, for shards that
//!   exist when the stream first starts, the [`InitialPosition`]: `TrimHorizon` (the oldest record
//!   kept), `Latest` (records that arrive from the first batch on; Ember fixes it as a time when
//!   first used, so a restart before any record was read skips nothing that arrived meanwhile) or
//!   `AtTimestamp(ms)`; shards created later start at their first record.
//! - **Ranges.** Planning batch `t` reads each shard from its position up to the rate limit (or to
//!   the shard's tip, `MillisBehindLatest` = 0), and the plan — first and last sequence number and
//!   count per shard — is logged before the batch is read. A re-run of a logged batch reads
//!   `AT_SEQUENCE_NUMBER` first up to last again and checks the count; records that passed the
//!   stream's retention period meanwhile fail the batch with an error that says so.
//!   [`KinesisStream::sequence_ranges`] gives each batch's ranges (Spark's
//!   `SequenceNumberRange`s) to output operations; listeners see them in
//!   `StreamInputInfo::metadata["sequence_ranges"]`.
//! - **Rates.** [`max_rate_per_shard`](KinesisSpec::max_rate_per_shard) caps the records per
//!   second each shard contributes; with `backpressure.enabled` the estimated rate is shared among
//!   the open shards (at least one record per shard and batch).
//! - **Failures.** Throttling (`ProvisionedThroughputExceededException`,
//!   `LimitExceededException`), the service's own failures and lost connections are retried with
//!   back-off (100 ms doubling to 2 s) for up to [`read_timeout`](KinesisSpec::read_timeout)
//!   (default 60 s); then, and at once for anything else (an unknown stream, rejected
//!   credentials), the batch fails with [`ember::Error::Input`] naming the stream, the endpoint
//!   and the service's error, and its outputs do not run. An expired shard iterator is renewed.
//! - **Credentials**: [`KinesisSpec::credentials`], else `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) from the environment; requests are signed
//!   with Signature Version 4. Records are bytes; [`KinesisStream::data_utf8`] skips a record that
//!   is not UTF-8, counts it ([`KinesisStream::bad_records`]) and logs it.

#![forbid(missing_docs)]

mod client;
mod reader;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ember::operator::BatchMetadata;
use ember::{DStream, StreamingContext, Time};
use serde::{Deserialize, Serialize};

pub use client::{Credentials, KinesisClient, KinesisError};

/// Where the shards that exist when a stream first starts are read from (Spark's
/// `KinesisInitialPositions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    /// The oldest record the stream keeps.
    TrimHorizon,
    /// Records that arrive from the stream's first batch on.
    Latest,
    /// Records that arrived at or after this time (ms since the epoch).
    AtTimestamp(u64),
}

/// What to read and how: the stream, its region or endpoint, credentials, the initial position and
/// limits. Its `Debug` form leaves out the secret.
#[derive(Debug, Clone)]
pub struct KinesisSpec {
    stream: String,
    region: String,
    endpoint: Option<String>,
    credentials: Option<Credentials>,
    initial: InitialPosition,
    max_rate_per_shard: f64,
    read_timeout: Duration,
    shard_discovery_interval_ms: u64,
}

impl KinesisSpec {
    /// Stream `stream` in region `region` (its public endpoint unless
    /// [`endpoint_url`](Self::endpoint_url) says otherwise), from `Latest`, as Spark's default.
    pub fn new(stream: impl Into<String>, region: impl Into<String>) -> Self {
        KinesisSpec {
            stream: stream.into(),
            region: region.into(),
            endpoint: None,
            credentials: None,
            initial: InitialPosition::Latest,
            max_rate_per_shard: 0.0,
            read_timeout: Duration::from_secs(60),
            shard_discovery_interval_ms: 10_000,
        }
    }

    /// The endpoint (`https://kinesis.us-east-1.amazonaws.com`, `http://127.0.0.1:4567`).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Credentials (default: from the environment).
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Where shards that exist at the first start are read from.
    pub fn initial_position(mut self, position: InitialPosition) -> Self {
        self.initial = position;
        self
    }

    /// The most records per second one shard contributes to a batch (0: no limit).
    pub fn max_rate_per_shard(mut self, rate: f64) -> Self {
        self.max_rate_per_shard = rate.max(0.0);
        self
    }

    /// How long throttling and unreachable endpoints are retried before the batch fails.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// How often (in batch time) the shards are listed to find new ones.
    pub fn shard_discovery_interval(mut self, interval: Duration) -> Self {
        self.shard_discovery_interval_ms = interval.as_millis() as u64;
        self
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }

    /// A client for the spec's endpoint and credentials.
    pub fn client(&self) -> Result<KinesisClient, String> {
        self.client_with(Credentials::from_env)
    }

    fn client_with(&self, from_env: impl FnOnce() -> Option<Credentials>) -> Result<KinesisClient, String> {
        let credentials = self.credentials.clone().or_else(from_env).ok_or_else(|| {
            format!(
                "kinesis stream `{}`: no AWS credentials (give KinesisSpec::credentials, or set \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                self.stream
            )
        })?;
        KinesisClient::new(self.endpoint.as_deref(), &self.region, credentials)
    }
}

/// One Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KinesisRecord {
    /// The shard it was read from.
    pub shard_id: String,
    /// Its sequence number in the shard.
    pub sequence_number: String,
    /// The partition key it was put with.
    pub partition_key: String,
    /// The data.
    pub data: Vec<u8>,
    /// When the stream received it (ms since the epoch), if the service said.
    pub arrival_ms: Option<u64>,
}

/// The records one batch read of one shard (Spark's `SequenceNumberRange`), inclusive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SequenceNumberRange {
    /// The stream.
    pub stream: String,
    /// The shard.
    pub shard_id: String,
    /// The first record's sequence number.
    pub from_seq: String,
    /// The last record's sequence number.
    pub to_seq: String,
    /// The number of records.
    pub count: u64,
}

impl SequenceNumberRange {
    fn to_line(&self) -> String {
        format!("{}\t{}\t{}\t{}\t{}", self.stream, self.shard_id, self.from_seq, self.to_seq, self.count)
    }

    fn from_line(line: &str) -> Option<Self> {
        let mut f = line.split('\t');
        let r = SequenceNumberRange {
            stream: f.next()?.to_owned(),
            shard_id: f.next()?.to_owned(),
            from_seq: f.next()?.to_owned(),
            to_seq: f.next()?.to_owned(),
            count: f.next()?.parse().ok()?,
        };
        f.next().is_none().then_some(r)
    }
}

/// The sequence-number ranges of each batch, as output operations see them.
#[derive(Debug, Clone)]
pub struct SequenceRanges {
    meta: BatchMetadata,
}

impl SequenceRanges {
    /// The non-empty ranges of batch `t`, sorted by shard. Call it from an output operation of
    /// batch `t`: the ranges are published before the batch's outputs run, and kept for 100
    /// batches.
    pub fn get(&self, t: Time) -> Vec<SequenceNumberRange> {
        let meta = self.meta.get(t);
        let mut ranges: Vec<SequenceNumberRange> = meta
            .get("sequence_ranges")
            .map(|s| s.lines().filter_map(SequenceNumberRange::from_line).collect())
            .unwrap_or_default();
        ranges.sort();
        ranges
    }
}

/// A Kinesis stream: its records and each batch's ranges.
#[derive(Clone)]
pub struct KinesisStream {
    stream: DStream<KinesisRecord>,
    meta: BatchMetadata,
    bad: Arc<AtomicU64>,
}

impl KinesisStream {
    /// The records.
    pub fn stream(&self) -> &DStream<KinesisRecord> {
        &self.stream
    }

    /// Each batch's sequence-number ranges.
    pub fn sequence_ranges(&self) -> SequenceRanges {
        SequenceRanges { meta: self.meta.clone() }
    }

    /// The records' data as UTF-8 text; a record that is not valid UTF-8 is skipped, counted in
    /// [`bad_records`](Self::bad_records) and logged (the first 10, then every 1000th).
    pub fn data_utf8(&self) -> DStream<String> {
        let bad = Arc::clone(&self.bad);
        self.stream.flat_map(move |r: KinesisRecord| match String::from_utf8(r.data) {
            Ok(s) => Some(s),
            Err(_) => {
                if let Some(n) = ember::operator::count_skipped(&bad) {
                    tracing::warn!(
                        "kinesis: skipped record {} of {}: not valid UTF-8; {n} skipped so far",
                        r.sequence_number,
                        r.shard_id
                    );
                }
                None
            }
        })
    }

    /// Records [`data_utf8`](Self::data_utf8) skipped.
    pub fn bad_records(&self) -> u64 {
        self.bad.load(Ordering::Relaxed)
    }
}

/// Creates a direct Kinesis stream (Spark's `KinesisInputDStream.builder...build()`).
pub fn create_stream(ssc: &StreamingContext, spec: KinesisSpec) -> KinesisStream {
    let source = format!("kinesis stream {}", spec.stream);
    let (stream, meta) = ssc.planned_source("kinesis stream", &source, move |env| {
        reader::KinesisReader::new(env, spec.clone()).map_err(ember::Error::Other)
    });
    KinesisStream { stream, meta, bad: ember::operator::SkipCounters::for_last_input(ssc) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_trip_through_metadata_lines() {
        let r = SequenceNumberRange {
            stream: "s".into(),
            shard_id: "shardId-000000000001".into(),
            from_seq: "4959".into(),
            to_seq: "4960".into(),
            count: 2,
        };
        assert_eq!(SequenceNumberRange::from_line(&r.to_line()), Some(r));
        assert_eq!(SequenceNumberRange::from_line("a\tb\tc\td"), None);
    }

    #[test]
    fn a_spec_without_credentials_says_how_to_give_them() {
        let e = KinesisSpec::new("s", "us-east-1").client_with(|| None).unwrap_err();
        assert!(e.contains("no AWS credentials") && e.contains("AWS_ACCESS_KEY_ID"), "{e}");
        let given = KinesisSpec::new("s", "us-east-1").credentials(Credentials::new("a", "b"));
        assert!(given.client_with(|| None).is_ok());
        assert!(!format!("{given:?}").contains("\"b\""), "{given:?}");
    }
}
