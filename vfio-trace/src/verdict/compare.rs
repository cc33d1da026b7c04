//! A run beside a baseline (6.1 vs 6.12, aligned vs unaligned, before and
//! after a kernel upgrade): the same figures per device, with the change
//! and the ratio.

use serde::Serialize;

use super::pages::table_bytes;
use crate::{
    model::fault::{Origin, Outcome},
    record::{devices::DeviceDoc, dma::CycleDoc, document::Document},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Count,
    Ns,
    Bytes,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub name: &'static str,
    pub unit: Unit,
    pub baseline: f64,
    pub run: f64,
}

impl Row {
    #[must_use]
    pub fn delta(&self) -> f64 {
        self.run - self.baseline
    }

    /// Run over baseline; `None` when the baseline is 0.
    #[must_use]
    pub fn ratio(&self) -> Option<f64> {
        (self.baseline != 0.0).then(|| self.run / self.baseline)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceComparison {
    pub run: String,
    pub baseline: String,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub run_kernel: String,
    pub baseline_kernel: String,
    pub devices: Vec<DeviceComparison>,
}

fn order(d: &DeviceDoc, o: &str) -> f64 {
    d.faults.by_order.get(o).copied().unwrap_or(0) as f64
}

fn p50(d: &DeviceDoc, o: &str) -> f64 {
    d.latency_ns.by_order.get(o).map_or(0.0, |l| l.p50 as f64)
}

/// The figures compared, in order.
fn figures(d: &DeviceDoc) -> Vec<(&'static str, Unit, f64)> {
    let i = &d.inserts;
    let remap_entries = i.remap_pages;
    vec![
        ("faults", Unit::Count, d.faults.total as f64),
        ("fault time", Unit::Ns, d.fault_ns() as f64),
        ("4 KiB faults", Unit::Count, order(d, "0")),
        ("2 MiB faults", Unit::Count, order(d, "9")),
        ("1 GiB faults", Unit::Count, order(d, "18")),
        (
            "fallbacks",
            Unit::Count,
            d.faults
                .by_result
                .get(&Outcome::Fallback)
                .copied()
                .unwrap_or(0) as f64,
        ),
        ("4 KiB fault p50", Unit::Ns, p50(d, "0")),
        ("2 MiB fault p50", Unit::Ns, p50(d, "9")),
        ("1 GiB fault p50", Unit::Ns, p50(d, "18")),
        (
            "page-table bytes",
            Unit::Bytes,
            (table_bytes(i.pte + remap_entries) + table_bytes(i.pmd) + table_bytes(i.pud)) as f64,
        ),
        ("zaps", Unit::Count, d.zaps.count as f64),
        (
            "zap time",
            Unit::Ns,
            d.zaps.events.iter().map(|e| e.latency_ns).sum::<u64>() as f64,
        ),
        ("refaulted pages", Unit::Count, d.refaults.pages as f64),
        ("faults from a CPU", Unit::Count, origin(d, Origin::Cpu)),
        (
            "faults from DMA maps",
            Unit::Count,
            origin(d, Origin::DmaMap),
        ),
        ("DMA maps", Unit::Count, d.dma_maps.count as f64),
        ("DMA map time", Unit::Ns, d.dma_maps.total_ns as f64),
        (
            "DMA map time in faults",
            Unit::Ns,
            d.dma_maps.fault_ns as f64,
        ),
        (
            "DMA map pfn lookups",
            Unit::Count,
            d.dma_maps.lookups as f64,
        ),
        ("decode-off zaps", Unit::Count, cause(d, "decode-off")),
        ("reset zaps", Unit::Count, cause(d, "reset")),
        (
            "zap-then-map cycles",
            Unit::Count,
            cycles(d).map(|c| c.count).sum::<u64>() as f64,
        ),
        (
            "cycle time",
            Unit::Ns,
            cycles(d)
                .map(|c| c.zap_ns + c.to_map_ns + c.map_ns)
                .sum::<u64>() as f64,
        ),
    ]
}

fn origin(d: &DeviceDoc, o: Origin) -> f64 {
    d.faults.by_origin.get(&o).copied().unwrap_or(0) as f64
}

fn cause(d: &DeviceDoc, c: &str) -> f64 {
    d.zaps.causes.get(c).copied().unwrap_or(0) as f64
}

/// Zaps a DMA map followed, whatever their cause: a VMM's decode toggles
/// and resets alike.
fn cycles(d: &DeviceDoc) -> impl Iterator<Item = &CycleDoc> {
    d.cycles.values()
}

/// Pairs devices by address; two single-device runs pair whatever their
/// addresses (one lab device against another).
fn pairs<'a>(run: &'a Document, base: &'a Document) -> Vec<(&'a DeviceDoc, &'a DeviceDoc)> {
    if let ([r], [b]) = (run.devices.as_slice(), base.devices.as_slice()) {
        return vec![(r, b)];
    }
    run.devices
        .iter()
        .filter_map(|r| Some((r, base.devices.iter().find(|b| b.bdf == r.bdf)?)))
        .collect()
}

#[must_use]
pub fn compare(run: &Document, base: &Document) -> Comparison {
    Comparison {
        run_kernel: run.kernel.release.clone(),
        baseline_kernel: base.kernel.release.clone(),
        devices: pairs(run, base)
            .into_iter()
            .map(|(r, b)| DeviceComparison {
                run: r.bdf.to_string(),
                baseline: b.bdf.to_string(),
                rows: figures(r)
                    .into_iter()
                    .zip(figures(b))
                    .map(|((name, unit, run), (_, _, baseline))| Row {
                        name,
                        unit,
                        baseline,
                        run,
                    })
                    .collect(),
            })
            .collect(),
    }
}
