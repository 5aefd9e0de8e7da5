//! Streaming k-means: Spark MLlib's `StreamingKMeans`, trained and applied on streams.
//!
//! Each batch, every worker assigns its share of the points to the nearest center of the model
//! as it was after the previous batch and sums them per cluster; the sums (not the points) go to
//! every worker, which combines them in worker order and updates its copy of the model by Spark's
//! rule, so all hold the same model for the next batch. The update, per batch, with decay
//! factor `a`:
//!
//! 1. every cluster's weight is discounted by `a` (time unit batches) or by `a^n`, `n` the number
//!    of points in the batch (time unit points) — also in a batch without points;
//! 2. a cluster that got `m` points with sum `s`: `w' = w + m`, `λ = m / max(w', 1e-16)`,
//!    `c ← (1 − λ)·c + (λ/m)·s`, and its weight becomes `w'`;
//! 3. when the smallest weight is below `1e-8` times the largest, the smallest cluster is dying:
//!    the largest is split in two, both halves weighing `(largest + smallest)/2`, centers nudged
//!    by `±1e-14·max(|x|, 1)` per coordinate.
//!
//! `a = 1` weighs all history alike, `a = 0` keeps only the newest batch; `half_life(h, unit)`
//! sets `a = exp(ln(0.5)/h)`.
//!
//! Points of another dimension than the model's, or with a NaN or infinite coordinate, are
//! skipped, counted ([`StreamingKMeans::skipped`]) and logged (the first 10, then every 1000th),
//! in training and in prediction: one bad line does not stop a job.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use ember::operator::count_skipped;
use ember::{DStream, Data, Error, Time};
use serde::{Deserialize, Serialize};

use crate::trainer::{lock, Trainer};
use crate::vector::Vector;

/// How decay is counted: per batch, or per point (Spark's `timeUnit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeUnit {
    /// The decay factor applies once per batch.
    Batches,
    /// The decay factor applies once per point of the batch.
    Points,
}

/// A k-means model: the cluster centers and their weights (Spark's `StreamingKMeansModel`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansModel {
    /// One center per cluster, all of the same dimension.
    pub centers: Vec<Vec<f64>>,
    /// Each cluster's weight: the (decayed) number of points it has absorbed.
    pub weights: Vec<f64>,
}

/// The file format of [`KMeansModel::save`]: JSON with these fields.
const FORMAT: &str = "ember-ml/kmeans/1";

#[derive(Serialize, Deserialize)]
struct ModelFile {
    format: String,
    k: usize,
    dim: usize,
    centers: Vec<Vec<f64>>,
    weights: Vec<f64>,
}

impl KMeansModel {
    /// A model with these centers and weights, checked: at least one center, one weight per
    /// center, all centers of one dimension (at least 1), finite values, weights not negative.
    pub fn new(centers: Vec<Vec<f64>>, weights: Vec<f64>) -> ember::Result<Self> {
        let bad = |m: String| Err(Error::Other(format!("k-means model: {m}")));
        let Some(dim) = centers.first().map(Vec::len) else { return bad("no centers".into()) };
        if dim == 0 {
            return bad("centers of dimension 0".into());
        }
        if weights.len() != centers.len() {
            return bad(format!("{} centers but {} weights", centers.len(), weights.len()));
        }
        if let Some((i, c)) = centers.iter().enumerate().find(|(_, c)| c.len() != dim) {
            return bad(format!("center {i} has dimension {}, center 0 has {dim}", c.len()));
        }
        if centers.iter().flatten().chain(&weights).any(|x| !x.is_finite()) {
            return bad("a center or weight is not a finite number".into());
        }
        if let Some(w) = weights.iter().find(|w| **w < 0.0) {
            return bad(format!("weight {w} is negative"));
        }
        Ok(KMeansModel { centers, weights })
    }

    /// The number of clusters.
    pub fn k(&self) -> usize {
        self.centers.len()
    }

