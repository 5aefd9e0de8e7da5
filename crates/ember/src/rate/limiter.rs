//! A smooth token bucket: permits accrue at `rate` per second, up to one second's worth, so a
//! limited receiver is throttled evenly rather than in bursts at the start of each batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::clock::{lock, Stopwatch};

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
        self.refill(now_ms);
        self.tokens -= n as f64;
        self.wait(now_ms)
    }

    /// How long (ms) from `now_ms` until the permits already taken are paid for, at the current
    /// rate: after a rate change the wait is shorter or longer than `take` said. No rate: none.
    pub fn wait(&mut self, now_ms: f64) -> f64 {
        if self.rate <= 0.0 {
            self.tokens = 0.0;
            return 0.0;
        }
        self.refill(now_ms);
        if self.tokens >= 0.0 {
            0.0
        } else {
            -self.tokens / self.rate * 1000.0
        }
    }

    fn refill(&mut self, now_ms: f64) {
        let elapsed = (now_ms - self.last_ms).max(0.0);
        self.tokens = (self.tokens + elapsed * self.rate / 1000.0).min(self.rate);
        self.last_ms = now_ms;
    }
}

/// A token bucket on real time, shared by a receiver (which waits) and the rate controller
/// (which sets the rate). A waiting receiver sees a new rate at once, and stops waiting when its
/// source stops.
pub(crate) struct RateLimiter {
    bucket: Mutex<TokenBucket>,
    changed: Condvar,
    closed: AtomicBool,
    watch: Stopwatch,
}

impl RateLimiter {
    pub fn new(rate: f64) -> Self {
        RateLimiter {
            bucket: Mutex::new(TokenBucket::new(rate)),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
            watch: Stopwatch::start(),
        }
    }

    pub fn rate(&self) -> f64 {
        lock(&self.bucket).rate()
    }

    pub fn set_rate(&self, rate: f64) {
        lock(&self.bucket).set_rate(rate);
        self.changed.notify_all();
    }

    /// Ends every wait, now and later: the source stops.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _guard = lock(&self.bucket);
        self.changed.notify_all();
    }

    fn now_ms(&self) -> f64 {
        self.watch.elapsed().as_secs_f64() * 1000.0
    }

    /// Takes `n` permits, waiting until they are paid for at the current rate (which may change
    /// during the wait), or the limiter closes.
    pub fn acquire(&self, n: u64) {
        let mut bucket = lock(&self.bucket);
        let mut wait = bucket.take(n, self.now_ms());
        while wait > 0.0 && !self.closed.load(Ordering::Acquire) {
            bucket = self
                .changed
                .wait_timeout(bucket, Duration::from_secs_f64(wait / 1000.0))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            wait = bucket.wait(self.now_ms());
        }
    }

    /// At most this many records should be taken at once, so that a large block is paced
    /// smoothly (about 50 ms of the rate) and a new rate applies to its rest; no rate: no limit.
    pub fn piece(&self) -> usize {
        let rate = self.rate();
        if rate <= 0.0 {
            usize::MAX
        } else {
            (rate / 20.0).ceil().max(1.0) as usize
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
    fn a_new_rate_changes_the_wait_for_permits_already_taken() {
        let mut b = TokenBucket::new(100.0);
        assert_eq!(b.take(100, 0.0), 0.0);
        assert_eq!(b.take(1000, 0.0), 10_000.0, "1,000 permits at 100/s: 10 s");
        b.set_rate(10_000.0);
        assert_eq!(b.wait(0.0), 100.0, "at 10,000/s the same debt takes 100 ms");
        assert_eq!(b.wait(100.0), 0.0);
        b.take(20_000, 100.0);
        b.set_rate(0.0);
        assert_eq!(b.wait(100.0), 0.0, "no limit forgives the debt");
    }

    #[test]
    fn a_waiting_receiver_sees_a_new_rate_and_a_close() {
        use std::sync::{mpsc, Arc};
        let limiter = Arc::new(RateLimiter::new(1.0));
        limiter.acquire(1);
        // Takes an hour's permits at 1/s on a thread; says when it got them.
        let wait_for_an_hour = |limiter: &Arc<RateLimiter>| {
            let (l, (tx, rx)) = (Arc::clone(limiter), mpsc::channel());
            std::thread::spawn(move || {
                l.acquire(3600);
                let _ = tx.send(());
            });
            rx
        };
        let got = wait_for_an_hour(&limiter);
        limiter.set_rate(1_000_000.0);
        got.recv_timeout(Duration::from_secs(30)).expect("a million per second pays an hour at 1/s at once");
        limiter.set_rate(1.0);
        let got = wait_for_an_hour(&limiter);
        limiter.close();
        got.recv_timeout(Duration::from_secs(30)).expect("closing ends the wait");
        limiter.acquire(3600);
        assert_eq!(limiter.piece(), 1);
        limiter.set_rate(1000.0);
        assert_eq!(limiter.piece(), 50);
    }

    #[test]
    fn no_rate_means_no_limit() {
        let mut b = TokenBucket::new(0.0);
        assert_eq!(b.take(1_000_000, 0.0), 0.0);
        b.set_rate(10.0);
        assert!(b.take(100, 0.0) > 0.0);
    }
}
