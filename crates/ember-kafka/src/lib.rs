//! Kafka for Ember: the direct stream (Spark's `KafkaUtils.createDirectStream`) with exactly-once
//! offset ranges, and the Kafka sink. Built on librdkafka (the `rdkafka` crate).
//!
//! # The direct stream
//!
//! ```no_run
//! use ember::prelude::*;
//! use ember_kafka::{ConsumerStrategy, KafkaParams, SaveToKafka};
//! # fn main() -> ember::Result<()> {
//! let ssc = StreamingContext::new(Conf::new().master("local[2]"), Duration::from_secs(1))?;
//! let kafka = ember_kafka::create_direct_stream(
//!     &ssc,
//!     ConsumerStrategy::subscribe(["lines"]),                      // or subscribe_pattern, assign, assign_at
//!     KafkaParams::new("127.0.0.1:9092").group_id("word-count"),   // every librdkafka key passes through
//! );
//! let counts = kafka
//!     .values_utf8()                                               // bad UTF-8 is skipped and counted
//!     .flat_map(|l: String| l.split_owned(' '))
//!     .count_by_value();
//! counts.save_to_kafka("counts", KafkaParams::new("127.0.0.1:9092"), |(w, n)| {
//!     (Some(w.clone().into_bytes()), n.to_string().into_bytes())   // idempotent producer, flushed per batch
//! });
//! let (ranges, stream) = (kafka.offset_ranges(), kafka.clone());
//! // After the batch's outputs: commit its offsets to the consumer group.
//! kafka.stream().on_batch(move |t| stream.commit_async(&ranges.get(t)));  // no record moves
//! ssc.start()?;
//! # Ok(()) }
//! ```
//!
//! - **Partitions and workers.** One Ember partition per Kafka partition: partition `p` of topic
//!   `t` is read by worker `(hash(t) + p) mod workers` (stable when partitions are added), and its
//!   records stay on that worker until the first shuffle. Each worker has its own librdkafka
//!   consumer, assigned (never subscribed, so no group rebalances) to its partitions.
//! - **Offset ranges.** When batch `t` closes, each worker decides `[from, until)` for each of its
//!   partitions, writes them to the checkpoint's batch log, and only then reads them, exactly. A
//!   job recovered from a checkpoint re-reads the logged ranges, so its batches are the same.
//!   `until` is the partition's high watermark as reported by the consumer's own fetch responses
//!   (librdkafka's cached watermark), clamped by the rate limits (spec §8.3). Fetch responses are
//!   right on Kafka and on tansu, whose ListOffsets("latest") under-reports after multi-record
//!   produce requests; ListOffsets is only a fallback before the first fetch response, and it can
//!   only make a range shorter, never longer than the log.
//! - **Where a partition starts**: the checkpoint's position when recovering; else the offset given
//!   to [`ConsumerStrategy::assign_at`]; else the group's committed offset (with a `group.id`);
//!   else `auto.offset.reset`: `earliest` (the default, as Spark's examples set it), `latest`, or
//!   `none` (an error naming the partition). A starting offset below the log's start (deleted by
//!   retention) is moved to the start with a warning under `earliest`, to the end under
//!   `latest`, and is an error under `none`. A log that ends before the stream's position (the
//!   topic was recreated, or a broker without persistence restarted) is treated the same way.
//! - **New partitions** of subscribed topics (and new topics matching a pattern) are found at the
//!   first batch and then every `ember.partition.discovery.interval.ms` of batch time (default
//!   5000) and start per the rules above. A subscribed topic that does not exist yet gives empty
//!   batches and one warning; an assigned partition of a topic that does not exist is an error.
//! - **Failures.** A broker that is down (at start or mid-stream) is retried with back-off; a batch
//!   that cannot be read within `ember.read.timeout.ms` (default 60000) fails the job with
//!   [`ember::Error::Input`], and its outputs do not run: restart from the checkpoint to re-read
//!   it. When the brokers become unreachable, each worker creates its consumer anew (and again
//!   while they stay away), so that the consumer that meets the brokers again knows no topic id:
//!   librdkafka 2.12.1 crashes the process (SIGSEGV in `rd_kafka_metadata_cache_find`) on a fetch
//!   response carrying a partition leader change (KIP-951) for a topic id it lost, which a broker
//!   that restarted without the topic (tansu keeps topics in memory) sends to the old consumer.
//!   A broker that restarts faster than the next batch (or read) notices it is away is not covered.
//!   Records are bytes, so no payload is bad to the stream itself; the decoding helpers
//!   ([`KafkaStream::values_utf8`], [`KafkaStream::values_json`]) skip a record they cannot decode,
//!   count it ([`KafkaStream::bad_records`]) and log it (the first 10, then every 1000th).
//!   Records over the consumer's `fetch.max.bytes`/`message.max.bytes` are librdkafka's to fetch
//!   (it grows the request); the sink reports a record over the producer's `message.max.bytes`
//!   as a failed batch naming the topic.
//! - **Committing** ([`KafkaStream::commit_async`]) only queues the ranges, as in Spark; the queue
//!   is committed to the group by worker 0's consumer when the next batch is planned, and, unlike
//!   Spark (SPARK-20050), also when the context stops.
//!
//! Ember's own Kafka parameters (`ember.*`) are taken out of [`KafkaParams`]; every other key is
//! passed to librdkafka as given (security settings included). The stream sets
//! `enable.auto.commit=false`, `auto.offset.reset` per the rules above, and
//! `isolation.level=read_uncommitted` unless given (the Java client's default, which Spark users
//! know; with `read_committed`, a range may wait for an open transaction to end).

