//! What a BAR's faults would have cost at a larger page size: the windows
//! its faulted pages fall in, each one fault, timed with the latency the
//! same run measured for that order, and saying so when it never saw one.

use serde::Serialize;

use super::pages::{order_bytes, span_pages, table_bytes, windows};
use crate::record::devices::{BarDoc, DeviceDoc};

/// Where a projected fault time comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Basis {
    /// The mean of this order's faults in the same run: of mappings where
    /// each mapped when there are any, else of all of them, `fallbacks` of
    /// which did not map (their time is in the mean too).
    Measured {
        faults: u64,
        fallbacks: u64,
        mean_ns: f64,
    },
    /// The order was never observed: the mean of the largest order that was
    /// (`from_order`) stands in for it.
    Borrowed { from_order: u32, mean_ns: f64 },
    /// No fault of any order was timed.
    Unknown,
}

impl Basis {
    fn mean_ns(&self) -> Option<f64> {
        match self {
            Self::Measured { mean_ns, .. } | Self::Borrowed { mean_ns, .. } => Some(*mean_ns),
            Self::Unknown => None,
        }
    }

    /// One phrase saying what the time rests on.
    #[must_use]
    pub fn describe(&self, order: u32) -> String {
        let name = super::pages::order_name(order);
        match self {
            Self::Measured {
                faults,
                fallbacks: 0,
                ..
            } => format!("measured: mean of {faults} {name} faults in this run"),
            Self::Measured {
                faults, fallbacks, ..
            } => format!(
                "measured: mean of {faults} {name} faults in this run, {fallbacks} of them fallbacks"
            ),
            Self::Borrowed { from_order, .. } => format!(
                "no mapped {name} fault in this run: estimated at the mean {} fault",
                super::pages::order_name(*from_order)
            ),
            Self::Unknown => "no fault timed in this run: time unknown".to_owned(),
        }
    }
}

/// Faults and time had every fault of the BAR mapped `order`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projection {
    pub order: u32,
    pub faults: u64,
    pub fault_ns: Option<u64>,
    pub basis: Basis,
    /// Leaf page-table bytes those entries take.
    pub page_table_bytes: u64,
    /// The faulted pages span less than one page of this order: it maps
    /// only if the mapping covers the whole page (its size is not recorded).
    pub needs_larger_mapping: bool,
}

/// Entries of `order` a device inserted (whole-VMA remaps count as 4 KiB).
fn mapped(d: &DeviceDoc, order: u32) -> u64 {
    match order {
        0 => d.inserts.pte + d.inserts.remap,
        9 => d.inserts.pmd,
        18 => d.inserts.pud,
        _ => 0,
    }
}

/// The mean of `order` faults in mappings where every such fault mapped:
/// a fallback returns early, so a mean that mixes them in says little of a
/// mapped fault's cost. `None` when no mapping qualifies.
fn clean(d: &DeviceDoc, order: u32) -> Option<Basis> {
    let key = order.to_string();
    let (faults, ns) = d
        .bars
        .iter()
        .flat_map(|b| &b.mappings)
        .filter_map(|m| {
            let n = *m.faults_by_order.get(&key)?;
            (n > 0 && m.mapped_by_order.get(&key) == Some(&n))
                .then(|| (n, m.fault_ns_by_order.get(&key).copied().unwrap_or(0)))
        })
        .fold((0, 0), |(a, b), (n, ns)| (a + n, b + ns));
    (faults > 0).then(|| Basis::Measured {
        faults,
        fallbacks: 0,
        mean_ns: ns as f64 / faults as f64,
    })
}

/// Latency mean of `order` in a device, if a fault of it mapped: the mean
/// of attempts that all fell back says nothing of a mapped fault's cost.
fn measured(d: &DeviceDoc, order: u32) -> Option<Basis> {
    if let Some(b) = clean(d, order) {
        return Some(b);
    }
    let l = d.latency_ns.by_order.get(&order.to_string())?;
    let mapped = mapped(d, order);
    (l.count > 0 && mapped > 0).then(|| Basis::Measured {
        faults: l.count,
        fallbacks: l.count.saturating_sub(mapped),
        mean_ns: l.mean,
    })
}

/// The basis for `order`: measured, else the largest order measured.
#[must_use]
pub fn basis(d: &DeviceDoc, order: u32) -> Basis {
    measured(d, order).unwrap_or_else(|| {
        super::pages::ORDERS
            .iter()
            .rev()
            .find_map(|&o| match measured(d, o)? {
                Basis::Measured { mean_ns, .. } => Some(Basis::Borrowed {
                    from_order: o,
                    mean_ns,
                }),
                _ => None,
            })
            .unwrap_or(Basis::Unknown)
    })
}

/// Projections for each order from `from` to `to` (x86-64 orders only).
#[must_use]
pub fn project(d: &DeviceDoc, b: &BarDoc, from: u32, to: u32) -> Vec<Projection> {
    super::pages::ORDERS
        .iter()
        .copied()
        .filter(|o| (from..=to).contains(o))
        .map(|order| {
            let faults = windows(&b.page_faults, order);
            let basis = basis(d, order);
            Projection {
                order,
                faults,
                fault_ns: basis.mean_ns().map(|m| (faults as f64 * m).round() as u64),
                basis,
                page_table_bytes: table_bytes(faults),
                needs_larger_mapping: order > 0
                    && (span_pages(&b.page_faults, from) << super::pages::PAGE_SHIFT)
                        < order_bytes(order),
            }
        })
        .collect()
}
