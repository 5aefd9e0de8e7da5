//! Batch time: milliseconds since the Unix epoch, as in Spark.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A batch time: milliseconds since the Unix epoch. A batch is named by its **end** time: batch `t`
/// holds what arrived in `[t - interval, t)`. Prints as `<millis> ms`, like Spark's `Time`.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize)]
pub struct Time(u64);

impl Time {
    /// The time `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Time(millis)
    }

    /// Milliseconds since the epoch.
    pub const fn millis(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

/// A duration as whole milliseconds, or an error naming `what` when it is zero or not a whole
/// number of milliseconds.
pub(crate) fn whole_millis(what: &str, d: std::time::Duration) -> Result<u64> {
    let ms = d.as_millis();
    if d.is_zero() || d.subsec_nanos() % 1_000_000 != 0 || ms > u64::MAX as u128 {
        return Err(Error::IllegalState(format!("{what} must be a positive whole number of milliseconds, got {d:?}")));
    }
    Ok(ms as u64)
}

/// The grid `zero + k * slide` (k >= 1) on which a stream produces batches (spec §0.3).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Grid {
    pub zero: u64,
    pub slide: u64,
}

impl Grid {
    /// The first valid time of the grid.
    pub fn first(&self) -> u64 {
        self.zero + self.slide
    }

    /// The first grid time after `t`.
    pub fn first_after(&self, t: u64) -> u64 {
        self.ceil(t + 1)
    }

    /// The smallest grid time `>= t` (and after zero).
    pub fn ceil(&self, t: u64) -> u64 {
        if t <= self.zero {
            return self.first();
        }
        let k = (t - self.zero).div_ceil(self.slide);
        self.zero + k.max(1) * self.slide
    }

    /// The largest grid time `<= t`, or `None` when `t` is before the first one.
    pub fn floor(&self, t: u64) -> Option<u64> {
        if t < self.first() {
            return None;
        }
        Some(self.zero + (t - self.zero) / self.slide * self.slide)
    }

    /// Whether `t` is a time of this grid.
    pub fn contains(&self, t: u64) -> bool {
        t > self.zero && (t - self.zero) % self.slide == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_arithmetic() {
        let g = Grid { zero: 12_000, slide: 1_000 };
        assert_eq!(g.first(), 13_000);
        assert_eq!(g.ceil(13_000), 13_000);
        assert_eq!(g.ceil(13_001), 14_000);
        assert_eq!(g.ceil(5), 13_000);
        assert_eq!(g.floor(12_999), None);
        assert_eq!(g.floor(14_500), Some(14_000));
        assert!(g.contains(15_000) && !g.contains(12_000) && !g.contains(15_500));
    }

    #[test]
    fn time_prints_like_spark() {
        assert_eq!(Time::from_millis(1_357_008_430_000).to_string(), "1357008430000 ms");
    }

    #[test]
    fn durations_must_be_whole_millis() {
        assert!(whole_millis("batch interval", std::time::Duration::ZERO).is_err());
        assert!(whole_millis("batch interval", std::time::Duration::from_micros(1500)).is_err());
        assert_eq!(whole_millis("x", std::time::Duration::from_millis(7)).unwrap(), 7);
    }
}
