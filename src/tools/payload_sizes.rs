//! The distribution of payload sizes for `inspect --stats`: exact
//! percentiles in memory bounded by the number of distinct sizes (at most
//! `--max-entry-bytes`, in practice a few), not by the number of entries.

use serde::Serialize;
use std::collections::BTreeMap;

/// How many payloads have each size.
#[derive(Default)]
pub struct PayloadSizes {
    /// Size in bytes -> how many payloads have it.
    counts: BTreeMap<u32, u64>,
    count: u64,
    total: u64,
}

/// The distribution in numbers; every field but `count` and `total_bytes`
/// is `None` when there are no payloads.
#[derive(Serialize, Debug, PartialEq)]
pub struct Distribution {
    pub count: u64,
    pub total_bytes: u64,
    pub min: Option<u32>,
    pub p50: Option<u32>,
    pub p90: Option<u32>,
    pub p99: Option<u32>,
    pub max: Option<u32>,
    pub mean: Option<f64>,
}

impl PayloadSizes {
    pub fn add(&mut self, size: u32) {
        *self.counts.entry(size).or_default() += 1;
        self.count += 1;
        self.total += u64::from(size);
    }

    /// The `p`th percentile (0 < p <= 100) by nearest rank: the smallest
    /// size that at least p% of the payloads do not exceed. Always a size
    /// some payload has, never an interpolation.
    pub fn percentile(&self, p: u64) -> Option<u32> {
        // rank = ceil(p * count / 100), at least 1.
        let rank = (p * self.count).div_ceil(100).max(1);
        let mut seen = 0;
        for (&size, &n) in &self.counts {
            seen += n;
            if seen >= rank {
                return Some(size);
            }
        }
        None
    }

    pub fn distribution(&self) -> Distribution {
        Distribution {
            count: self.count,
            total_bytes: self.total,
            min: self.counts.keys().next().copied(),
            p50: self.percentile(50),
            p90: self.percentile(90),
            p99: self.percentile(99),
            max: self.counts.keys().next_back().copied(),
            mean: (self.count > 0).then(|| self.total as f64 / self.count as f64),
        }
    }
}

impl Distribution {
    /// `min 1, p50 2, p90 3, p99 3, max 3, mean 2.0 bytes`, or `none`.
    pub fn describe(&self) -> String {
        match (self.min, self.p50, self.p90, self.p99, self.max, self.mean) {
            (Some(min), Some(p50), Some(p90), Some(p99), Some(max), Some(mean)) => format!(
                "min {min}, p50 {p50}, p90 {p90}, p99 {p99}, max {max}, mean {mean:.1} bytes"
            ),
            _ => "none".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(sizes: &[u32]) -> PayloadSizes {
        let mut d = PayloadSizes::default();
        for &s in sizes {
            d.add(s);
        }
        d
    }

    #[test]
    fn percentiles_are_nearest_ranks() {
        // 1..=100: the pth percentile is p itself.
        let d = of(&(1..=100).rev().collect::<Vec<_>>()).distribution();
        assert_eq!(
            (d.min, d.p50, d.p90, d.p99, d.max),
            (Some(1), Some(50), Some(90), Some(99), Some(100))
        );
        assert_eq!(d.mean, Some(50.5));
        assert_eq!(d.total_bytes, 5050);
    }

    #[test]
    fn a_few_sizes_give_sizes_that_occur() {
        // Ranks for 4 payloads: p50 -> 2nd, p90 and p99 -> 4th.
        let d = of(&[7, 3, 3, 1000]).distribution();
        assert_eq!(
            (d.min, d.p50, d.p90, d.p99, d.max),
            (Some(3), Some(3), Some(1000), Some(1000), Some(1000))
        );
        let one = of(&[42]).distribution();
        assert_eq!(
            (one.min, one.p50, one.p99, one.max),
            (Some(42), Some(42), Some(42), Some(42))
        );
    }

    #[test]
    fn memory_grows_with_distinct_sizes_only() {
        let mut d = PayloadSizes::default();
        for k in 0..100_000u32 {
            d.add(100 + k % 3);
        }
        assert_eq!(d.counts.len(), 3);
        assert_eq!(d.distribution().count, 100_000);
    }

    #[test]
    fn no_payloads_no_numbers() {
        let d = PayloadSizes::default().distribution();
        assert_eq!(d.count, 0);
        assert_eq!((d.min, d.p50, d.max, d.mean), (None, None, None, None));
        assert_eq!(d.describe(), "none");
    }
}
