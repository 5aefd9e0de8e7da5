//! A read-only view of the DStream graph a program declared (for the web UI and tools): the
//! nodes (one per operation), the output operations and the input streams, without the closures.

/// An input stream of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInput {
    /// The input stream id (0, 1, ... in creation order), as in [`crate::StreamInputInfo`].
    pub id: usize,
    /// The stream's name, e.g. `socket text stream`.
    pub name: String,
    /// What it reads: a directory, `host:port`, topics.
    pub source: String,
}

/// A DStream of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanNode {
    /// The node's index in declaration order (ids of internal nodes, which the view leaves out, are skipped).
    pub id: usize,
    /// The operation that made it, e.g. `flat_map`, `reduce_by_key`, `window`.
    pub name: String,
    /// The nodes it reads.
    pub parents: Vec<usize>,
    /// How often it produces a batch, in milliseconds.
    pub slide_ms: u64,
    /// The window length in milliseconds, for window operations.
    pub window_ms: Option<u64>,
}

/// An output operation of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOutput {
    /// The output operation id (declaration order), as in [`crate::OutputOperationInfo`].
    pub id: usize,
    /// Its name, e.g. `print`, `foreach_batch`.
    pub name: String,
    /// The node it writes.
    pub node: usize,
    /// How often it runs, in milliseconds.
    pub slide_ms: u64,
}

/// The declared plan (see [`StreamingContext::plan`](crate::StreamingContext::plan)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Input streams by id.
    pub inputs: Vec<PlanInput>,
    /// Nodes in declaration order.
    pub nodes: Vec<PlanNode>,
    /// Output operations in declaration order.
    pub outputs: Vec<PlanOutput>,
}
