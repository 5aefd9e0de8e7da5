//! The source primitive: an operator that holds a capability for the open batch.
//!
//! Batch `t` is open while the clock reads below `t`; records a source takes in meanwhile are
//! emitted at once at time `t` (stateless steps stream them through). When the clock reaches `t`
//! the source emits the rest of batch `t` (`close`), reports how many records the batch had, and
//! downgrades its capability to `t + interval`. The frontier passing `t` downstream is then the
//! signal that batch `t` is complete everywhere.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::scheduling::SyncActivator;

use super::runtime::Runtime;
use super::{Batches, BuildEnv, InputReport};
use crate::time::Time;
use crate::Data;

/// What one worker's share of an input stream does.
pub(crate) trait SourceDriver<T>: 'static {
    /// Records available now for the open batch `open`. Returns `true` when more are ready
    /// immediately (the operator runs again at once).
    fn poll(&mut self, _open: Time, _out: &mut Vec<T>) -> bool {
        false
    }

    /// The rest of batch `t`, which is closing. A driver with more than it should emit at once
    /// (a large file) emits a part and says so in [`closing`](Self::closing).
    fn close(&mut self, t: Time, out: &mut Vec<T>);

    /// Whether batch `t`, being closed, has more records to come: the operator then yields, so
    /// that what it emitted moves on, and calls [`close_more`](Self::close_more) next time.
    fn closing(&self) -> bool {
        false
    }

    /// More of the batch being closed (see [`closing`](Self::closing)).
    fn close_more(&mut self, _t: Time, _out: &mut Vec<T>) {}

    /// The source ends (the context stops).
    fn finish(&mut self) {}

    /// Facts of the batch just closed, for the listener (`StreamInputInfo::metadata`).
    fn metadata(&mut self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The position to checkpoint after a closed batch (encoded), if the source has one.
    fn position(&self) -> Option<Vec<u8>> {
        None
    }

    /// Whether the batches' record counts are reported as an input's (a static dataset's are not).
    fn is_input(&self) -> bool {
        true
    }

    /// Restores a position saved by `position`.
    fn restore(&mut self, _position: &[u8]) -> crate::Result<()> {
        Ok(())
    }

    /// A rescale: this worker's position from the positions the old workers saved (by old
    /// worker index; see
    /// [`PlannedSource::restore_rescaled`](crate::operator::PlannedSource::restore_rescaled)).
    /// By default a source that saved any position cannot move.
    fn restore_rescaled(&mut self, positions: Vec<(usize, Vec<u8>)>) -> crate::Result<()> {
        match positions.is_empty() {
            true => Ok(()),
            false => Err(crate::Error::Other("its positions cannot move to another number of workers".into())),
        }
    }
}

/// A rescale: each worker's share of the source rebuilds its position from the old workers'
/// (or cannot move: an error naming it).
fn rescaled_position<T: 'static>(
    ck: &crate::checkpoint::Checkpoints,
    commit: &crate::checkpoint::Commit,
    stream_id: usize,
    name: &str,
    driver: &mut dyn SourceDriver<T>,
) -> crate::Result<()> {
    let mut saved = Vec::new();
    for w in 0..commit.workers {
        if let Some(p) = ck.get_position::<Vec<u8>>(commit.time, stream_id, w)? {
            saved.push((w, p));
        }
    }
    match saved.is_empty() {
        true => Ok(()),
        false => driver.restore_rescaled(saved).map_err(|e| {
            crate::Error::Recovery(format!(
                "checkpoint {} was taken with {} workers: input `{name}` cannot move to another number of workers: {e}; recover with {} workers",
                commit.time, commit.workers, commit.workers
            ))
        }),
    }
}

/// What a source driver may need from its worker.
pub(crate) struct SourceEnv {
    pub rt: Arc<Runtime>,
    pub index: usize,
    /// Wakes the source operator from another thread (a receiver's).
    pub waker: Waker,
}

/// Wakes a source's operator from another thread, when it has records to emit.
pub(crate) struct Waker(SyncActivator);

impl Waker {
    pub fn wake(&self) {
        // An error means the dataflow is gone: nothing to wake.
        let _ = self.0.activate();
    }
}

/// Records a source read on one worker sends to the same worker in a row, when spread.
const SPREAD_BLOCK: u64 = 1024;

/// Builds a source operator for an input read on one worker and spreads its records over all
/// workers: the first `SPREAD_BLOCK` records of every batch go to worker 0, the next to worker 1,
/// and so on in rotation. Each worker's share keeps the arrival order, so worker 0 holds the head
/// of every batch, which is what `print` shows (as Spark's `take` reads partitions in order).
pub(crate) fn spread_source<'s, T: Data>(
    env: &mut BuildEnv<'s>,
    name: &str,
    stream_id: usize,
    make: impl FnOnce(SourceEnv) -> Box<dyn SourceDriver<T>>,
) -> Batches<'s, T> {
    let batches = Rc::new(Cell::new(0u64));
    let s = source_counting(env, name, stream_id, make, Some(Rc::clone(&batches)));
    if env.peers == 1 {
        return s;
    }
    // The exchange's function runs on the sending worker, in the order the source gives its
    // records, so it can count them per batch; the source bumps `batches` when it closes one.
    let (mut seen, mut n) = (0u64, 0u64);
    s.unary(
        Exchange::new(move |_: &T| {
            if batches.get() != seen {
                seen = batches.get();
                n = 0;
            }
            n += 1;
            (n - 1) / SPREAD_BLOCK
        }),
        "Spread",
        |_, _| move |input, output| input.for_each(|cap, data| output.session(&cap).give_container(data)),
    )
}

