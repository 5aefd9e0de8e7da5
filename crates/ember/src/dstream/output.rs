//! Output operations: print, foreach_batch, foreach_partition, save_as_text_files,
//! collect_batches.
//!
//! Output operations run once per batch, one at a time, in declaration order, and batches run
//! in time order (spec §5.4). Driver-placed operations (`print`, `foreach_batch`,
//! `collect_batches`) gather the whole batch on the driver worker — for small results;
//! `foreach_partition` and `save_as_text_files` run on every worker with its own share — the
//! scalable pattern (spec §5.3). An output function may return `()` or a `Result`; an `Err` or a
//! panic is reported to listeners and returned by `await_termination`, and later batches go on.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::DStream;
use crate::clock::lock;
use crate::error::{Cause, Error};
use crate::exec::output::{port, Action};
use crate::exec::plan::{OutputSpec, Placement};
use crate::exec::BuildEnv;
use crate::operator::Sink;
use crate::print::Printable;
use crate::time::Time;
use crate::Data;

/// What an output function may return: `()`, or a `Result` whose error is an error type
/// (`ember::Error`, `std::io::Error`, a client's error) or text. The error is kept whole as the
/// source of the [`Error::Output`] that the job reports, so it can be downcast to its type.
pub trait OutputResult {
    /// The outcome, with the error kept as a [`Cause`].
    fn into_output_result(self) -> Result<(), Cause>;
}

impl OutputResult for () {
    fn into_output_result(self) -> Result<(), Cause> {
        Ok(())
    }
}

impl<E: Into<Box<dyn std::error::Error + Send + Sync>>> OutputResult for Result<(), E> {
    fn into_output_result(self) -> Result<(), Cause> {
        self.map_err(Cause::new)
    }
}

/// The batches an output operation collected, for tests (see [`DStream::collect_batches`]).
pub struct BatchCollector<T> {
    batches: Arc<Mutex<Vec<(Time, Vec<T>)>>>,
}

impl<T: Clone> BatchCollector<T> {
    /// Every batch collected so far, in batch order, with its time.
    pub fn batches(&self) -> Vec<(Time, Vec<T>)> {
        lock(&self.batches).clone()
    }
}

/// The text `print_n(n)` prints for one batch: Spark's exact layout (spec §5.1).
pub fn format_batch<T: Printable>(time: Time, records: &[T], n: usize) -> String {
    let dashes = "-------------------------------------------";
    let mut s = format!("{dashes}\nTime: {time}\n{dashes}\n");
    for r in records.iter().take(n) {
        r.print_to(&mut s);
        s.push('\n');
    }
    if records.len() > n {
        s.push_str("...\n");
    }
    s.push('\n');
    s
}

/// The directory name of batch `time` for `save_as_text_files` (Spark's `rddToFileName`):
/// `prefix-<ms>[.suffix]`, or `<ms>[.suffix]` for an empty prefix.
pub fn batch_file_name(prefix: &str, suffix: &str, time: Time) -> String {
    let mut name = if prefix.is_empty() { time.millis().to_string() } else { format!("{prefix}-{}", time.millis()) };
    if !suffix.is_empty() {
        name.push('.');
        name.push_str(suffix);
    }
    name
}

impl<T: Data> DStream<T> {
    fn output(
        &self,
        name: &str,
        placement: Placement,
        make: impl Fn(&BuildEnv<'_>) -> Action<T> + Send + Sync + 'static,
    ) {
        let node = self.node;
        self.ctx.add_output(OutputSpec {
            name: name.to_owned(),
            node,
            slide: self.slide,
            attach: Arc::new(move |env, builder| {
                let stream = env.get::<T>(node)?;
                let action = make(env);
                Ok(port(env, builder, stream, placement, action))
            }),
        });
    }

    /// Prints the first 10 records of every batch (see [`DStream::print_n`]).
    pub fn print(&self)
    where
        T: Printable,
    {
        self.print_n(10)
    }

    /// Prints the first `n` records of every batch to standard output, in Spark's layout: a line
    /// of 43 dashes, `Time: <ms> ms`, dashes, the records, `...` when the batch has more than `n`,
    /// and an empty line. Empty batches print their header too.
    ///
    /// ```
    /// # use ember::dstream::output::format_batch;
    /// # use ember::Time;
    /// assert_eq!(
    ///     format_batch(Time::from_millis(2000), &[("a", 1)], 10),
    ///     "-------------------------------------------\nTime: 2000 ms\n-------------------------------------------\n(a,1)\n\n"
    /// );
    /// ```
    pub fn print_n(&self, n: usize)
    where
        T: Printable,
    {
        // Like Spark's take(n + 1), which reads partitions in order: each worker sends at most
        // n + 1 records and the driver gathers worker 0's first. Inputs read on one worker give
        // worker 0 the head of every batch (see `spread_source`), so print shows the first
        // records in arrival order.
        // The records pass as they arrive: no wait for the batch before the output's own.
        let limited = self.kit("print (take)", move |b| b.take_per_batch(n + 1)).internal();
        limited.output("print", Placement::Driver, move |_env| {
            Box::new(move |t, records: Vec<T>| {
                let text = format_batch(t, &records, n);
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|_| out.flush())
                    .map_err(|e| Cause::new(Error::io("writing to stdout", e)))
            })
        })
    }

