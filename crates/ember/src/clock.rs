//! Clocks. All of Ember reads time through a [`Clock`], so tests run on the [`ManualClock`]: they
//! push data, advance the clock by whole batch intervals and wait for the batches, with no sleeps.
//! This module is the only place allowed to read the system time or to wait.
#![allow(clippy::disallowed_methods)]

use std::sync::{Condvar, Mutex};
use std::thread::Thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// The current time in milliseconds since the epoch.
    fn now_millis(&self) -> u64;

    /// How long a worker may sleep waiting for the clock to reach `deadline`: `None` means "until
    /// woken" (a manual clock wakes the threads registered with [`Clock::register_waker`]).
    fn park_for(&self, deadline: u64) -> Option<Duration>;

    /// Registers a thread to unpark whenever the clock moves by other means than the passing of
    /// real time.
    fn register_waker(&self, _thread: Thread) {}
}

/// The system clock: wall time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    fn park_for(&self, deadline: u64) -> Option<Duration> {
        Some(Duration::from_millis(deadline.saturating_sub(self.now_millis()).max(1)))
    }
}

/// A clock that moves only when told to, like Spark's `ManualClock`.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Mutex<u64>,
    wakers: Mutex<Vec<Thread>>,
}

impl ManualClock {
    /// A manual clock reading `start_millis`.
    pub fn new(start_millis: u64) -> Self {
        ManualClock { now: Mutex::new(start_millis), wakers: Mutex::new(Vec::new()) }
    }

    /// Moves the clock forward by `millis` and wakes the registered threads.
    pub fn advance(&self, millis: u64) {
        *lock(&self.now) += millis;
        self.wake();
    }

    /// Sets the clock to `millis` (never backwards) and wakes the registered threads.
    pub fn set(&self, millis: u64) {
        {
            let mut now = lock(&self.now);
            *now = (*now).max(millis);
        }
        self.wake();
    }

    fn wake(&self) {
        for t in lock(&self.wakers).iter() {
            t.unpark();
        }
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        *lock(&self.now)
    }

    fn park_for(&self, _deadline: u64) -> Option<Duration> {
        None
    }

    fn register_waker(&self, thread: Thread) {
        lock(&self.wakers).push(thread);
    }
}

/// A real-time wait that another thread can cut short: receivers wait with it between reconnection
/// attempts (network back-off is real time, whatever the batch clock is).
#[derive(Debug, Default)]
pub(crate) struct Sleeper {
    cancelled: Mutex<bool>,
    cond: Condvar,
}

impl Sleeper {
    /// Waits up to `d`; returns `false` when cancelled.
    pub fn sleep(&self, d: Duration) -> bool {
        let guard = lock(&self.cancelled);
        let (guard, _) = self.cond.wait_timeout_while(guard, d, |c| !*c).unwrap_or_else(|e| e.into_inner());
        !*guard
    }

    /// Cuts every current and future wait short.
    pub fn cancel(&self) {
        *lock(&self.cancelled) = true;
        self.cond.notify_all();
    }
}

/// A stopwatch on real time, for measurements that are reported, never asserted (benchmarks,
/// log lines).
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    /// Starts a stopwatch.
    pub fn start() -> Self {
        Stopwatch(std::time::Instant::now())
    }

    /// Time since start.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Blocks the calling thread for `d` of real time. For benchmarks and load generators only.
pub fn real_sleep(d: Duration) {
    std::thread::sleep(d)
}

/// Locks a mutex, recovering the data when another thread panicked while holding it: Ember's
/// shared state stays consistent under panics because every critical section is a plain update.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(12_345);
        assert_eq!(c.now_millis(), 12_345);
        c.advance(1_000);
        assert_eq!(c.now_millis(), 13_345);
        c.set(10);
        assert_eq!(c.now_millis(), 13_345, "never backwards");
        assert_eq!(c.park_for(20_000), None);
    }

    #[test]
    fn sleeper_cancel_cuts_short() {
        let s = std::sync::Arc::new(Sleeper::default());
        s.cancel();
        assert!(!s.sleep(Duration::from_secs(3600)));
    }
}
