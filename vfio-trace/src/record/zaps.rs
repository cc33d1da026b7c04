//! The zap, refault and memory_lock parts of a device's JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use super::document::RunInfo;
use crate::model::{cause, latency::Summary, stats::DeviceStats};

#[derive(Debug, Clone, Serialize)]
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
    /// Kernel stack at the zap, innermost first.
    pub stack: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ZapsDoc {
    pub count: u64,
    pub pages: u64,
    pub latency_ns: Summary,
    pub write_hold_ns: Summary,
    pub causes: BTreeMap<String, u64>,
    pub events: Vec<ZapDoc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefaultsDoc {
    pub pages: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LockWaitDoc {
    pub count: u64,
    pub wait_ns: Summary,
}

pub fn zaps_doc(d: &DeviceStats, info: &RunInfo) -> ZapsDoc {
    let events: Vec<ZapDoc> = d
        .zaps
        .zaps
        .iter()
        .map(|z| {
            let stack = info.stacks.get(&z.stack_id).cloned().unwrap_or_default();
            let frames: Vec<&str> = stack.iter().map(String::as_str).collect();
            ZapDoc {
                range_start: z.range_start,
                range_len: z.range_len,
                cause: if stack.is_empty() {
                    "unknown".into()
                } else {
                    cause::classify(&frames)
                },
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
                stack,
            }
        })
        .collect();
    let mut causes = BTreeMap::new();
    for e in &events {
        *causes.entry(e.cause.clone()).or_default() += 1;
    }
    ZapsDoc {
        count: events.len() as u64,
        pages: events.iter().map(|e| e.pages).sum(),
        latency_ns: d.zaps.latency.summary(),
        write_hold_ns: d.zaps.write_hold.summary(),
        causes,
        events,
    }
}
