//! The direct stream and the sink against a real Kafka-protocol broker (tansu).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ember::prelude::*;
use ember::testing::exclusive;
use ember::BatchInfo;
use ember_kafka::{
    create_direct_stream, create_direct_stream_with_limits, ConsumerRecord, ConsumerStrategy, KafkaParams, OffsetRange,
    RateLimits, SaveToKafka, TopicPartition,
};
use rdkafka::consumer::{BaseConsumer, Consumer};

fn manual(master: &str) -> StreamingContext {
    common::logs();
    StreamingContext::new(Conf::new().master(master).manual_clock(true), Duration::from_secs(1)).unwrap()
}

/// Runs batches one at a time until `done()`: at least `max` batches, and for up to 30 s of real
/// time (a loaded machine may take a while to fetch what the broker holds).
fn run_until(ssc: &StreamingContext, max: u64, done: impl Fn() -> bool) {
    let watch = ember::clock::Stopwatch::start();
    let mut ran = 0;
    while !done() {
        assert!(ran < max || watch.elapsed() < Duration::from_secs(30), "not done after {ran} batches");
        ssc.run_batches(1).unwrap();
        ran += 1;
        if ran >= max {
            ember::clock::real_sleep(Duration::from_millis(20));
        }
    }
}

fn values(n: usize, prefix: &str) -> Vec<(i32, Vec<u8>)> {
    (0..n).map(|i| ((i % 3) as i32, format!("{prefix}{i}").into_bytes())).collect()
}

type Seen = Arc<Mutex<Vec<(Time, Vec<ConsumerRecord>, Vec<OffsetRange>)>>>;

/// Collects each batch with its offset ranges, as an output operation sees them.
fn collect(kafka: &ember_kafka::KafkaStream) -> Seen {
    let seen: Seen = Arc::default();
    let (sink, ranges) = (Arc::clone(&seen), kafka.offset_ranges());
    kafka.stream().foreach_batch(move |t, records| sink.lock().unwrap().push((t, records, ranges.get(t))));
    seen
}

fn count(seen: &Seen) -> usize {
    seen.lock().unwrap().iter().map(|b| b.1.len()).sum()
}

#[test]
fn subscribe_reads_every_record_once_in_logged_offset_ranges() {
    let _g = exclusive();
    let servers = common::broker();
    let topic = common::topic("subscribe");
    common::create_topic(servers, &topic, 3);
    let p = common::producer(servers);
    common::produce(&p, &topic, &values(300, "v"));

    let ssc = manual("local[2]");
    let kafka = create_direct_stream(&ssc, ConsumerStrategy::subscribe([topic.clone()]), KafkaParams::new(servers));
    let seen = collect(&kafka);
    let infos = ember::testing::completed_batches(&ssc);
    run_until(&ssc, 30, || count(&seen) >= 300);
    // Records produced while running are read too.
    common::produce(&p, &topic, &values(30, "w"));
    run_until(&ssc, 30, || count(&seen) >= 330);
    ssc.stop(false).unwrap();

    let seen = seen.lock().unwrap();
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (t, records, ranges) in seen.iter() {
        assert_eq!(ranges.len(), 3, "batch {t}: a range per partition, empty ones included");
        for r in ranges {
            assert_eq!(r.from_offset, *next.get(&r.partition).unwrap_or(&0), "batch {t}: ranges are contiguous");
            next.insert(r.partition, r.until_offset);
            let inside: Vec<i64> = records.iter().filter(|c| c.partition == r.partition).map(|c| c.offset).collect();
            assert_eq!(inside, (r.from_offset..r.until_offset).collect::<Vec<_>>(), "batch {t}: exactly the range");
        }
        for c in records {
            by_partition.entry(c.partition).or_default().push(c.offset);
            assert_eq!(c.topic, topic);
            assert!(c.timestamp.is_some());
        }
    }
    assert_eq!(by_partition.values().map(Vec::len).sum::<usize>(), 330, "each record once");
    assert_eq!(next.values().sum::<i64>(), 330);
    let values: BTreeSet<String> =
        seen.iter().flat_map(|b| b.1.iter().map(|c| String::from_utf8(c.value.clone().unwrap()).unwrap())).collect();
    assert!(values.contains("v0") && values.contains("v299") && values.contains("w29"));
    // The listener sees the same ranges and Spark's description.
    let infos = infos.lock().unwrap();
    let described: Vec<&String> =
        infos.iter().flat_map(|b| &b.stream_input_info).filter_map(|s| s.metadata.get("Description")).collect();
    assert!(!described.is_empty() && described[0].starts_with("topic: "), "{described:?}");
    assert!(described[0].contains("\tcount: "), "{described:?}");
    assert_eq!(infos.iter().map(BatchInfo::num_records).sum::<u64>(), 330);
}

