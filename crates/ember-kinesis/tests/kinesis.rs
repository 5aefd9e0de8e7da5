//! The direct Kinesis stream against real emulators: kinesalite (AWS-format sequence numbers,
//! resharding) and moto's Kinesis.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{KinesisServer, Server};
use ember::prelude::*;
use ember::testing::exclusive;
use ember::BatchInfo;
use ember_kinesis::{create_stream, InitialPosition, KinesisRecord, KinesisSpec, KinesisStream, SequenceNumberRange};

fn manual(master: &str) -> StreamingContext {
    common::logs();
    StreamingContext::new(Conf::new().master(master).manual_clock(true), Duration::from_secs(1)).unwrap()
}

fn spec(server_endpoint: &str, stream: &str) -> KinesisSpec {
    KinesisSpec::new(stream, "us-east-1")
        .endpoint_url(server_endpoint)
        .credentials(common::credentials())
        .initial_position(InitialPosition::TrimHorizon)
        .read_timeout(Duration::from_secs(20))
}

type Seen = Arc<Mutex<Vec<(Time, Vec<KinesisRecord>, Vec<SequenceNumberRange>)>>>;

fn collect(k: &KinesisStream) -> Seen {
    let seen: Seen = Arc::default();
    let (sink, ranges) = (Arc::clone(&seen), k.sequence_ranges());
    k.stream().foreach_batch(move |t, records| sink.lock().unwrap().push((t, records, ranges.get(t))));
    seen
}

fn count(seen: &Seen) -> usize {
    seen.lock().unwrap().iter().map(|b| b.1.len()).sum()
}

/// Runs batches until `done()`, for at most `max` batches.
fn run_until(ssc: &StreamingContext, max: u64, done: impl Fn() -> bool) {
    let mut ran = 0;
    while !done() {
        assert!(ran < max, "not done after {ran} batches");
        ssc.run_batches(1).unwrap();
        ran += 1;
    }
}

/// Every batch holds exactly its ranges, and every put record arrives once, in sequence order per
/// shard.
fn check_once_in_order(seen: &Seen, put: &[(String, String)]) {
    let seen = seen.lock().unwrap();
    let mut by_shard: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (t, records, ranges) in seen.iter() {
        let shards: BTreeSet<&String> = records.iter().map(|r| &r.shard_id).collect();
        assert_eq!(shards.len(), ranges.len(), "batch {t}: one range per shard read");
        for r in ranges {
            let inside: Vec<&KinesisRecord> = records.iter().filter(|c| c.shard_id == r.shard_id).collect();
            assert_eq!(inside.len() as u64, r.count, "batch {t}: the range's count");
            assert_eq!(inside[0].sequence_number, r.from_seq, "batch {t}");
            assert_eq!(inside.last().unwrap().sequence_number, r.to_seq, "batch {t}");
        }
        for r in records {
            by_shard.entry(r.shard_id.clone()).or_default().push(r.sequence_number.clone());
            assert!(r.arrival_ms.is_some());
        }
    }
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (shard, seq) in put {
        want.entry(shard.clone()).or_default().push(seq.clone());
    }
    assert_eq!(by_shard, want, "each record once, in order per shard");
}

