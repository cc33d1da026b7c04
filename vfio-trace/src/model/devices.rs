//! Per-device stats by PCI address. Events arrive in runs per device (a ring
//! drain hands over one device's events at a time), so the device of the
//! last event is remembered: the usual lookup is one compare, not a search.

use std::ops::Index;

use super::stats::DeviceStats;
use crate::device::Bdf;

#[derive(Debug, Default, Clone)]
pub struct Devices {
    /// Sorted; `stats[i]` belongs to `bdfs[i]`.
    bdfs: Vec<Bdf>,
    stats: Vec<DeviceStats>,
    last: usize,
}

impl Devices {
    pub fn get_or_insert_with(
        &mut self,
        bdf: Bdf,
        new: impl FnOnce() -> DeviceStats,
    ) -> &mut DeviceStats {
        if self.bdfs.get(self.last) != Some(&bdf) {
            self.last = match self.bdfs.binary_search(&bdf) {
                Ok(at) => at,
                Err(at) => {
                    self.bdfs.insert(at, bdf);
                    self.stats.insert(at, new());
                    at
                }
            };
        }
        &mut self.stats[self.last]
    }

    pub fn get(&self, bdf: &Bdf) -> Option<&DeviceStats> {
        let at = self.bdfs.binary_search(bdf).ok()?;
        self.stats.get(at)
    }

    /// By PCI address.
    pub fn iter(&self) -> impl Iterator<Item = (&Bdf, &DeviceStats)> {
        self.bdfs.iter().zip(&self.stats)
    }

    pub fn values(&self) -> impl Iterator<Item = &DeviceStats> {
        self.stats.iter()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut DeviceStats> {
        self.stats.iter_mut()
    }

    pub fn len(&self) -> usize {
        self.bdfs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bdfs.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.bdfs.capacity() * size_of::<Bdf>()
            + self.stats.capacity() * size_of::<DeviceStats>()
            + self
                .stats
                .iter()
                .map(DeviceStats::heap_bytes)
                .sum::<usize>()
    }
}

impl Index<&Bdf> for Devices {
    type Output = DeviceStats;
    fn index(&self, bdf: &Bdf) -> &DeviceStats {
        self.get(bdf)
            .unwrap_or_else(|| panic!("no device {bdf} in the model"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_stay_sorted_and_the_last_one_is_found_again() {
        let mut d = Devices::default();
        let [a, b, c] =
            ["0000:03:00.0", "0000:01:00.0", "0000:02:00.0"].map(|s| Bdf::parse(s).expect("bdf"));
        for bdf in [a, b, c, c, a] {
            d.get_or_insert_with(bdf, DeviceStats::default).faults += 1;
        }
        let order: Vec<_> = d
            .iter()
            .map(|(bdf, s)| (bdf.to_string(), s.faults))
            .collect();
        assert_eq!(
            order,
            [
                ("0000:01:00.0".to_string(), 1),
                ("0000:02:00.0".to_string(), 2),
                ("0000:03:00.0".to_string(), 2)
            ]
        );
        assert_eq!(d[&c].faults, 2);
        assert!(d.get(&Bdf::from_key(0xffff)).is_none());
    }
}
