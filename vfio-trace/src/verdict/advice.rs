//! One line a person can act on, per BAR: what its mapping cost, what
//! alignment would give, and what stands in the way.

use std::fmt::Write as _;

use super::{
    BarVerdict, Blocker,
    pages::{order_name, size_name, thousands},
};
use crate::report::duration;

/// PMD or PUD, as kernel people say it.
#[must_use]
pub fn entry_name(order: u32) -> &'static str {
    match order {
        0 => "PTE",
        9 => "PMD",
        18 => "PUD",
        _ => "huge page",
    }
}

fn bar_name(v: &BarVerdict) -> String {
    v.index
        .map_or("unresolved BAR".to_owned(), |i| format!("BAR{i}"))
}

fn timed(faults: u64, ns: Option<u64>) -> String {
    match ns {
        Some(ns) => format!("{} faults ({})", thousands(faults), duration(ns)),
        None => format!("{} faults", thousands(faults)),
    }
}

/// "PUD impossible: misaligned virtual address" for each huge order that
/// did not map.
#[must_use]
pub fn blockers(v: &BarVerdict) -> Vec<String> {
    v.huge
        .iter()
        .filter_map(|h| {
            let b = h.blocked?;
            // Orders nobody tried above what the BAR allows say nothing new.
            (b != Blocker::NotAttempted || h.order <= v.best_order).then(|| {
                let mut s = format!("{} impossible: {}", entry_name(h.order), b.describe());
                if b == Blocker::MisalignedBar
                    && let Some(a) = v.phys_alignment
                {
                    let _ = write!(s, " (only {}-aligned)", size_name(a));
                }
                s
            })
        })
        .collect()
}

/// The advice line of one BAR of device `bdf`.
#[must_use]
pub fn line(bdf: &str, v: &BarVerdict, huge_faults: bool) -> String {
    let what = format!("{} of {bdf}", bar_name(v));
    let now_ns = v
        .projections
        .iter()
        .find(|p| Some(p.order) == v.achieved_order)
        .and_then(|p| p.fault_ns);
    let mapped = v
        .mapped_by_order
        .iter()
        .find(|(o, _)| Some(*o) == v.achieved_order)
        .map_or(0, |(_, n)| *n);
    let fell_back: u64 = v.huge.iter().map(|h| h.fell_back).sum();
    let now = match v.achieved_order {
        Some(o) if huge_faults => format!(
            "{} at {}{}",
            timed(mapped, now_ns),
            order_name(o),
            if fell_back > 0 {
                format!(" (+{} fallbacks)", thousands(fell_back))
            } else {
                String::new()
            }
        ),
        _ => timed(v.faults, None),
    };
    let why = blockers(v);
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(" [{}]", why.join("; "))
    };
    let Some(achieved) = v.achieved_order else {
        return format!("{what}: {now}, nothing mapped{why}");
    };
    if !huge_faults {
        return format!(
            "{what}: {now}; this kernel has no huge faults (6.12+ maps 2 MiB and 1 GiB pages \
             where the mapping is aligned){why}"
        );
    }
    if achieved >= v.best_order {
        return format!(
            "{what}: mapped with {} pages, {now}: the best this BAR allows{why}",
            order_name(achieved)
        );
    }
    let better: Vec<String> = v
        .projections
        .iter()
        .filter(|p| p.order > achieved)
        .map(|p| {
            let cond = if p.needs_larger_mapping {
                format!(" if the mapping covered a whole {}", order_name(p.order))
            } else {
                String::new()
            };
            let time = p
                .fault_ns
                .map_or(String::new(), |ns| format!(" (~{})", duration(ns)));
            format!(
                "aligned to {} it would take {}{time}{cond}",
                order_name(p.order),
                thousands(p.faults)
            )
        })
        .collect();
    format!(
        "{what} mmap is only {}-aligned: {now}; {} (QEMU >= 9.2 aligns; for your own mmap, \
         use MAP_FIXED on an aligned reservation){why}",
        order_name(achieved),
        better.join(", ")
    )
}
