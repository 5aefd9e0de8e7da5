//! Streaming linear and logistic regression by stochastic gradient descent: Spark MLlib's
//! `StreamingLinearRegressionWithSGD` and `StreamingLogisticRegressionWithSGD`.
//!
//! Every non-empty batch runs Spark's gradient descent from the current weights (a warm start),
//! `num_iterations` iterations over the batch; its result replaces the weights. Iteration `i`
//! (from 1):
//!
//! - each worker sums the gradients of its points (a mini-batch of them when the fraction is below
//!   1) for the current weights: least squares `(w·x − y)·x`, logistic `(σ(w·x) − y)·x`;
//! - every worker combines the sums (in worker order) and updates its copy of the weights with the
//!   step `step_size / √i`: `w ← w − step·g/n` (linear), `w ← (1 − step·reg_param)·w − step·g/n`
//!   (logistic, the L2 updater);
//! - from the second iteration on, it stops early when `‖w_prev − w‖ < convergence_tol ·
//!   max(‖w‖, 1)`.
//!
//! An empty batch leaves the model as it is. The models have no intercept (0), as Spark's
//! streaming models; a logistic prediction is 1.0 when `σ(w·x)` is above the threshold (0.5), else
//! 0.0. With a mini-batch fraction below 1, each worker samples its points with a generator seeded
//! by the iteration, the batch and the worker, so a re-run batch samples alike; the sample is not
//! Spark's (its sampler depends on its partitions), so only a fraction of 1.0 ends where Spark ends.
//!
//! Points with another number of features than the model's, or with a label or feature that is
//! not finite, are skipped, counted and logged, in training and in prediction.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use ember::operator::count_skipped;
use ember::{DStream, Data, Error, Time};
use serde::{Deserialize, Serialize};

use crate::trainer::{lock, Trainer};
use crate::vector::{LabeledPoint, Vector};

/// A linear model: `weights` and an `intercept` (Spark's `LinearRegressionModel` and
/// `LogisticRegressionModel`; the streaming algorithms keep the intercept at 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// Added to every margin.
    pub intercept: f64,
}

/// The file format of [`LinearModel::save`]: JSON with these fields.
const FORMAT: &str = "ember-ml/linear/1";

#[derive(Serialize, Deserialize)]
struct ModelFile {
    format: String,
    weights: Vec<f64>,
    intercept: f64,
}

impl LinearModel {
    /// The margin `w·x + intercept`, or `None` for a point of another size or not finite.
    pub fn margin(&self, x: &Vector) -> Option<f64> {
        (x.size() == self.weights.len() && x.is_finite()).then(|| x.dot(&self.weights) + self.intercept)
    }

    /// Writes the model as JSON: `{"format": "ember-ml/linear/1", "weights", "intercept"}`.
    pub fn save(&self, path: impl AsRef<Path>) -> ember::Result<()> {
        let file = ModelFile { format: FORMAT.into(), weights: self.weights.clone(), intercept: self.intercept };
        crate::write_json(path.as_ref(), &file, "linear model")
    }

    /// Reads a model written by [`save`](Self::save).
    pub fn load(path: impl AsRef<Path>) -> ember::Result<Self> {
        let path = path.as_ref();
        let file: ModelFile = crate::read_json(path, "linear model", FORMAT)?;
        if file.weights.is_empty() || file.weights.iter().chain([&file.intercept]).any(|w| !w.is_finite()) {
            return Err(Error::Other(format!("{}: the weights must be finite numbers, at least one", path.display())));
        }
        Ok(LinearModel { weights: file.weights, intercept: file.intercept })
    }
}

/// What distinguishes the two algorithms: the gradient, the regularisation and the prediction.
pub trait Loss: Send + Sync + 'static {
    /// The algorithm's name, as Spark's class.
    const NAME: &'static str;
    /// Adds the gradient of `point`'s loss at `weights` to `acc`.
    fn add_gradient(weights: &[f64], point: &LabeledPoint, acc: &mut [f64]);
    /// The prediction for a margin.
    fn predict(margin: f64, threshold: f64) -> f64;
}

