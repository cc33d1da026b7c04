//! The mappings (VMAs) a device's faults came through: where each starts,
//! how large it is and which BAR page it maps first, so the report can tell
//! the alignment that decided each fault's page size; and what its faults
//! did, by order. Faults arrive in runs per mapping, so the mapping of the
//! last fault is remembered: the usual lookup is one compare.

use super::fault::{Fault, Location, Outcome};

/// Mappings kept per device; faults through more are counted, not kept.
pub const MAX_MAPPINGS: usize = 1024;

/// Pages of a mapping whose size is not known that place windows: 64 GiB,
/// as for a BAR of unknown size. Page numbers come from the kernel and are
/// not trusted: a fault past its mapping's size (or this bound) counts but
/// marks no window, so it cannot grow memory (4 KiB of windows at most for
/// a mapping of unknown size, 2 KiB per 32 GiB of a known one).
const UNKNOWN_SIZE_PAGES: u64 = super::page_counts::UNKNOWN_SIZE_PAGES;

/// Slot of an order: 4 KiB, 2 MiB, 1 GiB, any other.
fn slot(order: u32) -> usize {
    match order {
        0 => 0,
        9 => 1,
        18 => 2,
        _ => 3,
    }
}

/// One VMA of one process over one BAR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub pid: u32,
    /// `vm_start`; 0 when the kernel did not say.
    pub start: u64,
    /// Size in pages; 0 when unknown.
    pub pages: u64,
    /// BAR index and the BAR page at the mapping's start.
    pub bar: Option<u32>,
    pub bar_page: u64,
    /// Faults by requested order (slots of 0, 9, 18, other).
    pub attempts: [u64; 4],
    /// Entries inserted by order (remapped pages count as 4 KiB).
    pub mapped: [u64; 4],
    /// Handler time by requested order, summed.
    pub fault_ns: [u64; 4],
    pub fallbacks: u64,
    /// 2 MiB windows of the mapping (from its start) that saw a fault, a bit each.
    windows: Vec<u64>,
}

impl Mapping {
    /// Distinct 2 MiB windows of the mapping that saw a fault.
    #[must_use]
    pub fn pmd_windows(&self) -> u64 {
        self.windows.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Distinct 1 GiB windows of the mapping that saw a fault.
    #[must_use]
    pub fn pud_windows(&self) -> u64 {
        // 512 windows of 2 MiB are 8 words.
        self.windows
            .chunks(8)
            .filter(|c| c.iter().any(|w| *w != 0))
            .count() as u64
    }

    fn add(&mut self, f: &Fault) {
        let s = slot(f.order);
        self.attempts[s] += 1;
        self.fault_ns[s] += f.latency_ns;
        if f.outcome == Outcome::Fallback {
            self.fallbacks += 1;
        }
        self.mapped[0] += u64::from(f.inserts_pte) + f.remap_pages;
        self.mapped[1] += u64::from(f.inserts_pmd);
        self.mapped[2] += u64::from(f.inserts_pud);
        let bound = if self.pages == 0 {
            UNKNOWN_SIZE_PAGES
        } else {
            self.pages
        };
        if f.page_in_vma < bound {
            let window = f.page_in_vma >> 9;
            let word = (window / 64) as usize;
            if self.windows.len() <= word {
                self.windows.resize(word + 1, 0);
            }
            self.windows[word] |= 1 << (window % 64);
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Mappings {
    list: Vec<Mapping>,
    last: usize,
    /// Faults through mappings past [`MAX_MAPPINGS`].
    pub untracked_faults: u64,
}

impl Mappings {
    pub fn add(&mut self, f: &Fault, at: Location) {
        let bar_page = at.page.wrapping_sub(f.page_in_vma);
        let same = |m: &Mapping| {
            m.pid == f.pid && m.start == f.vma_start && m.bar == at.bar && m.bar_page == bar_page
        };
        if !self.list.get(self.last).is_some_and(same) {
            match self.list.iter().position(same) {
                Some(i) => self.last = i,
                None if self.list.len() < MAX_MAPPINGS => {
                    self.list.push(Mapping {
                        pid: f.pid,
                        start: f.vma_start,
                        pages: u64::from(f.vma_pages),
                        bar: at.bar,
                        bar_page,
                        attempts: [0; 4],
                        mapped: [0; 4],
                        fault_ns: [0; 4],
                        fallbacks: 0,
                        windows: Vec::new(),
                    });
                    self.last = self.list.len() - 1;
                }
                None => {
                    self.untracked_faults += 1;
                    return;
                }
            }
        }
        self.list[self.last].add(f);
    }

    /// In the order first faulted.
    pub fn iter(&self) -> impl Iterator<Item = &Mapping> {
        self.list.iter()
    }

    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.list.capacity() * size_of::<Mapping>()
            + self
                .list
                .iter()
                .map(|m| m.windows.capacity() * size_of::<u64>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(pid: u32, start: u64, page: u64, order: u32, outcome: Outcome) -> Fault {
        let mapped = outcome == Outcome::Nopage;
        Fault {
            device: None,
            vma_pgoff: 0,
            page_in_vma: page,
            vma_start: start,
            vma_pages: 16384,
            order,
            outcome,
            origin: crate::model::fault::Origin::Cpu,
            latency_ns: 1000 << order.min(9),
            end_ns: 0,
            pid,
            tid: pid,
            inserts_pte: u32::from(mapped && order == 0),
            inserts_pmd: u32::from(mapped && order == 9),
            inserts_pud: u32::from(mapped && order == 18),
            remaps: 0,
            remap_pages: 0,
        }
    }

    fn at(page: u64) -> Location {
        Location { bar: Some(2), page }
    }

    #[test]
    fn faults_land_on_their_mapping_with_windows_and_orders() {
        let mut m = Mappings::default();
        let start = 0x7f00_0000_1000;
        for page in 0..1024 {
            if page % 512 == 0 {
                m.add(&fault(10, start, page, 9, Outcome::Fallback), at(page));
            }
            m.add(&fault(10, start, page, 0, Outcome::Nopage), at(page));
        }
        // The same BAR pages through another process's aligned mapping.
        m.add(&fault(11, 0x7f00_0020_0000, 0, 9, Outcome::Nopage), at(0));
        let all: Vec<Mapping> = m.iter().cloned().collect();
        assert_eq!(all.len(), 2);
        let a = &all[0];
        assert_eq!(
            (a.start, a.pages, a.bar, a.bar_page),
            (start, 16384, Some(2), 0)
        );
        assert_eq!(a.attempts, [1024, 2, 0, 0]);
        assert_eq!(a.mapped, [1024, 0, 0, 0]);
        assert_eq!(a.fallbacks, 2);
        assert_eq!(a.fault_ns, [1024 * 1000, 2 * 512_000, 0, 0]);
        assert_eq!((a.pmd_windows(), a.pud_windows()), (2, 1));
        // A page past the mapping's size counts, marks no window.
        m.add(&fault(10, start, 1 << 40, 0, Outcome::Nopage), at(1 << 40));
        let a = m.iter().next().expect("a mapping");
        assert_eq!((a.attempts[0], a.pmd_windows()), (1025, 2));
        assert_eq!(all[1].mapped, [0, 1, 0, 0]);
    }

    #[test]
    fn mappings_past_the_bound_are_counted() {
        let mut m = Mappings::default();
        for i in 0..=MAX_MAPPINGS as u64 {
            m.add(&fault(1, i << 30, 0, 0, Outcome::Nopage), at(0));
        }
        assert_eq!(m.iter().count(), MAX_MAPPINGS);
        assert_eq!(m.untracked_faults, 1);
    }
}