mod decode;
mod error;
mod plan;
mod reader;
mod sink;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ember::operator::BatchMetadata;
use ember::{DStream, StreamingContext, Time};
use serde::{Deserialize, Serialize};

pub use error::Error;
pub use sink::{KafkaSink, SaveToKafka};

/// Kafka parameters: librdkafka's configuration keys, passed through, plus Ember's `ember.*`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KafkaParams {
    entries: BTreeMap<String, String>,
}

impl KafkaParams {
    /// Parameters with `bootstrap.servers`.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaParams::default().set("bootstrap.servers", bootstrap_servers)
    }

    /// Sets any key (librdkafka's, e.g. `security.protocol`, `sasl.username`, or Ember's
    /// `ember.read.timeout.ms`, `ember.partition.discovery.interval.ms`).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.entries.insert(key.into(), value.into());
        self
    }

    /// Sets `group.id`.
    pub fn group_id(self, group: impl Into<String>) -> Self {
        self.set("group.id", group)
    }

    /// Sets `auto.offset.reset` (`earliest`, `latest` or `none`).
    pub fn auto_offset_reset(self, reset: impl Into<String>) -> Self {
        self.set("auto.offset.reset", reset)
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    pub(crate) fn ember_millis(&self, key: &str, default: u64) -> Result<u64, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                Error::Config(format!("Kafka parameter `{key}` must be a number of milliseconds, not `{v}`"))
            }),
        }
    }

    /// The librdkafka configuration: every key but Ember's, with `overrides` on top.
    pub(crate) fn client_config(&self, overrides: &[(&str, &str)]) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        for (k, v) in &self.entries {
            if !k.starts_with("ember.") {
                c.set(k, v);
            }
        }
        for (k, v) in overrides {
            c.set(*k, *v);
        }
        c
    }
}

/// Which partitions a direct stream reads (Spark's `ConsumerStrategies`).
#[derive(Debug, Clone)]
pub enum ConsumerStrategy {
    /// A fixed list of topics, following their partitions (new ones are picked up).
    Subscribe {
        /// The topics.
        topics: Vec<String>,
        /// Starting offsets for some partitions (the rest start per the usual rules).
        offsets: BTreeMap<TopicPartition, i64>,
    },
    /// Every topic whose whole name matches a regular expression, re-evaluated as topics appear.
    SubscribePattern {
        /// The pattern (anchored at both ends, as Kafka's).
        pattern: String,
        /// Starting offsets for some partitions.
        offsets: BTreeMap<TopicPartition, i64>,
    },
    /// A fixed set of partitions.
    Assign {
        /// The partitions, each with an optional starting offset.
        partitions: BTreeMap<TopicPartition, Option<i64>>,
    },
}

impl ConsumerStrategy {
    /// Spark's `Subscribe(topics)`.
    pub fn subscribe<S: Into<String>>(topics: impl IntoIterator<Item = S>) -> Self {
        ConsumerStrategy::Subscribe { topics: topics.into_iter().map(Into::into).collect(), offsets: BTreeMap::new() }
    }

    /// Spark's `SubscribePattern(pattern)`.
    pub fn subscribe_pattern(pattern: impl Into<String>) -> Self {
        ConsumerStrategy::SubscribePattern { pattern: pattern.into(), offsets: BTreeMap::new() }
    }

