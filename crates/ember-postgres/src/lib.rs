//! PostgreSQL as an output of Ember streams, with the guarantee chosen per sink:
//!
//! ```no_run
//! use ember::prelude::*;
//! use ember_postgres::{Mode, SaveToPostgres};
//! # fn job(counts: DStream<(String, i64)>) {
//! let db = "host=127.0.0.1 user=postgres";
//! // Running totals, idempotent on the key: a re-run batch writes the same rows again.
//! counts.save_to_postgres(db, "word_totals", Mode::upsert(&["word"]));
//! // Each batch's rows exactly once: with their batch marker, in one transaction.
//! counts.save_to_postgres(db, "word_counts", Mode::transactional("word-count"));
//! # }
//! ```
//!
//! **How a batch is written.** Every worker writes its share of the batch on its own connection
//! (opened on first use, kept across batches, opened again after an error), in one transaction,
//! by binary `COPY`:
//!
//! - [`Mode::Upsert`]: the rows go to a temporary table, then `INSERT … ON CONFLICT (key) DO UPDATE`
//!   sets every other column. Writing a batch twice leaves the same table, so a re-run batch is
//!   harmless. The rows of one batch must have distinct keys (PostgreSQL refuses to update a row
//!   twice in one statement): write the output of a `reduce_by_key` or a state.
//! - [`Mode::Transactional`]: the rows and a marker row `(sink, batch_time, worker)` in the table
//!   `ember_sink_batches` (created if missing) commit together. A batch re-run after a failure
//!   finds its marker and writes nothing again; so does a second incarnation of the job. This is
//!   exactly once as long as a re-run batch gives each worker the same records, which holds for
//!   Ember's sources and keyed operations (Spark's guide names the same condition: "use the batch
//!   time and the partition index as the unique identifier").
//!
//! **Records to rows.** A record is serialized with serde: a struct or a map fills the columns of
//! its field names (a missing field is `NULL`, a field that is no column is an error), a tuple fills
//! the columns in order, a single value a one-column table. The columns are the table's own, in
//! order, or those given with [`PostgresSink::columns`]. Column types: `bool`, `int2/4/8`,
//! `float4/8`, `text`, `varchar`, `char`, `json`, `jsonb`, `bytea`, `timestamp` and
//! `timestamptz` (from an RFC 3339 string or milliseconds since the epoch). A record that does not
//! fit fails the batch with an error naming the batch, the table, the record and the column; no
//! row of that worker's share is written.
//!
//! **Failures.** A serialization failure, a deadlock, a dropped connection or a database that is
//! restarting is retried with backoff (100 ms doubling to 2 s) for up to
//! [`PostgresSink::retry_timeout`] (30 s by default), on a new connection; the transaction makes
//! the retry safe. A constraint violation, an unknown table or column, or any other error fails
//! the batch at once with the database's message, naming the batch and the table; with a checkpoint
//! directory the job stops and a restart re-runs the batch.
//!
//! **Counters.** [`PostgresSink::counters`] gives the rows written, the retries, the shares
//! skipped as already written and the time spent, in this process.

mod rows;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ember::clock::lock;
use ember::operator::{Sink, SinkCounters};
use ember::{DStream, Data, Error, Result, Time};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Transaction};
use serde::Serialize;

pub use rows::RowError;
use rows::{quoted, Cell};

/// The table of batch markers of transactional sinks.
pub const MARKERS: &str = "ember_sink_batches";

/// How a sink makes re-run batches harmless.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `INSERT … ON CONFLICT (key) DO UPDATE`: idempotent on the key columns.
    Upsert {
        /// The key columns (a unique constraint or primary key of the table).
        key: Vec<String>,
    },
    /// The rows and the batch's marker in one transaction; a batch with a marker is skipped.
    Transactional {
        /// The sink's name in the markers: the same job must keep it across restarts, and two
        /// sinks must not share it.
        sink: String,
    },
}

impl Mode {
    /// [`Mode::Upsert`] on the key columns `key`.
    pub fn upsert(key: &[&str]) -> Mode {
        Mode::Upsert { key: key.iter().map(|k| (*k).to_owned()).collect() }
    }

    /// [`Mode::Transactional`] with the marker name `sink`.
    pub fn transactional(sink: &str) -> Mode {
        Mode::Transactional { sink: sink.to_owned() }
    }
}

/// A PostgreSQL sink: connection, table, mode and options.
pub struct PostgresSink {
    conn: String,
    table: String,
    mode: Mode,
    columns: Option<Vec<String>>,
    retry_timeout: Duration,
    /// Each worker's connection, taken out while it writes.
    clients: Mutex<HashMap<usize, Client>>,
    stats: Arc<SinkCounters>,
}

