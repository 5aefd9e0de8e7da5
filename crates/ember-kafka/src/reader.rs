//! One worker's share of a direct stream: its partitions, their offsets, and the reads.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::sync::Arc;
use std::time::Duration;

use ember::clock::Stopwatch;
use ember::operator::{PlanEnv, PlannedSource};
use ember::Time;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, DefaultConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use regex::Regex;

use crate::plan::{clamp, owner, resolve_start, Reset};
use crate::{
    CommitQueue, ConsumerRecord, ConsumerStrategy, Error, KafkaParams, OffsetRange, RateLimits, TopicPartition,
};

type Queue = rdkafka::consumer::base_consumer::PartitionQueue<DefaultConsumerContext>;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long planning waits for a newly assigned partition's first fetch response.
const FIRST_FETCH_WAIT: Duration = Duration::from_secs(2);

pub(crate) struct KafkaReader {
    consumer: Arc<BaseConsumer>,
    /// The consumer's configuration, to create it anew.
    config: rdkafka::ClientConfig,
    /// The brokers' connections were lost since the consumer was created (see `renew`).
    lost: bool,
    worker: usize,
    workers: usize,
    batch_ms: u64,
    strategy: ConsumerStrategy,
    pattern: Option<Regex>,
    limits: RateLimits,
    commits: Arc<CommitQueue>,
    reset: Reset,
    group: bool,
    servers: String,
    read_timeout: Duration,
    discovery_ms: u64,
    last_discovery: Option<u64>,
    /// This worker's partitions, with the next offset to plan from.
    current: BTreeMap<TopicPartition, i64>,
    /// Partitions of the stream on all workers (for this worker's share of the rate).
    total_partitions: usize,
    queues: BTreeMap<TopicPartition, Queue>,
    /// The offset each partition's queue delivers next.
    fetch_pos: BTreeMap<TopicPartition, i64>,
    /// A record read past the end of a range, kept for the next one.
    stash: BTreeMap<TopicPartition, ConsumerRecord>,
    warned: BTreeSet<String>,
    last_error: Option<String>,
    /// Partitions assigned whose first fetch response has not been waited for.
    unfetched: BTreeSet<TopicPartition>,
}

