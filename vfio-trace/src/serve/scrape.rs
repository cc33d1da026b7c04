//! What one scrape exposes, as plain data: the model's counts for the
//! devices bound now, and the tracer's own state read at the same moment.
//! Built from a `Model` with no I/O, so the exposition is tested from a
//! synthetic model without root.

use vfio_trace_common::counter;

use crate::{
    device::{Bdf, PciDevice},
    kernel::Kernel,
    model::{Model, cause::ZapCause, fault::Origin, latency::Latency, stats::DeviceStats},
    probe::{load::KernelCounts, plan::PlannedProbe},
};

/// Histogram bucket bounds in nanoseconds: 1 µs to 10 s in 1-2.5-5 steps.
pub const BOUNDS_NS: [u64; 22] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A latency distribution as Prometheus wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    /// Samples at or below each of [`BOUNDS_NS`].
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl From<&Latency> for Buckets {
    fn from(l: &Latency) -> Self {
        Self {
            cumulative: l.cumulative(&BOUNDS_NS),
            count: l.count(),
            sum_seconds: l.sum_ns() / 1e9,
        }
    }
}

/// The tracer's state, read when the scrape is taken.
#[derive(Debug, Clone)]
pub struct Live {
    pub kernel: Kernel,
    /// Devices bound to vfio-pci now (and asked for, if any were).
    pub devices: Vec<PciDevice>,
    /// Their `Vendor Device` names from pci.ids, in the same order; empty
    /// where the system has no database.
    pub names: Vec<String>,
    pub probes: Vec<PlannedProbe>,
    pub counts: KernelCounts,
    /// Events read from the rings.
    pub events: u64,
    pub cpu_ns: u64,
    pub max_rss_kib: u64,
    pub bpf_stats_enabled: bool,
    pub stack_map_readable: bool,
    pub readers_failed: u64,
    /// Ring records dropped as undecodable so far.
    pub undecodable: u64,
    /// Diagnostics the programs logged so far.
    pub diagnostics: u64,
}

