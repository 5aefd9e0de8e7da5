//! Spark's per-batch pattern: a [`SqlSession`] per streaming context (Spark's lazily created
//! `SparkSession`), [`DataFrame`]s made from a batch, temporary views and `sql`.

use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::JoinType;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{
    col, CsvReadOptions, Expr, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext,
};
use ember::{Conf, DStream, OutputResult, StreamingContext, Time};
use serde::Serialize;

use crate::rows::{rows_of, Row};
use crate::show::show_string;
use crate::table::{Chunk, Encoder, Rows};
use crate::SqlError;

/// A SQL session: DataFusion's context and the runtime its calls run on. One per streaming
/// context, created on first use ([`SqlSession::get_or_create`]), as Spark's
/// `SparkSession.builder.getOrCreate()`; after a recovery from a checkpoint the new context gets a
/// new one on first use, so temporary views do not outlive their process (as in Spark).
pub struct SqlSession {
    ctx: SessionContext,
    rt: tokio::runtime::Runtime,
    /// The context's configuration: where `df.write()` finds an object store's settings.
    conf: Conf,
}

impl std::fmt::Debug for SqlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSession").field("session_id", &self.ctx.session_id()).finish()
    }
}

/// The context's session, created on first use.
#[derive(Default)]
pub(crate) struct SessionCell(OnceLock<Arc<SqlSession>>);

impl SessionCell {
    fn get(&self, conf: &Conf) -> Arc<SqlSession> {
        Arc::clone(self.0.get_or_init(|| Arc::new(SqlSession::with_conf(conf.clone()))))
    }
}

impl Default for SqlSession {
    fn default() -> Self {
        Self::new()
    }
}

impl SqlSession {
    /// A session of its own (most jobs want [`get_or_create`](Self::get_or_create)).
    pub fn new() -> SqlSession {
        SqlSession::with_conf(Conf::new())
    }

    /// A session of its own whose writes open storage with `conf` (an object store's settings).
    pub fn with_conf(conf: Conf) -> SqlSession {
        // A batch is small and the session runs on one worker: no repartitioning within it.
        let config = SessionConfig::new().with_target_partitions(1).with_information_schema(true);
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime without I/O starts");
        // Spark's `read.parquet(dir)` lists the directory at every call: no cached listings,
        // statistics or footers, so that files written since are seen.
        let caches = CacheManagerConfig::default()
            .with_list_files_cache_limit(0)
            .with_file_statistics_cache_limit(0)
            .with_metadata_cache_limit(0);
        let runtime =
            RuntimeEnvBuilder::new().with_cache_manager(caches).build_arc().expect("a runtime without limits");
        SqlSession { ctx: SessionContext::new_with_config_rt(config, runtime), rt, conf }
    }

    /// The session of `ssc`, created on its first use.
    pub fn get_or_create(ssc: &StreamingContext) -> Arc<SqlSession> {
        ssc.extension::<SessionCell>().get(ssc.conf())
    }

    /// The configuration writes open storage with (the context's, for
    /// [`get_or_create`](Self::get_or_create)).
    pub fn conf(&self) -> &Conf {
        &self.conf
    }

