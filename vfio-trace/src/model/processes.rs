//! Faults per process id. Few processes fault on one device, and runs of
//! faults come from the same one, so a sorted vector with the last hit
//! remembered beats a tree: the usual fault is one compare and an add.

use std::ops::Index;

#[derive(Debug, Default, Clone)]
pub struct Processes {
    /// (pid, faults), sorted by pid.
    counts: Vec<(u32, u64)>,
    last: usize,
}

impl Processes {
    pub fn add(&mut self, pid: u32) {
        if let Some((p, n)) = self.counts.get_mut(self.last)
            && *p == pid
        {
            *n += 1;
            return;
        }
        let at = match self.counts.binary_search_by_key(&pid, |(p, _)| *p) {
            Ok(at) => at,
            Err(at) => {
                self.counts.insert(at, (pid, 0));
                at
            }
        };
        self.counts[at].1 += 1;
        self.last = at;
    }

    /// (pid, faults) by pid.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.counts.iter().copied()
    }

    pub fn heap_bytes(&self) -> usize {
        self.counts.capacity() * size_of::<(u32, u64)>()
    }
}

impl Index<&u32> for Processes {
    type Output = u64;
    fn index(&self, pid: &u32) -> &u64 {
        self.counts
            .binary_search_by_key(pid, |(p, _)| *p)
            .map_or(&0, |at| &self.counts[at].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_pid_in_pid_order() {
        let mut p = Processes::default();
        for pid in [30, 10, 10, 20, 30, 30] {
            p.add(pid);
        }
        assert_eq!(p.iter().collect::<Vec<_>>(), [(10, 2), (20, 1), (30, 3)]);
        assert_eq!(p[&30], 3);
        assert_eq!(p[&99], 0);
    }
}
