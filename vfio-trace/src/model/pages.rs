//! Sets of pages as sorted half-open ranges: a 1 GiB mapping is one entry,
//! not 262,144. A range can carry a tag (which zap took it), so the pages
//! every zap waits for live in one tree and a fault finds them in one walk.
//!
//! Faults come in walks (consecutive pages), so two hints spare most tree
//! searches: the range the last insert grew or made (with the start of the
//! range after it), and a stretch known to hold no range (where the last
//! take found nothing).

use std::{collections::BTreeMap, ops::Bound};

#[derive(Debug, Clone)]
pub struct Ranges<T> {
    /// start -> (end (exclusive), tag); non-overlapping.
    by_start: BTreeMap<u64, (u64, T)>,
    /// The range the last insert grew or made, as (start, end, start of the
    /// next range).
    last: Option<(u64, u64, u64)>,
    /// `[from, to)` holds no page of any range.
    free: (u64, u64),
}

/// Untagged ranges, also kept non-adjacent: touching ranges merge.
pub type PageSet = Ranges<()>;

impl<T> Default for Ranges<T> {
    fn default() -> Self {
        Self {
            by_start: BTreeMap::new(),
            last: None,
            free: (0, 0),
        }
    }
}

impl<T: Copy> Ranges<T> {
    pub fn is_empty(&self) -> bool {
        self.by_start.is_empty()
    }

    pub fn len(&self) -> u64 {
        self.by_start.iter().map(|(s, (e, _))| e - s).sum()
    }

    /// Adds `[start, end)` as a range of its own. The caller knows no range
    /// overlaps it (the pages of a zap were just taken from another set).
    pub fn put(&mut self, start: u64, end: u64, tag: T) {
        if start < end {
            self.by_start.insert(start, (end, tag));
            (self.last, self.free) = (None, (0, 0));
        }
    }

    /// Start of the first range after the one starting at `start`.
    fn next_start(&self, start: u64) -> u64 {
        self.by_start
            .range((Bound::Excluded(start), Bound::Unbounded))
            .next()
            .map_or(u64::MAX, |(s, _)| *s)
    }

    /// An estimate of the tree's bytes: a B-tree leaf holds up to 11 pairs,
    /// so allow twice the pairs themselves.
    pub fn heap_bytes(&self) -> usize {
        self.by_start.len() * 2 * size_of::<(u64, (u64, T))>()
    }

    /// Removes `[start, end)`, handing each removed piece and its tag to
    /// `removed`, and returns the pages removed. Walks down from the last
    /// range that starts before `end`, one range at a time: nothing is
    /// collected, and a range keeps its node when it only shrinks.
    pub fn take_with(&mut self, start: u64, end: u64, mut removed: impl FnMut(u64, u64, T)) -> u64 {
        let mut pages = 0;
        let (free_from, free_to) = self.free;
        if start >= end || (free_from <= start && end <= free_to) {
            return pages;
        }
        let mut below = end;
        // Where the range before `start` ends, once the walk reaches it.
        let mut before = 0;
        while let Some((&s, &(e, tag))) = self.by_start.range(..below).next_back() {
            if e <= start {
                before = e;
                break;
            }
            self.last = None;
            below = s;
            if s < start {
                // Keeps its head.
                self.by_start.insert(s, (start, tag));
            } else {
                self.by_start.remove(&s);
            }
            if e > end {
                self.by_start.insert(end, (e, tag));
            }
            let (from, to) = (s.max(start), e.min(end));
            pages += to - from;
            removed(from, to, tag);
        }
        if pages == 0 {
            // Nothing from the range before `start` to the next range.
            let after = self
                .by_start
                .range(end..)
                .next()
                .map_or(u64::MAX, |(s, _)| *s);
            self.free = (before, after);
        }
        pages
    }
}