fn every_record_once_in_order(server: &Server, master: &str) {
    let c = server.client();
    common::create_stream(&c, "lines", 3);
    let mut put = common::put(&c, "lines", &common::lines("a", 300));
    let ssc = manual(master);
    let k = create_stream(&ssc, spec(&server.endpoint, "lines"));
    let seen = collect(&k);
    let infos = ember::testing::completed_batches(&ssc);
    run_until(&ssc, 10, || count(&seen) >= 300);
    // Records put while the job runs arrive in later batches.
    put.extend(common::put(&c, "lines", &common::lines("b", 60)));
    run_until(&ssc, 10, || count(&seen) >= 360);
    ssc.run_batches(2).unwrap();
    ssc.stop(false).unwrap();
    check_once_in_order(&seen, &put);
    let data: BTreeSet<String> = seen
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| b.1.iter().map(|r| String::from_utf8(r.data.clone()).unwrap()))
        .collect();
    assert!(data.contains("a0") && data.contains("a299") && data.contains("b59"));
    let infos = infos.lock().unwrap();
    assert_eq!(infos.iter().map(BatchInfo::num_records).sum::<u64>(), 360);
    let listed: usize = infos
        .iter()
        .flat_map(|b| &b.stream_input_info)
        .filter_map(|s| s.metadata.get("sequence_ranges"))
        .map(|l| l.lines().count())
        .sum();
    let published: usize = seen.lock().unwrap().iter().map(|b| b.2.len()).sum();
    assert_eq!(listed, published, "listeners see the ranges output operations see");
}

#[test]
fn kinesalite_every_record_once_in_order_per_shard() {
    let _g = exclusive();
    for master in ["local[1]", "local[3]"] {
        let server = common::kinesalite();
        every_record_once_in_order(&server, master);
    }
}

#[test]
fn moto_every_record_once_in_order_per_shard() {
    let _g = exclusive();
    let server = Server::moto(None);
    every_record_once_in_order(&server, "local[2]");
}

#[test]
fn a_shard_split_mid_run_loses_nothing_and_parents_come_first() {
    let _g = exclusive();
    for master in ["local[1]", "local[2]"] {
        let server = common::kinesalite();
        let c = server.client();
        common::create_stream(&c, "split", 1);
        let mut put = common::put(&c, "split", &common::lines("a", 100));
        let ssc = manual(master);
        // At most 40 records per shard and batch: the parent is still being read after the split.
        let k = create_stream(
            &ssc,
            spec(&server.endpoint, "split").max_rate_per_shard(40.0).shard_discovery_interval(Duration::from_secs(1)),
        );
        let seen = collect(&k);
        ssc.run_batches(1).unwrap();
        assert_eq!(count(&seen), 40);
        common::split(&c, "split", "shardId-000000000000");
        put.extend(common::put(&c, "split", &common::lines("b", 100)));
        let children: BTreeSet<&String> = put[100..].iter().map(|(s, _)| s).collect();
        assert_eq!(children.len(), 2, "the records after the split went to both children: {children:?}");
        run_until(&ssc, 12, || count(&seen) >= 200);
        ssc.run_batches(1).unwrap();
        ssc.stop(false).unwrap();
        check_once_in_order(&seen, &put);
        // Per partition key, the parent's records all come before the children's.
        let seen = seen.lock().unwrap();
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (_, records, _) in seen.iter() {
            for r in records {
                by_key.entry(r.partition_key.clone()).or_default().push(String::from_utf8(r.data.clone()).unwrap());
            }
        }
        for (key, data) in by_key {
            let first_b = data.iter().position(|d| d.starts_with('b')).unwrap();
            assert!(data[first_b..].iter().all(|d| d.starts_with('b')), "{master}: key {key}: {data:?}");
            assert_eq!(first_b, 10, "{master}: key {key}: all ten parent records come first");
        }
        let last_parent_batch =
            seen.iter().filter(|b| b.1.iter().any(|r| r.shard_id.ends_with("000"))).map(|b| b.0).max();
        let first_child_batch =
            seen.iter().filter(|b| b.1.iter().any(|r| !r.shard_id.ends_with("000"))).map(|b| b.0).min();
        assert!(last_parent_batch < first_child_batch, "{master}: {last_parent_batch:?} {first_child_batch:?}");
    }
}

