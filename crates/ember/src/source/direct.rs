//! Direct input streams: sources without receivers whose batches are defined by a *plan*.
//!
//! A [`PlannedSource`] runs on every worker and reads that worker's share of an external log (a
//! Kafka direct stream reads the partitions placed on its worker). When batch `t` closes, the
//! reader decides what the batch reads (its plan, e.g. offset ranges), the plan is written to the
//! checkpoint directory's batch log **before** anything is read, and then the reader reads exactly
//! what the plan says. After a crash, the batches after the last checkpoint are re-run with their
//! logged plans, so they hold the same records as the first time. This is Spark's direct Kafka
//! stream, generalised; Ember's file stream and `ember-kafka`'s and `ember-kinesis`' direct
//! streams are planned sources, and the write-ahead-log receiver logs its blocks through the same
//! protocol (one function in the storage layer).
//!
//! A source whose batch may not fit in memory reads it in parts
//! ([`PlannedSource::has_more`]): each part moves on through the dataflow before the next is read.
//!
//! What each worker reports of a batch ([`PlannedSource::metadata`]) reaches the listener in
//! [`StreamInputInfo::metadata`](crate::StreamInputInfo::metadata) and output operations through
//! the stream's [`BatchMetadata`] handle, before the batch's outputs run.
//!
//! With `backpressure.enabled`, the reader gets the stream's estimated rate (records/s for the
//! whole stream, from the PID estimator; `backpressure.initial_rate` before the first estimate)
//! when it plans a batch. If a read fails, the batch's outputs do not run and the job stops with
//! [`Error::Input`]; a restart from the checkpoint re-reads the logged plan.

use std::sync::Arc;

use crate::context::StreamingContext;
use crate::dstream::DStream;
use crate::error::{Cause, Error};
use crate::exec::runtime::Runtime;
use crate::exec::source::{source, spread_source, SourceDriver, SourceEnv};
use crate::operator::{BatchMetadata, PlanEnv, PlannedSource};
use crate::rate::RateLimiter;
use crate::time::Time;

struct PlannedDriver<R: PlannedSource> {
    reader: R,
    rt: Arc<Runtime>,
    name: String,
    /// This reader's entries in the batch log.
    key: String,
    /// Whether it reads on the driver only (then its position is old worker 0's).
    on_driver: bool,
    rate: Arc<RateLimiter>,
    failed: bool,
    meta: Vec<(String, String)>,
}

impl<R: PlannedSource> PlannedDriver<R> {
    fn fail(&mut self, t: Time, e: Error) {
        self.failed = true;
        self.rt.fail_batch(t.millis(), Error::Input { stream: self.name.clone(), time: t, source: Cause::new(e) });
    }

    /// Batch `t`'s plan: the logged one when the batch ran before, else a new one, logged first.
    fn plan(&mut self, t: Time) -> crate::Result<R::Plan> {
        let rate = self.rt.settings.backpressure.then(|| self.rate.rate()).filter(|r| *r > 0.0);
        match self.rt.checkpoints.clone() {
            Some(ck) => Ok(ck.replay_or_log(t.millis(), &self.key, || self.reader.plan(t, rate))?.0),
            None => self.reader.plan(t, rate),
        }
    }

    fn read(&mut self, t: Time, out: &mut Vec<R::Item>) -> crate::Result<()> {
        let plan = self.plan(t)?;
        self.reader.read(t, &plan, out)?;
        self.meta = self.reader.metadata(&plan);
        Ok(())
    }
}

impl<R: PlannedSource> SourceDriver<R::Item> for PlannedDriver<R> {
    fn close(&mut self, t: Time, out: &mut Vec<R::Item>) {
        if self.failed {
            return;
        }
        if let Err(e) = self.read(t, out) {
            out.clear();
            self.fail(t, e);
        }
    }

    fn closing(&self) -> bool {
        !self.failed && self.reader.has_more()
    }