    /// The dimension of the points.
    pub fn dim(&self) -> usize {
        self.centers.first().map_or(0, Vec::len)
    }

    /// The cluster nearest to `point` (squared Euclidean distance; the first on a tie), or `None`
    /// for a point of another dimension or with a coordinate that is not finite.
    pub fn predict(&self, point: &Vector) -> Option<usize> {
        if point.size() != self.dim() || !point.is_finite() {
            return None;
        }
        let mut best = (0, f64::INFINITY);
        for (i, c) in self.centers.iter().enumerate() {
            let d = point.squared_distance(c);
            if d < best.1 {
                best = (i, d);
            }
        }
        Some(best.0)
    }

    /// Writes the model as JSON: `{"format": "ember-ml/kmeans/1", "k", "dim", "centers",
    /// "weights"}`.
    pub fn save(&self, path: impl AsRef<Path>) -> ember::Result<()> {
        let file = ModelFile {
            format: FORMAT.into(),
            k: self.k(),
            dim: self.dim(),
            centers: self.centers.clone(),
            weights: self.weights.clone(),
        };
        crate::write_json(path.as_ref(), &file, "k-means model")
    }

    /// Reads a model written by [`save`](Self::save), checked as [`new`](Self::new) checks.
    pub fn load(path: impl AsRef<Path>) -> ember::Result<Self> {
        let path = path.as_ref();
        let file: ModelFile = crate::read_json(path, "k-means model", FORMAT)?;
        let model = KMeansModel::new(file.centers, file.weights)?;
        if model.k() != file.k || model.dim() != file.dim {
            return Err(Error::Other(format!("{}: k and dim do not match the centers", path.display())));
        }
        Ok(model)
    }

    /// One worker's sums for a batch: per cluster, the sum of its points and their number.
    fn stats(&self, points: &[Vector], skipped: &AtomicU64) -> Stats {
        let (k, dim) = (self.k(), self.dim());
        let mut stats = Stats { sums: vec![vec![0.0; dim]; k], counts: vec![0; k] };
        for p in points {
            match self.predict(p) {
                Some(c) => {
                    p.add_to(1.0, &mut stats.sums[c]);
                    stats.counts[c] += 1;
                }
                None => skip(skipped, p, dim, "training"),
            }
        }
        stats
    }

    /// Spark's update with the batch's sums (see the module's docs).
    fn update(&mut self, parts: impl IntoIterator<Item = Stats>, decay: f64, unit: TimeUnit) {
        let (k, dim) = (self.k(), self.dim());
        let mut total = Stats { sums: vec![vec![0.0; dim]; k], counts: vec![0; k] };
        for part in parts {
            for c in 0..k {
                total.counts[c] += part.counts[c];
                total.sums[c].iter_mut().zip(&part.sums[c]).for_each(|(a, b)| *a += b);
            }
        }
        let discount = match unit {
            TimeUnit::Batches => decay,
            TimeUnit::Points => decay.powf(total.counts.iter().sum::<u64>() as f64),
        };
        self.weights.iter_mut().for_each(|w| *w *= discount);
        for c in 0..k {
            let m = total.counts[c];
            if m == 0 {
                continue;
            }
            let m = m as f64;
            let updated = self.weights[c] + m;
            let lambda = m / updated.max(1e-16);
            self.weights[c] = updated;
            let center = &mut self.centers[c];
            center.iter_mut().for_each(|x| *x *= 1.0 - lambda);
            center.iter_mut().zip(&total.sums[c]).for_each(|(x, s)| *x += lambda / m * s);
        }
        self.split_dying();
    }

