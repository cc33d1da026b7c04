//! The zap, refault and `memory_lock` parts of a device's JSON. Causes come
//! named from the model; this only lays them out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Stack, latency::Summary, stats::DeviceStats};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZapDoc {
    pub cause: String,
    /// Byte range of the device file zapped, as vfio region offsets
    /// (`index << 40 | offset`); `len` 0 means to the end of the file.
    pub range_start: u64,
    pub range_len: u64,
    pub latency_ns: u64,
    /// Pages of mappings the zap covered (per-VMA zaps in the kernel).
    pub pages: u64,
    pub vmas: u32,
    pub pid: u32,
    pub comm: String,
    /// Populated pages the zap removed, and how many came back.
    pub removed_pages: u64,
    pub refaulted_pages: u64,
    /// From the end of the zap to the first refault, and until every removed page was back.
    pub first_refault_ns: Option<u64>,
    pub repopulated_ns: Option<u64>,
    /// How long the writer held `memory_lock` from the zap's start to the
    /// return of the config write or ioctl that released it.
    pub write_hold_ns: Option<u64>,
    /// DMA maps of the device after the zap and before the next, their
    /// time, and the time from the zap's end to the first of them.
    #[serde(default)]
    pub dma_maps_after: u32,
    #[serde(default)]
    pub dma_map_ns_after: u64,
    #[serde(default)]
    pub first_dma_map_ns: Option<u64>,
    /// The dma-buf revoke beside the zap (6.19+), and from the zap's end to
    /// the config write that set memory decode again (`null` when unseen).
    #[serde(default)]
    pub dma_buf_revoke_ns: Option<u64>,
    #[serde(default)]
    pub decode_on_ns: Option<u64>,
    /// Kernel stack at the zap, innermost first.
    pub stack: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZapsDoc {
    pub count: u64,
    pub pages: u64,
    pub latency_ns: Summary,
    pub write_hold_ns: Summary,
    pub causes: BTreeMap<String, u64>,
    pub events: Vec<ZapDoc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefaultsDoc {
    pub pages: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockWaitDoc {
    pub count: u64,
    pub wait_ns: Summary,
}

pub fn zaps_doc(d: &DeviceStats, stacks: &BTreeMap<i32, Stack>) -> ZapsDoc {
    let events: Vec<ZapDoc> = d
        .zaps
        .zaps
        .iter()
        .map(|z| ZapDoc {
            range_start: z.range_start,
            range_len: z.range_len,
            cause: z.cause.to_string(),
            latency_ns: z.latency_ns,
            pages: z.pages,
            vmas: z.vmas,
            pid: z.pid,
            comm: z.comm.clone(),
            removed_pages: z.removed,
            refaulted_pages: z.refaulted,
            first_refault_ns: z.first_refault_ns,
            repopulated_ns: z.repopulated_ns,
            write_hold_ns: z.write_hold_ns,
            dma_maps_after: z.maps_after,
            dma_map_ns_after: z.map_ns_after,
            first_dma_map_ns: z.first_map_ns,
            dma_buf_revoke_ns: z.revoke_ns,
            decode_on_ns: z.decode_on_ns,
            stack: stacks
                .get(&z.stack_id)
                .map(|s| s.frames.clone())
                .unwrap_or_default(),
        })
        .collect();
    ZapsDoc {
        count: events.len() as u64,
        pages: d.zaps.pages(),
        latency_ns: d.zaps.latency.summary(),
        write_hold_ns: d.zaps.write_hold.summary(),
        causes: d
            .zaps
            .causes()
            .into_iter()
            .map(|(c, n)| (c.to_owned(), n))
            .collect(),
        events,
    }
}
