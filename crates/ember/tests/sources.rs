//! Sources against real sockets and files: reconnects, bad input, file pick-up rules.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use ember::testing::exclusive;
use ember::{Conf, ReceiverInfo, StreamingContext, StreamingListener};

const WAIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct ReceiverEvents(Arc<Mutex<Vec<String>>>);

impl StreamingListener for ReceiverEvents {
    fn on_receiver_started(&mut self, i: &ReceiverInfo) {
        self.0.lock().unwrap().push(format!("started {}", i.name));
    }
    fn on_receiver_error(&mut self, i: &ReceiverInfo) {
        self.0.lock().unwrap().push(format!("error {}", i.last_error_message));
    }
}

fn socket_context(extra: &[(&str, &str)]) -> StreamingContext {
    let mut conf = Conf::new().master("local[2]").manual_clock(true).set("receiver.restart_delay", "20ms");
    for (k, v) in extra {
        conf = conf.set(*k, *v);
    }
    StreamingContext::new(conf, Duration::from_secs(1)).unwrap()
}

#[test]
fn socket_reconnects_until_the_server_is_up_and_after_it_closes() {
    let _g = exclusive();
    let port = common::free_ports(1)[0];
    let ssc = socket_context(&[]);
    let events = Arc::new(Mutex::new(Vec::new()));
    ssc.add_streaming_listener(ReceiverEvents(Arc::clone(&events)));
    let out = ssc.socket_text_stream("127.0.0.1", port).collect_batches();
    ssc.start().unwrap();

    // The server is not up yet: the receiver keeps retrying. Then it comes up.
    let server = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (mut conn, _) = server.accept().unwrap();
    conn.write_all(b"hello world\r\nsecond line\n").unwrap();
    drop(conn); // the server closes: the receiver must reconnect
    assert!(ssc.wait_for_received(2, WAIT).unwrap(), "two lines received");
    ssc.run_batches(1).unwrap();

    let (mut conn, _) = server.accept().unwrap();
    conn.write_all(b"after reconnect\nno newline at the end").unwrap();
    drop(conn);
    assert!(ssc.wait_for_received(4, WAIT).unwrap(), "lines after the reconnect received");
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();

    let batches: Vec<Vec<String>> = ember::testing::sorted(out.batches().into_iter().map(|(_, b)| b).collect());
    assert_eq!(batches[0], vec!["hello world", "second line"]);
    assert_eq!(batches[1], vec!["after reconnect", "no newline at the end"]);
    let ev = events.lock().unwrap().clone();
    assert_eq!(ev.first().map(String::as_str), Some("started SocketReceiver-0"));
    assert!(ev.iter().any(|e| e.contains("Socket data stream had no more data")), "{ev:?}");
}

#[test]
fn socket_counts_invalid_utf8_and_skips_oversized_lines() {
    let _g = exclusive();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let ssc = socket_context(&[("receiver.max_line_bytes", "16")]);
    let out = ssc.socket_text_stream("127.0.0.1", port).collect_batches();
    ssc.start().unwrap();
    let (mut conn, _) = server.accept().unwrap();
    let long = "x".repeat(100_000);
    conn.write_all(format!("ok 1\ncaf\u{e9}\n{long}\nok 2\n").as_bytes()).unwrap();
    conn.write_all(b"bad \xff\xfe bytes\n").unwrap();
    conn.flush().unwrap();
    assert!(ssc.wait_for_received(4, WAIT).unwrap());
    ssc.run_batches(1).unwrap();
    let counters = ssc.input_counters();
    ssc.stop(false).unwrap();
    drop(conn);
    let mut batch = out.batches()[0].1.clone();
    batch.sort();
    assert_eq!(batch, vec!["bad \u{fffd}\u{fffd} bytes".to_string(), "caf\u{e9}".into(), "ok 1".into(), "ok 2".into()]);
    assert_eq!(counters.oversized_skipped, 1);
    assert_eq!(counters.invalid_utf8, 1);
    assert_eq!(counters.received, 4);
}

const START: u64 = 1_700_000_000_000;

fn write_file(dir: &Path, name: &str, text: &str, mtime: u64) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    set_mtime(&path, mtime);
}

