//! Configuration: every key is declared once, in [`KEYS`], with its type, default and doc.
//!
//! [`Conf`] is a map of string keys to string values, like Spark's `SparkConf`; it is validated when
//! a [`StreamingContext`](crate::StreamingContext) is created: an unknown key or a bad value is an
//! error that names the key and the accepted forms.
//!
//! Cluster mode may also be configured from the environment (so one binary can be started as P
//! processes by any launcher): `EMBER_CLUSTER_HOSTS` (comma-separated `host:port` list, one per
//! process), `EMBER_CLUSTER_PROCESS` (this process's index) and `EMBER_CLUSTER_WORKERS` (workers
//! per process). When `EMBER_CLUSTER_HOSTS` is set, these override the configuration.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// The type of a configuration value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `local`, `local[N]`, `local[*]` or `cluster`.
    Master,
    /// `true` or `false`.
    Bool,
    /// A non-negative integer.
    Int,
    /// A number of milliseconds (`250ms`, `2s`, `1m` or a plain number of milliseconds).
    Millis,
    /// A floating-point number.
    Float,
    /// Any text.
    Text,
    /// A comma-separated list of `host:port`.
    HostList,
}

impl ValueKind {
    fn expected(self) -> &'static str {
        match self {
            ValueKind::Master => "`local`, `local[N]` with N >= 1, `local[*]` or `cluster`",
            ValueKind::Bool => "`true` or `false`",
            ValueKind::Int => "a non-negative integer",
            ValueKind::Millis => "a duration such as `250ms`, `2s`, `1m` or a number of milliseconds",
            ValueKind::Float => "a number",
            ValueKind::Text => "any text",
            ValueKind::HostList => "a comma-separated list of host:port",
        }
    }
}

/// One declared configuration key.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// The key.
    pub name: &'static str,
    /// Its type.
    pub kind: ValueKind,
    /// Its default, as text.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// Every configuration key Ember knows.
