//! The huge-fault verdict of a recording: per device and BAR, what mapping
//! it cost (faults, their orders, fallbacks and why, fault time, page
//! tables), what the best page size would have cost, measured against the
//! same run's own per-order latencies, and one line of advice. Pure
//! functions over a [`Document`]: no I/O.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "counts and nanoseconds stay far below 2^52; projected times are rounded \
              non-negative products of them, shown or compared, never indexed"
)]

pub mod advice;
pub mod charts;
pub mod compare;
pub mod expect;
pub mod mapping;
pub mod pages;
pub mod projection;
pub mod render;
pub mod trace_event;

use serde::Serialize;

use crate::{
    kernel::Generation,
    record::{
        devices::{BarDoc, DeviceDoc},
        document::Document,
    },
};
use pages::{ORDERS, alignment, order_bytes, span_pages, table_bytes};
pub use projection::{Basis, Projection};

/// Why faults of an order did not map, or could not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Blocker {
    /// The kernel maps page by page or whole VMAs: no huge faults before 6.12.
    KernelWithoutHugeFaults,
    /// The BAR's physical address is not aligned to the page size.
    MisalignedBar,
    /// The BAR is smaller than the page size.
    BarTooSmall,
    /// The mapping is smaller than the page size.
    MappingTooSmall,
    /// Attempts at the order fell back while the BAR allows it: the mapping's
    /// virtual address (or its end) is not aligned to the page size.
    MisalignedVirtualAddress,
    /// The kernel never tried the order (nothing says why).
    NotAttempted,
}

impl Blocker {
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::KernelWithoutHugeFaults => "kernel without huge faults",
            Self::MisalignedBar => "misaligned BAR",
            Self::BarTooSmall => "BAR smaller than the page",
            Self::MappingTooSmall => "mapping smaller than the page",
            Self::MisalignedVirtualAddress => "misaligned virtual address",
            Self::NotAttempted => "never attempted",
        }
    }
}

/// What became of one huge order on one BAR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderOutcome {
    pub order: u32,
    /// Faults that asked for it (device-wide: the document counts orders per device).
    pub attempts: u64,
    /// Entries of its size inserted in this BAR.
    pub mapped: u64,
    /// Attempts that did not map (fallbacks, device-wide).
    pub fell_back: u64,
    /// Why it did not map, when it did not.
    pub blocked: Option<Blocker>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BarVerdict {
    pub index: Option<u32>,
    pub size: Option<u64>,
    pub phys_start: Option<u64>,
    /// Alignment of the BAR's physical address, when known.
    pub phys_alignment: Option<u64>,
    pub faults: u64,
    pub pages_faulted: u64,
    /// Bytes from the first page faulted to the last, whole pages of the
    /// largest size mapped.
    pub span_bytes: u64,
    /// Entries inserted by order.
    pub mapped_by_order: Vec<(u32, u64)>,
    /// The largest order that mapped here (None: nothing mapped).
    pub achieved_order: Option<u32>,
    /// The largest order the BAR (size, physical alignment) and the kernel
    /// allow: what an aligned mapping would get.
    pub best_order: u32,
    /// The huge orders and what became of them.
    pub huge: Vec<OrderOutcome>,
    /// Leaf page-table bytes the inserts imply.
    pub page_table_bytes: u64,
    /// Faults and time at each order from the achieved one up to the best.
    pub projections: Vec<Projection>,
    /// From the BAR's own figures; the mappings' lines say more when the
    /// recording has them.
    pub advice: String,
    /// Each mapping (VMA) the faults came through.
    pub mappings: Vec<mapping::MappingVerdict>,
}

/// The cost of zaps and the refaults after them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RefaultCost {
    pub zaps: u64,
    pub zap_ns: u64,
    /// Pages removed by zaps and faulted in again.
    pub refaulted_pages: u64,
    /// Summed over zaps: from the end of each zap until its pages were all back.
    pub repopulate_ns: u64,
    /// Zaps whose removed pages did not all come back during the run.
    pub not_repopulated: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceVerdict {
    pub bdf: String,
    pub faults: u64,
    /// Time in the fault handler: count times mean, per order.
    pub fault_ns: u64,
    pub fallbacks: u64,
    pub bars: Vec<BarVerdict>,
    pub refaults: RefaultCost,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub kernel: String,
    pub generation: Option<Generation>,
    /// The kernel maps with huge faults (6.12+ fault handler).
    pub huge_faults: bool,
    pub devices: Vec<DeviceVerdict>,
}

/// Order attempts in a device's `faults.by_order`.
fn attempts(d: &DeviceDoc, order: u32) -> u64 {
    d.faults
        .by_order
        .get(&order.to_string())
        .copied()
        .unwrap_or(0)
}

/// Entries of `order` a BAR got.
fn mapped(b: &BarDoc, order: u32) -> u64 {
    match order {
        0 => b.inserts.pte + b.inserts.remap_pages,
        9 => b.inserts.pmd,
        18 => b.inserts.pud,
        _ => b
            .mapping_sizes
            .get(&order_bytes(order).to_string())
            .copied()
            .unwrap_or(0),
    }
}

