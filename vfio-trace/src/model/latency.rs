//! Latency histograms (hdrhistogram, nanoseconds) and their summaries.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Summary written to JSON: count, min, p50, p90, p99, max, mean, in ns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

impl Summary {
    /// No samples.
    pub const EMPTY: Summary = Summary {
        count: 0,
        min: 0,
        p50: 0,
        p90: 0,
        p99: 0,
        max: 0,
        mean: 0.0,
    };
}

/// A latency distribution from 1 ns to an hour at 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("1 ns to 1 h at 3 digits are valid bounds"),
        }
    }
}

impl Latency {
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.max(1));
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    pub fn summary(&self) -> Summary {
        let h = &self.hist;
        if h.is_empty() {
            return Summary::EMPTY;
        }
        Summary {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reports_quantiles_within_precision() {
        let mut l = Latency::default();
        for ns in 1..=1000u64 {
            l.record(ns * 1000);
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.min, 1000);
        assert!((499_000..=501_000).contains(&s.p50), "{s:?}");
        assert!((989_000..=991_000).contains(&s.p99), "{s:?}");
        assert!((s.mean - 500_500.0).abs() < 600.0, "{s:?}");
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Latency::default().summary().count, 0);
    }
}
