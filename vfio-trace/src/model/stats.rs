//! Per-device and per-BAR aggregates of faults: counts by order and outcome,
//! inserts by size, dense per-page fault counts, latency by order and outcome.
//! Everything a fault touches is a fixed slot or a dense count: no map walk
//! and no allocation per fault.

use std::collections::BTreeMap;

use vfio_trace_common::{DmaBufMoveEvent, LockEvent, ZapEvent, lock_flags};

use super::{
    dma::{DmaMap, DmaMaps},
    fault::{Fault, Location},
    latency::Latency,
    mappings::Mappings,
    processes::Processes,
    slots::{PerBar, PerOrder, PerOutcome},
    timeline::Timeline,
    zap::{ZapStats, key},
};
pub use super::{
    page_counts::{PageCounts, PageRun, page_runs},
    slots::ORDERS,
};

/// Page sizes of the entries the kernel inserted.
pub const PTE_BYTES: u64 = 4096;
pub const PMD_BYTES: u64 = 2 << 20;
pub const PUD_BYTES: u64 = 1 << 30;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inserts {
    pub pte: u64,
    pub pmd: u64,
    pub pud: u64,
    pub remap: u64,
    pub remap_pages: u64,
}

impl Inserts {
    fn add(&mut self, f: &Fault) {
        self.pte += u64::from(f.inserts_pte);
        self.pmd += u64::from(f.inserts_pmd);
        self.pud += u64::from(f.inserts_pud);
        self.remap += u64::from(f.remaps);
        self.remap_pages += f.remap_pages;
    }
}

/// One BAR of one device.
#[derive(Debug, Default, Clone)]
pub struct BarStats {
    pub faults: u64,
    pub inserts: Inserts,
    /// Faults per 4 KiB page of the BAR.
    pub page_faults: PageCounts,
}

/// One device.
#[derive(Debug, Default, Clone)]
pub struct DeviceStats {
    pub faults: u64,
    pub by_order: PerOrder<u64>,
    pub by_outcome: PerOutcome<u64>,
    /// By [`Origin::index`].
    pub by_origin: [u64; 3],
    pub inserts: Inserts,
    pub latency_by_order: PerOrder<Latency>,
    pub latency_by_outcome: PerOutcome<Latency>,
    /// Faulted BARs are those with `faults > 0`; `None`: not resolved.
    pub bars: PerBar<BarStats>,
    /// Faults per process id; names are in `Model::comms`.
    pub processes: Processes,
    /// Faults per thread id (the same counts, by tid): a VMM's DMA-mapping
    /// thread apart from its vCPU threads. Names are in `Model::threads`.
    pub threads: Processes,
    /// The mappings the faults came through.
    pub mappings: Mappings,
    pub zaps: ZapStats,
    /// DMA maps of the device's BARs.
    pub dma: DmaMaps,
    /// dma-buf revokes and restores of the device (6.19+).
    pub dma_buf_revokes: Latency,
    pub dma_buf_restores: Latency,
    /// Contended `memory_lock` waits by mode (`read`, `write`, `other`).
    pub lock_waits: BTreeMap<&'static str, Latency>,
    /// Kernel address of the `memory_lock` waited for, to match other tools'
    /// lock reports (`perf lock`, tracefs `lock:contention_*`).
    pub memory_lock_address: Option<u64>,
    /// Counts per second of the run.
    pub timeline: Timeline,
    /// BARs as (index, physical start, size), to place faults on kernels
    /// that put physical pfns in `vm_pgoff`.
    pub(super) layout: Vec<(u32, u64, u64)>,
}

/// Page keys a fault populated, from what it inserted.
fn inserted(f: &Fault, at: Location) -> Option<(u64, u64)> {
    let vma_start = at.page.checked_sub(f.page_in_vma)?;
    let (first, pages) = if f.remaps > 0 {
        (vma_start, f.remap_pages)
    } else if f.inserts_pud > 0 {
        (at.page & !((1 << 18) - 1), 1 << 18)
    } else if f.inserts_pmd > 0 {
        (at.page & !511, 512)
    } else if f.inserts_pte > 1 {
        // 6.10-6.11 insert every page of the VMA from its start.
        (vma_start, u64::from(f.inserts_pte))
    } else if f.inserts_pte == 1 {
        (at.page, 1)
    } else {
        return None;
    };
    Some((key(at.bar, first), key(at.bar, first + pages)))
}

impl DeviceStats {
    /// Takes the device's BARs: where faults land before 6.10, and the size
    /// that bounds each BAR's page counts.
    pub fn set_layout(&mut self, bars: Vec<(u32, u64, u64)>) {
        for &(index, _, size) in &bars {
            self.bars.get_mut(Some(index)).page_faults.set_size(size);
        }
        self.layout = bars;
    }

    pub fn layout(&self) -> &[(u32, u64, u64)] {
        &self.layout
    }

