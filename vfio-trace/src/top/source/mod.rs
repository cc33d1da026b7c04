//! Where `top`'s figures come from: a live session, or a recording played
//! back. Both give the same [`Sample`], so the UI cannot tell them apart.

pub mod live;
pub mod replay;

use super::view::Sample;
use crate::{device::Bdf, event::Event, model::latency::Summary};

pub trait Source {
    /// Events read from the rings since the last call (live only).
    fn ingest(&mut self, _batch: &[Event]) {}

    /// The next batch of events read from the rings; never, for a replay.
    fn next_batch(&mut self) -> impl Future<Output = Vec<Event>> {
        std::future::pending()
    }

    /// Brings the model up to now before a sample: live, the rings are
    /// drained, though the collector yields the CPU between refreshes.
    fn catch_up(&mut self) -> impl Future<Output = ()> {
        std::future::ready(())
    }

    /// The device whose view is open (`None`: the table). Live, only its
    /// row carries the projection, the costly part of a sample; a replay
    /// works out every device's once and ignores this.
    fn focus(&mut self, _device: Option<Bdf>) {}

    /// What to show now. A replay shows recorded second `at` (`None`: the
    /// whole run, as averages); live ignores `at` and shows the rates
    /// since the previous sample.
    fn sample(&mut self, at: Option<u64>) -> Sample;
}

/// One summary of several disjoint sets of samples (the orders of a
/// device, the modes of a lock). With one set it is exact; with more, each
/// quantile is the largest of the sets', an upper bound of the merged
/// quantile (and `true` says so). Count, min, max and mean are exact.
#[must_use]
pub fn merge_summaries<'a>(parts: impl IntoIterator<Item = &'a Summary>) -> (Summary, bool) {
    let parts: Vec<&Summary> = parts.into_iter().filter(|s| s.count > 0).collect();
    match parts.as_slice() {
        [] => (Summary::EMPTY, false),
        [one] => (**one, false),
        many => {
            let count: u64 = many.iter().map(|s| s.count).sum();
            #[expect(clippy::cast_precision_loss, reason = "a mean")]
            let mean = many.iter().map(|s| s.mean * s.count as f64).sum::<f64>() / count as f64;
            let max_of = |q: fn(&Summary) -> u64| many.iter().map(|s| q(s)).max().unwrap_or(0);
            (
                Summary {
                    count,
                    min: many.iter().map(|s| s.min).min().unwrap_or(0),
                    p50: max_of(|s| s.p50),
                    p90: max_of(|s| s.p90),
                    p99: max_of(|s| s.p99),
                    max: max_of(|s| s.max),
                    mean,
                },
                true,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(clippy::cast_precision_loss, reason = "small test values")]
    fn s(count: u64, p50: u64, p99: u64) -> Summary {
        Summary {
            count,
            min: p50 / 2,
            p50,
            p90: p99,
            p99,
            max: p99 * 2,
            mean: p50 as f64,
        }
    }

    #[test]
    fn one_set_is_exact_several_give_bounds() {
        assert_eq!(merge_summaries([&Summary::EMPTY]), (Summary::EMPTY, false));
        let a = s(10, 1000, 5000);
        assert_eq!(merge_summaries([&a, &Summary::EMPTY]), (a, false));
        let (m, bound) = merge_summaries([&a, &s(30, 3000, 4000)]);
        assert!(bound);
        assert_eq!(
            (m.count, m.min, m.p50, m.p99, m.max),
            (40, 500, 3000, 5000, 10_000)
        );
        assert!((m.mean - 2500.0).abs() < 1e-9);
    }
}