    /// When the lightest cluster weighs less than `1e-8` of the heaviest, the heaviest is split
    /// in two (Spark's rule; the first of equal weights is taken, as Scala's `maxBy`/`minBy` do).
    fn split_dying(&mut self) {
        let (mut largest, mut smallest) = (0, 0);
        for (i, w) in self.weights.iter().enumerate() {
            if *w > self.weights[largest] {
                largest = i;
            }
            if *w < self.weights[smallest] {
                smallest = i;
            }
        }
        let (max, min) = (self.weights[largest], self.weights[smallest]);
        if min >= 1e-8 * max {
            return;
        }
        tracing::info!("k-means: cluster {smallest} is dying; splitting the largest cluster, {largest}, in two");
        let weight = (max + min) / 2.0;
        self.weights[largest] = weight;
        self.weights[smallest] = weight;
        for j in 0..self.dim() {
            let x = self.centers[largest][j];
            let p = 1e-14 * x.abs().max(1.0);
            self.centers[largest][j] = x + p;
            self.centers[smallest][j] = x - p;
        }
    }
}

fn skip(skipped: &AtomicU64, p: &Vector, dim: usize, what: &str) {
    if let Some(n) = count_skipped(skipped) {
        let why = if p.size() != dim {
            format!("dimension {}, the model's is {dim}", p.size())
        } else {
            "a coordinate is NaN or infinite".into()
        };
        tracing::warn!("k-means {what}: skipped a point ({why}); {n} skipped so far");
    }
}

/// One worker's per-cluster sums of a batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stats {
    sums: Vec<Vec<f64>>,
    counts: Vec<u64>,
}

/// Spark MLlib's `StreamingKMeans`: configure, then [`train_on`](Self::train_on) a stream of
/// points and [`predict_on`](Self::predict_on) the same or another stream.
///
/// Defaults as Spark's: `k = 2`, decay factor 1.0, time unit batches. Initial centers are
/// required (Spark's `setInitialCenters`/`setRandomCenters`).
///
/// Prediction in batch `t` uses the model trained on batches up to and including `t` when
/// `train_on` was declared before `predict_on` (as in Spark, whose outputs run in declaration
/// order); without `train_on`, it scores with the initial model (a model trained offline).
#[derive(Debug)]
pub struct StreamingKMeans {
    k: usize,
    decay: f64,
    unit: TimeUnit,
    trainer: Trainer<KMeansModel, KMeansModel>,
}

impl Default for StreamingKMeans {
    fn default() -> Self {
        StreamingKMeans::new()
    }
}

impl StreamingKMeans {
    /// `k = 2`, decay factor 1.0, time unit batches, no centers yet.
    pub fn new() -> Self {
        StreamingKMeans { k: 2, decay: 1.0, unit: TimeUnit::Batches, trainer: Trainer::new("StreamingKMeans", |m| m) }
    }

    fn refuse(mut self, problem: String) -> Self {
        self.trainer.refuse(|| problem);
        self
    }

    /// The number of clusters (at least 1).
    pub fn k(mut self, k: usize) -> Self {
        if k == 0 {
            return self.refuse("k must be at least 1".into());
        }
        self.k = k;
        self
    }

    /// The decay factor `a >= 0` (1: all batches alike; 0: only the newest).
    pub fn decay_factor(mut self, a: f64) -> Self {
        if a.is_nan() || a < 0.0 {
            return self.refuse(format!("the decay factor must be 0 or more, not {a}"));
        }
        self.decay = a;
        self
    }

    /// The decay as a half-life `h > 0` in batches or points: `a = exp(ln(0.5) / h)`.
    pub fn half_life(mut self, h: f64, unit: TimeUnit) -> Self {
        if h.is_nan() || h <= 0.0 {
            return self.refuse(format!("the half-life must be more than 0, not {h}"));
        }
        self.decay = (0.5f64.ln() / h).exp();
        self.unit = unit;
        self
    }

    /// The time unit of the decay factor.
    pub fn time_unit(mut self, unit: TimeUnit) -> Self {
        self.unit = unit;
        self
    }

    /// Starts from these centers and weights (one each per cluster).
    pub fn initial_centers(self, centers: Vec<Vec<f64>>, weights: Vec<f64>) -> Self {
        match KMeansModel::new(centers, weights) {
            Ok(m) => self.initial_model(m),
            Err(e) => self.refuse(e.to_string()),
        }
    }

