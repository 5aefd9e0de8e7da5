//! Spark's PID rate estimator, exactly (spec §8.4).

use crate::error::{Error, Result};

/// Estimates the rate a stream can be processed at from completed batches.
#[derive(Debug, Clone)]
pub struct PidRateEstimator {
    batch_ms: u64,
    proportional: f64,
    integral: f64,
    derivative: f64,
    min_rate: f64,
    first_run: bool,
    latest_time: i64,
    latest_rate: f64,
    latest_error: f64,
}

impl PidRateEstimator {
    /// An estimator for batches of `batch_ms`, with Spark's parameter checks.
    pub fn new(batch_ms: u64, proportional: f64, integral: f64, derivative: f64, min_rate: f64) -> Result<Self> {
        let bad = |m: String| Err(Error::IllegalState(m));
        if batch_ms == 0 {
            return bad(format!("Specified batch interval {batch_ms} in PIDRateEstimator is invalid."));
        }
        if proportional < 0.0 {
            return bad(format!("Proportional term {proportional} in PIDRateEstimator should be >= 0."));
        }
        if integral < 0.0 {
            return bad(format!("Integral term {integral} in PIDRateEstimator should be >= 0."));
        }
        if derivative < 0.0 {
            return bad(format!("Derivative term {derivative} in PIDRateEstimator should be >= 0."));
        }
        if min_rate <= 0.0 {
            return bad("Minimum rate in PIDRateEstimator should be > 0".to_owned());
        }
        Ok(PidRateEstimator {
            batch_ms,
            proportional,
            integral,
            derivative,
            min_rate,
            first_run: true,
            latest_time: -1,
            latest_rate: -1.0,
            latest_error: -1.0,
        })
    }

    /// Spark's defaults: 1.0, 0.2, 0.0, 100 records/s.
    pub fn with_defaults(batch_ms: u64) -> Result<Self> {
        Self::new(batch_ms, 1.0, 0.2, 0.0, 100.0)
    }

    /// Feeds one completed batch: its processing end time (ms), records, processing and
    /// scheduling delays (ms). Returns the new rate (records/s); the first qualifying batch only
    /// primes the estimator, and batches without records or processing time are skipped.
    pub fn compute(&mut self, time: i64, elements: u64, processing_delay: u64, scheduling_delay: u64) -> Option<f64> {
        if !(time > self.latest_time && elements > 0 && processing_delay > 0) {
            return None;
        }
        let delay_since_update = (time - self.latest_time) as f64 / 1000.0;
        let processing_rate = elements as f64 / processing_delay as f64 * 1000.0;
        let error = self.latest_rate - processing_rate;
        let historical_error = scheduling_delay as f64 * processing_rate / self.batch_ms as f64;
        let d_error = (error - self.latest_error) / delay_since_update;
        let new_rate = (self.latest_rate
            - self.proportional * error
            - self.integral * historical_error
            - self.derivative * d_error)
            .max(self.min_rate);
        self.latest_time = time;
        if self.first_run {
            self.latest_rate = processing_rate;
            self.latest_error = 0.0;
            self.first_run = false;
            None
        } else {
            self.latest_rate = new_rate;
            self.latest_error = error;
            Some(new_rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples() {
        let mut p = PidRateEstimator::with_defaults(1000).unwrap();
        // First batch: 1000 records in 500 ms primes the estimator at 2000 records/s.
        assert_eq!(p.compute(1000, 1000, 500, 0), None);
        // Steady state: the same again: error 0, no scheduling delay -> 2000.
        assert_eq!(p.compute(2000, 1000, 500, 0), Some(2000.0));
        // A slow batch: 1000 records in 1000 ms after waiting 500 ms.
        // processing rate 1000, error 2000 - 1000 = 1000, historical 500 * 1000 / 1000 = 500,
        // new = 2000 - 1.0 * 1000 - 0.2 * 500 - 0 = 900.
        assert_eq!(p.compute(3000, 1000, 1000, 500), Some(900.0));
        // Far too slow: 10 records in 1000 ms after waiting 10 s -> clamped at the 100 minimum.
        assert_eq!(p.compute(4000, 10, 1000, 10_000), Some(100.0));
    }

    #[test]
    fn the_derivative_term() {
        let mut p = PidRateEstimator::new(1000, 1.0, 0.0, 0.5, 1.0).unwrap();
        p.compute(1000, 2000, 1000, 0); // primes at 2000
                                        // rate 1000: error 1000, dError (1000 - 0) / 1 s = 1000 -> 2000 - 1000 - 0.5 * 1000 = 500
        assert_eq!(p.compute(2000, 1000, 1000, 0), Some(500.0));
        // two seconds later, rate 500: error 500 - 500 = 0, dError (0 - 1000) / 2 = -500 -> 500 + 250 = 750
        assert_eq!(p.compute(4000, 500, 1000, 0), Some(750.0));
    }

    #[test]
    fn skipped_batches() {
        let mut p = PidRateEstimator::with_defaults(1000).unwrap();
        assert_eq!(p.compute(1000, 0, 500, 0), None, "no records");
        assert_eq!(p.compute(1000, 10, 0, 0), None, "no processing time");
        assert_eq!(p.compute(1000, 1000, 500, 0), None, "primes");
        assert_eq!(p.compute(1000, 1000, 500, 0), None, "time did not move");
        assert!(p.compute(1001, 1000, 500, 0).is_some());
    }

    #[test]
    fn parameter_checks_use_sparks_messages() {
        let e = |r: Result<PidRateEstimator>| r.unwrap_err().to_string();
        assert_eq!(
            e(PidRateEstimator::new(0, 1.0, 0.2, 0.0, 100.0)),
            "Specified batch interval 0 in PIDRateEstimator is invalid."
        );
        assert_eq!(
            e(PidRateEstimator::new(1000, -1.0, 0.2, 0.0, 100.0)),
            "Proportional term -1 in PIDRateEstimator should be >= 0."
        );
        assert_eq!(
            e(PidRateEstimator::new(1000, 1.0, -0.2, 0.0, 100.0)),
            "Integral term -0.2 in PIDRateEstimator should be >= 0."
        );
        assert_eq!(
            e(PidRateEstimator::new(1000, 1.0, 0.2, -1.0, 100.0)),
            "Derivative term -1 in PIDRateEstimator should be >= 0."
        );
        assert_eq!(
            e(PidRateEstimator::new(1000, 1.0, 0.2, 0.0, 0.0)),
            "Minimum rate in PIDRateEstimator should be > 0"
        );
    }
}
