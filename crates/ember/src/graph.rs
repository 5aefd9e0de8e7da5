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
    /// The read-only view of the plan (see `StreamingContext::plan`): internal nodes left out.
    pub fn view(&self) -> crate::plan::Plan {
        let g = self;
        use crate::plan::{Plan, PlanInput, PlanNode, PlanOutput};
        // Internal nodes are left out: whoever reads one reads its parents instead.
        fn visible(g: &Graph, node: usize, out: &mut Vec<usize>) {
            match g.nodes.get(node) {
                Some(n) if n.internal => n.parents.iter().for_each(|&p| visible(g, p, out)),
                Some(_) => out.push(node),
                None => {}
            }
        }
        let parents = |node: usize| {
            let mut out = Vec::new();
            visible(g, node, &mut out);
            out
        };
        Plan {
            inputs: g
                .inputs
                .iter()
                .zip(&g.sources)
                .enumerate()
                .map(|(id, (name, source))| PlanInput { id, name: name.clone(), source: source.clone() })
                .collect(),
            nodes: g
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| !n.internal)
                .map(|(id, n)| PlanNode {
                    id,
                    name: n.name.clone(),
                    parents: n.parents.iter().flat_map(|&p| parents(p)).collect(),
                    slide_ms: n.slide,
                    window_ms: n.window,
                })
                .collect(),
            outputs: g
                .outputs
                .iter()
                .enumerate()
                .map(|(id, o)| PlanOutput {
                    id,
                    name: o.name.clone(),
                    node: parents(o.node).first().copied().unwrap_or(o.node),
                    slide_ms: o.slide,
                })
                .collect(),
        }
    }

    /// One line per node and output, in declaration order: the shape of the plan (kinds, names,
    /// parents, slides), without the closures. Logged at start; the basis of the checkpoint's
    /// graph fingerprint.
    pub fn describe(&self) -> Vec<String> {
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("node {i}: {} <- {:?} every {} ms", n.name, n.parents, n.slide));
        let outputs = self
            .outputs
            .iter()
            .enumerate()
            .map(|(i, o)| format!("output {i}: {} <- {} every {} ms", o.name, o.node, o.slide));
        nodes.chain(outputs).collect()
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

/// How the identity lines of a fingerprint begin.
pub(crate) const APP: &str = "app ";
pub(crate) const INPUT: &str = "input ";

/// Whether a fingerprint line says which job it is or what an input reads (not the plan's shape).
pub(crate) fn is_identity(line: &str) -> bool {
    line.starts_with(APP) || line.starts_with(INPUT)
}
