//! The JSON document `vfio-trace record` writes (schema in docs/record-schema.md).
//! Built from the model and run metadata; no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    health::{CollectorDoc, HealthDoc, LossesDoc, Usage},
    zaps::{LockWaitDoc, RefaultsDoc, ZapsDoc, zaps_doc},
};
use crate::{
    device::{Bdf, PciDevice},
    kernel::Kernel,
    model::{
        Model,
        fault::Outcome,
        latency::{Latency, Summary},
        stats::{self, DeviceStats, Inserts, PageRun},
    },
    probe::{load::KernelCounts, offsets::Field, plan::PlannedProbe, session::RingCount},
};

pub const SCHEMA_VERSION: u32 = 1;

/// Why recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    CommandExited,
    Duration,
    Interrupted,
    Terminated,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Document {
    pub schema_version: u32,
    pub vfio_trace_version: &'static str,
    pub kernel: Kernel,
    pub command: Option<Vec<String>>,
    pub command_status: Option<i32>,
    pub duration_seconds: f64,
    pub stop_reason: StopReason,
    /// False when recording ended on an error; what was recorded is still here.
    pub complete: bool,
    pub error: Option<String>,
    pub probes: Vec<PlannedProbe>,
    pub offsets: Vec<Field>,
    /// Every event lost, whatever the cause: the sum of `losses`.
    pub lost_events: u64,
    pub losses: LossesDoc,
    pub collector: CollectorDoc,
    pub health: HealthDoc,
    pub unattributed_faults: u64,
    /// Zaps of vfio address spaces before any mmap or fault told their device.
    pub unattributed_zaps: u64,
    pub rings: Vec<RingDoc>,
    pub devices: Vec<DeviceDoc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RingDoc {
    /// A BDF, or "shared".
    pub device: String,
    pub events: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FaultsDoc {
    pub total: u64,
    pub by_order: BTreeMap<String, u64>,
    pub by_result: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
pub struct LatencyDoc {
    pub by_order: BTreeMap<String, Summary>,
    pub by_result: BTreeMap<&'static str, Summary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BarDoc {
    /// `null` for faults whose BAR could not be resolved.
    pub index: Option<u32>,
    pub size: Option<u64>,
    pub faults: u64,
    pub inserts: InsertsDoc,
    /// Entries inserted, by mapping size in bytes.
    pub mapping_sizes: BTreeMap<String, u64>,
    pub pages_faulted: u64,
    /// Per-page fault counts as runs of consecutive pages with equal counts.
    pub page_faults: Vec<PageRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessDoc {
    pub pid: u32,
    pub comm: String,
    pub faults: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceDoc {
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
    /// Contended waits for the device's `memory_lock`, by mode: `read` (faults), `write` (zaps).
    pub memory_lock: BTreeMap<&'static str, LockWaitDoc>,
}

/// Everything about a run except the aggregates.
pub struct RunInfo {
    pub kernel: Kernel,
    pub command: Option<Vec<String>>,
    pub command_status: Option<i32>,
    pub duration_seconds: f64,
    pub stop_reason: StopReason,
    pub error: Option<String>,
    pub probes: Vec<PlannedProbe>,
    pub offsets: Vec<Field>,
    pub counts: KernelCounts,
    pub rings: Vec<RingCount>,
    pub stack_map_readable: bool,
    pub usage: Usage,
    pub pci: Vec<PciDevice>,
}

fn device_doc(bdf: Bdf, d: &DeviceStats, model: &Model, info: &RunInfo) -> DeviceDoc {
    let pci = info.pci.iter().find(|p| p.bdf == bdf);
    let empty = Summary::EMPTY;
    DeviceDoc {
        bdf,
        vendor: pci.map(|p| format!("{:04x}", p.vendor)),
        device: pci.map(|p| format!("{:04x}", p.device)),
        lost_events: info
            .counts
            .lost_by_device
            .get(&bdf.key())
            .copied()
            .unwrap_or(0),
        ring_events: info
            .rings
            .iter()
            .filter(|r| r.device == Some(bdf))
            .map(|r| r.stats.events)
            .sum(),
        faults: FaultsDoc {
            total: d.faults,
            // The fixed orders always, others only when seen.
            by_order: d
                .by_order
                .iter()
                .map(|(o, n)| (o.to_string(), *n))
                .collect(),
            by_result: Outcome::ALL
                .iter()
                .map(|o| (o.name(), d.by_outcome[o]))
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
                .map(|(o, l)| (o.name(), l.summary()))
                .collect(),
        },
        bars: d
            .bars
            .iter()
            .filter(|(_, b)| b.faults > 0)
            .map(|(index, b)| BarDoc {
                index,
                size: index.and_then(|i| {
                    pci?.bars
                        .iter()
                        .find(|bar| bar.index == i)
                        .map(|bar| bar.size)
                }),
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
            })
            .collect(),
        processes: d
            .processes
            .iter()
            .map(|(pid, faults)| ProcessDoc {
                pid,
                comm: model.comms.get(&pid).cloned().unwrap_or_default(),
                faults,
            })
            .collect(),
        zaps: zaps_doc(d, &model.stacks),
        refaults: RefaultsDoc {
            pages: d.zaps.refaulted_pages,
        },
        memory_lock: ["read", "write"]
            .into_iter()
            .chain(d.lock_waits.keys().copied())
            .map(|mode| {
                let lat = d.lock_waits.get(mode).map_or(empty, Latency::summary);
                (
                    mode,
                    LockWaitDoc {
                        count: lat.count,
                        wait_ns: lat,
                    },
                )
            })
            .collect(),
    }
}

pub fn build(model: &Model, info: RunInfo) -> Document {
    let devices: Vec<DeviceDoc> = model
        .devices
        .iter()
        .map(|(bdf, d)| device_doc(*bdf, d, model, &info))
        .collect();
    let losses = LossesDoc::new(&info.counts, &info.rings);
    Document {
        schema_version: SCHEMA_VERSION,
        vfio_trace_version: env!("CARGO_PKG_VERSION"),
        kernel: info.kernel,
        command: info.command,
        command_status: info.command_status,
        duration_seconds: info.duration_seconds,
        stop_reason: info.stop_reason,
        complete: info.error.is_none(),
        error: info.error,
        probes: info.probes,
        offsets: info.offsets,
        lost_events: losses.events(),
        losses,
        collector: CollectorDoc::new(info.usage, &info.counts, &info.rings),
        health: HealthDoc::new(
            &info.counts,
            &info.rings,
            info.stack_map_readable,
            model.pages_out_of_range(),
        ),
        unattributed_faults: model.unattributed,
        unattributed_zaps: model.unattributed_zaps,
        rings: info
            .rings
            .iter()
            .map(|r| RingDoc {
                device: r.device.map_or("shared".into(), |d| d.to_string()),
                events: r.stats.events,
            })
            .collect(),
        devices,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Generation;
    use crate::{event::Event, probe::rings::ReaderStats};
    use vfio_trace_common::{FaultEvent, ZapEvent};

    fn info() -> RunInfo {
        RunInfo {
            kernel: Kernel::from_release("6.12.117+deb12-amd64".into()),
            command: Some(vec!["true".into()]),
            command_status: Some(0),
            duration_seconds: 0.5,
            stop_reason: StopReason::CommandExited,
            error: None,
            probes: Vec::new(),
            offsets: Vec::new(),
            counts: KernelCounts {
                lost_by_device: BTreeMap::from([(0x0100, 3)]),
                counters: [3, 0, 0, 6, 6],
                loss_maps_readable: true,
                ..KernelCounts::default()
            },
            rings: vec![
                RingCount {
                    device: Bdf::parse("01:00.0"),
                    stats: ReaderStats {
                        events: 5,
                        ..ReaderStats::default()
                    },
                    error: None,
                },
                RingCount {
                    device: None,
                    stats: ReaderStats::default(),
                    error: None,
                },
            ],
            stack_map_readable: true,
            usage: Usage::default(),
            pci: Vec::new(),
        }
    }

    #[test]
    fn fixed_names_are_present_and_values_parse_back() {
        let bdf = Bdf::parse("0000:01:00.0").expect("bdf");
        let mut m = Model::new(Generation::HugeFault);
        let mut e = FaultEvent::zeroed();
        e.device = bdf.key();
        e.vma_pgoff = 2 << 28;
        e.order = 9;
        e.result = 0x100;
        e.inserts_pmd = 1;
        e.latency_ns = 5000;
        for i in 0..5 {
            e.page_in_vma = i * 512;
            m.ingest(&Event::Fault(e));
        }
        let mut zap = ZapEvent::zeroed();
        zap.device = bdf.key();
        zap.stack_id = 4;
        zap.pages = 2560;
        zap.range_len = 6 << 40;
        zap.start_ns = 10;
        m.ingest(&Event::Zap(zap));
        e.page_in_vma = 0;
        e.start_ns = 100;
        m.ingest(&Event::Fault(e));
        m.add_stacks([(
            4,
            vec![
                "unmap_mapping_range".into(),
                "vfio_basic_config_write".into(),
            ],
        )]);
        let doc = build(&m, info());
        let v: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&doc).expect("json")).expect("parses");
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["lost_events"], 3);
        assert_eq!(v["losses"]["ring_full"], 3);
        assert_eq!(v["health"]["stack_map_readable"], true);
        let d = &v["devices"][0];
        assert_eq!(d["bdf"], "0000:01:00.0");
        assert_eq!(d["lost_events"], 3);
        assert_eq!(d["ring_events"], 5);
        assert_eq!(v["unattributed_zaps"], 0);
        assert_eq!(d["faults"]["total"], 6);
        assert_eq!(d["faults"]["by_order"]["9"], 6);
        assert_eq!(d["zaps"]["count"], 1);
        assert_eq!(d["zaps"]["pages"], 2560);
        assert_eq!(d["zaps"]["causes"]["decode-off"], 1);
        assert_eq!(d["zaps"]["events"][0]["removed_pages"], 2560);
        assert_eq!(d["zaps"]["events"][0]["range_start"], 0);
        assert_eq!(d["zaps"]["events"][0]["range_len"], 6u64 << 40);
        assert_eq!(d["refaults"]["pages"], 512);
        assert_eq!(d["memory_lock"]["read"]["count"], 0);
        assert_eq!(d["memory_lock"]["write"]["count"], 0);
        assert_eq!(d["faults"]["by_order"]["0"], 0);
        assert_eq!(d["faults"]["by_order"]["18"], 0);
        assert_eq!(d["faults"]["by_result"]["nopage"], 6);
        assert_eq!(d["faults"]["by_result"]["sigbus"], 0);
        assert_eq!(d["inserts"]["pmd"], 6);
        assert_eq!(d["inserts"]["remap"], 0);
        assert_eq!(d["latency_ns"]["by_order"]["9"]["count"], 6);
        assert_eq!(d["bars"][0]["index"], 2);
        assert_eq!(d["bars"][0]["mapping_sizes"]["2097152"], 6);
        assert_eq!(d["bars"][0]["pages_faulted"], 5);
        assert_eq!(d["bars"][0]["faults"], 6);
        assert_eq!(v["rings"][1]["device"], "shared");
    }
}