impl PostgresSink {
    /// A sink writing to `table` through the connection string `conn` (`host=… user=…` or a
    /// `postgresql://` URL).
    pub fn new(conn: &str, table: &str, mode: Mode) -> Self {
        PostgresSink {
            conn: conn.to_owned(),
            table: table.to_owned(),
            mode,
            columns: None,
            retry_timeout: Duration::from_secs(30),
            clients: Mutex::new(HashMap::new()),
            stats: Arc::default(),
        }
    }

    /// Writes these columns only (the others take their defaults), in this order.
    pub fn columns(mut self, columns: &[&str]) -> Self {
        self.columns = Some(columns.iter().map(|c| (*c).to_owned()).collect());
        self
    }

    /// How long retryable errors are retried before the batch fails (30 s by default).
    pub fn retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = timeout;
        self
    }

    /// The sink's counters in this process (`records` counts rows).
    pub fn counters(&self) -> Arc<SinkCounters> {
        Arc::clone(&self.stats)
    }

    /// Writes one worker's share, retrying what may succeed on a new connection.
    fn write_share(&self, t: Time, worker: usize, records: &[serde_json::Value]) -> Result<()> {
        let what = format!("PostgreSQL sink `{}`: batch {t}", self.table);
        let written = self.stats.with_retries(t, &what, self.retry_timeout, retryable, || {
            let mut client = self.take_client(worker)?;
            let r = self.attempt(&mut client, t, worker, records)?;
            lock(&self.clients).insert(worker, client);
            Ok(r)
        });
        written.map_err(|e| self.fail(t, e))?
    }

    fn fail(&self, t: Time, e: postgres::Error) -> Error {
        let what = match e.code() {
            Some(c) if c.code().starts_with("23") => "a row violates a constraint of",
            _ => "writing to",
        };
        // postgres::Error shows "db error" alone: the server's message goes into the context.
        let said = e.as_db_error().map(|d| format!(" ({})", d.to_string().replace('\n', "; "))).unwrap_or_default();
        Error::external(format!("batch {t}: {what} PostgreSQL table `{}`{said}", self.table), e)
    }

    fn take_client(&self, worker: usize) -> std::result::Result<Client, postgres::Error> {
        if let Some(c) = lock(&self.clients).remove(&worker) {
            if !c.is_closed() {
                return Ok(c);
            }
        }
        Client::connect(&self.conn, NoTls)
    }

    /// One transaction: the share's rows (and marker), or nothing. A record that does not fit
    /// is the inner error (never retried).
    fn attempt(
        &self,
        client: &mut Client,
        t: Time,
        worker: usize,
        records: &[serde_json::Value],
    ) -> std::result::Result<Result<()>, postgres::Error> {
        if let Mode::Transactional { .. } = self.mode {
            client.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {MARKERS} (sink text NOT NULL, batch_time bigint NOT NULL, worker int NOT NULL, \
                 rows bigint NOT NULL, written_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (sink, batch_time, worker))"
            ))
            .or_else(ignore_concurrent_create)?;
        }
        let (names, types) = self.columns_of(client)?;
        let mut cells = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            match rows::row(r, &names, &types) {
                Ok(c) => cells.push(c),
                Err(e) => {
                    return Ok(Err(Error::external(
                        format!(
                            "batch {t}: record {i} of worker {worker} does not fit PostgreSQL table `{}`",
                            self.table
                        ),
                        e,
                    )))
                }
            }
        }
        let mut tx = client.transaction()?;
        let written = match &self.mode {
            Mode::Transactional { sink } => {
                let key: [&(dyn ToSql + Sync); 3] = [sink, &(t.millis() as i64), &(worker as i32)];
                let done = tx.query_opt(
                    &format!("SELECT 1 FROM {MARKERS} WHERE sink = $1 AND batch_time = $2 AND worker = $3"),
                    &key,
                )?;
                if done.is_some() {
                    tx.rollback()?;
                    self.stats.skipped(t);
                    tracing::info!("PostgreSQL sink `{sink}`: batch {t} worker {worker} was written before; skipped");
                    return Ok(Ok(()));
                }
                copy(&mut tx, &quoted(&self.table), &names, &types, &cells)?;
                let marker = format!("INSERT INTO {MARKERS} (sink, batch_time, worker, rows) VALUES ($1, $2, $3, $4)");
                match tx.execute(&marker, &[key[0], key[1], key[2], &(cells.len() as i64)]) {
                    Ok(_) => {}
                    // Another incarnation committed this share meanwhile.
                    Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                        self.stats.skipped(t);
                        return Ok(Ok(()));
                    }
                    Err(e) => return Err(e),
                }
                cells.len()
            }
            Mode::Upsert { key } => {
                let staging = "ember_upsert_staging";
                tx.batch_execute(&format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
                    quoted(&self.table)
                ))?;
                copy(&mut tx, staging, &names, &types, &cells)?;
                let cols = names.iter().map(|n| quoted(n)).collect::<Vec<_>>().join(", ");
                let keys = key.iter().map(|n| quoted(n)).collect::<Vec<_>>().join(", ");
                let sets: Vec<String> = names
                    .iter()
                    .filter(|n| !key.contains(n))
                    .map(|n| format!("{0} = EXCLUDED.{0}", quoted(n)))
                    .collect();
                let action =
                    if sets.is_empty() { "NOTHING".to_owned() } else { format!("UPDATE SET {}", sets.join(", ")) };
                tx.batch_execute(&format!(
                    "INSERT INTO {} ({cols}) SELECT {cols} FROM {staging} ON CONFLICT ({keys}) DO {action}",
                    quoted(&self.table)
                ))?;
                cells.len()
            }
        };
        tx.commit()?;
        self.stats.wrote(t, written);
        Ok(Ok(()))
    }

    /// The columns written and their types, as the table declares them.
    fn columns_of(&self, client: &mut Client) -> std::result::Result<(Vec<String>, Vec<Type>), postgres::Error> {
        let list = match &self.columns {
            Some(c) => c.iter().map(|n| quoted(n)).collect::<Vec<_>>().join(", "),
            None => "*".to_owned(),
        };
        let stmt = client.prepare(&format!("SELECT {list} FROM {} LIMIT 0", quoted(&self.table)))?;
        let names = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
        let types = stmt.columns().iter().map(|c| c.type_().clone()).collect();
        Ok((names, types))
    }
}