fn set_mtime(path: &Path, mtime: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_millis(mtime)).unwrap();
}

fn file_context() -> StreamingContext {
    let conf = Conf::new().master("local[2]").manual_clock(true).set("clock.manual.start", START.to_string());
    StreamingContext::new(conf, Duration::from_secs(1)).unwrap()
}

#[test]
fn file_stream_pick_up_rules() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ssc = file_context();
    let files = Arc::new(Mutex::new(Vec::new()));
    ssc.add_streaming_listener(FilesRead(Arc::clone(&files)));
    let out = ssc.text_file_stream(d).collect_batches();
    write_file(d, "a.txt", "a1\na2\n", START + 500);
    write_file(d, ".hidden", "hidden\n", START + 500);
    write_file(d, "_temporary", "temp\n", START + 500);
    write_file(d, "copy.tmp", "tmp\n", START + 500);
    write_file(d, "old.txt", "old\n", START - 10);
    write_file(d, "at_threshold.txt", "edge\n", START);
    write_file(d, "future.txt", "f1\r\nf2", START + 2500);
    std::fs::create_dir(d.join("sub")).unwrap();
    write_file(&d.join("sub"), "nested.txt", "nested\n", START + 500);

    ssc.run_batches(1).unwrap();
    // A file already read is not read again, even when modified.
    write_file(d, "a.txt", "a changed\n", START + 1500);
    ssc.run_batches(2).unwrap();
    ssc.stop(false).unwrap();
    let batches: Vec<(u64, Vec<String>)> = out
        .batches()
        .into_iter()
        .map(|(t, mut b)| {
            b.sort();
            (t.millis() - START, b)
        })
        .collect();
    assert_eq!(
        batches,
        vec![(1000, vec!["a1".into(), "a2".into()]), (2000, vec![]), (3000, vec!["f1".into(), "f2".into()]),]
    );
    // Each batch reports the files it read (Spark's `files` metadata), none for an empty batch.
    let name = |f: &str| d.join(f).display().to_string();
    assert_eq!(
        *files.lock().unwrap(),
        vec![(1000, Some(name("a.txt"))), (2000, None), (3000, Some(name("future.txt")))]
    );
}

/// The `files` metadata of the file stream (input 0) per completed batch.
struct FilesRead(Arc<Mutex<Vec<(u64, Option<String>)>>>);

impl StreamingListener for FilesRead {
    fn on_batch_completed(&mut self, info: &ember::BatchInfo) {
        let files = info
            .stream_input_info
            .iter()
            .find(|i| i.input_stream_id == 0)
            .and_then(|i| i.metadata.get("files").cloned());
        self.0.lock().unwrap().push((info.batch_time.millis() - START, files));
    }
}

#[test]
fn file_stream_on_a_missing_directory_gives_empty_batches() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let ssc = file_context();
    let out = ssc.text_file_stream(dir.path().join("not-there")).count().collect_batches();
    ssc.run_batches(2).unwrap();
    ssc.stop(false).unwrap();
    assert_eq!(out.batches().into_iter().map(|(_, b)| b).collect::<Vec<_>>(), vec![vec![0], vec![0]]);
}

#[test]
fn file_stream_invalid_utf8_is_replaced_and_counted() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let ssc = file_context();
    let out = ssc.text_file_stream(dir.path()).collect_batches();
    let path = dir.path().join("bad.txt");
    std::fs::write(&path, b"ok\n\xc3\x28 broken\n").unwrap();
    set_mtime(&path, START + 10);
    ssc.run_batches(1).unwrap();
    let counters = ssc.input_counters();
    ssc.stop(false).unwrap();
    let mut batch = out.batches()[0].1.clone();
    batch.sort();
    assert_eq!(batch, vec!["ok".to_string(), "\u{fffd}( broken".into()]);
    assert_eq!(counters.invalid_utf8, 1);
}

