//! The REST API and the Prometheus scrape, over real HTTP, against JSON taken from Spark 4.3
//! (`tests/golden/spark`, captured from a socket word count with Spark's UI on) and against the
//! listener's numbers for the same batches.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::*;
use ember::prelude::*;
use ember::BatchInfo;
use serde_json::Value;

/// Fields Spark leaves out while unknown (or that its capture had no cause to show).
const OPTIONAL: &[&str] = &[
    "firstFailureReason",
    "failureReason",
    "lastErrorTime",
    "lastErrorMessage",
    "lastError",
    "avgInputRate",
    "avgSchedulingDelay",
    "avgProcessingTime",
    "avgTotalDelay",
    "avgEventRate",
    "schedulingDelay",
    "processingTime",
    "totalDelay",
    "startTime",
    "endTime",
    "duration",
];

fn golden(name: &str) -> Value {
    let path = format!("{}/tests/golden/spark/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn is_api_date(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 26 && s.ends_with("GMT") && b[4] == b'-' && b[10] == b'T' && b[19] == b'.'
}

/// Ember's JSON has Spark's field names, nesting and value types.
fn same_shape(spark: &Value, ember: &Value, path: &str) {
    match (spark, ember) {
        (Value::Object(s), Value::Object(e)) => {
            for (k, sv) in s {
                match e.get(k) {
                    Some(ev) => same_shape(sv, ev, &format!("{path}.{k}")),
                    None => {
                        assert!(OPTIONAL.contains(&k.as_str()), "{path}: Spark gives `{k}`, Ember does not: {ember}")
                    }
                }
            }
            for k in e.keys() {
                assert!(
                    s.contains_key(k) || OPTIONAL.contains(&k.as_str()),
                    "{path}: Ember gives `{k}`, Spark does not"
                );
            }
        }
        (Value::Array(s), Value::Array(e)) => {
            if let (Some(s0), Some(e0)) = (s.first(), e.first()) {
                same_shape(s0, e0, &format!("{path}[0]"));
            }
        }
        (Value::String(s), Value::String(e)) => {
            if is_api_date(s) {
                assert!(is_api_date(e), "{path}: a date as Spark writes it (`{s}`), not `{e}`");
            }
        }
        (Value::Number(_), Value::Number(_)) | (Value::Bool(_), Value::Bool(_)) | (Value::Null, Value::Null) => {}
        _ => panic!("{path}: Spark gives {spark}, Ember gives {ember}"),
    }
}

struct Job {
    ssc: StreamingContext,
    ui: ember_ui::Ui,
    completed: Arc<Mutex<Vec<BatchInfo>>>,
    lines: std::net::TcpStream,
    /// Batches run so far.
    ran: u64,
}

/// A socket word count with two outputs, the second failing at the third batch; the UI on.
fn word_count(extra: &[(&str, &str)]) -> Job {
    word_count_in(extra, None)
}

/// The word count; with a checkpoint directory, its second output does not fail (a failed
/// output would stop a checkpointed job).
fn word_count_in(extra: &[(&str, &str)], checkpoint: Option<&std::path::Path>) -> Job {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let ssc = context("local[2]", extra);
    let fail_at = if let Some(dir) = checkpoint {
        ssc.checkpoint(dir);
        0
    } else {
        3000
    };
    let ui = ember_ui::attach(&ssc).unwrap().expect("the UI is on by default");
    let completed = ember::testing::completed_batches(&ssc);
    let counts = ssc
        .socket_text_stream("127.0.0.1", port)
        .flat_map(|l: String| l.split(' ').map(String::from).collect::<Vec<_>>())
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b);
    counts.foreach_batch(|_t, _c: Vec<(String, u64)>| {});
    counts.foreach_batch(move |t: Time, _c: Vec<(String, u64)>| -> Result<(), String> {
        if t.millis() == fail_at {
            return Err("the sink refused batch 3".into());
        }
        Ok(())
    });
    ssc.start().unwrap();
    let (lines, _) = server.accept().unwrap();
    Job { ssc, ui, completed, lines, ran: 0 }
}

