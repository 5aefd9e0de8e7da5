//! The Kafka sink: an output operation that produces each batch to a topic.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ember::clock::real_sleep;
use ember::operator::Sink;
use ember::{DStream, Data, Time};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::{Error, KafkaParams};

/// Delivery failures since the last check.
#[derive(Default, Clone)]
struct Deliveries {
    failed: Arc<Mutex<Vec<String>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            use rdkafka::message::Message;
            let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            if failed.len() < 10 {
                failed.push(format!("{}-{}: {e}", m.topic(), m.partition()));
            } else if failed.len() == 10 {
                failed.push("…".to_owned());
            }
        }
    }
}

/// A Kafka producer shared by the workers of one process.
pub struct KafkaSink {
    params: KafkaParams,
    producer: OnceLock<Result<ThreadedProducer<Deliveries>, KafkaError>>,
    deliveries: Deliveries,
    flush_timeout: Duration,
}

impl KafkaSink {
    /// A sink with these parameters. The producer is idempotent (`enable.idempotence=true`)
    /// unless the parameters say otherwise; it is created at the first batch.
    pub fn new(params: KafkaParams) -> Self {
        let flush_timeout =
            Duration::from_millis(params.ember_millis("ember.flush.timeout.ms", 30_000).unwrap_or(30_000));
        KafkaSink { params, producer: OnceLock::new(), deliveries: Deliveries::default(), flush_timeout }
    }

    fn producer(&self) -> Result<&ThreadedProducer<Deliveries>, Error> {
        self.producer
            .get_or_init(|| {
                let mut config = self.params.client_config(&[]);
                if self.params.get("enable.idempotence").is_none() {
                    config.set("enable.idempotence", "true");
                }
                config.create_with_context(self.deliveries.clone())
            })
            .as_ref()
            .map_err(|e| Error::client("cannot create a Kafka producer", e.clone()))
    }

    /// Produces `records` (key, value) to `topic` and waits until every one is acknowledged.
    pub fn send_all(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = (Option<Vec<u8>>, Vec<u8>)>,
    ) -> Result<usize, Error> {
        let producer = self.producer()?;
        let mut sent = 0;
        for (key, value) in records {
            let mut record = BaseRecord::to(topic).payload(&value);
            if let Some(k) = key.as_deref() {
                record = record.key(k);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The local queue is full: let deliveries drain it.
                        record = back;
                        real_sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => return Err(Error::client(format!("cannot produce to `{topic}`"), e)),
                }
            }
            sent += 1;
        }
        producer.flush(self.flush_timeout).map_err(|e| Error::client(format!("flushing to `{topic}` failed"), e))?;
        let failed = std::mem::take(&mut *self.deliveries.failed.lock().unwrap_or_else(|e| e.into_inner()));
        if !failed.is_empty() {
            return Err(Error::Delivery(format!(
                "{} record(s) were not delivered: {}",
                failed.len(),
                failed.join("; ")
            )));
        }
        Ok(sent)
    }
}

/// The Kafka sink as an output operation of a stream.
pub trait SaveToKafka<T> {
    /// Produces every batch to `topic` (on every worker, its share), the key and value made by
    /// `f`. A batch counts as done only when all its records are acknowledged; a record that
    /// cannot be delivered (too large, unknown topic, broker gone past `message.timeout.ms`)
    /// fails the batch with the reason.
    fn save_to_kafka(
        &self,
        topic: impl Into<String>,
        params: KafkaParams,
        f: impl Fn(&T) -> (Option<Vec<u8>>, Vec<u8>) + Send + Sync + 'static,
    );
}

impl<T: Data> SaveToKafka<T> for DStream<T> {
    fn save_to_kafka(
        &self,
        topic: impl Into<String>,
        params: KafkaParams,
        f: impl Fn(&T) -> (Option<Vec<u8>>, Vec<u8>) + Send + Sync + 'static,
    ) {
        self.sink("save_to_kafka", TopicSink { sink: KafkaSink::new(params), topic: topic.into(), f });
    }
}

/// `save_to_kafka` as an Ember sink: each worker produces its share; nothing to commit, as
/// every record is acknowledged before the write returns.
struct TopicSink<F> {
    sink: KafkaSink,
    topic: String,
    f: F,
}

impl<T, F: Fn(&T) -> (Option<Vec<u8>>, Vec<u8>) + Send + Sync + 'static> Sink<T> for TopicSink<F> {
    fn write(&self, _t: Time, _worker: usize, records: Vec<T>) -> ember::Result<()> {
        self.sink.send_all(&self.topic, records.iter().map(&self.f))?;
        Ok(())
    }
}
