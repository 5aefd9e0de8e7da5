//! SQL as a distributed stream operator: [`sql`] declares a query over streams ([`Rows`]) and
//! static tables, run every batch across all workers and processes.
//!
//! The query is planned when it is declared, so a syntax error, an unknown table or column or a
//! type error is a declaration error that `start` returns with DataFusion's message. Every worker
//! plans it again once when the job starts, for the job's number of workers (one partition
//! each), and cuts the physical plan into stages at its exchanges ([`crate::stages`]). Each batch
//! then runs in rounds: the streams' rows go to the workers that read them, each round runs the
//! stages whose inputs have arrived and sends their output on through the kit's exchange, and
//! the last round's rows are the output stream's batch, spread over the workers as the plan's
//! last partitions were (all on the driver's worker after an ORDER BY or a global aggregate).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::{MemTable, TableType};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{common::collect, ExecutionPlan};
use datafusion::prelude::{SessionConfig, SessionContext};
use ember::{DStream, StreamingContext};
use serde::{Deserialize, Serialize};

use crate::rows::{rows_of, Row};
use crate::session::SqlSession;
use crate::stages::{InputExec, InputKey, Inputs, Output, Stages};
use crate::table::{Chunk, Rows};
use crate::SqlError;

/// Declares a SQL query over streams and static tables (see the module's documentation):
///
/// ```no_run
/// # use ember::prelude::*;
/// # use ember_sql::ToRows;
/// # let ssc = StreamingContext::new(Conf::new().master("local[2]"), Duration::from_secs(1)).unwrap();
/// # let words = ssc.queue_stream(vec![vec!["a".to_string()]], true);
/// let totals = ember_sql::sql(&ssc, "SELECT word, COUNT(*) AS total FROM words GROUP BY word")
///     .with_view("words", words.to_rows(["word"]))
///     .stream();
/// totals.print();
/// ```
pub fn sql<'a>(ssc: &'a StreamingContext, query: &str) -> Query<'a> {
    Query { ssc, query: query.to_string(), views: Vec::new(), tables: Vec::new(), udfs: Vec::new(), errors: Vec::new() }
}

/// A query being declared: name its streams with [`with_view`](Self::with_view) and its static
/// tables with [`with_table`](Self::with_table), then take its output with
/// [`stream`](Self::stream) or [`table`](Self::table).
pub struct Query<'a> {
    ssc: &'a StreamingContext,
    query: String,
    views: Vec<(String, Rows)>,
    tables: Vec<(String, StaticTable)>,
    udfs: Vec<crate::Udf>,
    errors: Vec<String>,
}

impl std::fmt::Debug for Query<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query").field("query", &self.query).finish()
    }
}

/// A table that does not change from batch to batch (reference data), loaded when it is
/// declared, in every process (so a file must be readable by all of them, as in Spark).
#[derive(Clone, Debug)]
pub struct StaticTable {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl StaticTable {
    fn load(
        what: &str,
        read: impl FnOnce(&Arc<SqlSession>) -> Result<crate::DataFrame, SqlError>,
    ) -> Result<StaticTable, SqlError> {
        let session = Arc::new(SqlSession::new());
        let df = read(&session).map_err(|e| SqlError::View(format!("cannot load the static table {what}: {e}")))?;
        let schema = df.schema();
        let batches = df.collect_batches()?;
        Ok(StaticTable { schema, batches })
    }

    /// A CSV file or directory (`header`: its first line names the columns).
    pub fn csv(path: &str, header: bool) -> Result<StaticTable, SqlError> {
        Self::load(path, |s| s.read_csv(path, header))
    }

    /// A JSON-lines file or directory.
    pub fn json(path: &str) -> Result<StaticTable, SqlError> {
        Self::load(path, |s| s.read_json(path))
    }

    /// A Parquet file or directory.
    pub fn parquet(path: &str) -> Result<StaticTable, SqlError> {
        Self::load(path, |s| s.read_parquet(path))
    }

    /// Records (Spark's `parallelize(..).toDF()`), columns named as
    /// [`ToRows::to_rows_serde`](crate::ToRows::to_rows_serde) names them, or by `names`.
    pub fn records<T: Serialize + serde::de::DeserializeOwned>(
        records: &[T],
        names: Option<&[&str]>,
    ) -> Result<StaticTable, SqlError> {
        Self::load("of records", |s| s.create_data_frame(records, names))
    }