impl Job {
    /// Sends `n` lines of 4 words, lets the receiver take them in, runs one batch.
    fn batch(&mut self, n: usize) {
        let before = self.ssc.received_records();
        for i in 0..n {
            writeln!(self.lines, "a b c w{}", i % 3).unwrap();
        }
        self.lines.flush().unwrap();
        assert!(self.ssc.wait_for_received(before + n as u64, Duration::from_secs(30)).unwrap());
        self.ran += 1;
        if let Err(e) = self.ssc.run_batches(1) {
            // Reported, and the job goes on (no checkpoint directory), as Spark's does.
            assert!(e.to_string().contains("the sink refused batch 3"), "{e}");
        }
    }

    fn api(&self, path: &str) -> Value {
        let id = app_id(self.ui.address());
        let r = get(self.ui.address(), &format!("/api/v1/applications/{id}/streaming{path}"));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    }

    /// Runs one batch of each size in `lines`, then waits until the UI and the listener saw
    /// every batch run so far.
    fn batches(&mut self, lines: &[usize]) {
        for &n in lines {
            self.batch(n);
        }
        self.wait_completed(self.ran);
    }

    fn wait_completed(&self, n: u64) {
        eventually("the UI saw every batch", || self.api("/statistics")["numTotalCompletedBatches"] == n);
        eventually("the listener saw every batch", || self.completed.lock().unwrap().len() as u64 == n);
    }
}

#[test]
fn every_rest_path_has_sparks_shape_and_the_listeners_numbers() {
    let _g = ember::testing::exclusive();
    let mut job = word_count(&[]);
    job.batches(&[10, 0, 25, 7]);
    let addr = job.ui.address();
    let infos: BTreeMap<u64, BatchInfo> =
        job.completed.lock().unwrap().iter().map(|b| (b.batch_time.millis(), b.clone())).collect();

    let apps = get(addr, "/api/v1/applications").json();
    same_shape(&golden("applications"), &apps, "applications");
    assert_eq!(apps[0]["name"], "ui-test");

    let stats = job.api("/statistics");
    same_shape(&golden("statistics"), &stats, "statistics");
    assert_eq!(stats["batchDuration"], 1000);
    assert_eq!(stats["numTotalCompletedBatches"], 4);
    assert_eq!(stats["numRetainedCompletedBatches"], 4);
    assert_eq!(stats["numActiveBatches"], 0);
    assert_eq!(stats["numReceivers"], 1);
    assert_eq!(stats["numActiveReceivers"], 1);
    let records: u64 = infos.values().map(BatchInfo::num_records).sum();
    assert_eq!(records, 42, "the listener counts the lines received");
    assert_eq!(stats["numProcessedRecords"], records);
    assert_eq!(stats["numReceivedRecords"], records);
    let mean = |f: fn(&BatchInfo) -> Option<u64>| infos.values().filter_map(f).sum::<u64>() / infos.len() as u64;
    assert_eq!(stats["avgSchedulingDelay"], mean(BatchInfo::scheduling_delay));
    assert_eq!(stats["avgProcessingTime"], mean(BatchInfo::processing_delay));
    assert_eq!(stats["avgTotalDelay"], mean(BatchInfo::total_delay));
    assert_eq!(stats["avgInputRate"].as_f64().unwrap(), records as f64 / 4.0);

    let receivers = job.api("/receivers");
    same_shape(&golden("receivers"), &receivers, "receivers");
    let receiver = job.api("/receivers/0");
    same_shape(&golden("receiver_0"), &receiver, "receiver");
    assert_eq!(receiver["isActive"], true);
    let rates: Vec<(u64, f64)> = receiver["eventRates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_u64().unwrap(), r[1].as_f64().unwrap()))
        .collect();
    let expected: Vec<(u64, f64)> = infos.iter().map(|(t, b)| (*t, b.num_records() as f64)).collect();
    assert_eq!(rates, expected, "one rate per batch: records over the 1 s interval");

    let batches = job.api("/batches");
    same_shape(&golden("batches"), &batches, "batches");
    let ids: Vec<u64> = batches.as_array().unwrap().iter().map(|b| b["batchId"].as_u64().unwrap()).collect();
    assert_eq!(ids, infos.keys().rev().copied().collect::<Vec<_>>(), "newest first, every batch");
    for b in batches.as_array().unwrap() {
        let info = &infos[&b["batchId"].as_u64().unwrap()];
        assert_eq!(b["status"], "COMPLETED");
        assert_eq!(b["inputSize"], info.num_records());
        assert_eq!(b["schedulingDelay"], info.scheduling_delay().unwrap());
        assert_eq!(b["processingTime"], info.processing_delay().unwrap());
        assert_eq!(b["totalDelay"], info.total_delay().unwrap());
        assert_eq!(b["numTotalOutputOps"], 2);
        assert_eq!(b["numActiveOutputOps"], 0);
    }
    assert_eq!(job.api("/batches?status=COMPLETED"), batches);
    assert_eq!(job.api("/batches?status=QUEUED&status=PROCESSING"), Value::Array(Vec::new()));

    let failed = job.api("/batches/3000");
    same_shape(&golden("batch"), &failed, "batch");
    assert_eq!(failed["numFailedOutputOps"], 1);
    assert_eq!(failed["numCompletedOutputOps"], 1);
    assert!(failed["firstFailureReason"].as_str().unwrap().contains("the sink refused batch 3"), "{failed}");
    assert!(job.api("/batches/2000").get("firstFailureReason").is_none());

    let ops = job.api("/batches/3000/operations");
    same_shape(&golden("operations"), &ops, "operations");
    assert_eq!(ops.as_array().unwrap().len(), 2);
    let op = job.api("/batches/3000/operations/1");
    same_shape(&golden("operation"), &op, "operation");
    let info_op = &infos[&3000].output_operation_infos[1];
    assert_eq!(op["duration"], info_op.duration().unwrap());
    assert!(op["failureReason"].as_str().unwrap().contains("the sink refused batch 3"));
    assert_eq!(op["description"], "foreach_batch <- reduce_by_key <- map <- flat_map <- receiver stream [0]");

    // Unknown things are 404s with a message; a bad status is a 400.
    let id = app_id(addr);
    assert_eq!(get(addr, "/api/v1/applications/nope/streaming/statistics").status, 404);
    assert_eq!(get(addr, &format!("/api/v1/applications/{id}/streaming/batches/12345")).status, 404);
    assert_eq!(get(addr, &format!("/api/v1/applications/{id}/streaming/receivers/7")).status, 404);
    assert_eq!(get(addr, &format!("/api/v1/applications/{id}/streaming/batches/3000/operations/9")).status, 404);
    let bad = get(addr, &format!("/api/v1/applications/{id}/streaming/batches?status=DONE"));
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("DONE"), "{}", bad.body);
    job.ssc.stop(false).unwrap();
}

