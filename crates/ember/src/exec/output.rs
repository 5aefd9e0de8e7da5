//! The output stage: every output operation of a worker in one operator.
//!
//! For each batch time, once the frontier of all its inputs has passed it, the stage runs the
//! output operations valid at that time one at a time, in declaration order — on the driver
//! worker for driver-placed operations (their records are gathered there), on every worker for
//! partition-placed ones. Batches run in time order. The stage also gathers the per-batch input
//! record counts for the listener. It holds a capability at the next batch to run, so the
//! completion probe after it passes `t` only when every worker ran batch `t`'s outputs.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use timely::communication::Pull;
use timely::dataflow::channels::Message;
use timely::dataflow::operators::core::Concatenate;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::InputHandleCore;
use timely::dataflow::operators::generic::Operator;

use super::batch::fire_ready;
use super::{local, to_driver, Batches, BuildEnv};
use crate::error::{Cause, Error, Result};
use crate::exec::plan::Placement;
use crate::listener::{Event, OutputOperationInfo};
use crate::time::Time;
use crate::Data;

/// The function of an output operation: the batch time and this worker's records of the batch.
pub(crate) type Action<T> = Box<dyn FnMut(Time, Vec<T>) -> std::result::Result<(), Cause>>;

/// One output operation's input on one worker.
pub(crate) trait OutputPort {
    /// Moves arrived records into per-batch buffers.
    fn pull(&mut self);
    /// Runs the operation for batch `t` (also when empty).
    fn run(&mut self, t: Time) -> std::result::Result<(), Cause>;
    /// Drops batch `t`'s records without running the operation (its input failed).
    fn run_skipped(&mut self, t: Time);
    /// Drops buffered records (after the final batch).
    fn discard(&mut self);
}

/// An output operation's input: records of type `X` arrive; `gather` makes a batch of them.
struct Port<T: Data, X, P: Pull<Message<u64, Vec<X>>>> {
    input: InputHandleCore<u64, Vec<X>, P>,
    pending: BTreeMap<u64, Vec<X>>,
    gather: fn(Vec<X>) -> Vec<T>,
    action: Option<Action<T>>,
}

/// A driver-placed operation's records arrive as each worker's containers tagged with its
/// index; the batch is worker 0's records, then worker 1's, each in the order sent (messages
/// from one worker to another arrive in order), as Spark's `collect` reads partitions in order.
fn in_worker_order<T>(mut parts: Vec<(usize, Vec<T>)>) -> Vec<T> {
    parts.sort_by_key(|(worker, _)| *worker);
    parts.into_iter().flat_map(|(_, records)| records).collect()
}

impl<T: Data, X: Data, P: Pull<Message<u64, Vec<X>>>> OutputPort for Port<T, X, P> {
    fn pull(&mut self) {
        let pending = &mut self.pending;
        self.input.for_each(|cap, data| pending.entry(*cap.time()).or_default().append(data));
    }

    fn run(&mut self, t: Time) -> std::result::Result<(), Cause> {
        let records = (self.gather)(self.pending.remove(&t.millis()).unwrap_or_default());
        let Some(action) = self.action.as_mut() else {
            return Ok(());
        };
        match catch_unwind(AssertUnwindSafe(|| action(t, records))) {
            Ok(r) => r,
            Err(panic) => Err(Cause::new(panic_message(&panic))),
        }
    }

    fn run_skipped(&mut self, t: Time) {
        self.pending.remove(&t.millis());
    }

    fn discard(&mut self) {
        self.pending.clear();
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_owned()
    }
}

/// Connects `stream` to the stage as one output operation with `action`.
pub(crate) fn port<'s, T: Data>(
    env: &BuildEnv<'s>,
    builder: &mut OperatorBuilder<'s, u64>,
    stream: Batches<'s, T>,
    placement: Placement,
    action: Action<T>,
) -> Box<dyn OutputPort> {
    match placement {
        Placement::Driver => {
            let index = env.index;
            let tagged = stream.unary(local(), "ToDriver", move |_, _| {
                move |input, output| {
                    input.for_each(|cap, data| output.session(&cap).give((index, std::mem::take(data))))
                }
            });
            let input = builder.new_input(tagged, to_driver::<(usize, Vec<T>)>());
            let action = env.is_driver().then_some(action);
            Box::new(Port { input, pending: BTreeMap::new(), gather: in_worker_order, action })
        }
        Placement::Partition => {
            let input = builder.new_input(stream, local());
            Box::new(Port { input, pending: BTreeMap::new(), gather: |records| records, action: Some(action) })
        }
    }
}