#[test]
fn max_rate_per_shard_limits_each_batch() {
    let _g = exclusive();
    let server = common::kinesalite();
    let c = server.client();
    common::create_stream(&c, "limited", 2);
    let put = common::put(&c, "limited", &common::lines("x", 100));
    let per_shard: BTreeMap<&String, usize> = put.iter().fold(BTreeMap::new(), |mut m, (s, _)| {
        *m.entry(s).or_default() += 1;
        m
    });
    let ssc = manual("local[2]");
    let k = create_stream(&ssc, spec(&server.endpoint, "limited").max_rate_per_shard(15.0));
    let seen = collect(&k);
    ssc.run_batches(2).unwrap();
    {
        let seen = seen.lock().unwrap();
        for (t, records, ranges) in seen.iter() {
            assert!(ranges.iter().all(|r| r.count == 15), "batch {t}: 15 per shard: {ranges:?}");
            assert_eq!(records.len(), 15 * per_shard.len());
        }
    }
    run_until(&ssc, 10, || count(&seen) >= 100);
    ssc.stop(false).unwrap();
    check_once_in_order(&seen, &put);
}

#[test]
fn latest_and_at_timestamp_skip_older_records() {
    let _g = exclusive();
    let server = common::kinesalite();
    let c = server.client();
    common::create_stream(&c, "late", 1);
    common::put(&c, "late", &common::lines("old", 20));
    let ssc = manual("local[1]");
    let k = create_stream(&ssc, spec(&server.endpoint, "late").initial_position(InitialPosition::Latest));
    let seen = collect(&k);
    ssc.run_batches(1).unwrap();
    assert_eq!(count(&seen), 0, "records put before the first batch are skipped");
    let put = common::put(&c, "late", &common::lines("new", 20));
    run_until(&ssc, 5, || count(&seen) >= 20);
    ssc.stop(false).unwrap();
    check_once_in_order(&seen, &put);

    // AT_TIMESTAMP: the arrival time of a record in the middle.
    let c2 = server.client();
    common::create_stream(&c2, "stamped", 1);
    common::put(&c2, "stamped", &common::lines("early", 5));
    ember::clock::real_sleep(Duration::from_millis(30));
    let from = ember::clock::SystemClock.now_millis();
    ember::clock::real_sleep(Duration::from_millis(30));
    let put = common::put(&c2, "stamped", &common::lines("later", 5));
    let ssc = manual("local[1]");
    let k = create_stream(&ssc, spec(&server.endpoint, "stamped").initial_position(InitialPosition::AtTimestamp(from)));
    let seen = collect(&k);
    run_until(&ssc, 5, || count(&seen) >= 5);
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    check_once_in_order(&seen, &put);
}

fn first_batch_error(spec: KinesisSpec) -> String {
    let ssc = manual("local[1]");
    let k = create_stream(&ssc, spec);
    let seen = collect(&k);
    let e = ssc.run_batches(1).unwrap_err().to_string();
    let _ = ssc.stop(false);
    assert_eq!(count(&seen), 0, "no output ran");
    e
}

#[test]
fn unknown_streams_bad_credentials_and_unreachable_endpoints_are_clear_errors() {
    let _g = exclusive();
    let server = common::kinesalite();
    let e = first_batch_error(spec(&server.endpoint, "nowhere"));
    assert!(e.contains("kinesis stream `nowhere`") && e.contains("ResourceNotFoundException"), "{e}");

    let moto = Server::moto(Some(0));
    let e = first_batch_error(spec(&moto.endpoint, "lines"));
    assert!(e.contains("InvalidClientTokenId") && e.contains("security token"), "{e}");

    let port = common::free_port();
    let e =
        first_batch_error(spec(&format!("http://127.0.0.1:{port}"), "lines").read_timeout(Duration::from_millis(500)));
    assert!(e.contains("cannot reach the endpoint") && e.contains(&port.to_string()), "{e}");

    let e = first_batch_error(
        KinesisSpec::new("lines", "us-east-1").endpoint_url("kinesis.local").credentials(common::credentials()),
    );
    assert!(e.contains("not http:// or https://"), "{e}");
}

