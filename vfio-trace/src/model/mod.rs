//! Pure aggregation of decoded events: no I/O, tested without root.

pub mod fault;
pub mod latency;
pub mod stats;

use std::collections::BTreeMap;

use vfio_trace_common::FaultEvent;

use crate::{device::Bdf, kernel::Generation};
use fault::{Fault, locate};
use stats::DeviceStats;

/// Everything recorded so far.
#[derive(Debug, Clone)]
pub struct Model {
    generation: Generation,
    /// BARs per device as (index, physical start, size), to place faults on
    /// kernels that put physical pfns in `vm_pgoff`.
    bars: BTreeMap<Bdf, Vec<(u32, u64, u64)>>,
    pub devices: BTreeMap<Bdf, DeviceStats>,
    /// Faults whose device could not be read.
    pub unattributed: u64,
}

impl Model {
    pub fn new(generation: Generation) -> Self {
        Self {
            generation,
            bars: BTreeMap::new(),
            devices: BTreeMap::new(),
            unattributed: 0,
        }
    }

    /// Registers a device before any event, so it is reported even when idle.
    pub fn add_device(&mut self, bdf: Bdf, bars: Vec<(u32, u64, u64)>) {
        self.bars.insert(bdf, bars);
        self.devices.entry(bdf).or_default();
    }

    pub fn ingest(&mut self, event: &FaultEvent) {
        let f = Fault::from(event);
        let Some(bdf) = f.device else {
            self.unattributed += 1;
            return;
        };
        let bars = self.bars.get(&bdf).map_or(&[][..], Vec::as_slice);
        let at = locate(self.generation, f.vma_pgoff, f.page_in_vma, bars);
        self.devices.entry(bdf).or_default().add(&f, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_land_on_their_device_and_bar() {
        let mut m = Model::new(Generation::HugeFault);
        let bdf = Bdf::parse("0000:01:00.0").expect("bdf");
        let idle = Bdf::parse("0000:02:00.0").expect("bdf");
        m.add_device(idle, vec![]);
        let mut e = FaultEvent::zeroed();
        e.device = bdf.key();
        e.vma_pgoff = 2 << 28;
        e.result = 0x100;
        for page in 0..3 {
            e.page_in_vma = page;
            m.ingest(&e);
        }
        e.device = vfio_trace_common::UNKNOWN_DEVICE;
        m.ingest(&e);
        assert_eq!(m.devices[&bdf].faults, 3);
        assert_eq!(m.devices[&bdf].bars[&Some(2)].page_faults.len(), 3);
        assert_eq!(m.devices[&idle].faults, 0);
        assert_eq!(m.unattributed, 1);
    }
}
