//! What the UI knows of the job: a listener folds the context's events into a [`Store`], and
//! every page, API path and metric reads it. The job never waits for the UI: events reach the
//! listener on the listener bus, after the job posted them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ember::plan::Plan;
use ember::{BatchInfo, ContextHandle, OutputOperationInfo, ReceiverInfo, StreamingListener};
use tokio::sync::watch;

/// Where a batch is (Spark's `BatchStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Submitted, waiting for its predecessor.
    Queued,
    /// Running its output operations.
    Processing,
    /// Every output operation ran (some may have failed).
    Completed,
}

impl Status {
    /// The REST API's name of the status.
    pub fn api(self) -> &'static str {
        match self {
            Status::Queued => "QUEUED",
            Status::Processing => "PROCESSING",
            Status::Completed => "COMPLETED",
        }
    }
}

/// One batch as the UI keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub info: BatchInfo,
    pub status: Status,
    /// Output operations by id, as their events arrived.
    pub ops: BTreeMap<usize, OutputOperationInfo>,
}

impl Batch {
    pub fn time(&self) -> u64 {
        self.info.batch_time.millis()
    }

    /// The first failure among the batch's output operations.
    pub fn first_failure(&self) -> Option<&str> {
        self.ops.values().find_map(|o| o.failure_reason.as_deref())
    }

    pub fn completed_ops(&self) -> usize {
        self.ops.values().filter(|o| o.end_time.is_some()).count()
    }

    pub fn failed_ops(&self) -> usize {
        self.ops.values().filter(|o| o.failure_reason.is_some()).count()
    }
}

/// The job as the UI sees it.
#[derive(Debug)]
pub(crate) struct Store {
    pub app_id: String,
    pub app_name: String,
    pub batch_ms: u64,
    /// The clock reading when the UI was attached (the application's start).
    pub attached: u64,
    /// The clock reading when the context started, once it has.
    pub started: Option<u64>,
    /// The job's zero time (batch `k` is at `zero + k * interval`), once started.
    pub zero: Option<u64>,
    /// Completed batches kept (`ui.retained_batches`).
    pub retained: usize,
    /// Active batches and the retained completed ones, by batch time.
    pub batches: BTreeMap<u64, Batch>,
    pub completed_total: u64,
    /// Records of every batch that started (Spark's `numReceivedRecords`).
    pub received_total: u64,
    /// Records of every batch that completed (Spark's `numProcessedRecords`).
    pub processed_total: u64,
    pub receivers: BTreeMap<usize, ReceiverInfo>,
    /// The plan, read when the context started (streams are declared before).
    pub plan: Plan,
    /// Hosts of the job's processes and workers per process, to place a worker.
    pub hosts: Vec<String>,
    pub workers_per_process: usize,
    /// Bumped on every change; live pages wait on it.
    pub version: u64,
}

impl Store {
    pub fn completed(&self) -> impl DoubleEndedIterator<Item = &Batch> {
        self.batches.values().filter(|b| b.status == Status::Completed)
    }

    pub fn active(&self) -> impl DoubleEndedIterator<Item = &Batch> {
        self.batches.values().filter(|b| b.status != Status::Completed)
    }

    /// Records per second of a batch: its records over the batch interval (Spark's input rate).
    pub fn rate(&self, records: u64) -> f64 {
        records as f64 * 1000.0 / self.batch_ms.max(1) as f64
    }

    /// Input rate of one input stream per retained completed batch.
    pub fn stream_rates(&self, stream: usize) -> Vec<(u64, f64)> {
        self.completed()
            .map(|b| {
                let n = b
                    .info
                    .stream_input_info
                    .iter()
                    .filter(|i| i.input_stream_id == stream)
                    .map(|i| i.num_records)
                    .sum();
                (b.time(), self.rate(n))
            })
            .collect()
    }

    /// The host of a worker, by its global index.
    pub fn host_of(&self, worker: usize) -> String {
        self.hosts
            .get(worker / self.workers_per_process.max(1))
            .map(|h| h.rsplit_once(':').map_or(h.as_str(), |(host, _)| host).to_owned())
            .unwrap_or_else(|| "127.0.0.1".to_owned())
    }