    /// DataFusion's session context underneath, for what this API does not cover.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs an async DataFusion call to its end.
    pub fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Runs a SQL query (Spark's `spark.sql`). Views and tables it names must be registered.
    pub fn sql(self: &Arc<Self>, query: &str) -> Result<DataFrame, SqlError> {
        let df = self.block(self.ctx.sql(query))?;
        Ok(self.wrap(df))
    }

    /// The registered table or view `name`.
    pub fn table(self: &Arc<Self>, name: &str) -> Result<DataFrame, SqlError> {
        let df = self.block(self.ctx.table(name))?;
        Ok(self.wrap(df))
    }

    /// A DataFrame of `records` (Spark's `createDataFrame`), columns as in
    /// [`ToRows::to_rows_serde`](crate::ToRows::to_rows_serde) or named by `names`.
    pub fn create_data_frame<T: Serialize + serde::de::DeserializeOwned>(
        self: &Arc<Self>,
        records: &[T],
        names: Option<&[&str]>,
    ) -> Result<DataFrame, SqlError> {
        let encoder =
            Encoder::of::<T>(names.map(|n| n.iter().map(|s| s.to_string()).collect())).map_err(SqlError::Schema)?;
        let (batch, skipped, first) = encoder.encode(records);
        if skipped > 0 {
            return Err(SqlError::Schema(format!(
                "{skipped} records do not fit the schema; the first: {}",
                first.unwrap_or_default()
            )));
        }
        self.read_batch(batch)
    }

    /// A DataFrame of an Arrow record batch.
    pub fn read_batch(self: &Arc<Self>, batch: RecordBatch) -> Result<DataFrame, SqlError> {
        Ok(self.wrap(self.ctx.read_batch(batch)?))
    }

    /// A DataFrame of a CSV file, or of the files ending `.csv` in a directory (`header`: the
    /// first line names the columns).
    pub fn read_csv(self: &Arc<Self>, path: &str, header: bool) -> Result<DataFrame, SqlError> {
        let ext = extension_of(path, ".csv");
        let df = self.block(self.ctx.read_csv(path, CsvReadOptions::new().has_header(header).file_extension(&ext)))?;
        Ok(self.wrap(df))
    }

    /// A DataFrame of a JSON-lines file, or of the files ending `.json` in a directory.
    pub fn read_json(self: &Arc<Self>, path: &str) -> Result<DataFrame, SqlError> {
        let ext = extension_of(path, ".json");
        let df = self.block(self.ctx.read_json(path, JsonReadOptions::default().file_extension(&ext)))?;
        Ok(self.wrap(df))
    }

    /// A DataFrame of a Parquet file, or of the files ending `.parquet` in a directory (what
    /// [`Rows::save_as_parquet_files`] writes).
    pub fn read_parquet(self: &Arc<Self>, path: &str) -> Result<DataFrame, SqlError> {
        let ext = extension_of(path, ".parquet");
        let df = self.block(self.ctx.read_parquet(path, ParquetReadOptions::default().file_extension(&ext)))?;
        Ok(self.wrap(df))
    }

    /// Makes a Rust function callable in this session's SQL (Spark's `spark.udf.register`); a
    /// function of the same name is replaced.
    pub fn register_udf(&self, udf: crate::Udf) {
        self.ctx.register_udf(udf.0);
    }

    /// Drops the temporary view or table `name`; `true` if there was one.
    pub fn drop_temp_view(&self, name: &str) -> Result<bool, SqlError> {
        Ok(self.ctx.deregister_table(name)?.is_some())
    }

    fn wrap(self: &Arc<Self>, df: datafusion::dataframe::DataFrame) -> DataFrame {
        DataFrame { df, session: Arc::clone(self) }
    }
}

/// The extension files are read by: a file's own (`data.jsonl`), or `default` for a directory.
fn extension_of(path: &str, default: &str) -> String {
    let p = std::path::Path::new(path);
    match p.extension() {
        Some(e) if !p.is_dir() => format!(".{}", e.to_string_lossy()),
        _ if !p.is_dir() => String::new(),
        _ => default.to_string(),
    }
}

/// A table of one batch (or of a file, or a query's result), as Spark's `DataFrame`: lazy until
/// an action ([`collect`](Self::collect), [`count`](Self::count), [`show`](Self::show)) runs it.
/// Methods that take text take Spark SQL's expression syntax (`"total > 1"`, `"count(*) AS n"`).
#[derive(Clone)]
pub struct DataFrame {
    df: datafusion::dataframe::DataFrame,
    session: Arc<SqlSession>,
}

impl std::fmt::Debug for DataFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataFrame").field("columns", &self.columns()).finish()
    }
}

/// Splits `expr AS name` (any case) into the expression and its alias.
fn split_alias(text: &str) -> (&str, Option<&str>) {
    let lower = text.to_ascii_lowercase();
    match lower.rfind(" as ") {
        Some(i) if !text[i + 4..].trim().is_empty() && !text[i + 4..].contains(')') => {
            (text[..i].trim(), Some(text[i + 4..].trim().trim_matches('`').trim_matches('"')))
        }
        _ => (text.trim(), None),
    }
}

impl DataFrame {
    /// The session it belongs to (Spark's `df.sparkSession`).
    pub fn session(&self) -> &Arc<SqlSession> {
        &self.session
    }

    /// DataFusion's DataFrame underneath.
    pub fn inner(&self) -> &datafusion::dataframe::DataFrame {
        &self.df
    }

    /// The column names.
    pub fn columns(&self) -> Vec<String> {
        self.df.schema().fields().iter().map(|f| f.name().clone()).collect()
    }

