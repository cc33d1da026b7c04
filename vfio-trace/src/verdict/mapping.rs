//! The verdict of one mapping (VMA) of a BAR: its virtual and physical
//! alignment, the largest page both allow, what it got, what aligned it
//! would have got, and the advice line.

use std::fmt::Write as _;

use serde::Serialize;

use super::{
    Blocker,
    advice::entry_name,
    pages::{
        ORDERS, alignment, count_of, order_bytes, order_name, size_name, table_bytes, thousands,
    },
    projection::{Basis, Projection, basis},
};
use crate::{
    record::{
        devices::{BarDoc, DeviceDoc},
        mappings::MappingDoc,
    },
    report::duration,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappingVerdict {
    pub pid: u32,
    pub start: u64,
    /// Bytes; 0 when not recorded.
    pub size: u64,
    pub bar_offset: u64,
    /// Alignment of `start`; `None` when the start was not recorded.
    pub va_alignment: Option<u64>,
    /// Alignment of the physical address the mapping starts at, when the
    /// BAR's address is known.
    pub pa_alignment: Option<u64>,
    /// The largest order the mapping as it is (both alignments, its size,
    /// the kernel) allows.
    pub allowed_order: u32,
    /// The largest order it would allow with its virtual address aligned.
    pub best_order: u32,
    /// The largest order that mapped.
    pub achieved_order: Option<u32>,
    pub faults: u64,
    pub fallbacks: u64,
    pub fault_ns: u64,
    /// Entries inserted by order.
    pub mapped_by_order: Vec<(u32, u64)>,
    pub page_table_bytes: u64,
    /// Why each huge order is out of reach, every reason that applies.
    pub blockers: Vec<(u32, Vec<Blocker>)>,
    /// Faults and time at each order above the achieved one, up to the best.
    pub projections: Vec<Projection>,
    pub advice: String,
}

fn count(map: &std::collections::BTreeMap<String, u64>, order: u32) -> u64 {
    map.get(&order.to_string()).copied().unwrap_or(0)
}

/// Every reason `order` cannot map on this mapping.
fn blockers(
    m: &MappingDoc,
    bar: &BarDoc,
    order: u32,
    huge_faults: bool,
    va: Option<u64>,
    pa: Option<u64>,
) -> Vec<Blocker> {
    let bytes = order_bytes(order);
    let mut why = Vec::new();
    if !huge_faults {
        why.push(Blocker::KernelWithoutHugeFaults);
    }
    if bar.size.is_some_and(|s| s < bytes) {
        why.push(Blocker::BarTooSmall);
    } else if pa.is_some_and(|a| a < bytes) {
        why.push(Blocker::MisalignedBar);
    }
    if m.size != 0 && m.size < bytes {
        why.push(Blocker::MappingTooSmall);
    }
    match va {
        Some(a) if a < bytes => why.push(Blocker::MisalignedVirtualAddress),
        // No address recorded: attempts that never mapped say the same.
        None if count(&m.faults_by_order, order) > 0 && count(&m.mapped_by_order, order) == 0 => {
            why.push(Blocker::MisalignedVirtualAddress);
        }
        _ => {}
    }
    why
}

/// Faults the mapping's touched pages take at `order`, one per window.
fn faults_at(m: &MappingDoc, order: u32) -> u64 {
    match order {
        0 => count(&m.mapped_by_order, 0).max(count(&m.mapped_by_order, 9) * 512),
        9 => m.windows_2m,
        _ => m.windows_1g,
    }
}

#[must_use]
pub fn verdict(d: &DeviceDoc, bar: &BarDoc, m: &MappingDoc, huge_faults: bool) -> MappingVerdict {
    let va = (m.start != 0).then(|| alignment(m.start));
    let pa = bar.phys_start.map(|p| alignment(p + m.bar_offset));
    let blockers: Vec<(u32, Vec<Blocker>)> = ORDERS[1..]
        .iter()
        .map(|&o| (o, blockers(m, bar, o, huge_faults, va, pa)))
        .filter(|(_, why)| !why.is_empty())
        .collect();
    let blocked = |o: u32| blockers.iter().find(|(b, _)| *b == o).map(|(_, w)| w);
    let allowed_order = ORDERS
        .iter()
        .copied()
        .filter(|&o| blocked(o).is_none())
        .max()
        .unwrap_or(0);
    let best_order = ORDERS
        .iter()
        .copied()
        .filter(|&o| {
            blocked(o).is_none_or(|w| w.iter().all(|b| *b == Blocker::MisalignedVirtualAddress))
        })
        .max()
        .unwrap_or(0);
    let mapped_by_order: Vec<(u32, u64)> = ORDERS
        .iter()
        .map(|&o| (o, count(&m.mapped_by_order, o)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let achieved_order = mapped_by_order.iter().map(|(o, _)| *o).max();
    let from = achieved_order.unwrap_or(0);
    let projections = ORDERS
        .iter()
        .copied()
        .filter(|o| (from..=best_order).contains(o))
        .map(|order| {
            let faults = faults_at(m, order);
            let basis = basis(d, order);
            Projection {
                order,
                faults,
                fault_ns: basis_ns(&basis, faults),
                basis,
                page_table_bytes: table_bytes(faults),
                needs_larger_mapping: false,
            }
        })
        .collect();
    let mut v = MappingVerdict {
        pid: m.pid,
        start: m.start,
        size: m.size,
        bar_offset: m.bar_offset,
        va_alignment: va,
        pa_alignment: pa,
        allowed_order,
        best_order,
        achieved_order,
        faults: m.faults_by_order.values().sum(),
        fallbacks: m.fallbacks,
        fault_ns: m.fault_ns_by_order.values().sum(),
        page_table_bytes: mapped_by_order.iter().map(|(_, n)| table_bytes(*n)).sum(),
        mapped_by_order,
        blockers,
        projections,
        advice: String::new(),
    };
    v.advice = advice(bar.index, &v, huge_faults);
    v
}

fn basis_ns(b: &Basis, faults: u64) -> Option<u64> {
    match b {
        Basis::Measured { mean_ns, .. } | Basis::Borrowed { mean_ns, .. } => {
            Some((faults as f64 * mean_ns).round() as u64)
        }
        Basis::Unknown => None,
    }
}

/// "PUD impossible: misaligned virtual address, mapping smaller than 1 GiB".
#[must_use]
pub fn blocker_text(v: &MappingVerdict) -> String {
    v.blockers
        .iter()
        .map(|(o, why)| {
            let why: Vec<String> = why
                .iter()
                .map(|b| match b {
                    Blocker::MappingTooSmall => format!("mapping smaller than {}", order_name(*o)),
                    Blocker::MisalignedBar => format!(
                        "misaligned BAR (only {}-aligned)",
                        v.pa_alignment.map_or("?".into(), size_name)
                    ),
                    b => b.describe().to_owned(),
                })
                .collect();
            format!("{} impossible: {}", entry_name(*o), why.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn advice(bar: Option<u32>, v: &MappingVerdict, huge_faults: bool) -> String {
    let bar = bar.map_or("BAR ?".to_owned(), |i| format!("BAR{i}"));
    let size = if v.size == 0 {
        String::new()
    } else {
        format!("{}, ", size_name(v.size))
    };
    let mut s = format!("{bar} mmap at {:#x} ({size}pid {})", v.start, v.pid);
    let mapped = |o: u32| {
        v.mapped_by_order
            .iter()
            .find(|(x, _)| *x == o)
            .map_or(0, |(_, n)| *n)
    };
    let fallbacks = if v.fallbacks > 0 {
        format!(" (+{} fallbacks)", thousands(v.fallbacks))
    } else {
        String::new()
    };
    let now = v.achieved_order.map_or("nothing mapped".into(), |o| {
        format!(
            "{} at {} in {}{fallbacks}",
            count_of(mapped(o), "fault"),
            order_name(o),
            duration(v.fault_ns)
        )
    });
    let achieved = v.achieved_order.unwrap_or(0);
    if !huge_faults {
        let _ = write!(
            s,
            ": {} faults, {} pages mapped; this kernel has no huge faults (6.12+ maps 2 MiB and \
             1 GiB pages where the mapping is aligned)",
            thousands(v.faults),
            thousands(mapped(0))
        );
    } else if achieved >= v.best_order {
        let _ = write!(s, ": {now}: the best it allows");
    } else if achieved < v.allowed_order {
        // Aligned for a larger page, yet mapped smaller: alignment is not
        // what stood in the way.
        let _ = write!(
            s,
            " allows {} pages but got {now}: not an alignment problem; the fallbacks say more",
            order_name(v.allowed_order)
        );
    } else {
        let aligned = v
            .va_alignment
            .map_or("of unknown alignment".to_owned(), |a| {
                format!("only {}-aligned", size_name(a.min(1 << 30)))
            });
        let better: Vec<String> = v
            .projections
            .iter()
            .filter(|p| p.order > achieved)
            .map(|p| {
                let time = p
                    .fault_ns
                    .map_or(String::new(), |ns| format!(" (~{})", duration(ns)));
                format!(
                    "aligned to {} it would take {}{time}",
                    order_name(p.order),
                    thousands(p.faults)
                )
            })
            .collect();
        let _ = write!(
            s,
            " is {aligned}: {now}; {} (QEMU >= 9.2 aligns; for your own mmap, use MAP_FIXED \
             on an aligned reservation)",
            better.join(", ")
        );
    }
    let why = blocker_text(v);
    if !why.is_empty() {
        let _ = write!(s, " [{why}]");
    }
    s
}
