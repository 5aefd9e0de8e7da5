//! A DataFusion physical plan cut into stages that run on Ember's workers.
//!
//! DataFusion plans a query for `target_partitions` partitions and moves rows between partitions
//! at three kinds of node: `RepartitionExec` (hash, round-robin or range: the shuffle between a
//! partial and a final aggregate, or before the two sides of a join), `CoalescePartitionsExec`
//! and `SortPreservingMergeExec` (everything to one partition: a final aggregate without keys,
//! ORDER BY, LIMIT). Ember plans with one partition per worker of the job and cuts the plan at
//! exactly those nodes: each becomes a boundary, a stage's output crosses it through the kit's
//! exchange, and the stage above reads what arrived from an `InputExec` leaf. Nothing else of
//! the plan changes, so every operator DataFusion has runs as DataFusion wrote it.
//!
//! Where rows go follows from the plan, not from rules per operator: partition `p` of a stage
//! runs on worker `p mod workers`, and `reads` says which input partitions each stage
//! partition reads; a boundary's partition is sent to every worker that runs a stage partition
//! reading it. A shuffle's partition is read by one worker; a gathered input by the worker of the
//! single partition above it, or by all of them when the stage above has one partition per worker
//! (the build side of a broadcast join). A stream's own rows (a view's partition `w` starts on
//! worker `w`) are routed the same way.
//!
//! A partition that crossed an exchange holds what every worker sent it one after the other, so
//! where the plan counts on an exchange keeping its input's order, a sort of the partition is put
//! back above it. Joins whose build side remembers its matches across partitions (a left or full
//! join collecting its left side) get their probe side gathered into one partition, so that one
//! worker sees every match.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{replace_children_if_necessary, Boundedness, EmissionType};
use datafusion::physical_plan::joins::{HashJoinExec, NestedLoopJoinExec, PartitionMode};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::repartition::{BatchPartitioner, RepartitionExec};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream,
};

/// What an `InputExec` leaf reads: a stream's rows (view `i` of the query) or a boundary's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum InputKey {
    /// The rows of the query's `i`-th stream.
    View(usize),
    /// What crossed boundary `b` (the output of stage `b`).
    Boundary(usize),
}

/// The batches that arrived at this worker, by batch time, input and partition. A worker's task
/// context carries its own; a stage reads those of the batch time it runs for (`now`).
#[derive(Default, Debug)]
pub(crate) struct Inputs {
    arrived: Mutex<HashMap<(u64, InputKey, usize), Vec<RecordBatch>>>,
    now: Mutex<u64>,
}

impl Inputs {
    pub(crate) fn add(&self, t: u64, key: InputKey, partition: usize, batch: RecordBatch) {
        ember::clock::lock(&self.arrived).entry((t, key, partition)).or_default().push(batch);
    }

    /// Stages run from now on read batch time `t`'s inputs.
    pub(crate) fn set_now(&self, t: u64) {
        *ember::clock::lock(&self.now) = t;
    }

    /// Forgets batch time `t`'s inputs.
    pub(crate) fn clear(&self, t: u64) {
        ember::clock::lock(&self.arrived).retain(|k, _| k.0 != t);
    }

    fn get(&self, key: InputKey, partition: usize) -> Vec<RecordBatch> {
        let t = *ember::clock::lock(&self.now);
        ember::clock::lock(&self.arrived).get(&(t, key, partition)).cloned().unwrap_or_default()
    }
}

/// A leaf reading what arrived for one input (see the module's documentation). Its properties
/// are those of the node it stands for, so the plan above it is unchanged.
#[derive(Debug)]
pub(crate) struct InputExec {
    key: InputKey,
    props: Arc<PlanProperties>,
    projection: Option<Vec<usize>>,
}

impl InputExec {
    /// A stream's rows: `partitions` partitions (one per worker) of `schema`, projected.
    pub(crate) fn view(
        view: usize,
        schema: &SchemaRef,
        partitions: usize,
        projection: Option<Vec<usize>>,
    ) -> DfResult<Self> {
        let projected = match &projection {
            Some(p) => Arc::new(schema.project(p)?),
            None => Arc::clone(schema),
        };
        let props = PlanProperties::new(
            datafusion::physical_expr::EquivalenceProperties::new(projected),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(InputExec { key: InputKey::View(view), props: Arc::new(props), projection })
    }

    fn boundary(b: usize, stands_for: &Arc<dyn ExecutionPlan>) -> Self {
        InputExec { key: InputKey::Boundary(b), props: Arc::clone(stands_for.properties()), projection: None }
    }
}

impl DisplayAs for InputExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "InputExec: {:?}", self.key)
    }
}