/// Builds this worker's output stage; its output stream is what the completion probe watches.
pub(crate) fn build_stage<'s>(env: &mut BuildEnv<'s>) -> Result<Batches<'s, ()>> {
    let rt = Arc::clone(&env.rt);
    let graph = Arc::clone(&rt.graph);
    let mut builder = OperatorBuilder::new("OutputStage".to_owned(), env.scope);
    let mut ports = Vec::with_capacity(graph.outputs.len());
    for spec in &graph.outputs {
        ports.push((spec.attach)(env, &mut builder)?);
    }
    let grids: Vec<_> = graph.outputs.iter().map(|o| env.grid(o.slide)).collect();
    let names: Vec<String> = graph.outputs.iter().map(|o| o.name.clone()).collect();
    let metrics = env.scope.concatenate(std::mem::take(&mut env.metrics));
    let mut metrics_in = builder.new_input(metrics, to_driver::<super::InputReport>());
    let op_counts = env.scope.concatenate(std::mem::take(&mut env.op_counts));
    let mut op_counts_in = builder.new_input(op_counts, to_driver::<(usize, u64)>());
    let (_out, stream) = builder.new_output::<Vec<()>>();
    let batch_grid = env.grid(rt.batch_ms);
    let is_driver = env.is_driver();
    let log = Rc::clone(&env.driver_log);
    let mut guard = env.guard();

    builder.build(move |mut caps| {
        let mut cap = caps.pop();
        if let Some(c) = cap.as_mut() {
            c.downgrade(&batch_grid.first_after(rt.start()));
        }
        let mut counts: BTreeMap<u64, Vec<super::InputReport>> = BTreeMap::new();
        let mut op_records: BTreeMap<u64, BTreeMap<usize, u64>> = BTreeMap::new();
        move |frontiers| {
            for p in ports.iter_mut() {
                p.pull();
            }
            metrics_in.for_each(|c, data| counts.entry(*c.time()).or_default().append(data));
            op_counts_in.for_each(|c, data| {
                let per_node = op_records.entry(*c.time()).or_default();
                for (node, n) in data.drain(..) {
                    *per_node.entry(node).or_default() += n;
                }
            });
            let frontier = frontiers.iter().filter_map(|f| f.frontier().first().copied()).min();
            fire_ready(&mut cap, batch_grid, frontier, &rt, |c| {
                let t = *c.time();
                let time = Time::from_millis(t);
                if is_driver {
                    let now = rt.now();
                    let mut log = log.borrow_mut();
                    log.record_inputs(t, now, counts.remove(&t).unwrap_or_default());
                    let last = log.last_completion;
                    let info = log.batch(t, now);
                    info.operation_records = op_records.remove(&t).unwrap_or_default();
                    rt.publish_metadata(t, &info.stream_input_info);
                    info.processing_start_time = Some(info.submission_time.max(last));
                    rt.post(Event::BatchStarted(info.clone()));
                }
                for (id, port) in ports.iter_mut().enumerate() {
                    if !grids[id].contains(t) {
                        continue;
                    }
                    if rt.failed_at(t) {
                        // An input could not read this batch, user code panicked on it, or an
                        // earlier output of it failed: running its outputs on partial input would
                        // record wrong results (and, with offsets stored beside them, lose data).
                        // The job is stopping with the error.
                        port.run_skipped(time);
                        continue;
                    }
                    let mut info = OutputOperationInfo {
                        batch_time: time,
                        id,
                        name: names[id].clone(),
                        start_time: Some(rt.now()),
                        end_time: None,
                        failure_reason: None,
                    };
                    if is_driver {
                        rt.post(Event::OutputStarted(info.clone()));
                    }
                    let result = port.run(time);
                    info.end_time = Some(rt.now());
                    if let Err(source) = result {
                        info.failure_reason = Some(source.to_string());
                        rt.output_failed(t, Error::Output { id, name: names[id].clone(), time, source });
                    }
                    if is_driver {
                        rt.post(Event::OutputCompleted(info.clone()));
                        log.borrow_mut().record_output(t, rt.now(), info);
                    }
                }
                if rt.failed_at(t) {
                    // The batch failed (here or elsewhere in this process): other processes must
                    // not complete it either.
                    guard.keep(|| c.clone());
                }
                if is_driver && rt.checkpoint_at(t).is_some() {
                    // This process's counts; the commit adds the other processes' (`commit_ready`).
                    let values = rt.accumulators.iter().map(|a| (a.name.clone(), a.local())).collect();
                    log.borrow_mut().accumulators.insert(t, values);
                }
            });
            if cap.is_none() {
                for p in ports.iter_mut() {
                    p.discard();
                }
                counts.clear();
                op_records.clear();
            }
        }
    });
    Ok(stream)
}

use std::rc::Rc;