/// Least squares (linear regression).
#[derive(Debug)]
pub struct LeastSquares;

impl Loss for LeastSquares {
    const NAME: &'static str = "StreamingLinearRegressionWithSGD";

    fn add_gradient(weights: &[f64], p: &LabeledPoint, acc: &mut [f64]) {
        let diff = p.features.dot(weights) - p.label;
        p.features.add_to(diff, acc);
    }

    fn predict(margin: f64, _threshold: f64) -> f64 {
        margin
    }
}

/// The logistic loss of binary classification (labels 0.0 and 1.0).
#[derive(Debug)]
pub struct Logistic;

impl Loss for Logistic {
    const NAME: &'static str = "StreamingLogisticRegressionWithSGD";

    fn add_gradient(weights: &[f64], p: &LabeledPoint, acc: &mut [f64]) {
        let margin = -p.features.dot(weights);
        let multiplier = 1.0 / (1.0 + margin.exp()) - p.label;
        p.features.add_to(multiplier, acc);
    }

    fn predict(margin: f64, threshold: f64) -> f64 {
        let score = 1.0 / (1.0 + (-margin).exp());
        if score > threshold {
            1.0
        } else {
            0.0
        }
    }
}

/// Spark's streaming linear algorithms trained with SGD; use the aliases
/// [`StreamingLinearRegressionWithSGD`] and [`StreamingLogisticRegressionWithSGD`].
///
/// Defaults as Spark's: step size 0.1, 50 iterations, mini-batch fraction 1.0, convergence
/// tolerance 0.001, regularisation 0 (logistic only), threshold 0.5 (logistic only). Initial
/// weights are required (Spark's `setInitialWeights`).
///
/// Prediction in batch `t` uses the model trained on batches up to and including `t` when
/// `train_on` was declared before `predict_on`; without `train_on`, the initial model (a model
/// trained offline).
#[derive(Debug)]
pub struct StreamingSgd<L: Loss> {
    settings: Settings,
    trainer: Trainer<LinearModel, Training>,
    loss: PhantomData<L>,
}

/// Spark's `StreamingLinearRegressionWithSGD`.
pub type StreamingLinearRegressionWithSGD = StreamingSgd<LeastSquares>;
/// Spark's `StreamingLogisticRegressionWithSGD`.
pub type StreamingLogisticRegressionWithSGD = StreamingSgd<Logistic>;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Settings {
    step_size: f64,
    num_iterations: u32,
    fraction: f64,
    convergence_tol: f64,
    reg_param: f64,
    threshold: f64,
}

/// The trained state: the model, and the weights of the iteration before (for the convergence
/// test within a batch).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Training {
    model: LinearModel,
    previous: Option<Vec<f64>>,
}

/// One worker's sums of an iteration.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sums {
    gradient: Vec<f64>,
    count: u64,
}

fn norm(x: impl Iterator<Item = f64>) -> f64 {
    x.map(|v| v * v).sum::<f64>().sqrt()
}

impl<L: Loss> Default for StreamingSgd<L> {
    fn default() -> Self {
        Self::new()
    }
}

impl<L: Loss> StreamingSgd<L> {
    /// Spark's defaults, no initial weights yet.
    pub fn new() -> Self {
        StreamingSgd {
            settings: Settings {
                step_size: 0.1,
                num_iterations: 50,
                fraction: 1.0,
                convergence_tol: 0.001,
                reg_param: 0.0,
                threshold: 0.5,
            },
            trainer: Trainer::new(L::NAME, |t| &t.model),
            loss: PhantomData,
        }
    }

    fn check(mut self, ok: bool, problem: impl FnOnce() -> String) -> Self {
        if !ok {
            self.trainer.refuse(problem);
        }
        self
    }

    /// The initial step size (more than 0); iteration `i` steps `step_size / √i`.
    pub fn step_size(mut self, s: f64) -> Self {
        self.settings.step_size = s;
        self.check(s > 0.0 && s.is_finite(), || format!("the step size must be more than 0, not {s}"))
    }

