//! The arithmetic of planning a batch: where a partition starts, which worker reads it, and how
//! far each range goes under the rate limits (spec §8.3). No I/O: the reader feeds it.

use crate::{Error, RateLimits, TopicPartition};

/// What `auto.offset.reset` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reset {
    Earliest,
    Latest,
    None,
}

impl Reset {
    pub(crate) fn parse(v: Option<&str>) -> Result<Self, Error> {
        match v.unwrap_or("earliest") {
            "earliest" | "smallest" | "beginning" => Ok(Reset::Earliest),
            "latest" | "largest" | "end" => Ok(Reset::Latest),
            "none" | "error" => Ok(Reset::None),
            other => Err(Error::Config(format!("`auto.offset.reset` must be earliest, latest or none, not `{other}`"))),
        }
    }
}

/// Where a partition starts when its requested offset is outside the log `[low, high]`:
/// below `low` (deleted) or above `high` (a log that was recreated or lost).
pub(crate) fn resolve_start(
    tp: &TopicPartition,
    requested: i64,
    low: i64,
    high: i64,
    reset: Reset,
) -> Result<i64, Error> {
    if (low..=high).contains(&requested) {
        return Ok(requested);
    }
    let what = if requested < low {
        format!("offset {requested} of {tp} no longer exists (the log starts at {low})")
    } else {
        format!("offset {requested} of {tp} is past the end of the log ({high}); the log was recreated or lost")
    };
    match reset {
        Reset::Earliest => {
            tracing::warn!("kafka: {what}; starting at the earliest offset {low} (auto.offset.reset=earliest)");
            Ok(low)
        }
        Reset::Latest => {
            tracing::warn!("kafka: {what}; starting at the latest offset {high} (auto.offset.reset=latest)");
            Ok(high)
        }
        Reset::None => Err(Error::Cluster(format!("{what}, and auto.offset.reset is none"))),
    }
}

/// The worker that reads a partition: stable when partitions are added.
pub(crate) fn owner(tp: &TopicPartition, workers: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tp.topic.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h.wrapping_add(tp.partition as u64) % workers as u64) as usize
}

/// The end offset of each range (spec §8.3). `parts` holds (partition, from, latest); `rate` is
/// this worker's share of the backpressure rate.
pub(crate) fn clamp(
    parts: &[(TopicPartition, i64, i64)],
    rate: Option<f64>,
    limits: &RateLimits,
    batch_ms: u64,
) -> Vec<i64> {
    let secs = batch_ms as f64 / 1000.0;
    let lag = |from: i64, latest: i64| (latest - from).max(0) as f64;
    let total_lag: f64 = parts.iter().map(|(_, f, l)| lag(*f, *l)).sum();
    let limit: Vec<f64> = parts
        .iter()
        .map(|(tp, from, latest)| {
            let max = limits.max_for(tp);
            match rate.filter(|r| *r > 0.0) {
                Some(r) => {
                    let share = if total_lag > 0.0 { lag(*from, *latest) / total_lag * r } else { 0.0 };
                    if max > 0.0 {
                        share.min(max)
                    } else {
                        share
                    }
                }
                None => max,
            }
        })
        .collect();
    if limit.iter().sum::<f64>() <= 0.0 {
        return parts.iter().map(|(_, f, l)| (*l).max(*f)).collect();
    }
    parts
        .iter()
        .zip(limit)
        .map(|((tp, from, latest), lim)| {
            let most = ((secs * lim).floor()).max(limits.min_for(tp)) as i64;
            (*from + most).min(*latest).max(*from)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OffsetRange;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    #[test]
    fn clamp_follows_spark_per_partition_limits() {
        let parts = vec![(tp(0), 0, 1000), (tp(1), 100, 150), (tp(2), 7, 7)];
        // No limits and no backpressure: everything available.
        assert_eq!(clamp(&parts, None, &RateLimits::default(), 2000), vec![1000, 150, 7]);
        // maxRatePerPartition 100/s over 2 s batches: 200 each at most.
        assert_eq!(clamp(&parts, None, &RateLimits::max_per_partition(100.0), 2000), vec![200, 150, 7]);
        // Backpressure 300/s over a lag of 1000 + 50: shares 285.7 and 14.3 per second;
        // 2 s → 571 and 28 records; the idle partition gets its minimum of 1 but has no data.
        assert_eq!(clamp(&parts, Some(300.0), &RateLimits::default(), 2000), vec![571, 128, 7]);
        // Both: the share is capped by the maximum.
        assert_eq!(clamp(&parts, Some(300.0), &RateLimits::max_per_partition(100.0), 2000), vec![200, 128, 7]);
        // The minimum rate lifts a tiny share: 1 s × 0.5/s = 0 → at least 3.
        let limits = RateLimits { min_rate_per_partition: 3.0, ..RateLimits::max_per_partition(0.5) };
        assert_eq!(clamp(&parts, None, &limits, 1000), vec![3, 103, 7]);
        // Per-partition limits override the common one.
        let mut limits = RateLimits::max_per_partition(100.0);
        limits.per_partition.insert(tp(0), (10.0, 1.0));
        assert_eq!(clamp(&parts, None, &limits, 1000), vec![10, 150, 7]);
    }

    #[test]
    fn starting_offsets_outside_the_log_follow_the_reset_policy() {
        let p = tp(0);
        assert_eq!(resolve_start(&p, 5, 0, 10, Reset::None).ok(), Some(5));
        assert_eq!(resolve_start(&p, 10, 0, 10, Reset::None).ok(), Some(10));
        assert_eq!(resolve_start(&p, 2, 5, 10, Reset::Earliest).ok(), Some(5));
        assert_eq!(resolve_start(&p, 2, 5, 10, Reset::Latest).ok(), Some(10));
        let e = resolve_start(&p, 2, 5, 10, Reset::None).unwrap_err().to_string();
        assert!(e.contains("offset 2 of t-0 no longer exists (the log starts at 5)"), "{e}");
        let e = resolve_start(&p, 50, 0, 10, Reset::None).unwrap_err().to_string();
        assert!(e.contains("past the end"), "{e}");
        assert_eq!(resolve_start(&p, 50, 0, 10, Reset::Earliest).ok(), Some(0));
        assert!(Reset::parse(Some("sometimes")).unwrap_err().to_string().contains("earliest, latest or none"));
    }

    #[test]
    fn partitions_spread_evenly_and_stay_put_when_added() {
        let counts = (0..12).fold([0; 3], |mut c, p| {
            c[owner(&tp(p), 3)] += 1;
            c
        });
        assert_eq!(counts, [4, 4, 4]);
        assert_eq!(owner(&tp(5), 3), owner(&tp(5), 3));
    }

    #[test]
    fn offset_ranges_round_trip_through_metadata_lines() {
        let r = OffsetRange { topic: "a.b-c".into(), partition: 3, from_offset: 10, until_offset: 42 };
        assert_eq!(OffsetRange::from_line(&r.to_line()), Some(r));
        assert_eq!(OffsetRange::from_line("x\t1\t2"), None);
        assert_eq!(OffsetRange::from_line("x\t1\t2\t3\t4"), None);
    }
}