    /// The rows of a DataFrame (a query over other static tables, say).
    pub fn of(df: &crate::DataFrame) -> Result<StaticTable, SqlError> {
        Ok(StaticTable { schema: df.schema(), batches: df.collect_batches()? })
    }

    /// The table's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// A stream's table to the planner: its scan reads what arrived for it ([`InputExec`]).
#[derive(Debug)]
struct ViewTable {
    index: usize,
    schema: SchemaRef,
    partitions: usize,
}

#[async_trait]
impl TableProvider for ViewTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(InputExec::view(self.index, &self.schema, self.partitions, projection.cloned())?))
    }
}

/// What the planner knows of a query: its text, its tables' schemas and the static tables' rows.
#[derive(Clone)]
struct Plan {
    query: String,
    views: Vec<(String, SchemaRef)>,
    tables: Vec<(String, StaticTable)>,
    udfs: Vec<crate::Udf>,
}

impl Plan {
    /// DataFusion's session for planning for `workers` partitions. Dynamic filters are off (they
    /// wait for every partition of a join in one process). A join of two streams is a
    /// partitioned hash join (both sides exchanged on the keys: a stream's size is unknown when
    /// the query is planned); a join with a static table of under 128 Ki rows and 1 MiB collects
    /// the table as its build side, which every worker reads from its own copy: a broadcast join
    /// that moves no row.
    fn context(&self, workers: usize, inputs: Option<Arc<Inputs>>) -> Result<SessionContext, SqlError> {
        let mut config = SessionConfig::new().with_target_partitions(workers.max(1)).with_information_schema(false);
        let o = &mut config.options_mut().optimizer;
        o.enable_dynamic_filter_pushdown = false;
        o.enable_join_dynamic_filter_pushdown = false;
        o.enable_topk_dynamic_filter_pushdown = false;
        o.enable_aggregate_dynamic_filter_pushdown = false;
        if let Some(inputs) = inputs {
            config = config.with_extension(inputs);
        }
        let ctx = SessionContext::new_with_config(config);
        for (i, (name, schema)) in self.views.iter().enumerate() {
            let t = ViewTable { index: i, schema: Arc::clone(schema), partitions: workers.max(1) };
            ctx.register_table(name.as_str(), Arc::new(t))?;
        }
        for (name, t) in &self.tables {
            let mem = MemTable::try_new(Arc::clone(&t.schema), vec![t.batches.clone()])?;
            ctx.register_table(name.as_str(), Arc::new(mem))?;
        }
        for udf in &self.udfs {
            ctx.register_udf(udf.0.clone());
        }
        Ok(ctx)
    }

    /// The physical plan for `workers` workers, and the output schema.
    fn physical(&self, ctx: &SessionContext, rt: &tokio::runtime::Runtime) -> Result<Arc<dyn ExecutionPlan>, SqlError> {
        rt.block_on(async {
            let state = ctx.state();
            let logical = state.create_logical_plan(&self.query).await?;
            let df = datafusion::dataframe::DataFrame::new(state, logical);
            Ok(df.create_physical_plan().await?)
        })
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime without I/O starts")
}

/// Rows of one input partition on their way to the worker that reads them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Part {
    dest: u32,
    key: InputKey,
    partition: u32,
    chunk: Chunk,
}

