//! Redis as an output of Ember streams of key/value pairs, exactly once per batch:
//!
//! ```no_run
//! use ember::prelude::*;
//! use ember_redis::{RedisMode, SaveToRedis};
//! # fn job(counts: DStream<(String, i64)>, last_seen: DStream<(String, String)>) {
//! let url = "redis://127.0.0.1:6379/";
//! counts.save_to_redis(url, RedisMode::hash_increment("word_totals"));   // HINCRBY word_totals w n
//! last_seen.save_to_redis(url, RedisMode::set("last_seen:"));           // SET last_seen:<k> <v>
//! last_seen.save_to_redis(url, RedisMode::stream_append("events"));     // XADD events * <k> <v>
//! # }
//! ```
//!
//! **Exactly once.** Every worker writes its share of a batch as one `MULTI … EXEC` transaction
//! that also records the share in a marker, a sorted set `ember:sink:<name>:w<worker>` whose
//! members are the batch times written (the newest 1000 are kept). The transaction runs under
//! `WATCH` of the marker and first checks it: a share written before (a batch re-run after a
//! failure, or a second incarnation of the job) is skipped, so increments and stream entries are
//! never applied twice. This holds as long as a re-run batch gives each worker the same records,
//! which Ember's sources and keyed operations do. The sink's name defaults to the key or prefix it
//! writes; keep it across restarts ([`RedisSink::name`]).
//!
//! **Values.** Keys are the records' first elements as text. A string value is written as it is;
//! any other serializable value as JSON. `hash_increment` takes integer values.
//!
//! **Failures.** A dropped connection, a refused connection or a loading server is retried on a
//! new connection with backoff (100 ms doubling to 2 s) for up to [`RedisSink::retry_timeout`]
//! (30 s by default); the transaction makes the retry safe. Any other error (a wrong type at the
//! key, say) fails the batch with Redis's message, naming the batch and the key.
//!
//! **Counters.** [`RedisSink::counters`] gives the commands written, the retries, the shares
//! skipped as already written and the time spent, in this process.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ember::clock::lock;
use ember::operator::{Sink, SinkCounters};
use ember::{DStream, Data, Error, Result, Time};
use redis::{Connection, ErrorKind, Pipeline, RedisResult};
use serde::Serialize;

/// What a sink does with each `(key, value)` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisMode {
    /// `SET <prefix><key> <value>`.
    Set {
        /// Prepended to every key.
        prefix: String,
    },
    /// `HINCRBY <hash> <key> <value>` (integer values).
    HashIncrement {
        /// The hash.
        hash: String,
    },
    /// `XADD <stream> * <key> <value>`.
    StreamAppend {
        /// The stream.
        stream: String,
    },
}

impl RedisMode {
    /// [`RedisMode::Set`].
    pub fn set(prefix: &str) -> Self {
        RedisMode::Set { prefix: prefix.to_owned() }
    }

    /// [`RedisMode::HashIncrement`].
    pub fn hash_increment(hash: &str) -> Self {
        RedisMode::HashIncrement { hash: hash.to_owned() }
    }

    /// [`RedisMode::StreamAppend`].
    pub fn stream_append(stream: &str) -> Self {
        RedisMode::StreamAppend { stream: stream.to_owned() }
    }

    fn target(&self) -> &str {
        match self {
            RedisMode::Set { prefix } => prefix,
            RedisMode::HashIncrement { hash } => hash,
            RedisMode::StreamAppend { stream } => stream,
        }
    }
}

/// A Redis sink: server, mode and options.
pub struct RedisSink {
    client: redis::Client,
    url: String,
    mode: RedisMode,
    name: String,
    retry_timeout: Duration,
    /// Each worker's connection, taken out while it writes.
    connections: Mutex<HashMap<usize, Connection>>,
    stats: Arc<SinkCounters>,
}

/// How many batch times a marker keeps.
const MARKED: isize = 1000;