pub const KEYS: &[KeySpec] = &[
    KeySpec { name: "master", kind: ValueKind::Master, default: "local[*]",
        doc: "Where to run: `local[N]` runs N worker threads in this process (`local[*]`: one per core, `local` = `local[1]`); `cluster` runs as one of several processes (see the cluster.* keys)." },
    KeySpec { name: "app.name", kind: ValueKind::Text, default: "ember", doc: "The application's name, shown in logs." },
    KeySpec { name: "context.single_active", kind: ValueKind::Bool, default: "false",
        doc: "Refuse to start this context while another runs in the process, and any other while this one runs (Spark's one-active-context rule). Off by default: contexts, such as tests, may run side by side." },
    KeySpec { name: "clock.manual", kind: ValueKind::Bool, default: "false",
        doc: "Use a manual clock that moves only through `run_batches` or `manual_clock().advance` (for tests)." },
    KeySpec { name: "clock.manual.start", kind: ValueKind::Millis, default: "0",
        doc: "The manual clock's initial reading, in milliseconds since the epoch." },
    KeySpec { name: "cluster.hosts", kind: ValueKind::HostList, default: "",
        doc: "Cluster mode: the `host:port` of every process, in process-index order." },
    KeySpec { name: "cluster.process", kind: ValueKind::Int, default: "0", doc: "Cluster mode: this process's index in `cluster.hosts`." },
    KeySpec { name: "cluster.workers", kind: ValueKind::Int, default: "1", doc: "Cluster mode: worker threads per process." },
    KeySpec { name: "cluster.connect_timeout", kind: ValueKind::Millis, default: "60s",
        doc: "Cluster mode: how long a starting process waits for all the others to connect before it stops with an error naming the ones missing (it logs who it waits for every 5 s)." },
    KeySpec { name: "cluster.failure_timeout", kind: ValueKind::Millis, default: "5s",
        doc: "Cluster mode: a process that sends nothing (not even a heartbeat) for this long is taken as lost, and after a loss or failure the other processes stop within this long, with an error naming the process (in any mode: how long workers get to wind down after a failure before they are left)." },
    KeySpec { name: "flow.max_batches_in_flight", kind: ValueKind::Int, default: "2",
        doc: "Sources close a batch only while fewer than this many closed batches wait to complete; when processing falls behind, input waits at the source instead of piling up in the dataflow, and a receiver whose open batch is due but not closed stops storing, so TCP pushes back on its sender (Ember's own, beyond Spark)." },
    KeySpec { name: "receiver.max_rate", kind: ValueKind::Float, default: "0",
        doc: "Records per second each receiver may store (0: no limit); enforced smoothly by a token bucket, and the cap of backpressure's estimates." },
    KeySpec { name: "backpressure.enabled", kind: ValueKind::Bool, default: "false",
        doc: "Adapt each receiver's rate to what the job processes, with Spark's PID estimator." },
    KeySpec { name: "backpressure.initial_rate", kind: ValueKind::Float, default: "0",
        doc: "With backpressure: the rate of the first batches, before an estimate exists (0: receiver.max_rate)." },
    KeySpec { name: "backpressure.pid.proportional", kind: ValueKind::Float, default: "1.0", doc: "The PID estimator's proportional term (>= 0)." },
    KeySpec { name: "backpressure.pid.integral", kind: ValueKind::Float, default: "0.2", doc: "The PID estimator's integral term (>= 0)." },
    KeySpec { name: "backpressure.pid.derived", kind: ValueKind::Float, default: "0.0", doc: "The PID estimator's derivative term (>= 0)." },
    KeySpec { name: "backpressure.pid.min_rate", kind: ValueKind::Float, default: "100", doc: "The lowest rate the PID estimator sets, records per second (> 0)." },
    KeySpec { name: "checkpoint.sync", kind: ValueKind::Bool, default: "true",
        doc: "Sync checkpoint files and their directories to disk before a checkpoint counts as written." },
    KeySpec { name: "checkpoint.allow_changed_inputs", kind: ValueKind::Bool, default: "false",
        doc: "Recover from a checkpoint whose job had another app name or read other inputs (paths, topics, hosts), with a warning; by default that is an error, since it is most likely another job's checkpoint." },
    KeySpec { name: "receiver.write_ahead_log.enable", kind: ValueKind::Bool, default: "false",
        doc: "Receivers write every block they store to a write-ahead log in the checkpoint directory before it joins a batch; recovery replays the blocks of unfinished batches (needs a checkpoint directory)." },
    KeySpec { name: "receiver.write_ahead_log.sync", kind: ValueKind::Bool, default: "true",
        doc: "Sync each write-ahead-log block to disk before the receiver's store returns." },
    KeySpec { name: "receiver.max_buffered_records", kind: ValueKind::Int, default: "1000000",
        doc: "A receiver holds at most this many records not yet taken by a batch (with the write-ahead log on, a whole batch waits here until it closes); when full it stops reading its connection, so TCP pushes back on the sender." },
    KeySpec { name: "receiver.max_line_bytes", kind: ValueKind::Int, default: "1048576",
        doc: "Socket and file text streams skip (count and log) lines longer than this many bytes, never buffering more." },
    KeySpec { name: "receiver.restart_delay", kind: ValueKind::Millis, default: "2000ms",
        doc: "How long a receiver waits before reconnecting after an error or a closed connection (Spark's spark.streaming.receiverRestartDelay)." },
    KeySpec { name: "file_stream.min_remember", kind: ValueKind::Millis, default: "60s",
        doc: "File streams remember selected files, and accept modification times, this far back (Spark's spark.streaming.fileStream.minRememberDuration)." },
    KeySpec { name: "fs.s3.endpoint", kind: ValueKind::Text, default: "",
        doc: "Object stores (the ember-store crate): the S3 endpoint, e.g. `http://127.0.0.1:5000` for a local S3 server; empty: AWS_ENDPOINT_URL or AWS's own. An `http://` endpoint allows plain HTTP." },
    KeySpec { name: "fs.s3.region", kind: ValueKind::Text, default: "",
        doc: "Object stores: the S3 region; empty: AWS_REGION / AWS_DEFAULT_REGION, else `us-east-1`." },
    KeySpec { name: "fs.s3.path_style", kind: ValueKind::Bool, default: "true",
        doc: "Object stores: path-style S3 requests (`endpoint/bucket/key`), which S3-compatible servers need; `false`: virtual-hosted style (`bucket.endpoint/key`)." },
    KeySpec { name: "fs.s3.access_key_id", kind: ValueKind::Text, default: "",
        doc: "Object stores: the S3 access key; empty: AWS_ACCESS_KEY_ID or AWS's other credential sources. Never logged or shown." },
    KeySpec { name: "fs.s3.secret_access_key", kind: ValueKind::Text, default: "",
        doc: "Object stores: the S3 secret key; empty: AWS_SECRET_ACCESS_KEY. Never logged or shown." },
    KeySpec { name: "fs.request_timeout", kind: ValueKind::Millis, default: "30s",
        doc: "Object stores: how long one request may take, connecting included." },
    KeySpec { name: "fs.retry_timeout", kind: ValueKind::Millis, default: "20s",
        doc: "Object stores: how long a failing request is retried (with backoff) before the operation fails." },
    KeySpec { name: "generated.lines_per_second", kind: ValueKind::Int, default: "100000",
        doc: "The built-in generated text source: lines per second (all workers together)." },
    KeySpec { name: "generated.words_per_line", kind: ValueKind::Int, default: "8", doc: "The generated text source: words per line." },
    KeySpec { name: "generated.vocabulary", kind: ValueKind::Int, default: "10000", doc: "The generated text source: number of distinct words." },
    KeySpec { name: "generated.skew", kind: ValueKind::Float, default: "1.0",
        doc: "The generated text source: Zipf exponent of word frequencies (0 = uniform)." },
    KeySpec { name: "generated.seed", kind: ValueKind::Int, default: "42", doc: "The generated text source: random seed." },
    KeySpec { name: "ui.enabled", kind: ValueKind::Bool, default: "true",
        doc: "Whether `ember_ui::attach` starts the web UI (Spark's spark.ui.enabled); read by the ember-ui crate." },
    KeySpec { name: "ui.port", kind: ValueKind::Int, default: "4040",
        doc: "The web UI's port; when it is taken, the next free one, logged (Spark's spark.ui.port)." },
    KeySpec { name: "ui.host", kind: ValueKind::Text, default: "127.0.0.1",
        doc: "The address the web UI binds to; loopback unless set (e.g. `0.0.0.0`)." },
    KeySpec { name: "ui.token", kind: ValueKind::Text, default: "",
        doc: "When set, every web UI path needs `Authorization: Bearer <token>` (or `?token=<token>`)." },
    KeySpec { name: "ui.kill_enabled", kind: ValueKind::Bool, default: "false",
        doc: "Whether the web UI offers a kill link that stops the job (Spark's spark.ui.killEnabled); off by default, so the UI is read-only." },
    KeySpec { name: "ui.retained_batches", kind: ValueKind::Int, default: "1000",
        doc: "Completed batches the web UI keeps (Spark's spark.streaming.ui.retainedBatches)." },
];