/// `name{labels} value` lines of a scrape, by name and labels.
fn scrape(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.is_empty(),
            "not a Prometheus name: {line}"
        );
        assert!(series[name_end..].is_empty() || series.ends_with('}'), "labels: {line}");
        out.insert(series.to_owned(), value.parse::<f64>().unwrap_or_else(|_| panic!("not a value: {line}")));
    }
    out
}

#[test]
fn prometheus_agrees_with_the_rest_api() {
    let _g = ember::testing::exclusive();
    let mut job = word_count(&[]);
    job.batches(&[5, 9, 1]);
    let addr = job.ui.address();
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    assert_eq!(get(addr, "/metrics/prometheus").body.lines().count(), r.body.lines().count(), "Spark's path too");
    let m = scrape(&r.body);
    for name in m.keys() {
        assert!(
            r.body.contains(&format!("# TYPE {} ", &name[..name.find('{').unwrap_or(name.len())])),
            "typed: {name}"
        );
    }
    let stats = job.api("/statistics");
    let newest = &job.api("/batches")[0];
    let app = "{app=\"ui-test\"}";
    let v = |name: &str| m.get(&format!("{name}{app}")).copied().unwrap_or_else(|| panic!("no {name} in {m:?}"));
    assert_eq!(v("ember_streaming_completed_batches_total"), stats["numTotalCompletedBatches"].as_f64().unwrap());
    assert_eq!(v("ember_streaming_processed_records_total"), stats["numProcessedRecords"].as_f64().unwrap());
    assert_eq!(v("ember_streaming_received_records_total"), stats["numReceivedRecords"].as_f64().unwrap());
    assert_eq!(v("ember_streaming_receivers"), 1.0);
    assert_eq!(v("ember_streaming_unprocessed_batches"), 0.0);
    assert_eq!(v("ember_streaming_retained_completed_batches"), 3.0);
    assert_eq!(v("ember_streaming_last_completed_batch_total_delay_ms"), newest["totalDelay"].as_f64().unwrap());
    assert_eq!(
        v("ember_streaming_last_completed_batch_processing_delay_ms"),
        newest["processingTime"].as_f64().unwrap()
    );
    assert_eq!(v("ember_streaming_last_completed_batch_records"), newest["inputSize"].as_f64().unwrap());
    assert_eq!(v("ember_input_received_records_total"), stats["numReceivedRecords"].as_f64().unwrap());
    assert_eq!(
        m[&"ember_input_last_batch_records{app=\"ui-test\",stream=\"0\",name=\"receiver stream\"}".to_owned()],
        1.0
    );
    let op = |name: &str| -> f64 {
        let found: Vec<f64> = m
            .iter()
            .filter(|(k, _)| {
                k.starts_with("ember_operation_last_batch_records{") && k.ends_with(&format!("name=\"{name}\"}}"))
            })
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(found.len(), 1, "one series for {name}");
        found[0]
    };
    assert_eq!((op("flat_map"), op("map"), op("reduce_by_key")), (4.0, 4.0, 4.0), "one line of four distinct words");
    let receiver_active: Vec<f64> = m
        .iter()
        .filter(|(k, _)| k.starts_with("ember_receiver_active{app=\"ui-test\",stream=\"0\",name="))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(receiver_active, vec![1.0]);
    assert_eq!(
        m[&"ember_output_operation_retained_failures{app=\"ui-test\",op=\"1\",name=\"foreach_batch\"}".to_owned()],
        1.0
    );
    job.ssc.stop(false).unwrap();
}

