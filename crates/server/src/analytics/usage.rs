//! What a usage report counts for one subject (a day, a client, a route):
//! requests, errors and a latency histogram over fixed bucket bounds.
//!
//! The live counters (Redis, today) and the daily roll-up (PostgreSQL, past
//! days) bucket latencies with the same bounds, [`LATENCY_BOUNDS_US`], and
//! read percentiles with the same rule, [`Usage::percentile_ms`], so a p99
//! means the same thing today and historically.
//!
//! Invariants: bucket `i` holds latencies in `(bound[i-1], bound[i]]`
//! microseconds (bucket 0 from 0, the last one everything past the last
//! bound); the SQL roll-up computes the same index as
//! `width_bucket(latency_us - 1, bounds)`.

use serde::{Deserialize, Serialize};

/// Upper bounds of the latency buckets, in microseconds (a 1-2.5-5 series
/// from 0.25 ms to 10 s). Changing them changes the meaning of every stored
/// histogram: add a migration that re-rolls the retained days.
pub const LATENCY_BOUNDS_US: [u64; 15] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// Buckets in a histogram: one per bound, and one past the last.
pub const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// The bucket a latency falls in.
pub fn bucket_of(latency_us: u64) -> usize {
    LATENCY_BOUNDS_US.partition_point(|&bound| bound < latency_us)
}

/// Requests, errors (status >= 400) and latency histogram of one subject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub requests: u64,
    pub errors: u64,
    pub histogram: [u64; BUCKETS],
}

impl Usage {
    /// Adds another subject's (or another day's) usage to this one.
    pub fn add(&mut self, other: &Usage) {
        self.requests += other.requests;
        self.errors += other.errors;
        for (mine, theirs) in self.histogram.iter_mut().zip(other.histogram) {
            *mine += theirs;
        }
    }

    /// Usage from stored counts (PostgreSQL's bigints; negatives read as 0,
    /// a shorter histogram leaves the remaining buckets empty).
    pub fn from_stored(requests: i64, errors: i64, histogram: &[i64]) -> Self {
        let mut usage = Usage {
            requests: u64::try_from(requests).unwrap_or(0),
            errors: u64::try_from(errors).unwrap_or(0),
            histogram: [0; BUCKETS],
        };
        for (slot, count) in usage.histogram.iter_mut().zip(histogram) {
            *slot = u64::try_from(*count).unwrap_or(0);
        }
        usage
    }

    /// The latency at or below which `permille`/1000 of the requests
    /// finished, as the upper bound of the bucket holding that rank, in
    /// milliseconds (a request past the last bound reads as the last
    /// bound); `None` when there were no requests.
    pub fn percentile_ms(&self, permille: u64) -> Option<f64> {
        let total: u64 = self.histogram.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (total * permille).div_ceil(1000).max(1);
        let mut seen = 0;
        let bucket = self
            .histogram
            .iter()
            .position(|&count| {
                seen += count;
                seen >= rank
            })
            .unwrap_or(BUCKETS - 1);
        let bound = LATENCY_BOUNDS_US[bucket.min(LATENCY_BOUNDS_US.len() - 1)];
        // Bounds are at most 10^7 µs: exact in an f64.
        Some(bound as f64 / 1000.0)
    }

    pub fn p50_ms(&self) -> Option<f64> {
        self.percentile_ms(500)
    }

    pub fn p99_ms(&self) -> Option<f64> {
        self.percentile_ms(990)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_latencies_up_to_and_including_their_bound() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(250), 0);
        assert_eq!(bucket_of(251), 1);
        assert_eq!(bucket_of(10_000_000), 14);
        assert_eq!(bucket_of(10_000_001), 15);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_read_the_bound_of_the_bucket_holding_the_rank() {
        let mut usage = Usage::default();
        assert_eq!(usage.p50_ms(), None);
        // 98 fast requests (≤ 1 ms), one at 40 ms, one at 20 s.
        usage.histogram[bucket_of(800)] = 98;
        usage.histogram[bucket_of(40_000)] = 1;
        usage.histogram[bucket_of(20_000_000)] = 1;
        assert_eq!(usage.p50_ms(), Some(1.0));
        assert_eq!(usage.p99_ms(), Some(50.0), "rank 99 of 100 is the 40 ms request");
        assert_eq!(usage.percentile_ms(1000), Some(10_000.0), "past the last bound reads as the last bound");
    }
}
