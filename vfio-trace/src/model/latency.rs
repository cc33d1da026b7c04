//! Latency histograms (hdrhistogram, nanoseconds) and their summaries.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Summary written to JSON: count, min, p50, p90, p99, max, mean, in ns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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

/// Bounds and precision of every histogram: 1 ns to an hour at 2 significant
/// digits (1 % error), ~36 KiB each, so 16 devices of (4 orders + 5 outcomes)
/// hold ~5 MiB rather than the ~37 MiB 3 digits would take.
const LOW_NS: u64 = 1;
const HIGH_NS: u64 = 3_600_000_000_000;
const DIGITS: u8 = 2;

/// A latency distribution, allocated on its first sample: the many slots
/// that never see one (orders and outcomes a device never has) cost nothing.
#[derive(Debug, Default, Clone)]
pub struct Latency {
    hist: Option<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOW_NS, HIGH_NS, DIGITS)
        .unwrap_or_else(|e| unreachable!("1 ns to 1 h at 2 digits are valid bounds: {e}"))
}

impl Latency {
    pub fn record(&mut self, ns: u64) {
        self.hist
            .get_or_insert_with(histogram)
            .saturating_record(ns.max(LOW_NS));
    }

    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, Histogram::len)
    }

    /// Bytes of the histogram's counts.
    pub fn heap_bytes(&self) -> usize {
        self.hist
            .as_ref()
            .map_or(0, |h| h.distinct_values() * size_of::<u64>())
    }

    /// Samples at or below each bound (ns, ascending), as a cumulative
    /// histogram: a sample counts under the first bound its precision
    /// bucket starts at or below.
    #[must_use]
    pub fn cumulative(&self, bounds_ns: &[u64]) -> Vec<u64> {
        let mut out = vec![0; bounds_ns.len()];
        let Some(h) = &self.hist else {
            return out;
        };
        for v in h.iter_recorded() {
            let low = h.lowest_equivalent(v.value_iterated_to());
            let first = bounds_ns.partition_point(|b| *b < low);
            if let Some(slot) = out.get_mut(first) {
                *slot += v.count_at_value();
            }
        }
        let mut running = 0;
        for slot in &mut out {
            running += *slot;
            *slot = running;
        }
        out
    }

    /// Adds another distribution's samples to this one.
    pub fn add(&mut self, other: &Latency) {
        if let Some(o) = &other.hist {
            self.hist
                .get_or_insert_with(histogram)
                .add(o)
                .unwrap_or_else(|e| unreachable!("histograms of equal bounds add: {e}"));
        }
    }

    /// Samples per bucket: up to `edges[0]` ns, then up to each next edge,
    /// and the rest past the last (`edges.len() + 1` counts). Each sample
    /// counts at its bucket's top, within the histogram's 1 %.
    #[must_use]
    pub fn buckets(&self, edges: &[u64]) -> Vec<u64> {
        let mut out = vec![0; edges.len() + 1];
        if let Some(h) = &self.hist {
            for v in h.iter_recorded() {
                let at = edges.partition_point(|e| *e < v.value_iterated_to());
                out[at] += v.count_at_value();
            }
        }
        out
    }

    /// Sum of the samples (ns), from the mean: exact to the precision.
    #[must_use]
    #[expect(
        clippy::cast_precision_loss,
        reason = "a sum in ns as a float, for seconds; past 2^53 samples it rounds"
    )]
    pub fn sum_ns(&self) -> f64 {
        self.hist
            .as_ref()
            .filter(|h| !h.is_empty())
            .map_or(0.0, |h| h.mean() * h.len() as f64)
    }

    pub fn summary(&self) -> Summary {
        let Some(h) = self.hist.as_ref().filter(|h| !h.is_empty()) else {
            return Summary::EMPTY;
        };
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
        // 2 significant digits: a quantile is its bucket's top, within 1 %.
        assert!((495_000..=505_000).contains(&s.p50), "{s:?}");
        assert!((980_000..=1_000_000).contains(&s.p99), "{s:?}");
        assert!((s.mean - 500_500.0).abs() < 600.0, "{s:?}");
    }

    #[test]
    fn a_histogram_is_small_and_made_on_first_sample() {
        let mut l = Latency::default();
        assert_eq!(l.heap_bytes(), 0);
        l.record(1);
        l.record(u64::MAX);
        assert!(l.heap_bytes() <= 40 << 10, "{}", l.heap_bytes());
        // Past an hour saturates at the hour (to within the precision).
        assert!((HIGH_NS..HIGH_NS / 100 * 101).contains(&l.summary().max));
    }

    #[test]
    fn cumulative_counts_fall_under_their_bound() {
        let mut l = Latency::default();
        assert_eq!(l.cumulative(&[10, 100]), [0, 0]);
        for ns in [5, 50, 50, 500, 5000] {
            l.record(ns);
        }
        assert_eq!(l.cumulative(&[10, 100, 1000]), [1, 3, 4]);
        assert!((l.sum_ns() - 5605.0).abs() < 60.0, "{}", l.sum_ns());
    }

    #[test]
    fn distributions_add_and_bucket() {
        let mut a = Latency::default();
        let mut b = Latency::default();
        for ns in [500, 1_500, 1_500] {
            a.record(ns);
        }
        b.record(50_000);
        a.add(&b);
        a.add(&Latency::default());
        assert_eq!(a.count(), 4);
        assert_eq!(a.buckets(&[1_000, 10_000]), [1, 2, 1]);
        assert_eq!(Latency::default().buckets(&[1]), [0, 0]);
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Latency::default().summary().count, 0);
    }
}
