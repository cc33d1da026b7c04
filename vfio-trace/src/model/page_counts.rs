//! Faults per 4 KiB page of one BAR, in chunks of 4096 pages. A chunk starts
//! sparse, up to 32 pages kept sorted in its directory entry, and turns dense
//! (u32 per page, 16 KiB) on its 33rd. A walk that mixes 4 KiB and 2 MiB
//! faults leaves a few dozen pages per chunk, and a 2 MiB walk eight: those
//! stay sparse. So a fault is an index, a short search or an add; a 32 GiB
//! BAR touched at every page costs 32 MiB, and one mapped with 2 MiB faults
//! costs its directory (~400 KiB), not 32 MiB.
//!
//! Page numbers come from the kernel and are not trusted: a page at or past
//! the limit (the BAR's size when known, a fixed bound otherwise) is counted
//! as out of range instead of growing memory.

use std::ops::Index;

/// Pages per chunk: 16 KiB of counts when dense, 16 MiB of BAR.
const CHUNK_PAGES: usize = 4096;
/// Pages a chunk holds before it turns dense: 192 bytes per directory entry.
/// At 8 (a 2 MiB walk) a mixed walk made a 16 KiB chunk for every ~45 pages.
const SPARSE_PAGES: usize = 32;

type Dense = [u32; CHUNK_PAGES];

#[derive(Debug, Clone)]
enum Chunk {
    /// `len` pages as (slot in the chunk, count), sorted by slot.
    Sparse {
        len: u8,
        slots: [u16; SPARSE_PAGES],
        counts: [u32; SPARSE_PAGES],
    },
    Dense(Box<Dense>),
}

const EMPTY: Chunk = Chunk::Sparse {
    len: 0,
    slots: [0; SPARSE_PAGES],
    counts: [0; SPARSE_PAGES],
};

/// The limit for a BAR whose size is not known: 64 GiB of 4 KiB pages,
/// so at most 64 MiB of counts.
pub const UNKNOWN_SIZE_PAGES: u64 = 1 << 24;

/// The most pages any BAR is given: vfio region offsets have 40 bits.
pub const MAX_PAGES: u64 = 1 << 28;

#[derive(Debug, Clone)]
pub struct PageCounts {
    /// Chunk `i` holds pages `i * CHUNK_PAGES ..`; grown to the highest chunk touched.
    chunks: Vec<Chunk>,
    /// Pages at or past this are out of range.
    limit: u64,
    /// Pages with a count above zero.
    faulted: u64,
    /// Faults on pages at or past the limit.
    out_of_range: u64,
}

impl Default for PageCounts {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            limit: UNKNOWN_SIZE_PAGES,
            faulted: 0,
            out_of_range: 0,
        }
    }
}

/// A run of consecutive pages with the same fault count: the compact form of
/// per-page counts (a 4 KiB storm over 64 MiB is one run, not 16384 entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageRun {
    pub first: u64,
    pub pages: u64,
    pub faults: u32,
}

fn dense() -> Box<Dense> {
    // Zeroed straight from the allocator: no 16 KiB copy through the stack.
    let counts: Box<[u32]> = vec![0; CHUNK_PAGES].into_boxed_slice();
    counts
        .try_into()
        .unwrap_or_else(|_| unreachable!("the length is CHUNK_PAGES"))
}

/// Asks for the cache line of `at`; a no-op where there is no such hint.
fn prefetch(at: &u32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86_64, and a prefetch reads nothing the
    // program sees: it only warms the cache for a valid reference.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(at).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

impl Chunk {
    /// Adds a fault to `slot`; true if the page had none.
    fn add(&mut self, slot: usize) -> bool {
        match self {
            Self::Dense(counts) => {
                let n = &mut counts[slot];
                *n = n.saturating_add(1);
                *n == 1
            }
            Self::Sparse { len, slots, counts } => {
                let used = usize::from(*len);
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "below CHUNK_PAGES, so it fits"
                )]
                let slot16 = slot as u16;
                let at = match slots[..used].binary_search(&slot16) {
                    Ok(i) => {
                        counts[i] = counts[i].saturating_add(1);
                        return false;
                    }
                    Err(at) => at,
                };
                if used < SPARSE_PAGES {
                    slots.copy_within(at..used, at + 1);
                    counts.copy_within(at..used, at + 1);
                    (slots[at], counts[at]) = (slot16, 1);
                    *len += 1;
                    return true;
                }
                let mut all = dense();
                for (s, n) in slots.iter().zip(counts.iter()) {
                    all[usize::from(*s)] = *n;
                }
                all[slot] = 1;
                *self = Self::Dense(all);
                true
            }
        }
    }

    fn get(&self, slot: usize) -> Option<&u32> {
        match self {
            Self::Dense(counts) => counts.get(slot),
            Self::Sparse { len, slots, counts } => slots[..usize::from(*len)]
                .binary_search(&u16::try_from(slot).ok()?)
                .ok()
                .map(|i| &counts[i]),
        }
    }

    /// (slot, count) of the pages faulted, by slot.
    fn pages(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        let (dense, slots, counts): (&[u32], &[u16], &[u32]) = match self {
            Self::Dense(counts) => (&counts[..], &[], &[]),
            Self::Sparse { len, slots, counts } => {
                let len = usize::from(*len);
                (&[], &slots[..len], &counts[..len])
            }
        };
        dense
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (i, *n))
            .chain(slots.iter().zip(counts).map(|(s, n)| (usize::from(*s), *n)))
    }
}

