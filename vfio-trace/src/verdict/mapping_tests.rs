//! Mapping verdicts: the alignments that decide each VMA's page size, from
//! the start and size the fault events carry.

use super::{
    Blocker,
    mapping::MappingVerdict,
    tests::{BAR2_START, PMD_ALIGNED, UNALIGNED, document, fault_in, pmd_aligned, unaligned_storm},
    verdict,
};
use crate::{event::Event, kernel::Generation, report::duration};

const GIB_PAGES: u32 = 1 << 18;

fn mapping(events: &[Event]) -> MappingVerdict {
    let doc = document(Generation::HugeFault, BAR2_START, events);
    let mut v = verdict(&doc);
    let mut bar = v.devices.remove(0).bars.remove(0);
    assert_eq!(bar.mappings.len(), 1);
    bar.mappings.remove(0)
}

fn projected(m: &MappingVerdict) -> Vec<(u32, u64)> {
    m.projections.iter().map(|p| (p.order, p.faults)).collect()
}

#[test]
fn a_4k_aligned_64m_mapping_would_take_32_pmds() {
    let m = mapping(&unaligned_storm());
    assert_eq!(
        (m.start, m.size, m.bar_offset, m.pid),
        (UNALIGNED, 64 << 20, 0, 300)
    );
    assert_eq!(
        (m.va_alignment, m.pa_alignment),
        (Some(4096), Some(1 << 35))
    );
    assert_eq!(
        (m.allowed_order, m.best_order, m.achieved_order),
        (0, 9, Some(0))
    );
    assert_eq!((m.faults, m.fallbacks), (16384 + 33, 33));
    assert_eq!(m.fault_ns, 16384 * 10_000 + 33 * 1_000);
    assert_eq!(m.mapped_by_order, [(0, 16384)]);
    assert_eq!(m.page_table_bytes, 128 << 10);
    assert_eq!(projected(&m), [(0, 16384), (9, 32)]);
    assert_eq!(
        m.blockers,
        [
            (9, vec![Blocker::MisalignedVirtualAddress]),
            (
                18,
                vec![Blocker::MappingTooSmall, Blocker::MisalignedVirtualAddress]
            )
        ]
    );
    assert_eq!(
        m.advice,
        format!(
            "BAR2 mmap at 0x7f1234001000 (64 MiB, pid 300) is only 4 KiB-aligned: 16,384 faults \
             at 4 KiB in 163.9 ms (+33 fallbacks); aligned to 2 MiB it would take 32 (~{}) \
             (QEMU >= 9.2 aligns; for your own mmap, use MAP_FIXED on an aligned reservation) \
             [PMD impossible: misaligned virtual address; PUD impossible: mapping smaller than \
             1 GiB, misaligned virtual address]",
            duration(m.projections[1].fault_ns.unwrap_or_default())
        )
    );
}

#[test]
fn a_pmd_aligned_64m_mapping_is_at_its_best() {
    let m = mapping(&pmd_aligned());
    assert_eq!((m.start, m.va_alignment), (PMD_ALIGNED, Some(2 << 20)));
    assert_eq!(
        (m.allowed_order, m.best_order, m.achieved_order),
        (9, 9, Some(9))
    );
    assert_eq!(m.page_table_bytes, 4096);
    assert_eq!(
        m.advice,
        "BAR2 mmap at 0x7f1234200000 (64 MiB, pid 300): 32 faults at 2 MiB in 1.9 ms \
         (+1 fallbacks): the best it allows [PUD impossible: mapping smaller than 1 GiB, \
         misaligned virtual address]"
    );
}

