//! The per-device part of the record document, laid out from the model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    dma::{CycleDoc, DmaBufDoc, DmaMapsDoc, cycles_doc},
    mappings::MappingDoc,
    zaps::{LockWaitDoc, RefaultsDoc, ZapsDoc, zaps_doc},
};
use crate::{
    device::{Bdf, PciDevice},
    model::{
        Stack,
        fault::{Origin, Outcome},
        latency::{Latency, Summary},
        stats::{self, DeviceStats, Inserts, PageRun},
    },
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultsDoc {
    pub total: u64,
    pub by_order: BTreeMap<String, u64>,
    pub by_result: BTreeMap<Outcome, u64>,
    /// Absent in recordings made before origins were traced.
    #[serde(default)]
    pub by_origin: BTreeMap<Origin, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsertsDoc {
    pub pte: u64,
    pub pmd: u64,
    pub pud: u64,
    pub remap: u64,
    pub remap_pages: u64,
}

impl From<&Inserts> for InsertsDoc {
    fn from(i: &Inserts) -> Self {
        Self {
            pte: i.pte,
            pmd: i.pmd,
            pud: i.pud,
            remap: i.remap,
            remap_pages: i.remap_pages,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyDoc {
    pub by_order: BTreeMap<String, Summary>,
    pub by_result: BTreeMap<Outcome, Summary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarDoc {
    /// `null` for faults whose BAR could not be resolved.
    pub index: Option<u32>,
    pub size: Option<u64>,
    /// Physical address of the BAR (sysfs `resource`), when known: its
    /// alignment bounds the page sizes a fault can insert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phys_start: Option<u64>,
    pub faults: u64,
    pub inserts: InsertsDoc,
    /// Entries inserted, by mapping size in bytes.
    pub mapping_sizes: BTreeMap<String, u64>,
    pub pages_faulted: u64,
    /// Per-page fault counts as runs of consecutive pages with equal counts.
    pub page_faults: Vec<PageRun>,
    /// The mappings (VMAs) its faults came through, in the order first faulted.
    #[serde(default)]
    pub mappings: Vec<MappingDoc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessDoc {
    pub pid: u32,
    pub comm: String,
    pub faults: u64,
    /// The process's faulting threads, by tid. Absent in older recordings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threads: Vec<ThreadDoc>,
}

/// One thread: a VMM's DMA-mapping (ioctl) thread faults apart from its vCPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadDoc {
    pub tid: u32,
    pub comm: String,
    pub faults: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceDoc {
    #[serde(with = "super::document::bdf_text")]
    pub bdf: Bdf,
    pub vendor: Option<String>,
    pub device: Option<String>,
    pub lost_events: u64,
    /// Events read from this device's own ring.
    pub ring_events: u64,
    pub faults: FaultsDoc,
    pub inserts: InsertsDoc,
    pub latency_ns: LatencyDoc,
    pub bars: Vec<BarDoc>,
    pub processes: Vec<ProcessDoc>,
    pub zaps: ZapsDoc,
    pub refaults: RefaultsDoc,
    /// `VFIO_IOMMU_MAP_DMA`s of the device's BARs. Absent in older recordings.
    #[serde(default)]
    pub dma_maps: DmaMapsDoc,
    /// Zaps a DMA map followed, by cause: the decode-toggle and reset cycles.
    #[serde(default)]
    pub cycles: BTreeMap<String, CycleDoc>,
    /// dma-buf revokes and restores (6.19+). Absent in older recordings.
    #[serde(default)]
    pub dma_buf: DmaBufDoc,
    /// Contended waits for the device's `memory_lock`, by mode: `read` (faults), `write` (zaps).
    pub memory_lock: BTreeMap<String, LockWaitDoc>,
    /// Kernel address of that lock (hex), once a wait was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_lock_address: Option<String>,
}

/// What the document says of a device beyond the model's aggregates.
pub struct DeviceContext<'a> {
    pub pci: Option<&'a PciDevice>,
    pub lost_events: u64,
    pub ring_events: u64,
    pub comms: &'a BTreeMap<u32, String>,
    /// Each thread's process and name, by tid.
    pub threads: &'a BTreeMap<u32, (u32, String)>,
    pub stacks: &'a BTreeMap<i32, Stack>,
    /// Kernel time the probes attached, for the maps' times.
    pub origin_ns: u64,
}

fn bar_doc(index: Option<u32>, d: &DeviceStats, pci: Option<&PciDevice>) -> BarDoc {
    let b = &d.bars[&index];
    let bar = index.and_then(|i| pci?.bars.iter().find(|bar| bar.index == i));
    BarDoc {
        index,
        size: bar.map(|bar| bar.size),
        phys_start: bar.map(|bar| bar.start).filter(|s| *s != 0),
        faults: b.faults,
        inserts: InsertsDoc::from(&b.inserts),
        mapping_sizes: [
            (stats::PTE_BYTES, b.inserts.pte),
            (stats::PMD_BYTES, b.inserts.pmd),
            (stats::PUD_BYTES, b.inserts.pud),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(size, n)| (size.to_string(), n))
        .collect(),
        pages_faulted: b.page_faults.len(),
        page_faults: stats::page_runs(&b.page_faults),
        mappings: d
            .mappings
            .iter()
            .filter(|m| m.bar == index)
            .map(MappingDoc::from)
            .collect(),
    }
}

pub fn device_doc(bdf: Bdf, d: &DeviceStats, cx: &DeviceContext<'_>) -> DeviceDoc {
    DeviceDoc {
        bdf,
        vendor: cx.pci.map(|p| format!("{:04x}", p.vendor)),
        device: cx.pci.map(|p| format!("{:04x}", p.device)),
        lost_events: cx.lost_events,
        ring_events: cx.ring_events,
        faults: FaultsDoc {
            total: d.faults,
            // The fixed orders always, others only when seen.
            by_order: d
                .by_order
                .iter()
                .map(|(o, n)| (o.to_string(), *n))
                .collect(),
            by_result: Outcome::ALL.iter().map(|o| (*o, d.by_outcome[o])).collect(),
            by_origin: Origin::ALL
                .iter()
                .map(|o| (*o, d.by_origin[o.index()]))
                .collect(),
        },
        inserts: InsertsDoc::from(&d.inserts),
        latency_ns: LatencyDoc {
            by_order: d
                .latency_by_order
                .iter()
                .map(|(o, l)| (o.to_string(), l.summary()))
                .collect(),
            // Only results seen.
            by_result: d
                .latency_by_outcome
                .iter()
                .filter(|(_, l)| l.count() > 0)
                .map(|(o, l)| (o, l.summary()))
                .collect(),
        },
        bars: d
            .bars
            .iter()
            .filter(|(_, b)| b.faults > 0)
            .map(|(index, _)| bar_doc(index, d, cx.pci))
            .collect(),
        processes: d
            .processes
            .iter()
            .map(|(pid, faults)| ProcessDoc {
                pid,
                comm: cx.comms.get(&pid).cloned().unwrap_or_default(),
                faults,
                threads: d
                    .threads
                    .iter()
                    .filter_map(|(tid, faults)| {
                        let (p, comm) = cx.threads.get(&tid)?;
                        (*p == pid).then(|| ThreadDoc {
                            tid,
                            comm: comm.clone(),
                            faults,
                        })
                    })
                    .collect(),
            })
            .collect(),
        zaps: zaps_doc(d, cx.stacks),
        refaults: RefaultsDoc {
            pages: d.zaps.refaulted_pages,
        },
        dma_maps: DmaMapsDoc::new(&d.dma, cx.origin_ns),
        cycles: cycles_doc(d),
        dma_buf: DmaBufDoc::new(d),
        memory_lock_address: d.memory_lock_address.map(|a| format!("{a:#x}")),
        memory_lock: ["read", "write"]
            .into_iter()
            .chain(d.lock_waits.keys().copied())
            .map(|mode| {
                let lat = d
                    .lock_waits
                    .get(mode)
                    .map_or(Summary::EMPTY, Latency::summary);
                (
                    mode.to_owned(),
                    LockWaitDoc {
                        count: lat.count,
                        wait_ns: lat,
                    },
                )
            })
            .collect(),
    }
}
