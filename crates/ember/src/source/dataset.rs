//! Static datasets (Spark's `sc.parallelize`, `sc.textFile`): records held from the start, the
//! same in every batch, for use with the batches inside `transform`.

use std::sync::Arc;

use crate::context::StreamingContext;
use crate::dstream::rdd::Rdd;
use crate::dstream::DStream;
use crate::exec::source::{source, SourceDriver};
use crate::time::Time;
use crate::{Data, Key};

impl StreamingContext {
    /// A static dataset (Spark's `sc.parallelize`): the same records in every batch, held in
    /// memory from the start and spread over the workers, for use inside `transform` (a union, a
    /// subtract, a cartesian product with every batch). For joins by key use
    /// [`keyed_dataset`](Self::keyed_dataset).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let ssc = manual_context("local[2]");
    /// let banned = ssc.dataset(vec![2, 4]);
    /// let out = ssc.queue_stream(vec![vec![1, 2, 3, 4]], true).transform(|rdd| rdd.subtract(&banned)).collect_batches();
    /// ssc.run_batches(1).unwrap();
    /// ssc.stop(false).unwrap();
    /// assert_eq!(sorted(vec![out.batches()[0].1.clone()]), vec![vec![1, 3]]);
    /// ```
    pub fn dataset<T: Data + Sync>(&self, records: Vec<T>) -> Rdd<T> {
        let records = Arc::new(records);
        self.held("dataset", move |index, peers| records.iter().skip(index).step_by(peers).cloned().collect())
    }

    /// A static keyed dataset: each `(key, value)` held from the start by the worker that owns
    /// the key, so that a join of a stream with it moves only the stream's records, never the
    /// dataset (the counterpart of a partitioned, cached RDD in Spark).
    ///
    /// ```
    /// # use ember::testing::*;
    /// let ssc = manual_context("local[3]");
    /// let names = ssc.keyed_dataset(vec![(1, "one".to_string()), (2, "two".to_string())]);
    /// let out = ssc.queue_stream(vec![vec![(2, 'x'), (3, 'y')]], true).transform(|rdd| rdd.join(&names)).collect_batches();
    /// ssc.run_batches(1).unwrap();
    /// ssc.stop(false).unwrap();
    /// assert_eq!(out.batches()[0].1, vec![(2, ('x', "two".to_string()))]);
    /// ```
    pub fn keyed_dataset<K: Key + Sync, V: Data + Sync>(&self, records: Vec<(K, V)>) -> Rdd<(K, V)> {
        let records = Arc::new(records);
        self.held("keyed_dataset", move |index, peers| {
            let mine = |k: &K| (crate::exec::key_hash(k) % peers as u64) as usize == index;
            records.iter().filter(|(k, _)| mine(k)).cloned().collect()
        })
    }

    /// The lines of a text file as a static dataset (Spark's `sc.textFile`), read once, when the
    /// job is declared. A file that cannot be read is an error at `start`.
    pub fn text_file(&self, path: impl AsRef<std::path::Path>) -> Rdd<String> {
        let path = path.as_ref();
        match std::fs::read_to_string(path) {
            Ok(text) => self.dataset(text.lines().map(str::to_owned).collect()),
            Err(e) => {
                self.shared
                    .defer(crate::Error::declaration("text_file", format!("cannot read {}: {e}", path.display())));
                self.dataset(Vec::new())
            }
        }
    }

    /// A node that emits, every batch, the records `share(worker, workers)` gives each worker.
    fn held<T: Data + Sync>(&self, op: &str, share: impl Fn(usize, usize) -> Vec<T> + Send + Sync + 'static) -> Rdd<T> {
        let shared = &self.shared;
        let label = op.to_owned();
        let node = shared.add_node(
            op,
            Vec::new(),
            shared.batch_ms,
            Arc::new(move |env: &mut crate::exec::BuildEnv<'_>| {
                let mine = Arc::new(share(env.index, env.peers));
                let s = source(env, &label, usize::MAX, |_| Box::new(Held(mine)));
                env.put::<T>(s);
                Ok(())
            }),
        );
        Rdd { stream: DStream::from_node(Arc::clone(shared), node, shared.batch_ms) }
    }
}

/// One worker's share of a static dataset, emitted whole every batch.
struct Held<T>(Arc<Vec<T>>);

impl<T: Data + Sync> SourceDriver<T> for Held<T> {
    fn close(&mut self, _t: Time, out: &mut Vec<T>) {
        out.extend(self.0.iter().cloned());
    }

    fn is_input(&self) -> bool {
        false
    }
}