/// Application configuration: string keys to string values, validated when the context is created.
#[derive(Clone, Default)]
pub struct Conf {
    values: BTreeMap<String, String>,
}

/// Whether a key holds a secret, whose value is never printed (as Spark's
/// `spark.redaction.regex`: secrets, passwords, tokens).
pub fn is_secret(key: &str) -> bool {
    ["secret", "password", "token"].iter().any(|s| key.to_ascii_lowercase().contains(s))
}

impl std::fmt::Debug for Conf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.values.iter().map(|(k, v)| (k, if is_secret(k) { "*********(redacted)" } else { v.as_str() }));
        f.debug_struct("Conf").field("values", &shown.collect::<BTreeMap<_, _>>()).finish()
    }
}

impl Conf {
    /// An empty configuration: every key at its default.
    pub fn new() -> Self {
        Conf::default()
    }

    /// Sets `key` to `value`. Validation happens when the context is created.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert(key.into(), value.into());
        self
    }

    /// Sets the master: `local`, `local[N]`, `local[*]` or `cluster`.
    pub fn master(self, master: impl Into<String>) -> Self {
        self.set("master", master)
    }

    /// Sets the application name.
    pub fn app_name(self, name: impl Into<String>) -> Self {
        self.set("app.name", name)
    }

    /// Runs on a manual clock (for tests).
    pub fn manual_clock(self, on: bool) -> Self {
        self.set("clock.manual", on.to_string())
    }

    /// Cluster mode: this process is `process` of the processes at `hosts`, each running
    /// `workers` worker threads.
    pub fn cluster(self, hosts: &[String], process: usize, workers: usize) -> Self {
        self.master("cluster")
            .set("cluster.hosts", hosts.join(","))
            .set("cluster.process", process.to_string())
            .set("cluster.workers", workers.to_string())
    }

    /// The value set for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The value set for `key`, or its declared default; `None` for an undeclared key.
    pub fn get_or_default(&self, key: &str) -> Option<&str> {
        self.get(key).or_else(|| declared_default(key))
    }

    /// Validates every key and value (after applying the `EMBER_CLUSTER_*` environment).
    pub(crate) fn settings(&self) -> Result<Settings> {
        let mut conf = self.clone();
        if let Ok(hosts) = std::env::var("EMBER_CLUSTER_HOSTS") {
            conf = conf.set("master", "cluster").set("cluster.hosts", hosts);
            if let Ok(p) = std::env::var("EMBER_CLUSTER_PROCESS") {
                conf = conf.set("cluster.process", p);
            }
            if let Ok(w) = std::env::var("EMBER_CLUSTER_WORKERS") {
                conf = conf.set("cluster.workers", w);
            }
        }
        for (key, value) in &conf.values {
            let spec = KEYS.iter().find(|k| k.name == key).ok_or_else(|| Error::UnknownConfigKey {
                key: key.clone(),
                known: KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
            })?;
            check(spec, value)?;
        }
        let master = parse_master(&conf.text("master"))?;
        let master = match master {
            ParsedMaster::Local(n) => Master::Local(n),
            ParsedMaster::Cluster => {
                let hosts = conf.text("cluster.hosts");
                let hosts: Vec<String> =
                    hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(String::from).collect();
                let process = conf.int("cluster.process")? as usize;
                let workers = conf.int("cluster.workers")? as usize;
                if hosts.is_empty() {
                    return Err(invalid("cluster.hosts", "", "at least one host:port when master is `cluster`"));
                }
                if process >= hosts.len() {
                    return Err(invalid(
                        "cluster.process",
                        &process.to_string(),
                        &format!("an index below the number of hosts ({})", hosts.len()),
                    ));
                }
                if workers == 0 {
                    return Err(invalid("cluster.workers", "0", "at least 1"));
                }
                Master::Cluster { hosts, process, workers }
            }
        };
        // Values of the right type that would make no sense: a clear error, never a busy loop or
        // a silent floor.
        let at_least = |key: &str, value: u64, min: u64, why: &str| -> Result<()> {
            if value < min {
                return Err(invalid(key, &conf.text(key), &format!("at least {min}{why}")));
            }
            Ok(())
        };
        at_least("cluster.failure_timeout", conf.millis("cluster.failure_timeout")?, 100, " ms")?;
        let restart_delay = "receiver.restart_delay";
        at_least(restart_delay, conf.millis(restart_delay)?, 1, " ms (0 would reconnect in a busy loop)")?;
        for (key, what) in [
            ("receiver.max_line_bytes", " byte"),
            ("receiver.max_buffered_records", " record"),
            ("flow.max_batches_in_flight", " batch"),
            ("generated.vocabulary", " word"),
        ] {
            at_least(key, conf.int(key)?, 1, what)?;
        }
        for key in ["receiver.max_rate", "backpressure.initial_rate"] {
            if conf.float(key)? < 0.0 {
                return Err(invalid(key, &conf.text(key), "a rate of at least 0 records per second (0: no limit)"));
            }
        }
        Ok(Settings {
            conf: conf.clone(),
            master,
            app_name: conf.text("app.name"),
            manual_clock: conf.bool("clock.manual")?,
            manual_start: conf.millis("clock.manual.start")?,
            max_line_bytes: conf.int("receiver.max_line_bytes")? as usize,
            max_batches_in_flight: conf.int("flow.max_batches_in_flight")?,
            checkpoint_sync: conf.bool("checkpoint.sync")?,
            allow_changed_inputs: conf.bool("checkpoint.allow_changed_inputs")?,
            single_active: conf.bool("context.single_active")?,
            wal: conf.bool("receiver.write_ahead_log.enable")?,
            max_rate: conf.float("receiver.max_rate")?,
            backpressure: conf.bool("backpressure.enabled")?,
            initial_rate: conf.float("backpressure.initial_rate")?,
            pid: [
                conf.float("backpressure.pid.proportional")?,
                conf.float("backpressure.pid.integral")?,
                conf.float("backpressure.pid.derived")?,
                conf.float("backpressure.pid.min_rate")?,
            ],
            wal_sync: conf.bool("receiver.write_ahead_log.sync")?,
            max_buffered_records: conf.int("receiver.max_buffered_records")? as usize,
            restart_delay_ms: conf.millis("receiver.restart_delay")?,
            connect_timeout_ms: conf.millis("cluster.connect_timeout")?,
            failure_timeout_ms: conf.millis("cluster.failure_timeout")?,
            file_min_remember_ms: conf.millis("file_stream.min_remember")?,
            generated: GeneratedSettings {
                lines_per_second: conf.int("generated.lines_per_second")?,
                words_per_line: conf.int("generated.words_per_line")? as usize,
                vocabulary: conf.int("generated.vocabulary")? as usize,
                skew: conf.float("generated.skew")?,
                seed: conf.int("generated.seed")?,
            },
        })
    }

    fn text(&self, key: &str) -> String {
        self.get(key).map(str::to_owned).unwrap_or_else(|| default_of(key).to_owned())
    }

    fn bool(&self, key: &str) -> Result<bool> {
        let v = self.text(key);
        v.parse().map_err(|_| invalid(key, &v, ValueKind::Bool.expected()))
    }

    fn int(&self, key: &str) -> Result<u64> {
        let v = self.text(key);
        v.trim().parse().map_err(|_| invalid(key, &v, ValueKind::Int.expected()))
    }

    fn float(&self, key: &str) -> Result<f64> {
        let v = self.text(key);
        v.trim().parse().map_err(|_| invalid(key, &v, ValueKind::Float.expected()))
    }

    fn millis(&self, key: &str) -> Result<u64> {
        let v = self.text(key);
        parse_millis(&v).ok_or_else(|| invalid(key, &v, ValueKind::Millis.expected()))
    }

    /// The value of a declared `true`/`false` key (its default when not set).
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.bool(key)
    }

    /// The value of a declared duration key in milliseconds (its default when not set).
    pub fn get_millis(&self, key: &str) -> Result<u64> {
        self.millis(key)
    }
}