    fn close_more(&mut self, t: Time, out: &mut Vec<R::Item>) {
        if let Err(e) = self.reader.read_more(t, out) {
            out.clear();
            self.fail(t, e);
        }
    }

    fn metadata(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.meta)
    }

    fn finish(&mut self) {
        self.reader.stop();
    }

    fn position(&self) -> Option<Vec<u8>> {
        self.reader.position()
    }

    fn restore(&mut self, position: &[u8]) -> crate::Result<()> {
        self.reader
            .restore(position)
            .map_err(|m| Error::Recovery(format!("{}: cannot restore its position: {m}", self.name)))
    }

    fn restore_rescaled(&mut self, positions: Vec<(usize, Vec<u8>)>) -> crate::Result<()> {
        if self.on_driver {
            return match positions.into_iter().find(|(w, _)| *w == 0) {
                Some((_, p)) => self.restore(&p),
                None => Ok(()),
            };
        }
        self.reader.restore_rescaled(positions.into_iter().map(|(_, p)| p).collect())
    }
}

/// Stands in for a reader that could not be created: the job fails at its first batch.
struct Broken {
    rt: Arc<Runtime>,
    name: String,
    error: Option<Error>,
}

impl<T> SourceDriver<T> for Broken {
    /// It fails at its first batch anyway.
    fn restore_rescaled(&mut self, _positions: Vec<(usize, Vec<u8>)>) -> crate::Result<()> {
        Ok(())
    }

    fn close(&mut self, t: Time, _out: &mut Vec<T>) {
        if let Some(e) = self.error.take() {
            self.rt.fail_batch(t.millis(), Error::Input { stream: self.name.clone(), time: t, source: Cause::new(e) });
        }
    }
}

impl StreamingContext {
    /// Declares a direct input stream of kind `kind` (its display name is `kind [id]`): `make`
    /// creates each worker's [`PlannedSource`]. Returns the stream and the handle through which
    /// output operations read each batch's metadata.
    ///
    /// ```
    /// use ember::prelude::*;
    /// use ember::operator::{PlanEnv, PlannedSource};
    ///
    /// /// Reads the numbers of an endless log, 10 per batch; worker `w` of `n` reads those ≡ w (mod n).
    /// struct Numbers { next: u64, worker: u64, workers: u64 }
    /// impl PlannedSource for Numbers {
    ///     type Item = u64;
    ///     type Plan = (u64, u64);
    ///     fn plan(&mut self, _t: Time, _rate: Option<f64>) -> ember::Result<(u64, u64)> {
    ///         Ok((self.next, self.next + 10))
    ///     }
    ///     fn read(&mut self, _t: Time, &(from, until): &(u64, u64), out: &mut Vec<u64>) -> ember::Result<()> {
    ///         out.extend((from..until).filter(|n| n % self.workers == self.worker));
    ///         self.next = until;
    ///         Ok(())
    ///     }
    ///     fn metadata(&self, &(from, until): &(u64, u64)) -> Vec<(String, String)> {
    ///         vec![("range".into(), format!("{from}..{until}"))]
    ///     }
    /// }
    ///
    /// let _g = ember::testing::exclusive();
    /// let ssc = ember::testing::manual_context("local[2]");
    /// let (numbers, meta) = ssc.direct_stream("numbers", |env: &PlanEnv| {
    ///     Ok(Numbers { next: 0, worker: env.worker as u64, workers: env.workers as u64 })
    /// });
    /// let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    /// let sink = seen.clone();
    /// numbers.reduce(|a, b| a + b).foreach_batch(move |t, sum| sink.lock().unwrap().push((sum, meta.get(t)["range"].clone())));
    /// ssc.run_batches(2)?;
    /// ssc.stop(false)?;
    /// // Both workers report their range; the driver joins them with a newline.
    /// assert_eq!(*seen.lock().unwrap(), vec![(vec![45], "0..10\n0..10".to_owned()), (vec![145], "10..20\n10..20".to_owned())]);
    /// # Ok::<(), ember::Error>(())
    /// ```
    pub fn direct_stream<R: PlannedSource>(
        &self,
        kind: &str,
        make: impl Fn(&PlanEnv) -> crate::Result<R> + Send + Sync + 'static,
    ) -> (DStream<R::Item>, BatchMetadata) {
        self.planned_source(kind, kind, make)
    }