/// Why `order` cannot map on a BAR regardless of the virtual address.
fn bar_blocker(b: &BarDoc, order: u32, huge_faults: bool) -> Option<Blocker> {
    let bytes = order_bytes(order);
    if order == 0 {
        None
    } else if !huge_faults {
        Some(Blocker::KernelWithoutHugeFaults)
    } else if b.size.is_some_and(|s| s < bytes) {
        Some(Blocker::BarTooSmall)
    } else if b.phys_start.is_some_and(|p| p % bytes != 0) {
        Some(Blocker::MisalignedBar)
    } else {
        None
    }
}

fn bar_verdict(d: &DeviceDoc, b: &BarDoc, huge_faults: bool) -> BarVerdict {
    let huge: Vec<OrderOutcome> = ORDERS[1..]
        .iter()
        .map(|&order| {
            let (attempts, mapped) = (attempts(d, order), mapped(b, order));
            let fell_back = attempts.saturating_sub(d.inserts_of(order));
            let blocked = bar_blocker(b, order, huge_faults).or(match (attempts, mapped) {
                (_, m) if m > 0 => None,
                (0, _) => Some(Blocker::NotAttempted),
                _ => Some(Blocker::MisalignedVirtualAddress),
            });
            OrderOutcome {
                order,
                attempts,
                mapped,
                fell_back,
                blocked,
            }
        })
        .collect();
    let mapped_by_order: Vec<(u32, u64)> = ORDERS
        .iter()
        .map(|&o| (o, mapped(b, o)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let achieved_order = mapped_by_order.iter().map(|(o, _)| *o).max();
    let best_order = ORDERS
        .iter()
        .copied()
        .filter(|&o| bar_blocker(b, o, huge_faults).is_none())
        .max()
        .unwrap_or(0);
    let page_table_bytes = ORDERS.iter().map(|&o| table_bytes(mapped(b, o))).sum();
    let projections = projection::project(d, b, achieved_order.unwrap_or(0), best_order);
    let mut v = BarVerdict {
        index: b.index,
        size: b.size,
        phys_start: b.phys_start,
        phys_alignment: b.phys_start.map(alignment),
        faults: b.faults,
        pages_faulted: b.pages_faulted,
        span_bytes: span_pages(&b.page_faults, achieved_order.unwrap_or(0)) << pages::PAGE_SHIFT,
        mapped_by_order,
        achieved_order,
        best_order,
        huge,
        page_table_bytes,
        projections,
        advice: String::new(),
        mappings: b
            .mappings
            .iter()
            .map(|m| mapping::verdict(d, b, m, huge_faults))
            .collect(),
    };
    v.advice = advice::line(&d.bdf.to_string(), &v, huge_faults);
    v
}

impl DeviceDoc {
    /// Entries of `order` inserted device-wide.
    fn inserts_of(&self, order: u32) -> u64 {
        match order {
            0 => self.inserts.pte,
            9 => self.inserts.pmd,
            18 => self.inserts.pud,
            _ => 0,
        }
    }

    /// Time in the fault handler: per order, count times mean.
    #[must_use]
    pub fn fault_ns(&self) -> u64 {
        self.latency_ns
            .by_order
            .values()
            .map(|l| l.count as f64 * l.mean)
            .sum::<f64>()
            .round() as u64
    }
}

fn refault_cost(d: &DeviceDoc) -> RefaultCost {
    let z = &d.zaps;
    RefaultCost {
        zaps: z.count,
        zap_ns: z.events.iter().map(|e| e.latency_ns).sum(),
        refaulted_pages: d.refaults.pages,
        repopulate_ns: z.events.iter().filter_map(|e| e.repopulated_ns).sum(),
        not_repopulated: z
            .events
            .iter()
            .filter(|e| e.removed_pages > 0 && e.repopulated_ns.is_none())
            .count() as u64,
    }
}

/// Whether a kernel of `generation` maps with huge faults (6.12+).
#[must_use]
pub fn huge_faults(generation: Option<Generation>) -> bool {
    generation == Some(Generation::HugeFault)
}

/// The verdict of one device of a recording.
#[must_use]
pub fn device(d: &DeviceDoc, huge_faults: bool) -> DeviceVerdict {
    DeviceVerdict {
        bdf: d.bdf.to_string(),
        faults: d.faults.total,
        fault_ns: d.fault_ns(),
        fallbacks: d
            .faults
            .by_result
            .get(&crate::model::fault::Outcome::Fallback)
            .copied()
            .unwrap_or(0),
        bars: d
            .bars
            .iter()
            .map(|b| bar_verdict(d, b, huge_faults))
            .collect(),
        refaults: refault_cost(d),
    }
}

/// The verdict of a recording.
#[must_use]
pub fn verdict(doc: &Document) -> Verdict {
    let generation = doc.kernel.generation;
    let huge_faults = huge_faults(generation);
    Verdict {
        kernel: doc.kernel.release.clone(),
        generation,
        huge_faults,
        devices: doc.devices.iter().map(|d| device(d, huge_faults)).collect(),
    }
}

#[cfg(test)]
mod mapping_tests;
#[cfg(test)]
mod output_tests;
#[cfg(test)]
mod tests;
