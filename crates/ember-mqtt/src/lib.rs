//! # ember-mqtt: MQTT input for Ember
//!
//! Spark's `MQTTUtils.createStream` and `createPairedStream` (spec §2.9), as an Ember
//! [`Receiver`] on rumqttc: topics with wildcards, QoS 0 or 1, username and password, TLS
//! (`mqtts://`, with a private CA and client certificates if needed), a persistent session by
//! default.
//!
//! ```no_run
//! use ember::prelude::*;
//! use ember_mqtt::{mqtt_stream, MqttSpec};
//! # fn main() -> ember::Result<()> {
//! let ssc = StreamingContext::new(Conf::new().master("local[2]"), Duration::from_secs(1))?;
//! let readings = mqtt_stream(&ssc, MqttSpec::new("tcp://127.0.0.1:1883", ["sensors/+/temp"]).qos(1));
//! readings.count().print();
//! ssc.start()?;
//! ssc.await_termination()
//! # }
//! ```
//!
//! With QoS 1, a message is acknowledged to the broker only after Ember stored it — in the
//! write-ahead log when `receiver.write_ahead_log.enable` is on — so a crash before that makes
//! the broker deliver it again. With the log on, a redelivery (flagged as a duplicate by the
//! broker) of a message still in the log — same packet id, topic and payload — is acknowledged
//! and not stored again, and logged messages that joined no batch go into the first batch after
//! the restart. So with the log on, a persistent session (the default; give a fixed
//! `client_id`) and idempotent outputs, every QoS 1 message is counted once across `kill -9`:
//! the tests kill a job 10+ times while 3000 messages arrive and find each once in its output.
//! This needs a broker that keeps an offline session's messages (Mosquitto's
//! `max_queued_messages` is 1000 by default; the rest are dropped by the broker). A redelivery
//! whose block the log already removed (two checkpoints after it was processed) is stored again.
//! Payloads that are not UTF-8 are kept with U+FFFD
//! replacement characters and counted in `input_counters().invalid_utf8`. When the broker goes
//! away, the receiver reports the error and reconnects after `receiver.restart_delay`.

#![forbid(missing_docs)]

use std::collections::HashSet;
use std::time::Duration;

use ember::operator::{Receiver, ReceiverContext};
use ember::{DStream, StreamingContext};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS, Transport};

/// What to subscribe to, and how. Its `Debug` form leaves out the password and the key.
#[derive(Clone)]
pub struct MqttSpec {
    broker: String,
    topics: Vec<String>,
    qos: u8,
    client_id: Option<String>,
    credentials: Option<(String, String)>,
    clean_session: bool,
    keep_alive: Duration,
    tls_ca: Option<Vec<u8>>,
    tls_client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for MqttSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSpec")
            .field("broker", &self.broker)
            .field("topics", &self.topics)
            .field("qos", &self.qos)
            .field("client_id", &self.client_id)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("clean_session", &self.clean_session)
            .field("keep_alive", &self.keep_alive)
            .field("tls_ca", &self.tls_ca.is_some())
            .field("tls_client_auth", &self.tls_client.is_some())
            .finish()
    }
}

impl MqttSpec {
    /// `broker` is `tcp://host:port` (or `mqtt://`), or `mqtts://host:port` (or `ssl://`) for TLS
    /// with the system's root certificates or [`tls_ca`](Self::tls_ca); `topics` may hold `+` and
    /// `#` wildcards. QoS 1 by default.
    pub fn new<S: Into<String>>(broker: impl Into<String>, topics: impl IntoIterator<Item = S>) -> Self {
        MqttSpec {
            broker: broker.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            qos: 1,
            client_id: None,
            credentials: None,
            clean_session: false,
            keep_alive: Duration::from_secs(30),
            tls_ca: None,
            tls_client: None,
        }
    }

    /// QoS 0 (at most once) or 1 (at least once, acknowledged after storing).
    pub fn qos(mut self, qos: u8) -> Self {
        self.qos = qos.min(1);
        self
    }

    /// The client id (default: `ember-<topics>`; a persistent session needs a stable one).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// Username and password.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// For `mqtts://`: trust the CA certificates in `ca_pem` (PEM) instead of the system's roots,
    /// as a broker with a private CA needs.
    pub fn tls_ca(mut self, ca_pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca = Some(ca_pem.into());
        self
    }

    /// For `mqtts://` with [`tls_ca`](Self::tls_ca): the client certificate and its private key
    /// (both PEM), for brokers that require one (`require_certificate true`).
    pub fn tls_client_auth(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.tls_client = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// A clean session: the broker forgets the subscription and unacknowledged messages between
    /// connections (default: false, so QoS 1 messages survive a restart of the job).
    pub fn clean_session(mut self, clean: bool) -> Self {
        self.clean_session = clean;
        self
    }

    fn options(&self) -> Result<MqttOptions, String> {
        let (scheme, rest) = self.broker.split_once("://").unwrap_or(("tcp", self.broker.as_str()));
        let (host, port) =
            rest.rsplit_once(':').ok_or_else(|| format!("broker `{}` is not scheme://host:port", self.broker))?;
        let port: u16 = port.parse().map_err(|_| format!("broker `{}` has an invalid port", self.broker))?;
        let id = self
            .client_id
            .clone()
            .unwrap_or_else(|| format!("ember-{}", self.topics.join("-").replace(['+', '#', '/'], "_")));
        let mut o = MqttOptions::new(id, host, port);
        o.set_keep_alive(self.keep_alive);
        o.set_clean_session(self.clean_session);
        o.set_manual_acks(true);
        if let Some((u, p)) = &self.credentials {
            o.set_credentials(u.clone(), p.clone());
        }
        let tls = match scheme {
            "tcp" | "mqtt" => false,
            "ssl" | "mqtts" => true,
            other => return Err(format!("broker scheme `{other}` is not tcp, mqtt, ssl or mqtts")),
        };
        if tls {
            // rumqttc takes the process's default provider, which rustls cannot pick when a
            // program enables both of its providers: install rumqttc's own if none is installed.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        match (tls, &self.tls_ca, &self.tls_client) {
            (false, None, None) => {}
            (false, ..) => {
                return Err(format!("TLS settings were given but broker `{}` is not mqtts:// or ssl://", self.broker))
            }
            (true, Some(ca), client) => {
                o.set_transport(Transport::tls(ca.clone(), client.clone(), None));
            }
            (true, None, Some(_)) => {
                return Err("a TLS client certificate needs the broker's CA too (`tls_ca`)".to_owned())
            }
            (true, None, None) => {
                o.set_transport(Transport::tls_with_default_config());
            }
        }
        Ok(o)
    }
}

struct MqttReceiver {
    spec: MqttSpec,
}

/// A received message as the receiver stores it: with its packet id, so that after a crash a
/// redelivery of a message already in the write-ahead log is recognised.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Message {
    topic: String,
    payload: String,
    pkid: u16,
}

