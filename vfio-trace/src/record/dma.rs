//! The DMA-map parts of the JSON: each device's maps of its BARs, the maps
//! of anything else, and the decode-toggle cycles (a zap, then the maps
//! that followed it) by cause.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{
    dma::{DmaMap, DmaMaps},
    latency::Summary,
    stats::DeviceStats,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmaMapDoc {
    /// Since the probes attached.
    pub t_ns: u64,
    pub latency_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub vaddr: u64,
    pub iova: u64,
    pub size: u64,
    pub faults: u32,
    pub fault_ns: u64,
    pub lookups: u32,
    /// 0, or the ioctl's negative errno.
    pub ret: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DmaMapsDoc {
    pub count: u64,
    pub failed: u64,
    pub bytes: u64,
    pub latency_ns: Summary,
    pub total_ns: u64,
    /// Of `total_ns`, time in vfio faults.
    pub fault_ns: u64,
    pub faults: u64,
    /// `vaddr_get_pfns` calls: type1's pfn lookups.
    pub lookups: u64,
    /// Maps summed but past the number kept one by one.
    pub not_listed: u64,
    pub maps: Vec<DmaMapDoc>,
}

impl Default for DmaMapsDoc {
    fn default() -> Self {
        Self {
            count: 0,
            failed: 0,
            bytes: 0,
            latency_ns: Summary::EMPTY,
            total_ns: 0,
            fault_ns: 0,
            faults: 0,
            lookups: 0,
            not_listed: 0,
            maps: Vec::new(),
        }
    }
}

impl DmaMapsDoc {
    pub fn new(d: &DmaMaps, origin_ns: u64) -> Self {
        let doc = |m: &DmaMap| DmaMapDoc {
            t_ns: m.start_ns.saturating_sub(origin_ns),
            latency_ns: m.latency_ns,
            pid: m.pid,
            tid: m.tid,
            vaddr: m.vaddr,
            iova: m.iova,
            size: m.size,
            faults: m.faults,
            fault_ns: m.fault_ns,
            lookups: m.lookups,
            ret: m.ret,
        };
        Self {
            count: d.maps,
            failed: d.failed,
            bytes: d.bytes,
            latency_ns: d.latency.summary(),
            total_ns: d.total_ns,
            fault_ns: d.fault_ns,
            faults: d.faults,
            lookups: d.lookups,
            not_listed: d.not_kept(),
            maps: d.kept.iter().map(doc).collect(),
        }
    }
}

/// Zaps of one cause that a DMA map followed: the device's decode-toggle
/// (or reset) cycles, each phase summed over them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleDoc {
    pub count: u64,
    /// The zaps (decode off, or the reset's).
    pub zap_ns: u64,
    /// From each zap's end to the first map after it: decode on, and the
    /// VMM noticing.
    pub to_map_ns: u64,
    /// The maps after each zap, before the next.
    pub maps: u64,
    pub map_ns: u64,
    /// Of `map_ns`, time in vfio faults.
    pub map_fault_ns: u64,
    /// Pages faulted back during the cycles (before the next zap), by maps
    /// and CPUs alike, whichever zap had taken them.
    pub refaulted_pages: u64,
    /// Cycles whose decode-on was seen (a config write setting memory
    /// decode), and the time from their zap's end to it, summed; and the
    /// time of their dma-buf revokes (6.19+).
    #[serde(default)]
    pub decode_on_seen: u64,
    #[serde(default)]
    pub decode_on_ns: u64,
    #[serde(default)]
    pub revoke_ns: u64,
}

/// A device's dma-buf moves (6.19+): revokes beside zaps, restores at decode on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DmaBufDoc {
    pub revokes_ns: Summary,
    pub restores_ns: Summary,
}

impl Default for DmaBufDoc {
    fn default() -> Self {
        Self {
            revokes_ns: Summary::EMPTY,
            restores_ns: Summary::EMPTY,
        }
    }
}

impl DmaBufDoc {
    pub fn new(d: &DeviceStats) -> Self {
        Self {
            revokes_ns: d.dma_buf_revokes.summary(),
            restores_ns: d.dma_buf_restores.summary(),
        }
    }
}

/// Cycles by the cause of their zap.
pub fn cycles_doc(d: &DeviceStats) -> BTreeMap<String, CycleDoc> {
    let mut out: BTreeMap<String, CycleDoc> = BTreeMap::new();
    for z in d.zaps.zaps.iter().filter(|z| z.maps_after > 0) {
        let c = out.entry(z.cause.to_string()).or_default();
        c.count += 1;
        c.zap_ns += z.latency_ns;
        c.to_map_ns += z.first_map_ns.unwrap_or(0);
        c.maps += u64::from(z.maps_after);
        c.map_ns += z.map_ns_after;
        c.map_fault_ns += z.map_fault_ns_after;
        c.refaulted_pages += z.refaulted_in_cycle;
        c.revoke_ns += z.revoke_ns.unwrap_or(0);
        if let Some(ns) = z.decode_on_ns {
            c.decode_on_seen += 1;
            c.decode_on_ns += ns;
        }
    }
    out
}
