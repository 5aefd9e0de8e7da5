//! Fire-when-batch-complete: the primitive behind every per-batch operator.
//!
//! The operator absorbs records into a per-batch accumulator as they stream in, and when the input
//! frontier passes batch `t` it calls `fire(t, accumulator)` — for **every** time of the stream's
//! grid, empty batches included, in time order. It holds a capability at the next time to fire,
//! so downstream operators (and the completion probe) see a batch as done only once it fired.
//! When the sources end (the context stops), it fires the remaining times up to the final batch.

use std::collections::BTreeMap;
use std::sync::Arc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

use super::runtime::Runtime;
use super::{Batches, Guard};
use crate::time::{Grid, Time};
use crate::Data;

/// Calls `fire` for every grid time the frontier has passed; drops the capability once the
/// sources ended and the final batch fired.
pub(crate) fn fire_ready(
    cap: &mut Option<Capability<u64>>,
    grid: Grid,
    frontier: Option<u64>,
    rt: &Runtime,
    mut fire: impl FnMut(&Capability<u64>),
) {
    while let Some(c) = cap.as_mut() {
        let t = *c.time();
        // Once the context stops, no batch after the final one runs, even where a slower input
        // (a window's) still holds the frontier below a later time.
        let end = rt.final_time();
        if end.is_some_and(|end| t > end) {
            *cap = None;
            return;
        }
        let ready = match frontier {
            Some(f) => t < f,
            None => end.is_some(),
        };
        if !ready {
            if frontier.is_none() {
                *cap = None;
            }
            return;
        }
        fire(c);
        c.downgrade(&(t + grid.slide));
    }
}

/// A per-batch operator with one input.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_unary<'s, T, U, A, P>(
    stream: Batches<'s, T>,
    pact: P,
    name: &str,
    grid: Grid,
    rt: Arc<Runtime>,
    init: impl Fn() -> A + 'static,
    mut absorb: impl FnMut(&mut A, &mut Vec<T>) + 'static,
    mut fire: impl FnMut(Time, A, &mut Vec<U>) + 'static,
) -> Batches<'s, U>
where
    T: Data,
    U: Data,
    A: 'static,
    P: ParallelizationContract<u64, Vec<T>>,
{
    let name = name.to_owned();
    let mut guard = Guard::new(Arc::clone(&rt), stream.scope().peers());
    stream.unary_frontier::<CapacityContainerBuilder<Vec<U>>, _, _, _>(pact, &name.clone(), move |mut cap, _| {
        cap.downgrade(&grid.first_after(rt.start()));
        let mut cap = Some(cap);
        let mut pending: BTreeMap<u64, A> = BTreeMap::new();
        let mut out = Vec::new();
        move |(input, frontier), output| {
            input.for_each(|c, data| {
                let t = grid.ceil(*c.time());
                let acc = pending.entry(t).or_insert_with(&init);
                guard.run(&name, t, || c.retain(0), || absorb(acc, data));
            });
            let f = frontier.frontier().first().copied();
            fire_ready(&mut cap, grid, f, &rt, |c| {
                let t = *c.time();
                let acc = pending.remove(&t).unwrap_or_else(&init);
                let fired = guard.run(&name, t, || c.clone(), || fire(Time::from_millis(t), acc, &mut out));
                if fired.is_some() && !out.is_empty() {
                    output.session(c).give_container(&mut out);
                }
                out.clear();
            });
            if cap.is_none() {
                pending.clear();
            }
        }
    })
}

/// A per-batch operator with two inputs (joins, cogroup).
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_binary<'s, T1, T2, U, A, B, P1, P2>(
    left: Batches<'s, T1>,
    right: Batches<'s, T2>,
    pacts: (P1, P2),
    name: &str,
    grid: Grid,
    rt: Arc<Runtime>,
    init: impl Fn() -> (A, B) + 'static,
    mut absorb_left: impl FnMut(&mut A, &mut Vec<T1>) + 'static,
    mut absorb_right: impl FnMut(&mut B, &mut Vec<T2>) + 'static,
    mut fire: impl FnMut(Time, A, B, &mut Vec<U>) + 'static,
) -> Batches<'s, U>
where
    T1: Data,
    T2: Data,
    U: Data,
    A: 'static,
    B: 'static,
    P1: ParallelizationContract<u64, Vec<T1>>,
    P2: ParallelizationContract<u64, Vec<T2>>,
{
    let name = name.to_owned();
    let mut guard = Guard::new(Arc::clone(&rt), left.scope().peers());
    left.binary_frontier::<_, CapacityContainerBuilder<Vec<U>>, _, _, _, _>(
        right,
        pacts.0,
        pacts.1,
        &name.clone(),
        move |mut cap, _| {
            cap.downgrade(&grid.first_after(rt.start()));
            let mut cap = Some(cap);
            let mut pending: BTreeMap<u64, (A, B)> = BTreeMap::new();
            let mut out = Vec::new();
            move |(in1, f1), (in2, f2), output| {
                in1.for_each(|c, data| {
                    let t = grid.ceil(*c.time());
                    let acc = &mut pending.entry(t).or_insert_with(&init).0;
                    guard.run(&name, t, || c.retain(0), || absorb_left(acc, data));
                });
                in2.for_each(|c, data| {
                    let t = grid.ceil(*c.time());
                    let acc = &mut pending.entry(t).or_insert_with(&init).1;
                    guard.run(&name, t, || c.retain(0), || absorb_right(acc, data));
                });
                let f = match (f1.frontier().first().copied(), f2.frontier().first().copied()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                fire_ready(&mut cap, grid, f, &rt, |c| {
                    let t = *c.time();
                    let (a, b) = pending.remove(&t).unwrap_or_else(&init);
                    let fired = guard.run(&name, t, || c.clone(), || fire(Time::from_millis(t), a, b, &mut out));
                    if fired.is_some() && !out.is_empty() {
                        output.session(c).give_container(&mut out);
                    }
                    out.clear();
                });
                if cap.is_none() {
                    pending.clear();
                }
            }
        },
    )
}
