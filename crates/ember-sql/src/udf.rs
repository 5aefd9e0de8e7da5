//! Rust functions as SQL functions: Spark's `spark.udf.register("name", f)`.
//!
//! A [`Udf`] is made from a plain function of one, two or three values (`i64`, `f64`, `bool`,
//! `String`) and registered with a session ([`SqlSession::register_udf`](crate::SqlSession::register_udf),
//! for the per-batch pattern) or with a query ([`Query::with_udf`](crate::Query::with_udf), on
//! every worker). As for a Scala function of primitive types in Spark, a null argument gives a
//! null result without calling the function. Arguments of a narrower SQL type are widened (an
//! `INT` column to an `i64` argument).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};

/// A value a SQL function takes or returns.
pub trait SqlValue: Sized + 'static {
    /// Its SQL type.
    fn data_type() -> DataType;
    /// Row `i` of `a` (of [`data_type`](Self::data_type)), or `None` for null.
    fn get(a: &ArrayRef, i: usize) -> Option<Self>;
    /// An array of `values`.
    fn array(values: Vec<Option<Self>>) -> ArrayRef;
}

/// `SqlValue` for a type: its SQL type, its Arrow array, and how row `i` of `a` is read.
macro_rules! sql_value {
    ($t:ty, $data_type:expr, $array:ty, |$a:ident, $i:ident| $read:expr) => {
        impl SqlValue for $t {
            fn data_type() -> DataType {
                $data_type
            }
            fn get($a: &ArrayRef, $i: usize) -> Option<$t> {
                (!$a.is_null($i)).then(|| $read)
            }
            fn array(values: Vec<Option<$t>>) -> ArrayRef {
                Arc::new(<$array>::from(values))
            }
        }
    };
}

sql_value!(i64, DataType::Int64, Int64Array, |a, i| a.as_primitive::<Int64Type>().value(i));
sql_value!(f64, DataType::Float64, Float64Array, |a, i| a.as_primitive::<Float64Type>().value(i));
sql_value!(bool, DataType::Boolean, BooleanArray, |a, i| a.as_boolean().value(i));
sql_value!(String, DataType::Utf8, StringArray, |a, i| a.as_string::<i32>().value(i).to_string());

/// A SQL function made from a Rust function. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Udf(pub(crate) ScalarUDF);

/// The arguments as arrays of one length (a literal argument repeated), of the function's types.
fn arrays(args: &[ColumnarValue], types: &[DataType]) -> datafusion::error::Result<(Vec<ArrayRef>, usize)> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let arrays: Vec<ArrayRef> =
        arrays.iter().zip(types).map(|(a, t)| arrow::compute::cast(a, t)).collect::<Result<_, _>>()?;
    let rows = arrays.first().map_or(1, |a| a.len());
    Ok((arrays, rows))
}

/// The function's result: an array, or one value when every argument was one.
fn result(args: &[ColumnarValue], array: ArrayRef) -> datafusion::error::Result<ColumnarValue> {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        Ok(ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&array, 0)?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

impl Udf {
    /// `name(a)` calls `f(a)`.
    ///
    /// ```
    /// let session = std::sync::Arc::new(ember_sql::SqlSession::new());
    /// session.register_udf(ember_sql::Udf::new1("shout", |s: String| s.to_uppercase() + "!"));
    /// let rows = session.sql("SELECT shout('hi') AS s")?.collect()?;
    /// assert_eq!(rows[0].get_str("s"), Some("HI!"));
    /// # Ok::<(), ember_sql::SqlError>(())
    /// ```
    pub fn new1<A: SqlValue, R: SqlValue>(name: &str, f: impl Fn(A) -> R + Send + Sync + 'static) -> Udf {
        Udf::of(name, vec![A::data_type()], move |arrays, i| Some(f(A::get(&arrays[0], i)?)))
    }

    /// `name(a, b)` calls `f(a, b)`.
    pub fn new2<A: SqlValue, B: SqlValue, R: SqlValue>(
        name: &str,
        f: impl Fn(A, B) -> R + Send + Sync + 'static,
    ) -> Udf {
        let types = vec![A::data_type(), B::data_type()];
        Udf::of(name, types, move |a, i| Some(f(A::get(&a[0], i)?, B::get(&a[1], i)?)))
    }

    /// `name(a, b, c)` calls `f(a, b, c)`.
    pub fn new3<A: SqlValue, B: SqlValue, C: SqlValue, R: SqlValue>(
        name: &str,
        f: impl Fn(A, B, C) -> R + Send + Sync + 'static,
    ) -> Udf {
        let types = vec![A::data_type(), B::data_type(), C::data_type()];
        let call = move |a: &[ArrayRef], i| Some(f(A::get(&a[0], i)?, B::get(&a[1], i)?, C::get(&a[2], i)?));
        Udf::of(name, types, call)
    }

    fn of<R: SqlValue>(
        name: &str,
        types: Vec<DataType>,
        call: impl Fn(&[ArrayRef], usize) -> Option<R> + Send + Sync + 'static,
    ) -> Udf {
        let expected = types.clone();
        let fun = Arc::new(move |args: &[ColumnarValue]| {
            let (arrays, rows) = arrays(args, &expected)?;
            let values = (0..rows).map(|i| call(&arrays, i)).collect();
            result(args, R::array(values))
        });
        Udf(create_udf(name, types, R::data_type(), Volatility::Immutable, fun))
    }

    /// The function's name in SQL.
    pub fn name(&self) -> &str {
        self.0.name()
    }
}