#[test]
fn a_token_is_needed_on_every_path_and_the_ui_binds_loopback() {
    let _g = ember::testing::exclusive();
    let mut job = word_count(&[("ui.token", "s3cret"), ("ui.kill_enabled", "true")]);
    job.batch(3);
    let addr = job.ui.address();
    assert!(addr.ip().is_loopback(), "bound to loopback by default: {addr}");
    let paths = [
        "/streaming/",
        "/streaming/fragment",
        "/streaming/batch/?id=1000",
        "/dashboard",
        "/events",
        "/api/v1/applications",
        "/api/v1/applications/x/streaming/statistics",
        "/api/v1/applications/x/streaming/batches",
        "/metrics",
        "/metrics/prometheus",
        "/nothing-here",
    ];
    for path in paths {
        assert_eq!(request(addr, "GET", path, &[]).status, 401, "{path} without a token");
        assert_eq!(
            request(addr, "GET", path, &[("Authorization", "Bearer wrong")]).status,
            401,
            "{path} with a wrong token"
        );
    }
    assert_eq!(request(addr, "POST", "/streaming/kill", &[]).status, 401, "the kill link needs the token too");
    let ok = request(addr, "GET", "/api/v1/applications", &[("Authorization", "Bearer s3cret")]);
    assert_eq!(ok.status, 200);
    let page = get(addr, "/streaming/?token=s3cret");
    assert_eq!(page.status, 200);
    let cookie = page.header("set-cookie").expect("a cookie for the page's links");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(request(addr, "GET", "/streaming/batch/?id=1000", &[("Cookie", &cookie)]).status, 200);
    assert!(job.ssc.state() == ember::ContextState::Active, "nothing above changed the job");
    job.ssc.stop(false).unwrap();
}

