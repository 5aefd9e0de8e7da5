//! Kinesis servers for the tests: kinesalite (npm) and moto's Kinesis (PyPI), each started per
//! test on a free loopback port and ended with it; `scripts/test.sh` installs both.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use ember_kinesis::{Credentials, KinesisClient};
use serde_json::json;

pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()))
        .with_test_writer()
        .try_init();
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server process, killed when dropped.
pub use ember::testing::Service as Server;

/// kinesalite, in memory, streams ACTIVE at once.
pub fn kinesalite() -> Server {
    let module = ember::testing::installed(
        "EMBER_KINESALITE",
        "/tmp/ember-services/kinesalite/node_modules/kinesalite",
        "npm install kinesalite@3.3.3",
    );
    // Port 0: the system picks a free port and kinesalite says which, so no other test can
    // take it between a probe and the bind. kinesalite rethrows a request aborted by its client
    // (a job killed mid-request, which the kill tests do) and so dies: log those and go on.
    let script = format!(
        "process.on('uncaughtException', e => console.error('kinesalite: ' + e.message)); \
         const s = require({module:?})({{createStreamMs:0,deleteStreamMs:0,updateStreamMs:0}}); \
         s.listen(0, '127.0.0.1', () => console.log(s.address().port))"
    );
    let mut child = Command::new("node")
        .args(["-e", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node for kinesalite: {e}"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("kinesalite did not say its port: `{line}`"));
    Server::listening(child, port, "kinesalite")
}

/// A Kinesis client of a test server.
pub trait KinesisServer {
    fn client(&self) -> KinesisClient;
}

impl KinesisServer for Server {
    fn client(&self) -> KinesisClient {
        KinesisClient::new(Some(&self.endpoint), "us-east-1", credentials()).unwrap()
    }
}

pub fn credentials() -> Credentials {
    Credentials::new("AKIDEMBERTEST", "ember-test-secret")
}

pub fn create_stream(c: &KinesisClient, stream: &str, shards: u32) {
    c.create_stream(stream, shards).unwrap_or_else(|e| panic!("creating {stream}: {e}"));
}

/// Puts records (partition key, data); returns (shard, sequence number) per record, in order.
pub fn put(c: &KinesisClient, stream: &str, records: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    c.put_records(stream, records).unwrap_or_else(|e| panic!("putting into {stream}: {e}"))
}

/// Lines `prefix0`.. with partition keys `k0`..`k9`.
pub fn lines(prefix: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n).map(|i| (format!("k{}", i % 10), format!("{prefix}{i}").into_bytes())).collect()
}

/// Splits `shard` in the middle of its hash-key range and waits for the stream to be ACTIVE.
pub fn split(c: &KinesisClient, stream: &str, shard: &str) {
    let shards = c.call("ListShards", &json!({ "StreamName": stream })).unwrap();
    let range =
        shards["Shards"].as_array().unwrap().iter().find(|s| s["ShardId"] == shard).unwrap()["HashKeyRange"].clone();
    let key = |k: &str| range[k].as_str().unwrap().parse::<u128>().unwrap();
    let middle = key("StartingHashKey") / 2 + key("EndingHashKey") / 2 + 1;
    c.call(
        "SplitShard",
        &json!({ "StreamName": stream, "ShardToSplit": shard, "NewStartingHashKey": middle.to_string() }),
    )
    .unwrap();
    c.wait_active(stream).unwrap();
}

/// A proxy before `upstream` that answers the first `n` GetRecords calls with
/// ProvisionedThroughputExceededException, drops connections while `cut` is set (counting them in
/// `refused`), and forwards everything else.
pub struct Throttler {
    pub endpoint: String,
    pub throttled: Arc<AtomicUsize>,
    pub cut: Arc<AtomicBool>,
    pub refused: Arc<AtomicUsize>,
}

fn read_message(s: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// The head without its Connection header, with `Connection: close`.
fn closing(head: &str) -> String {
    let mut lines: Vec<&str> =
        head.trim_end().split("\r\n").filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

impl Throttler {
    pub fn start(upstream: u16, n: usize) -> Throttler {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let throttled = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let (count, is_cut, refusals) = (Arc::clone(&throttled), Arc::clone(&cut), Arc::clone(&refused));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                if is_cut.load(Ordering::SeqCst) {
                    refusals.fetch_add(1, Ordering::SeqCst);
                    continue; // dropped: the client sees its connection closed
                }
                let Some((head, body)) = read_message(&mut conn) else { continue };
                if head.contains("Kinesis_20131202.GetRecords") && count.load(Ordering::SeqCst) < n {
                    count.fetch_add(1, Ordering::SeqCst);
                    let body =
                        r#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard"}"#;
                    let _ = write!(
                        conn,
                        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    continue;
                }
                let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                up.write_all(closing(&head).as_bytes()).unwrap();
                up.write_all(&body).unwrap();
                let Some((rhead, rbody)) = read_message(&mut up) else { continue };
                let _ = conn.write_all(closing(&rhead).as_bytes());
                let _ = conn.write_all(&rbody);
            }
        });
        Throttler { endpoint: format!("http://127.0.0.1:{port}"), throttled, cut, refused }
    }
}
