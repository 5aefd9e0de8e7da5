//! What a context and its streams share: the plan being declared, the settings, the clock, the
//! listeners and the job once it runs. `StreamingContext` (the lifecycle) and every `DStream`
//! (the declarations) hold it; neither needs the other.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use crate::clock::{lock, Clock, ManualClock};
use crate::conf::Settings;
use crate::error::Error;
use crate::exec::plan::{BuildFn, Graph, Node, OutputSpec};
use crate::exec::runtime::Runtime;
use crate::listener::Listeners;

/// The states of a context (Spark's `StreamingContextState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextState {
    /// Created; streams and outputs can be declared.
    Initialized,
    /// Started; nothing more can be declared.
    Active,
    /// Stopped for good.
    Stopped,
}

pub(crate) static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

pub(crate) struct Inner {
    pub(crate) state: ContextState,
    pub(crate) graph: Graph,
    pub(crate) deferred: Option<Error>,
    pub(crate) runtime: Option<Arc<Runtime>>,
    pub(crate) stateful: Vec<(String, u64)>,
    /// Slides of the streams of operations built with the kit, which may keep state.
    pub(crate) operator_slides: Vec<u64>,
    /// The checkpoint directory's URL (a local path or an object store's URL).
    pub(crate) checkpoint_dir: Option<String>,
    pub(crate) checkpoint_intervals: Vec<u64>,
    pub(crate) recovered: Option<crate::checkpoint::Commit>,
    pub(crate) job: Option<crate::exec::job::Job>,
    /// Per-batch metadata handles of direct streams, by input stream id.
    pub(crate) metadata: BTreeMap<usize, crate::operator::BatchMetadata>,
    /// The plan as it was when the job started.
    pub(crate) started_plan: Option<crate::plan::Plan>,
}

/// What a context and its streams share.
pub(crate) struct Shared {
    pub(crate) id: usize,
    pub settings: Arc<Settings>,
    pub batch_ms: u64,
    pub clock: Arc<dyn Clock>,
    pub(crate) manual: Option<Arc<ManualClock>>,
    pub(crate) listeners: Listeners,
    pub(crate) accumulators: Mutex<Vec<crate::Accumulator>>,
    /// Per-context values of other crates, one per type (see `StreamingContext::extension`).
    pub(crate) extensions: Mutex<Vec<Arc<dyn std::any::Any + Send + Sync>>>,
    pub(crate) inner: Mutex<Inner>,
}

impl Shared {
    /// The running job's runtime, once started.
    pub(crate) fn runtime(&self) -> Option<Arc<Runtime>> {
        lock(&self.inner).runtime.clone()
    }

    /// The declared plan, without the closures.
    pub(crate) fn plan(&self) -> crate::plan::Plan {
        let inner = lock(&self.inner);
        inner.started_plan.clone().unwrap_or_else(|| inner.graph.view())
    }

    /// The context's value of type `T`, created with `T::default()` on first use.
    pub(crate) fn extension<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut exts = lock(&self.extensions);
        if let Some(e) = exts.iter().find_map(|e| Arc::clone(e).downcast::<T>().ok()) {
            return e;
        }
        let e = Arc::new(T::default());
        exts.push(Arc::clone(&e) as Arc<dyn std::any::Any + Send + Sync>);
        e
    }

    /// Adds a node to the plan. Declaring never fails at the call: a mistake is kept and returned
    /// by the context's next fallible call (`start`, `run_batches`, `await_termination`, ...).
    pub(crate) fn add_node(&self, op: &str, parents: Vec<usize>, slide: u64, build: BuildFn) -> usize {
        let mut inner = lock(&self.inner);
        if let Some(e) = state_error(inner.state, op) {
            inner.deferred.get_or_insert(e);
        }
        inner.graph.nodes.push(Node { name: op.to_owned(), parents, slide, window: None, internal: false, build });
        inner.graph.nodes.len() - 1
    }

    /// Marks a node that a user operation adds beside its own (for the plan view).
    pub(crate) fn note_internal(&self, node: usize) {
        if let Some(n) = lock(&self.inner).graph.nodes.get_mut(node) {
            n.internal = true;
        }
    }

    /// Notes the window length of a window operation's node (for the plan view).
    pub(crate) fn note_window(&self, node: usize, window: u64) {
        if let Some(n) = lock(&self.inner).graph.nodes.get_mut(node) {
            n.window = Some(window);
        }
    }

    /// Registers an input stream; returns its input stream id.
    pub(crate) fn add_input(&self, name: &str, source: &str) -> usize {
        let mut inner = lock(&self.inner);
        inner.graph.sources.push(source.to_owned());
        inner.graph.inputs.push(name.to_owned());
        inner.graph.inputs.len() - 1
    }

    /// Registers the handle through which outputs see an input stream's per-batch metadata.
    pub(crate) fn add_metadata_handle(&self, id: usize, handle: crate::operator::BatchMetadata) {
        lock(&self.inner).metadata.insert(id, handle);
    }

    pub(crate) fn add_output(&self, spec: OutputSpec) {
        let mut inner = lock(&self.inner);
        if let Some(e) = state_error(inner.state, &spec.name) {
            inner.deferred.get_or_insert(e);
        }
        inner.graph.outputs.push(spec);
    }

    /// Keeps a declaration error for the next fallible call.
    pub(crate) fn defer(&self, e: Error) {
        tracing::error!("{e}");
        lock(&self.inner).deferred.get_or_insert(e);
    }

    /// Remembers a stateful operation and its slide (for the checkpoint interval and the
    /// warning at start).
    pub(crate) fn note_stateful(&self, op: &str, slide: u64) {
        lock(&self.inner).stateful.push((op.to_owned(), slide));
    }

    /// Remembers the slide of an operation built with the kit: its state, if it keeps any, is
    /// saved at checkpoints, which must fall on its batches.
    pub(crate) fn note_operator_slide(&self, slide: u64) {
        lock(&self.inner).operator_slides.push(slide);
    }

    /// A checkpoint interval asked for by a stream.
    pub(crate) fn request_checkpoint_interval(&self, op: &str, interval: u64, slide: u64) {
        if interval < slide || !interval.is_multiple_of(slide) {
            self.defer(Error::declaration(
                op,
                format!("the checkpoint interval ({interval} ms) must be a multiple of the stream's slide duration ({slide} ms)"),
            ));
            return;
        }
        lock(&self.inner).checkpoint_intervals.push(interval);
    }

    pub(crate) fn same_context(&self, other: &Shared) -> bool {
        self.id == other.id
    }
}

pub(crate) fn state_error(state: ContextState, op: &str) -> Option<Error> {
    let verb = match state {
        ContextState::Initialized => return None,
        ContextState::Active => "starting",
        ContextState::Stopped => "stopping",
    };
    Some(Error::IllegalState(format!(
        "cannot add `{op}`: adding new inputs, transformations, and output operations after {verb} a context is not supported"
    )))
}
