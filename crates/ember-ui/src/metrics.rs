//! Prometheus text format at `/metrics` (and `/metrics/prometheus`, Spark's path): Spark's
//! `StreamingSource` gauges under Prometheus names, and what Ember knows beyond them.

use std::fmt::Write;

use ember::{InputCounters, StorageCounters};

use crate::store::Store;

struct Out {
    text: String,
    app: String,
}

impl Out {
    fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let sep = if labels.is_empty() { "" } else { "," };
            let _ = writeln!(self.text, "{name}{{app=\"{}\"{sep}{labels}}} {v}", self.app);
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, v: f64) {
        self.metric(name, kind, help, &[(String::new(), v)]);
    }
}

/// A label value with `\`, `"` and new lines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The whole scrape.
pub fn render(s: &Store, inputs: InputCounters, storage: StorageCounters, skipped: &[(String, u64)]) -> String {
    let mut o = Out { text: String::new(), app: label(&s.app_name) };
    let waiting = s.batches.values().filter(|b| b.status == crate::store::Status::Queued).count();
    let running = s.batches.values().filter(|b| b.status == crate::store::Status::Processing).count();
    o.one(
        "ember_streaming_receivers",
        "gauge",
        "Receivers of the job (Spark: streaming.receivers).",
        s.receivers.len() as f64,
    );
    o.one(
        "ember_streaming_completed_batches_total",
        "counter",
        "Batches completed (Spark: streaming.totalCompletedBatches).",
        s.completed_total as f64,
    );
    o.one(
        "ember_streaming_received_records_total",
        "counter",
        "Records of every batch that started (Spark: streaming.totalReceivedRecords).",
        s.received_total as f64,
    );
    o.one(
        "ember_streaming_processed_records_total",
        "counter",
        "Records of every batch that completed (Spark: streaming.totalProcessedRecords).",
        s.processed_total as f64,
    );
    o.one(
        "ember_streaming_unprocessed_batches",
        "gauge",
        "Batches waiting or running (Spark: streaming.unprocessedBatches).",
        (waiting + running) as f64,
    );
    o.one(
        "ember_streaming_waiting_batches",
        "gauge",
        "Batches waiting (Spark: streaming.waitingBatches).",
        waiting as f64,
    );
    o.one(
        "ember_streaming_running_batches",
        "gauge",
        "Batches running (Spark: streaming.runningBatches).",
        running as f64,
    );
    o.one(
        "ember_streaming_retained_completed_batches",
        "gauge",
        "Completed batches the UI keeps (Spark: streaming.retainedCompletedBatches).",
        s.completed().count() as f64,
    );
    let last = s.completed().next_back();
    let info = last.map(|b| &b.info);
    let ms = |v: Option<u64>| v.map_or(-1.0, |v| v as f64);
    for (name, spark, v) in [
        ("submission_time_ms", "submissionTime", info.map(|i| i.submission_time)),
        ("processing_start_time_ms", "processingStartTime", info.and_then(|i| i.processing_start_time)),
        ("processing_end_time_ms", "processingEndTime", info.and_then(|i| i.processing_end_time)),
        ("processing_delay_ms", "processingDelay", info.and_then(|i| i.processing_delay())),
        ("scheduling_delay_ms", "schedulingDelay", info.and_then(|i| i.scheduling_delay())),
        ("total_delay_ms", "totalDelay", info.and_then(|i| i.total_delay())),
    ] {
        o.one(
            &format!("ember_streaming_last_completed_batch_{name}"),
            "gauge",
            &format!("Of the last completed batch; -1 before one (Spark: streaming.lastCompletedBatch_{spark})."),
            ms(v),
        );
    }
    o.one(
        "ember_streaming_last_completed_batch_records",
        "gauge",
        "Records of the last completed batch (Spark: streaming.lastReceivedBatch_records).",
        info.map_or(0.0, |i| i.num_records() as f64),
    );
    // Beyond Spark.
    let names = |id: usize| s.plan.inputs.get(id).map_or_else(|| format!("input {id}"), |i| i.name.clone());
    let per_input: Vec<(String, f64)> = info
        .map(|i| {
            i.stream_input_info
                .iter()
                .map(|x| {
                    (
                        format!("stream=\"{}\",name=\"{}\"", x.input_stream_id, label(&names(x.input_stream_id))),
                        x.num_records as f64,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    o.metric(
        "ember_input_last_batch_records",
        "gauge",
        "Records each input stream gave the last completed batch.",
        &per_input,
    );
    let limits: Vec<(String, f64)> = info
        .map(|i| {
            i.stream_input_info
                .iter()
                .filter_map(|x| x.rate_limit.map(|r| (x.input_stream_id, r)))
                .map(|(id, r)| (format!("stream=\"{id}\",name=\"{}\"", label(&names(id))), r))
                .collect()
        })
        .unwrap_or_default();
    o.metric(
        "ember_input_rate_limit_records_per_second",
        "gauge",
        "Each limited input's rate limit at the last completed batch.",
        &limits,
    );
    let receivers: Vec<(String, f64)> = s
        .receivers
        .values()
        .map(|r| (format!("stream=\"{}\",name=\"{}\"", r.stream_id, label(&r.name)), f64::from(u8::from(r.active))))
        .collect();
    o.metric("ember_receiver_active", "gauge", "1 while a receiver receives, 0 once it stopped.", &receivers);
    let errors: Vec<(String, f64)> = s
        .receivers
        .values()
        .map(|r| (format!("stream=\"{}\",name=\"{}\"", r.stream_id, label(&r.name)), ms(r.last_error_time)))
        .collect();
    o.metric(
        "ember_receiver_last_error_time_ms",
        "gauge",
        "When each receiver last reported an error; -1 if never.",
        &errors,
    );
    let ops: Vec<(String, f64)> = last
        .map(|b| {
            b.ops
                .values()
                .filter_map(|op| {
                    op.duration().map(|d| (format!("op=\"{}\",name=\"{}\"", op.id, label(&op.name)), d as f64))
                })
                .collect()
        })
        .unwrap_or_default();
    let op_records: Vec<(String, f64)> = s
        .plan
        .nodes
        .iter()
        .map(|n| {
            let v = info.and_then(|i| i.operation_records.get(&n.id)).copied().unwrap_or(0);
            (format!("node=\"{}\",name=\"{}\"", n.id, label(&n.name)), v as f64)
        })
        .collect();
    o.metric(
        "ember_operation_last_batch_records",
        "gauge",
        "Records each operation of the plan produced in the last completed batch.",
        &op_records,
    );
    o.metric(
        "ember_output_operation_last_duration_ms",
        "gauge",
        "Each output operation's duration in the last completed batch.",
        &ops,
    );
    let failed: Vec<(String, f64)> = s
        .plan
        .outputs
        .iter()
        .map(|op| {
            let n = s.completed().filter(|b| b.ops.get(&op.id).is_some_and(|o| o.failure_reason.is_some())).count();
            (format!("op=\"{}\",name=\"{}\"", op.id, label(&op.name)), n as f64)
        })
        .collect();
    o.metric(
        "ember_output_operation_retained_failures",
        "gauge",
        "Failures of each output operation among the retained batches.",
        &failed,
    );
    o.one(
        "ember_input_received_records_total",
        "counter",
        "Records the receivers of the driver process took in.",
        inputs.received as f64,
    );
    o.one(
        "ember_input_oversized_lines_skipped_total",
        "counter",
        "Lines the driver process's line inputs skipped for being longer than receiver.max_line_bytes.",
        inputs.oversized_skipped as f64,
    );
    o.one(
        "ember_input_invalid_utf8_lines_total",
        "counter",
        "Lines the driver process's line inputs read with invalid UTF-8 (kept with replacement characters).",
        inputs.invalid_utf8 as f64,
    );
    let skipped: Vec<(String, f64)> =
        skipped.iter().map(|(name, n)| (format!("input=\"{}\"", label(name)), *n as f64)).collect();
    o.metric(
        "ember_input_skipped_records_total",
        "counter",
        "Records a connector's decoding helper skipped as bad (not UTF-8, not the expected JSON), in the driver process.",
        &skipped,
    );
    o.one("ember_checkpoints_total", "counter", "Checkpoints committed.", storage.checkpoints as f64);
    o.one(
        "ember_checkpoint_last_time_ms",
        "gauge",
        "Batch time of the last checkpoint; -1 before one.",
        storage.last_checkpoint_time.map_or(-1.0, |t| t as f64),
    );
    o.one(
        "ember_checkpoint_last_bytes",
        "gauge",
        "Size of the last checkpoint: its state and position files.",
        storage.last_checkpoint_bytes as f64,
    );
    o.one(
        "ember_checkpoint_last_write_ms",
        "gauge",
        "Time the driver process spent writing the last checkpoint's files and commit record, summed over its workers.",
        storage.last_checkpoint_write_ms,
    );
    o.one(
        "ember_wal_blocks_total",
        "counter",
        "Write-ahead-log blocks the driver process's receivers wrote.",
        storage.wal_blocks as f64,
    );
    o.one("ember_wal_bytes_total", "counter", "Bytes of those blocks, framing included.", storage.wal_bytes as f64);
    o.text
}
