//! Windows over a stream: window, reduce_by_window (plain and inverse), count_by_window.
//!
//! A window stream with window `W` and slide `S` emits only at its slide times
//! (`t > zero`, `(t - zero) % S == 0`); the window ending at `t` covers the parent's batches in
//! `(t - W, t]` — the `W / P` most recent parent batches, `P` being the parent's slide — so the
//! first windows are partial. `W < S` is allowed (windows then leave gaps). `W` and `S` must be
//! multiples of `P`; otherwise the declaration fails, naming both durations (spec §4.1–4.2).
//!
//! Windows keep per-batch panes on each worker: raw records for `window` (which must return
//! them), one partial aggregate per batch for the reducing forms.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::DStream;
use crate::error::Error;
use crate::exec::state::{routed_to, Rescale};
use crate::operator::Batches;
use crate::time::{whole_millis, Grid, Time};
use crate::Data;

/// The per-batch panes a worker keeps for one window operator: `(batch time, pane)` in time order.
/// Serializable, so a checkpoint can snapshot and restore it per worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Panes<P> {
    pub panes: VecDeque<(u64, P)>,
}

impl<P> Default for Panes<P> {
    fn default() -> Self {
        Panes { panes: VecDeque::new() }
    }
}

impl<P> Panes<P> {
    /// Adds the pane of batch `t` and drops panes at or before `keep_after`.
    pub fn push(&mut self, t: u64, pane: P, keep_after: u64) {
        self.panes.push_back((t, pane));
        while self.panes.front().is_some_and(|(pt, _)| *pt <= keep_after) {
            self.panes.pop_front();
        }
    }

    /// The panes of batches in `(from, to]`.
    pub fn range(&self, from: u64, to: u64) -> impl Iterator<Item = &P> {
        self.panes.iter().filter(move |(t, _)| *t > from && *t <= to).map(|(_, p)| p)
    }

    /// The panes of the window ending at `t`: batches in `(t - W, t]`.
    pub fn in_window(&self, t: Time, w: &WindowSpec) -> impl Iterator<Item = &P> {
        let t = t.millis();
        self.range(t.saturating_sub(w.window), t)
    }
}

impl<X> Panes<Vec<X>> {
    /// Adds `other`'s panes, batch by batch (a rescale merging two workers' panes).
    fn absorb(&mut self, other: Self) {
        for (t, pane) in other.panes {
            match self.panes.iter().position(|(pt, _)| *pt >= t) {
                Some(i) if self.panes[i].0 == t => self.panes[i].1.extend(pane),
                Some(i) => self.panes.insert(i, (t, pane)),
                None => self.panes.push_back((t, pane)),
            }
        }
    }

    /// Panes of records of no particular worker: old worker `w`'s go to new worker `w % workers`.
    pub(crate) fn spread() -> Rescale<Self> {
        Rescale::Spread { empty: Self::default, absorb: Self::absorb }
    }
}

impl<K: std::hash::Hash, V> Panes<Vec<(K, V)>> {
    /// Panes of keyed records, each on its key's worker: they move with their keys.
    pub(crate) fn keyed() -> Rescale<Self> {
        Rescale::Keyed {
            empty: Self::default,
            absorb: Self::absorb,
            retain: |panes, index, peers| {
                for (_, pane) in panes.panes.iter_mut() {
                    pane.retain(|(k, _)| routed_to(crate::exec::key_hash(k), index, peers));
                }
            },
        }
    }
}

/// Window and slide in milliseconds, checked against the parent's slide.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowSpec {
    pub window: u64,
    pub slide: u64,
}

impl WindowSpec {
    pub(crate) fn new(op: &str, parent: u64, window: Duration, slide: Duration) -> Result<Self, Error> {
        let w = whole_millis("the window duration", window).map_err(|e| Error::declaration(op, e))?;
        let s = whole_millis("the slide duration", slide).map_err(|e| Error::declaration(op, e))?;
        if w % parent != 0 {
            return Err(Error::declaration(
                op,
                format!("the window duration of windowed DStream ({w} ms) must be a multiple of the slide duration of parent DStream ({parent} ms)"),
            ));
        }
        if s % parent != 0 {
            return Err(Error::declaration(
                op,
                format!("the slide duration of windowed DStream ({s} ms) must be a multiple of the slide duration of parent DStream ({parent} ms)"),
            ));
        }
        Ok(WindowSpec { window: w, slide: s })
    }
}