#[test]
fn a_4k_aligned_1g_mapping_would_take_one_pud() {
    let events: Vec<Event> = (0..u64::from(GIB_PAGES))
        .map(|page| fault_in(UNALIGNED, GIB_PAGES, 0, page, 0x100, 5_000))
        .collect();
    let m = mapping(&events);
    assert_eq!((m.allowed_order, m.best_order), (0, 18));
    assert_eq!(projected(&m), [(0, 262_144), (9, 512), (18, 1)]);
    // 4K mappings of 1 GiB need 2 MiB of PTE pages; a PUD none.
    assert_eq!(m.page_table_bytes, 2 << 20);
    assert_eq!(m.projections[2].page_table_bytes, 4096);
    assert!(
        m.advice.contains(
            "is only 4 KiB-aligned: 262,144 faults at 4 KiB in 1.31 s; aligned to 2 MiB it would \
             take 512 (~"
        ),
        "{}",
        m.advice
    );
    assert!(
        m.advice.contains("aligned to 1 GiB it would take 1 (~"),
        "{}",
        m.advice
    );
}

#[test]
fn a_pmd_aligned_1g_mapping_cannot_have_a_pud() {
    let mut events = vec![fault_in(PMD_ALIGNED, GIB_PAGES, 18, 0, 0x800, 1_000)];
    events.extend((0..512).map(|w| fault_in(PMD_ALIGNED, GIB_PAGES, 9, w * 512, 0x100, 60_000)));
    let m = mapping(&events);
    assert_eq!(
        (m.allowed_order, m.best_order, m.achieved_order),
        (9, 18, Some(9))
    );
    assert_eq!(projected(&m), [(9, 512), (18, 1)]);
    assert_eq!(m.blockers, [(18, vec![Blocker::MisalignedVirtualAddress])]);
    assert!(
        m.advice.starts_with(
            "BAR2 mmap at 0x7f1234200000 (1 GiB, pid 300) is only 2 MiB-aligned: 512 faults at \
             2 MiB in "
        ),
        "{}",
        m.advice
    );
    assert!(
        m.advice
            .ends_with("[PUD impossible: misaligned virtual address]"),
        "{}",
        m.advice
    );
}

#[test]
fn a_bar_offset_off_the_page_size_is_a_misaligned_bar() {
    // A 64 MiB mapping 2 MiB-aligned, 4 KiB into the BAR.
    let events: Vec<Event> = (0..64)
        .map(|page| {
            let Event::Fault(mut e) = fault_in(PMD_ALIGNED, 16384, 0, page, 0x100, 5_000) else {
                unreachable!("a fault")
            };
            e.vma_pgoff += 1;
            Event::Fault(e)
        })
        .collect();
    let m = mapping(&events);
    assert_eq!((m.bar_offset, m.pa_alignment), (4096, Some(4096)));
    assert_eq!((m.allowed_order, m.best_order), (0, 0));
    assert_eq!(m.blockers[0], (9, vec![Blocker::MisalignedBar]));
    assert!(m.advice.ends_with(": the best it allows [PMD impossible: misaligned BAR (only 4 KiB-aligned); PUD impossible: misaligned BAR (only 4 KiB-aligned), mapping smaller than 1 GiB, misaligned virtual address]"), "{}", m.advice);
}

#[test]
fn an_aligned_mapping_mapped_small_is_not_told_to_align() {
    // 2 MiB-aligned, yet every PMD attempt fell back and 4 KiB mapped.
    let mut events = Vec::new();
    for page in 0..1024 {
        if page % 512 == 0 {
            events.push(fault_in(PMD_ALIGNED, 16384, 9, page, 0x800, 1_000));
        }
        events.push(fault_in(PMD_ALIGNED, 16384, 0, page, 0x100, 5_000));
    }
    let m = mapping(&events);
    assert_eq!((m.allowed_order, m.achieved_order), (9, Some(0)));
    assert_eq!(
        m.advice,
        "BAR2 mmap at 0x7f1234200000 (64 MiB, pid 300) allows 2 MiB pages but got 1,024 faults \
         at 4 KiB in 5.1 ms (+2 fallbacks): not an alignment problem; the fallbacks say more \
         [PUD impossible: mapping smaller than 1 GiB, misaligned virtual address]"
    );
}