    /// The name of an output operation with the chain of operations it reads, newest first.
    pub fn op_description(&self, op: usize) -> String {
        let Some(out) = self.plan.outputs.get(op) else { return String::new() };
        let mut chain = vec![out.name.clone()];
        let mut node = Some(out.node);
        while let Some(n) = node.and_then(|id| self.plan.nodes.iter().find(|n| n.id == id)) {
            chain.push(n.name.clone());
            node = n.parents.first().copied();
        }
        chain.join(" <- ")
    }

    /// The output operations a batch at `t` runs (those whose slide divides the batch's offset
    /// from the first batch's grid).
    pub fn ops_due(&self, t: u64) -> usize {
        let zero = self.zero.unwrap_or(0);
        self.plan.outputs.iter().filter(|o| t.saturating_sub(zero).is_multiple_of(o.slide_ms.max(1))).count()
    }

    fn touch(&mut self) {
        self.version += 1;
    }

    fn batch(&mut self, info: &BatchInfo, status: Status) -> &mut Batch {
        let b = self.batches.entry(info.batch_time.millis()).or_insert_with(|| Batch {
            info: info.clone(),
            status,
            ops: BTreeMap::new(),
        });
        b.info = info.clone();
        b.status = status;
        b
    }

    fn prune(&mut self) {
        let completed: Vec<u64> = self.completed().map(Batch::time).collect();
        if completed.len() > self.retained {
            for t in &completed[..completed.len() - self.retained] {
                self.batches.remove(t);
            }
        }
    }
}

/// The store behind a lock, with the version channel live pages wait on.
#[derive(Clone)]
pub(crate) struct Shared {
    store: Arc<Mutex<Store>>,
    pub changes: watch::Sender<u64>,
}

impl Shared {
    pub fn new(store: Store) -> Self {
        Shared { store: Arc::new(Mutex::new(store)), changes: watch::channel(0).0 }
    }

    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Store)) {
        let version = {
            let mut s = self.lock();
            f(&mut s);
            s.touch();
            s.version
        };
        self.changes.send_replace(version);
    }
}

/// Folds listener events into the store.
pub(crate) struct UiListener {
    pub shared: Shared,
    /// The context, for what is known once it started: the plan (streams may be declared after
    /// `attach`) and the zero time.
    pub context: ContextHandle,
}

impl StreamingListener for UiListener {
    fn on_streaming_started(&mut self, time: u64) {
        let plan = self.context.plan().unwrap_or_default();
        let zero = self.context.zero_time().map(|t| t.millis());
        self.shared.update(|s| {
            s.started = Some(time);
            s.zero = zero;
            s.plan = plan;
        });
    }

    fn on_receiver_started(&mut self, info: &ReceiverInfo) {
        self.shared.update(|s| {
            s.receivers.insert(info.stream_id, info.clone());
        });
    }

    fn on_receiver_error(&mut self, info: &ReceiverInfo) {
        self.on_receiver_started(info);
    }

    fn on_receiver_stopped(&mut self, info: &ReceiverInfo) {
        self.on_receiver_started(info);
    }

    fn on_batch_submitted(&mut self, info: &BatchInfo) {
        self.shared.update(|s| {
            s.batch(info, Status::Queued);
        });
    }

    fn on_batch_started(&mut self, info: &BatchInfo) {
        self.shared.update(|s| {
            s.received_total += info.num_records();
            s.batch(info, Status::Processing);
        });
    }

    fn on_batch_completed(&mut self, info: &BatchInfo) {
        self.shared.update(|s| {
            s.completed_total += 1;
            s.processed_total += info.num_records();
            let b = s.batch(info, Status::Completed);
            for op in &info.output_operation_infos {
                b.ops.insert(op.id, op.clone());
            }
            s.prune();
        });
    }

    fn on_output_operation_started(&mut self, info: &OutputOperationInfo) {
        self.on_output_operation_completed(info);
    }

    fn on_output_operation_completed(&mut self, info: &OutputOperationInfo) {
        self.shared.update(|s| {
            if let Some(b) = s.batches.get_mut(&info.batch_time.millis()) {
                b.ops.insert(info.id, info.clone());
            }
        });
    }
}