    /// Like [`direct_stream`](Self::direct_stream); `reads` says what the stream reads (its
    /// topics, say), part of the checkpoint's fingerprint, so that a checkpoint of a job that read
    /// something else is not recovered by mistake.
    pub fn planned_source<R: PlannedSource>(
        &self,
        kind: &str,
        reads: &str,
        make: impl Fn(&PlanEnv) -> crate::Result<R> + Send + Sync + 'static,
    ) -> (DStream<R::Item>, BatchMetadata) {
        let handle = BatchMetadata::default();
        let (stream, id) = self.planned_input(kind, reads, Reads::EveryWorker, move |env, _| make(env));
        self.shared.add_metadata_handle(id, handle.clone());
        (stream, handle)
    }

    /// A planned source read as `reads` says; `make` also gets the job's runtime.
    pub(crate) fn planned_input<R: PlannedSource>(
        &self,
        kind: &str,
        reads: &str,
        placement: Reads,
        make: impl Fn(&PlanEnv, &Arc<Runtime>) -> crate::Result<R> + Send + Sync + 'static,
    ) -> (DStream<R::Item>, usize) {
        let make = Arc::new(make);
        self.input_stream_with_id(kind, reads, move |env, id, name| {
            let make = Arc::clone(&make);
            let penv = PlanEnv {
                worker: env.index,
                workers: env.peers,
                stream_id: id,
                batch_ms: env.rt.batch_ms,
                recovering: env.rt.recovered.is_some(),
            };
            let (key, reads_here) = match placement {
                Reads::EveryWorker => (format!("{id}-w{}", env.index), true),
                Reads::OnDriver => (id.to_string(), env.is_driver()),
            };
            let label = name.to_owned();
            let driver = move |senv: SourceEnv| -> Box<dyn SourceDriver<R::Item>> {
                if !reads_here {
                    return Box::new(Idle);
                }
                match make(&penv, &senv.rt) {
                    Ok(reader) => Box::new(PlannedDriver {
                        reader,
                        rate: senv.rt.direct_rate(id),
                        rt: senv.rt,
                        key,
                        on_driver: matches!(placement, Reads::OnDriver),
                        name: label,
                        failed: false,
                        meta: Vec::new(),
                    }),
                    Err(e) => {
                        tracing::error!("{label}: {e}");
                        Box::new(Broken { rt: senv.rt, name: label, error: Some(e) })
                    }
                }
            };
            match placement {
                // Each worker reads its own share (one Kafka partition stays on one worker, as
                // one Spark partition per Kafka partition): no exchange after the source.
                Reads::EveryWorker => source(env, name, id, driver),
                Reads::OnDriver => spread_source(env, name, id, driver),
            }
        })
    }
}

/// Where a planned source is read.
#[derive(Clone, Copy)]
pub(crate) enum Reads {
    /// Every worker reads its share; each has its own batch-log entries.
    EveryWorker,
    /// The driver worker reads it all (one batch-log entry per batch) and spreads the records.
    OnDriver,
}

/// The share of a source on a worker that does not read it.
struct Idle;

impl<T> SourceDriver<T> for Idle {
    fn close(&mut self, _t: Time, _out: &mut Vec<T>) {}

    /// The share of a worker that does not read: the driver's share keeps the position.
    fn restore_rescaled(&mut self, _positions: Vec<(usize, Vec<u8>)>) -> crate::Result<()> {
        Ok(())
    }
}