impl<'a> Query<'a> {
    /// Names a stream's table `name` in the query (Spark's `createOrReplaceTempView` on each
    /// batch's DataFrame). All streams of a query must have the same slide.
    pub fn with_view(mut self, name: &str, rows: Rows) -> Query<'a> {
        self.check_name("view", name);
        self.views.push((name.to_string(), rows));
        self
    }

    /// Names a static table `name` in the query.
    pub fn with_table(mut self, name: &str, table: StaticTable) -> Query<'a> {
        self.check_name("table", name);
        self.tables.push((name.to_string(), table));
        self
    }

    /// Makes a Rust function callable in the query, on every worker (Spark's
    /// `spark.udf.register`; see [`Udf`](crate::Udf)).
    pub fn with_udf(mut self, udf: crate::Udf) -> Query<'a> {
        self.udfs.push(udf);
        self
    }

    /// A name used twice (SQL names ignore case) is a declaration error.
    fn check_name(&mut self, what: &str, name: &str) {
        let taken = |n: &String| n.eq_ignore_ascii_case(name);
        if self.views.iter().any(|(n, _)| taken(n)) || self.tables.iter().any(|(n, _)| taken(n)) {
            self.errors.push(format!("the {what} name `{name}` is used twice in one query"));
        }
    }

    /// How the query runs on `workers` workers in all (Spark's `explain()`, for Ember's
    /// distribution): the stages DataFusion's plan is cut into, in the order they run, where
    /// each one's rows go (an exchange on keys, a gather onto one worker, or the query's rows),
    /// and each stage's DataFusion plan, whose inputs are the streams and the exchanges of
    /// the stages before it.
    ///
    /// ```
    /// use ember_sql::ToRows;
    /// # let ssc = ember::testing::manual_context("local[1]");
    /// let words = ssc.queue_stream(vec![vec!["a".to_string()]], true);
    /// let q = ember_sql::sql(&ssc, "SELECT word, COUNT(*) AS n FROM words GROUP BY word").with_view("words", words.to_rows(["word"]));
    /// let plan = q.explain(4)?;
    /// assert!(plan.contains("stage 0, round 1: to an exchange: Hash([word@0], 4)"), "{plan}");
    /// # Ok::<(), ember_sql::SqlError>(())
    /// ```
    pub fn explain(&self, workers: usize) -> Result<String, SqlError> {
        let workers = workers.max(1);
        let (_, stages) = self.stages(workers)?;
        let mut out = format!("== Ember SQL on {workers} workers: {} stages ==\n", stages.stages.len());
        let mut order: Vec<usize> = (0..stages.stages.len()).collect();
        order.sort_by_key(|&i| stages.stages[i].level);
        for i in order {
            let stage = &stages.stages[i];
            let to = match &stage.output {
                Output::Root => "to the query's rows".to_string(),
                Output::Repartition { partitioning, .. } => format!("to an exchange: {partitioning}"),
                Output::Gather { .. } => "gathered onto one worker".to_string(),
            };
            out.push_str(&format!("stage {i}, round {}: {to}\n", stage.level));
            let mut text = datafusion::physical_plan::displayable(stage.plan.as_ref()).indent(false).to_string();
            for (v, (name, _)) in self.views.iter().enumerate() {
                text = text.replace(&format!("InputExec: View({v})"), &format!("the stream `{name}`"));
            }
            for b in 0..stages.stages.len() {
                text = text.replace(&format!("InputExec: Boundary({b})"), &format!("the exchange out of stage {b}"));
            }
            for line in text.lines() {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// The query's output as a stream of table rows with its schema, for another query.
    pub fn table(self) -> Rows {
        let (stream, schema) = self.declare();
        Rows::with_schema(&stream, schema)
    }

    /// The query's output stream.
    pub fn stream(self) -> DStream<Row> {
        self.declare().0
    }

    /// The output schema, or why the query cannot run.
    fn check(&self) -> Result<SchemaRef, SqlError> {
        Ok(self.stages(2)?.0)
    }

    /// The output schema and the query's stages on `workers` workers.
    fn stages(&self, workers: usize) -> Result<(SchemaRef, Stages), SqlError> {
        if let Some(e) = self.errors.first() {
            return Err(SqlError::View(e.clone()));
        }
        let Some((_, first)) = self.views.first() else {
            return Err(SqlError::View("a streaming query needs at least one stream (with_view)".into()));
        };
        for (name, v) in &self.views[1..] {
            if v.stream.slide_duration() != first.stream.slide_duration() {
                return Err(SqlError::View(format!(
                    "the view `{name}` slides every {:?}, the view `{}` every {:?}: the streams of one query must have the same slide",
                    v.stream.slide_duration(),
                    self.views[0].0,
                    first.stream.slide_duration()
                )));
            }
        }
        let plan = self.plan();
        let rt = runtime();
        let ctx = plan.context(workers, None)?;
        let physical = plan.physical(&ctx, &rt).map_err(|e| SqlError::Plan(format!("{e}")))?;
        let schema = physical.schema();
        Ok((schema, Stages::new(physical, workers)?))
    }

    fn plan(&self) -> Plan {
        Plan {
            query: self.query.clone(),
            views: self.views.iter().map(|(n, r)| (n.clone(), Arc::clone(&r.schema))).collect(),
            tables: self.tables.clone(),
            udfs: self.udfs.clone(),
        }
    }

    fn declare(self) -> (DStream<Row>, SchemaRef) {
        let schema = match self.check() {
            Ok(s) => s,
            Err(e) => {
                let e = ember::Error::Declaration {
                    operation: "sql".into(),
                    message: format!("{e} (query: {})", self.query),
                };
                let empty = self.ssc.queue_stream::<Row>(Vec::<Vec<Row>>::new(), true);
                empty.declaration_error(e);
                return (empty, Arc::new(arrow::datatypes::Schema::empty()));
            }
        };
        let parts: Vec<DStream<Part>> = self
            .views
            .iter()
            .enumerate()
            .map(|(i, (_, r))| r.stream.map(move |chunk| Part { dest: 0, key: InputKey::View(i), partition: 0, chunk }))
            .collect();
        let input = parts[1..].iter().fold(parts[0].clone(), |acc, p| acc.union(p));
        let plan = self.plan();
        let stream = input.operator("sql", move |b| {
            let (worker, workers) = (b.worker(), b.workers());
            let run = Arc::new(Run::new(&plan, worker, workers));
            // Round 0: each stream's share goes to the workers that read it.
            let r = Arc::clone(&run);
            let mut s = b
                .per_batch("sql: route", move |_t, parts: Vec<Part>, out| {
                    for mut p in parts {
                        p.partition = worker as u32;
                        if let Ok(st) = &r.stages {
                            for dest in st.readers_of(p.key, worker) {
                                out.push(Part { dest: dest as u32, ..p.clone() });
                            }
                        }
                    }
                })
                .exchange_to_worker(|p: &Part| p.dest as usize);
            let levels = run.stages.as_ref().map_or(1, |s| s.levels);
            for level in 1..levels {
                let r = Arc::clone(&run);
                s = s
                    .per_batch("sql: stage", move |t, parts: Vec<Part>, out| r.round(t.millis(), level, parts, out))
                    .exchange_to_worker(|p: &Part| p.dest as usize);
            }
            let r = Arc::clone(&run);
            s.per_batch("sql: result", move |t, parts: Vec<Part>, out: &mut Vec<Row>| {
                r.last_round(t.millis(), levels, parts, out)
            })
        });
        (stream, schema)
    }
}

/// One worker's plan and the state it runs with.
struct Run {
    stages: Result<Stages, String>,
    worker: usize,
    inputs: Arc<Inputs>,
    task: Arc<TaskContext>,
    rt: tokio::runtime::Runtime,
}

impl Run {
    fn new(plan: &Plan, worker: usize, workers: usize) -> Run {
        let inputs = Arc::new(Inputs::default());
        let rt = runtime();
        let planned = plan
            .context(workers, Some(Arc::clone(&inputs)))
            .and_then(|ctx| Ok((plan.physical(&ctx, &rt)?, ctx.task_ctx())));
        let (stages, task) = match planned {
            Ok((physical, task)) => (Stages::new(physical, workers).map_err(|e| e.to_string()), task),
            Err(e) => (Err(e.to_string()), SessionContext::new().task_ctx()),
        };
        Run { stages, worker, inputs, task, rt }
    }

    fn stages(&self) -> &Stages {
        match &self.stages {
            Ok(s) => s,
            // Planned the same way at declaration, where an error stops the job from starting.
            Err(e) => panic!("the SQL query could not be planned on this worker: {e}"),
        }
    }

    /// Keeps what arrived, runs the stages of `level` and sends their output on.
    fn round(&self, t: u64, level: usize, parts: Vec<Part>, out: &mut Vec<Part>) {
        let stages = self.stages();
        self.arrive(t, parts);
        for (s, stage) in stages.stages.iter().enumerate().filter(|(_, st)| st.level == level) {
            for (p, batches) in self.execute(stages, s) {
                let mut send = |key: InputKey, q: usize, batch: RecordBatch| {
                    for dest in stages.readers_of(key, q) {
                        out.push(Part { dest: dest as u32, key, partition: q as u32, chunk: Chunk(batch.clone()) });
                    }
                };
                match &stage.output {
                    Output::Gather { boundary } => {
                        batches.into_iter().for_each(|b| send(InputKey::Boundary(*boundary), p, b))
                    }
                    Output::Repartition { boundary, .. } => {
                        let mut partitioner =
                            fail(stages.partitioner(s, p)).expect("a repartition stage has a partitioner");
                        for b in batches {
                            fail(partitioner.partition(b, |q, part| {
                                send(InputKey::Boundary(*boundary), q, part);
                                Ok(())
                            }));
                        }
                    }
                    Output::Root => {}
                }
            }
        }
    }

    fn last_round(&self, t: u64, level: usize, parts: Vec<Part>, out: &mut Vec<Row>) {
        let stages = self.stages();
        self.arrive(t, parts);
        let root = stages.stages.len() - 1;
        debug_assert_eq!(stages.stages[root].level, level);
        for (_, batches) in self.execute(stages, root) {
            out.extend(rows_of(&batches));
        }
        self.inputs.clear(t);
    }

    fn arrive(&self, t: u64, parts: Vec<Part>) {
        for p in parts {
            self.inputs.add(t, p.key, p.partition as usize, p.chunk.0);
        }
        self.inputs.set_now(t);
    }

    /// Runs this worker's partitions of stage `s`: the output batches of each.
    fn execute(&self, stages: &Stages, s: usize) -> Vec<(usize, Vec<RecordBatch>)> {
        let plan = fail(reset_plan_states(Arc::clone(&stages.stages[s].plan)));
        let n = plan.properties().partitioning.partition_count();
        (0..n)
            .filter(|p| p % stages.workers == self.worker)
            .map(|p| {
                // Some operators start tasks when they are executed: inside the runtime.
                let batches = self.rt.block_on(async { collect(plan.execute(p, Arc::clone(&self.task))?).await });
                (p, fail(batches))
            })
            .collect()
    }
}

/// An execution error fails the batch: the operator panics with DataFusion's message, which Ember
/// reports as the batch's error (no output runs for it, the job stops).
fn fail<T>(r: DfResult<T>) -> T {
    r.unwrap_or_else(|e| panic!("the SQL query failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    fn stages_of(query: &str, workers: usize) -> Stages {
        let schema = |cols: &[&str]| -> SchemaRef {
            Arc::new(Schema::new(cols.iter().map(|c| Field::new(*c, DataType::Utf8, false)).collect::<Vec<_>>()))
        };
        let pages = schema(&["page", "category"]);
        let static_rows = RecordBatch::try_new(
            Arc::clone(&pages),
            vec![
                Arc::new(arrow::array::StringArray::from(vec!["home"])),
                Arc::new(arrow::array::StringArray::from(vec!["main"])),
            ],
        )
        .unwrap();
        let plan = Plan {
            query: query.to_string(),
            views: vec![("clicks".into(), schema(&["user", "page"])), ("orders".into(), schema(&["user", "item"]))],
            tables: vec![("pages".into(), StaticTable { schema: pages, batches: vec![static_rows] })],
            udfs: Vec::new(),
        };
        let rt = runtime();
        let ctx = plan.context(workers, None).unwrap();
        Stages::new(plan.physical(&ctx, &rt).unwrap(), workers).unwrap()
    }

    fn shape(s: &Stages) -> Vec<(usize, &'static str, usize)> {
        s.stages
            .iter()
            .map(|st| {
                let out = match st.output {
                    Output::Root => "root",
                    Output::Repartition { .. } => "exchange",
                    Output::Gather { .. } => "gather",
                };
                (st.level, out, st.plan.properties().partitioning.partition_count())
            })
            .collect()
    }

    #[test]
    fn a_group_by_is_a_partial_aggregate_an_exchange_and_a_final_aggregate() {
        let s = stages_of("SELECT page, COUNT(*) AS n FROM clicks GROUP BY page", 3);
        assert_eq!(shape(&s), [(1, "exchange", 3), (2, "root", 3)]);
        let below = datafusion::physical_plan::displayable(s.stages[0].plan.as_ref()).indent(false).to_string();
        let above = datafusion::physical_plan::displayable(s.stages[1].plan.as_ref()).indent(false).to_string();
        assert!(below.contains("mode=Partial") && above.contains("mode=FinalPartitioned"), "{below}\n{above}");
        // Each worker's share of the stream stays on its worker; partition q of the exchange
        // goes to worker q.
        for w in 0..3 {
            assert_eq!(s.readers_of(InputKey::View(0), w).collect::<Vec<_>>(), [w]);
            assert_eq!(s.readers_of(InputKey::Boundary(0), w).collect::<Vec<_>>(), [w]);
        }
    }

    #[test]
    fn a_join_of_two_streams_exchanges_both_sides_on_the_keys() {
        let s = stages_of("SELECT c.page, o.item FROM clicks c JOIN orders o ON c.user = o.user", 2);
        assert_eq!(shape(&s), [(1, "exchange", 2), (1, "exchange", 2), (2, "root", 2)]);
    }

    #[test]
    fn a_join_with_a_small_static_table_moves_no_row() {
        let s = stages_of("SELECT c.user, p.category FROM clicks c JOIN pages p ON c.page = p.page", 3);
        assert_eq!(shape(&s), [(1, "root", 3)], "every worker joins its share with its own copy of the table");
    }

    #[test]
    fn order_by_and_limit_gather_on_one_worker() {
        let s = stages_of("SELECT user FROM clicks ORDER BY user LIMIT 3", 3);
        assert_eq!(shape(&s), [(1, "gather", 3), (2, "root", 1)]);
        assert_eq!(s.readers_of(InputKey::Boundary(0), 2).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn explain_prints_the_stages_in_the_order_they_run() {
        let ssc = ember::testing::manual_context("local[1]");
        let rows = |names: [&str; 2]| {
            crate::ToRows::to_rows(&ssc.queue_stream(vec![vec![("a".to_string(), "b".to_string())]], true), names)
        };
        let q = sql(&ssc, "SELECT c.page, COUNT(*) AS n FROM clicks c JOIN orders o ON c.user = o.user GROUP BY c.page ORDER BY n DESC LIMIT 2")
            .with_view("clicks", rows(["user", "page"]))
            .with_view("orders", rows(["user", "item"]));
        let want = "\
== Ember SQL on 3 workers: 5 stages ==
stage 0, round 1: to an exchange: Hash([user@0], 3)
  the stream `clicks`
stage 1, round 1: to an exchange: Hash([user@0], 3)
  the stream `orders`
stage 2, round 2: to an exchange: Hash([page@0], 3)
  AggregateExec: mode=Partial, gby=[page@0 as page], aggr=[count(Int64(1))]
    HashJoinExec: mode=Partitioned, join_type=Inner, on=[(user@0, user@0)], projection=[page@1]
      the exchange out of stage 0
      the exchange out of stage 1
stage 3, round 3: gathered onto one worker
  ProjectionExec: expr=[page@0 as page, count(Int64(1))@1 as n]
    SortExec: TopK(fetch=2), expr=[count(Int64(1))@1 DESC], preserve_partitioning=[true]
      AggregateExec: mode=FinalPartitioned, gby=[page@0 as page], aggr=[count(Int64(1))]
        the exchange out of stage 2
stage 4, round 4: to the query's rows
  SortPreservingMergeExec: [n@1 DESC], fetch=2
    the exchange out of stage 3
";
        assert_eq!(q.explain(3).unwrap(), want);
        let bad = sql(&ssc, "SELECT nothing FROM clicks").with_view("clicks", rows(["user", "page"]));
        let e = bad.explain(3).unwrap_err().to_string();
        assert!(e.contains("nothing"), "{e}");
    }

    #[test]
    fn one_worker_runs_the_whole_plan_in_one_stage() {
        let s = stages_of("SELECT page, COUNT(*) AS n FROM clicks GROUP BY page ORDER BY n", 1);
        assert_eq!(shape(&s), [(1, "root", 1)]);
    }
}