#[test]
fn the_kill_link_stops_the_job_only_when_enabled() {
    let _g = ember::testing::exclusive();
    let mut job = word_count(&[]);
    job.batch(1);
    let addr = job.ui.address();
    let refused = request(addr, "POST", "/streaming/kill", &[]);
    assert!(refused.status == 404 || refused.status == 405, "no kill path unless ui.kill_enabled: {}", refused.status);
    assert!(!get(addr, "/streaming/").body.contains("/streaming/kill"), "no kill link on the page");
    assert_eq!(job.ssc.state(), ember::ContextState::Active);
    job.ssc.stop(false).unwrap();
    drop(job);

    let mut job = word_count(&[("ui.kill_enabled", "true")]);
    job.batch(1);
    let addr = job.ui.address();
    assert!(get(addr, "/streaming/").body.contains("/streaming/kill"));
    let r = request(addr, "POST", "/streaming/kill", &[]);
    assert_eq!(r.status, 303, "back to the Streaming page");
    job.ssc.await_termination().unwrap();
    assert_eq!(job.ssc.state(), ember::ContextState::Stopped);
}

#[test]
fn completed_batches_beyond_the_retained_number_are_dropped() {
    let _g = ember::testing::exclusive();
    let mut job = word_count(&[("ui.retained_batches", "3")]);
    job.batches(&[1; 10]);
    let stats = job.api("/statistics");
    assert_eq!(stats["numRetainedCompletedBatches"], 3);
    let ids: Vec<u64> =
        job.api("/batches").as_array().unwrap().iter().map(|b| b["batchId"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![10_000, 9000, 8000]);
    assert_eq!(
        get(job.ui.address(), &format!("/api/v1/applications/{}/streaming/batches/1000", app_id(job.ui.address())))
            .status,
        404
    );
    job.ssc.stop(false).unwrap();
}

#[test]
fn a_taken_port_moves_the_ui_to_the_next_free_one() {
    let _g = ember::testing::exclusive();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let ssc = context("local[1]", &[("ui.port", &port.to_string())]);
    let ui = ember_ui::attach(&ssc).unwrap().unwrap();
    assert!(ui.address().port() > port && ui.address().port() <= port + 16, "{} after {port}", ui.address());
    assert_eq!(get(ui.address(), "/api/v1/applications").status, 200);
    let off = context("local[1]", &[("ui.enabled", "false")]);
    assert!(ember_ui::attach(&off).unwrap().is_none(), "ui.enabled=false: no UI");
    let bad = StreamingContext::new(Conf::new().manual_clock(true).set("ui.port", "http"), Duration::from_secs(1));
    assert!(bad.is_err(), "a port that is not a number is a configuration error");
}

#[test]
fn a_hundred_stalled_event_clients_do_not_slow_the_job() {
    let _g = ember::testing::exclusive();
    let mut job = word_count(&[]);
    let addr = job.ui.address();
    // Clients that ask for the event stream and never read it.
    let stalled: Vec<std::net::TcpStream> = (0..100)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(s, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s
        })
        .collect();
    // Every batch changes the page; the job must go on regardless (a blocked job would hang
    // here, and the test with it).
    job.batches(&[20; 50]);
    assert_eq!(get(addr, "/metrics").status, 200, "the UI still answers");
    drop(stalled);
    job.ssc.stop(false).unwrap();
}

