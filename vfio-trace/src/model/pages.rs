//! A set of pages as sorted, merged half-open ranges: a 1 GiB mapping is one
//! entry, not 262,144.

use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PageSet {
    /// start -> end (exclusive), non-overlapping, non-adjacent.
    ranges: BTreeMap<u64, u64>,
}

impl PageSet {
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// Adds `[start, end)`.
    pub fn insert(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        // Merge with every range that overlaps or touches.
        let touching: Vec<(u64, u64)> = self
            .ranges
            .range(..=end)
            .rev()
            .take_while(|(_, e)| **e >= start)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.ranges.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.ranges.insert(start, end);
    }

    /// Removes `[start, end)` and returns what was removed.
    pub fn take(&mut self, start: u64, end: u64) -> PageSet {
        let mut taken = PageSet::default();
        if start >= end {
            return taken;
        }
        let overlapping: Vec<(u64, u64)> = self
            .ranges
            .range(..end)
            .rev()
            .take_while(|(_, e)| **e > start)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in overlapping {
            self.ranges.remove(&s);
            if s < start {
                self.ranges.insert(s, start);
            }
            if e > end {
                self.ranges.insert(end, e);
            }
            taken.ranges.insert(s.max(start), e.min(end));
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_splits() {
        let mut s = PageSet::default();
        s.insert(0, 10);
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(5, 8);
        assert_eq!(s.len(), 30);
        assert_eq!(s.ranges.len(), 2, "{s:?}");
        let t = s.take(15, 35);
        assert_eq!(t.len(), 10);
        assert_eq!(s.len(), 20);
        assert_eq!(s.take(0, u64::MAX).len(), 20);
        assert!(s.is_empty());
    }

    #[test]
    fn a_huge_range_is_one_entry() {
        let mut s = PageSet::default();
        s.insert(0, 262_144);
        assert_eq!(s.ranges.len(), 1);
        assert_eq!(s.take(512, 1024).len(), 512);
    }
}
