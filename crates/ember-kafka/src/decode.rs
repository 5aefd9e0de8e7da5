//! Decoding helpers: a record that does not decode is skipped, counted and logged, never a
//! failed batch.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use ember::{DStream, Data};
use serde::de::DeserializeOwned;

use crate::{ConsumerRecord, KafkaStream};

/// Counts a skipped record and logs the first 10, then every 1000th.
fn skipped(bad: &AtomicU64, r: &ConsumerRecord, why: &str) {
    if let Some(n) = ember::operator::count_skipped(bad) {
        tracing::warn!("kafka: skipped record {}-{}@{} ({why}); {n} skipped so far", r.topic, r.partition, r.offset);
    }
}

impl KafkaStream {
    /// The values as UTF-8 text. A value that is not valid UTF-8 (or a tombstone) is skipped
    /// and counted in [`bad_records`](Self::bad_records).
    pub fn values_utf8(&self) -> DStream<String> {
        let bad = Arc::clone(&self.bad);
        // The record's value buffer becomes the string: no copy.
        self.stream.flat_map(move |mut r: ConsumerRecord| match r.value.take().map(String::from_utf8) {
            Some(Ok(s)) => Some(s),
            Some(Err(_)) => {
                skipped(&bad, &r, "the value is not valid UTF-8");
                None
            }
            None => {
                skipped(&bad, &r, "the value is null");
                None
            }
        })
    }

    /// (key, value) pairs as UTF-8 text (a missing key is the empty string); records that do not
    /// decode are skipped and counted.
    pub fn pairs_utf8(&self) -> DStream<(String, String)> {
        let bad = Arc::clone(&self.bad);
        self.stream.flat_map(move |mut r: ConsumerRecord| {
            let key = match r.key.take().map(String::from_utf8) {
                None => Some(String::new()),
                Some(Ok(k)) => Some(k),
                Some(Err(_)) => None,
            };
            match (key, r.value.take().map(String::from_utf8)) {
                (Some(k), Some(Ok(v))) => Some((k, v)),
                _ => {
                    skipped(&bad, &r, "the key or value is not valid UTF-8, or the value is null");
                    None
                }
            }
        })
    }

    /// The values decoded from JSON into `T`; a value that is not JSON of that shape is skipped
    /// and counted.
    pub fn values_json<T: Data + DeserializeOwned>(&self) -> DStream<T> {
        let bad = Arc::clone(&self.bad);
        self.stream.flat_map(move |r: ConsumerRecord| match r.value.as_deref().map(serde_json::from_slice::<T>) {
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                skipped(&bad, &r, &format!("not the expected JSON: {e}"));
                None
            }
            None => {
                skipped(&bad, &r, "the value is null");
                None
            }
        })
    }
}