    /// Spark's `Assign(partitions)`: each starts at the committed offset or `auto.offset.reset`.
    pub fn assign(partitions: impl IntoIterator<Item = TopicPartition>) -> Self {
        ConsumerStrategy::Assign { partitions: partitions.into_iter().map(|p| (p, None)).collect() }
    }

    /// Spark's `Assign(partitions, offsets)`: each partition starts at the given offset (e.g. the
    /// offsets a transactional sink stored beside its results).
    pub fn assign_at(offsets: impl IntoIterator<Item = (TopicPartition, i64)>) -> Self {
        ConsumerStrategy::Assign { partitions: offsets.into_iter().map(|(p, o)| (p, Some(o))).collect() }
    }

    /// What the strategy reads, without starting offsets (they change from run to run): part of
    /// a checkpoint's fingerprint.
    fn source(&self) -> String {
        match self {
            ConsumerStrategy::Subscribe { topics, .. } => format!("topics {}", topics.join(",")),
            ConsumerStrategy::SubscribePattern { pattern, .. } => format!("topics matching {pattern}"),
            ConsumerStrategy::Assign { partitions } => {
                let topics: std::collections::BTreeSet<&str> = partitions.keys().map(|p| p.topic.as_str()).collect();
                format!("partitions of {}", topics.into_iter().collect::<Vec<_>>().join(","))
            }
        }
    }

    /// Starting offsets for some partitions of a subscription.
    pub fn with_offsets(mut self, given: impl IntoIterator<Item = (TopicPartition, i64)>) -> Self {
        match &mut self {
            ConsumerStrategy::Subscribe { offsets, .. } | ConsumerStrategy::SubscribePattern { offsets, .. } => {
                offsets.extend(given)
            }
            ConsumerStrategy::Assign { partitions } => {
                for (p, o) in given {
                    partitions.insert(p, Some(o));
                }
            }
        }
        self
    }
}

/// A topic and a partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Per-partition rate limits (Spark's `PerPartitionConfig` and `spark.streaming.kafka.*Rate*`).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// Records per second a partition may contribute to a batch (0: unlimited).
    pub max_rate_per_partition: f64,
    /// The least a partition with data contributes when limited (Spark's default: 1).
    pub min_rate_per_partition: f64,
    /// Limits for particular partitions, over the two above: (max, min).
    pub per_partition: BTreeMap<TopicPartition, (f64, f64)>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits { max_rate_per_partition: 0.0, min_rate_per_partition: 1.0, per_partition: BTreeMap::new() }
    }
}

impl RateLimits {
    /// A limit of `max` records/s for every partition.
    pub fn max_per_partition(max: f64) -> Self {
        RateLimits { max_rate_per_partition: max, ..RateLimits::default() }
    }

    pub(crate) fn max_for(&self, tp: &TopicPartition) -> f64 {
        self.per_partition.get(tp).map_or(self.max_rate_per_partition, |l| l.0)
    }

    pub(crate) fn min_for(&self, tp: &TopicPartition) -> f64 {
        self.per_partition.get(tp).map_or(self.min_rate_per_partition, |l| l.1)
    }
}

/// One Kafka record (Spark's `ConsumerRecord`), with key and value as bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The record's offset in its partition.
    pub offset: i64,
    /// The record's timestamp (ms since the epoch), when it has one.
    pub timestamp: Option<i64>,
    /// The key, if any.
    pub key: Option<Vec<u8>>,
    /// The value (`None` for a tombstone).
    pub value: Option<Vec<u8>>,
}

/// `[from_offset, until_offset)` of one partition in one batch (Spark's `OffsetRange`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OffsetRange {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset of the range.
    pub from_offset: i64,
    /// One past the last offset of the range.
    pub until_offset: i64,
}

impl OffsetRange {
    /// The number of offsets in the range.
    pub fn count(&self) -> i64 {
        self.until_offset - self.from_offset
    }

    /// The range's partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }

    /// The line that stands for the range in `StreamInputInfo::metadata["offsets"]`.
    pub(crate) fn to_line(&self) -> String {
        format!("{}\t{}\t{}\t{}", self.topic, self.partition, self.from_offset, self.until_offset)
    }

    pub(crate) fn from_line(line: &str) -> Option<Self> {
        let mut f = line.split('\t');
        let r = OffsetRange {
            topic: f.next()?.to_owned(),
            partition: f.next()?.parse().ok()?,
            from_offset: f.next()?.parse().ok()?,
            until_offset: f.next()?.parse().ok()?,
        };
        f.next().is_none().then_some(r)
    }
}