fn declared_default(key: &str) -> Option<&'static str> {
    KEYS.iter().find(|k| k.name == key).map(|k| k.default)
}

fn default_of(key: &str) -> &'static str {
    declared_default(key).unwrap_or("")
}

fn invalid(key: &str, value: &str, expected: &str) -> Error {
    Error::Config { key: key.to_owned(), value: value.to_owned(), expected: expected.to_owned() }
}

fn check(spec: &KeySpec, value: &str) -> Result<()> {
    let ok = match spec.kind {
        ValueKind::Master => parse_master(value).is_ok(),
        ValueKind::Bool => value.parse::<bool>().is_ok(),
        ValueKind::Int => value.trim().parse::<u64>().is_ok(),
        ValueKind::Millis => parse_millis(value).is_some(),
        ValueKind::Float => value.trim().parse::<f64>().map(f64::is_finite).unwrap_or(false),
        ValueKind::Text => true,
        ValueKind::HostList => value.split(',').map(str::trim).filter(|h| !h.is_empty()).all(|h| {
            h.rsplit_once(':').map(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()).unwrap_or(false)
        }),
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(spec.name, value, spec.kind.expected()))
    }
}

enum ParsedMaster {
    Local(usize),
    Cluster,
}

fn parse_master(v: &str) -> Result<ParsedMaster> {
    let bad = || invalid("master", v, ValueKind::Master.expected());
    match v {
        "local" => Ok(ParsedMaster::Local(1)),
        "local[*]" => Ok(ParsedMaster::Local(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))),
        "cluster" => Ok(ParsedMaster::Cluster),
        _ => {
            let n = v.strip_prefix("local[").and_then(|r| r.strip_suffix(']')).ok_or_else(bad)?;
            match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(ParsedMaster::Local(n)),
                _ => Err(bad()),
            }
        }
    }
}