    /// Calls `f` once per batch, on the driver worker, with the batch time and the whole batch
    /// (gathered from every worker, worker 0's records first: for small results).
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use std::sync::{Arc, Mutex};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s2 = seen.clone();
    /// let ssc = manual_context("local[1]");
    /// ssc.queue_stream(vec![vec![1, 2]], true).foreach_batch(move |_t, xs: Vec<i32>| s2.lock().unwrap().push(xs.len()));
    /// ssc.run_batches(2).unwrap();
    /// ssc.stop(false).unwrap();
    /// assert_eq!(*seen.lock().unwrap(), vec![2, 0]);
    /// ```
    pub fn foreach_batch<R: OutputResult>(&self, f: impl FnMut(Time, Vec<T>) -> R + Send + 'static) {
        let f = Arc::new(Mutex::new(f));
        self.output("foreach_batch", Placement::Driver, move |_env| {
            let f = Arc::clone(&f);
            Box::new(move |t, records| (lock(&f))(t, records).into_output_result())
        })
    }

    /// Calls `f` once per batch on the driver worker with the batch time alone: no record leaves
    /// its worker, so it costs nothing per record. The hook for work that needs only the batch's
    /// time, such as committing a Kafka stream's offsets
    /// (`kafka.stream().on_batch(move |t| stream.commit_async(&ranges.get(t)))`), where
    /// `foreach_batch` would gather every record on the driver first.
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use std::sync::{Arc, Mutex};
    /// let times = Arc::new(Mutex::new(Vec::new()));
    /// let seen = times.clone();
    /// let ssc = manual_context("local[2]");
    /// ssc.queue_stream(vec![vec![1, 2], vec![3]], true).on_batch(move |t| seen.lock().unwrap().push(t.millis()));
    /// ssc.run_batches(3).unwrap();
    /// ssc.stop(false).unwrap();
    /// assert_eq!(*times.lock().unwrap(), vec![1000, 2000, 3000]);
    /// ```
    pub fn on_batch<R: OutputResult>(&self, f: impl FnMut(Time) -> R + Send + 'static) {
        let f = Arc::new(Mutex::new(f));
        // Records are dropped where they are; the driver's output runs on the empty batch.
        let nothing = self.filter(|_| false).internal();
        nothing.output("on_batch", Placement::Driver, move |_env| {
            let f = Arc::clone(&f);
            Box::new(move |t, _none: Vec<T>| (lock(&f))(t).into_output_result())
        })
    }

    /// Calls `f` once per batch on every worker, with the batch time and that worker's share of
    /// the batch (also when empty): open one connection per call, not per record.
    pub fn foreach_partition<R: OutputResult>(&self, f: impl Fn(Time, Vec<T>) -> R + Send + Sync + 'static) {
        let f = Arc::new(f);
        self.output("foreach_partition", Placement::Partition, move |_env| {
            let f = Arc::clone(&f);
            Box::new(move |t, records| f(t, records).into_output_result())
        })
    }

