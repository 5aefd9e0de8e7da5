//! Operator state that a checkpoint can snapshot and restore, per worker.
//!
//! Every stateful operator (window panes, running window aggregates, per-key states) keeps its
//! state in a serializable container behind an `Rc<RefCell<_>>` and registers it with the
//! worker's build environment under a stable name (node id and operator). Checkpointing walks
//! that registry: `snapshot()` after batch `t`, `restore()` before the first batch after a
//! recovery — without any change to the operators themselves.

use std::cell::RefCell;
use std::rc::Rc;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::runtime::Runtime;
use crate::error::{Error, Result};

/// A state container that can be written out and read back.
pub(crate) trait Snapshot {
    /// The container's bytes.
    fn snapshot(&self) -> Result<Vec<u8>>;
    /// Replaces the container's contents with `bytes` from `snapshot`.
    fn restore(&mut self, bytes: &[u8]) -> Result<()>;
}

impl<S: Serialize + DeserializeOwned> Snapshot for S {
    fn snapshot(&self) -> Result<Vec<u8>> {
        bincode::serialize(self).map_err(|e| Error::Internal(format!("encoding operator state: {e}")))
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        *self = bincode::deserialize(bytes)
            .map_err(|e| Error::Internal(format!("decoding operator state ({} bytes): {e}", bytes.len())))?;
        Ok(())
    }
}

/// A registered state container.
pub(crate) type StateHandle = Rc<RefCell<dyn Snapshot>>;

/// How a state moves when the job recovers from a checkpoint taken with another number of
/// workers (a rescale). Each worker's state was saved under its index; the new workers rebuild
/// theirs from the old ones.
pub(crate) enum Rescale<S> {
    /// Kept per worker, meaningful nowhere else (a user's `per_batch_stateful`): recovering with
    /// another number of workers is an error naming the state.
    Fixed,
    /// The same on every worker (a model every worker trains, a driver's state): old worker 0's.
    Replicated,
    /// Records of no particular worker (an unkeyed window's panes): old worker `w` goes to new
    /// worker `w % workers`; several are merged with `absorb`, none is `empty()`.
    Spread { empty: fn() -> S, absorb: fn(&mut S, S) },
    /// State per key, on the worker the key's hash picks: every old worker's state, each cut
    /// down by `retain(state, worker, workers)` to the keys of this worker, merged by `absorb`.
    Keyed { empty: fn() -> S, absorb: fn(&mut S, S), retain: fn(&mut S, usize, usize) },
}

/// Whether key hash `hash` belongs to worker `index` of `peers` (as timely's exchange routes it).
pub(crate) fn routed_to(hash: u64, index: usize, peers: usize) -> bool {
    hash % peers as u64 == index as u64
}

/// A state that is a map from keys to per-key states, on the keys' workers.
pub(crate) trait KeyedStates: Default {
    type Key: std::hash::Hash + Eq;
    type Value;
    fn values(&mut self) -> &mut rustc_hash::FxHashMap<Self::Key, Self::Value>;

    /// How it moves to another number of workers: each key to the worker its hash picks.
    fn rescale() -> Rescale<Self> {
        Rescale::Keyed {
            empty: Self::default,
            absorb: |state, mut other| {
                let other = std::mem::take(other.values());
                state.values().extend(other);
            },
            retain: |state, index, peers| state.values().retain(|k, _| routed_to(super::key_hash(k), index, peers)),
        }
    }
}

/// Saves one operator's state after the batches that are checkpointed. Operators call
/// [`StateSaver::after_batch`] once they processed a batch.
pub(crate) struct StateSaver {
    pub rt: Arc<Runtime>,
    pub worker: usize,
    pub name: String,
    pub handle: StateHandle,
}

impl StateSaver {
    /// Writes the snapshot when `t` is checkpointed; a failed write stops the job.
    pub fn after_batch(&self, t: u64) {
        let Some(ck) = self.rt.checkpoint_at(t) else { return };
        let saved = match self.handle.try_borrow() {
            Ok(state) => state.snapshot(),
            Err(_) => {
                Err(Error::Internal(format!("state `{}` is still borrowed by its operator at batch {t}", self.name)))
            }
        };
        let saved = saved.and_then(|bytes| ck.put_state(t, self.worker, &self.name, &bytes));
        if let Err(e) = saved {
            self.rt.checkpoint_failed(t, e);
        }
    }
}

/// An operator's state, registered for checkpoints when it is made (`BuildEnv::stateful`).
/// Every change goes through [`update`](Stateful::update), which saves the state after the
/// batches that are checkpointed: no operator can forget to.
pub(crate) struct Stateful<S> {
    pub cell: Rc<RefCell<S>>,
    pub saver: StateSaver,
}

impl<S> Stateful<S> {
    /// Runs `f` on the state for batch `t`, then saves it if `t` is checkpointed.
    pub fn update<R>(&self, t: u64, f: impl FnOnce(&mut S) -> R) -> R {
        let r = f(&mut self.cell.borrow_mut());
        self.saver.after_batch(t);
        r
    }
}

/// The state containers of one worker's stateful operators, by name, and the first error met
/// restoring one.
#[derive(Default)]
pub(crate) struct Registry {
    states: RefCell<Vec<(String, StateHandle)>>,
    failed: RefCell<Option<Error>>,
}