    /// The Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.df.schema().as_arrow().clone())
    }

    fn with(&self, df: datafusion::dataframe::DataFrame) -> DataFrame {
        DataFrame { df, session: Arc::clone(&self.session) }
    }

    fn expr(&self, text: &str) -> Result<Expr, SqlError> {
        let (e, alias) = split_alias(text);
        let e = self.df.parse_sql_expr(e)?;
        Ok(match alias {
            Some(a) => e.alias(a),
            None => e,
        })
    }

    /// Registers this DataFrame as the temporary view `name`, replacing a view of that name
    /// (Spark's `createOrReplaceTempView`).
    pub fn create_or_replace_temp_view(&self, name: &str) -> Result<(), SqlError> {
        self.session.ctx.deregister_table(name)?;
        self.session.ctx.register_table(name, self.df.clone().into_view())?;
        Ok(())
    }

    /// Registers this DataFrame as the temporary view `name`; an error if one exists (Spark's
    /// `createTempView`).
    pub fn create_temp_view(&self, name: &str) -> Result<(), SqlError> {
        if self.session.ctx.table_exist(name)? {
            return Err(SqlError::View(format!("a temporary view named `{name}` already exists")));
        }
        self.session.ctx.register_table(name, self.df.clone().into_view())?;
        Ok(())
    }

    /// The columns or expressions given (Spark's `select` / `selectExpr`).
    pub fn select(&self, exprs: &[&str]) -> Result<DataFrame, SqlError> {
        let exprs = exprs.iter().map(|e| self.expr(e)).collect::<Result<Vec<_>, _>>()?;
        Ok(self.with(self.df.clone().select(exprs)?))
    }

    /// The rows for which `condition` holds (Spark's `filter` / `where`).
    pub fn filter(&self, condition: &str) -> Result<DataFrame, SqlError> {
        let e = self.expr(condition)?;
        Ok(self.with(self.df.clone().filter(e)?))
    }

    /// Groups by the columns or expressions given, for [`GroupedData::agg`] (Spark's `groupBy`).
    pub fn group_by(&self, exprs: &[&str]) -> Result<GroupedData, SqlError> {
        let keys = exprs.iter().map(|e| self.expr(e)).collect::<Result<Vec<_>, _>>()?;
        Ok(GroupedData { df: self.clone(), keys })
    }

    /// Joins `right` on the columns `on`, present in both (Spark's `join(right, usingColumns,
    /// joinType)`): the result has each key column once, then the other columns of the left and
    /// of the right. `how`: `inner`, `left`, `right`, `full` (also `left_outer`, `outer`, …),
    /// `left_semi`, `left_anti`.
    pub fn join(&self, right: &DataFrame, on: &[&str], how: &str) -> Result<DataFrame, SqlError> {
        let jt = match how.to_ascii_lowercase().replace('_', "").as_str() {
            "inner" => JoinType::Inner,
            "left" | "leftouter" => JoinType::Left,
            "right" | "rightouter" => JoinType::Right,
            "full" | "outer" | "fullouter" => JoinType::Full,
            "leftsemi" | "semi" => JoinType::LeftSemi,
            "leftanti" | "anti" => JoinType::LeftAnti,
            other => {
                return Err(SqlError::View(format!(
                    "unknown join type `{other}`: expected inner, left, right, full, left_semi or left_anti"
                )))
            }
        };
        let l = self.df.clone().alias("__l")?;
        let r = right.df.clone().alias("__r")?;
        let joined = l.join(r, jt, on, on, None)?;
        let mut out: Vec<Expr> = on
            .iter()
            .map(|k| {
                let (lk, rk) = (col(format!("__l.{k}")), col(format!("__r.{k}")));
                match jt {
                    JoinType::Right => rk.alias(*k),
                    JoinType::Full => datafusion::functions::expr_fn::coalesce(vec![lk, rk]).alias(*k),
                    _ => lk.alias(*k),
                }
            })
            .collect();
        let others = |df: &DataFrame, q: &str| -> Vec<Expr> {
            df.columns()
                .into_iter()
                .filter(|c| !on.contains(&c.as_str()))
                .map(|c| col(format!("{q}.{c}")).alias(c))
                .collect()
        };
        out.extend(others(self, "__l"));
        if !matches!(jt, JoinType::LeftSemi | JoinType::LeftAnti) {
            out.extend(others(right, "__r"));
        }
        Ok(self.with(joined.select(out)?))
    }

    /// Sorted by the columns or expressions given, each optionally followed by `ASC` or `DESC`
    /// (Spark's `orderBy` / `sort`; nulls first when ascending, last when descending, as Spark).
    pub fn order_by(&self, exprs: &[&str]) -> Result<DataFrame, SqlError> {
        let mut sorts = Vec::new();
        for e in exprs {
            let t = e.trim();
            let lower = t.to_ascii_lowercase();
            let (text, asc) = if lower.ends_with(" desc") {
                (&t[..t.len() - 5], false)
            } else if lower.ends_with(" asc") {
                (&t[..t.len() - 4], true)
            } else {
                (t, true)
            };
            sorts.push(self.expr(text)?.sort(asc, asc));
        }
        Ok(self.with(self.df.clone().sort(sorts)?))
    }

    /// The first `n` rows.
    pub fn limit(&self, n: usize) -> Result<DataFrame, SqlError> {
        Ok(self.with(self.df.clone().limit(0, Some(n))?))
    }

    /// Runs the plan and returns its record batches.
    pub fn collect_batches(&self) -> Result<Vec<RecordBatch>, SqlError> {
        Ok(self.session.block(self.df.clone().collect())?)
    }

    /// Runs the plan and returns its rows (Spark's `collect`).
    pub fn collect(&self) -> Result<Vec<Row>, SqlError> {
        Ok(rows_of(&self.collect_batches()?))
    }

    /// Runs the plan and returns its rows as records of `T` (Spark's `as[T].collect()`).
    pub fn collect_as<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>, SqlError> {
        self.collect()?.iter().map(Row::to).collect()
    }

    /// The number of rows.
    pub fn count(&self) -> Result<usize, SqlError> {
        Ok(self.session.block(self.df.clone().count())?)
    }

    /// The first 20 rows as Spark's `show()` prints them.
    pub fn show_string(&self, n: usize, truncate: usize) -> Result<String, SqlError> {
        let rows = self.limit(n + 1)?.collect()?;
        Ok(show_string(&self.columns(), &rows, n, truncate, rows.len() > n))
    }

    /// The schema as Spark's `schema.treeString` (see [`tree_string`](crate::show::tree_string)).
    pub fn schema_string(&self) -> String {
        crate::show::tree_string(&self.schema())
    }

    /// Prints the schema as Spark's `printSchema()` does.
    pub fn print_schema(&self) {
        println!("{}", self.schema_string());
    }

    /// Prints the first 20 rows, cells cut to 20 characters (Spark's `show()`).
    pub fn show(&self) -> Result<(), SqlError> {
        self.show_n(20, 20)
    }

    /// Prints the first `n` rows, cells cut to `truncate` characters (`0`: not cut), as Spark's
    /// `show(n, truncate)`.
    pub fn show_n(&self, n: usize, truncate: usize) -> Result<(), SqlError> {
        println!("{}", self.show_string(n, truncate)?);
        Ok(())
    }
}

