//! Joins of two keyed streams, batch by batch: join, left_outer_join, right_outer_join,
//! full_outer_join, cogroup.
//!
//! Only records of the same batch (or of the same window, for windowed streams) match; there is
//! no buffering across batches (spec §3.2). Both sides are exchanged by a hash of the key.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::DStream;
use crate::{Data, Key};

impl<K: Key, V: Data> DStream<(K, V)> {
    /// Every matching pair of the same batch: `(key, (v, w))`.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let (a, b) = (vec![vec![('k', 1), ('x', 0)]], vec![vec![('k', 'a')]]);
    /// let out = run_on_two(a, b, |l, r| l.join(&r));
    /// assert_eq!(out, vec![vec![('k', (1, 'a'))]]);
    /// ```
    pub fn join<W: Data>(&self, other: &DStream<(K, W)>) -> DStream<(K, (V, W))> {
        self.cogroup_with("join", other, |k, vs, ws, out| {
            for v in &vs {
                for w in &ws {
                    out.push((k.clone(), (v.clone(), w.clone())));
                }
            }
        })
    }

    /// Every record of this stream with its matches in `other`, or `None`.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_two(vec![vec![('k', 1)]], vec![vec![('j', 'a')]], |l, r| l.left_outer_join(&r));
    /// assert_eq!(out, vec![vec![('k', (1, None))]]);
    /// ```
    pub fn left_outer_join<W: Data>(&self, other: &DStream<(K, W)>) -> DStream<(K, (V, Option<W>))> {
        self.cogroup_with("left_outer_join", other, |k, vs, ws, out| {
            for v in &vs {
                if ws.is_empty() {
                    out.push((k.clone(), (v.clone(), None)));
                }
                for w in &ws {
                    out.push((k.clone(), (v.clone(), Some(w.clone()))));
                }
            }
        })
    }

    /// Every record of `other` with its matches in this stream, or `None`.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_two(vec![vec![('k', 1)]], vec![vec![('j', 'a')]], |l, r| l.right_outer_join(&r));
    /// assert_eq!(out, vec![vec![('j', (None, 'a'))]]);
    /// ```
    pub fn right_outer_join<W: Data>(&self, other: &DStream<(K, W)>) -> DStream<(K, (Option<V>, W))> {
        self.cogroup_with("right_outer_join", other, |k, vs, ws, out| {
            for w in &ws {
                if vs.is_empty() {
                    out.push((k.clone(), (None, w.clone())));
                }
                for v in &vs {
                    out.push((k.clone(), (Some(v.clone()), w.clone())));
                }
            }
        })
    }

    /// Matches, plus the unmatched records of both sides.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_two(vec![vec![('k', 1)]], vec![vec![('j', 'a')]], |l, r| l.full_outer_join(&r));
    /// assert_eq!(sorted(out), vec![vec![('j', (None, Some('a'))), ('k', (Some(1), None))]]);
    /// ```
    pub fn full_outer_join<W: Data>(&self, other: &DStream<(K, W)>) -> DStream<(K, (Option<V>, Option<W>))> {
        self.cogroup_with("full_outer_join", other, |k, vs, ws, out| {
            if ws.is_empty() {
                out.extend(vs.iter().map(|v| (k.clone(), (Some(v.clone()), None))));
            } else if vs.is_empty() {
                out.extend(ws.iter().map(|w| (k.clone(), (None, Some(w.clone())))));
            } else {
                for v in &vs {
                    for w in &ws {
                        out.push((k.clone(), (Some(v.clone()), Some(w.clone()))));
                    }
                }
            }
        })
    }

    /// For every key of either stream, its values in both: `(key, (vs, ws))`.
    ///
    /// ```
    /// # use ember::testing::*;
    /// let out = run_on_two(vec![vec![('k', 1), ('k', 2)]], vec![vec![('k', 'a')]], |l, r| l.cogroup(&r));
    /// assert_eq!(out, vec![vec![('k', (vec![1, 2], vec!['a']))]]);
    /// ```
    pub fn cogroup<W: Data>(&self, other: &DStream<(K, W)>) -> DStream<(K, (Vec<V>, Vec<W>))> {
        self.cogroup_with("cogroup", other, |k, vs, ws, out| out.push((k, (vs, ws))))
    }

    fn cogroup_with<W: Data, U: Data>(
        &self,
        op: &'static str,
        other: &DStream<(K, W)>,
        emit: impl Fn(K, Vec<V>, Vec<W>, &mut Vec<U>) + Send + Sync + 'static,
    ) -> DStream<U> {
        let emit = Arc::new(emit);
        self.kit2(op, other, move |left, right| {
            let emit = Arc::clone(&emit);
            left.exchange_by_key().per_batch_with(op, right.exchange_by_key(), move |_t, vs, ws, out| {
                let mut vs = side(vs);
                let mut ws = side(ws);
                for (k, v) in vs.drain() {
                    let w = ws.remove(&k).unwrap_or_default();
                    emit(k, v, w, out);
                }
                for (k, w) in ws.drain() {
                    emit(k, Vec::new(), w, out);
                }
            })
        })
    }
}

/// One side's records grouped by key.
fn side<K: Key, V>(records: Vec<(K, V)>) -> FxHashMap<K, Vec<V>> {
    let mut side = FxHashMap::<K, Vec<V>>::default();
    records.into_iter().for_each(|(k, v)| side.entry(k).or_default().push(v));
    side
}
