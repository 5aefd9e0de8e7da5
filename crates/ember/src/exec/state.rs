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
            self.rt.checkpoint_failed(e);
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
    /// Registers `initial` as the state `op` of user operation `user_id` on worker `index`,
    /// named `node-{user_id}.{op}.{k}` (`k` counts the worker's states); when recovering,
    /// restores it from the checkpoint first.
    pub fn stateful<S: Snapshot + 'static>(
        &self,
        rt: &Arc<Runtime>,
        index: usize,
        user_id: usize,
        op: &str,
        initial: S,
    ) -> Stateful<S> {
        let (cell, handle) = shared(initial);
        let name = format!("node-{user_id}.{op}.{}", self.states.borrow().len());
        if let (Some(ck), Some(commit)) = (rt.checkpoints.as_deref(), rt.recovered.as_ref()) {
            let restored = ck
                .get_state(commit.time, index, &name)
                .and_then(|bytes| {
                    bytes.ok_or_else(|| {
                        Error::Recovery(format!(
                            "checkpoint {} has no state for `{name}` of worker {index}",
                            commit.time
                        ))
                    })
                })
                .and_then(|bytes| handle.borrow_mut().restore(&bytes));
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