#[test]
fn assign_at_offsets_and_subscribe_pattern() {
    let _g = exclusive();
    let servers = common::broker();
    let base = common::topic("pat");
    let (a, b, other) = (format!("{base}-a"), format!("{base}-b"), common::topic("other"));
    for t in [&a, &b, &other] {
        common::create_topic(servers, t, 1);
    }
    let p = common::producer(servers);
    for t in [&a, &b, &other] {
        common::produce(&p, t, &(0..10).map(|i| (0, vec![i as u8])).collect::<Vec<_>>());
    }

    let ssc = manual("local[2]");
    let pattern = create_direct_stream(
        &ssc,
        ConsumerStrategy::subscribe_pattern(format!("{}-.*", regex_escape(&base))),
        KafkaParams::new(servers),
    );
    let assigned = create_direct_stream(
        &ssc,
        ConsumerStrategy::assign_at([(TopicPartition::new(other.clone(), 0), 7)]),
        KafkaParams::new(servers),
    );
    let (from_pattern, from_assign) = (collect(&pattern), collect(&assigned));
    run_until(&ssc, 20, || count(&from_pattern) >= 20 && count(&from_assign) >= 3);
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let topics: BTreeSet<String> =
        from_pattern.lock().unwrap().iter().flat_map(|b| b.1.iter().map(|c| c.topic.clone())).collect();
    assert_eq!(topics, BTreeSet::from([a, b]), "the pattern matches whole names only");
    assert_eq!(count(&from_pattern), 20);
    let offsets: Vec<i64> = from_assign.lock().unwrap().iter().flat_map(|b| b.1.iter().map(|c| c.offset)).collect();
    assert_eq!(offsets, vec![7, 8, 9], "assign starts at the given offset");
}

#[test]
fn an_offset_past_the_end_of_the_log_starts_where_auto_offset_reset_says() {
    // What a consumer meets when its topic was deleted and created again (a broker restarted
    // empty): its offset lies past the end of the new log.
    let _g = exclusive();
    let servers = common::broker();
    let topic = common::topic("past-end");
    common::create_topic(servers, &topic, 1);
    common::produce(&common::producer(servers), &topic, &(0..5).map(|i| (0, vec![i as u8])).collect::<Vec<_>>());
    let ssc = manual("local[1]");
    let kafka = create_direct_stream(
        &ssc,
        ConsumerStrategy::assign_at([(TopicPartition::new(topic.clone(), 0), 1000)]),
        KafkaParams::new(servers).set("auto.offset.reset", "earliest"),
    );
    let seen = collect(&kafka);
    run_until(&ssc, 10, || count(&seen) >= 5);
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let offsets: Vec<i64> = seen.lock().unwrap().iter().flat_map(|b| b.1.iter().map(|c| c.offset)).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4], "read from the earliest offset, each record once");
}

fn regex_escape(s: &str) -> String {
    s.chars().flat_map(|c| if c.is_alphanumeric() { vec![c] } else { vec!['\\', c] }).collect()
}

#[test]
fn max_rate_per_partition_limits_each_batch() {
    let _g = exclusive();
    let servers = common::broker();
    let topic = common::topic("rate");
    common::create_topic(servers, &topic, 3);
    common::produce(&common::producer(servers), &topic, &values(150, "r"));

    let ssc = manual("local[2]");
    let kafka = create_direct_stream_with_limits(
        &ssc,
        ConsumerStrategy::subscribe([topic.clone()]),
        KafkaParams::new(servers),
        RateLimits::max_per_partition(20.0),
    );
    let seen = collect(&kafka);
    run_until(&ssc, 20, || count(&seen) >= 150);
    ssc.stop(false).unwrap();
    let seen = seen.lock().unwrap();
    for (t, _, ranges) in seen.iter() {
        for r in ranges {
            assert!(r.count() <= 20, "batch {t}: {r:?} is over 20 records/s × 1 s");
        }
    }
    // 50 records per partition at 20 per batch: at least 3 batches with data.
    assert!(seen.iter().filter(|b| !b.1.is_empty()).count() >= 3);
    assert_eq!(count_seen(&seen), 150);
}