    /// Iterations per batch (at least 1).
    pub fn num_iterations(mut self, n: u32) -> Self {
        self.settings.num_iterations = n;
        self.check(n > 0, || "the number of iterations must be at least 1".into())
    }

    /// The fraction of each batch's points each iteration uses, in `(0, 1]`.
    pub fn mini_batch_fraction(mut self, f: f64) -> Self {
        self.settings.fraction = f;
        self.check(f > 0.0 && f <= 1.0, || format!("the mini-batch fraction must be in (0, 1], not {f}"))
    }

    /// The convergence tolerance (0 or more; 0 runs every iteration).
    pub fn convergence_tol(mut self, tol: f64) -> Self {
        self.settings.convergence_tol = tol;
        self.check((0.0..=1.0).contains(&tol), || format!("the convergence tolerance must be in [0, 1], not {tol}"))
    }

    /// Starts from these weights (Spark's `setInitialWeights`).
    pub fn initial_weights(self, weights: Vec<f64>) -> Self {
        self.initial_model(LinearModel { weights, intercept: 0.0 })
    }

    /// Starts from a model, e.g. one trained offline and [loaded](LinearModel::load).
    pub fn initial_model(mut self, model: LinearModel) -> Self {
        let ok = !model.weights.is_empty() && model.weights.iter().chain([&model.intercept]).all(|w| w.is_finite());
        self.trainer.initial = Some(model);
        self.check(ok, || "the initial weights must be finite numbers, at least one".into())
    }

    /// The model after the last batch trained in this process (every process holds it), or the
    /// initial model before the first batch (after a recovery: the restored model once the first
    /// batch after it started).
    pub fn latest_model(&self) -> Option<LinearModel> {
        self.trainer.latest_model()
    }

    /// The points skipped so far in this process (another size, or not finite).
    pub fn skipped(&self) -> u64 {
        self.trainer.skipped()
    }

    fn checked(&self) -> ember::Result<LinearModel> {
        self.trainer.checked("initial weights must be set before training or predicting")
    }

    /// Trains the model on every batch of `points` (Spark's `trainOn`). The model is part of the
    /// job's checkpoint.
    pub fn train_on(&self, points: &DStream<LabeledPoint>) -> ember::Result<()> {
        let initial = self.checked()?;
        let settings = self.settings;
        let (latest, skipped) = (Arc::clone(&self.trainer.latest), Arc::clone(&self.trainer.skipped));
        let trained = points.operator(&format!("{}.train_on", L::NAME), move |b| {
            let (latest, seen, skipped) = (Arc::clone(&latest), Arc::clone(&latest), Arc::clone(&skipped));
            let worker = b.worker() as u64;
            b.train_per_batch_in_rounds(
                "model",
                Training { model: initial.clone(), previous: None },
                settings.num_iterations,
                move |t: Time, i, points: &[LabeledPoint], training: &Training| {
                    // After a recovery, the model the job restored, until this batch updates it.
                    lock(&seen).get_or_insert_with(|| training.model.clone());
                    gradient_sums::<L>(
                        &training.model.weights,
                        points,
                        settings.fraction,
                        (t.millis(), i, worker),
                        &skipped,
                    )
                },
                move |_t, i, parts: Vec<(usize, Sums)>, training: &mut Training| {
                    let more = step(&settings, i, parts, training);
                    // The batch's last iteration: this process's latest model.
                    if !more || i >= settings.num_iterations {
                        *lock(&latest) = Some(training.model.clone());
                    }
                    more
                },
            )
        });
        self.trainer.keep(trained);
        Ok(())
    }

    /// The model after each batch, once per batch (the driver worker's copy).
    pub fn models(&self) -> Option<DStream<LinearModel>> {
        self.trainer.models()
    }

    /// The prediction for every point (Spark's `predictOn`): the margin for linear regression,
    /// 0.0 or 1.0 for logistic regression.
    pub fn predict_on(&self, points: &DStream<Vector>) -> ember::Result<DStream<f64>> {
        Ok(self.predict_on_values(&points.map(|p| ((), p)))?.map(|((), y)| y))
    }