    /// Returns the pages the fault brought back after a zap.
    pub fn add(&mut self, f: &Fault, at: Location) -> u64 {
        // The page count is the likely cache miss: its line is asked for
        // first and counted last, so it loads while the rest runs.
        let bar = self.bars.get_mut(at.bar);
        bar.page_faults.prefetch(at.page);
        bar.faults += 1;
        bar.inserts.add(f);
        self.faults += 1;
        *self.by_order.get_mut(f.order) += 1;
        *self.by_outcome.get_mut(f.outcome) += 1;
        self.by_origin[f.origin.index()] += 1;
        self.inserts.add(f);
        self.latency_by_order.get_mut(f.order).record(f.latency_ns);
        self.latency_by_outcome
            .get_mut(f.outcome)
            .record(f.latency_ns);
        self.processes.add(f.pid);
        self.threads.add(f.tid);
        self.mappings.add(f, at);
        let refaulted =
            inserted(f, at).map_or(0, |(start, end)| self.zaps.on_insert(start, end, f.end_ns));
        self.bars.get_mut(at.bar).page_faults.add(at.page);
        refaulted
    }

    /// Faults on pages past their BAR's size or the bound for unknown sizes.
    pub fn pages_out_of_range(&self) -> u64 {
        self.bars
            .iter()
            .map(|(_, b)| b.page_faults.out_of_range())
            .sum()
    }

    /// Bytes held beyond the struct itself.
    pub fn heap_bytes(&self) -> usize {
        let latencies: usize = self
            .latency_by_order
            .values()
            .chain(self.latency_by_outcome.iter().map(|(_, l)| l))
            .chain(self.lock_waits.values())
            .chain([&self.dma_buf_revokes, &self.dma_buf_restores])
            .map(Latency::heap_bytes)
            .sum();
        let pages: usize = self
            .bars
            .iter()
            .map(|(_, b)| b.page_faults.heap_bytes())
            .sum();
        latencies
            + pages
            + self.processes.heap_bytes()
            + self.threads.heap_bytes()
            + self.mappings.heap_bytes()
            + self.zaps.heap_bytes()
            + self.dma.heap_bytes()
            + self.timeline.heap_bytes()
            + self.layout.capacity() * size_of::<(u32, u64, u64)>()
    }

    pub fn add_dma_buf_move(&mut self, e: &DmaBufMoveEvent) {
        let revoked = e.revoked != 0;
        if revoked {
            self.dma_buf_revokes.record(e.latency_ns);
        } else {
            self.dma_buf_restores.record(e.latency_ns);
        }
        self.zaps.on_dma_buf_move(revoked, e.start_ns, e.latency_ns);
    }

    pub fn add_dma_map(&mut self, m: DmaMap) {
        self.zaps.on_dma_map(&m);
        self.dma.add(m);
    }

    pub fn add_zap(&mut self, e: &ZapEvent, comm: String) {
        self.zaps.on_zap(e, comm);
    }

    pub fn add_lock_wait(&mut self, e: &LockEvent) {
        let mode = if e.flags & lock_flags::WRITE != 0 {
            "write"
        } else if e.flags & lock_flags::READ != 0 {
            "read"
        } else {
            "other"
        };
        self.lock_waits.entry(mode).or_default().record(e.wait_ns);
        self.memory_lock_address = Some(e.lock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fault::Outcome;

    fn fault(order: u32, ret: u32, pte: u32, pmd: u32, ns: u64) -> Fault {
        Fault {
            device: None,
            vma_pgoff: 0,
            page_in_vma: 0,
            vma_start: 0,
            vma_pages: 0,
            order,
            outcome: Outcome::from_vm_fault(ret),
            origin: crate::model::fault::Origin::Cpu,
            latency_ns: ns,
            pid: 10,
            tid: 10,
            end_ns: 0,
            inserts_pte: pte,
            inserts_pmd: pmd,
            inserts_pud: 0,
            remaps: 0,
            remap_pages: 0,
        }
    }

    #[test]
    fn counts_by_order_outcome_insert_and_page() {
        let mut d = DeviceStats::default();
        for page in 0..4 {
            d.add(
                &fault(0, 0x100, 1, 0, 1000),
                Location { bar: Some(2), page },
            );
        }
        d.add(
            &fault(9, 0x800, 0, 0, 500),
            Location {
                bar: Some(2),
                page: 512,
            },
        );
        d.add(
            &fault(9, 0x100, 0, 1, 9000),
            Location {
                bar: Some(2),
                page: 512,
            },
        );
        assert_eq!(d.faults, 6);
        assert_eq!(d.by_order[&0], 4);
        assert_eq!(d.by_order[&9], 2);
        assert_eq!(d.by_outcome[&Outcome::Fallback], 1);
        assert_eq!(d.inserts.pte, 4);
        assert_eq!(d.inserts.pmd, 1);
        assert_eq!(d.latency_by_order[&9].count(), 2);
        let bar = &d.bars[&Some(2)];
        assert_eq!(bar.page_faults[&512], 2);
        assert_eq!(
            page_runs(&bar.page_faults),
            vec![
                PageRun {
                    first: 0,
                    pages: 4,
                    faults: 1
                },
                PageRun {
                    first: 512,
                    pages: 1,
                    faults: 2
                }
            ]
        );
        assert_eq!(d.processes[&10], 6);
    }
}