impl ExecutionPlan for InputExec {
    fn name(&self) -> &str {
        "InputExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let inputs = context.session_config().get_extension::<Inputs>().unwrap_or_default();
        let mut batches = inputs.get(self.key, partition);
        if let Some(p) = &self.projection {
            batches = batches.iter().map(|b| b.project(p)).collect::<Result<_, _>>()?;
        }
        Ok(Box::pin(MemoryStream::try_new(batches, self.schema(), None)?))
    }
}

/// Where a stage's output goes.
#[derive(Debug)]
pub(crate) enum Output {
    /// The query's result.
    Root,
    /// Partitioned by DataFusion's partitioner into a boundary's partitions.
    Repartition { boundary: usize, partitioning: Partitioning },
    /// Partition `p` of the stage is partition `p` of the boundary (gathered by the node above).
    Gather { boundary: usize },
}

/// One stage: a plan whose leaves are its inputs, its output, and when it runs.
#[derive(Debug)]
pub(crate) struct Stage {
    pub(crate) plan: Arc<dyn ExecutionPlan>,
    pub(crate) output: Output,
    /// Stages of level `k` run in the `k`-th round of a batch, after their inputs' rounds.
    pub(crate) level: usize,
}

/// A plan cut into stages, with where every input partition is read.
#[derive(Debug)]
pub(crate) struct Stages {
    pub(crate) stages: Vec<Stage>,
    /// For each input partition, the workers that read it.
    pub(crate) readers: BTreeMap<(InputKey, usize), BTreeSet<usize>>,
    pub(crate) workers: usize,
    pub(crate) levels: usize,
}

fn partitions(plan: &Arc<dyn ExecutionPlan>) -> usize {
    plan.properties().partitioning.partition_count()
}

/// Join types whose build side (the left, collected once) remembers which of its rows matched
/// over all probe partitions: run with partitions spread over workers, each would see only its
/// own matches.
fn tracks_build_side(t: &JoinType) -> bool {
    matches!(t, JoinType::Left | JoinType::Full | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark)
}

/// Makes sure no node needs all of its partitions in one process: a collected-left join that
/// tracks its build side gets its probe side gathered into one partition.
fn single_process_joins(plan: Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        let right = if let Some(j) = node.downcast_ref::<HashJoinExec>() {
            (j.mode == PartitionMode::CollectLeft && tracks_build_side(j.join_type())).then(|| Arc::clone(j.right()))
        } else if let Some(j) = node.downcast_ref::<NestedLoopJoinExec>() {
            tracks_build_side(j.join_type()).then(|| Arc::clone(j.right()))
        } else {
            None
        };
        match right {
            Some(r) if partitions(&r) > 1 => {
                let left = Arc::clone(node.children()[0]);
                let gathered: Arc<dyn ExecutionPlan> = Arc::new(CoalescePartitionsExec::new(r));
                Ok(Transformed::yes(replace_children_if_necessary(node, vec![left, gathered])?))
            }
            _ => Ok(Transformed::no(node)),
        }
    })
    .map(|t| t.data)
}

impl Stages {
    /// Cuts `plan` (planned for `workers` partitions) into stages.
    pub(crate) fn new(plan: Arc<dyn ExecutionPlan>, workers: usize) -> DfResult<Stages> {
        let plan = single_process_joins(plan)?;
        let mut stages = Vec::new();
        let root = cut(plan, &mut stages)?;
        stages.push(Stage { plan: root, output: Output::Root, level: 0 });
        // Readers: every partition of every stage runs on worker p mod workers. A stage runs
        // after the stages whose boundaries it reads; streams arrive before the first round.
        let mut readers: BTreeMap<(InputKey, usize), BTreeSet<usize>> = BTreeMap::new();
        for s in 0..stages.len() {
            let mut level = 1;
            for p in 0..partitions(&stages[s].plan) {
                let mut read = BTreeSet::new();
                reads(&stages[s].plan, p, &mut read);
                for (key, q) in read {
                    readers.entry((key, q)).or_default().insert(p % workers);
                    if let InputKey::Boundary(b) = key {
                        level = level.max(stages[b].level + 1);
                    }
                }
            }
            stages[s].level = level;
        }
        let levels = stages.last().map_or(1, |s| s.level);
        Ok(Stages { stages, readers, workers, levels })
    }

