//! SQL and DataFrames on every batch of an Ember stream, on Apache DataFusion and Arrow.
//!
//! Three ways in, as Spark Streaming's users write them:
//!
//! - **Spark's per-batch pattern** ([`ForeachRddDf::foreach_rdd_df`], [`Rows::foreach_rdd_df`]):
//!   each batch becomes a [`DataFrame`] of the context's [`SqlSession`]; register it with
//!   [`DataFrame::create_or_replace_temp_view`], query it with [`SqlSession::sql`], print it with
//!   [`DataFrame::show`] in Spark's layout. It runs on the driver, with the batch gathered there.
//! - **SQL as a stream operation** ([`sql`]): a query over streams ([`ToRows::to_rows`]) and
//!   static tables ([`StaticTable`]) whose output is a `DStream<`[`Row`]`>`. It runs on every
//!   worker of every process: DataFusion's physical plan is cut at its exchanges and each part
//!   runs where its rows are ([`stages`] explains how).
//! - **Table outputs** ([`Rows::save_as_parquet_files`], [`Rows::save_as_json_files`],
//!   [`SaveAsTable`]), committed as Ember's file outputs are, and Spark's `df.write` in the
//!   per-batch pattern ([`DataFrame::write`]).
//!
//! ```no_run
//! use ember::prelude::*;
//! use ember_sql::{ForeachRddDf, ToRows};
//!
//! let ssc = StreamingContext::new(Conf::new().master("local[2]"), Duration::from_secs(1)).unwrap();
//! let words = ssc.socket_text_stream("127.0.0.1", 9999).flat_map(|l: String| l.split_owned(' '));
//! words.foreach_rdd_df(|df, time| {
//!     df.create_or_replace_temp_view("words")?;
//!     println!("========= {time} =========");
//!     df.session().sql("SELECT value AS word, COUNT(*) AS total FROM words GROUP BY value")?.show()
//! });
//! let totals = ember_sql::sql(&ssc, "SELECT word, COUNT(*) AS total FROM words GROUP BY word")
//!     .with_view("words", words.to_rows(["word"]))
//!     .stream();
//! totals.print();
//! ```

pub mod ddl;
pub mod outputs;
pub mod query;
pub mod rows;
pub mod session;
pub mod show;
pub mod stages;
pub mod table;
pub mod udf;
pub mod writer;

pub use datafusion;
pub use ddl::schema;
pub use outputs::{Parquet, SaveAsTable};
pub use query::{sql, Query, StaticTable};
pub use rows::{Row, Value};
pub use session::{DataFrame, ForeachRddDf, GroupedData, SqlSession};
pub use table::{FromRows, Rows, ToRows};
pub use udf::{SqlValue, Udf};
pub use writer::{DataFrameWriter, SaveMode};

/// What can go wrong with a query, a table or a conversion.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// DataFusion refused or failed a query (its message: a syntax error, an unknown column, a
    /// type error).
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Arrow failed on a batch.
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A query could not be planned.
    #[error("{0}")]
    Plan(String),
    /// A record type has no table schema, or records do not fit one.
    #[error("table schema: {0}")]
    Schema(String),
    /// A row could not become a record of the type asked for.
    #[error("{0}")]
    Convert(String),
    /// A view or table name is missing or used twice, or a table cannot be loaded.
    #[error("{0}")]
    View(String),
    /// A DataFrame could not be written.
    #[error("{0}")]
    Write(String),
}

impl From<SqlError> for ember::Error {
    fn from(e: SqlError) -> ember::Error {
        ember::Error::Declaration { operation: "sql".into(), message: e.to_string() }
    }
}