impl Registry {
    /// Registers `initial` as the state `op` of user operation `user_id` on worker `index` of
    /// `peers`, named `node-{user_id}.{op}.{k}` (`k` counts the worker's states); when
    /// recovering, restores it from the checkpoint first — rebuilt by `rescale` when the
    /// checkpoint had another number of workers.
    #[allow(clippy::too_many_arguments)]
    pub fn stateful<S: Serialize + DeserializeOwned + 'static>(
        &self,
        rt: &Arc<Runtime>,
        index: usize,
        peers: usize,
        user_id: usize,
        op: &str,
        initial: S,
        rescale: Rescale<S>,
    ) -> Stateful<S> {
        let (cell, handle) = shared(initial);
        let name = format!("node-{user_id}.{op}.{}", self.states.borrow().len());
        if let (Some(ck), Some(commit)) = (rt.checkpoints.as_deref(), rt.recovered.as_ref()) {
            let restored = if commit.workers != peers {
                rescaled(ck, commit, index, peers, &name, &cell, rescale)
            } else {
                ck.get_state(commit.time, index, &name)
                    .and_then(|bytes| {
                        bytes.ok_or_else(|| {
                            Error::Recovery(format!(
                                "checkpoint {} has no state for `{name}` of worker {index}",
                                commit.time
                            ))
                        })
                    })
                    .and_then(|bytes| handle.borrow_mut().restore(&bytes))
            };
            if let Err(e) = restored {
                self.fail(e);
            }
        }
        self.states.borrow_mut().push((name.clone(), handle.clone()));
        Stateful { cell, saver: StateSaver { rt: Arc::clone(rt), worker: index, name, handle } }
    }

    /// Keeps the first error met while building.
    pub fn fail(&self, e: Error) {
        self.failed.borrow_mut().get_or_insert(e);
    }

    /// The first error met while building, if any.
    pub fn take_failure(&self) -> Option<Error> {
        self.failed.borrow_mut().take()
    }

    /// The registered states.
    pub fn take_states(&self) -> Vec<(String, StateHandle)> {
        std::mem::take(&mut self.states.borrow_mut())
    }
}

/// Rebuilds worker `index`'s state `name` from checkpoint `commit`, taken with another number of
/// workers than this job's `peers`.
fn rescaled<S: DeserializeOwned>(
    ck: &crate::checkpoint::Checkpoints,
    commit: &crate::checkpoint::Commit,
    index: usize,
    peers: usize,
    name: &str,
    cell: &RefCell<S>,
    rescale: Rescale<S>,
) -> Result<()> {
    let t = commit.time;
    let old = |w: usize| -> Result<S> {
        let bytes = ck
            .get_state(t, w, name)?
            .ok_or_else(|| Error::Recovery(format!("checkpoint {t} has no state for `{name}` of worker {w}")))?;
        bincode::deserialize(&bytes)
            .map_err(|e| Error::Recovery(format!("checkpoint {t}: state `{name}` of worker {w} does not decode: {e}")))
    };
    let merged = |empty: fn() -> S, absorb: fn(&mut S, S), parts: Vec<S>| {
        let mut state = empty();
        for part in parts {
            absorb(&mut state, part);
        }
        state
    };
    let state = match rescale {
        Rescale::Fixed => {
            return Err(Error::Recovery(format!(
                "checkpoint {t} was taken with {} workers and this job has {peers}: state `{name}` is kept per worker and cannot move to another number of workers; recover with {} workers",
                commit.workers, commit.workers
            )))
        }
        Rescale::Replicated => old(0)?,
        Rescale::Spread { empty, absorb } => {
            let parts = (0..commit.workers).filter(|w| w % peers == index).map(old).collect::<Result<Vec<_>>>()?;
            merged(empty, absorb, parts)
        }
        Rescale::Keyed { empty, absorb, retain } => {
            let mut parts = Vec::new();
            for w in 0..commit.workers {
                let mut s = old(w)?;
                retain(&mut s, index, peers);
                parts.push(s);
            }
            merged(empty, absorb, parts)
        }
    };
    *cell.borrow_mut() = state;
    Ok(())
}

/// Wraps `state` for an operator and returns the handle to register.
pub(crate) fn shared<S: Snapshot + 'static>(state: S) -> (Rc<RefCell<S>>, StateHandle) {
    let cell = Rc::new(RefCell::new(state));
    let handle: StateHandle = cell.clone();
    (cell, handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dstream::map_with_state::TimedStates;
    use crate::dstream::reduce_by_key_and_window::RunningWindow;
    use crate::dstream::update_state_by_key::StateMap;
    use crate::dstream::window::Panes;

    fn round_trip<S: Snapshot + Default + std::fmt::Debug>(s: &S) -> String {
        let mut back = S::default();
        back.restore(&s.snapshot().unwrap()).unwrap();
        format!("{back:?}")
    }

    #[test]
    fn every_state_container_round_trips() {
        let mut panes = Panes::<Vec<(String, u64)>>::default();
        panes.push(1000, vec![("a".into(), 1)], 0);
        panes.push(2000, vec![], 0);
        assert_eq!(round_trip(&panes), format!("{panes:?}"));
        let running = RunningWindow::<String, i64> { values: [("k".to_string(), -3)].into_iter().collect() };
        assert_eq!(round_trip(&running), format!("{running:?}"));
        let state = StateMap::<u32, Vec<u8>> { values: [(7, vec![1, 2])].into_iter().collect() };
        assert_eq!(round_trip(&state), format!("{state:?}"));
        let timed = TimedStates::<u32, String> { values: [(1, ("s".to_string(), 5000))].into_iter().collect() };
        assert_eq!(round_trip(&timed), format!("{timed:?}"));
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_panic() {
        let mut s = StateMap::<u32, String>::default();
        let err = s.restore(&[0xff, 0xff, 0xff]).unwrap_err().to_string();
        assert!(err.contains("decoding operator state"), "{err}");
    }
}