impl Receiver<Message> for MqttReceiver {
    fn name(&self) -> String {
        "MqttReceiver".to_owned()
    }

    fn source(&self) -> String {
        format!("{} topics {}", self.spec.broker, self.spec.topics.join(","))
    }

    fn on_start(&mut self, ctx: &ReceiverContext<Message>) -> ember::Result<()> {
        // Messages logged before a crash may not have been acknowledged: the broker delivers them
        // again, flagged as duplicates. Those already in the log are acknowledged, not stored.
        let logged: HashSet<(u16, String, String)> =
            ctx.logged_records()?.into_iter().map(|m| (m.pkid, m.topic, m.payload)).collect();
        // The request queue must never fill: acknowledgements wait in it until the event loop
        // below runs again, and a full queue would block the very thread that runs it.
        let (client, mut connection) = Client::new(self.spec.options().map_err(ember::Error::Other)?, 65_536);
        let qos = if self.spec.qos == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce };
        for topic in &self.spec.topics {
            client
                .subscribe(topic.clone(), qos)
                .map_err(|e| ember::Error::external(format!("subscribing to {topic}"), e))?;
        }
        let stopper = client.clone();
        ctx.on_interrupt(move || {
            // Called on a worker thread: never block it.
            let _ = stopper.try_disconnect();
        });
        let mut unacked: Vec<rumqttc::Publish> = Vec::new();
        for event in connection.iter() {
            if ctx.should_return() {
                return Ok(());
            }
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let payload = match String::from_utf8(p.payload.to_vec()) {
                        Ok(s) => s,
                        Err(e) => {
                            ctx.count_invalid_utf8(1);
                            String::from_utf8_lossy(e.as_bytes()).into_owned()
                        }
                    };
                    let key = (p.pkid, p.topic.clone(), payload);
                    if !(p.dup && logged.contains(&key)) {
                        let (pkid, topic, payload) = key;
                        // Reliable: acknowledged only once stored (and logged, with the WAL on).
                        ctx.store_block(vec![Message { topic, payload, pkid }])?;
                    }
                    unacked.push(p);
                    unacked.retain(|p| client.try_ack(p).is_err());
                }
                Ok(_) => {}
                Err(e) if ctx.should_return() => {
                    let _ = e;
                    return Ok(());
                }
                Err(e) => {
                    return Err(ember::Error::external(format!("MQTT connection to {} failed", self.spec.broker), e))
                }
            }
        }
        Ok(())
    }
}

/// The `(topic, payload)` pairs of the messages on `spec`'s topics (Spark's
/// `MQTTUtils.createPairedStream`).
pub fn mqtt_paired_stream(ssc: &StreamingContext, spec: MqttSpec) -> DStream<(String, String)> {
    ssc.receiver_stream(MqttReceiver { spec }).map(|m: Message| (m.topic, m.payload))
}

/// The payloads of the messages on `spec`'s topics (Spark's `MQTTUtils.createStream`).
pub fn mqtt_stream(ssc: &StreamingContext, spec: MqttSpec) -> DStream<String> {
    mqtt_paired_stream(ssc, spec).map(|(_topic, payload)| payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_need_a_tls_broker_and_a_client_certificate_needs_a_ca() {
        let spec = MqttSpec::new("tcp://127.0.0.1:1883", ["t"]).tls_ca(b"pem".to_vec());
        assert!(spec.options().unwrap_err().contains("not mqtts:// or ssl://"));
        let spec = MqttSpec::new("mqtts://127.0.0.1:8883", ["t"]).tls_client_auth(b"c".to_vec(), b"k".to_vec());
        assert!(spec.options().unwrap_err().contains("needs the broker's CA"));
        assert!(MqttSpec::new("ws://127.0.0.1:1", ["t"]).options().unwrap_err().contains("scheme `ws`"));
        assert!(MqttSpec::new("mqtts://127.0.0.1:8883", ["t"]).tls_ca(b"pem".to_vec()).options().is_ok());
    }

    #[test]
    fn the_debug_form_leaves_out_secrets() {
        let spec = MqttSpec::new("mqtts://h:8883", ["t"])
            .credentials("ann", "s3cret")
            .tls_ca(b"CA".to_vec())
            .tls_client_auth(b"CERT".to_vec(), b"PRIVATE KEY".to_vec());
        let text = format!("{spec:?}");
        assert!(text.contains("ann") && !text.contains("s3cret") && !text.contains("PRIVATE"), "{text}");
    }
}
