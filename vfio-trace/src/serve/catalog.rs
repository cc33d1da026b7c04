//! Every metric the exporter can expose: name, help, type and labels. The
//! collector emits nothing that is not here, and the dashboards are checked
//! against it. Names follow Prometheus conventions: the `vfio_trace_`
//! prefix, base units (`_seconds`, `_bytes`), `_total` on counters, and
//! labels of bounded values only (never a page or an address).

/// How a metric is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric family.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
}

impl Spec {
    /// The series names a query may use: a histogram's `_bucket`, `_sum`
    /// and `_count`, else the name itself.
    #[must_use]
    pub fn series(&self) -> Vec<String> {
        match self.kind {
            Kind::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{}{s}", self.name))
                .collect(),
            Kind::Counter | Kind::Gauge => vec![self.name.to_owned()],
        }
    }
}

const fn spec(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Spec {
    Spec {
        name,
        help,
        kind,
        labels,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// The label names any metric may carry. Each takes a bounded set of
/// values: PCI addresses of traced devices, BAR indices, fault orders,
/// handler results, zap causes, lock modes, insert sizes, dma-buf moves, probe roles and
/// their symbols, and one value each for the info labels.
pub const LABELS: &[&str] = &[
    "device",
    "bar",
    "order",
    "result",
    "origin",
    "cause",
    "mode",
    "move",
    "size",
    "probe",
    "symbol",
    "kernel",
    "generation",
    "version",
    "vendor",
    "device_id",
    "name",
    "driver",
    "iommu_group",
];

pub const INFO: &str = "vfio_trace_info";
pub const DEVICE_INFO: &str = "vfio_trace_device_info";
pub const FAULTS: &str = "vfio_trace_faults_total";
pub const FAULT_RESULTS: &str = "vfio_trace_fault_results_total";
pub const FAULT_ORIGINS: &str = "vfio_trace_fault_origins_total";
pub const FAULT_DURATION: &str = "vfio_trace_fault_duration_seconds";
pub const BAR_FAULTS: &str = "vfio_trace_bar_faults_total";
pub const BAR_PAGES: &str = "vfio_trace_bar_faulted_pages";
pub const INSERTS: &str = "vfio_trace_inserts_total";
pub const REMAPPED_PAGES: &str = "vfio_trace_remapped_pages_total";
pub const ZAPS: &str = "vfio_trace_zaps_total";
pub const ZAP_DURATION: &str = "vfio_trace_zap_duration_seconds";
pub const ZAPPED_PAGES: &str = "vfio_trace_zapped_pages_total";
pub const REFAULTED_PAGES: &str = "vfio_trace_refaulted_pages_total";
pub const DMA_MAPS: &str = "vfio_trace_dma_maps_total";
pub const DMA_MAP_DURATION: &str = "vfio_trace_dma_map_duration_seconds";
pub const DMA_MAP_FAULT_SECONDS: &str = "vfio_trace_dma_map_fault_seconds_total";
pub const DMA_MAPPED_BYTES: &str = "vfio_trace_dma_mapped_bytes_total";
pub const DMA_MAP_LOOKUPS: &str = "vfio_trace_dma_map_pfn_lookups_total";
pub const DMA_BUF_MOVE: &str = "vfio_trace_dma_buf_move_duration_seconds";
pub const WRITE_HOLD: &str = "vfio_trace_zap_write_hold_seconds";
pub const LOCK_WAIT: &str = "vfio_trace_memory_lock_wait_seconds";
pub const UNATTRIBUTED_FAULTS: &str = "vfio_trace_unattributed_faults_total";
pub const UNATTRIBUTED_ZAPS: &str = "vfio_trace_unattributed_zaps_total";
pub const LOST: &str = "vfio_trace_lost_events_total";
pub const PROBE_ATTACHED: &str = "vfio_trace_probe_attached";
pub const BPF_RUN: &str = "vfio_trace_bpf_run_seconds_total";
pub const BPF_RUNS: &str = "vfio_trace_bpf_runs_total";
pub const BPF_STATS: &str = "vfio_trace_bpf_stats_enabled";
pub const EVENTS: &str = "vfio_trace_events_total";
pub const CPU: &str = "vfio_trace_collector_cpu_seconds_total";
pub const RSS: &str = "vfio_trace_collector_max_resident_bytes";
pub const STACK_FAILURES: &str = "vfio_trace_zap_stack_failures_total";
pub const STACKS_UNRESOLVED: &str = "vfio_trace_zap_stacks_unresolved";
pub const OUT_OF_RANGE: &str = "vfio_trace_pages_out_of_range_total";
pub const LOSS_MAPS: &str = "vfio_trace_loss_maps_readable";
pub const STACK_MAP: &str = "vfio_trace_stack_map_readable";
pub const READERS_FAILED: &str = "vfio_trace_ring_readers_failed";
pub const HEALTHY: &str = "vfio_trace_healthy";
pub const DIAGNOSTICS: &str = "vfio_trace_kernel_diagnostics_total";

pub const METRICS: &[Spec] = &[
    spec(
        INFO,
        Gauge,
        &["kernel", "generation", "version"],
        "The running kernel, its generation of vfio mmap code, and this tool's version (always 1).",
    ),
    spec(
        DEVICE_INFO,
        Gauge,
        &[
            "device",
            "vendor",
            "device_id",
            "name",
            "driver",
            "iommu_group",
        ],
        "A traced device bound to vfio-pci, with its PCI ids, its name from pci.ids (empty without one), driver and IOMMU group (always 1).",
    ),
    spec(
        FAULTS,
        Counter,
        &["device", "order"],
        "BAR faults handled, by the page order asked for (0: 4 KiB, 9: 2 MiB, 18: 1 GiB).",
    ),
    spec(
        FAULT_RESULTS,
        Counter,
        &["device", "result"],
        "BAR faults handled, by what the handler returned (nopage, fallback, sigbus, oom, other).",
    ),
    spec(
        FAULT_ORIGINS,
        Counter,
        &["device", "origin"],
        "BAR faults handled, by where they came from: cpu (a task touching the mapping), dma_map (vfio_iommu_type1 pinning a DMA map of it, as a VMM does), other.",
    ),
    spec(
        FAULT_DURATION,
        Histogram,
        &["device", "order"],
        "Time in the vfio fault handler, by the page order asked for.",
    ),
    spec(
        BAR_FAULTS,
        Counter,
        &["device", "bar"],
        "BAR faults by BAR index (unknown: not resolved).",
    ),
    spec(
        BAR_PAGES,
        Gauge,
        &["device", "bar"],
        "Distinct 4 KiB pages of the BAR faulted so far.",
    ),
    spec(
        INSERTS,
        Counter,
        &["device", "size"],
        "Page table entries inserted by faults: pte (4 KiB), pmd (2 MiB), pud (1 GiB), remap (a whole-VMA remap_pfn_range).",
    ),
    spec(
        REMAPPED_PAGES,
        Counter,
        &["device"],
        "4 KiB pages mapped by whole-VMA remaps (kernels before 6.10).",
    ),
    spec(
        ZAPS,
        Counter,
        &["device", "cause"],
        "Zaps of the device's BAR mappings, by cause (decode-off, reset, hot-reset, power, dma-buf, other, unknown).",
    ),
    spec(ZAP_DURATION, Histogram, &["device"], "Time a zap took."),
    spec(
        ZAPPED_PAGES,
        Counter,
        &["device"],
        "4 KiB pages of mappings the zaps walked.",
    ),
    spec(
        REFAULTED_PAGES,
        Counter,
        &["device"],
        "Pages a zap removed that faults brought back.",
    ),
    spec(
        DMA_BUF_MOVE,
        Histogram,
        &["device", "move"],
        "Time vfio-pci took to revoke the device's dma-buf exports beside a zap (move=revoke) or to restore them when memory decode came back on (move=restore); Linux 6.19+.",
    ),
    spec(
        DMA_MAPS,
        Counter,
        &["device"],
        "VFIO_IOMMU_MAP_DMA calls that mapped the device's BARs (a VMM mapping a BAR for its guest).",
    ),
    spec(
        DMA_MAP_DURATION,
        Histogram,
        &["device"],
        "Time a DMA map of the device's BARs took, from the ioctl's entry to its return.",
    ),
    spec(
        DMA_MAP_FAULT_SECONDS,
        Counter,
        &["device"],
        "Of the DMA maps' time, the time spent in vfio faults.",
    ),
    spec(
        DMA_MAPPED_BYTES,
        Counter,
        &["device"],
        "Bytes of the device's BARs DMA-mapped.",
    ),
    spec(
        DMA_MAP_LOOKUPS,
        Counter,
        &["device"],
        "pfn lookups (vaddr_get_pfns) the DMA maps made: one per 4 KiB before Linux 6.15, one per leaf after.",
    ),
    spec(
        WRITE_HOLD,
        Histogram,
        &["device"],
        "Time the zapping writer held memory_lock from the zap's start.",
    ),
    spec(
        LOCK_WAIT,
        Histogram,
        &["device", "mode"],
        "Contended waits for the device's memory_lock, by mode (read, write, other).",
    ),
    spec(
        UNATTRIBUTED_FAULTS,
        Counter,
        &[],
        "Faults whose device could not be read.",
    ),
    spec(
        UNATTRIBUTED_ZAPS,
        Counter,
        &[],
        "Zaps of vfio address spaces whose device was unknown.",
    ),
    spec(
        LOST,
        Counter,
        &["cause"],
        "Events lost, by cause (ring_full, inflight_full, missed_return, recursion, undecodable).",
    ),
    spec(
        PROBE_ATTACHED,
        Gauge,
        &["probe", "symbol"],
        "1 when the probe is attached; 0 when absent, failed, or not needed because another probe yields its count (vfio-trace check says which); symbol empty when none exists.",
    ),
    spec(
        BPF_RUN,
        Counter,
        &[],
        "Time the tool's eBPF programs ran (0 unless kernel.bpf_stats_enabled is 1).",
    ),
    spec(
        BPF_RUNS,
        Counter,
        &[],
        "Runs of the tool's eBPF programs (0 unless kernel.bpf_stats_enabled is 1).",
    ),
    spec(
        BPF_STATS,
        Gauge,
        &[],
        "1 when kernel.bpf_stats_enabled is on, so run time is counted.",
    ),
    spec(EVENTS, Counter, &[], "Events read from the ring buffers."),
    spec(
        CPU,
        Counter,
        &[],
        "CPU time of the exporter's process, user plus system.",
    ),
    spec(
        RSS,
        Gauge,
        &[],
        "Peak resident memory of the exporter's process.",
    ),
    spec(
        STACK_FAILURES,
        Counter,
        &[],
        "Zap stacks the kernel could not store: those zaps' cause reads unknown.",
    ),
    spec(
        STACKS_UNRESOLVED,
        Gauge,
        &[],
        "Zaps whose stored stack was not found when read.",
    ),
    spec(
        OUT_OF_RANGE,
        Counter,
        &[],
        "Faults on pages past their BAR: counted, not placed.",
    ),
    spec(
        LOSS_MAPS,
        Gauge,
        &[],
        "0 when a loss counter could not be read: losses are then a floor.",
    ),
    spec(
        STACK_MAP,
        Gauge,
        &[],
        "0 when the zap stack map could not be read: every cause is unknown.",
    ),
    spec(
        READERS_FAILED,
        Gauge,
        &[],
        "Ring readers that ended early: their later events are lost.",
    ),
    spec(
        DIAGNOSTICS,
        Counter,
        &[],
        "Diagnostics the eBPF programs logged on rare paths (each kind once); not losses.",
    ),
    spec(
        HEALTHY,
        Gauge,
        &[],
        "1 when the tracer lost nothing and nothing went wrong.",
    ),
];

/// The spec of `name`.
#[must_use]
pub fn find(name: &str) -> Option<&'static Spec> {
    METRICS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        for s in METRICS {
            assert!(s.name.starts_with("vfio_trace_"), "{}", s.name);
            assert_eq!(s.kind == Counter, s.name.ends_with("_total"), "{}", s.name);
            for l in s.labels {
                assert!(LABELS.contains(l), "{}: {l}", s.name);
            }
            assert!(!s.help.is_empty());
            assert_eq!(
                find(s.name).map(|f| f.name),
                Some(s.name),
                "duplicate {}",
                s.name
            );
        }
        for l in ["page", "address", "addr", "pfn", "pid", "comm"] {
            assert!(!LABELS.contains(&l));
        }
    }
}