#[test]
fn save_as_text_files_names_parts_and_overwrites() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("out").join("counts").to_string_lossy().into_owned();
    // A stale directory of an earlier run of batch 1000 is replaced whole.
    let stale = dir.path().join("out/counts-1000.txt");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("part-00007"), "stale\n").unwrap();

    let ssc = StreamingContext::new(Conf::new().master("local[2]").manual_clock(true), Duration::from_secs(1)).unwrap();
    ssc.queue_stream(vec![vec![("a".to_string(), 1u32), ("b".into(), 2)], vec![]], true)
        .save_as_text_files(prefix, "txt");
    ssc.run_batches(2).unwrap();
    ssc.stop(false).unwrap();

    for (t, want) in [(1000, vec!["(a,1)", "(b,2)"]), (2000, vec![])] {
        let d = dir.path().join(format!("out/counts-{t}.txt"));
        let mut names: Vec<String> =
            std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, vec!["_SUCCESS", "part-00000", "part-00001"], "batch {t}");
        let mut lines: Vec<String> = ["part-00000", "part-00001"]
            .iter()
            .flat_map(|p| std::fs::read_to_string(d.join(p)).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        lines.sort();
        assert_eq!(lines, want);
    }
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.path().join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no staging or old directories left: {leftovers:?}");
}

/// Child side of the print golden test.
#[test]
#[ignore = "run as a child process by `print_golden`"]
fn print_golden_child() {
    let ssc = StreamingContext::new(Conf::new().master("local[1]").manual_clock(true), Duration::from_secs(1)).unwrap();
    let s = ssc.queue_stream(vec![(1..=11).collect::<Vec<i64>>(), vec![1, 2, 3], vec![]], true);
    s.print();
    s.map(|x| ("k".to_string(), x * 10)).print_n(2);
    println!("BEGIN");
    ssc.run_batches(3).unwrap();
    ssc.stop(false).unwrap();
    println!("END");
}

#[test]
fn print_golden() {
    let out = common::run_child("print_golden_child", &[]).finish();
    let text = String::from_utf8_lossy(&out.stdout);
    let begin = text.find("BEGIN\n").expect("BEGIN marker") + "BEGIN\n".len();
    let end = text.find("END\n").expect("END marker");
    let got = &text[begin..end];
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/print.txt");
    if std::env::var("EMBER_BLESS").is_ok() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(got, want, "print output differs from {} (EMBER_BLESS=1 rewrites it)", path.display());
}

/// Child side of the print order test: `print_n` of a queue stream under `EMBER_PRINT_MASTER`.
#[test]
#[ignore = "run as a child process by `print_shows_the_first_records_in_arrival_order`"]
fn print_order_child() {
    let master = std::env::var("EMBER_PRINT_MASTER").unwrap();
    let ssc = StreamingContext::new(Conf::new().master(master).manual_clock(true), Duration::from_secs(1)).unwrap();
    let s = ssc.queue_stream(vec![(0..3000).collect::<Vec<i64>>(), (5000..5003).collect()], true);
    s.print_n(10);
    s.filter(|x| x % 7 == 3).print_n(5);
    s.flat_map(|x| vec![x, -x]).print_n(4);
    println!("BEGIN");
    ssc.run_batches(2).unwrap();
    ssc.stop(false).unwrap();
    println!("END");
}

#[test]
fn print_shows_the_first_records_in_arrival_order() {
    use ember::dstream::output::format_batch;
    let batches: Vec<Vec<i64>> = vec![(0..3000).collect(), (5000..5003).collect()];
    let mut want = String::new();
    for (i, b) in batches.iter().enumerate() {
        let t = ember::Time::from_millis((i as u64 + 1) * 1000);
        want.push_str(&format_batch(t, b, 10));
        let kept: Vec<i64> = b.iter().copied().filter(|x| x % 7 == 3).collect();
        want.push_str(&format_batch(t, &kept, 5));
        let doubled: Vec<i64> = b.iter().flat_map(|&x| [x, -x]).collect();
        want.push_str(&format_batch(t, &doubled, 4));
    }
    for master in ["local[2]", "local[3]"] {
        for run in 0..3 {
            let out = common::run_child("print_order_child", &[("EMBER_PRINT_MASTER", master.to_string())]).finish();
            let text = String::from_utf8_lossy(&out.stdout);
            let begin = text.find("BEGIN\n").expect("BEGIN marker") + "BEGIN\n".len();
            let end = text.find("END\n").expect("END marker");
            assert_eq!(&text[begin..end], want, "{master}, run {run}");
        }
    }
}
