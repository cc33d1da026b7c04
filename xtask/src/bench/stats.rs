//! Medians and the figures derived from them. Under TCG single rounds are
//! noisy (a timer tick, a 9p write), so every comparison is median to median.

use serde::Serialize;

/// The median and range of some rounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Median absolute deviation from the median: the scatter of the rounds,
    /// which one outlier (a timer tick, a 9p write) does not inflate.
    pub mad: f64,
    pub n: usize,
}

/// `None` for no values; the mean of the middle two for an even count.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let (n, median) = (v.len(), middle(&v));
    let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
    dev.sort_by(f64::total_cmp);
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
        mad: middle(&dev),
        n,
    })
}

/// The middle of sorted, non-empty values.
fn middle(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

/// Whether `other` stands out of the scatter of both: every round of it slower
/// than every round of `base`, or its median more than three median absolute
/// deviations above `base`'s. Where it does not, a quotient over
/// `other - base` is noise over noise.
pub fn stands_out(base: &Spread, other: &Spread) -> bool {
    other.min > base.max || other.median - base.median > 3.0 * base.mad.max(other.mad)
}

/// The median alone.
pub fn median(values: &[f64]) -> Option<f64> {
    spread(values).map(|s| s.median)
}

/// A traced mode against the untraced one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    /// (median traced - median untraced) / faults.
    pub added_ns_per_fault: Option<f64>,
    /// median traced / median untraced.
    pub ratio: Option<f64>,
}

pub fn cost(traced: Option<f64>, untraced: Option<f64>, faults: Option<u64>) -> Cost {
    let (Some(t), Some(u)) = (traced, untraced) else {
        return Cost::default();
    };
    Cost {
        added_ns_per_fault: faults.filter(|&f| f > 0).map(|f| (t - u) / to_f64(f)),
        ratio: (u > 0.0).then(|| t / u),
    }
}

/// How many times tracefs's added time another tool adds; `None` when tracefs
/// added nothing measurable, which makes the quotient meaningless.
pub fn added_vs(tool: Option<f64>, tracefs: Option<f64>, untraced: Option<f64>) -> Option<f64> {
    let (t, b, u) = (tool?, tracefs?, untraced?);
    let base = b - u;
    (base > 0.0).then(|| (t - u) / base)
}

/// `num / den`, `None` when either is unknown or `den` is 0.
pub fn per(num: Option<u64>, den: Option<u64>) -> Option<f64> {
    let (n, d) = (num?, den?);
    (d > 0).then(|| to_f64(n) / to_f64(d))
}

/// Counts and nanoseconds in these reports stay far below 2^52, where f64 is exact.
pub fn to_f64(n: u64) -> f64 {
    n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_odd_even_and_empty() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let s = spread(&[88.0, 91.3, 87.8, 90.0, 88.5]).expect("five values");
        assert_eq!((s.median, s.min, s.max, s.n), (88.5, 87.8, 91.3, 5));
        // Deviations 0.5, 2.8, 0.7, 1.5, 0: one outlier moves the MAD little.
        assert!((s.mad - 0.7).abs() < 1e-9, "{}", s.mad);
    }

    #[test]
    fn standing_out_of_the_noise() {
        let spread_of = |v: &[f64]| spread(v).expect("values");
        let untraced = spread_of(&[83.8, 80.9, 150.7, 84.0, 83.0]);
        let tracefs = spread_of(&[158.1, 157.1, 167.9, 158.0, 159.0]);
        assert!(stands_out(&untraced, &tracefs));
        let one_fault = spread_of(&[0.23, 0.19, 0.35, 0.22, 0.30]);
        let one_fault_traced = spread_of(&[0.30, 0.27, 0.59, 0.28, 0.31]);
        assert!(!stands_out(&one_fault, &one_fault_traced));
        // Three noisy rounds each, but no overlap (storm-1g in a busy boot).
        let big = spread_of(&[1680.0, 2183.0, 2263.0]);
        let big_traced = spread_of(&[2342.0, 2809.0, 3974.0]);
        assert!(stands_out(&big, &big_traced));
    }

    #[test]
    fn costs_and_the_headline() {
        // perf.md's numbers: 88 ms untraced, 163 tracefs, 664 record, 16384 faults.
        let c = cost(Some(163e6), Some(88e6), Some(16384));
        let added = c.added_ns_per_fault.expect("known");
        assert!((added - 4577.6).abs() < 0.1, "{added}");
        assert_eq!(cost(Some(176.0), Some(88.0), Some(0)).ratio, Some(2.0));
        assert_eq!(cost(None, Some(1.0), Some(1)), Cost::default());
        let headline = added_vs(Some(664.0), Some(163.0), Some(88.0)).expect("known");
        assert!((headline - 7.68).abs() < 0.01, "{headline}");
        assert_eq!(added_vs(Some(664.0), Some(80.0), Some(88.0)), None);
    }

    #[test]
    fn rates() {
        assert_eq!(per(Some(30), Some(10)), Some(3.0));
        assert_eq!(per(Some(30), Some(0)), None);
        assert_eq!(per(None, Some(1)), None);
    }
}
