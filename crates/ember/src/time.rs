//! Batch time: milliseconds since the Unix epoch, as in Spark.

use std::fmt;

use serde::{Deserialize, Serialize};

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

    /// The UTC calendar date and time of day (proleptic Gregorian), for whoever formats times:
    /// the web UI's dates, request signatures.
    ///
    /// ```
    /// let u = ember::Time::from_millis(951_782_400_123).utc(); // a leap day
    /// assert_eq!((u.year, u.month, u.day, u.hour, u.minute, u.second, u.millis), (2000, 2, 29, 0, 0, 0, 123));
    /// ```
    pub fn utc(&self) -> Utc {
        let secs = self.0 / 1000;
        // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
        let z = (secs / 86_400) as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let rem = (secs % 86_400) as u32;
        Utc {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day: (doy - (153 * mp + 2) / 5 + 1) as u32,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            millis: (self.0 % 1000) as u32,
        }
    }
}

/// A time's UTC calendar date and time of day (see [`Time::utc`]).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Utc {
    /// The year.
    pub year: i64,
    /// The month, 1 to 12.
    pub month: u32,
    /// The day of the month, from 1.
    pub day: u32,
    /// The hour, 0 to 23.
    pub hour: u32,
    /// The minute, 0 to 59.
    pub minute: u32,
    /// The second, 0 to 59.
    pub second: u32,
    /// The millisecond, 0 to 999.
    pub millis: u32,
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

/// A duration as whole milliseconds, or an error naming `what` when it is zero or not a whole
/// number of milliseconds.
pub(crate) fn whole_millis(what: &str, d: std::time::Duration) -> Result<u64, String> {
    let ms = d.as_millis();
    if d.is_zero() || !d.subsec_nanos().is_multiple_of(1_000_000) || ms > u64::MAX as u128 {
        return Err(format!("{what} must be a positive whole number of milliseconds, got {d:?}"));
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
        t > self.zero && (t - self.zero).is_multiple_of(self.slide)
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
