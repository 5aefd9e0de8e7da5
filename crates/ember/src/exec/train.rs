//! The kit's primitives for learning on streams: a state trained batch after batch
//! ([`Batches::train_per_batch`]), and in rounds within each batch
//! ([`Batches::train_per_batch_in_rounds`]). Both keep a copy of the state on every worker, folded
//! from all workers' partial results in worker order, checkpointed with the job's state.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use super::batch::fire_ready;
use super::operator::Batches;
use crate::time::Time;
use crate::Data;

impl<'s, T: Data> Batches<'s, T> {
    /// A state trained on the stream, batch after batch (the primitive of streaming machine
    /// learning): each worker turns its share of batch `t` into `partial` results using the state
    /// as it was after batch `t - 1` (`initial` before the first); every worker receives the
    /// partials of all workers, tagged with the worker that made them and in worker order, and
    /// `update` folds them into its copy of the state, so every worker holds the same state. The
    /// output is the state after each batch, one record per worker. Only the partials travel,
    /// never the batch. The state is part of the checkpoint: a recovered job continues from it.
    ///
    /// ```
    /// # use ember::testing::*;
    /// // A running count, where each batch counts its records above the mean before it.
    /// let out = run_on_batches(vec![vec![1.0, 3.0], vec![5.0, 0.5]], |s| {
    ///     s.operator("above the mean so far", |b| {
    ///         b.train_per_batch(
    ///             "mean",
    ///             (0.0, 0u64, 0u64),
    ///             |_t, xs: Vec<f64>, &(sum, n, _): &(f64, u64, u64), out| {
    ///                 let above = xs.iter().filter(|x| n > 0 && **x > sum / n as f64).count() as u64;
    ///                 out.push((xs.iter().sum::<f64>(), xs.len() as u64, above))
    ///             },
    ///             |_t, parts: Vec<(usize, (f64, u64, u64))>, (sum, n, above): &mut (f64, u64, u64)| {
    ///                 parts.into_iter().for_each(|(_worker, (s, c, a))| { *sum += s; *n += c; *above += a; })
    ///             },
    ///         )
    ///         .per_batch("one", |_t, states: Vec<(f64, u64, u64)>, out| out.extend(states.into_iter().take(1)))
    ///     })
    /// });
    /// // Batch 2: 5.0 is above the mean 2.0 of batch 1, 0.5 is not.
    /// assert_eq!(out, vec![vec![(4.0, 2, 0)], vec![(9.5, 4, 1)]]);
    /// ```
    pub fn train_per_batch<S: Data, P: Data>(
        self,
        name: &str,
        initial: S,
        mut partial: impl FnMut(Time, Vec<T>, &S, &mut Vec<P>) + 'static,
        mut update: impl FnMut(Time, Vec<(usize, P)>, &mut S) + 'static,
    ) -> Batches<'s, S> {
        use timely::dataflow::operators::core::{ConnectLoop, Feedback};
        // Batch `t` may start only once every worker updated the state with batch `t - 1`: the
        // states come back through a loop delayed by one batch. Their records are not needed:
        // each worker reads its own copy, which is also the one a recovered job restores.
        let (handle, previous) = self.stream.scope().feedback::<Vec<S>>(self.kit.grid.slide);
        let previous = Batches { stream: previous, kit: Rc::clone(&self.kit) };
        let (worker, state) = (self.kit.index, self.stateful(name, initial, super::state::Rescale::Replicated));
        let current = Rc::clone(&state.cell);
        let trained = self
            .per_batch_with(name, previous, move |t, records, _previous, out: &mut Vec<(usize, P)>| {
                let mut parts = Vec::new();
                partial(t, records, &current.borrow(), &mut parts);
                out.extend(parts.into_iter().map(|p| (worker, p)));
            })
            .broadcast()
            .per_batch(name, move |t, mut parts, out| {
                parts.sort_by_key(|(w, _)| *w);
                state.update(t.millis(), |s| {
                    update(t, parts, s);
                    out.push(s.clone());
                })
            });
        trained.stream.clone().connect_loop(handle);
        trained
    }

    /// Like [`train_per_batch`](Self::train_per_batch), in rounds within each batch (the
    /// primitive of iterative learning, such as gradient descent): each worker keeps its share
    /// of batch `t`; in round `i` (from 1) it computes one `partial` of its share with the state
    /// as the previous round left it; every worker receives the partials of all workers, in
    /// worker order, and `update` folds them into its copy of the state and says whether another
    /// round follows (at most `max_rounds`). `update` must decide alike on every worker, from the
    /// partials and the state alone. The output is the state after each batch, one record per
    /// worker; it is checkpointed, and a recovered job continues from it.
    ///
    /// ```
    /// # use ember::testing::*;
    /// // Newton's square root of the batch's sum: one round per step, until it settles.
    /// let out = run_on_batches(vec![vec![1.0, 1.0], vec![7.0]], |s| {
    ///     s.operator("root", |b| {
    ///         b.train_per_batch_in_rounds(
    ///             "root",
    ///             (0.0f64, 1.0f64),
    ///             50,
    ///             |_t, _round, xs: &[f64], _state: &(f64, f64)| xs.iter().sum::<f64>(),
    ///             |_t, round, parts: Vec<(usize, f64)>, (total, root): &mut (f64, f64)| {
    ///                 if round == 1 {
    ///                     *total += parts.iter().map(|(_, p)| p).sum::<f64>();
    ///                 }
    ///                 let next = (*root + *total / *root) / 2.0;
    ///                 let moved = (next - *root).abs() > 1e-12;
    ///                 *root = next;
    ///                 moved
    ///             },
    ///         )
    ///         .per_batch("one", |_t, states: Vec<(f64, f64)>, out| out.extend(states.into_iter().take(1)))
    ///     })
    /// });
    /// assert_eq!(out[0][0].0, 2.0);
    /// assert!((out[0][0].1 - 2f64.sqrt()).abs() < 1e-12 && (out[1][0].1 - 3.0).abs() < 1e-12);
    /// ```
    pub fn train_per_batch_in_rounds<S: Data, P: Data>(
        self,
        name: &str,
        initial: S,
        max_rounds: u32,
        mut partial: impl FnMut(Time, u32, &[T], &S) -> P + 'static,
        mut update: impl FnMut(Time, u32, Vec<(usize, P)>, &mut S) -> bool + 'static,
    ) -> Batches<'s, S> {
        use std::cell::{Cell, RefCell};
        use timely::container::CapacityContainerBuilder;
        use timely::dataflow::operators::core::{ConnectLoop, Feedback};
        use timely::dataflow::operators::Capability;

        let kit = Rc::clone(&self.kit);
        let (grid, worker, peers) = (kit.grid, kit.index, kit.peers);
        let scope = self.stream.scope();
        // Batch `t` starts once every worker finished batch `t - 1` (a loop delayed by a batch).
        let (handle, previous) = scope.feedback::<Vec<S>>(grid.slide);
        let state = self.stateful(name, initial, super::state::Rescale::Replicated);
        let (cell, g_cell) = (Rc::clone(&state.cell), Rc::clone(&state.cell));
        // The folding operator tells the partial operator of its worker which round of the batch
        // to compute next (round 0: the batch is done), and wakes it.
        let next: Rc<Cell<Option<(u64, u32)>>> = Rc::default();
        let wake: Rc<RefCell<Option<timely::scheduling::Activator>>> = Rc::default();
        let (g_next, g_wake, g_rt, g_name) = (Rc::clone(&next), Rc::clone(&wake), Arc::clone(&kit.rt), name.to_owned());
        let mut g_guard = kit.guard();
        let partials = self.stream.binary_frontier::<_, CapacityContainerBuilder<Vec<(usize, u32, P)>>, _, _, _, _>(
            previous,
            Pipeline,
            Pipeline,
            name,
            move |mut cap, info| {
                *g_wake.borrow_mut() = Some(scope.activator_for(info.address));
                cap.downgrade(&grid.first_after(g_rt.start()));
                let mut cap = Some(cap);
                let mut pending: BTreeMap<u64, Vec<T>> = BTreeMap::new();
                // The batch in rounds: its capability and this worker's records.
                let mut rounds: Option<(Capability<u64>, Vec<T>)> = None;
                move |(records, f1), (states, f2), output| {
                    records.for_each(|c, data| pending.entry(grid.ceil(*c.time())).or_default().append(data));
                    states.for_each(|_, _| {});
                    if let Some((t, round)) = g_next.take() {
                        match rounds.as_ref() {
                            Some((c, records)) if round > 0 && *c.time() == t => {
                                let s = &*g_cell.borrow();
                                let p = g_guard.run(
                                    &g_name,
                                    t,
                                    || c.clone(),
                                    || partial(Time::from_millis(t), round, records, s),
                                );
                                match p {
                                    Some(p) => output.session(c).give((worker, round, p)),
                                    None => rounds = None,
                                }
                            }
                            _ => rounds = None,
                        }
                    }
                    if rounds.as_ref().is_some_and(|(c, _)| g_rt.failed_at(*c.time())) {
                        rounds = None;
                    }
                    let f = match (f1.frontier().first().copied(), f2.frontier().first().copied()) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    fire_ready(&mut cap, grid, f, &g_rt, |c| {
                        let t = *c.time();
                        let records = pending.remove(&t).unwrap_or_default();
                        let s = &*g_cell.borrow();
                        if let Some(p) =
                            g_guard.run(&g_name, t, || c.clone(), || partial(Time::from_millis(t), 1, &records, s))
                        {
                            output.session(c).give((worker, 1, p));
                            rounds = Some((c.clone(), records));
                        }
                    });
                    if cap.is_none() {
                        pending.clear();
                    }
                }
            },
        );
        let partials = Batches { stream: partials, kit: Rc::clone(&kit) }.broadcast().stream;
        let (rt, u_name) = (Arc::clone(&kit.rt), name.to_owned());
        let mut u_guard = kit.guard();
        let wake_partials = move |next_round: (u64, u32)| {
            next.set(Some(next_round));
            if let Some(a) = wake.borrow().as_ref() {
                a.activate();
            }
        };
        let trained =
            partials.unary_frontier::<CapacityContainerBuilder<Vec<S>>, _, _, _>(Pipeline, name, move |_, _| {
                let mut got: BTreeMap<(u64, u32), Vec<(usize, P)>> = BTreeMap::new();
                let mut caps: BTreeMap<u64, Capability<u64>> = BTreeMap::new();
                move |(input, _frontier), output| {
                    input.for_each(|c, data| {
                        let t = grid.ceil(*c.time());
                        caps.entry(t).or_insert_with(|| c.retain(0));
                        for (w, round, p) in data.drain(..) {
                            got.entry((t, round)).or_default().push((w, p));
                        }
                    });
                    let complete: Vec<(u64, u32)> =
                        got.iter().filter(|(_, v)| v.len() == peers).map(|(k, _)| *k).collect();
                    for (t, round) in complete {
                        let (Some(mut parts), Some(cap)) = (got.remove(&(t, round)), caps.get(&t)) else { continue };
                        parts.sort_by_key(|(w, _)| *w);
                        let more = u_guard.run(
                            &u_name,
                            t,
                            || cap.clone(),
                            || update(Time::from_millis(t), round, parts, &mut cell.borrow_mut()),
                        );
                        match more {
                            Some(true) if round < max_rounds => wake_partials((t, round + 1)),
                            Some(_) => {
                                if let Some(cap) = caps.remove(&t) {
                                    state.update(t, |s| output.session(&cap).give(s.clone()));
                                }
                                wake_partials((t, 0));
                            }
                            None => {
                                caps.remove(&t);
                                wake_partials((t, 0));
                            }
                        }
                    }
                    // A failed batch's rounds end where they are.
                    caps.retain(|t, _| !rt.failed_at(*t));
                    got.retain(|(t, _), _| !rt.failed_at(*t));
                }
            });
        trained.clone().connect_loop(handle);
        Batches { stream: trained, kit }
    }
}
