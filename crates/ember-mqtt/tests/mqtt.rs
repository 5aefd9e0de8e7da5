//! The MQTT receiver against a real Mosquitto on 127.0.0.1 (`scripts/test.sh` starts one on port
//! 1883 when none runs).

use std::net::TcpStream;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use ember::testing::exclusive;
use ember::{Conf, StreamingContext};
use ember_mqtt::{mqtt_paired_stream, mqtt_stream, MqttSpec};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

const WAIT: Duration = Duration::from_secs(30);

fn shared_broker() -> u16 {
    assert!(
        TcpStream::connect("127.0.0.1:1883").is_ok(),
        "no MQTT broker on 127.0.0.1:1883: run scripts/test.sh (it installs and starts mosquitto), or `mosquitto -d -c <conf>` with `listener 1883 127.0.0.1` and `allow_anonymous true`"
    );
    1883
}

fn unique(prefix: &str) -> String {
    static N: Mutex<u32> = Mutex::new(0);
    let mut n = N.lock().unwrap();
    *n += 1;
    format!("{prefix}-{}-{}", std::process::id(), *n)
}

/// Publishes `messages` (topic, payload) at QoS 1 and returns once the broker acknowledged all.
fn publish(port: u16, messages: &[(String, Vec<u8>)]) {
    publish_as(port, None, messages);
}

/// `publish`, logged in as `user` (name, password) when given.
fn publish_as(port: u16, user: Option<(&str, &str)>, messages: &[(String, Vec<u8>)]) {
    let mut options = MqttOptions::new(unique("pub"), "127.0.0.1", port);
    if let Some((name, password)) = user {
        options.set_credentials(name, password);
    }
    let (client, mut connection) = Client::new(options, 64);
    let to_send: Vec<(String, Vec<u8>)> = messages.to_vec();
    let sender = std::thread::spawn(move || {
        for (topic, payload) in to_send {
            client.publish(topic, QoS::AtLeastOnce, false, payload).unwrap();
        }
        client
    });
    let mut acked = 0;
    for event in connection.iter() {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = event {
            acked += 1;
            if acked == messages.len() {
                break;
            }
        }
        event.expect("the publisher's connection");
    }
    let client = sender.join().unwrap();
    let _ = client.disconnect();
}

fn context() -> StreamingContext {
    let conf = Conf::new().master("local[2]").manual_clock(true).set("receiver.restart_delay", "100ms");
    StreamingContext::new(conf, Duration::from_secs(1)).unwrap()
}

#[test]
fn wildcard_topics_at_qos_1() {
    let _g = exclusive();
    let port = shared_broker();
    let root = unique("ember-test");
    let ssc = context();
    let spec = MqttSpec::new(format!("tcp://127.0.0.1:{port}"), [format!("{root}/+/temp")])
        .client_id(unique("sub"))
        .clean_session(true);
    let out =
        mqtt_paired_stream(&ssc, spec).map(|(topic, _)| (topic, 1u64)).reduce_by_key(|a, b| a + b).collect_batches();
    ssc.start().unwrap();
    // The subscription must be in place before publishing: wait for a probe message.
    let mut probes = 0;
    while ssc.received_records() == 0 {
        assert!(probes < 300, "the receiver never subscribed");
        publish(port, &[(format!("{root}/probe/temp"), b"probe".to_vec())]);
        probes += 1;
        if ssc.wait_for_received(1, Duration::from_millis(100)).unwrap() {
            break;
        }
    }
    let already = ssc.received_records();
    let mut messages: Vec<(String, Vec<u8>)> =
        (0..500).map(|i| (format!("{root}/s{}/temp", i % 5), format!("{i}").into_bytes())).collect();
    messages.push((format!("{root}/s1/humidity"), b"not subscribed".to_vec()));
    publish(port, &messages);
    assert!(ssc.wait_for_received(already + 500, WAIT).unwrap());
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let mut counts = out.batches()[0].1.clone();
    counts.retain(|(t, _)| !t.contains("probe"));
    counts.sort();
    let want: Vec<(String, u64)> = (0..5).map(|s| (format!("{root}/s{s}/temp"), 100)).collect();
    assert_eq!(counts, want);
}