impl<T: Data> DStream<T> {
    /// Declares a windowed stream: every parent batch becomes a pane (`pane` folds a worker's share
    /// of it), and at each slide time `emit` sees the panes of the last `window + slide` (enough
    /// for the inverse form's leaving panes).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn windowed<P: Serialize + DeserializeOwned + 'static, U: Data>(
        &self,
        op: &'static str,
        window: Duration,
        slide: Duration,
        rescale: fn() -> Rescale<Panes<P>>,
        pane: impl Fn(Vec<T>) -> P + Send + Sync + 'static,
        emit: impl Fn(&Batches<'_, T>) -> Box<dyn FnMut(Time, &WindowSpec, &Panes<P>, &mut Vec<U>, bool)>
            + Send
            + Sync
            + 'static,
    ) -> DStream<U> {
        let spec = match WindowSpec::new(op, self.slide, window, slide) {
            Ok(s) => s,
            Err(e) => {
                self.ctx.defer(e);
                return DStream::detached(Arc::clone(&self.ctx));
            }
        };
        let (pane, emit) = (Arc::new(pane), Arc::new(emit));
        self.ctx.note_stateful(op, spec.slide);
        let out = self.kit_with_slide(op, spec.slide, move |b| {
            let out_grid = Grid { zero: b.zero(), slide: spec.slide };
            let pane = Arc::clone(&pane);
            // Registered before the panes, as the checkpoints name them.
            let mut emit = emit(&b);
            b.per_batch_state(op, Panes::<P>::default(), rescale(), move |t, records, panes, out| {
                let tm = t.millis();
                panes.push(tm, pane(records), tm.saturating_sub(spec.window + spec.slide));
                // Every batch, so that a state of `emit`'s is saved at every checkpoint (a
                // graceful stop's may fall between two windows); it emits when a window ends.
                emit(t, &spec, panes, out, out_grid.contains(tm));
            })
        });
        self.ctx.note_window(out.node, spec.window);
        out
    }

    /// The union of the batches in each window of length `window`, every `slide`.
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use std::time::Duration;
    /// // Spark's alignment example: 1 s batches, a 3 s window every 2 s -> {1, 2}, {2, 3, 4}, {4, 5, 6}.
    /// let out = run_on_batches((1..=6).map(|i| vec![i]).collect(), |s| s.window(Duration::from_secs(3), Duration::from_secs(2)));
    /// assert_eq!(sorted(out), vec![vec![1, 2], vec![2, 3, 4], vec![4, 5, 6]]);
    /// ```
    pub fn window(&self, window: Duration, slide: Duration) -> DStream<T> {
        self.windowed(
            "window",
            window,
            slide,
            Panes::spread,
            |records| records,
            |_b| {
                Box::new(|t: Time, w: &WindowSpec, panes: &Panes<Vec<T>>, out: &mut Vec<T>, ends: bool| {
                    if ends {
                        out.extend(panes.in_window(t, w).flat_map(|p| p.iter().cloned()))
                    }
                })
            },
        )
    }

    /// Reduces each window with `f` (associative and commutative): Spark's
    /// `reduce(f) -> window -> reduce(f)`. An empty window gives an empty batch.
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use std::time::Duration;
    /// let out = run_on_batches(vec![vec![1, 2], vec![3], vec![], vec![]], |s| {
    ///     s.reduce_by_window(|a: i32, b| a + b, Duration::from_secs(2), Duration::from_secs(1))
    /// });
    /// assert_eq!(out, vec![vec![3], vec![6], vec![3], vec![]]);
    /// ```
    pub fn reduce_by_window(
        &self,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
        window: Duration,
        slide: Duration,
    ) -> DStream<T> {
        let f = Arc::new(f);
        let g = Arc::clone(&f);
        self.reduce(move |a, b| f(a, b)).window(window, slide).reduce(move |a, b| g(a, b))
    }

    /// The incremental form: the window's value is the previous one, minus (`inv`) the batches
    /// that left, plus (`f`) those that entered. Like Spark's, it emits nothing until the first
    /// record ever arrived, then a value for every window (the neutral value for empty ones).
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use std::time::Duration;
    /// let out = run_on_batches(vec![vec![], vec![1, 2], vec![3], vec![], vec![]], |s| {
    ///     s.reduce_by_window_inverse(|a: i32, b| a + b, |a, b| a - b, Duration::from_secs(2), Duration::from_secs(1))
    /// });
    /// assert_eq!(out, vec![vec![], vec![3], vec![6], vec![3], vec![0]]);
    /// ```
    pub fn reduce_by_window_inverse(
        &self,
        f: impl Fn(T, T) -> T + Send + Sync + 'static,
        inv: impl Fn(T, T) -> T + Send + Sync + 'static,
        window: Duration,
        slide: Duration,
    ) -> DStream<T> {
        self.map(|x| ((), x)).reduce_by_key_and_window_inverse(f, inv, window, slide).map(|((), v)| v)
    }

    /// The number of records in each window (Spark's `countByWindow`, incremental).
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use std::time::Duration;
    /// let out = run_on_batches(vec![vec!['a', 'b'], vec!['c'], vec![], vec![]], |s| {
    ///     s.count_by_window(Duration::from_secs(2), Duration::from_secs(1))
    /// });
    /// assert_eq!(out, vec![vec![2], vec![3], vec![1], vec![0]]);
    /// ```
    pub fn count_by_window(&self, window: Duration, slide: Duration) -> DStream<u64> {
        self.map(|_| 1u64).reduce_by_window_inverse(|a, b| a + b, |a, b| a - b, window, slide)
    }
}
