//! A handle on a context for code that runs beside the job (the web UI): it does not keep the
//! context alive.

use std::sync::{Arc, Weak};

use crate::context::StreamingContext;
use crate::error::Result;
use crate::exec::runtime::Runtime;
use crate::shared::Shared;
use crate::time::Time;

impl StreamingContext {
    /// A handle on this context that does not keep it alive (see [`ContextHandle`]).
    pub fn handle(&self) -> ContextHandle {
        ContextHandle { shared: Arc::downgrade(&self.shared) }
    }
}

/// A handle on a context that does not keep it alive, for code that runs beside the job on
/// threads of its own (the web UI): it reads the context's clock and counters and can stop it.
/// Made by [`StreamingContext::handle`].
#[derive(Clone)]
pub struct ContextHandle {
    pub(crate) shared: Weak<Shared>,
}

impl ContextHandle {
    /// Stops the context as [`StreamingContext::stop`] does; `Ok(false)` when it is gone already.
    pub fn stop(&self, graceful: bool) -> Result<bool> {
        match self.shared.upgrade() {
            // Once stopped, the temporary context's drop has nothing left to do.
            Some(shared) => StreamingContext { shared }.stop(graceful).map(|()| true),
            None => Ok(false),
        }
    }

    /// The context's clock reading in milliseconds (the manual clock's, when it runs on one);
    /// `None` once the context is gone.
    pub fn now_millis(&self) -> Option<u64> {
        self.shared.upgrade().map(|s| s.clock.now_millis())
    }

    /// The declared plan (see [`StreamingContext::plan`]); `None` once the context is gone.
    pub fn plan(&self) -> Option<crate::plan::Plan> {
        self.shared.upgrade().map(|s| s.plan())
    }

    /// The counters of this process's inputs (see [`StreamingContext::input_counters`]).
    pub fn input_counters(&self) -> crate::InputCounters {
        crate::counters_of(self.runtime())
    }

    /// What this process wrote to the checkpoint directory (see [`StreamingContext::storage_counters`]).
    pub fn storage_counters(&self) -> crate::StorageCounters {
        crate::storage_of(self.runtime())
    }

    /// The zero time once started (see [`StreamingContext::zero_time`]).
    pub fn zero_time(&self) -> Option<Time> {
        self.runtime().and_then(|rt| rt.zero()).map(Time::from_millis)
    }

    fn runtime(&self) -> Option<Arc<Runtime>> {
        self.shared.upgrade().and_then(|s| s.runtime())
    }
}

impl std::fmt::Debug for ContextHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContextHandle")
    }
}
