//! Numbers as `top` prints them: short, with their unit.

use crate::model::latency::Summary;

/// A rate per second: `0`, `12`, `3.4k`, `1.2M`.
#[must_use]
pub fn rate(per_s: f64) -> String {
    if per_s <= 0.0 {
        "0".into()
    } else if per_s < 10.0 && per_s.fract() != 0.0 {
        format!("{per_s:.1}")
    } else if per_s < 1e3 {
        format!("{per_s:.0}")
    } else if per_s < 1e6 {
        format!("{:.1}k", per_s / 1e3)
    } else {
        format!("{:.1}M", per_s / 1e6)
    }
}

/// A count: `999`, `12.3k`, `4.5M`.
#[must_use]
pub fn count(n: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "shown to 3 digits")]
    let f = n as f64;
    if n < 10_000 {
        n.to_string()
    } else if n < 1_000_000 {
        format!("{:.1}k", f / 1e3)
    } else {
        format!("{:.1}M", f / 1e6)
    }
}

/// A duration in ns: `850ns`, `4.1µs`, `23ms`, `1.2s`.
#[must_use]
pub fn ns(ns: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "shown to 3 digits")]
    let f = ns as f64;
    let (v, unit) = match ns {
        0..1_000 => return format!("{ns}ns"),
        1_000..1_000_000 => (f / 1e3, "µs"),
        1_000_000..1_000_000_000 => (f / 1e6, "ms"),
        _ => (f / 1e9, "s"),
    };
    if v < 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.0}{unit}")
    }
}

/// A quantile of a summary, `-` when it has no samples.
#[must_use]
pub fn quantile(s: &Summary, q: fn(&Summary) -> u64) -> String {
    if s.count == 0 { "-".into() } else { ns(q(s)) }
}

/// Bytes in binary units: `4K`, `2M`, `256M`, `1G`.
#[must_use]
pub fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{name}", bytes / unit);
        }
    }
    format!("{bytes}B")
}

/// `vvvv:dddd`, or `-` when unknown.
#[must_use]
pub fn ids(vendor: Option<u16>, device: Option<u16>) -> String {
    match (vendor, device) {
        (Some(v), Some(d)) => format!("{v:04x}:{d:04x}"),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_carry_their_unit() {
        assert_eq!(
            [0.0, 2.5, 7.0, 42.4, 12_345.0, 3.2e6].map(rate),
            ["0", "2.5", "7", "42", "12.3k", "3.2M"]
        );
        assert_eq!(
            [999, 12_345, 4_500_000].map(count),
            ["999", "12.3k", "4.5M"]
        );
        assert_eq!(
            [850, 4_100, 23_000_000, 1_200_000_000].map(ns),
            ["850ns", "4.1µs", "23ms", "1.2s"]
        );
        assert_eq!(
            [4096, 2 << 20, 1 << 30, 1000].map(size),
            ["4K", "2M", "1G", "1000B"]
        );
        assert_eq!(ids(Some(0x1af4), Some(0x1110)), "1af4:1110");
        assert_eq!(quantile(&Summary::EMPTY, |s| s.p99), "-");
    }
}
