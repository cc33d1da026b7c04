//! Verdicts of documents built from a model fed synthetic events, as
//! `record` builds them: the known cases, with the run's own numbers.

use vfio_trace_common::FaultEvent;

use super::{Basis, Blocker, verdict};
use crate::{
    device::{Bar, Bdf, PciDevice},
    event::Event,
    kernel::{Generation, Kernel},
    model::Model,
    record::document::{Document, build},
};

pub const BAR2_START: u64 = 0x8_0000_0000;
const GIB: u64 = 1 << 30;

fn bdf() -> Bdf {
    Bdf::parse("0000:01:00.0").expect("bdf")
}

/// A 64 MiB mapping at a 4 KiB-only aligned address, and one 2 MiB- but not
/// 1 GiB-aligned.
pub const UNALIGNED: u64 = 0x7f12_3400_1000;
pub const PMD_ALIGNED: u64 = 0x7f12_3420_0000;
const MIB64_PAGES: u32 = 16384;

/// A fault on BAR 2, `page` pages into a 64 MiB mapping at `start` of the
/// BAR from offset 0.
fn fault(start: u64, order: u32, page: u64, result: u32, latency_ns: u64) -> Event {
    fault_in(start, MIB64_PAGES, order, page, result, latency_ns)
}

/// The same in a mapping of `pages` pages.
pub fn fault_in(
    start: u64,
    pages: u32,
    order: u32,
    page: u64,
    result: u32,
    latency_ns: u64,
) -> Event {
    let mut e = FaultEvent::zeroed();
    e.vma_start = start;
    e.vma_pages = pages;
    e.pid = 300;
    e.device = bdf().key();
    e.vma_pgoff = 2 << 28;
    e.page_in_vma = page;
    e.order = order;
    e.result = result;
    e.latency_ns = latency_ns;
    if result == 0x100 {
        match order {
            0 => e.inserts_pte = 1,
            9 => e.inserts_pmd = 1,
            _ => e.inserts_pud = 1,
        }
    }
    Event::Fault(e)
}

/// The document of `events` on a 1 GiB BAR 2 at `bar_start`.
pub fn document(generation: Generation, bar_start: u64, events: &[Event]) -> Document {
    let mut m = Model::new(generation);
    m.set_origin_ns(0);
    m.add_device(bdf(), vec![(2, bar_start, GIB)]);
    for e in events {
        m.ingest(e);
    }
    let mut info = crate::record::document_tests::info();
    info.kernel = Kernel::from_release(
        match generation {
            Generation::Remap => "6.1.0-56-amd64",
            Generation::PerPage => "6.10.0",
            Generation::HugeFault => "6.12.117+deb12-amd64",
        }
        .into(),
    );
    info.pci = vec![PciDevice {
        bdf: bdf(),
        vendor: 0x1af4,
        device: 0x1110,
        driver: Some("vfio-pci".into()),
        iommu_group: Some(4),
        bars: vec![Bar {
            index: 2,
            start: bar_start,
            size: GIB,
            prefetchable: true,
        }],
    }];
    build(&m, info)
}

/// 64 MiB read every 4 KiB behind a 4K-only alignment: each 2 MiB window's
/// first fault tries a PMD and falls back, the first tries a PUD too.
pub fn unaligned_storm() -> Vec<Event> {
    let mut events = vec![fault(UNALIGNED, 18, 0, 0x800, 1_000)];
    for page in 0..16384 {
        if page % 512 == 0 {
            events.push(fault(UNALIGNED, 9, page, 0x800, 1_000));
        }
        events.push(fault(UNALIGNED, 0, page, 0x100, 10_000));
    }
    events
}

/// The same 64 MiB, 2 MiB- but not 1 GiB-aligned: a PUD attempt falls
/// back, then 32 PMD faults map it.
pub fn pmd_aligned() -> Vec<Event> {
    let mut events = vec![fault(PMD_ALIGNED, 18, 0, 0x800, 1_000)];
    events.extend((0..32).map(|w| fault(PMD_ALIGNED, 9, w * 512, 0x100, 60_000)));
    events
}

