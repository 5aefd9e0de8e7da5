//! The ZeroMQ receiver against a real libzmq peer: a pyzmq publisher (`tests/publisher.py`,
//! run by the Python that `scripts/test.sh` installs pyzmq into).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ember::testing::exclusive;
use ember::{Conf, StreamingContext};
use ember_zeromq::{zeromq_stream, ZmqMessage, ZmqSpec};

const WAIT: Duration = Duration::from_secs(30);

fn python() -> String {
    let py = std::env::var("EMBER_PYTHON").unwrap_or_else(|_| "/tmp/ember-services/venv/bin/python".to_owned());
    let ok = Command::new(&py).args(["-c", "import zmq"]).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "`{py}` cannot import zmq: run `scripts/test.sh` (it installs pyzmq), or set EMBER_PYTHON to a Python with pyzmq");
    py
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A pyzmq XPUB or PUSH socket bound on a port (0: a free one), driven through its stdin and stdout.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<String>,
    port: u16,
}

impl Peer {
    fn start(mode: &str, port: u16) -> Peer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/publisher.py");
        let mut child = Command::new(python())
            .args([script, mode, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = Peer { child, stdin, events, port };
        let line = peer.events.recv_timeout(WAIT).expect("the peer never said it was ready");
        peer.port =
            line.strip_prefix("ready ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("not ready: {line}"));
        peer
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Waits for an event line that `f` accepts (other lines are dropped).
    fn expect(&mut self, f: impl Fn(&str) -> bool, what: &str) {
        loop {
            let line = self.events.recv_timeout(WAIT).unwrap_or_else(|_| panic!("the peer never said {what}"));
            if f(&line) {
                return;
            }
        }
    }

    /// Sends messages (their frames) and waits until the peer sent them all.
    fn send(&mut self, messages: &[Vec<Vec<u8>>]) {
        let mut text = String::new();
        for m in messages {
            text.push_str(&m.iter().map(|f| hex(f)).collect::<Vec<_>>().join("\t"));
            text.push('\n');
        }
        self.stdin.write_all(text.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
        for _ in messages {
            self.expect(|l| l == "sent", "sent");
        }
    }

    /// Waits until a subscriber subscribed to every topic in `topics`, in any order.
    fn wait_subscribed(&mut self, topics: &[&str]) {
        let mut want: std::collections::BTreeSet<String> =
            topics.iter().map(|t| format!("sub {}", hex(t.as_bytes()))).collect();
        while !want.is_empty() {
            let line = self.events.recv_timeout(WAIT).unwrap_or_else(|_| panic!("no subscription to {want:?}"));
            want.remove(&line);
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn context() -> StreamingContext {
    let conf = Conf::new().master("local[2]").manual_clock(true).set("receiver.restart_delay", "100ms");
    StreamingContext::new(conf, Duration::from_secs(1)).unwrap()
}

fn text(topic: &str, body: &str) -> Vec<Vec<u8>> {
    vec![topic.as_bytes().to_vec(), body.as_bytes().to_vec()]
}

#[test]
fn topic_filters_and_binary_frames() {
    let _g = exclusive();
    let mut peer = Peer::start("xpub", 0);
    let ssc = context();
    let stream = zeromq_stream(&ssc, ZmqSpec::sub(peer.url(), ["prices.", "alerts"]));
    let raw = stream.stream().collect_batches();
    let pairs = stream.text().collect_batches();
    ssc.start().unwrap();
    peer.wait_subscribed(&["prices.", "alerts"]);
    let mut messages: Vec<Vec<Vec<u8>>> = (0..100).map(|i| text("prices.eur", &format!("p{i}"))).collect();
    messages.push(text("volumes.eur", "not subscribed"));
    messages.push(vec![b"alerts".to_vec(), vec![0, 159, 146, 150, 255], b"tail".to_vec()]);
    messages.push(vec![b"alerts".to_vec()]);
    peer.send(&messages);
    assert!(ssc.wait_for_received(102, WAIT).unwrap());
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let mut got: Vec<ZmqMessage> = raw.batches()[0].1.clone();
    got.sort_by(|a, b| a.frames.cmp(&b.frames));
    assert_eq!(got.len(), 102, "the unsubscribed topic is filtered out");
    assert_eq!(got[0].frames, vec![b"alerts".to_vec()]);
    assert_eq!(
        got[1].frames,
        vec![b"alerts".to_vec(), vec![0, 159, 146, 150, 255], b"tail".to_vec()],
        "binary frames kept"
    );
    assert!(got[2..].iter().all(|m| m.topic() == b"prices.eur" && m.frames.len() == 2));
    let mut pairs = pairs.batches()[0].1.clone();
    pairs.sort();
    assert_eq!(pairs.len(), 101, "the message that is not UTF-8 is skipped by text()");
    assert_eq!(pairs[0], ("alerts".to_owned(), String::new()));
    assert_eq!(stream.bad_messages(), 1);
}

#[test]
fn pull_reads_every_pushed_message() {
    let _g = exclusive();
    let mut peer = Peer::start("push", 0);
    let ssc = context();
    let out = zeromq_stream(&ssc, ZmqSpec::pull(peer.url()))
        .stream()
        .map(|m| String::from_utf8(m.frames[0].clone()).unwrap())
        .collect_batches();
    ssc.start().unwrap();
    // PUSH waits for a puller: the sends complete once the receiver connected.
    peer.send(&(0..300).map(|i| vec![format!("m{i}").into_bytes()]).collect::<Vec<_>>());
    assert!(ssc.wait_for_received(300, WAIT).unwrap());
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let got = out.batches()[0].1.clone();
    assert_eq!(got, (0..300).map(|i| format!("m{i}")).collect::<Vec<_>>(), "all, in order");
}

#[test]
fn the_receiver_reconnects_after_a_publisher_restart() {
    let _g = exclusive();
    let mut peer = Peer::start("xpub", 0);
    let port = peer.port;
    let ssc = context();
    let out = zeromq_stream(&ssc, ZmqSpec::sub(peer.url(), [""])).text().map(|(_, b)| b).collect_batches();
    ssc.start().unwrap();
    peer.wait_subscribed(&[""]);
    peer.send(&(0..50).map(|i| text("t", &format!("before {i}"))).collect::<Vec<_>>());
    assert!(ssc.wait_for_received(50, WAIT).unwrap());
    peer.kill();
    let mut peer = Peer::start("xpub", port);
    peer.wait_subscribed(&[""]);
    peer.send(&(0..50).map(|i| text("t", &format!("after {i}"))).collect::<Vec<_>>());
    assert!(ssc.wait_for_received(100, WAIT).unwrap());
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let got = out.batches()[0].1.clone();
    assert_eq!(got.iter().filter(|m| m.starts_with("before")).count(), 50);
    assert_eq!(got.iter().filter(|m| m.starts_with("after")).count(), 50);
}

#[test]
fn an_endpoint_that_is_not_zeromq_is_reported() {
    let _g = exclusive();
    let ssc = context();
    let errors = ember::testing::receiver_errors(&ssc);
    let _out = zeromq_stream(&ssc, ZmqSpec::sub("http://127.0.0.1:1", [""])).stream().collect_batches();
    ssc.start().unwrap();
    let e = errors.recv_timeout(WAIT).expect("a receiver error");
    ssc.stop(false).unwrap();
    assert!(e.contains("cannot connect to http://127.0.0.1:1"), "{e}");
}

/// Child side of the kill test: a PULL receiver with the write-ahead log, on the manual clock.
/// `ZMQ_KILL_MODE=store`: one batch, then receive until `ZMQ_KILL_N` messages are stored, say so
/// in a file, and wait to be killed. `drain`: recover and run two batches.
#[test]
#[ignore = "run as a child process by `messages_stored_before_a_kill_9_are_not_lost_with_the_write_ahead_log`"]
fn wal_kill_child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let dir = std::path::PathBuf::from(var("ZMQ_KILL_DIR"));
    let (ck, out, url) = (dir.join("ck"), dir.join("out"), var("ZMQ_KILL_URL"));
    let build = || {
        let conf = Conf::new()
            .master("local[2]")
            .manual_clock(true)
            .set("clock.manual.start", "1700000000000")
            .set("receiver.write_ahead_log.enable", "true")
            .set("receiver.restart_delay", "50ms");
        let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
        ssc.checkpoint(&ck);
        zeromq_stream(&ssc, ZmqSpec::pull(url.clone()))
            .stream()
            .map(|m| String::from_utf8_lossy(&m.frames[0]).into_owned())
            .save_as_text_files(out.join("batch").to_string_lossy(), "");
        Ok(ssc)
    };
    let ssc = StreamingContext::get_or_create(&ck, build).unwrap();
    ssc.start().unwrap();
    if var("ZMQ_KILL_MODE") == "drain" {
        ssc.run_batches(2).unwrap();
        ssc.stop(false).unwrap();
        return;
    }
    ssc.run_batches(1).unwrap();
    let n: u64 = var("ZMQ_KILL_N").parse().unwrap();
    assert!(ssc.wait_for_received(n, WAIT).unwrap(), "the messages never arrived");
    std::fs::write(dir.join("stored"), "").unwrap();
    loop {
        ember::clock::real_sleep(Duration::from_secs(1));
    }
}

#[test]
fn messages_stored_before_a_kill_9_are_not_lost_with_the_write_ahead_log() {
    const N: usize = 500;
    let mut peer = Peer::start("push", 0);
    let dir = tempfile::tempdir().unwrap();
    let url = peer.url();
    let child = |mode: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args(["wal_kill_child", "--exact", "--ignored", "--nocapture"])
            .env("ZMQ_KILL_DIR", dir.path())
            .env("ZMQ_KILL_URL", &url)
            .env("ZMQ_KILL_N", N.to_string())
            .env("ZMQ_KILL_MODE", mode)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = child("store");
    peer.send(&(0..N).map(|i| vec![format!("m{i}").into_bytes()]).collect::<Vec<_>>());
    let stored = dir.path().join("stored");
    let watch = ember::clock::Stopwatch::start();
    while !stored.exists() {
        assert!(first.try_wait().unwrap().is_none(), "the first run ended");
        assert!(watch.elapsed() < WAIT, "the first run never stored the messages");
        ember::clock::real_sleep(Duration::from_millis(20));
    }
    first.kill().unwrap(); // SIGKILL: the stored messages are in the log only
    first.wait().unwrap();
    let out = dir.path().join("out");
    let before = if out.exists() { ember::testing::committed_outputs(&out).into_values().flatten().count() } else { 0 };
    assert_eq!(before, 0, "nothing was output before the kill");
    assert!(child("drain").wait().unwrap().success(), "the recovered run failed");
    let mut got: Vec<String> = ember::testing::committed_outputs(&out).into_values().flatten().collect();
    got.sort_by_key(|m| m[1..].parse::<usize>().unwrap());
    assert_eq!(got, (0..N).map(|i| format!("m{i}")).collect::<Vec<_>>(), "every stored message once");
}