#[test]
fn checkpoint_and_write_ahead_log_metrics_match_what_was_written() {
    let _g = ember::testing::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let mut job = word_count_in(&[("receiver.write_ahead_log.enable", "true")], Some(dir.path()));
    let before = scrape(&get(job.ui.address(), "/metrics").body);
    let app = "{app=\"ui-test\"}";
    assert_eq!(before[&format!("ember_checkpoint_last_time_ms{app}")], -1.0, "no checkpoint yet");
    job.batches(&[5; 10]);
    let m = scrape(&get(job.ui.address(), "/metrics").body);
    let v = |name: &str| m[&format!("{name}{app}")];
    // The default interval of a job without state: 10 s, so batch 10 is checkpointed.
    assert_eq!(v("ember_checkpoints_total"), 1.0);
    assert_eq!(v("ember_checkpoint_last_time_ms"), 10_000.0);
    let mut bytes = 0;
    for area in ["state/10000", "positions/10000"] {
        for entry in walk(&dir.path().join(area)) {
            bytes += std::fs::metadata(entry).unwrap().len();
        }
    }
    assert!(bytes > 0, "the checkpoint wrote its receiver's position");
    assert_eq!(v("ember_checkpoint_last_bytes"), bytes as f64, "the size of the files the checkpoint lists");
    assert!(v("ember_checkpoint_last_write_ms") > 0.0);
    // 50 lines of 9 bytes went through the log, in at least one block each batch.
    assert!(v("ember_wal_blocks_total") >= 10.0, "{}", v("ember_wal_blocks_total"));
    assert!(v("ember_wal_bytes_total") >= 50.0 * 8.0, "{}", v("ember_wal_bytes_total"));
    job.ssc.stop(false).unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_pages_are_whole_without_scripts() {
    let _g = ember::testing::exclusive();
    let mut job = word_count(&[]);
    job.batches(&[3, 4]);
    let addr = job.ui.address();
    // What a browser with scripts off shows: the server's HTML as it is.
    let page = get(addr, "/streaming/");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    let html = &page.body;
    for t in [1000, 2000] {
        assert!(html.contains(&format!("<a href=\"/streaming/batch/?id={t}\">")), "batch {t} linked");
    }
    assert!(html.contains("<b id=\"completed-count\">2</b>") && html.contains("<b id=\"record-count\">7</b>"));
    assert!(html.contains("id=\"input-rate-timeline\" data-points=\"2\""));
    let batch = get(addr, "/streaming/batch/?id=2000").body;
    assert!(batch.contains("Details of batch at") && batch.contains("4 records"), "{batch}");
    assert_eq!(get(addr, "/streaming/batch/?id=999").status, 404);
    // The script only swaps in the fragment the server renders the same way.
    let fragment = get(addr, "/streaming/fragment").body;
    assert!(fragment.contains("id=\"completed-batches\"") && !fragment.contains("<html"));
    job.ssc.stop(false).unwrap();
}

#[test]
#[ignore = "run as a child process by `two_processes_one_ui_on_the_driver`"]
fn two_processes_child() {
    let ssc =
        StreamingContext::new(Conf::new().manual_clock(true).set("ui.port", "0"), Duration::from_secs(1)).unwrap();
    let ui = ember_ui::attach(&ssc).unwrap();
    let batches: Vec<Vec<String>> = (0..4).map(|b| (0..10 * (b + 1)).map(|i| format!("w{i} x")).collect()).collect();
    let words =
        ssc.queue_stream(batches, true).flat_map(|l: String| l.split(' ').map(String::from).collect::<Vec<_>>());
    words.map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b).foreach_batch(|_t, _c: Vec<(String, u64)>| {});
    ssc.run_batches(4).unwrap();
    match &ui {
        Some(ui) => {
            let addr = ui.address();
            let stats = |addr| get(addr, &format!("/api/v1/applications/{}/streaming/statistics", app_id(addr))).json();
            eventually("four batches", || stats(addr)["numTotalCompletedBatches"] == 4);
            println!("UI statistics {}", stats(addr));
            println!("UI metrics {}", get(addr, "/metrics").body.replace('\n', "|"));
        }
        None => println!("UI none"),
    }
    ssc.stop(false).unwrap();
}

#[test]
fn two_processes_one_ui_on_the_driver() {
    let outputs = ember::testing::run_cluster("two_processes_child", &[]);
    let out: Vec<String> = outputs.iter().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).collect();
    assert!(out[1].contains("UI none"), "only the driver process serves the UI: {}", out[1]);
    let tagged = |tag: &str| ember::testing::tagged(&outputs[0].stdout, tag).into_iter().next();
    let stats_line = tagged("UI statistics").expect("the driver's UI");
    let stats: Value = serde_json::from_str(&stats_line).unwrap();
    assert_eq!(stats["numProcessedRecords"], 100, "10 + 20 + 30 + 40 lines, read on the driver");
    let metrics = tagged("UI metrics").unwrap().replace('|', "\n");
    let m = scrape(&metrics);
    let flat_map =
        m.iter().find(|(k, _)| k.starts_with("ember_operation_last_batch_records") && k.contains("\"flat_map\""));
    assert_eq!(
        flat_map.map(|x| *x.1),
        Some(80.0),
        "the last batch's 80 words, counted on all four workers of both processes"
    );
}
