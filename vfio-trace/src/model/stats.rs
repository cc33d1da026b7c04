//! Per-device and per-BAR aggregates of faults: counts by order and outcome,
//! inserts by size, sparse per-page fault counts, latency by order and outcome.

use std::collections::BTreeMap;

use vfio_trace_common::{LockEvent, ZapEvent, lock_flags};

use super::{
    fault::{Fault, Location, Outcome},
    latency::Latency,
    zap::{ZapStats, key},
};

/// Page sizes of the entries the kernel inserted.
pub const PTE_BYTES: u64 = 4096;
pub const PMD_BYTES: u64 = 2 << 20;
pub const PUD_BYTES: u64 = 1 << 30;

/// Fault orders the handler asks for (4 KiB, 2 MiB, 1 GiB on x86).
pub const ORDERS: [u32; 3] = [0, 9, 18];

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
    /// Faults per 4 KiB page of the BAR, only for pages that faulted.
    pub page_faults: BTreeMap<u64, u32>,
}

/// One device.
#[derive(Debug, Default, Clone)]
pub struct DeviceStats {
    pub faults: u64,
    pub by_order: BTreeMap<u32, u64>,
    pub by_outcome: BTreeMap<Outcome, u64>,
    pub inserts: Inserts,
    pub latency_by_order: BTreeMap<u32, Latency>,
    pub latency_by_outcome: BTreeMap<Outcome, Latency>,
    /// `None`: the BAR could not be resolved.
    pub bars: BTreeMap<Option<u32>, BarStats>,
    /// Faults per process id; names are in `Model::comms`.
    pub processes: BTreeMap<u32, u64>,
    pub zaps: ZapStats,
    /// Contended `memory_lock` waits by mode (`read`, `write`, `other`).
    pub lock_waits: BTreeMap<&'static str, Latency>,
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
    pub fn add(&mut self, f: &Fault, at: Location) {
        self.faults += 1;
        *self.by_order.entry(f.order).or_default() += 1;
        *self.by_outcome.entry(f.outcome).or_default() += 1;
        self.inserts.add(f);
        self.latency_by_order
            .entry(f.order)
            .or_default()
            .record(f.latency_ns);
        self.latency_by_outcome
            .entry(f.outcome)
            .or_default()
            .record(f.latency_ns);
        let bar = self.bars.entry(at.bar).or_default();
        bar.faults += 1;
        bar.inserts.add(f);
        *bar.page_faults.entry(at.page).or_default() += 1;
        *self.processes.entry(f.pid).or_default() += 1;
        if let Some((start, end)) = inserted(f, at) {
            self.zaps.on_insert(start, end, f.end_ns);
        }
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
    }
}

/// A run of consecutive pages with the same fault count: the compact form of
/// per-page counts (a 4 KiB storm over 64 MiB is one run, not 16384 entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PageRun {
    pub first: u64,
    pub pages: u64,
    pub faults: u32,
}

pub fn page_runs(pages: &BTreeMap<u64, u32>) -> Vec<PageRun> {
    let mut runs: Vec<PageRun> = Vec::new();
    for (&page, &faults) in pages {
        match runs.last_mut() {
            Some(r) if r.faults == faults && r.first + r.pages == page => r.pages += 1,
            _ => runs.push(PageRun {
                first: page,
                pages: 1,
                faults,
            }),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(order: u32, ret: u32, pte: u32, pmd: u32, ns: u64) -> Fault {
        Fault {
            device: None,
            vma_pgoff: 0,
            page_in_vma: 0,
            order,
            outcome: Outcome::from_vm_fault(ret),
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
