//! What every streaming algorithm keeps beside its settings: the initial model, the trained
//! stream, this process's latest model, the skip count and a configuration mistake; and the
//! ways they are used alike (`latest_model`, `models`, `predict_on`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ember::{DStream, Data, Error};

use crate::vector::Vector;

/// The shared part of an algorithm whose model is `M` and whose per-worker trained state is `S`
/// (`model_of` reads the model in it).
#[derive(Debug)]
pub(crate) struct Trainer<M, S> {
    /// The algorithm's name, as Spark's class.
    pub name: &'static str,
    pub initial: Option<M>,
    /// The model after the last batch this process trained (every process holds the model).
    pub latest: Arc<Mutex<Option<M>>>,
    /// The trained states, on every worker, once `train_on` was declared.
    trained: Mutex<Option<DStream<S>>>,
    model_of: fn(&S) -> &M,
    pub skipped: Arc<AtomicU64>,
    /// Whether a prediction was declared before any training (it scores with the initial model).
    untrained_predictions: AtomicBool,
    problem: Option<String>,
}

impl<M: Data + Sync, S: Data> Trainer<M, S> {
    pub fn new(name: &'static str, model_of: fn(&S) -> &M) -> Self {
        Trainer {
            name,
            initial: None,
            latest: Arc::default(),
            trained: Mutex::new(None),
            model_of,
            skipped: Arc::default(),
            untrained_predictions: AtomicBool::new(false),
            problem: None,
        }
    }

    /// Keeps the first configuration mistake, reported by `train_on` and `predict_on`.
    pub fn refuse(&mut self, problem: impl FnOnce() -> String) {
        self.problem.get_or_insert_with(problem);
    }

    /// The initial model, or the configuration's first mistake (`missing` says what to set).
    pub fn checked(&self, missing: &str) -> ember::Result<M> {
        if let Some(p) = &self.problem {
            return Err(Error::Other(format!("{}: {p}", self.name)));
        }
        self.initial.clone().ok_or_else(|| Error::Other(format!("{}: {missing}", self.name)))
    }

    pub fn latest_model(&self) -> Option<M> {
        lock(&self.latest).clone().or_else(|| self.initial.clone())
    }

    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Keeps the training's stream, as an output operation (as Spark's `trainOn` is: a batch
    /// completes once its model is trained).
    pub fn keep(&self, trained: DStream<S>) {
        trained.foreach_partition(|_t, _states: Vec<S>| {});
        if self.untrained_predictions.load(Ordering::Relaxed) {
            tracing::warn!(
                "{}: predict_on was declared before train_on, so those predictions use the initial model; declare train_on first to predict with the model trained on each batch",
                self.name
            );
        }
        *lock(&self.trained) = Some(trained);
    }

    /// The model after each batch, once per batch (the driver worker's copy).
    pub fn models(&self) -> Option<DStream<M>> {
        let trained = lock(&self.trained).clone()?;
        let model_of = self.model_of;
        Some(trained.operator(&format!("{}.models", self.name), move |b| {
            let driver = b.is_driver();
            b.per_batch("driver's copy", move |_t, states: Vec<S>, out| {
                if driver {
                    out.extend(states.first().map(|s| model_of(s).clone()))
                }
            })
        }))
    }

    /// Scores `points` with the model trained on each batch when training was declared, else
    /// with `initial`.
    pub fn predict<K: Data, U: Data>(
        &self,
        points: &DStream<(K, Vector)>,
        initial: M,
        score: impl Fn(&M, Vec<(K, Vector)>, &mut Vec<U>) + Clone + Send + Sync + 'static,
    ) -> DStream<U> {
        let trained = lock(&self.trained).clone();
        let Some(trained) = trained else {
            self.untrained_predictions.store(true, Ordering::Relaxed);
            return points.map_partitions(move |kvs| {
                let mut out = Vec::new();
                score(&initial, kvs, &mut out);
                out
            });
        };
        let model_of = self.model_of;
        points.operator_with(&format!("{}.predict_on", self.name), &trained, move |p, m| {
            let (score, initial) = (score.clone(), initial.clone());
            p.with_state("predict", m, move |_t, kvs, state: Option<&S>, out| {
                score(state.map_or(&initial, model_of), kvs, out)
            })
        })
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
