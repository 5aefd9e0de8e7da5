//! Flow control across the job: the rate limiters of this process's inputs, the backpressure
//! estimators on the driver, and the rates the driver sends to every process.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Runtime;
use crate::clock::lock;

impl Runtime {
    /// Registers the rate limiter of a receiver of this process.
    pub fn register_limiter(&self, stream: usize, limiter: Arc<crate::rate::RateLimiter>) {
        lock(&self.limiters).insert(stream, (limiter, true));
        self.announce_limited(stream, true);
    }

    /// Tells the driver of another process that this process has a rate-controlled input.
    fn announce_limited(&self, stream: usize, capped: bool) {
        if let Some(mesh) = self.mesh.get().filter(|m| !m.is_driver()) {
            mesh.send_limited(stream, capped);
        }
    }

    /// The driver's estimator set a new rate for `stream`: this process's limiter takes it
    /// (capped by `receiver.max_rate` if it is a receiver's).
    pub fn apply_rate(&self, stream: usize, rate: f64) {
        if let Some((limiter, capped)) = lock(&self.limiters).get(&stream) {
            limiter.set_rate(if *capped { self.settings.capped_rate(rate) } else { rate });
        }
    }

    /// The rate of a direct stream, shared by its readers in this process: backpressure sets
    /// it (uncapped: the readers apply their own per-partition caps).
    pub fn direct_rate(&self, stream: usize) -> Arc<crate::rate::RateLimiter> {
        let initial = if self.settings.backpressure { self.settings.initial_rate } else { 0.0 };
        let mut limiters = lock(&self.limiters);
        let new = !limiters.contains_key(&stream);
        let entry = limiters.entry(stream).or_insert_with(|| (Arc::new(crate::rate::RateLimiter::new(initial)), false));
        let limiter = Arc::clone(&entry.0);
        drop(limiters);
        if new {
            self.announce_limited(stream, false);
        }
        limiter
    }