#[test]
fn payloads_that_are_not_utf8_are_counted() {
    let _g = exclusive();
    let port = shared_broker();
    let topic = unique("ember-bad");
    let ssc = context();
    let spec =
        MqttSpec::new(format!("tcp://127.0.0.1:{port}"), [topic.clone()]).client_id(unique("sub")).clean_session(true);
    let out = mqtt_stream(&ssc, spec).collect_batches();
    ssc.start().unwrap();
    let mut n = 0;
    while !ssc.wait_for_received(1, Duration::from_millis(100)).unwrap() {
        assert!(n < 300, "the receiver never subscribed");
        publish(port, &[(topic.clone(), b"ok".to_vec())]);
        n += 1;
    }
    let before = ssc.received_records();
    publish(port, &[(topic.clone(), vec![0x66, 0xff, 0x6f]), (topic.clone(), b"fine".to_vec())]);
    assert!(ssc.wait_for_received(before + 2, WAIT).unwrap());
    ssc.run_batches(1).unwrap();
    let counters = ssc.input_counters();
    ssc.stop(false).unwrap();
    let batch = &out.batches()[0].1;
    assert!(batch.contains(&"f\u{fffd}o".to_string()) && batch.contains(&"fine".to_string()), "{batch:?}");
    assert_eq!(counters.invalid_utf8, 1);
}

/// A Mosquitto of this test's own, on a free port, that it may stop and start.
struct OwnBroker {
    port: u16,
    conf: tempfile::NamedTempFile,
    child: Option<Child>,
}

impl OwnBroker {
    fn start() -> Self {
        Self::start_with("allow_anonymous true\n")
    }

    /// A broker whose configuration is its plain listener, then `settings`.
    fn start_with(settings: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(conf.path(), format!("listener {port} 127.0.0.1\npersistence false\n{settings}")).unwrap();
        let mut b = OwnBroker { port, conf, child: None };
        b.up();
        b
    }

    fn up(&mut self) {
        let bin =
            if std::path::Path::new("/usr/sbin/mosquitto").exists() { "/usr/sbin/mosquitto" } else { "mosquitto" };
        let child = Command::new(bin)
            .arg("-c")
            .arg(self.conf.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto is not installed: run scripts/test.sh, which installs it");
        self.child = Some(child);
        for _ in 0..500 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            ember::clock::real_sleep(Duration::from_millis(10));
        }
        panic!("mosquitto did not start on port {}", self.port);
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.down();
    }
}

#[test]
fn the_receiver_reconnects_after_a_broker_restart() {
    let _g = exclusive();
    let mut broker = OwnBroker::start();
    let port = broker.port;
    let topic = unique("ember-restart");
    let ssc = context();
    let spec = MqttSpec::new(format!("tcp://127.0.0.1:{port}"), [topic.clone()]).client_id(unique("sub"));
    let out = mqtt_stream(&ssc, spec).collect_batches();
    ssc.start().unwrap();
    let wait_subscribed = |ssc: &StreamingContext, tag: &str| {
        let before = ssc.received_records();
        let mut n = 0;
        while !ssc.wait_for_received(before + 1, Duration::from_millis(100)).unwrap() {
            assert!(n < 300, "the receiver never subscribed");
            publish(port, &[(topic.clone(), format!("probe {tag}").into_bytes())]);
            n += 1;
        }
    };
    wait_subscribed(&ssc, "a");
    let before = ssc.received_records();
    publish(port, &(0..50).map(|i| (topic.clone(), format!("before {i}").into_bytes())).collect::<Vec<_>>());
    assert!(ssc.wait_for_received(before + 50, WAIT).unwrap());
    broker.down();
    broker.up();
    wait_subscribed(&ssc, "b");
    let before = ssc.received_records();
    publish(port, &(0..50).map(|i| (topic.clone(), format!("after {i}").into_bytes())).collect::<Vec<_>>());
    assert!(ssc.wait_for_received(before + 50, WAIT).unwrap());
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    let got: Vec<String> = out.batches()[0].1.iter().filter(|m| !m.starts_with("probe")).cloned().collect();
    assert_eq!(got.iter().filter(|m| m.starts_with("before")).count(), 50);
    assert_eq!(got.iter().filter(|m| m.starts_with("after")).count(), 50);
}

/// Child side of the kill test: QoS 1 with the write-ahead log, every batch saved as text files,
/// on the manual clock (a batch every few milliseconds of real time).
#[test]
#[ignore = "run as a child process by `qos_1_messages_survive_kill_9_once_each_with_the_write_ahead_log`"]
fn wal_kill_child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let (dir, port, topic) =
        (std::path::PathBuf::from(var("MQTT_KILL_DIR")), var("MQTT_KILL_PORT"), var("MQTT_KILL_TOPIC"));
    let ck = dir.join("ck");
    let out = dir.join("out");
    let build = || {
        let conf = Conf::new()
            .master("local[2]")
            .manual_clock(true)
            .set("clock.manual.start", "1700000000000")
            .set("receiver.write_ahead_log.enable", "true")
            .set("receiver.restart_delay", "50ms");
        let ssc = StreamingContext::new(conf, Duration::from_secs(1))?;
        ssc.checkpoint(&ck);
        let spec =
            MqttSpec::new(format!("tcp://127.0.0.1:{port}"), [topic.clone()]).qos(1).client_id("ember-kill-test");
        mqtt_stream(&ssc, spec).save_as_text_files(out.join("batch").to_string_lossy(), "");
        Ok(ssc)
    };
    let ssc = StreamingContext::get_or_create(&ck, build).unwrap();
    ssc.start().unwrap();
    let stop = dir.join("stop");
    while !stop.exists() {
        ember::clock::real_sleep(Duration::from_millis(5)); // lets messages arrive between batches
        ssc.run_batches(1).unwrap();
    }
    ssc.stop(true).unwrap();
}

