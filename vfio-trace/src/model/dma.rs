//! DMA maps (`VFIO_IOMMU_MAP_DMA`) of a device's BARs: how many, how large,
//! how long, and how much of that the vfio faults and pfn lookups inside
//! took. Maps of anything else (guest RAM) are summed apart, so a VMM's RAM
//! maps never blur a BAR's figures.

use vfio_trace_common::DmaMapEvent;

use super::latency::Latency;

/// Maps kept one by one per device; past it they are only summed.
pub const MAX_KEPT: usize = 1024;

/// One DMA map, as the kernel reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaMap {
    pub start_ns: u64,
    pub latency_ns: u64,
    pub vaddr: u64,
    pub iova: u64,
    pub size: u64,
    pub faults: u32,
    pub fault_ns: u64,
    pub lookups: u32,
    pub pid: u32,
    pub tid: u32,
    /// 0, or the ioctl's negative errno.
    pub ret: i32,
}

impl From<&DmaMapEvent> for DmaMap {
    fn from(e: &DmaMapEvent) -> Self {
        Self {
            start_ns: e.start_ns,
            latency_ns: e.latency_ns,
            vaddr: e.vaddr,
            iova: e.iova,
            size: e.size,
            faults: e.faults,
            fault_ns: e.fault_ns,
            lookups: e.lookups,
            pid: e.pid,
            tid: e.tid,
            ret: e.ret,
        }
    }
}

impl DmaMap {
    pub fn end_ns(&self) -> u64 {
        self.start_ns.saturating_add(self.latency_ns)
    }
}

/// The DMA maps of one device, or of no device.
#[derive(Debug, Default, Clone)]
pub struct DmaMaps {
    pub maps: u64,
    /// Maps the ioctl failed.
    pub failed: u64,
    pub bytes: u64,
    pub latency: Latency,
    pub total_ns: u64,
    /// Of `total_ns`, time inside vfio faults.
    pub fault_ns: u64,
    pub faults: u64,
    pub lookups: u64,
    /// The first [`MAX_KEPT`] maps, in order.
    pub kept: Vec<DmaMap>,
}

impl DmaMaps {
    pub fn add(&mut self, m: DmaMap) {
        self.maps += 1;
        if m.ret != 0 {
            self.failed += 1;
        }
        self.bytes = self.bytes.saturating_add(m.size);
        self.latency.record(m.latency_ns);
        self.total_ns = self.total_ns.saturating_add(m.latency_ns);
        self.fault_ns = self.fault_ns.saturating_add(m.fault_ns);
        self.faults += u64::from(m.faults);
        self.lookups += u64::from(m.lookups);
        if self.kept.len() < MAX_KEPT {
            self.kept.push(m);
        }
    }

    /// Maps summed but not kept one by one.
    pub fn not_kept(&self) -> u64 {
        self.maps - self.kept.len() as u64
    }

    pub fn heap_bytes(&self) -> usize {
        self.latency.heap_bytes() + self.kept.capacity() * size_of::<DmaMap>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_sum_and_keep_in_order() {
        let mut d = DmaMaps::default();
        let mut e = DmaMapEvent::zeroed();
        e.size = 1 << 30;
        e.latency_ns = 900;
        e.fault_ns = 600;
        e.faults = 3;
        e.lookups = 262_144;
        d.add(DmaMap::from(&e));
        e.ret = -14;
        e.faults = 0;
        d.add(DmaMap::from(&e));
        assert_eq!((d.maps, d.failed, d.bytes), (2, 1, 2 << 30));
        assert_eq!((d.total_ns, d.fault_ns, d.faults), (1800, 1200, 3));
        assert_eq!(d.lookups, 524_288);
        assert_eq!(d.kept.len(), 2);
        assert_eq!(d.not_kept(), 0);
        assert_eq!(d.latency.count(), 2);
    }

    #[test]
    fn past_the_bound_maps_are_summed_not_kept() {
        let mut d = DmaMaps::default();
        for _ in 0..MAX_KEPT + 5 {
            d.add(DmaMap::from(&DmaMapEvent::zeroed()));
        }
        assert_eq!(d.kept.len(), MAX_KEPT);
        assert_eq!(d.not_kept(), 5);
    }
}