fn parse_millis(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mult) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60_000)
    } else {
        (v, 1)
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// Where the job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Master {
    Local(usize),
    Cluster { hosts: Vec<String>, process: usize, workers: usize },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The configuration as validated (with the `EMBER_CLUSTER_*` environment applied).
    pub conf: Conf,
    pub master: Master,
    pub app_name: String,
    pub manual_clock: bool,
    pub manual_start: u64,
    pub max_line_bytes: usize,
    pub max_batches_in_flight: u64,
    pub allow_changed_inputs: bool,
    pub single_active: bool,
    pub checkpoint_sync: bool,
    pub wal: bool,
    pub max_rate: f64,
    pub backpressure: bool,
    pub initial_rate: f64,
    /// proportional, integral, derived, min rate
    pub pid: [f64; 4],
    pub wal_sync: bool,
    pub max_buffered_records: usize,
    pub restart_delay_ms: u64,
    pub connect_timeout_ms: u64,
    pub failure_timeout_ms: u64,
    pub file_min_remember_ms: u64,
    pub generated: GeneratedSettings,
}

impl Settings {
    /// Workers in the whole job.
    pub fn total_workers(&self) -> usize {
        match &self.master {
            Master::Local(n) => *n,
            Master::Cluster { hosts, workers, .. } => hosts.len() * workers,
        }
    }