impl KafkaReader {
    pub(crate) fn new(
        env: &PlanEnv,
        strategy: ConsumerStrategy,
        params: KafkaParams,
        limits: RateLimits,
        commits: Arc<CommitQueue>,
    ) -> Result<Self, Error> {
        let reset = Reset::parse(params.get("auto.offset.reset"))?;
        let servers = params
            .get("bootstrap.servers")
            .or_else(|| params.get("metadata.broker.list"))
            .ok_or_else(|| Error::Config("the Kafka parameters have no `bootstrap.servers`".into()))?
            .to_owned();
        let pattern = match &strategy {
            ConsumerStrategy::SubscribePattern { pattern, .. } => {
                Some(Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                    Error::Config(format!("the topic pattern `{pattern}` is not a regular expression: {e}"))
                })?)
            }
            _ => None,
        };
        let read_timeout = Duration::from_millis(params.ember_millis("ember.read.timeout.ms", 60_000)?);
        let discovery_ms = params.ember_millis("ember.partition.discovery.interval.ms", 5_000)?;
        let group = params.get("group.id").is_some();
        let mut overrides = vec![
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            // Ember decides where partitions start; a fetch out of range is reported, not reset.
            ("auto.offset.reset", "error"),
        ];
        if !group {
            // librdkafka needs a group id to assign partitions; nothing is committed without one.
            overrides.push(("group.id", "ember-direct-stream"));
        }
        let mut config = params.client_config(&overrides);
        if params.get("isolation.level").is_none() {
            config.set("isolation.level", "read_uncommitted");
        }
        let consumer: BaseConsumer =
            config.create().map_err(|e| Error::client(format!("cannot create a Kafka consumer for {servers}"), e))?;
        Ok(KafkaReader {
            consumer: Arc::new(consumer),
            config,
            lost: false,
            worker: env.worker,
            workers: env.workers,
            batch_ms: env.batch_ms,
            strategy,
            pattern,
            limits,
            commits,
            reset,
            group,
            servers,
            read_timeout,
            discovery_ms,
            last_discovery: None,
            current: BTreeMap::new(),
            total_partitions: 0,
            queues: BTreeMap::new(),
            fetch_pos: BTreeMap::new(),
            stash: BTreeMap::new(),
            warned: BTreeSet::new(),
            last_error: None,
            unfetched: BTreeSet::new(),
        })
    }

    /// Commits what `commit_async` queued (worker 0 only).
    fn commit_queued(&mut self, mode: CommitMode) {
        if self.worker != 0 {
            return;
        }
        let pending = self.commits.take();
        if pending.is_empty() {
            return;
        }
        if !self.group {
            tracing::error!(
                "kafka: commit_async needs a `group.id` in the Kafka parameters; {} offsets dropped",
                pending.len()
            );
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, offset) in &pending {
            if let Err(e) = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset)) {
                tracing::error!("kafka: cannot commit {tp} at {offset}: {e}");
            }
        }
        match self.consumer.commit(&tpl, mode) {
            Ok(()) => tracing::debug!("kafka: committed {} partition offsets", pending.len()),
            Err(e) => tracing::warn!("kafka: committing offsets failed: {e}"),
        }
    }

    /// Serves the consumer's events (errors, commit results); keeps the last error.
    fn serve_events(&mut self) {
        use rdkafka::types::RDKafkaErrorCode::{AllBrokersDown, BrokerTransportFailure};
        while let Some(r) = self.consumer.poll(Duration::ZERO) {
            match r {
                Err(e) => {
                    tracing::debug!("kafka: {e}");
                    if matches!(e.rdkafka_error_code(), Some(AllBrokersDown | BrokerTransportFailure)) {
                        self.lost = true;
                    }
                    self.last_error = Some(e.to_string());
                }
                Ok(m) => {
                    // Never expected (every assigned partition has its own queue): re-read the
                    // partition from where the next read starts rather than lose the record.
                    let tp = TopicPartition::new(m.topic(), m.partition());
                    tracing::warn!(
                        "kafka: a record of {tp} at offset {} reached the main queue; {tp} is read again",
                        m.offset()
                    );
                    self.fetch_pos.remove(&tp);
                    self.stash.remove(&tp);
                }
            }
        }
    }

    /// Every partition the strategy names now, from the cluster's metadata. `Ok(Err(..))` when
    /// the brokers cannot be reached (worth retrying), `Err` when the strategy cannot be met.
    fn all_partitions(&mut self, timeout: Duration) -> Result<Result<Vec<TopicPartition>, Error>, Error> {
        let md = match self.consumer.fetch_metadata(None, timeout) {
            Ok(md) => md,
            Err(e) => {
                self.lost = true;
                return Ok(Err(Error::client(format!("cannot read the cluster's metadata from {}", self.servers), e)));
            }
        };
        let topics: BTreeMap<&str, i32> = md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name(), t.partitions().len() as i32))
            .collect();
        let mut all = Vec::new();
        match &self.strategy {
            ConsumerStrategy::Subscribe { topics: wanted, .. } => {
                for t in wanted {
                    match topics.get(t.as_str()) {
                        Some(&n) => all.extend((0..n).map(|p| TopicPartition::new(t.clone(), p))),
                        None => {
                            if self.warned.insert(t.clone()) {
                                tracing::warn!("kafka: subscribed topic `{t}` does not exist (yet); its batches stay empty until it does");
                            }
                        }
                    }
                }
            }
            ConsumerStrategy::SubscribePattern { .. } => {
                let re = self.pattern.as_ref().expect("a pattern strategy has a regex");
                for (t, &n) in &topics {
                    if !t.starts_with("__") && re.is_match(t) {
                        all.extend((0..n).map(|p| TopicPartition::new(*t, p)));
                    }
                }
            }
            ConsumerStrategy::Assign { partitions } => {
                for tp in partitions.keys() {
                    match topics.get(tp.topic.as_str()) {
                        None => return Err(Error::Cluster(format!("assigned topic `{}` does not exist", tp.topic))),
                        Some(&n) if tp.partition >= n || tp.partition < 0 => {
                            return Err(Error::Cluster(format!(
                                "assigned partition {tp} does not exist: `{}` has {n}",
                                tp.topic
                            )))
                        }
                        Some(_) => all.push(tp.clone()),
                    }
                }
            }
        }
        Ok(Ok(all))
    }

    /// Finds partitions (at the first batch: retrying with back-off until the read timeout).
    fn discover(&mut self, t: u64) -> Result<(), Error> {
        let first = self.last_discovery.is_none();
        if !first && t < self.last_discovery.unwrap_or(0) + self.discovery_ms {
            return Ok(());
        }
        let watch = Stopwatch::start();
        let mut backoff = Duration::from_millis(100);
        let all = loop {
            let left = self.read_timeout.saturating_sub(watch.elapsed()).max(Duration::from_millis(100));
            match self.all_partitions(left.min(REQUEST_TIMEOUT))? {
                Ok(all) => break all,
                Err(e) if first && watch.elapsed() < self.read_timeout => {
                    tracing::warn!("kafka: {e}; retrying in {} ms", backoff.as_millis());
                    ember::clock::real_sleep(backoff.min(self.read_timeout.saturating_sub(watch.elapsed())));
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) if first => {
                    return Err(Error::Cluster(format!("{e} (gave up after {} ms)", self.read_timeout.as_millis())))
                }
                Err(e) => {
                    tracing::warn!("kafka: partition discovery failed: {e}; keeping the known partitions");
                    // While the brokers are away, a consumer that knows no topic id replaces
                    // this one (see `renew`).
                    return self.renew();
                }
            }
        };
        self.last_discovery = Some(t);
        self.total_partitions = all.len().max(self.current.len());
        let new: Vec<TopicPartition> = all
            .into_iter()
            .filter(|tp| owner(tp, self.workers) == self.worker && !self.current.contains_key(tp))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let starts = self.starting_offsets(&new)?;
        for (tp, offset) in new.into_iter().zip(starts) {
            tracing::info!("kafka: worker {} reads {tp} from offset {offset}", self.worker);
            self.current.insert(tp, offset);
        }
        self.reassign()
    }

    /// Where new partitions start: given offsets, then the group's committed ones, then the
    /// reset policy; each checked against the log.
    fn starting_offsets(&mut self, parts: &[TopicPartition]) -> Result<Vec<i64>, Error> {
        let given: BTreeMap<TopicPartition, i64> = match &self.strategy {
            ConsumerStrategy::Subscribe { offsets, .. } | ConsumerStrategy::SubscribePattern { offsets, .. } => {
                offsets.clone()
            }
            ConsumerStrategy::Assign { partitions } => {
                partitions.iter().filter_map(|(tp, o)| o.map(|o| (tp.clone(), o))).collect()
            }
        };
        let mut committed = BTreeMap::new();
        if self.group && parts.iter().any(|tp| !given.contains_key(tp)) {
            let mut tpl = TopicPartitionList::new();
            for tp in parts.iter().filter(|tp| !given.contains_key(*tp)) {
                tpl.add_partition(&tp.topic, tp.partition);
            }
            match self.consumer.committed_offsets(tpl, REQUEST_TIMEOUT) {
                Ok(list) => {
                    for e in list.elements() {
                        if let Offset::Offset(o) = e.offset() {
                            committed.insert(TopicPartition::new(e.topic(), e.partition()), o);
                        }
                    }
                }
                Err(e) => return Err(Error::client("cannot read the group's committed offsets", e)),
            }
        }
        let mut out = Vec::with_capacity(parts.len());
        for tp in parts {
            let (low, high) = self
                .consumer
                .fetch_watermarks(&tp.topic, tp.partition, REQUEST_TIMEOUT)
                .map_err(|e| Error::client(format!("cannot read the offsets of {tp}"), e))?;
            let start = match given.get(tp).or_else(|| committed.get(tp)) {
                // A requested offset above ListOffsets' end is not checked: some brokers
                // under-report it (see the crate docs); a fetch past the end is caught later.
                Some(&o) => resolve_start(tp, o, low, high.max(o), self.reset)?,
                None => match self.reset {
                    Reset::Earliest => low,
                    Reset::Latest => high,
                    Reset::None => {
                        return Err(Error::Cluster(format!(
                            "{tp} has no committed offset for the group and auto.offset.reset is none"
                        )))
                    }
                },
            };
            out.push(start);
        }
        Ok(out)
    }

    /// Creates the consumer anew once the brokers' connections were lost, and assigns it this
    /// worker's partitions at their current offsets.
    ///
    /// librdkafka 2.12.1 crashes (SIGSEGV in `rd_kafka_metadata_cache_find`, on its own thread)
    /// when a fetch response carries a partition leader change (KIP-951) for a topic whose id
    /// it no longer knows: it then looks the topic up by a name it never set. A broker that comes
    /// back without the topic it had (tansu, which keeps topics in memory; a topic deleted and
    /// created again) sends such responses to a consumer of the old connection. A consumer
    /// created while the brokers are away knows no topic id and fetches only once the metadata
    /// names the topic again, so it never meets those responses. The brokers must stay away
    /// until the next batch (or read) notices their loss; a faster restart is not covered.
    fn renew(&mut self) -> Result<(), Error> {
        if !self.lost {
            return Ok(());
        }
        self.lost = false;
        tracing::info!(
            "kafka: worker {}: the brokers' connections were lost; the consumer is created anew",
            self.worker
        );
        self.queues.clear();
        let consumer: BaseConsumer = self
            .config
            .create()
            .map_err(|e| Error::client(format!("cannot create a Kafka consumer for {}", self.servers), e))?;
        self.consumer = Arc::new(consumer);
        self.unfetched.clear();
        if self.current.is_empty() {
            return Ok(());
        }
        self.reassign()
    }

    /// Assigns this worker's partitions at their current offsets, with one queue each.
    fn reassign(&mut self) -> Result<(), Error> {
        let mut tpl = TopicPartitionList::new();
        for (tp, offset) in &self.current {
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                .map_err(|e| Error::client(format!("cannot assign {tp}"), e))?;
        }
        self.queues.clear();
        // Each partition's queue is split off before the assignment starts its fetches: a
        // record fetched in between would land on the consumer's main queue, where no read
        // looks for it (and the consumer's position would pass it). librdkafka keeps a forward
        // the application set when the fetch starts.
        for tp in self.current.keys() {
            let q = self
                .consumer
                .split_partition_queue(&tp.topic, tp.partition)
                .ok_or_else(|| Error::Cluster(format!("cannot open a queue for {tp}")))?;
            self.queues.insert(tp.clone(), q);
        }
        self.consumer.assign(&tpl).map_err(|e| Error::client("cannot assign partitions", e))?;
        self.fetch_pos = self.current.clone();
        self.stash.clear();
        self.unfetched = self.current.keys().cloned().collect();
        Ok(())
    }

    /// The partition's end as the consumer's fetch responses reported it (`None` before the
    /// first response).
    fn fetched_high(&self, tp: &TopicPartition) -> Option<i64> {
        let topic = CString::new(tp.topic.as_str()).ok()?;
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the consumer's handle is alive for the call, `topic` is a valid C string, and
        // librdkafka writes the two offsets through the given pointers only.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                tp.partition,
                &mut low,
                &mut high,
            )
        };
        (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
    }

    /// The end of `tp` to plan to: fetch responses first, ListOffsets before any.
    fn latest(&mut self, tp: &TopicPartition, from: i64) -> Result<i64, Error> {
        if self.unfetched.remove(tp) {
            // Just assigned: give the consumer a moment for its first fetch response, so that a
            // batch right after the start sees what the log holds.
            let watch = Stopwatch::start();
            while self.fetched_high(tp).is_none() && watch.elapsed() < FIRST_FETCH_WAIT.min(self.read_timeout) {
                self.serve_events();
                ember::clock::real_sleep(Duration::from_millis(2));
            }
        }
        if let Some(high) = self.fetched_high(tp) {
            if high < from {
                // The log is shorter than what was read: it was recreated or lost.
                let (low, end) =
                    self.consumer.fetch_watermarks(&tp.topic, tp.partition, REQUEST_TIMEOUT).unwrap_or((0, high));
                let start = resolve_start(tp, from, low, end.max(high), self.reset)?;
                self.current.insert(tp.clone(), start);
                return Ok(high.max(start));
            }
            return Ok(high);
        }
        // Before the first fetch response: ListOffsets, which may under-report (never over).
        match self.consumer.fetch_watermarks(&tp.topic, tp.partition, Duration::from_secs(1)) {
            Ok((low, high)) if high < from && self.fetch_out_of_range(tp) => {
                // The log is shorter than what was read: it was recreated or lost. Assign
                // again at the new start, so the consumer fetches the partition again.
                let start = resolve_start(tp, from, low, high, self.reset)?;
                self.current.insert(tp.clone(), start);
                self.reassign()?;
                Ok(start)
            }
            Ok((_, high)) => Ok(high.max(from)),
            Err(e) => {
                tracing::debug!("kafka: no end offset for {tp} yet: {e}");
                Ok(from)
            }
        }
    }

    /// Whether the consumer reported a fetch of `tp` out of range. A fetch from past the end of a
    /// recreated log fails (`auto.offset.reset` is `error` for the consumer): librdkafka reports
    /// it on the partition's queue and stops fetching the partition, so no fetch response ever
    /// tells its end. A record found instead is kept for the next read.
    fn fetch_out_of_range(&mut self, tp: &TopicPartition) -> bool {
        use rdkafka::types::RDKafkaErrorCode::{AutoOffsetReset, OffsetOutOfRange};
        if self.stash.contains_key(tp) {
            return false; // a record past what was read: the fetches work
        }
        let Some(queue) = self.queues.get(tp) else { return false };
        match queue.poll(Duration::ZERO) {
            Some(Err(e)) => {
                tracing::debug!("kafka: {tp}: {e}");
                self.last_error = Some(e.to_string());
                matches!(e.rdkafka_error_code(), Some(OffsetOutOfRange | AutoOffsetReset))
            }
            Some(Ok(m)) => {
                let rec = Self::record(&m);
                drop(m);
                self.stash.insert(tp.clone(), rec);
                false
            }
            None => false,
        }
    }

    fn record(m: &BorrowedMessage<'_>) -> ConsumerRecord {
        ConsumerRecord {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
        }
    }

    /// The consumer's position in `tp` (past gaps such as transaction markers).
    fn position(&self, tp: &TopicPartition) -> Option<i64> {
        let list = self.consumer.position().ok()?;
        let e = list.find_partition(&tp.topic, tp.partition)?;
        match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    }

    /// Reads `[from, until)` of one partition into `out`.
    fn read_range(&mut self, r: &OffsetRange, out: &mut Vec<ConsumerRecord>) -> Result<(), Error> {
        let tp = r.topic_partition();
        if !self.queues.contains_key(&tp) {
            // A logged range of a partition not assigned yet (a re-run after a recovery).
            self.current.insert(tp.clone(), r.from_offset);
            self.reassign()?;
        }
        if self.fetch_pos.get(&tp) != Some(&r.from_offset) {
            self.stash.remove(&tp);
            self.consumer
                .seek(&tp.topic, tp.partition, Offset::Offset(r.from_offset), REQUEST_TIMEOUT)
                .map_err(|e| Error::client(format!("cannot seek {tp} to {}", r.from_offset), e))?;
            self.fetch_pos.insert(tp.clone(), r.from_offset);
        }
        let mut next = r.from_offset;
        if let Some(rec) = self.stash.remove(&tp) {
            if rec.offset >= r.until_offset {
                self.stash.insert(tp.clone(), rec);
                next = r.until_offset;
            } else if rec.offset >= next {
                next = rec.offset + 1;
                out.push(rec);
            }
        }
        let mut idle = Stopwatch::start();
        while next < r.until_offset {
            let polled = self.queues[&tp].poll(Duration::from_millis(100));
            match polled {
                Some(Ok(m)) => {
                    let offset = m.offset();
                    if offset < next {
                        continue;
                    }
                    let rec = Self::record(&m);
                    drop(m);
                    if offset >= r.until_offset {
                        self.stash.insert(tp.clone(), rec);
                        break;
                    }
                    out.push(rec);
                    next = offset + 1;
                    idle = Stopwatch::start();
                }
                Some(Err(e)) => {
                    tracing::debug!("kafka: {tp}: {e}");
                    self.last_error = Some(e.to_string());
                }
                None => {
                    self.serve_events();
                    if self.lost {
                        // Go on from `next` with a consumer of its own (see `renew`).
                        self.current.insert(tp.clone(), next);
                        self.stash.remove(&tp);
                        self.renew()?;
                        continue;
                    }
                    if self.position(&tp).is_some_and(|p| p >= r.until_offset) {
                        break; // the rest of the range is a gap (transaction markers, compaction)
                    }
                    if idle.elapsed() > self.read_timeout {
                        return Err(Error::Cluster(format!(
                            "could not read offsets {next}..{} of {tp} from {} within {} ms{}",
                            r.until_offset,
                            self.servers,
                            self.read_timeout.as_millis(),
                            self.last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
                        )));
                    }
                }
            }
        }
        self.fetch_pos.insert(tp.clone(), r.until_offset);
        self.current.insert(tp, r.until_offset);
        Ok(())
    }
}