/// One device's counts.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceView {
    pub bdf: Bdf,
    /// By order label: the fixed orders, then any other seen.
    pub faults_by_order: Vec<(String, u64, Buckets)>,
    pub results: Vec<(&'static str, u64)>,
    /// By origin label: `cpu`, `dma_map`, `other`.
    pub origins: Vec<(&'static str, u64)>,
    /// By BAR label, for BARs that saw a fault: (faults, distinct pages).
    pub bars: Vec<(String, u64, u64)>,
    /// pte, pmd, pud, remap.
    pub inserts: [(&'static str, u64); 4],
    pub remapped_pages: u64,
    /// By bounded cause label.
    pub zaps: Vec<(&'static str, u64)>,
    pub zap_latency: Buckets,
    pub zapped_pages: u64,
    pub refaulted_pages: u64,
    pub write_hold: Buckets,
    /// DMA maps of the BARs: count, bytes, fault time (ns), pfn lookups.
    pub dma_maps: u64,
    pub dma_bytes: u64,
    pub dma_fault_ns: u64,
    pub dma_lookups: u64,
    pub dma_latency: Buckets,
    /// dma-buf revokes and restores.
    pub dma_buf_moves: [(&'static str, Buckets); 2],
    pub lock_waits: Vec<(&'static str, Buckets)>,
}

/// The cause label of a zap: callers outside the known causes share `other`,
/// so the label stays bounded whatever the kernel's call paths.
#[must_use]
pub fn cause_label(cause: &ZapCause) -> &'static str {
    match cause {
        ZapCause::DecodeOff => "decode-off",
        ZapCause::Reset => "reset",
        ZapCause::HotReset => "hot-reset",
        ZapCause::Power => "power",
        ZapCause::DmaBuf => "dma-buf",
        ZapCause::Caller(_) => "other",
        ZapCause::Unknown => "unknown",
    }
}

/// Every cause label, in exposition order.
pub const CAUSES: [&str; 7] = [
    "decode-off",
    "reset",
    "hot-reset",
    "power",
    "dma-buf",
    "other",
    "unknown",
];

impl DeviceView {
    #[must_use]
    pub fn new(bdf: Bdf, d: &DeviceStats) -> Self {
        let mut zaps: Vec<(&'static str, u64)> = CAUSES.iter().map(|c| (*c, 0)).collect();
        for z in &d.zaps.zaps {
            let label = cause_label(&z.cause);
            if let Some(slot) = zaps.iter_mut().find(|(c, _)| *c == label) {
                slot.1 += 1;
            }
        }
        Self {
            bdf,
            faults_by_order: d
                .by_order
                .iter()
                .zip(d.latency_by_order.values())
                .map(|((order, n), l)| (order.to_string(), *n, Buckets::from(l)))
                .collect(),
            results: d.by_outcome.iter().map(|(o, n)| (o.name(), *n)).collect(),
            origins: Origin::ALL
                .iter()
                .map(|o| (o.name(), d.by_origin[o.index()]))
                .collect(),
            bars: d
                .bars
                .iter()
                .filter(|(_, b)| b.faults > 0)
                .map(|(i, b)| {
                    let label = i.map_or_else(|| "unknown".to_owned(), |i| i.to_string());
                    (label, b.faults, b.page_faults.len())
                })
                .collect(),
            inserts: [
                ("pte", d.inserts.pte),
                ("pmd", d.inserts.pmd),
                ("pud", d.inserts.pud),
                ("remap", d.inserts.remap),
            ],
            remapped_pages: d.inserts.remap_pages,
            zaps,
            zap_latency: Buckets::from(&d.zaps.latency),
            zapped_pages: d.zaps.pages(),
            refaulted_pages: d.zaps.refaulted_pages,
            write_hold: Buckets::from(&d.zaps.write_hold),
            dma_maps: d.dma.maps,
            dma_bytes: d.dma.bytes,
            dma_fault_ns: d.dma.fault_ns,
            dma_lookups: d.dma.lookups,
            dma_latency: Buckets::from(&d.dma.latency),
            dma_buf_moves: [
                ("revoke", Buckets::from(&d.dma_buf_revokes)),
                ("restore", Buckets::from(&d.dma_buf_restores)),
            ],
            lock_waits: ["read", "write", "other"]
                .into_iter()
                .map(|mode| {
                    let b = d
                        .lock_waits
                        .get(mode)
                        .map_or_else(|| Buckets::from(&Latency::default()), Buckets::from);
                    (mode, b)
                })
                .collect(),
        }
    }
}

/// Events lost, by cause label; a stack that could not be stored loses no
/// event and is a health counter instead.
#[must_use]
pub fn losses(counts: &KernelCounts, undecodable: u64) -> [(&'static str, u64); 5] {
    let by = |which: u32| counts.counters[which as usize];
    [
        ("ring_full", by(counter::RING_FULL)),
        ("inflight_full", by(counter::INFLIGHT_FULL)),
        ("missed_return", counts.missed_returns()),
        ("recursion", counts.recursion_misses),
        ("undecodable", undecodable),
    ]
}

/// Everything one scrape exposes.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub live: Live,
    /// The devices of `live.devices`, in address order.
    pub devices: Vec<DeviceView>,
    pub unattributed_faults: u64,
    pub unattributed_zaps: u64,
    pub pages_out_of_range: u64,
    pub stacks_unresolved: u64,
}

impl Scrape {
    /// The model's counts for the devices bound now: a device unbound since
    /// it was traced leaves the metrics; one bound and idle shows zeros.
    #[must_use]
    pub fn new(model: &Model, live: Live) -> Self {
        let idle = DeviceStats::default();
        let devices = live
            .devices
            .iter()
            .map(|p| DeviceView::new(p.bdf, model.devices.get(&p.bdf).unwrap_or(&idle)))
            .collect();
        Self {
            devices,
            unattributed_faults: model.unattributed,
            unattributed_zaps: model.unattributed_zaps,
            pages_out_of_range: model.pages_out_of_range(),
            stacks_unresolved: model.stacks_unresolved(),
            live,
        }
    }

    /// True when nothing was lost and nothing went wrong.
    #[must_use]
    pub fn healthy(&self) -> bool {
        let c = &self.live.counts;
        losses(c, self.live.undecodable)
            .iter()
            .all(|(_, n)| *n == 0)
            && c.loss_maps_readable
            && self.live.stack_map_readable
            && self.live.readers_failed == 0
            && c.counters[counter::STACK_FAILED as usize] == 0
            && self.pages_out_of_range == 0
    }
}