fn count_seen(seen: &[(Time, Vec<ConsumerRecord>, Vec<OffsetRange>)]) -> usize {
    seen.iter().map(|b| b.1.len()).sum()
}

#[test]
fn auto_offset_reset_latest_and_none() {
    let _g = exclusive();
    let servers = common::broker();
    let topic = common::topic("reset");
    common::create_topic(servers, &topic, 1);
    // One record per produce request, so that every broker reports the end offset exactly.
    let single: rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext> =
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", servers)
            .set("linger.ms", "0")
            .set("batch.num.messages", "1")
            .create()
            .unwrap();
    for i in 0..20 {
        common::produce(&single, &topic, &[(0, format!("old{i}").into_bytes())]);
    }

    let ssc = manual("local[1]");
    let kafka = create_direct_stream(
        &ssc,
        ConsumerStrategy::subscribe([topic.clone()]),
        KafkaParams::new(servers).auto_offset_reset("latest"),
    );
    let seen = collect(&kafka);
    ssc.run_batches(1).unwrap();
    common::produce(&single, &topic, &[(0, b"new".to_vec())]);
    run_until(&ssc, 20, || count(&seen) >= 1);
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let got: Vec<Vec<u8>> =
        seen.lock().unwrap().iter().flat_map(|b| b.1.iter().map(|c| c.value.clone().unwrap())).collect();
    assert_eq!(got, vec![b"new".to_vec()], "latest skips what was there before the start");

    // `none` without a committed offset: a clear error, and the batch's outputs do not run.
    let ssc = manual("local[1]");
    let kafka = create_direct_stream(
        &ssc,
        ConsumerStrategy::subscribe([topic.clone()]),
        KafkaParams::new(servers).group_id(common::topic("group")).auto_offset_reset("none"),
    );
    let seen = collect(&kafka);
    let e = ssc.run_batches(1).unwrap_err().to_string();
    assert!(e.contains("has no committed offset") && e.contains("auto.offset.reset is none"), "{e}");
    let _ = ssc.stop(false);
    assert!(seen.lock().unwrap().is_empty(), "the failed batch's outputs did not run");
}

#[test]
fn commit_async_commits_to_the_group_and_a_new_stream_resumes_there() {
    let _g = exclusive();
    let servers = common::broker();
    let topic = common::topic("commit");
    let group = common::topic("group");
    common::create_topic(servers, &topic, 3);
    let p = common::producer(servers);
    common::produce(&p, &topic, &values(90, "c"));

    let params = KafkaParams::new(servers).group_id(group.clone());
    let ssc = manual("local[2]");
    let kafka = create_direct_stream(&ssc, ConsumerStrategy::subscribe([topic.clone()]), params.clone());
    let seen = collect(&kafka);
    let (committer, ranges) = (kafka.clone(), kafka.offset_ranges());
    kafka.stream().on_batch(move |t| committer.commit_async(&ranges.get(t)));
    run_until(&ssc, 20, || count(&seen) >= 90);
    ssc.stop(true).unwrap(); // a stop commits what was queued

    let consumer: BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", servers).set("group.id", &group).create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(&topic, p);
    }
    let committed: Vec<i64> = {
        let list = consumer.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        list.elements().iter().map(|e| e.offset().to_raw().unwrap_or(-1)).collect()
    };
    drop(consumer);
    assert_eq!(committed, vec![30, 30, 30]);

    // A new stream of the same group starts at the committed offsets.
    common::produce(&p, &topic, &values(3, "after"));
    let ssc = manual("local[1]");
    let kafka = create_direct_stream(&ssc, ConsumerStrategy::subscribe([topic.clone()]), params);
    let seen = collect(&kafka);
    run_until(&ssc, 20, || count(&seen) >= 3);
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let got: BTreeSet<String> = seen
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| b.1.iter().map(|c| String::from_utf8(c.value.clone().unwrap()).unwrap()))
        .collect();
    assert_eq!(got, BTreeSet::from(["after0".to_owned(), "after1".to_owned(), "after2".to_owned()]));
}

