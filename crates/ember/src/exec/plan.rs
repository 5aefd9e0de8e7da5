//! The logical plan: the DStream graph a program declares before `start()`.
//!
//! Nodes hold the user's closures behind `Arc` and a build function that turns the node into
//! timely operators; every timely worker builds the same dataflow from the same plan. Output
//! operations are kept apart, in declaration order, because they run together in one stage.

use std::sync::Arc;

use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::error::Result;
use crate::exec::output::OutputPort;
use crate::exec::BuildEnv;

/// Builds one node's operators in one worker's dataflow.
pub(crate) type BuildFn = Arc<dyn for<'s> Fn(&mut BuildEnv<'s>) -> Result<()> + Send + Sync>;

/// Attaches one output operation to the output stage of one worker.
pub(crate) type AttachFn =
    Arc<dyn for<'s> Fn(&mut BuildEnv<'s>, &mut OperatorBuilder<'s, u64>) -> Result<Box<dyn OutputPort>> + Send + Sync>;

/// A DStream in the plan.
pub(crate) struct Node {
    pub name: String,
    pub parents: Vec<usize>,
    /// The stream's slide in milliseconds (the batch interval for non-window streams).
    pub slide: u64,
    /// The window length of a window operation (shown in the plan view; not part of the
    /// fingerprint).
    pub window: Option<u64>,
    /// A node a user operation adds beside its own (left out of the plan view).
    pub internal: bool,
    pub build: BuildFn,
}

/// Where an output operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// On the driver worker (process 0, worker 0), with the whole batch gathered there.
    Driver,
    /// On every worker, with its own share of the batch.
    Partition,
}

/// An output operation in the plan.
pub(crate) struct OutputSpec {
    pub name: String,
    pub node: usize,
    pub slide: u64,
    pub attach: AttachFn,
}

/// The whole plan.
#[derive(Default)]
pub(crate) struct Graph {
    pub nodes: Vec<Node>,
    pub outputs: Vec<OutputSpec>,
    /// Names of the input streams, by input stream id.
    pub inputs: Vec<String>,
    /// What each input stream reads (a directory, `host:port`, topics), by input stream id.
    pub sources: Vec<String>,
    /// Whether each node counts the records it produces per batch (for the web UI).
    pub track_operations: bool,
}

impl Graph {
    /// The user operations whose output `node` carries: the node itself, or, for a node an
    /// operation added internally, its parents' (recursively).
    fn visible(&self, node: usize) -> Vec<usize> {
        match self.nodes.get(node) {
            Some(n) if n.internal => n.parents.iter().flat_map(|&p| self.visible(p)).collect(),
            Some(_) => vec![node],
            None => Vec::new(),
        }
    }

    /// A node's number among the user's operations (internal nodes are not counted): what the
    /// fingerprint and the names of checkpointed state use, so that an operation that adds or
    /// drops an internal node never changes them.
    pub fn user_id(&self, node: usize) -> usize {
        self.nodes.iter().take(node).filter(|n| !n.internal).count()
    }

    /// The read-only view of the plan (see `StreamingContext::plan`): internal nodes left out.
    pub fn view(&self) -> crate::plan::Plan {
        use crate::plan::{Plan, PlanInput, PlanNode, PlanOutput};
        Plan {
            inputs: self
                .inputs
                .iter()
                .zip(&self.sources)
                .enumerate()
                .map(|(id, (name, source))| PlanInput { id, name: name.clone(), source: source.clone() })
                .collect(),
            nodes: self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| !n.internal)
                .map(|(id, n)| PlanNode {
                    id,
                    name: n.name.clone(),
                    parents: n.parents.iter().flat_map(|&p| self.visible(p)).collect(),
                    slide_ms: n.slide,
                    window_ms: n.window,
                })
                .collect(),
            outputs: self
                .outputs
                .iter()
                .enumerate()
                .map(|(id, o)| PlanOutput {
                    id,
                    name: o.name.clone(),
                    node: self.visible(o.node).first().copied().unwrap_or(o.node),
                    slide_ms: o.slide,
                })
                .collect(),
        }
    }

    /// The plan's shape, without the closures: [`PLAN_FORMAT`], then one line per user operation
    /// and output in declaration order (kind, parents, slide), numbered by
    /// [`user_id`](Self::user_id). Logged at start; the basis of the checkpoint's fingerprint.
    pub fn describe(&self) -> Vec<String> {
        let users = |node: usize| self.visible(node).into_iter().map(|n| self.user_id(n)).collect::<Vec<_>>();
        let nodes = self.nodes.iter().enumerate().filter(|(_, n)| !n.internal).map(|(i, n)| {
            let parents: Vec<usize> = n.parents.iter().flat_map(|&p| users(p)).collect();
            format!("node {}: {} <- {parents:?} every {} ms", self.user_id(i), n.name, n.slide)
        });
        let outputs = self.outputs.iter().enumerate().map(|(i, o)| {
            let node = users(o.node).first().copied().unwrap_or(usize::MAX);
            format!("output {i}: {} <- {node} every {} ms", o.name, o.slide)
        });
        std::iter::once(PLAN_FORMAT.to_owned()).chain(nodes).chain(outputs).collect()
    }

    /// The checkpoint's fingerprint of the job: which job it is (`app ...`) and what its inputs
    /// read (`input ...`), then the plan's shape (see [`describe`](Self::describe)).
    pub fn fingerprint(&self, app_name: &str) -> Vec<String> {
        let app = std::iter::once(format!("{APP}{app_name}"));
        let inputs =
            self.inputs.iter().zip(&self.sources).enumerate().map(|(i, (k, s))| format!("{INPUT}{i}: {k} reading {s}"));
        app.chain(inputs).chain(self.describe()).collect()
    }
}

/// The first line of a plan's shape in a fingerprint: the format of the lines after it. Bump it
/// when their meaning changes; a checkpoint of another format is refused with a clear error.
pub(crate) const PLAN_FORMAT: &str = "plan format 2";

/// Whether a checkpoint's plan lines (its fingerprint without the identity lines) are in the
/// format this version reads.
pub(crate) fn check_format(plan: &[String]) -> crate::error::Result<()> {
    if plan.first().map(String::as_str) == Some(PLAN_FORMAT) {
        return Ok(());
    }
    let theirs = plan.first().and_then(|l| l.strip_prefix("plan ")).unwrap_or("format 1");
    Err(crate::error::Error::Recovery(format!(
        "the checkpoint was written by another version of Ember: its plan is in {theirs}, this version reads {}; \
         start the job on an empty checkpoint directory",
        &PLAN_FORMAT["plan ".len()..]
    )))
}

/// How the identity lines of a fingerprint begin.
pub(crate) const APP: &str = "app ";
pub(crate) const INPUT: &str = "input ";

/// Whether a fingerprint line says which job it is or what an input reads (not the plan's shape).
pub(crate) fn is_identity(line: &str) -> bool {
    line.starts_with(APP) || line.starts_with(INPUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_of_another_plan_format_is_refused_with_both_formats_named() {
        assert!(check_format(&[PLAN_FORMAT.to_owned(), "node 0: x".into()]).is_ok());
        let old = check_format(&["node 0: queue stream <- [] every 1000 ms".into()]).unwrap_err().to_string();
        assert!(old.contains("format 1") && old.contains("format 2") && old.contains("empty checkpoint"), "{old}");
        let newer = check_format(&["plan format 3".into()]).unwrap_err().to_string();
        assert!(newer.contains("in format 3, this version reads format 2"), "{newer}");
    }
}