    /// Collects every batch on the driver, for tests: `collector.batches()` returns
    /// `(time, records)` in batch order.
    pub fn collect_batches(&self) -> BatchCollector<T> {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&batches);
        self.foreach_batch(move |t, records| lock(&sink).push((t, records)));
        BatchCollector { batches }
    }

    /// Writes every batch to `sink`: each worker writes its share of the batch
    /// ([`Sink::write`]), then, once the batch completed on every worker and every output of it
    /// ran, the driver commits it ([`Sink::commit`]), once. A failed write or commit fails the
    /// batch as a failed output does. `save_as_text_files` is such a sink.
    ///
    /// ```
    /// # use ember::testing::*;
    /// # use std::sync::{Arc, Mutex};
    /// use ember::operator::Sink;
    /// use ember::Time;
    ///
    /// /// Keeps each worker's share as written, and the batches committed.
    /// #[derive(Default, Clone)]
    /// struct Memory(Arc<Mutex<(Vec<i32>, Vec<u64>)>>);
    ///
    /// impl Sink<i32> for Memory {
    ///     fn write(&self, _t: Time, _worker: usize, records: Vec<i32>) -> ember::Result<()> {
    ///         self.0.lock().unwrap().0.extend(records);
    ///         Ok(())
    ///     }
    ///     fn commit(&self, t: Time, _workers: usize) -> ember::Result<()> {
    ///         self.0.lock().unwrap().1.push(t.millis());
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let memory = Memory::default();
    /// let ssc = manual_context("local[2]");
    /// ssc.queue_stream(vec![vec![1, 2], vec![3]], true).sink("memory", memory.clone());
    /// ssc.run_batches(2).unwrap();
    /// ssc.stop(false).unwrap();
    /// let (mut written, committed) = memory.0.lock().unwrap().clone();
    /// written.sort();
    /// assert_eq!((written, committed), (vec![1, 2, 3], vec![1000, 2000]));
    /// ```
    pub fn sink(&self, name: &str, sink: impl Sink<T>) {
        let sink = Arc::new(sink);
        let label = name.to_owned();
        // The same key in every process: sinks are declared in the same order everywhere.
        let key =
            format!("{name}#{}", self.extension::<SinkIds>().0.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        // The batches the sink wrote in this process (its workers share the set).
        let written = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
        self.output(name, Placement::Partition, move |env| {
            let (sink, rt, index, peers, is_driver) =
                (Arc::clone(&sink), Arc::clone(&env.rt), env.index, env.peers, env.is_driver());
            if !is_driver && index % rt.settings.local_workers().max(1) == 0 {
                // Another process's local leader: it sends this process's figures of each batch
                // the sink wrote here.
                let (s, written) = (Arc::clone(&sink), Arc::clone(&written));
                let metrics = move |t: Time| {
                    let mut w = lock(&written);
                    let here = w.remove(&t.millis());
                    w.retain(|&b| b > t.millis());
                    here.then(|| s.metrics(t))
                };
                rt.sink_reports.register(key.clone(), label.clone(), Arc::new(metrics));
            }
            let (label, key, written) = (label.clone(), key.clone(), Arc::clone(&written));
            Box::new(move |t, records: Vec<T>| {
                lock(&written).insert(t.millis());
                sink.write(t, index, records).map_err(Cause::new)?;
                if is_driver {
                    let (sink, label, key) = (Arc::clone(&sink), label.clone(), key.clone());
                    let commit_rt = Arc::clone(&rt);
                    let commit = move || {
                        sink.commit(t, peers)
                            .map_err(|e| Error::external(format!("committing `{label}` at batch {t}"), e))?;
                        // Process 0's figures; listeners get the sums over every process.
                        commit_rt.report_sink(t.millis(), &key, &label, sink.metrics(t));
                        Ok(())
                    };
                    rt.add_commit(t.millis(), Box::new(commit));
                }
                Ok(())
            })
        })
    }
}

/// Numbers the sinks of a context in declaration order (a context extension).
#[derive(Default)]
struct SinkIds(std::sync::atomic::AtomicUsize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_spark() {
        let t = Time::from_millis(1_357_008_430_000);
        assert_eq!(batch_file_name("out/counts", "txt", t), "out/counts-1357008430000.txt");
        assert_eq!(batch_file_name("out/counts", "", t), "out/counts-1357008430000");
        assert_eq!(batch_file_name("", "txt", t), "1357008430000.txt");
        assert_eq!(batch_file_name("", "", t), "1357008430000");
    }

    #[test]
    fn print_layout_is_exact() {
        let dashes = "-".repeat(43);
        let t = Time::from_millis(5000);
        assert_eq!(format_batch::<i32>(t, &[], 10), format!("{dashes}\nTime: 5000 ms\n{dashes}\n\n"));
        let ten: Vec<i32> = (1..=10).collect();
        assert!(!format_batch(t, &ten, 10).contains("..."), "exactly n records: no ellipsis");
        let eleven: Vec<i32> = (1..=11).collect();
        let text = format_batch(t, &eleven, 10);
        assert!(text.ends_with("10\n...\n\n") && !text.contains("11\n"), "{text}");
    }
}