    /// After a completed batch: feeds each receiver's estimator (with backpressure on) and sets
    /// the new limits; records the limits in the batch's info.
    pub fn control_rates(&self, info: &mut crate::listener::BatchInfo) {
        let limiters = lock(&self.limiters);
        // The rate-controlled inputs of every process (another process's are announced to the
        // driver), and whether `receiver.max_rate` caps them.
        let mut controlled: BTreeMap<usize, bool> = self.mesh.get().map(|m| m.remote_limited()).unwrap_or_default();
        controlled.extend(limiters.iter().map(|(s, (_, capped))| (*s, *capped)));
        if controlled.is_empty() {
            return;
        }
        // Every rate-controlled input appears in every batch, with its rate, as in Spark's
        // batch info; one that took no records in this batch has a zero count.
        for &stream in controlled.keys() {
            if !info.stream_input_info.iter().any(|s| s.input_stream_id == stream) {
                info.stream_input_info.push(crate::listener::StreamInputInfo {
                    input_stream_id: stream,
                    num_records: 0,
                    rate_limit: None,
                    metadata: Default::default(),
                });
            }
        }
        info.stream_input_info.sort_by_key(|s| s.input_stream_id);
        let mut estimators = lock(&self.estimators);
        let (end, proc, sched) = (info.processing_end_time, info.processing_delay(), info.scheduling_delay());
        let mut rates = lock(&self.rates);
        for input in &mut info.stream_input_info {
            let id = input.input_stream_id;
            let Some(&capped) = controlled.get(&id) else { continue };
            let cap = |rate: f64| if capped { self.settings.capped_rate(rate) } else { rate };
            if self.settings.backpressure {
                let estimator = match estimators.entry(input.input_stream_id) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(v) => {
                        // The parameters were checked at start.
                        let Ok(e) = self.settings.estimator(self.batch_ms) else { continue };
                        v.insert(e)
                    }
                };
                if let (Some(end), Some(proc), Some(sched)) = (end, proc, sched) {
                    if let Some(rate) = estimator.compute(end as i64, input.num_records, proc, sched) {
                        if let Some((limiter, _)) = limiters.get(&id) {
                            limiter.set_rate(cap(rate));
                        }
                        rates.insert(id, cap(rate));
                        if let Some(mesh) = self.mesh.get() {
                            mesh.send_rate(id, rate);
                        }
                    }
                }
            }
            let initial = if capped { self.settings.initial_receiver_rate() } else { self.settings.initial_rate };
            let rate = match limiters.get(&id) {
                Some((limiter, _)) => limiter.rate(),
                None => rates.get(&id).copied().unwrap_or(if self.settings.backpressure { initial } else { 0.0 }),
            };
            input.rate_limit = (rate > 0.0).then_some(rate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::runtime;
    use super::*;
    use crate::listener::{BatchInfo, StreamInputInfo};
    use crate::time::Time;

    fn batch(t: u64, records: u64, start: u64, end: u64) -> BatchInfo {
        BatchInfo {
            batch_time: Time::from_millis(t),
            stream_input_info: vec![StreamInputInfo {
                input_stream_id: 0,
                num_records: records,
                rate_limit: None,
                metadata: Default::default(),
            }],
            submission_time: t,
            processing_start_time: Some(start),
            processing_end_time: Some(end),
            output_operation_infos: Vec::new(),
            operation_records: Default::default(),
        }
    }

    #[test]
    fn backpressure_sets_receiver_limits_from_the_estimator() {
        let conf = crate::Conf::new()
            .set("backpressure.enabled", "true")
            .set("backpressure.initial_rate", "5000")
            .set("receiver.max_rate", "1500");
        let rt = runtime(conf);
        let limiter = Arc::new(crate::rate::RateLimiter::new(rt.settings.initial_receiver_rate()));
        assert_eq!(limiter.rate(), 1500.0, "the initial rate is capped by the static limit");
        rt.register_limiter(0, Arc::clone(&limiter));
        // 1000 records in 500 ms: primes the estimator; the limit stays.
        let mut b = batch(1000, 1000, 1000, 1500);
        rt.control_rates(&mut b);
        assert_eq!(b.stream_input_info[0].rate_limit, Some(1500.0));
        // The same again: the estimate is 2000, capped at 1500.
        let mut b = batch(2000, 1000, 2000, 2500);
        rt.control_rates(&mut b);
        assert_eq!(limiter.rate(), 1500.0);
        // A slow batch that waited 500 ms: 2000 - 1000 - 0.2 * 500 = 900.
        let mut b = batch(3000, 1000, 3500, 4500);
        rt.control_rates(&mut b);
        assert_eq!(limiter.rate(), 900.0);
        assert_eq!(b.stream_input_info[0].rate_limit, Some(900.0));
        rt.bus.shutdown();
    }

    #[test]
    fn without_backpressure_limits_stay_static() {
        let rt = runtime(crate::Conf::new().set("receiver.max_rate", "250"));
        let limiter = Arc::new(crate::rate::RateLimiter::new(rt.settings.initial_receiver_rate()));
        rt.register_limiter(0, Arc::clone(&limiter));
        for t in 1..5 {
            let mut b = batch(t * 1000, 1000, t * 1000 + 500, t * 1000 + 1500);
            rt.control_rates(&mut b);
            assert_eq!(b.stream_input_info[0].rate_limit, Some(250.0));
        }
        rt.bus.shutdown();
    }

    #[test]
    fn an_input_that_got_nothing_still_shows_its_rate_and_keeps_its_estimate() {
        let rt = runtime(crate::Conf::new().set("backpressure.enabled", "true"));
        let limiter = Arc::new(crate::rate::RateLimiter::new(rt.settings.initial_receiver_rate()));
        rt.register_limiter(3, Arc::clone(&limiter));
        let mut b = batch(1000, 0, 1000, 1001);
        b.stream_input_info.clear();
        rt.control_rates(&mut b);
        assert_eq!(b.stream_input_info.len(), 1);
        assert_eq!((b.stream_input_info[0].input_stream_id, b.stream_input_info[0].num_records), (3, 0));
        assert_eq!(b.stream_input_info[0].rate_limit, None, "no estimate yet: no limit");
        limiter.set_rate(700.0);
        let mut b = batch(2000, 0, 2000, 2001);
        b.stream_input_info[0].input_stream_id = 3;
        rt.control_rates(&mut b);
        assert_eq!(limiter.rate(), 700.0, "an empty batch does not move the estimate (as in Spark)");
        assert_eq!(b.stream_input_info[0].rate_limit, Some(700.0));
        rt.bus.shutdown();
    }
}
