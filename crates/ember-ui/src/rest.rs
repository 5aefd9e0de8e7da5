//! Spark's streaming REST API (`/api/v1/applications/{app}/streaming/...`): the same paths,
//! field names, shapes and date format, with optional fields left out when unknown, as Spark
//! leaves them out. Checked against JSON taken from Spark 4.3 (`tests/golden/spark`).

use serde_json::{json, Map, Value};

use crate::format::api_date;
use crate::store::{Batch, Status, Store};

/// `field` into `m` when known.
fn opt(m: &mut Map<String, Value>, field: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        m.insert(field.to_owned(), v.into());
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0u64), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// `GET /api/v1/applications`.
pub fn applications(s: &Store, now: u64) -> Value {
    json!([{
        "id": s.app_id,
        "name": s.app_name,
        "attempts": [{
            "startTime": api_date(s.attached),
            // A running application's end is epoch -1, written as Spark writes it.
            "endTime": "1969-12-31T23:59:59.999GMT",
            "lastUpdated": api_date(s.attached),
            "duration": now.saturating_sub(s.attached),
            "sparkUser": std::env::var("USER").unwrap_or_else(|_| "ember".to_owned()),
            "completed": false,
            "appSparkVersion": concat!("ember ", env!("CARGO_PKG_VERSION")),
            "startTimeEpoch": s.attached,
            "endTimeEpoch": -1,
            "lastUpdatedEpoch": s.attached,
        }]
    }])
}

/// `GET .../streaming/statistics`.
pub fn statistics(s: &Store) -> Value {
    let active = s.receivers.values().filter(|r| r.active).count();
    let mut m = Map::new();
    m.insert("startTime".into(), api_date(s.started.unwrap_or(s.attached)).into());
    m.insert("batchDuration".into(), s.batch_ms.into());
    m.insert("numReceivers".into(), s.receivers.len().into());
    m.insert("numActiveReceivers".into(), active.into());
    m.insert("numInactiveReceivers".into(), (s.receivers.len() - active).into());
    m.insert("numTotalCompletedBatches".into(), s.completed_total.into());
    m.insert("numRetainedCompletedBatches".into(), s.completed().count().into());
    m.insert("numActiveBatches".into(), s.active().count().into());
    m.insert("numProcessedRecords".into(), s.processed_total.into());
    m.insert("numReceivedRecords".into(), s.received_total.into());
    opt(&mut m, "avgInputRate", mean(s.completed().map(|b| s.rate(b.info.num_records()))));
    for (field, f) in [
        ("avgSchedulingDelay", (|b: &Batch| b.info.scheduling_delay()) as fn(&Batch) -> Option<u64>),
        ("avgProcessingTime", |b: &Batch| b.info.processing_delay()),
        ("avgTotalDelay", |b: &Batch| b.info.total_delay()),
    ] {
        // Spark truncates these means to whole milliseconds.
        opt(&mut m, field, mean(s.completed().filter_map(f).map(|v| v as f64)).map(|v| v as u64));
    }
    Value::Object(m)
}

/// One receiver (`GET .../streaming/receivers/{id}`), or `None` for an unknown stream id.
pub fn receiver(s: &Store, id: usize) -> Option<Value> {
    let r = s.receivers.get(&id)?;
    let rates = s.stream_rates(id);
    let mut m = Map::new();
    m.insert("streamId".into(), id.into());
    m.insert("streamName".into(), r.name.clone().into());
    m.insert("isActive".into(), r.active.into());
    m.insert("executorId".into(), format!("worker-{}", r.worker).into());
    m.insert("executorHost".into(), s.host_of(r.worker).into());
    if let Some(t) = r.last_error_time {
        m.insert("lastErrorTime".into(), api_date(t).into());
        m.insert("lastErrorMessage".into(), r.last_error_message.clone().into());
        m.insert("lastError".into(), r.last_error_message.clone().into());
    }
    opt(&mut m, "avgEventRate", mean(rates.iter().map(|r| r.1)));
    m.insert("eventRates".into(), rates.iter().map(|&(t, r)| json!([t, r])).collect::<Vec<_>>().into());
    Some(Value::Object(m))
}

/// `GET .../streaming/receivers`, by stream id.
pub fn receivers(s: &Store) -> Value {
    s.receivers.keys().filter_map(|&id| receiver(s, id)).collect::<Vec<_>>().into()
}

/// One batch (`GET .../streaming/batches/{batchId}`).
pub fn batch(s: &Store, b: &Batch) -> Value {
    let total = b.ops.len().max(if b.status == Status::Completed { 0 } else { s.ops_due(b.time()) });
    let completed = b.completed_ops();
    let mut m = Map::new();
    m.insert("batchId".into(), b.time().into());
    m.insert("batchTime".into(), api_date(b.time()).into());
    m.insert("status".into(), b.status.api().into());
    m.insert("batchDuration".into(), s.batch_ms.into());
    m.insert("inputSize".into(), b.info.num_records().into());
    opt(&mut m, "schedulingDelay", b.info.scheduling_delay());
    opt(&mut m, "processingTime", b.info.processing_delay());
    opt(&mut m, "totalDelay", b.info.total_delay());
    m.insert("numActiveOutputOps".into(), (total - completed.min(total)).into());
    m.insert("numCompletedOutputOps".into(), (completed - b.failed_ops()).into());
    m.insert("numFailedOutputOps".into(), b.failed_ops().into());
    m.insert("numTotalOutputOps".into(), total.into());
    opt(&mut m, "firstFailureReason", b.first_failure());
    Value::Object(m)
}

/// `GET .../streaming/batches[?status=...]`: newest first, only the statuses asked for (all
/// when none is).
pub fn batches(s: &Store, statuses: &[Status]) -> Value {
    s.batches
        .values()
        .rev()
        .filter(|b| statuses.is_empty() || statuses.contains(&b.status))
        .map(|b| batch(s, b))
        .collect::<Vec<_>>()
        .into()
}

/// One output operation of a batch.
pub fn operation(s: &Store, b: &Batch, op: usize) -> Option<Value> {
    let o = b.ops.get(&op)?;
    let mut m = Map::new();
    m.insert("outputOpId".into(), op.into());
    m.insert("name".into(), o.name.clone().into());
    m.insert("description".into(), s.op_description(op).into());
    opt(&mut m, "startTime", o.start_time.map(api_date));
    opt(&mut m, "endTime", o.end_time.map(api_date));
    opt(&mut m, "duration", o.duration());
    opt(&mut m, "failureReason", o.failure_reason.clone());
    // Ember runs no Spark jobs; the list is there for clients that read it.
    m.insert("jobIds".into(), Value::Array(Vec::new()));
    Some(Value::Object(m))
}

/// `GET .../streaming/batches/{batchId}/operations`.
pub fn operations(s: &Store, b: &Batch) -> Value {
    b.ops.keys().filter_map(|&op| operation(s, b, op)).collect::<Vec<_>>().into()
}

/// Parses `status=` values of a query (repeatable, as in Spark); an unknown one is an error.
pub fn parse_statuses(query: Option<&str>) -> Result<Vec<Status>, String> {
    crate::server::query_values(query, "status")
        .iter()
        .map(|v| match v.to_ascii_uppercase().as_str() {
            "QUEUED" => Ok(Status::Queued),
            "PROCESSING" => Ok(Status::Processing),
            "COMPLETED" => Ok(Status::Completed),
            _ => Err(format!("unknown batch status `{v}`: use QUEUED, PROCESSING or COMPLETED")),
        })
        .collect()
}