impl PlannedSource for KafkaReader {
    type Item = ConsumerRecord;
    type Plan = Vec<OffsetRange>;

    fn plan(&mut self, batch: Time, rate: Option<f64>) -> ember::Result<Vec<OffsetRange>> {
        self.commit_queued(CommitMode::Async);
        self.serve_events();
        self.renew()?;
        self.discover(batch.millis())?;
        let mut parts = Vec::with_capacity(self.current.len());
        let tps: Vec<TopicPartition> = self.current.keys().cloned().collect();
        for tp in tps {
            let from = self.current[&tp];
            let latest = self.latest(&tp, from)?;
            // `latest` may have moved the partition's start (a log that was recreated).
            parts.push((tp.clone(), self.current[&tp], latest));
        }
        let share = rate.map(|r| r * parts.len() as f64 / self.total_partitions.max(1) as f64);
        let until = clamp(&parts, share, &self.limits, self.batch_ms);
        Ok(parts
            .into_iter()
            .zip(until)
            .map(|((tp, from, _), until)| OffsetRange {
                topic: tp.topic,
                partition: tp.partition,
                from_offset: from,
                until_offset: until,
            })
            .collect())
    }

    fn read(&mut self, _batch: Time, plan: &Vec<OffsetRange>, out: &mut Vec<ConsumerRecord>) -> ember::Result<()> {
        self.serve_events();
        self.renew()?;
        for r in plan {
            if r.count() > 0 {
                self.read_range(r, out)?;
            } else {
                self.current.insert(r.topic_partition(), r.until_offset);
            }
        }
        Ok(())
    }