impl PageSet {
    /// Adds `[start, end)`.
    pub fn insert(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        self.free = (0, 0);
        // The range the last insert grew holds `start`, and the new range
        // stops short of the next one: the storm, one page after another.
        if let Some((s, e, next)) = self.last
            && s <= start
            && end < next
        {
            if start <= e {
                if end > e {
                    if let Some((e, ())) = self.by_start.get_mut(&s) {
                        *e = end;
                    }
                    self.last = Some((s, end, next));
                }
            } else {
                // In the gap after that range, touching neither it nor the
                // next: a walk that skipped pages (4 KiB faults, then a 2 MiB
                // one at the next boundary). A range of its own, found without
                // a search.
                self.by_start.insert(start, (end, ()));
                self.last = Some((start, end, next));
            }
            return;
        }
        // The range that starts last at or before `end` holds `start`: it is
        // the only one the new range touches, and grows in place.
        if let Some((&s, (e, ()))) = self.by_start.range_mut(..=end).next_back()
            && s <= start
            && start <= *e
        {
            *e = (*e).max(end);
            let e = *e;
            self.last = Some((s, e, self.next_start(s)));
            return;
        }
        // Merge with every range that overlaps or touches, one at a time, so
        // nothing is collected.
        while let Some((&s, &(e, ()))) = self.by_start.range(..=end).next_back()
            && e >= start
        {
            self.by_start.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.by_start.insert(start, (end, ()));
        self.last = Some((start, end, self.next_start(start)));
    }

    /// Removes `[start, end)` and returns what was removed.
    #[must_use]
    pub fn take(&mut self, start: u64, end: u64) -> PageSet {
        let mut taken = PageSet::default();
        self.take_with(start, end, |s, e, ()| taken.put(s, e, ()));
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &PageSet) -> Vec<(u64, u64)> {
        s.by_start.iter().map(|(s, (e, ()))| (*s, *e)).collect()
    }

    #[test]
    fn merges_and_splits() {
        let mut s = PageSet::default();
        s.insert(0, 10);
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(5, 8);
        assert_eq!(s.len(), 30);
        assert_eq!(s.by_start.len(), 2, "{s:?}");
        let t = s.take(15, 35);
        assert_eq!(t.len(), 10);
        assert_eq!(s.len(), 20);
        assert_eq!(s.take(0, u64::MAX).len(), 20);
        assert!(s.is_empty());
    }

    #[test]
    fn inserts_inside_or_after_a_range_grow_it_in_place() {
        let mut s = PageSet::default();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(12, 15);
        s.insert(20, 22);
        s.insert(40, 41);
        s.insert(25, 26);
        assert_eq!(pairs(&s), [(10, 22), (25, 26), (30, 41)]);
        s.insert(22, 30);
        assert_eq!(pairs(&s), [(10, 41)]);
    }

    #[test]
    fn take_shortens_or_splits_what_it_overlaps() {
        let mut s = PageSet::default();
        s.insert(0, 10);
        s.insert(20, 30);
        assert_eq!(pairs(&s.take(5, 25)), [(5, 10), (20, 25)]);
        assert!(s.take(5, 25).is_empty());
        assert_eq!(pairs(&s), [(0, 5), (25, 30)]);
        assert_eq!(s.take(0, 1).len(), 1);
        assert_eq!(pairs(&s), [(1, 5), (25, 30)]);
    }

    #[test]
    fn taken_pieces_keep_their_tags() {
        let mut r = Ranges::<u32>::default();
        r.put(0, 10, 1);
        r.put(10, 20, 2);
        let mut seen = Vec::new();
        assert_eq!(r.take_with(5, 15, |s, e, t| seen.push((s, e, t))), 10);
        assert_eq!(seen, [(10, 15, 2), (5, 10, 1)]);
        assert_eq!(r.len(), 10);
    }

    #[test]
    fn hints_follow_every_change() {
        let mut s = PageSet::default();
        s.insert(0, 1);
        s.insert(10, 11);
        s.insert(1, 5); // grows [0, 1) through the hint
        s.insert(5, 10); // reaches the next range: merges
        assert_eq!(pairs(&s), [(0, 11)]);
        assert!(s.take(20, 30).is_empty()); // learns [11, MAX) is free
        s.insert(25, 26);
        assert_eq!(pairs(&s.take(20, 30)), [(25, 26)]);
        let mut r = Ranges::<u8>::default();
        assert_eq!(r.take_with(0, 5, |_, _, _| {}), 0); // all free
        r.put(2, 3, 1);
        assert_eq!(r.take_with(0, 5, |_, _, _| {}), 1);
        s.insert(40, 41);
        s.insert(30, 39);
        let _ = s.take(35, 36);
        s.insert(39, 40); // the hinted range was split: no stale grow
        assert_eq!(pairs(&s), [(0, 11), (30, 35), (36, 41)]);
    }

    #[test]
    fn walks_with_gaps_and_takes_match_a_set_of_pages() {
        // Walks that step, skip to the next boundary or jump back, with takes
        // between them: every hint gets used and invalidated. A plain set of
        // pages says what the ranges must hold.
        let mut s = PageSet::default();
        let mut pages = std::collections::BTreeSet::new();
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut cursor = 0_u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (start, end) = match x % 16 {
                0..8 => (cursor, cursor + 1),
                8..12 => {
                    let at = (cursor + 1).next_multiple_of(8);
                    (at, at + 8)
                }
                12 => {
                    cursor = (x >> 8) % 400;
                    (cursor, cursor + 1)
                }
                _ => {
                    let from = (x >> 8) % 400;
                    let to = from + (x >> 20) % 40;
                    let taken = s.take(from, to);
                    let expected: Vec<u64> = pages.range(from..to).copied().collect();
                    pages.retain(|p| !(from..to).contains(p));
                    let got: Vec<u64> = pairs(&taken).into_iter().flat_map(|(a, b)| a..b).collect();
                    assert_eq!(got, expected);
                    continue;
                }
            };
            s.insert(start, end);
            pages.extend(start..end);
            cursor = end % 420;
            // Ranges are the set's maximal runs: merged, never adjacent.
            let mut runs: Vec<(u64, u64)> = Vec::new();
            for &p in &pages {
                match runs.last_mut() {
                    Some((_, e)) if *e == p => *e += 1,
                    _ => runs.push((p, p + 1)),
                }
            }
            assert_eq!(pairs(&s), runs);
        }
    }

    #[test]
    fn a_huge_range_is_one_entry() {
        let mut s = PageSet::default();
        s.insert(0, 262_144);
        assert_eq!(s.by_start.len(), 1);
        assert_eq!(s.take(512, 1024).len(), 512);
    }
}