#[test]
fn unknown_topics_subscribed_wait_and_assigned_fail() {
    let _g = exclusive();
    let servers = common::broker();
    let topic = common::topic("later");
    let ssc = manual("local[1]");
    let kafka = create_direct_stream(&ssc, ConsumerStrategy::subscribe([topic.clone()]), KafkaParams::new(servers));
    let seen = collect(&kafka);
    ssc.run_batches(2).unwrap();
    assert_eq!(count(&seen), 0);
    common::create_topic(servers, &topic, 1);
    common::produce(&common::producer(servers), &topic, &[(0, b"x".to_vec())]);
    // Discovery runs every 5 s of batch time.
    run_until(&ssc, 20, || count(&seen) >= 1);
    ssc.stop(false).unwrap();

    let ssc = manual("local[1]");
    let kafka = create_direct_stream(
        &ssc,
        ConsumerStrategy::assign([TopicPartition::new(common::topic("missing"), 0)]),
        KafkaParams::new(servers),
    );
    let _seen = collect(&kafka);
    let e = ssc.run_batches(1).unwrap_err().to_string();
    assert!(e.contains("kafka direct stream [0]") && e.contains("does not exist"), "{e}");
    let _ = ssc.stop(false);
}

#[test]
fn a_broker_that_never_comes_up_is_a_clear_error_after_the_timeout() {
    let _g = exclusive();
    let servers = format!("127.0.0.1:{}", common::free_port());
    let ssc = manual("local[1]");
    let kafka = create_direct_stream(
        &ssc,
        ConsumerStrategy::subscribe(["t"]),
        KafkaParams::new(servers.clone()).set("ember.read.timeout.ms", "1500"),
    );
    let _seen = collect(&kafka);
    let e = ssc.run_batches(1).unwrap_err().to_string();
    assert!(e.contains(&format!("cannot read the cluster's metadata from {servers}")), "{e}");
    assert!(e.contains("gave up after 1500 ms"), "{e}");
    let _ = ssc.stop(false);
}

#[test]
fn a_broker_that_starts_late_is_waited_for() {
    let _g = exclusive();
    let port = common::free_port();
    let servers = format!("127.0.0.1:{port}");
    let topic = common::topic("late");
    let ssc = manual("local[1]");
    let kafka = create_direct_stream(
        &ssc,
        ConsumerStrategy::subscribe([topic.clone()]),
        KafkaParams::new(servers.clone()).set("reconnect.backoff.max.ms", "200"),
    );
    let seen = collect(&kafka);
    // The broker comes up while the first batch is retrying.
    let t = topic.clone();
    let starter = std::thread::spawn(move || {
        ember::clock::real_sleep(Duration::from_millis(800));
        let broker = common::OwnBroker::start(port);
        common::create_topic(&broker.servers, &t, 1);
        common::produce(&common::producer(&broker.servers), &t, &one_partition(30, "a"));
        broker
    });
    ssc.run_batches(1).unwrap();
    let broker = starter.join().unwrap();
    run_until(&ssc, 30, || count(&seen) >= 30);
    ssc.stop(false).unwrap();
    assert_eq!(values_of(&seen), (0..30).map(|i| format!("a{i}")).collect::<Vec<_>>());
    drop(broker);
}

fn one_partition(n: usize, prefix: &str) -> Vec<(i32, Vec<u8>)> {
    (0..n).map(|i| (0, format!("{prefix}{i}").into_bytes())).collect()
}

fn values_of(seen: &Seen) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .flat_map(|b| b.1.iter().map(|c| String::from_utf8(c.value.clone().unwrap()).unwrap()))
        .collect()
}