impl RedisSink {
    /// A sink writing to the server at `url` (`redis://host:port/db`).
    pub fn new(url: &str, mode: RedisMode) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| Error::external(format!("the Redis URL `{url}`"), e))?;
        Ok(RedisSink {
            client,
            url: url.to_owned(),
            name: mode.target().to_owned(),
            mode,
            retry_timeout: Duration::from_secs(30),
            connections: Mutex::new(HashMap::new()),
            stats: Arc::default(),
        })
    }

    /// The sink's name in its markers (by default the key, hash or stream it writes).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// How long retryable errors are retried before the batch fails (30 s by default).
    pub fn retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = timeout;
        self
    }

    /// The sink's counters in this process.
    pub fn counters(&self) -> Arc<SinkCounters> {
        Arc::clone(&self.stats)
    }

    fn marker(&self, worker: usize) -> String {
        format!("ember:sink:{}:w{worker}", self.name)
    }

    /// The commands of a share, in a pipeline.
    fn commands(&self, pipe: &mut Pipeline, records: &[(String, String)], t: Time) -> Result<()> {
        for (k, v) in records {
            match &self.mode {
                RedisMode::Set { prefix } => pipe.set(format!("{prefix}{k}"), v).ignore(),
                RedisMode::HashIncrement { hash } => {
                    let n: i64 = v.parse().map_err(|_| {
                        Error::external(
                            format!("batch {t}: the value of `{k}` for the Redis hash `{hash}`"),
                            Invalid(format!("`{v}` is not an integer")),
                        )
                    })?;
                    pipe.hincr(hash, k, n).ignore()
                }
                RedisMode::StreamAppend { stream } => pipe.xadd(stream, "*", &[(k, v)]).ignore(),
            };
        }
        Ok(())
    }

    fn write_share(&self, t: Time, worker: usize, records: &[(String, String)]) -> Result<()> {
        let mut commands = redis::pipe();
        self.commands(&mut commands, records, t)?;
        let (marker, member) = (self.marker(worker), t.millis());
        let what = format!("Redis sink `{}`: batch {t}", self.name);
        let written = self.stats.with_retries(t, &what, self.retry_timeout, retryable, || {
            let mut con = self.connection(worker)?;
            let written = redis::transaction(&mut con, &[&marker], |con, pipe| {
                let done: Option<f64> = redis::cmd("ZSCORE").arg(&marker).arg(member).query(con)?;
                if done.is_some() {
                    return Ok(Some(false));
                }
                *pipe = commands.clone();
                pipe.atomic();
                pipe.zadd(&marker, member, member).ignore();
                pipe.zremrangebyrank(&marker, 0, -(MARKED + 1)).ignore();
                Ok(pipe.query::<Option<()>>(con)?.map(|_| true))
            })?;
            lock(&self.connections).insert(worker, con);
            Ok(written)
        });
        let written = written.map_err(|e| {
            Error::external(format!("batch {t}: writing to Redis at {} (`{}`)", self.url, self.mode.target()), e)
        })?;
        if written {
            self.stats.wrote(t, records.len());
        } else {
            self.stats.skipped(t);
            tracing::info!("Redis sink `{}`: batch {t} worker {worker} was written before; skipped", self.name);
        }
        Ok(())
    }

    fn connection(&self, worker: usize) -> RedisResult<Connection> {
        if let Some(c) = lock(&self.connections).remove(&worker) {
            return Ok(c);
        }
        let c = self.client.get_connection_with_timeout(Duration::from_secs(5))?;
        c.set_read_timeout(Some(Duration::from_secs(30)))?;
        c.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(c)
    }
}

/// A value the sink cannot write.
#[derive(Debug)]
struct Invalid(String);

impl Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// Whether an error may pass on a new connection.
fn retryable(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(e.kind(), ErrorKind::Server(redis::ServerErrorKind::BusyLoading | redis::ServerErrorKind::TryAgain))
}

/// The text of a value: a string as it is, anything else as JSON.
fn text<V: Serialize>(v: &V) -> std::result::Result<String, serde_json::Error> {
    match serde_json::to_value(v)? {
        serde_json::Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}

impl<K: Data + Display, V: Data + Serialize> Sink<(K, V)> for RedisSink {
    fn write(&self, t: Time, worker: usize, records: Vec<(K, V)>) -> Result<()> {
        // An empty share writes nothing, and a re-run of it nothing again: no marker needed.
        if records.is_empty() {
            return Ok(());
        }
        let pairs = records
            .iter()
            .map(|(k, v)| text(v).map(|v| (k.to_string(), v)))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::external(format!("batch {t}: a value for Redis does not serialize"), e))?;
        self.write_share(t, worker, &pairs)
    }

    fn metrics(&self, t: Time) -> std::collections::BTreeMap<String, u64> {
        self.stats.batch(t).metrics()
    }
}

/// `save_to_redis` on every stream of `(key, value)` pairs.
pub trait SaveToRedis {
    /// Writes every batch to the Redis server at `url` with `mode` (see the crate docs). A URL
    /// that does not parse is an error of the context's `start`.
    fn save_to_redis(&self, url: &str, mode: RedisMode) -> Option<Arc<SinkCounters>>;
    /// Writes every batch with a sink built with options.
    fn save_to_redis_with(&self, sink: RedisSink) -> Arc<SinkCounters>;
}

impl<K: Data + Display, V: Data + Serialize> SaveToRedis for DStream<(K, V)> {
    fn save_to_redis(&self, url: &str, mode: RedisMode) -> Option<Arc<SinkCounters>> {
        match RedisSink::new(url, mode) {
            Ok(sink) => Some(self.save_to_redis_with(sink)),
            Err(e) => {
                self.declaration_error(e);
                None
            }
        }
    }

    fn save_to_redis_with(&self, sink: RedisSink) -> Arc<SinkCounters> {
        let counters = sink.counters();
        self.sink("save_to_redis", sink);
        counters
    }
}
