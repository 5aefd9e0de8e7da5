//! # ember-ml: streaming machine learning for Ember
//!
//! Spark MLlib's streaming algorithms on Ember's DStreams — k-means, linear regression and
//! logistic regression — with Spark's update rules, so that a
//! model trained by Ember on a stream ends where Spark's ends. Training is distributed: each
//! worker computes its share's sums for the current model, only the sums travel, and every
//! worker folds all of them into its copy of the model for the next batch (the kit's
//! [`train_per_batch`](ember::operator::Batches::train_per_batch), and for the gradient
//! descent's iterations within a batch
//! [`train_per_batch_in_rounds`](ember::operator::Batches::train_per_batch_in_rounds)). The model is part of the
//! job's checkpoint: a job killed and recovered ends with the model of an uninterrupted run.
//!
//! | Spark (`pyspark.mllib` / `org.apache.spark.mllib`) | ember-ml |
//! |---|---|
//! | `StreamingKMeans().setK(3).setDecayFactor(0.5)` | `StreamingKMeans::new().k(3).decay_factor(0.5)` |
//! | `setHalfLife(5, "batches")` | `half_life(5.0, TimeUnit::Batches)` |
//! | `setInitialCenters(centers, weights)` | `initial_centers(centers, weights)` |
//! | `setRandomCenters(dim, weight, seed)` | `random_centers(dim, weight, seed)` |
//! | `trainOn(points)` | `train_on(&points)?` |
//! | `predictOn(points)`, `predictOnValues(pairs)` | `predict_on(&points)?`, `predict_on_values(&pairs)?` |
//! | `latestModel()` | `latest_model()` |
//! | `StreamingLinearRegressionWithSGD().setStepSize(0.1).setNumIterations(50)` | `StreamingLinearRegressionWithSGD::new().step_size(0.1).num_iterations(50)` |
//! | `StreamingLogisticRegressionWithSGD().setRegParam(0.1)` | `StreamingLogisticRegressionWithSGD::new().reg_param(0.1)` |
//! | `setMiniBatchFraction`, `setConvergenceTol`, `setInitialWeights` | `mini_batch_fraction`, `convergence_tol`, `initial_weights` |
//! | `Vectors.parse`, `LabeledPoint.parse` | `"[1.0,2.0]".parse::<Vector>()`, `"(1.0,[2.0])".parse::<LabeledPoint>()` |
//! | `lines.map(Vectors.parse)`, `lines.map(LabeledPoint.parse)` | [`parse_vectors`]`(&lines)`, [`parse_labeled_points`]`(&lines)`, [`parse_libsvm`]: malformed lines skipped, counted, logged |
//!
//! ```
//! use ember::prelude::*;
//! use ember_ml::{StreamingKMeans, Vector};
//!
//! let ssc = ember::testing::manual_context("local[2]");
//! let points = ssc.queue_stream(
//!     vec![vec![Vector::dense([0.0, 0.1]), Vector::dense([9.0, 9.2]), Vector::dense([0.2, 0.0])]],
//!     true,
//! );
//! let km = StreamingKMeans::new().k(2).initial_centers(vec![vec![0.0, 0.0], vec![10.0, 10.0]], vec![1.0, 1.0]);
//! km.train_on(&points)?;
//! let clusters = km.predict_on(&points)?.collect_batches();
//! ssc.run_batches(1)?;
//! ssc.stop(false)?;
//! let mut seen = clusters.batches()[0].1.clone();
//! seen.sort();
//! assert_eq!(seen, vec![0, 0, 1]);
//! assert_eq!(km.latest_model().unwrap().weights, vec![3.0, 2.0]);
//! # Ok::<(), ember::Error>(())
//! ```

mod kmeans;
mod parse;
mod regression;
mod trainer;
mod vector;

/// Writes `value` as pretty JSON to `path` (`what` names it in errors).
fn write_json<T: serde::Serialize>(path: &std::path::Path, value: &T, what: &str) -> ember::Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| ember::Error::external(format!("encoding a {what}"), e))?;
    std::fs::write(path, json).map_err(|e| ember::Error::io(format!("writing {}", path.display()), e))
}

/// Reads JSON written by [`write_json`], checking its `format` field against `format`.
fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path, what: &str, format: &str) -> ember::Result<T> {
    let bytes = std::fs::read(path).map_err(|e| ember::Error::io(format!("reading {}", path.display()), e))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ember::Error::external(format!("{} is not a {what}", path.display()), e))?;
    let found = value.get("format").and_then(|f| f.as_str()).unwrap_or("none");
    if found != format {
        return Err(ember::Error::Other(format!("{}: format `{found}`, expected `{format}`", path.display())));
    }
    serde_json::from_value(value).map_err(|e| ember::Error::external(format!("{} is not a {what}", path.display()), e))
}

pub use kmeans::{KMeansModel, StreamingKMeans, TimeUnit};
pub use parse::{parse_labeled_points, parse_libsvm, parse_vectors};
pub use regression::{
    LeastSquares, LinearModel, Logistic, Loss, StreamingLinearRegressionWithSGD, StreamingLogisticRegressionWithSGD,
    StreamingSgd,
};
pub use vector::{LabeledPoint, ParseError, Vector};
