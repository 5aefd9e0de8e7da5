//! # ember-ml: streaming machine learning for Ember
//!
//! Spark MLlib's streaming algorithms on Ember's DStreams, with Spark's update rules, so that a
//! model trained by Ember on a stream ends where Spark's ends. Training is distributed: each
//! worker computes its share's sums for the current model, only the sums travel, and every
//! worker folds all of them into its copy of the model for the next batch (the kit's
//! [`train_per_batch`](ember::operator::Batches::train_per_batch)). The model is part of the
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
//! | `Vectors.parse`, `LabeledPoint.parse` | `"[1.0,2.0]".parse::<Vector>()`, `"(1.0,[2.0])".parse::<LabeledPoint>()` |
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
mod vector;

pub use kmeans::{KMeansModel, StreamingKMeans, TimeUnit};
pub use vector::{LabeledPoint, ParseError, Vector};