#[test]
fn qos_1_messages_survive_kill_9_once_each_with_the_write_ahead_log() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const MESSAGES: usize = 3000;
    // A broker of our own that keeps every message of an offline persistent session (Mosquitto
    // keeps 1000 by default and drops the rest).
    let mut broker = OwnBroker::start();
    broker.down();
    std::fs::write(
        broker.conf.path(),
        format!("listener {} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n", broker.port),
    )
    .unwrap();
    broker.up();
    let port = broker.port;
    let topic = unique("kill");
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MQTT_KILL_DIR", dir.path().to_string_lossy().into_owned()),
        ("MQTT_KILL_PORT", port.to_string()),
        ("MQTT_KILL_TOPIC", topic.clone()),
    ];
    let child = || {
        Command::new(std::env::current_exe().unwrap())
            .args(["wal_kill_child", "--exact", "--ignored", "--nocapture"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // The first start subscribes, so the broker keeps the session's messages from then on.
    let first = child();
    let sub = dir.path().join("ck");
    for _ in 0..500 {
        if sub.join("commits").exists() || sub.join("batchlog").exists() {
            break;
        }
        ember::clock::real_sleep(Duration::from_millis(10));
    }
    let done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (topic, done) = (topic.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            for chunk in (0..MESSAGES).collect::<Vec<_>>().chunks(50) {
                let batch: Vec<(String, Vec<u8>)> =
                    chunk.iter().map(|i| (topic.clone(), format!("m{i}").into_bytes())).collect();
                publish(port, &batch);
                ember::clock::real_sleep(Duration::from_millis(5));
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut seed = 3u64;
    let mut kills = 0;
    let mut current = first;
    while !done.load(Ordering::SeqCst) || kills < 10 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ember::clock::real_sleep(Duration::from_millis(60 + (seed >> 33) % 120));
        let _ = current.kill(); // SIGKILL
        let _ = current.wait();
        kills += 1;
        current = child();
        assert!(kills < 200, "the publisher did not finish");
    }
    publisher.join().unwrap();
    // Let the last start take in everything, then stop it gracefully.
    let out = dir.path().join("out");
    let seen = || -> Vec<String> {
        if !out.exists() {
            return Vec::new();
        }
        ember::testing::committed_outputs(&out).into_values().flatten().collect()
    };
    let before = seen().len();
    assert!(before > 0, "the killed runs saved nothing: the kills did not land mid-stream");
    let watch = ember::clock::Stopwatch::start();
    while seen().len() < MESSAGES && watch.elapsed() < WAIT {
        ember::clock::real_sleep(Duration::from_millis(50));
    }
    std::fs::write(dir.path().join("stop"), "").unwrap();
    assert!(current.wait().unwrap().success(), "the last run failed");
    let lines = seen();
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for l in &lines {
        *counts.entry(l.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "messages counted more than once after {kills} kills: {twice:?}");
    let missing: Vec<String> =
        (0..MESSAGES).map(|i| format!("m{i}")).filter(|m| !counts.contains_key(m.as_str())).take(5).collect();
    assert!(missing.is_empty(), "messages lost after {kills} kills: {missing:?}");
    assert_eq!(lines.len(), MESSAGES);
}

/// A directory for a broker's files that the broker can read even when it runs as root and
/// drops its privileges (Mosquitto then reads them as user `mosquitto`).
fn broker_files() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Runs a stream on `spec` (publishing to the broker's plain listener on `port` as `user`) until
/// `n` messages published after it subscribed arrived; returns them.
fn receive(spec: MqttSpec, port: u16, user: Option<(&str, &str)>, topic: &str, n: usize) -> Vec<String> {
    let ssc = context();
    let out = mqtt_stream(&ssc, spec).collect_batches();
    ssc.start().unwrap();
    let mut probes = 0;
    while !ssc.wait_for_received(1, Duration::from_millis(100)).unwrap() {
        assert!(probes < 300, "the receiver never subscribed");
        publish_as(port, user, &[(topic.to_owned(), b"probe".to_vec())]);
        probes += 1;
    }
    let before = ssc.received_records();
    let messages: Vec<_> = (0..n).map(|i| (topic.to_owned(), format!("m{i}").into_bytes())).collect();
    publish_as(port, user, &messages);
    assert!(ssc.wait_for_received(before + n as u64, WAIT).unwrap());
    ssc.run_batches(1).unwrap();
    ssc.stop(false).unwrap();
    out.batches()[0].1.iter().filter(|m| *m != "probe").cloned().collect()
}

/// Starts a stream on `spec` and returns the first receiver error it reports.
fn first_error(spec: MqttSpec) -> String {
    let ssc = context();
    let errors = ember::testing::receiver_errors(&ssc);
    let _out = mqtt_stream(&ssc, spec).collect_batches();
    ssc.start().unwrap();
    let e = errors.recv_timeout(WAIT).expect("the receiver reports an error");
    eprintln!("the receiver reported: {e}");
    assert_eq!(ssc.received_records(), 0);
    ssc.stop(false).unwrap();
    e
}

#[test]
fn credentials_are_passed_through_and_a_wrong_password_is_reported() {
    let _g = exclusive();
    let files = broker_files();
    let passwd = files.path().join("passwd");
    let made = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["ember", "right-password"])
        .status()
        .expect("mosquitto_passwd is missing: run scripts/test.sh, which installs mosquitto");
    assert!(made.success());
    let broker = OwnBroker::start_with(&format!("allow_anonymous false\npassword_file {}\n", passwd.display()));
    let topic = unique("ember-auth");
    let spec = |password: &str| {
        MqttSpec::new(format!("tcp://127.0.0.1:{}", broker.port), [topic.clone()])
            .client_id(unique("sub"))
            .clean_session(true)
            .credentials("ember", password)
    };
    let e = first_error(spec("wrong-password"));
    assert!(e.contains("NotAuthorized") || e.contains("BadUserNamePassword"), "{e}");
    let got = receive(spec("right-password"), broker.port, Some(("ember", "right-password")), &topic, 20);
    assert_eq!(got.len(), 20, "{got:?}");
}

#[test]
fn tls_with_a_private_ca_and_a_client_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let _g = exclusive();
    let ca_of = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        (params.self_signed(&key).unwrap(), key)
    };
    let signed = |name: &str, ca: &(rcgen::Certificate, KeyPair)| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()]).unwrap().signed_by(&key, &ca.0, &ca.1).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let ca = ca_of("Ember test CA");
    let (server_cert, server_key) = signed("localhost", &ca);
    let (client_cert, client_key) = signed("ember-client", &ca);
    let files = broker_files();
    let write = |name: &str, text: &str| {
        use std::os::unix::fs::PermissionsExt;
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path.display().to_string()
    };
    let (ca_file, cert_file, key_file) =
        (write("ca.pem", &ca.0.pem()), write("server.pem", &server_cert), write("server.key", &server_key));
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The plain listener is for the test's publisher; the receiver connects over TLS and must
    // show a certificate of the same CA.
    let broker = OwnBroker::start_with(&format!(
        "allow_anonymous true\nlistener {tls_port} 127.0.0.1\ncafile {ca_file}\ncertfile {cert_file}\nkeyfile {key_file}\nrequire_certificate true\n"
    ));
    for _ in 0..500 {
        if TcpStream::connect(("127.0.0.1", tls_port)).is_ok() {
            break;
        }
        ember::clock::real_sleep(Duration::from_millis(10));
    }
    let topic = unique("ember-tls");
    let spec = || {
        MqttSpec::new(format!("mqtts://localhost:{tls_port}"), [topic.clone()])
            .client_id(unique("sub"))
            .clean_session(true)
    };
    let trusted = spec().tls_ca(ca.0.pem()).tls_client_auth(client_cert.clone(), client_key.clone());
    let got = receive(trusted, broker.port, None, &topic, 20);
    assert_eq!(got.len(), 20, "{got:?}");

    // A broker certificate from a CA the client does not trust is refused.
    let other = ca_of("Another CA");
    let e = first_error(spec().tls_ca(other.0.pem()).tls_client_auth(client_cert, client_key));
    assert!(e.contains("invalid peer certificate"), "{e}");
    // Without a client certificate, this broker refuses the connection.
    let e = first_error(spec().tls_ca(ca.0.pem()));
    assert!(e.contains("CertificateRequired") || e.contains("alert"), "{e}");
}