#[test]
fn an_unaligned_storm_projects_onto_pmd_and_pud() {
    let doc = document(Generation::HugeFault, BAR2_START, &unaligned_storm());
    let v = verdict(&doc);
    assert!(v.huge_faults);
    let d = &v.devices[0];
    assert_eq!((d.faults, d.fallbacks), (16384 + 32 + 1, 33));
    let b = &d.bars[0];
    assert_eq!(b.index, Some(2));
    assert_eq!(b.phys_alignment, Some(1 << 35));
    assert_eq!(b.mapped_by_order, [(0, 16384)]);
    assert_eq!((b.achieved_order, b.best_order), (Some(0), 18));
    assert_eq!(b.span_bytes, 64 << 20);
    // 16384 PTEs: 32 page-table pages.
    assert_eq!(b.page_table_bytes, 128 << 10);
    let pmd = &b.huge[0];
    assert_eq!((pmd.attempts, pmd.mapped, pmd.fell_back), (32, 0, 32));
    assert_eq!(pmd.blocked, Some(Blocker::MisalignedVirtualAddress));
    let faults: Vec<(u32, u64, bool)> = b
        .projections
        .iter()
        .map(|p| (p.order, p.faults, p.needs_larger_mapping))
        .collect();
    assert_eq!(faults, [(0, 16384, false), (9, 32, false), (18, 1, true)]);
    // Times rest on this run's own 4 KiB mean, said so for the orders never mapped.
    // Exact: the mapping's own sums, not the histogram's buckets.
    let mean: f64 = 10_000.0;
    let p = &b.projections;
    assert_eq!(p[0].fault_ns, Some((16384.0 * mean).round() as u64));
    assert_eq!(p[1].fault_ns, Some((32.0 * mean).round() as u64));
    assert_eq!(
        p[0].basis,
        Basis::Measured {
            faults: 16384,
            fallbacks: 0,
            mean_ns: mean
        }
    );
    assert_eq!(
        p[1].basis,
        Basis::Borrowed {
            from_order: 0,
            mean_ns: mean
        }
    );
    assert_eq!(
        p[1].basis.describe(9),
        "no mapped 2 MiB fault in this run: estimated at the mean 4 KiB fault"
    );
    assert_eq!(p[1].page_table_bytes, 4096);
    let ns = |n: f64| crate::report::duration((n * mean).round() as u64);
    assert_eq!(
        b.advice,
        format!(
            "BAR2 of 0000:01:00.0 mmap is only 4 KiB-aligned: 16,384 faults ({}) at 4 KiB \
             (+33 fallbacks); aligned to 2 MiB it would take 32 (~{}), aligned to 1 GiB it would \
             take 1 (~{}) if the mapping covered a whole 1 GiB (QEMU >= 9.2 aligns; for your own \
             mmap, use MAP_FIXED on an aligned reservation) [PMD impossible: misaligned virtual \
             address; PUD impossible: misaligned virtual address]",
            ns(16384.0),
            ns(32.0),
            ns(1.0)
        )
    );
}

#[test]
fn a_pmd_aligned_mapping_cannot_have_puds() {
    let doc = document(Generation::HugeFault, BAR2_START, &pmd_aligned());
    let v = verdict(&doc);
    let b = &v.devices[0].bars[0];
    assert_eq!(b.mapped_by_order, [(9, 32)]);
    assert_eq!((b.achieved_order, b.best_order), (Some(9), 18));
    assert_eq!(b.huge[0].blocked, None);
    assert_eq!(b.huge[1].blocked, Some(Blocker::MisalignedVirtualAddress));
    assert_eq!(b.page_table_bytes, 4096);
    assert_eq!(b.span_bytes, 64 << 20);
    let faults: Vec<(u32, u64)> = b.projections.iter().map(|p| (p.order, p.faults)).collect();
    assert_eq!(faults, [(9, 32), (18, 1)]);
    let mean: f64 = 60_000.0;
    assert_eq!(
        b.projections[0].basis,
        Basis::Measured {
            faults: 32,
            fallbacks: 0,
            mean_ns: mean
        }
    );
    assert!(
        b.advice
            .starts_with("BAR2 of 0000:01:00.0 mmap is only 2 MiB-aligned: 32 faults ("),
        "{}",
        b.advice
    );
    assert!(
        b.advice
            .ends_with("[PUD impossible: misaligned virtual address]"),
        "{}",
        b.advice
    );
}

#[test]
fn a_misaligned_bar_bounds_the_best_order() {
    // A BAR 2 MiB- but not 1 GiB-aligned in physical memory, mapped with PMDs.
    let doc = document(
        Generation::HugeFault,
        BAR2_START + (2 << 20),
        &pmd_aligned(),
    );
    let b = &verdict(&doc).devices[0].bars[0];
    assert_eq!((b.achieved_order, b.best_order), (Some(9), 9));
    assert_eq!(b.phys_alignment, Some(2 << 20));
    assert_eq!(b.huge[1].blocked, Some(Blocker::MisalignedBar));
    assert_eq!(
        b.advice,
        format!(
            "BAR2 of 0000:01:00.0: mapped with 2 MiB pages, 32 faults ({}) at 2 MiB (+1 fallbacks): \
             the best this BAR allows [PUD impossible: misaligned BAR (only 2 MiB-aligned)]",
            crate::report::duration(b.projections[0].fault_ns.unwrap_or_default())
        )
    );
}

#[test]
fn kernels_without_huge_faults_say_so() {
    let mut e = FaultEvent::zeroed();
    e.device = bdf().key();
    e.vma_pgoff = BAR2_START >> 12;
    e.result = 0x100;
    e.remaps = 1;
    e.remap_pages = 16384;
    e.latency_ns = 2_000_000;
    let doc = document(Generation::Remap, BAR2_START, &[Event::Fault(e)]);
    let v = verdict(&doc);
    assert!(!v.huge_faults);
    let b = &v.devices[0].bars[0];
    assert_eq!(b.mapped_by_order, [(0, 16384)]);
    assert_eq!(b.best_order, 0);
    assert_eq!(b.huge[0].blocked, Some(Blocker::KernelWithoutHugeFaults));
    assert_eq!(b.page_table_bytes, 128 << 10);
    assert_eq!(
        b.advice,
        "BAR2 of 0000:01:00.0: 1 faults; this kernel has no huge faults (6.12+ maps 2 MiB and \
         1 GiB pages where the mapping is aligned) [PMD impossible: kernel without huge faults; \
         PUD impossible: kernel without huge faults]"
    );
}

#[test]
fn zaps_and_refaults_are_costed() {
    let doc = crate::record::document_tests::sample();
    let r = verdict(&doc).devices[0].refaults;
    assert_eq!((r.zaps, r.refaulted_pages), (1, 512));
    // 2560 pages removed, 512 back: never fully repopulated.
    assert_eq!((r.repopulate_ns, r.not_repopulated), (0, 1));
}