    /// The prediction for every value, keeping the keys (Spark's `predictOnValues`).
    pub fn predict_on_values<K: Data>(&self, points: &DStream<(K, Vector)>) -> ember::Result<DStream<(K, f64)>> {
        let initial = self.checked()?;
        let (skipped, threshold) = (Arc::clone(&self.trainer.skipped), self.settings.threshold);
        let score = move |model: &LinearModel, kvs: Vec<(K, Vector)>, out: &mut Vec<(K, f64)>| {
            for (key, x) in kvs {
                match model.margin(&x) {
                    Some(m) => out.push((key, L::predict(m, threshold))),
                    None => skip(&skipped, model.weights.len(), "prediction"),
                }
            }
        };
        Ok(self.trainer.predict(points, initial, score))
    }
}

impl StreamingSgd<Logistic> {
    /// The L2 regularisation parameter (0 or more).
    pub fn reg_param(mut self, r: f64) -> Self {
        self.settings.reg_param = r;
        self.check(r >= 0.0 && r.is_finite(), || format!("the regularisation parameter must be 0 or more, not {r}"))
    }

    /// The score above which a point is predicted 1.0 (Spark's `setThreshold`, default 0.5).
    pub fn threshold(mut self, t: f64) -> Self {
        self.settings.threshold = t;
        self.check((0.0..=1.0).contains(&t), || format!("the threshold must be in [0, 1], not {t}"))
    }
}

/// One worker's gradient sums over its points (sampled when `fraction < 1`, seeded by
/// `(batch, iteration, worker)`).
fn gradient_sums<L: Loss>(
    weights: &[f64],
    points: &[LabeledPoint],
    fraction: f64,
    seed: (u64, u32, u64),
    skipped: &AtomicU64,
) -> Sums {
    let mut sums = Sums { gradient: vec![0.0; weights.len()], count: 0 };
    let mut state = seed.0
        ^ (u64::from(seed.1) + 42).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ seed.2.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut keep = move || {
        if fraction >= 1.0 {
            return true;
        }
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) < fraction
    };
    for p in points {
        if p.features.size() != weights.len() || !p.features.is_finite() || !p.label.is_finite() {
            skip(skipped, weights.len(), "training");
            continue;
        }
        if keep() {
            L::add_gradient(weights, p, &mut sums.gradient);
            sums.count += 1;
        }
    }
    sums
}

/// Iteration `i` of Spark's gradient descent with every worker's sums; whether another follows.
fn step(settings: &Settings, i: u32, parts: Vec<(usize, Sums)>, training: &mut Training) -> bool {
    let dim = training.model.weights.len();
    let (mut gradient, mut count) = (vec![0.0; dim], 0u64);
    for (_, s) in parts {
        gradient.iter_mut().zip(&s.gradient).for_each(|(a, b)| *a += b);
        count += s.count;
    }
    if i == 1 {
        training.previous = None;
    }
    if count == 0 {
        // An empty batch (Spark trains only on non-empty ones), or an empty mini-batch: no step.
        return i > 1 && i < settings.num_iterations;
    }
    let step = settings.step_size / f64::from(i).sqrt();
    let shrink = 1.0 - step * settings.reg_param;
    let weights = &mut training.model.weights;
    let before = weights.clone();
    for (w, g) in weights.iter_mut().zip(&gradient) {
        *w *= shrink;
        *w += -step * (g / count as f64);
    }
    let converged = training.previous.as_ref().is_some_and(|_| {
        let diff = norm(before.iter().zip(weights.iter()).map(|(a, b)| a - b));
        diff < settings.convergence_tol * norm(weights.iter().copied()).max(1.0)
    });
    training.previous = Some(before);
    !converged
}

fn skip(skipped: &AtomicU64, dim: usize, what: &str) {
    if let Some(n) = count_skipped(skipped) {
        tracing::warn!("regression {what}: skipped a point that does not have {dim} finite features and a finite label; {n} skipped so far");
    }
}