    /// Worker threads in this process.
    pub fn local_workers(&self) -> usize {
        match &self.master {
            Master::Local(n) => *n,
            Master::Cluster { workers, .. } => *workers,
        }
    }
}

impl Settings {
    /// A new estimator with the configured PID parameters.
    pub fn estimator(&self, batch_ms: u64) -> Result<crate::rate::PidRateEstimator> {
        let [p, i, d, m] = self.pid;
        crate::rate::PidRateEstimator::new(batch_ms, p, i, d, m)
    }

    /// A receiver's rate before any estimate: the initial rate under backpressure, capped by
    /// the static limit (0: none).
    pub fn initial_receiver_rate(&self) -> f64 {
        let cap = |r: f64| if self.max_rate > 0.0 { r.min(self.max_rate) } else { r };
        if self.backpressure && self.initial_rate > 0.0 {
            cap(self.initial_rate)
        } else {
            self.max_rate
        }
    }

    /// A backpressure estimate, capped by the static limit.
    pub fn capped_rate(&self, estimate: f64) -> f64 {
        if self.max_rate > 0.0 {
            estimate.min(self.max_rate)
        } else {
            estimate
        }
    }
}

/// Defaults of the generated text source.
#[derive(Debug, Clone)]
pub(crate) struct GeneratedSettings {
    pub lines_per_second: u64,
    pub words_per_line: usize,
    pub vocabulary: usize,
    pub skew: f64,
    pub seed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters() {
        assert_eq!(Conf::new().master("local").settings().unwrap().master, Master::Local(1));
        assert_eq!(Conf::new().master("local[3]").settings().unwrap().master, Master::Local(3));
        assert!(matches!(Conf::new().master("local[*]").settings().unwrap().master, Master::Local(n) if n >= 1));
        for bad in ["local[0]", "local[x]", "yarn", "local[2", ""] {
            let err = Conf::new().master(bad).settings().unwrap_err().to_string();
            assert!(err.contains("`master`") && err.contains("local[N]"), "{err}");
        }
    }

