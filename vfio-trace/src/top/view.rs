//! What one refresh of `top` shows, as plain data: the sources fill it
//! (from a live model or a recording), the UI and `--once` only read it.

use crate::{device::Bdf, model::latency::Summary, record::document::ProbeDoc};

/// One refresh: the header and a row per device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub header: Header,
    pub devices: Vec<DeviceRow>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    /// Kernel release.
    pub kernel: String,
    /// The VFIO fault path generation of that kernel.
    pub generation: String,
    pub probes: Vec<ProbeDoc>,
    pub cost: Cost,
    /// Events lost, over every device and cause, so far.
    pub lost: u64,
    /// Where a replay is: `None` when live.
    pub replay: Option<Position>,
}

/// A replay's place in its recording, in whole recorded seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// `None`: the whole run, as averages.
    pub at: Option<u64>,
    pub length: u64,
}

/// The tool's own cost: its eBPF programs' run time and its CPU time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// Mean run time of one program run, ns; `None` when the kernel keeps no
    /// BPF statistics (`kernel.bpf_stats_enabled` off) or nothing ran.
    pub bpf_ns_per_run: Option<f64>,
    /// Runs of the programs per second.
    pub bpf_runs_per_s: Option<f64>,
    /// This process's CPU time, % of one CPU.
    pub cpu_percent: Option<f64>,
}

/// The table's row of one device. Rates are per second over the last
/// refresh (or the replayed second); latencies are over the whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    pub bdf: Bdf,
    pub vendor: Option<u16>,
    pub device: Option<u16>,
    /// From pci.ids, when the system has it.
    pub name: Option<String>,
    pub faults_per_s: f64,
    /// Faults per second by requested order: 4K (0), 2M (9), 1G (18), other.
    pub by_order_per_s: [f64; 4],
    pub fallbacks_per_s: f64,
    /// Fault latency over every order.
    pub fault_latency: Summary,
    /// True when `fault_latency`'s quantiles are upper bounds: the largest
    /// of each order's (a recording keeps latency per order only).
    pub fault_latency_bound: bool,
    pub zaps_per_s: f64,
    pub zap_latency: Summary,
    /// Pages faulted back after a zap removed them, over the run.
    pub refaulted_pages: u64,
    /// Contended `memory_lock` waits, all modes.
    pub lock_wait: Summary,
    /// As `fault_latency_bound`, over the lock's modes.
    pub lock_wait_bound: bool,
    pub lost: u64,
    pub detail: Detail,
}

impl DeviceRow {
    /// A device with nothing seen yet.
    #[must_use]
    pub fn new(bdf: Bdf) -> Self {
        Self {
            bdf,
            vendor: None,
            device: None,
            name: None,
            faults_per_s: 0.0,
            by_order_per_s: [0.0; 4],
            fallbacks_per_s: 0.0,
            fault_latency: Summary::EMPTY,
            fault_latency_bound: false,
            zaps_per_s: 0.0,
            zap_latency: Summary::EMPTY,
            refaulted_pages: 0,
            lock_wait: Summary::EMPTY,
            lock_wait_bound: false,
            lost: 0,
            detail: Detail::default(),
        }
    }
}

/// What the device view (Enter) shows beyond the row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Detail {
    pub bars: Vec<BarLine>,
    /// Faults over the run by requested order, with their latency.
    pub orders: Vec<OrderLine>,
    pub latency: LatencyBars,
    /// Faults and zaps per second, oldest first, up to the shown moment.
    pub fault_rate: Vec<u64>,
    pub zap_rate: Vec<u64>,
    /// The newest zaps last.
    pub zaps: Vec<ZapLine>,
    /// Per mapping of each BAR, the faults it took against those at the
    /// best page size it allows, over the run (`top::projection`); empty
    /// means not worked out (live works it out for the open view only).
    pub projection: Vec<String>,
    /// Faults over the run by origin: a CPU, a DMA map, another path.
    pub origins: [u64; 3],
    /// DMA maps of the device's BARs over the run, and their time.
    pub dma_maps: u64,
    pub dma_map_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BarLine {
    /// `None`: faults whose BAR could not be resolved.
    pub index: Option<u32>,
    pub size: Option<u64>,
    pub faults: u64,
    pub pages_faulted: u64,
    /// Entries inserted, by mapping size.
    pub pte: u64,
    pub pmd: u64,
    pub pud: u64,
    /// Faults in each of [`HEAT_CELLS`] equal parts of the BAR (or of the
    /// pages seen, when its size is unknown).
    pub heat: Vec<u64>,
}

/// Cells of a BAR's page heatmap.
pub const HEAT_CELLS: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct OrderLine {
    /// `4K`, `2M`, `1G` or the order number.
    pub label: String,
    pub faults: u64,
    pub latency: Summary,
}

/// A latency distribution as bars: a histogram where the model has one
/// (live), the percentiles where only those were kept (a recording).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyBars {
    pub kind: LatencyKind,
    /// (label, value): a count per bucket, or ns per percentile.
    pub bars: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LatencyKind {
    #[default]
    Histogram,
    Percentiles,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZapLine {
    pub cause: String,
    pub latency_ns: u64,
    pub pages: u64,
    pub removed_pages: u64,
    pub refaulted_pages: u64,
    /// From the zap's end to its first refault.
    pub first_refault_ns: Option<u64>,
    pub comm: String,
}

/// Faults by page bucketed into `cells` equal parts of `pages` pages.
#[must_use]
pub fn heat(runs: impl IntoIterator<Item = (u64, u64, u64)>, pages: u64, cells: usize) -> Vec<u64> {
    let mut out = vec![0; cells];
    let pages = pages.max(1);
    for (first, count, faults) in runs {
        for page in first..first + count {
            let cell = usize::try_from(page.min(pages - 1) * cells as u64 / pages).unwrap_or(0);
            if let Some(c) = out.get_mut(cell) {
                *c += faults;
            }
        }
    }
    out
}

/// An order key as the table labels it.
#[must_use]
pub fn order_label(order: &str) -> String {
    match order {
        "0" => "4K".into(),
        "9" => "2M".into(),
        "18" => "1G".into(),
        "other" => "other".into(),
        other => format!("o{other}"),
    }
}