#[test]
fn throttled_reads_are_retried() {
    let _g = exclusive();
    let server = common::kinesalite();
    let c = server.client();
    common::create_stream(&c, "busy", 2);
    let put = common::put(&c, "busy", &common::lines("t", 50));
    let proxy = common::Throttler::start(server.port, 4);
    let ssc = manual("local[2]");
    let k = create_stream(&ssc, spec(&proxy.endpoint, "busy"));
    let seen = collect(&k);
    run_until(&ssc, 5, || count(&seen) >= 50);
    ssc.stop(false).unwrap();
    assert_eq!(proxy.throttled.load(std::sync::atomic::Ordering::SeqCst), 4, "the proxy throttled 4 reads");
    check_once_in_order(&seen, &put);
}

#[test]
fn bad_utf8_is_skipped_and_counted() {
    let _g = exclusive();
    let server = common::kinesalite();
    let c = server.client();
    common::create_stream(&c, "mixed", 1);
    common::put(
        &c,
        "mixed",
        &[("k".into(), b"good".to_vec()), ("k".into(), vec![0xff, 0xfe]), ("k".into(), b"fine".to_vec())],
    );
    let ssc = manual("local[1]");
    let k = create_stream(&ssc, spec(&server.endpoint, "mixed"));
    let text = k.data_utf8().collect_batches();
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    assert_eq!(text.batches().into_iter().flat_map(|(_, b)| b).collect::<Vec<_>>(), vec!["good", "fine"]);
    assert_eq!(k.bad_records(), 1);
}

#[test]
fn backpressure_shares_the_rate_among_open_shards() {
    let _g = exclusive();
    let server = common::kinesalite();
    let c = server.client();
    common::create_stream(&c, "pressed", 3);
    let put = common::put(&c, "pressed", &common::lines("p", 300));
    common::logs();
    let conf = Conf::new()
        .master("local[2]")
        .manual_clock(true)
        .set("backpressure.enabled", "true")
        .set("backpressure.initial_rate", "30");
    let ssc = StreamingContext::new(conf, Duration::from_secs(1)).unwrap();
    let k = create_stream(&ssc, spec(&server.endpoint, "pressed"));
    let seen = collect(&k);
    let infos = ember::testing::completed_batches(&ssc);
    ssc.run_batches(3).unwrap();
    // 30 records/s over three open shards: 10 per shard and 1 s batch (the manual clock's
    // batches take no time, so the estimator never moves the rate).
    for (t, records, ranges) in seen.lock().unwrap().iter() {
        assert_eq!(records.len(), 30, "batch {t}");
        assert!(ranges.iter().all(|r| r.count == 10), "batch {t}: {ranges:?}");
    }
    assert!(infos.lock().unwrap().iter().all(|b| b.stream_input_info.iter().all(|s| s.rate_limit == Some(30.0))));
    ssc.stop(false).unwrap();
    let mut by_shard: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (shard, seq) in &put {
        by_shard.entry(shard.clone()).or_default().push(seq.clone());
    }
    // What was read is each shard's first records, in order.
    for (_, records, _) in seen.lock().unwrap().iter() {
        for r in records {
            assert!(by_shard[&r.shard_id][..30].contains(&r.sequence_number));
        }
    }
}