/// The chunk of a page below the limit, and its slot in the chunk.
#[allow(
    clippy::cast_possible_truncation,
    reason = "below the limit, so both fit in usize"
)]
fn chunk_slot(page: u64) -> (usize, usize) {
    (
        (page / CHUNK_PAGES as u64) as usize,
        page as usize % CHUNK_PAGES,
    )
}

impl PageCounts {
    /// Counts pages of a BAR of `bytes` (rounded up to whole pages).
    pub fn set_size(&mut self, bytes: u64) {
        self.limit = bytes.div_ceil(4096).min(MAX_PAGES);
    }

    pub fn add(&mut self, page: u64) {
        if page >= self.limit {
            self.out_of_range += 1;
            return;
        }
        let (chunk, slot) = chunk_slot(page);
        if chunk >= self.chunks.len() {
            self.chunks.resize(chunk + 1, EMPTY);
        }
        if self.chunks[chunk].add(slot) {
            self.faulted += 1;
        }
    }

    /// Starts loading the count of `page` into cache without waiting for it.
    /// The count is a fault's likely cache miss: asked for before the rest
    /// of the fault's work and added after it, it arrives while that work
    /// runs instead of stalling it.
    pub fn prefetch(&self, page: u64) {
        if page >= self.limit {
            return;
        }
        let (chunk, slot) = chunk_slot(page);
        if let Some(Chunk::Dense(counts)) = self.chunks.get(chunk) {
            prefetch(&counts[slot]);
        }
    }

    /// Pages faulted at least once.
    pub fn len(&self) -> u64 {
        self.faulted
    }

    pub fn is_empty(&self) -> bool {
        self.faulted == 0
    }

    pub fn out_of_range(&self) -> u64 {
        self.out_of_range
    }

    /// Bytes of the directory and dense chunks held.
    pub fn heap_bytes(&self) -> usize {
        let dense = self
            .chunks
            .iter()
            .filter(|c| matches!(c, Chunk::Dense(_)))
            .count();
        self.chunks.capacity() * size_of::<Chunk>() + dense * size_of::<Dense>()
    }

    /// Faulted pages in order, with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            let base = (c * CHUNK_PAGES) as u64;
            chunk.pages().map(move |(i, n)| (base + i as u64, n))
        })
    }
}

impl Index<&u64> for PageCounts {
    type Output = u32;
    fn index(&self, page: &u64) -> &u32 {
        let chunk = usize::try_from(page / CHUNK_PAGES as u64).unwrap_or(usize::MAX);
        #[allow(
            clippy::cast_possible_truncation,
            reason = "a remainder below CHUNK_PAGES"
        )]
        let slot = (page % CHUNK_PAGES as u64) as usize;
        self.chunks
            .get(chunk)
            .and_then(|c| c.get(slot))
            .unwrap_or(&0)
    }
}