    /// Starts from a model, e.g. one trained offline and [loaded](KMeansModel::load); `k` becomes
    /// its number of clusters.
    pub fn initial_model(mut self, model: KMeansModel) -> Self {
        self.k = model.k();
        self.trainer.initial = Some(model);
        self
    }

    /// Starts from `k` random centers of dimension `dim`, each coordinate drawn from a standard
    /// normal distribution by a generator seeded with `seed`, each center weighing `weight`.
    /// (Ember's generator, not Java's: the same seed gives other centers than in Spark.)
    pub fn random_centers(self, dim: usize, weight: f64, seed: u64) -> Self {
        let mut state = seed;
        let mut uniform = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        // Box-Muller: two uniforms in (0, 1] give one normal value.
        let mut normal =
            move || (-2.0 * (1.0 - uniform()).ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos();
        let k = self.k;
        let centers = (0..k).map(|_| (0..dim).map(|_| normal()).collect()).collect();
        self.initial_centers(centers, vec![weight; k])
    }

    /// The model after the last batch trained in this process (every process holds the job's
    /// model), or the initial model before the first batch (after a recovery: the restored model
    /// once the first batch after it started).
    pub fn latest_model(&self) -> Option<KMeansModel> {
        self.trainer.latest_model()
    }

    /// The model after each batch, once per batch (the driver worker's copy; every worker holds
    /// the same), once [`train_on`](Self::train_on) was declared: to save or show the model as
    /// it evolves, as Spark users read `latestModel()` in `foreachRDD`.
    pub fn models(&self) -> Option<DStream<KMeansModel>> {
        self.trainer.models()
    }

    /// The points skipped so far in this process (another dimension, or not finite).
    pub fn skipped(&self) -> u64 {
        self.trainer.skipped()
    }

    fn checked(&self) -> ember::Result<KMeansModel> {
        let model = self.trainer.checked("initial cluster centers must be set before training or predicting")?;
        if model.k() != self.k {
            return Err(Error::Other(format!(
                "StreamingKMeans: k is {} but there are {} initial centers",
                self.k,
                model.k()
            )));
        }
        Ok(model)
    }

    /// Trains the model on every batch of `points` (Spark's `trainOn`). The model is part of the
    /// job's checkpoint. Fails when the configuration is not valid or has no initial centers.
    pub fn train_on(&self, points: &DStream<Vector>) -> ember::Result<()> {
        let initial = self.checked()?;
        let (decay, unit) = (self.decay, self.unit);
        let (latest, skipped) = (Arc::clone(&self.trainer.latest), Arc::clone(&self.trainer.skipped));
        let models = points.operator("StreamingKMeans.train_on", move |b| {
            let (latest, seen, skipped) = (Arc::clone(&latest), Arc::clone(&latest), Arc::clone(&skipped));
            b.train_per_batch(
                "model",
                initial.clone(),
                move |_t: Time, points: Vec<Vector>, model: &KMeansModel, out| {
                    // After a recovery, the model the job restored, until this batch updates it.
                    lock(&seen).get_or_insert_with(|| model.clone());
                    out.push(model.stats(&points, &skipped))
                },
                move |_t, parts: Vec<(usize, Stats)>, model: &mut KMeansModel| {
                    model.update(parts.into_iter().map(|(_, s)| s), decay, unit);
                    *lock(&latest) = Some(model.clone());
                },
            )
        });
        self.trainer.keep(models);
        Ok(())
    }

    /// The nearest cluster of every point (Spark's `predictOn`); points that cannot be scored
    /// are skipped and counted. See the type's docs for which model a batch uses.
    pub fn predict_on(&self, points: &DStream<Vector>) -> ember::Result<DStream<usize>> {
        Ok(self.predict_on_values(&points.map(|p| ((), p)))?.map(|((), c)| c))
    }

    /// The nearest cluster of every value, keeping the keys (Spark's `predictOnValues`).
    pub fn predict_on_values<K: Data>(&self, points: &DStream<(K, Vector)>) -> ember::Result<DStream<(K, usize)>> {
        let initial = self.checked()?;
        let skipped = Arc::clone(&self.trainer.skipped);
        let score = move |model: &KMeansModel, kvs: Vec<(K, Vector)>, out: &mut Vec<(K, usize)>| {
            for (key, p) in kvs {
                match model.predict(&p) {
                    Some(c) => out.push((key, c)),
                    None => skip(&skipped, &p, model.dim(), "prediction"),
                }
            }
        };
        Ok(self.trainer.predict(points, initial, score))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> KMeansModel {
        KMeansModel::new(vec![vec![0.0, 0.0], vec![10.0, 0.0]], vec![1.0, 1.0]).unwrap()
    }

    #[test]
    fn update_follows_sparks_rule() {
        let mut m = model();
        let pts = [Vector::dense([1.0, 1.0]), Vector::dense([3.0, 1.0]), Vector::dense([9.0, 0.0])];
        let s = m.stats(&pts, &AtomicU64::new(0));
        m.update([s], 0.5, TimeUnit::Batches);
        // cluster 0: w = 0.5 + 2, λ = 2/2.5, c = 0.2·0 + 0.8·(2, 1)
        assert_eq!(m.weights, vec![2.5, 1.5]);
        assert!((m.centers[0][0] - 1.6).abs() < 1e-12 && (m.centers[0][1] - 0.8).abs() < 1e-12);
        // cluster 1: w = 0.5 + 1, λ = 1/1.5
        assert!((m.centers[1][0] - (10.0 / 3.0 + 9.0 * 2.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn bad_models_and_points_are_refused() {
        assert!(KMeansModel::new(vec![], vec![]).is_err());
        assert!(KMeansModel::new(vec![vec![1.0], vec![1.0, 2.0]], vec![1.0, 1.0]).is_err());
        assert!(KMeansModel::new(vec![vec![1.0]], vec![-1.0]).is_err());
        assert!(KMeansModel::new(vec![vec![f64::NAN]], vec![1.0]).is_err());
        let m = model();
        assert_eq!(m.predict(&Vector::dense([1.0])), None);
        assert_eq!(m.predict(&Vector::dense([f64::INFINITY, 0.0])), None);
        assert_eq!(m.predict(&Vector::dense([6.0, 0.0])), Some(1));
        assert_eq!(m.predict(&Vector::dense([5.0, 0.0])), Some(0), "a tie goes to the first");
        assert!(StreamingKMeans::new().k(0).checked().unwrap_err().to_string().contains("k must be"));
        assert!(StreamingKMeans::new().checked().unwrap_err().to_string().contains("initial cluster centers"));
        assert!(StreamingKMeans::new().half_life(0.0, TimeUnit::Points).initial_model(model()).checked().is_err());
    }

    #[test]
    fn a_saved_model_loads_and_a_foreign_file_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        model().save(&path).unwrap();
        assert_eq!(KMeansModel::load(&path).unwrap(), model());
        std::fs::write(&path, br#"{"format":"other","k":1,"dim":1,"centers":[[1.0]],"weights":[1.0]}"#).unwrap();
        assert!(KMeansModel::load(&path).unwrap_err().to_string().contains("format `other`"));
    }

    #[test]
    fn random_centers_are_seeded() {
        let a = StreamingKMeans::new().k(3).random_centers(4, 2.0, 7).latest_model().unwrap();
        let b = StreamingKMeans::new().k(3).random_centers(4, 2.0, 7).latest_model().unwrap();
        let c = StreamingKMeans::new().k(3).random_centers(4, 2.0, 8).latest_model().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!((a.k(), a.dim(), a.weights.clone()), (3, 4, vec![2.0; 3]));
    }
}
