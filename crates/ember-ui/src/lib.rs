//! Ember's web UI: what Spark's Streaming tab, its REST API and its Prometheus servlet show,
//! plus live dashboards, served by the driver process.
//!
//! ```no_run
//! use ember::prelude::*;
//! use ember_ui::DashboardExt;
//!
//! let ssc = StreamingContext::new(Conf::new().app_name("clicks"), Duration::from_secs(1)).unwrap();
//! let ui = ember_ui::attach(&ssc).unwrap();
//! if let Some(ui) = &ui {
//!     println!("Streaming page: {}/streaming/", ui.url());
//! }
//! let words = ssc.socket_text_stream("127.0.0.1", 9999).flat_map(|l: String| l.split(' ').map(String::from).collect::<Vec<_>>());
//! words.map(|w| (w, 1u64)).reduce_by_key_and_window(|a, b| a + b, Duration::from_secs(30), Duration::from_secs(5)).dashboard("top words");
//! ssc.start().unwrap();
//! ssc.await_termination().unwrap();
//! ```
//!
//! | Path | What |
//! |---|---|
//! | `/streaming/` | the Streaming page: summary, timelines and histograms, inputs, the plan, batch tables |
//! | `/streaming/batch/?id=<ms>` | one batch: delays, each input's records and metadata, output operations |
//! | `/dashboard`, `/dashboard/<name>` | the dashboards |
//! | `/api/v1/applications[/{app}/streaming/...]` | Spark's REST API: `statistics`, `receivers[/{id}]`, `batches[?status=]`, `batches/{id}[/operations[/{op}]]` |
//! | `/metrics`, `/metrics/prometheus` | Prometheus text format |
//! | `/events` | server-sent events: one per change, for live pages |
//!
//! Configuration (on the context's [`Conf`](ember::Conf)): `ui.enabled` (default `true`),
//! `ui.port` (4040; the next free port when taken; 0 for any), `ui.host` (`127.0.0.1`),
//! `ui.token` (a bearer token every path then needs), `ui.kill_enabled` (`false`: no path
//! changes the job), `ui.retained_batches` (1000).
//!
//! The UI is off the job's path: it learns of batches from the listener bus, serves from a thread
//! of its own, and a slow client only ever waits on its own connection.

mod dashboard;
mod format;
mod html;
mod metrics;
mod rest;
mod server;
mod store;
mod svg;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use ember::{Error, StreamingContext};

pub use dashboard::{Boards, DashboardExt};

/// A running UI; dropping it stops the server.
#[derive(Debug)]
pub struct Ui {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ui {
    /// The address the UI listens on.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn conf_error(key: &str, value: &str, expected: &str) -> Error {
    Error::Config { key: key.to_owned(), value: value.to_owned(), expected: expected.to_owned() }
}

/// Starts the web UI of `ssc` (before `start()`, so it sees the first batch): `None` when
/// `ui.enabled` is `false`, or in a process other than the driver (process 0), where there is
/// nothing to show. The address is logged; [`Ui::url`] gives it.
///
/// In a job of several processes, every process calls it (they run the same program): it turns
/// on the per-operation record counts, which are part of the dataflow every process builds.
pub fn attach(ssc: &StreamingContext) -> ember::Result<Option<Ui>> {
    let conf = ssc.conf();
    let get = |key: &str| conf.get_or_default(key).unwrap_or_default().to_owned();
    if get("ui.enabled") != "true" {
        return Ok(None);
    }
    // Every process builds the same dataflow, counters included: a process that is not the
    // driver counts too, and only the driver serves.
    ssc.track_operation_records();
    if !ssc.is_driver() {
        return Ok(None);
    }
    let port: u16 =
        get("ui.port").parse().map_err(|_| conf_error("ui.port", &get("ui.port"), "a port from 0 to 65535"))?;
    let retained: usize = get("ui.retained_batches").parse().unwrap_or(1000);
    if retained == 0 {
        return Err(conf_error("ui.retained_batches", "0", "at least 1"));
    }
    let host = get("ui.host");
    let token = Some(get("ui.token")).filter(|t| !t.is_empty());
    let kill = get("ui.kill_enabled") == "true";
    let (hosts, workers_per_process) = match conf.get_or_default("master") {
        Some("cluster") => (
            get("cluster.hosts").split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect(),
            get("cluster.workers").parse().unwrap_or(1),
        ),
        _ => (vec!["127.0.0.1".to_owned()], usize::MAX),
    };
    let handle = ssc.handle();
    let now = handle.now_millis().unwrap_or(0);
    let shared = store::Shared::new(store::Store {
        app_id: format!("ember-{now}"),
        app_name: ssc.app_name().to_owned(),
        batch_ms: ssc.batch_interval().as_millis() as u64,
        attached: now,
        started: None,
        zero: None,
        retained,
        batches: BTreeMap::new(),
        completed_total: 0,
        received_total: 0,
        processed_total: 0,
        receivers: BTreeMap::new(),
        plan: ssc.plan(),
        hosts,
        workers_per_process,
        version: 0,
    });
    ssc.add_streaming_listener(store::UiListener { shared: shared.clone(), context: ssc.handle() });
    let listener =
        server::bind(&host, port).map_err(|e| Error::io(format!("the web UI cannot listen on {host}:{port}"), e))?;
    let app = server::App {
        shared,
        boards: ssc.extension::<Boards>(),
        skipped: ssc.extension::<ember::operator::SkipCounters>(),
        token,
        kill,
        context: handle,
    };
    let (addr, stop, thread) =
        server::spawn(listener, app).map_err(|e| Error::io("the web UI cannot start its thread", e))?;
    tracing::info!("ui: the Streaming page is at http://{addr}/streaming/");
    Ok(Some(Ui { addr, stop: Some(stop), thread: Some(thread) }))
}