#[test]
fn an_endpoint_that_goes_away_and_comes_back_loses_nothing() {
    use std::sync::atomic::Ordering;
    let _g = exclusive();
    let server = common::kinesalite();
    let c = server.client();
    common::create_stream(&c, "outage", 2);
    let mut put = common::put(&c, "outage", &common::lines("a", 50));
    let proxy = common::Throttler::start(server.port, 0);
    let ssc = manual("local[2]");
    let k = create_stream(&ssc, spec(&proxy.endpoint, "outage").read_timeout(Duration::from_secs(60)));
    let seen = collect(&k);
    ssc.run_batches(1).unwrap();
    assert_eq!(count(&seen), 50);
    // The endpoint goes away; records keep arriving at the stream.
    proxy.cut.store(true, Ordering::SeqCst);
    put.extend(common::put(&c, "outage", &common::lines("b", 50)));
    // It comes back once the reader has met the outage a few times.
    let (cut, refused) = (Arc::clone(&proxy.cut), Arc::clone(&proxy.refused));
    let restorer = std::thread::spawn(move || {
        let watch = ember::clock::Stopwatch::start();
        while refused.load(Ordering::SeqCst) < 3 {
            assert!(watch.elapsed() < Duration::from_secs(30), "the reader never retried");
            ember::clock::real_sleep(Duration::from_millis(10));
        }
        cut.store(false, Ordering::SeqCst);
    });
    // The batch waits out the outage (retrying with back-off) instead of failing.
    ssc.run_batches(1).unwrap();
    restorer.join().unwrap();
    run_until(&ssc, 5, || count(&seen) >= 100);
    ssc.stop(false).unwrap();
    assert!(proxy.refused.load(Ordering::SeqCst) >= 3);
    check_once_in_order(&seen, &put);
}

/// Child side of the two-process test: prints every record the driver collects.
#[test]
#[ignore = "run as a child process by `two_processes_read_every_shard_once_with_lineage`"]
fn cluster_child() {
    let endpoint = std::env::var("KINESIS_ENDPOINT").unwrap();
    let ssc = StreamingContext::new(Conf::new().manual_clock(true), Duration::from_secs(1)).unwrap();
    let k = create_stream(&ssc, spec(&endpoint, "cluster").max_rate_per_shard(40.0));
    k.stream().foreach_batch(|t, records| {
        for r in records {
            println!("REC {} {} {} {}", t.millis(), r.shard_id, r.sequence_number, String::from_utf8_lossy(&r.data));
        }
    });
    ssc.run_batches(8).unwrap();
    ssc.stop(false).unwrap();
}

#[test]
fn two_processes_read_every_shard_once_with_lineage() {
    let server = common::kinesalite();
    let c = server.client();
    common::create_stream(&c, "cluster", 4);
    let mut put = common::put(&c, "cluster", &common::lines("a", 200));
    // A closed parent with its children before the job starts: the children wait for it.
    common::split(&c, "cluster", "shardId-000000000001");
    put.extend(common::put(&c, "cluster", &common::lines("b", 200)));
    let outputs = ember::testing::run_cluster("cluster_child", &[("KINESIS_ENDPOINT", server.endpoint.clone())]);
    let lines: Vec<(u64, String, String, String)> = ember::testing::tagged(&outputs[0].stdout, "REC")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].parse().unwrap(), f[1].to_owned(), f[2].to_owned(), f[3].to_owned())
        })
        .collect();
    assert!(ember::testing::tagged(&outputs[1].stdout, "REC").is_empty());
    let mut by_shard: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, shard, seq, _) in &lines {
        by_shard.entry(shard.clone()).or_default().push(seq.clone());
    }
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (shard, seq) in &put {
        want.entry(shard.clone()).or_default().push(seq.clone());
    }
    // Within a batch the driver's records come from several workers: order by sequence per shard
    // holds batch by batch, and the batches are in order.
    for seqs in by_shard.values_mut() {
        let sorted = {
            let mut s = seqs.clone();
            s.sort_by_key(|q| (q.len(), q.clone()));
            s
        };
        assert_eq!(*seqs, sorted, "each shard's records in sequence order");
    }
    assert_eq!(by_shard, want, "each record once, across two processes");
    let last_parent = lines.iter().filter(|l| l.1.ends_with("001")).map(|l| l.0).max().unwrap();
    let first_child = lines.iter().filter(|l| l.1.ends_with("004") || l.1.ends_with("005")).map(|l| l.0).min().unwrap();
    assert!(
        last_parent < first_child,
        "the parent is read to its end before its children: {last_parent} {first_child}"
    );
}