/// Binary COPY of `cells` into `table`.
fn copy(
    tx: &mut Transaction<'_>,
    table: &str,
    names: &[String],
    types: &[Type],
    cells: &[Vec<Cell>],
) -> std::result::Result<(), postgres::Error> {
    let cols = names.iter().map(|n| quoted(n)).collect::<Vec<_>>().join(", ");
    let sink = tx.copy_in(&format!("COPY {table} ({cols}) FROM STDIN (FORMAT binary)"))?;
    let mut w = BinaryCopyInWriter::new(sink, types);
    for row in cells {
        let values: Vec<&(dyn ToSql + Sync)> = row.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
        w.write(&values)?;
    }
    w.finish().map(drop)
}

/// Two workers creating the markers table at once: one of them sees the other's.
fn ignore_concurrent_create(e: postgres::Error) -> std::result::Result<(), postgres::Error> {
    match e.code() {
        // Two sessions creating the table at once: the loser sees its row type or its name
        // taken, depending on how far the winner got.
        Some(c)
            if *c == SqlState::UNIQUE_VIOLATION
                || *c == SqlState::DUPLICATE_TABLE
                || *c == SqlState::DUPLICATE_OBJECT =>
        {
            Ok(())
        }
        _ => Err(e),
    }
}

/// Whether an error may pass on a new attempt: a lost connection, a restarting server, a
/// serialization failure or a deadlock.
fn retryable(e: &postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(c) => {
            let code = c.code();
            code.starts_with("08")
                || code.starts_with("57P")
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
        }
    }
}

impl<T: Data + Serialize> Sink<T> for PostgresSink {
    fn write(&self, t: Time, worker: usize, records: Vec<T>) -> Result<()> {
        // An empty share writes nothing, and a re-run of it nothing again: no marker needed.
        if records.is_empty() {
            return Ok(());
        }
        let values =
            records.iter().map(serde_json::to_value).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| {
                Error::external(format!("batch {t}: a record does not serialize for `{}`", self.table), e)
            })?;
        self.write_share(t, worker, &values)
    }

    fn metrics(&self, t: Time) -> std::collections::BTreeMap<String, u64> {
        self.stats.batch(t).metrics()
    }
}

/// `save_to_postgres` on every stream of serializable records.
pub trait SaveToPostgres {
    /// Writes every batch to `table` through the connection string `conn`, with `mode`'s
    /// guarantee (see the crate docs).
    fn save_to_postgres(&self, conn: &str, table: &str, mode: Mode) -> Arc<SinkCounters>;
    /// Writes every batch with a sink built with options.
    fn save_to_postgres_with(&self, sink: PostgresSink) -> Arc<SinkCounters>;
}

impl<T: Data + Serialize> SaveToPostgres for DStream<T> {
    fn save_to_postgres(&self, conn: &str, table: &str, mode: Mode) -> Arc<SinkCounters> {
        self.save_to_postgres_with(PostgresSink::new(conn, table, mode))
    }

    fn save_to_postgres_with(&self, sink: PostgresSink) -> Arc<SinkCounters> {
        let counters = sink.counters();
        self.sink("save_to_postgres", sink);
        counters
    }
}
