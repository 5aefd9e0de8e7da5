//! The job: the plan launched on timely, one thread per worker of this process, connected to
//! the job's other processes in cluster mode. Every worker runs [`run_worker`](super::run_worker);
//! a panic that escapes a worker fails the batch after the last completed one, so the job stops
//! with an error instead of hanging.

use std::sync::Arc;

use std::time::Duration;

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::ProcessBuilder;
use timely::communication::{AllocatorBuilder, Hooks, WorkerGuards};
use timely::WorkerConfig;

use super::cluster::{self, Membership, Mesh};
use super::runtime::{panic_text, Runtime};
use crate::conf::Master;
use crate::error::{Error, Result};

/// The running workers of this process.
pub(crate) struct Job {
    guards: WorkerGuards<Result<()>>,
    mesh: Option<Arc<Mesh>>,
}

/// Starts this process's workers of the job `rt` describes; in cluster mode, after connecting
/// to every other process (or failing after `cluster.connect_timeout`).
pub(crate) fn launch(master: &Master, rt: &Arc<Runtime>) -> Result<Job> {
    let (builders, others, mesh): (Vec<AllocatorBuilder>, Box<dyn std::any::Any + Send>, _) = match master {
        Master::Local(n) => {
            let (builders, others) = timely::CommunicationConfig::Process(*n).try_build().map_err(Error::Execution)?;
            (builders, others, None)
        }
        Master::Cluster { hosts, process, workers } => {
            let me = Membership {
                hosts: hosts.clone(),
                process: *process,
                workers: *workers,
                connect_timeout: Duration::from_millis(rt.settings.connect_timeout_ms),
                failure_timeout: Duration::from_millis(rt.settings.failure_timeout_ms),
                plan: super::key_hash(&rt.graph.fingerprint(&rt.settings.app_name)),
            };
            let connections = cluster::connect(&me)?;
            let hooks = Hooks::default();
            let local = ProcessBuilder::new_typed_vector(*workers, hooks.refill.clone(), hooks.spill.clone());
            let (builders, comms) =
                initialize_networking_from_sockets(local, connections.data, *process, *workers, hooks)
                    .map_err(|e| Error::Cluster(format!("starting the network threads: {e}")))?;
            let mesh = Mesh::start(me, connections.control, rt)?;
            let _ = rt.mesh.set(Arc::clone(&mesh));
            let threads = cluster::NetworkThreads { guard: Some(Box::new(comms)), mesh: Arc::clone(&mesh) };
            (builders.into_iter().map(AllocatorBuilder::Tcp).collect(), Box::new(threads), Some(mesh))
        }
    };
    let cluster = mesh.is_some();
    let worker_rt = Arc::clone(rt);
    let worker_mesh = mesh.clone();
    let guards = timely::execute::execute_from(builders, others, WorkerConfig::default(), move |worker| {
        let rt = Arc::clone(&worker_rt);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::run_worker(worker, Arc::clone(&rt), cluster)
        }));
        result.unwrap_or_else(|p| {
            let text = panic_text(&p);
            let e = match &worker_mesh {
                // timely's reaction to a lost peer: the control connections name the peer.
                Some(mesh) if cluster::is_connection_panic(&text) => mesh.cause_of_broken_connection(&text),
                _ => Error::Internal(format!("a worker panicked: {text}")),
            };
            rt.fail_batch(rt.completed() + rt.batch_ms, e.clone());
            rt.worker_finished();
            Err(e)
        })
    })
    .map_err(Error::Execution)?;
    Ok(Job { guards, mesh })
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
        if let Some(mesh) = &self.mesh {
            if result.is_ok() {
                mesh.await_peers();
            }
            mesh.close(result.is_ok());
        }
        result
    }

    /// Leaves the worker threads running (they wait for a peer that died).
    pub fn abandon(self) {
        if let Some(mesh) = &self.mesh {
            mesh.close(false);
        }
        std::mem::forget(self.guards);
    }
}