    fn metadata(&self, plan: &Vec<OffsetRange>) -> Vec<(String, String)> {
        if plan.is_empty() {
            return Vec::new();
        }
        let offsets = plan.iter().map(OffsetRange::to_line).collect::<Vec<_>>().join("\n");
        let mut nonempty: Vec<&OffsetRange> = plan.iter().filter(|r| r.count() > 0).collect();
        nonempty.sort_by_key(|r| std::cmp::Reverse(r.count()));
        let description = nonempty
            .iter()
            .map(|r| {
                format!(
                    "topic: {}\tpartition: {}\toffsets: {} to {}\tcount: {}",
                    r.topic,
                    r.partition,
                    r.from_offset,
                    r.until_offset,
                    r.count()
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let mut meta = vec![("offsets".to_owned(), offsets)];
        if !description.is_empty() {
            meta.push(("Description".to_owned(), description));
        }
        meta
    }

    fn position(&self) -> Option<Vec<u8>> {
        let list: Vec<(&str, i32, i64)> =
            self.current.iter().map(|(tp, o)| (tp.topic.as_str(), tp.partition, *o)).collect();
        serde_json::to_vec(&list).ok()
    }

    fn restore(&mut self, position: &[u8]) -> ember::Result<()> {
        let list: Vec<(String, i32, i64)> =
            serde_json::from_slice(position).map_err(|e| Error::Config(format!("not a Kafka stream position: {e}")))?;
        self.current = list.into_iter().map(|(t, p, o)| (TopicPartition::new(t, p), o)).collect();
        if !self.current.is_empty() {
            self.reassign()?;
        }
        Ok(())
    }

    /// A rescale: of the partitions every old worker read, the ones this worker now owns.
    fn restore_rescaled(&mut self, positions: Vec<Vec<u8>>) -> ember::Result<()> {
        let mut mine = BTreeMap::new();
        for position in positions {
            let list: Vec<(String, i32, i64)> = serde_json::from_slice(&position)
                .map_err(|e| Error::Config(format!("not a Kafka stream position: {e}")))?;
            for (t, p, o) in list {
                let tp = TopicPartition::new(t, p);
                if owner(&tp, self.workers) == self.worker {
                    mine.insert(tp, o);
                }
            }
        }
        self.current = mine.into_iter().collect();
        if !self.current.is_empty() {
            self.reassign()?;
        }
        Ok(())
    }

    fn stop(&mut self) {
        // Unlike Spark (SPARK-20050), offsets queued in the last batches are committed.
        self.commit_queued(CommitMode::Sync);
        self.queues.clear();
        self.stash.clear();
    }
}
