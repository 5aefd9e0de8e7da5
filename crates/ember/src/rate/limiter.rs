//! A smooth token bucket: permits accrue at `rate` per second, up to one second's worth, so a
//! limited receiver is throttled evenly rather than in bursts at the start of each batch.

use std::sync::Mutex;
use std::time::Duration;

use crate::clock::{lock, real_sleep, Stopwatch};

/// The bucket's arithmetic, on explicit times (milliseconds), so it can be tested exactly.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last_ms: f64,
}

impl TokenBucket {
    /// A bucket of `rate` permits per second (0 or less: unlimited), full at time 0.
    pub fn new(rate: f64) -> Self {
        TokenBucket { rate, tokens: rate.max(0.0), last_ms: 0.0 }
    }

    /// The current rate (0 or less: unlimited).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Changes the rate; permits already stored stay (up to one second of the new rate).
    pub fn set_rate(&mut self, rate: f64) {
        self.rate = rate;
        self.tokens = self.tokens.min(rate.max(0.0));
    }

    /// Takes `n` permits at time `now_ms`; returns how long (ms) the caller must wait first.
    pub fn take(&mut self, n: u64, now_ms: f64) -> f64 {
        if self.rate <= 0.0 {
            return 0.0;
        }
        let elapsed = (now_ms - self.last_ms).max(0.0);
        self.tokens = (self.tokens + elapsed * self.rate / 1000.0).min(self.rate);
        self.last_ms = now_ms;
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            0.0
        } else {
            -self.tokens / self.rate * 1000.0
        }
    }
}

/// A token bucket on real time, shared by a receiver (which waits) and the rate controller
/// (which sets the rate).
pub(crate) struct RateLimiter {
    bucket: Mutex<TokenBucket>,
    watch: Stopwatch,
}

impl RateLimiter {
    pub fn new(rate: f64) -> Self {
        RateLimiter { bucket: Mutex::new(TokenBucket::new(rate)), watch: Stopwatch::start() }
    }

    pub fn rate(&self) -> f64 {
        lock(&self.bucket).rate()
    }

    pub fn set_rate(&self, rate: f64) {
        lock(&self.bucket).set_rate(rate);
    }

    /// Waits until `n` permits are available.
    pub fn acquire(&self, n: u64) {
        let now = self.watch.elapsed().as_secs_f64() * 1000.0;
        let wait = lock(&self.bucket).take(n, now);
        if wait > 0.0 {
            real_sleep(Duration::from_secs_f64(wait / 1000.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_throttles_evenly() {
        let mut b = TokenBucket::new(1000.0);
        assert_eq!(b.take(1000, 0.0), 0.0, "one second's worth is stored at the start");
        assert_eq!(b.take(500, 0.0), 500.0, "500 more permits take half a second");
        assert_eq!(b.take(100, 500.0), 100.0, "the debt is paid first");
        assert_eq!(b.take(0, 2600.0), 0.0);
        assert_eq!(b.take(1000, 2600.0), 0.0, "a long pause refills to one second's worth, no more");
        assert!(b.take(1, 2600.0) > 0.0);
    }

    #[test]
    fn no_rate_means_no_limit() {
        let mut b = TokenBucket::new(0.0);
        assert_eq!(b.take(1_000_000, 0.0), 0.0);
        b.set_rate(10.0);
        assert!(b.take(100, 0.0) > 0.0);
    }
}