    #[test]
    fn unknown_key_and_bad_values_name_the_key() {
        let err = Conf::new().set("recevier.max_line_bytes", "1").settings().unwrap_err().to_string();
        assert!(err.contains("unknown configuration key `recevier.max_line_bytes`"), "{err}");
        let err = Conf::new().set("receiver.restart_delay", "soon").settings().unwrap_err().to_string();
        assert!(err.contains("`receiver.restart_delay`") && err.contains("2s"), "{err}");
        let err = Conf::new().set("clock.manual", "yes").settings().unwrap_err().to_string();
        assert!(err.contains("`clock.manual`") && err.contains("`true` or `false`"), "{err}");
    }

    #[test]
    fn values_that_make_no_sense_are_rejected() {
        for (key, value, says) in [
            ("receiver.restart_delay", "0", "busy loop"),
            ("receiver.max_rate", "-5", "at least 0"),
            ("backpressure.initial_rate", "-1", "at least 0"),
            ("receiver.max_line_bytes", "0", "at least 1"),
            ("receiver.max_buffered_records", "0", "at least 1"),
            ("flow.max_batches_in_flight", "0", "at least 1"),
        ] {
            let err = Conf::new().set(key, value).settings().unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")) && err.contains(says), "{key}={value}: {err}");
        }
        assert!(Conf::new().set("receiver.restart_delay", "1ms").settings().is_ok());
        assert!(Conf::new().set("receiver.max_rate", "0").settings().is_ok());
    }

    #[test]
    fn cluster_settings_are_checked() {
        let hosts = vec!["127.0.0.1:4000".to_string(), "127.0.0.1:4001".to_string()];
        let s = Conf::new().cluster(&hosts, 1, 2).settings().unwrap();
        assert!(matches!(s.master, Master::Cluster { process: 1, .. }));
        assert_eq!(s.local_workers(), 2);
        let err = Conf::new().cluster(&hosts, 2, 2).settings().unwrap_err().to_string();
        assert!(err.contains("cluster.process"), "{err}");
        let err = Conf::new().master("cluster").settings().unwrap_err().to_string();
        assert!(err.contains("cluster.hosts"), "{err}");
        let err = Conf::new().set("cluster.hosts", "nohost").settings().unwrap_err().to_string();
        assert!(err.contains("host:port"), "{err}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_millis("250ms"), Some(250));
        assert_eq!(parse_millis("2s"), Some(2000));
        assert_eq!(parse_millis("1m"), Some(60_000));
        assert_eq!(parse_millis("15"), Some(15));
        assert_eq!(parse_millis("fast"), None);
    }
}