pub fn page_runs(pages: &PageCounts) -> Vec<PageRun> {
    let mut runs: Vec<PageRun> = Vec::new();
    for (page, faults) in pages.iter() {
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

    #[test]
    fn runs_cross_chunk_boundaries_and_break_at_gaps_and_count_changes() {
        let mut p = PageCounts::default();
        for page in 4090..4100 {
            p.add(page);
        }
        p.add(4099);
        p.add(3 * 4096 + 7);
        assert_eq!(p.len(), 11);
        assert_eq!(p[&4099], 2);
        assert_eq!(p[&5], 0);
        assert_eq!(p[&u64::MAX], 0);
        assert_eq!(
            page_runs(&p),
            [
                PageRun {
                    first: 4090,
                    pages: 9,
                    faults: 1
                },
                PageRun {
                    first: 4099,
                    pages: 1,
                    faults: 2
                },
                PageRun {
                    first: 3 * 4096 + 7,
                    pages: 1,
                    faults: 1
                },
            ]
        );
    }

    #[test]
    fn pages_past_the_bar_are_counted_not_stored() {
        let mut p = PageCounts::default();
        p.set_size(64 << 10);
        p.add(15);
        p.add(16);
        p.add(u64::MAX);
        assert_eq!((p.len(), p.out_of_range()), (1, 2));
        let mut unknown = PageCounts::default();
        unknown.add(UNKNOWN_SIZE_PAGES);
        assert_eq!(unknown.out_of_range(), 1);
        assert_eq!(unknown.heap_bytes(), 0);
        // The last page costs the directory up to it, not a dense chunk.
        unknown.add(UNKNOWN_SIZE_PAGES - 1);
        let pages = usize::try_from(UNKNOWN_SIZE_PAGES).expect("fits in usize");
        let directory = (pages / CHUNK_PAGES) * size_of::<Chunk>();
        assert!(
            unknown.heap_bytes() <= 2 * directory,
            "{}",
            unknown.heap_bytes()
        );
    }

    #[test]
    fn a_chunk_turns_dense_past_its_sparse_pages_and_keeps_its_counts() {
        let mut p = PageCounts::default();
        // Spread over the chunk, last first, one of them twice.
        let stride = (CHUNK_PAGES / SPARSE_PAGES) as u64;
        for page in (0..SPARSE_PAGES as u64).rev().map(|i| i * stride) {
            p.add(page);
        }
        p.add(stride);
        assert!(
            matches!(p.chunks[0], Chunk::Sparse { len, .. } if usize::from(len) == SPARSE_PAGES)
        );
        assert_eq!(p.heap_bytes(), p.chunks.capacity() * size_of::<Chunk>());
        let sparse_runs = page_runs(&p);
        assert_eq!(sparse_runs.len(), SPARSE_PAGES);
        assert_eq!(
            sparse_runs[1],
            PageRun {
                first: stride,
                pages: 1,
                faults: 2
            }
        );
        p.add(1);
        assert!(matches!(p.chunks[0], Chunk::Dense(_)));
        let last = (SPARSE_PAGES as u64 - 1) * stride;
        assert_eq!(
            (p[&stride], p[&1], p[&last], p.len()),
            (2, 1, 1, SPARSE_PAGES as u64 + 1)
        );
        // Page 1 joins page 0's run; the rest are as they were.
        let mut dense_runs = sparse_runs;
        dense_runs[0].pages = 2;
        assert_eq!(page_runs(&p), dense_runs);
    }

    #[test]
    fn prefetched_walks_and_jumps_count_as_a_map_of_pages_does() {
        // A prefetch must not change a count: random walks over sparse and
        // dense chunks, each page prefetched before it is added.
        const PAGES: u64 = 1 << 24;
        let mut p = PageCounts::default();
        p.set_size(PAGES << 12);
        let mut reference = std::collections::BTreeMap::<u64, u32>::new();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut page = 0_u64;
        for i in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Stretches of 4 KiB walks (chunks turn dense) and of 2 MiB
            // steps (chunks stay sparse), with jumps anywhere.
            let steps = if (i / 10_000) % 2 == 0 { 90 } else { 10 };
            page = match x % 100 {
                r if r < steps => page + 1,
                r if r < 98 => (page + 1).next_multiple_of(512),
                _ => (x >> 16) % PAGES,
            } % PAGES;
            p.prefetch(page);
            p.add(page);
            *reference.entry(page).or_default() += 1;
        }
        assert_eq!(p.len(), reference.len() as u64);
        assert!(p.iter().eq(reference.iter().map(|(k, v)| (*k, *v))));
        assert!(reference.iter().all(|(k, v)| p[k] == *v));
        assert!(p.chunks.iter().any(|c| matches!(c, Chunk::Dense(_))));
        assert!(
            p.chunks
                .iter()
                .any(|c| matches!(c, Chunk::Sparse { len, .. } if *len > 1))
        );
    }

    #[test]
    fn counts_saturate() {
        let mut p = PageCounts::default();
        for page in 0..=SPARSE_PAGES as u64 {
            p.add(page);
        }
        if let Some(Chunk::Dense(c)) = p.chunks.first_mut() {
            c[0] = u32::MAX;
        }
        p.add(0);
        assert_eq!(p[&0], u32::MAX);
    }
}