#[test]
fn dropped_broker_connections_lose_nothing() {
    let _g = exclusive();
    let (broker_port, proxy_port) = (common::free_port(), common::free_port());
    let proxy = Arc::new(common::Proxy::start(proxy_port, broker_port));
    let broker = common::OwnBroker::start_behind(broker_port, proxy_port);
    let topic = common::topic("drop");
    common::create_topic(&broker.servers, &topic, 1);
    let p = common::producer(&broker.servers);
    common::produce(&p, &topic, &one_partition(100, "a"));

    let ssc = manual("local[1]");
    let kafka = create_direct_stream_with_limits(
        &ssc,
        ConsumerStrategy::subscribe([topic.clone()]),
        KafkaParams::new(broker.servers.clone()).set("reconnect.backoff.max.ms", "200"),
        RateLimits::max_per_partition(20.0),
    );
    let seen = collect(&kafka);
    ssc.run_batches(2).unwrap();
    assert!(count(&seen) < 100, "the rate limit leaves records unread when the connections drop");
    // Every connection drops, and none is let through for 1.5 s: batches planned meanwhile
    // wait for their records (up to ember.read.timeout.ms), then go on.
    proxy.cut();
    let restorer = {
        let proxy = Arc::clone(&proxy);
        std::thread::spawn(move || {
            ember::clock::real_sleep(Duration::from_millis(1500));
            proxy.restore();
        })
    };
    ssc.run_batches(2).unwrap();
    restorer.join().unwrap();
    common::produce(&p, &topic, &one_partition(20, "b"));
    run_until(&ssc, 30, || count(&seen) >= 120);
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let want: Vec<String> = (0..100).map(|i| format!("a{i}")).chain((0..20).map(|i| format!("b{i}"))).collect();
    assert_eq!(values_of(&seen), want, "every record once, in order");
    drop(broker);
}

#[test]
fn garbage_payloads_are_skipped_and_counted() {
    let _g = exclusive();
    let servers = common::broker();
    let topic = common::topic("garbage");
    common::create_topic(servers, &topic, 1);
    let records: Vec<(i32, Vec<u8>)> = vec![
        (0, br#"{"word":"ok","n":1}"#.to_vec()),
        (0, vec![0xff, 0xfe, b'x']),
        (0, b"not json".to_vec()),
        (0, br#"{"word":"fine","n":2}"#.to_vec()),
    ];
    common::produce(&common::producer(servers), &topic, &records);

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Word {
        word: String,
        n: u32,
    }
    let ssc = manual("local[1]");
    let kafka = create_direct_stream(&ssc, ConsumerStrategy::subscribe([topic.clone()]), KafkaParams::new(servers));
    let text = kafka.values_utf8().collect_batches();
    let json = kafka.values_json::<Word>().collect_batches();
    run_until(&ssc, 20, || json.batches().iter().map(|b| b.1.len()).sum::<usize>() >= 2);
    ssc.stop(false).unwrap();
    let text: Vec<String> = text.batches().into_iter().flat_map(|b| b.1).collect();
    assert_eq!(text.len(), 3, "the invalid UTF-8 value is skipped: {text:?}");
    let json: Vec<Word> = json.batches().into_iter().flat_map(|b| b.1).collect();
    assert_eq!(json, vec![Word { word: "ok".into(), n: 1 }, Word { word: "fine".into(), n: 2 }]);
    assert_eq!(kafka.bad_records(), 3, "one by values_utf8, two by values_json");
}

#[test]
fn the_sink_produces_every_batch_and_reports_records_it_cannot_deliver() {
    let _g = exclusive();
    let servers = common::broker();
    let topic = common::topic("sink");
    common::create_topic(servers, &topic, 2);
    let ssc = manual("local[2]");
    let batches: Vec<Vec<u32>> = (0..3).map(|b| (0..100).map(|i| b * 100 + i).collect()).collect();
    ssc.queue_stream(batches, true).save_to_kafka(topic.clone(), KafkaParams::new(servers), |n| {
        (Some(n.to_string().into_bytes()), format!("value {n}").into_bytes())
    });
    ssc.run_batches(3).unwrap();
    ssc.stop(false).unwrap();
    // Everything is in the topic once the batches completed: read it back.
    let ssc = manual("local[1]");
    let kafka = create_direct_stream(&ssc, ConsumerStrategy::subscribe([topic.clone()]), KafkaParams::new(servers));
    let pairs = kafka.pairs_utf8().collect_batches();
    run_until(&ssc, 20, || pairs.batches().iter().map(|b| b.1.len()).sum::<usize>() >= 300);
    ssc.stop(false).unwrap();
    let got: BTreeSet<(String, String)> = pairs.batches().into_iter().flat_map(|b| b.1).collect();
    assert_eq!(got.len(), 300);
    assert!(got.contains(&("42".to_owned(), "value 42".to_owned())));

    // A record over the producer's maximum fails its batch, naming the topic.
    let ssc = manual("local[1]");
    ssc.queue_stream(vec![vec![vec![b'x'; 5000]]], true).save_to_kafka(
        topic.clone(),
        KafkaParams::new(servers).set("message.max.bytes", "2000"),
        |v: &Vec<u8>| (None, v.clone()),
    );
    let e = ssc.run_batches(1).unwrap_err().to_string();
    assert!(e.contains(&topic) && e.contains("save_to_kafka") || e.contains(&topic), "{e}");
    let _ = ssc.stop(false);
}

#[test]
fn backpressure_rates_the_direct_stream() {
    let _g = exclusive();
    let servers = common::broker();
    let topic = common::topic("backpressure");
    common::create_topic(servers, &topic, 3);
    common::produce(&common::producer(servers), &topic, &values(300, "p"));
    common::logs();
    let conf = Conf::new()
        .master("local[1]")
        .manual_clock(true)
        .set("backpressure.enabled", "true")
        .set("backpressure.initial_rate", "30");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1)).unwrap();
    let kafka = create_direct_stream(&ssc, ConsumerStrategy::subscribe([topic.clone()]), KafkaParams::new(servers));
    let seen = collect(&kafka);
    let infos = ember::testing::completed_batches(&ssc);
    ssc.run_batches(3).unwrap();
    ssc.stop(false).unwrap();
    // 30 records/s over three partitions with equal lag: 10 per partition and 1 s batch (the
    // manual clock's batches take no time, so the estimator never moves the rate).
    let seen = seen.lock().unwrap();
    for (t, records, ranges) in seen.iter() {
        assert_eq!(records.len(), 30, "batch {t}");
        assert!(ranges.iter().all(|r| r.count() == 10), "batch {t}: {ranges:?}");
    }
    let infos = infos.lock().unwrap();
    assert!(infos.iter().all(|b| b.stream_input_info.iter().all(|s| s.rate_limit == Some(30.0))), "{infos:?}");
}

