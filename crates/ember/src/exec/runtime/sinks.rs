//! Sinks' figures per batch (`Sink::metrics`), summed over every process of the job before
//! listeners get them: process 0 adds its own when it commits the batch, the other processes
//! send theirs once the batch completed there.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::clock::lock;
use crate::listener::SinkCommitInfo;
use crate::time::Time;

/// A sink's figures of one batch, by name.
pub(crate) type Figures = BTreeMap<String, u64>;

/// Asks a sink for this process's figures of a batch it wrote here (`None`: it did not).
pub(crate) type Metrics = Arc<dyn Fn(Time) -> Option<Figures> + Send + Sync>;

#[derive(Default)]
pub(crate) struct SinkReports {
    /// This process's sinks: key (the same in every process), output name, figures.
    sinks: Mutex<Vec<(String, String, Metrics)>>,
    /// Figures of (batch, sink key) reported so far: how many processes, the sums.
    pending: Mutex<BTreeMap<(u64, String), (usize, Figures)>>,
}

impl SinkReports {
    /// Registers one of this process's sinks.
    pub fn register(&self, key: String, name: String, metrics: Metrics) {
        lock(&self.sinks).push((key, name, metrics));
    }

    /// This process's figures of batch `t` of every sink: (key, name, figures).
    pub fn collect(&self, t: Time) -> Vec<(String, String, Figures)> {
        lock(&self.sinks).iter().filter_map(|(key, name, m)| Some((key.clone(), name.clone(), m(t)?))).collect()
    }

    /// Adds one process's figures of sink `key` at batch `t`; once `processes` reported, the
    /// sums, for listeners.
    pub fn add(&self, t: u64, key: &str, name: &str, figures: Figures, processes: usize) -> Option<SinkCommitInfo> {
        let mut pending = lock(&self.pending);
        let entry = pending.entry((t, key.to_owned())).or_default();
        entry.0 += 1;
        for (k, v) in figures {
            *entry.1.entry(k).or_default() += v;
        }
        if entry.0 < processes {
            return None;
        }
        let (_, metrics) = pending.remove(&(t, key.to_owned()))?;
        // Reports of batches this far behind never complete (a process failed): forget them.
        pending.retain(|(bt, _), _| *bt + 3_600_000 > t);
        (!metrics.is_empty()).then(|| SinkCommitInfo {
            batch_time: Time::from_millis(t),
            name: name.to_owned(),
            metrics,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_summed_once_every_process_reported() {
        let r = SinkReports::default();
        let f = |n: u64| Figures::from([("records".to_owned(), n)]);
        assert!(r.add(1000, "s#0", "s", f(3), 2).is_none());
        assert!(r.add(2000, "s#0", "s", f(1), 2).is_none());
        let done = r.add(1000, "s#0", "s", f(4), 2).unwrap();
        assert_eq!((done.batch_time.millis(), done.metrics["records"]), (1000, 7));
        assert_eq!(r.add(3000, "s#0", "s", f(5), 1).unwrap().metrics["records"], 5);
    }
}