    /// The workers reading partition `q` of `key`.
    pub(crate) fn readers_of(&self, key: InputKey, q: usize) -> impl Iterator<Item = usize> + '_ {
        self.readers.get(&(key, q)).into_iter().flatten().copied()
    }

    /// A partitioner for the output of stage `s` (a repartition boundary), from input partition `p`.
    pub(crate) fn partitioner(&self, s: usize, p: usize) -> DfResult<Option<BatchPartitioner>> {
        let stage = &self.stages[s];
        match &stage.output {
            Output::Repartition { partitioning, .. } => Ok(Some(BatchPartitioner::try_new(
                partitioning.clone(),
                Default::default(),
                p,
                partitions(&stage.plan),
            )?)),
            _ => Ok(None),
        }
    }
}

/// Replaces every boundary under `plan` with an [`InputExec`], pushing the stages below into
/// `stages` (a stage's index is its boundary's number).
fn cut(plan: Arc<dyn ExecutionPlan>, stages: &mut Vec<Stage>) -> DfResult<Arc<dyn ExecutionPlan>> {
    if let Some(r) = plan.downcast_ref::<RepartitionExec>() {
        let below = cut(Arc::clone(r.input()), stages)?;
        let b = stages.len();
        stages.push(Stage {
            plan: below,
            output: Output::Repartition { boundary: b, partitioning: r.partitioning().clone() },
            level: 0,
        });
        let leaf: Arc<dyn ExecutionPlan> = Arc::new(InputExec::boundary(b, &plan));
        // A partition of an exchange holds what every worker sent it, one after the other: an
        // order the plan counts on is made again.
        if let (true, Some(ordering)) = (r.preserve_order(), plan.properties().output_ordering()) {
            return Ok(Arc::new(SortExec::new(ordering.clone(), leaf).with_preserve_partitioning(true)));
        }
        return Ok(leaf);
    }
    if plan.is::<CoalescePartitionsExec>() || plan.is::<SortPreservingMergeExec>() {
        let child = Arc::clone(plan.children()[0]);
        let below = cut(Arc::clone(&child), stages)?;
        let b = stages.len();
        stages.push(Stage { plan: below, output: Output::Gather { boundary: b }, level: 0 });
        let leaf: Arc<dyn ExecutionPlan> = Arc::new(InputExec::boundary(b, &child));
        return replace_children_if_necessary(plan, vec![leaf]);
    }
    let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
    if children.is_empty() {
        return Ok(plan);
    }
    let cut_children = children.into_iter().map(|c| cut(c, stages)).collect::<DfResult<Vec<_>>>()?;
    replace_children_if_necessary(plan, cut_children)
}

/// The input partitions that partition `p` of `plan` reads.
pub(crate) fn reads(plan: &Arc<dyn ExecutionPlan>, p: usize, out: &mut BTreeSet<(InputKey, usize)>) {
    if let Some(i) = plan.downcast_ref::<InputExec>() {
        out.insert((i.key, p));
        return;
    }
    let children = plan.children();
    if plan.is::<CoalescePartitionsExec>() || plan.is::<SortPreservingMergeExec>() {
        for c in children {
            for q in 0..partitions(c) {
                reads(c, q, out);
            }
        }
        return;
    }
    if plan.is::<UnionExec>() {
        let mut offset = 0;
        for c in children {
            let n = partitions(c);
            if p < offset + n {
                reads(c, p - offset, out);
                return;
            }
            offset += n;
        }
        return;
    }
    let mine = partitions(plan);
    for c in children {
        let n = partitions(c);
        if n == mine {
            reads(c, p, out);
        } else if n == 1 {
            reads(c, 0, out);
        } else {
            // A node that reads its child's partitions otherwise: assume it reads them all.
            for q in 0..n {
                reads(c, q, out);
            }
        }
    }
}