/// Builds a source operator for input stream `stream_id` on this worker.
pub(crate) fn source<'s, T: Data>(
    env: &mut BuildEnv<'s>,
    name: &str,
    stream_id: usize,
    make: impl FnOnce(SourceEnv) -> Box<dyn SourceDriver<T>>,
) -> Batches<'s, T> {
    source_counting(env, name, stream_id, make, None)
}

fn source_counting<'s, T: Data>(
    env: &mut BuildEnv<'s>,
    name: &str,
    stream_id: usize,
    make: impl FnOnce(SourceEnv) -> Box<dyn SourceDriver<T>>,
    closed: Option<Rc<Cell<u64>>>,
) -> Batches<'s, T> {
    let mut builder = OperatorBuilder::new(name.to_owned(), env.scope);
    let info = builder.operator_info();
    let (data_out, data) = builder.new_output::<Vec<T>>();
    let (count_out, counts) = builder.new_output::<Vec<InputReport>>();
    let mut data_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<T>>>::from(data_out);
    let mut count_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<InputReport>>>::from(count_out);

    let activator = env.scope.activator_for(info.address.clone());
    env.sources.push(activator.clone());
    let mut driver = make(SourceEnv {
        rt: Arc::clone(&env.rt),
        index: env.index,
        waker: Waker(env.scope.worker().sync_activator_for(info.address.to_vec())),
    });
    if let (Some(ck), Some(commit)) = (env.rt.checkpoints.as_deref(), env.rt.recovered.as_ref()) {
        let restored = if commit.workers == env.peers {
            ck.get_position::<Vec<u8>>(commit.time, stream_id, env.index)
                .and_then(|p| p.map_or(Ok(()), |bytes| driver.restore(&bytes)))
        } else {
            rescaled_position(ck, commit, stream_id, name, &mut *driver)
        };
        if let Err(e) = restored {
            env.fail(e);
        }
    }
    let index = env.index;
    let rt = Arc::clone(&env.rt);
    let grid = env.grid(rt.batch_ms);
    let in_flight = rt.settings.max_batches_in_flight;
    let mut guard = env.guard();

    builder.build(move |mut caps| {
        let mut count_cap = caps.pop();
        let mut data_cap = caps.pop();
        for c in data_cap.iter_mut().chain(count_cap.iter_mut()) {
            c.downgrade(&grid.first_after(rt.start()));
        }
        let mut open = grid.first_after(rt.start());
        let mut records = 0u64;
        let mut buf = Vec::new();
        // Batch `open` is being closed in parts (see `SourceDriver::closing`).
        let mut draining = false;
        move |_frontiers| {
            let (Some(dcap), Some(ccap)) = (data_cap.as_mut(), count_cap.as_mut()) else {
                return;
            };
            let stop = rt.final_time();
            let close_through = match stop {
                Some(end) => end,
                // A batch closes when the clock passes it, but never more than `in_flight`
                // batches ahead of the last completed one: when processing falls behind, the
                // source waits (its records stay queued at the source) instead of flooding the
                // dataflow with ever more open batches.
                None => {
                    let due = grid.floor(rt.now()).unwrap_or(0);
                    let done = rt.completed().max(rt.start());
                    due.min(done + in_flight * grid.slide)
                }
            };
            let mut data_session = data_out.activate();
            let mut count_session = count_out.activate();
            while open <= close_through {
                if draining {
                    driver.close_more(Time::from_millis(open), &mut buf);
                } else {
                    driver.close(Time::from_millis(open), &mut buf);
                }
                records += buf.len() as u64;
                if !buf.is_empty() {
                    data_session.session(&*dcap).give_container(&mut buf);
                }
                draining = driver.closing();
                if draining {
                    // The rest of the batch on the next activation, once this part moved on.
                    activator.activate();
                    return;
                }
                let metadata = driver.metadata();
                if driver.is_input() && (records > 0 || !metadata.is_empty()) {
                    count_session.session(&*ccap).give(InputReport { stream: stream_id, records, metadata });
                }
                records = 0;
                if rt.failed_at(open) {
                    guard.keep(|| dcap.clone());
                }
                if let Some(ck) = rt.checkpoint_at(open) {
                    if let Some(p) = driver.position() {
                        if let Err(e) = ck.put_position(open, stream_id, index, &p) {
                            rt.checkpoint_failed(open, e);
                        }
                    }
                }
                open += grid.slide;
                dcap.downgrade(&open);
                ccap.downgrade(&open);
                if let Some(c) = &closed {
                    c.set(c.get() + 1);
                }
            }
            if stop.is_some() {
                driver.finish();
                data_cap = None;
                count_cap = None;
                return;
            }
            // While an earlier batch than the last closed one is still unfinished, records stay at
            // the source (a receiver's bounded buffer, then TCP) instead of queueing in the
            // dataflow; the next close takes them.
            let behind = rt.completed().max(rt.start()) + grid.slide < open - grid.slide;
            let more = !behind && driver.poll(Time::from_millis(open), &mut buf);
            records += buf.len() as u64;
            if !buf.is_empty() {
                data_session.session(&*dcap).give_container(&mut buf);
            }
            if more {
                activator.activate();
            }
        }
    });
    env.metrics.push(counts);
    data
}
