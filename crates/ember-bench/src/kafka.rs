//! Kafka -> word count -> Kafka sink, measured against the Kafka client alone and a hand-written
//! consume-count-produce loop on the same records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ember::clock::Stopwatch;
use ember::prelude::*;
use ember::LineGenerator;
use ember_kafka::{ConsumerStrategy, KafkaParams, RateLimits, SaveToKafka};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

const PARTITIONS: i32 = 3;

fn create_topic(brokers: &str, topic: &str) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    for r in futures_executor::block_on(admin.create_topics([&new], &AdminOptions::new()))? {
        r.map_err(|(t, e)| anyhow::anyhow!("cannot create {t}: {e}"))?;
    }
    Ok(())
}

fn producer(brokers: &str) -> anyhow::Result<ThreadedProducer<rdkafka::producer::DefaultProducerContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?)
}

fn send(
    p: &ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    part: Option<i32>,
    key: &[u8],
    value: &[u8],
) {
    let mut r = BaseRecord::to(topic).key(key).payload(value);
    if let Some(part) = part {
        r = r.partition(part);
    }
    loop {
        match p.send(r) {
            Ok(()) => return,
            Err((_, back)) => {
                r = back;
                ember::clock::real_sleep(Duration::from_micros(200));
            }
        }
    }
}

/// `n` lines of about 100 bytes from the generated text, spread over the partitions.
fn fill(brokers: &str, topic: &str, n: u64) -> anyhow::Result<Duration> {
    let p = producer(brokers)?;
    let mut gen = LineGenerator::new(
        &ember::GeneratedText { lines_per_second: 0, words_per_line: 14, vocabulary: 10_000, skew: 1.0, seed: 7 },
        0,
    );
    let watch = Stopwatch::start();
    for i in 0..n {
        let mut line = gen.next_line();
        line.truncate(100);
        send(&p, topic, Some((i % PARTITIONS as u64) as i32), b"", line.as_bytes());
    }
    p.flush(Duration::from_secs(120))?;
    Ok(watch.elapsed())
}

/// A consumer of every partition of `topic` from its first record.
fn from_the_beginning(brokers: &str, topic: &str, group: &str) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// The client alone: one consumer per partition range, records read and dropped.
fn client_only(brokers: &str, topic: &str, n: u64) -> anyhow::Result<Duration> {
    let consumer = from_the_beginning(brokers, topic, "bench-raw")?;
    let watch = Stopwatch::start();
    let mut seen = 0u64;
    let mut bytes = 0usize;
    while seen < n {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?;
            bytes += m.payload().map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    std::hint::black_box(bytes);
    Ok(watch.elapsed())
}

/// The hand-written loop: consume, count words in a map per `batch` records, produce the counts.
fn hand_loop(brokers: &str, topic: &str, out: &str, n: u64, batch: u64) -> anyhow::Result<Duration> {
    let consumer = from_the_beginning(brokers, topic, "bench-hand")?;
    let p = producer(brokers)?;
    let watch = Stopwatch::start();
    let mut seen = 0u64;
    let mut counts: HashMap<String, u64> = HashMap::new();
    while seen < n {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?;
            if let Some(Ok(line)) = m.payload().map(std::str::from_utf8) {
                for w in line.split(' ') {
                    *counts.entry(w.to_owned()).or_insert(0) += 1;
                }
            }
            seen += 1;
            if seen.is_multiple_of(batch) || seen == n {
                for (w, c) in counts.drain() {
                    send(&p, out, None, w.as_bytes(), c.to_string().as_bytes());
                }
                p.flush(Duration::from_secs(60))?;
            }
        }
    }
    Ok(watch.elapsed())
}

fn ember_job(
    brokers: &str,
    topic: &str,
    out: &str,
    n: u64,
    workers: u64,
    batches: u64,
) -> anyhow::Result<(Duration, u64)> {
    let conf = Conf::new().master(format!("local[{workers}]")).manual_clock(true);
    let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
    let per_partition = (n / PARTITIONS as u64).div_ceil(batches) as f64;
    let kafka = ember_kafka::create_direct_stream_with_limits(
        &ssc,
        ConsumerStrategy::subscribe([topic]),
        KafkaParams::new(brokers),
        RateLimits::max_per_partition(per_partition),
    );
    kafka
        .values_utf8()
        .flat_map(|line: String| line.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b)
        .save_to_kafka(out, KafkaParams::new(brokers).set("linger.ms", "5"), |(w, c): &(String, u64)| {
            (Some(w.clone().into_bytes()), c.to_string().into_bytes())
        });
    let read = Arc::new(Mutex::new(0u64));
    let counter = Arc::clone(&read);
    kafka.stream().foreach_partition(move |_t, records| {
        *counter.lock().unwrap_or_else(|e| e.into_inner()) += records.len() as u64;
    });
    ssc.start()?;
    let watch = Stopwatch::start();
    let mut ran = 0;
    while *read.lock().unwrap_or_else(|e| e.into_inner()) < n {
        ssc.run_batches(1)?;
        ran += 1;
        anyhow::ensure!(ran < batches * 20, "the job did not read {n} records in {ran} batches");
    }
    let took = watch.elapsed();
    ssc.stop(false)?;
    Ok((took, ran))
}

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let brokers = args
        .iter()
        .position(|a| a == "--brokers")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let n = crate::arg(args, "--records", 1_000_000)?;
    let workers = crate::arg(args, "--workers", 2)?;
    let batches = crate::arg(args, "--batches", 10)?;
    let run = format!("{}-{}", std::process::id(), ember::clock::Stopwatch::start().elapsed().as_nanos());
    let (input, out_ember, out_hand) =
        (format!("bench-in-{run}"), format!("bench-out-{run}"), format!("bench-hand-{run}"));
    for t in [&input, &out_ember, &out_hand] {
        create_topic(&brokers, t)?;
    }
    let produced = fill(&brokers, &input, n)?;
    println!(
        "produce {n} records of 100 bytes: {:.2} s ({:.0} records/s)",
        produced.as_secs_f64(),
        n as f64 / produced.as_secs_f64()
    );
    let client = client_only(&brokers, &input, n)?;
    println!(
        "client alone (consume, 1 thread): {:.2} s ({:.0} records/s)",
        client.as_secs_f64(),
        n as f64 / client.as_secs_f64()
    );
    let hand = hand_loop(&brokers, &input, &out_hand, n, n.div_ceil(batches))?;
    println!(
        "hand-written loop (consume, count, produce counts; 1 thread): {:.2} s ({:.0} records/s)",
        hand.as_secs_f64(),
        n as f64 / hand.as_secs_f64()
    );
    let (ember, ran) = ember_job(&brokers, &input, &out_ember, n, workers, batches)?;
    println!(
        "ember local[{workers}] (direct stream -> word count -> Kafka sink, {ran} batches): {:.2} s ({:.0} records/s); client share {:.0}%",
        ember.as_secs_f64(),
        n as f64 / ember.as_secs_f64(),
        100.0 * client.as_secs_f64() / ember.as_secs_f64()
    );
    Ok(())
}