#[test]
fn a_broker_killed_and_restarted_mid_run_never_crashes_the_job() {
    let _g = exclusive();
    let port = common::free_port();
    let mut broker = common::OwnBroker::start(port);
    let topic = common::topic("restart");
    common::create_topic(&broker.servers, &topic, 3);
    common::produce(&common::producer(&broker.servers), &topic, &values(40, "a"));

    let ssc = manual("local[2]");
    let kafka = create_direct_stream(
        &ssc,
        ConsumerStrategy::subscribe([topic.clone()]),
        KafkaParams::new(broker.servers.clone())
            .set("reconnect.backoff.max.ms", "200")
            .set("ember.read.timeout.ms", "5000")
            .set("ember.partition.discovery.interval.ms", "1000"),
    );
    let seen = collect(&kafka);
    run_until(&ssc, 5, || count(&seen) >= 40);
    // The broker dies; batches go on (empty or failing with a clear error), never a crash.
    broker.kill();
    let mut outcome = Ok(());
    for _ in 0..3 {
        outcome = ssc.run_batches(1);
        if outcome.is_err() {
            break;
        }
    }
    // It comes back empty (tansu keeps topics in memory): the topic is created again and written.
    let broker = common::OwnBroker::start(port);
    if outcome.is_ok() {
        common::create_topic(&broker.servers, &topic, 3);
        common::produce(&common::producer(&broker.servers), &topic, &values(10, "b"));
        let watch = ember::clock::Stopwatch::start();
        while watch.elapsed() < Duration::from_secs(30) && outcome.is_ok() {
            outcome = ssc.run_batches(1);
            if values_of(&seen).iter().filter(|v| v.starts_with('b')).count() >= 10 {
                break;
            }
        }
    }
    match &outcome {
        Ok(()) => {
            let b: Vec<String> = values_of(&seen).into_iter().filter(|v| v.starts_with('b')).collect();
            assert_eq!(b.len(), 10, "the records written after the restart are read: {b:?}");
        }
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("kafka direct stream [0]"), "a clear error naming the stream: {e}");
        }
    }
    let _ = ssc.stop(false);
    let a: BTreeSet<String> = values_of(&seen).into_iter().filter(|v| v.starts_with('a')).collect();
    assert_eq!(a.len(), 40, "the records read before the restart were each read once");
    drop(broker);
}