/// The offset ranges of each batch, as output operations see them (Spark's `HasOffsetRanges`).
#[derive(Debug, Clone)]
pub struct OffsetRanges {
    meta: BatchMetadata,
}

impl OffsetRanges {
    /// Every partition's range in batch `t` (empty ranges included), sorted by topic and
    /// partition. Call it from an output operation of batch `t` (on the driver): the ranges are
    /// published before the batch's outputs run, and kept for 100 batches.
    pub fn get(&self, t: Time) -> Vec<OffsetRange> {
        let meta = self.meta.get(t);
        let mut ranges: Vec<OffsetRange> =
            meta.get("offsets").map(|s| s.lines().filter_map(OffsetRange::from_line).collect()).unwrap_or_default();
        ranges.sort();
        ranges
    }
}

/// Offsets queued by `commit_async`, committed by worker 0's consumer.
#[derive(Debug, Default)]
pub(crate) struct CommitQueue {
    pending: Mutex<BTreeMap<TopicPartition, i64>>,
}

impl CommitQueue {
    pub(crate) fn take(&self) -> BTreeMap<TopicPartition, i64> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A Kafka direct stream: the records, their offset ranges per batch, and the commit queue.
#[derive(Clone)]
pub struct KafkaStream {
    stream: DStream<ConsumerRecord>,
    meta: BatchMetadata,
    commits: Arc<CommitQueue>,
    bad: Arc<AtomicU64>,
}

impl KafkaStream {
    /// The records.
    pub fn stream(&self) -> &DStream<ConsumerRecord> {
        &self.stream
    }

    /// The offset ranges of each batch.
    pub fn offset_ranges(&self) -> OffsetRanges {
        OffsetRanges { meta: self.meta.clone() }
    }

    /// Queues `ranges` to be committed to the consumer group (Spark's `commitAsync`): per
    /// partition the highest `until_offset` is committed when the next batch is planned, or
    /// when the context stops. Needs a `group.id`.
    pub fn commit_async(&self, ranges: &[OffsetRange]) {
        let mut pending = self.commits.pending.lock().unwrap_or_else(|e| e.into_inner());
        for r in ranges {
            let e = pending.entry(r.topic_partition()).or_insert(r.until_offset);
            *e = (*e).max(r.until_offset);
        }
    }

    /// Records the decoding helpers skipped because they could not decode them.
    pub fn bad_records(&self) -> u64 {
        self.bad.load(Ordering::Relaxed)
    }
}

/// The partitions of `topic` (for a job that stores offsets itself, e.g. to initialise them).
pub fn partitions_of(bootstrap_servers: &str, topic: &str) -> Result<Vec<TopicPartition>, Error> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = KafkaParams::new(bootstrap_servers)
        .client_config(&[("group.id", "ember-metadata")])
        .create()
        .map_err(|e| Error::client(format!("cannot create a Kafka client for {bootstrap_servers}"), e))?;
    let md = consumer
        .fetch_metadata(None, std::time::Duration::from_secs(10))
        .map_err(|e| Error::client(format!("cannot read the cluster's metadata from {bootstrap_servers}"), e))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .ok_or_else(|| Error::Cluster(format!("topic `{topic}` does not exist")))?;
    Ok((0..t.partitions().len() as i32).map(|p| TopicPartition::new(topic, p)).collect())
}

/// Creates a direct stream (Spark's `KafkaUtils.createDirectStream`) with no rate limits beyond
/// backpressure.
pub fn create_direct_stream(ssc: &StreamingContext, strategy: ConsumerStrategy, params: KafkaParams) -> KafkaStream {
    create_direct_stream_with_limits(ssc, strategy, params, RateLimits::default())
}

/// Creates a direct stream with per-partition rate limits (spec §8.3).
pub fn create_direct_stream_with_limits(
    ssc: &StreamingContext,
    strategy: ConsumerStrategy,
    params: KafkaParams,
    limits: RateLimits,
) -> KafkaStream {
    let commits = Arc::new(CommitQueue::default());
    let queue = Arc::clone(&commits);
    let source = strategy.source();
    let (stream, meta) = ssc.planned_source("kafka direct stream", &source, move |env| {
        Ok(reader::KafkaReader::new(env, strategy.clone(), params.clone(), limits.clone(), Arc::clone(&queue))?)
    });
    KafkaStream { stream, meta, commits, bad: ember::operator::SkipCounters::for_last_input(ssc) }
}
