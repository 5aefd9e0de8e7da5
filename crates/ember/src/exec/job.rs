//! The job: the plan launched on timely, one thread per worker of this process, connected to
//! the job's other processes in cluster mode. Every worker runs [`run_worker`](super::run_worker);
//! a panic that escapes a worker fails the batch after the last completed one, so the job stops
//! with an error instead of hanging.

use std::sync::Arc;

use timely::communication::{Config as CommConfig, WorkerGuards};
use timely::WorkerConfig;

use super::runtime::{panic_text, Runtime};
use crate::conf::Master;
use crate::error::{Error, Result};

/// The running workers of this process.
pub(crate) struct Job {
    guards: WorkerGuards<Result<()>>,
}

/// Starts this process's workers of the job `rt` describes.
pub(crate) fn launch(master: &Master, rt: &Arc<Runtime>) -> Result<Job> {
    let (config, cluster) = match master {
        Master::Local(n) => (timely::Config::process(*n), false),
        Master::Cluster { hosts, process, workers } => (
            timely::Config {
                communication: CommConfig::Cluster {
                    threads: *workers,
                    process: *process,
                    addresses: hosts.clone(),
                    report: false,
                    zerocopy: false,
                },
                worker: WorkerConfig::default(),
            },
            true,
        ),
    };
    let worker_rt = Arc::clone(rt);
    let guards = timely::execute(config, move |worker| {
        let rt = Arc::clone(&worker_rt);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::run_worker(worker, Arc::clone(&rt), cluster)
        }));
        result.unwrap_or_else(|p| {
            let e = Error::Internal(format!("a worker panicked: {}", panic_text(&p)));
            rt.fail_batch(rt.completed() + rt.batch_ms, e.clone());
            rt.worker_finished();
            Err(e)
        })
    })
    .map_err(Error::Execution)?;
    Ok(Job { guards })
}

impl Job {
    /// Waits for every worker thread; the first error any of them returned.
    pub fn join(self) -> Result<()> {
        let mut result = Ok(());
        for r in self.guards.join() {
            if let Ok(Err(e)) | Err(e) = r.map_err(Error::Execution) {
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }

    /// Leaves the worker threads running (they wait for a peer that died).
    pub fn abandon(self) {
        std::mem::forget(self.guards);
    }
}