/// A DataFrame grouped by keys (Spark's `RelationalGroupedDataset`).
#[derive(Debug)]
pub struct GroupedData {
    df: DataFrame,
    keys: Vec<Expr>,
}

impl GroupedData {
    /// One row per group: the keys, then the aggregates given (`"count(*) AS total"`,
    /// `"sum(n)"`, `"avg(x) AS mean"`).
    pub fn agg(&self, aggregates: &[&str]) -> Result<DataFrame, SqlError> {
        let aggs = aggregates.iter().map(|a| self.df.expr(a)).collect::<Result<Vec<_>, _>>()?;
        Ok(self.df.with(self.df.df.clone().aggregate(self.keys.clone(), aggs)?))
    }

    /// One row per group with its row count in `count` (Spark's `groupBy(..).count()`).
    pub fn count(&self) -> Result<DataFrame, SqlError> {
        self.agg(&["count(*) AS count"])
    }
}

impl Rows {
    /// Runs `f` on the driver for every batch with the batch as a [`DataFrame`] of its
    /// context's [`SqlSession`] and the batch time: Spark's `foreachRDD { rdd => rdd.toDF() … }`.
    pub fn foreach_rdd_df<R: OutputResult>(&self, mut f: impl FnMut(DataFrame, Time) -> R + Send + 'static) {
        let cell = self.stream.extension::<SessionCell>();
        let conf = self.stream.conf().clone();
        let schema = Arc::clone(&self.schema);
        self.stream.foreach_batch(move |t, chunks: Vec<Chunk>| {
            let session = cell.get(&conf);
            let batches: Vec<RecordBatch> = chunks.into_iter().map(|c| c.0).collect();
            let batch = arrow::compute::concat_batches(&schema, &batches);
            match batch.map_err(SqlError::from).and_then(|b| session.read_batch(b)) {
                Ok(df) => f(df, t).into_output_result().map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        });
    }
}

/// Spark's per-batch DataFrame pattern on any stream of serializable records.
pub trait ForeachRddDf<T> {
    /// [`Rows::foreach_rdd_df`] on this stream's records, columns named as in
    /// [`ToRows::to_rows_serde`](crate::ToRows::to_rows_serde).
    fn foreach_rdd_df<R: OutputResult>(&self, f: impl FnMut(DataFrame, Time) -> R + Send + 'static);
}

impl<T: ember::Data + Serialize + serde::de::DeserializeOwned> ForeachRddDf<T> for DStream<T> {
    fn foreach_rdd_df<R: OutputResult>(&self, f: impl FnMut(DataFrame, Time) -> R + Send + 'static) {
        crate::ToRows::to_rows_serde(self).foreach_rdd_df(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_split_off_the_last_as() {
        assert_eq!(split_alias("count(*) AS total"), ("count(*)", Some("total")));
        assert_eq!(split_alias("cast(x as int)"), ("cast(x as int)", None));
        assert_eq!(split_alias("sum(n)"), ("sum(n)", None));
    }
}
