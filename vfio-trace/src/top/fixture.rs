//! A small synthetic recording for `top`'s tests, also checked in as
//! `tests/data/top-replay.json` for the terminal test (kept equal by
//! `the_checked_in_recording_is_current`).
//!
//! Device 0000:01:00.0 (1af4:1110) faults on its 32 MiB BAR 2 for ten
//! seconds, through a 32 MiB mapping aligned to 2 MiB: in second t,
//! 100 + 10 t 2 MiB faults and 20 4 KiB faults; in second 4 also 5 2 MiB
//! faults that fall back. A zap in second 3 removes the first 2 MiB page
//! (512 pages), which refaults in second 4. Device 0000:02:00.0 (8086:10ca)
//! takes 7 4 KiB faults a second in seconds 5 to 7, through a mapping
//! aligned to 4 KiB only.

use std::collections::BTreeMap;

use vfio_trace_common::{FaultEvent, ZapEvent};

use crate::{
    device::{Bar, Bdf, PciDevice},
    event::Event,
    kernel::{Generation, Kernel},
    model::Model,
    probe::{load::KernelCounts, rings::ReaderStats, session::RingCount},
    record::{
        document::{Document, ProbeDoc, ProbeKind, ProbeStatus, RunInfo, StopReason, build},
        health::Usage,
    },
};

pub const A: &str = "0000:01:00.0";
pub const B: &str = "0000:02:00.0";
pub const SECOND: u64 = 1_000_000_000;
const BAR2: u64 = 32 << 20;
/// Where each device's mapping of its BAR 2 starts: 2 MiB-aligned, 4 KiB-aligned.
pub const VMA_A: u64 = 0x7f12_3420_0000;
pub const VMA_B: u64 = 0x7f56_0000_1000;

fn bdf(s: &str) -> Bdf {
    Bdf::parse(s).unwrap_or_else(|e| unreachable!("{e}"))
}

fn fault(dev: &str, t: u64, page: u64, order: u32, result: u32, latency_ns: u64) -> Event {
    let mut e = FaultEvent::zeroed();
    e.device = bdf(dev).key();
    e.vma_pgoff = 2 << 28;
    e.page_in_vma = page;
    e.vma_start = if dev == A { VMA_A } else { VMA_B };
    e.vma_pages = u32::try_from(BAR2 >> 12).unwrap_or(u32::MAX);
    e.order = order;
    e.result = result;
    e.latency_ns = latency_ns;
    e.start_ns = t * SECOND + 1000;
    if result == 0x100 {
        if order == 9 {
            e.inserts_pmd = 1;
        } else {
            e.inserts_pte = 1;
        }
    }
    Event::Fault(e)
}

pub fn pci(s: &str, vendor: u16, device: u16) -> PciDevice {
    PciDevice {
        bdf: bdf(s),
        vendor,
        device,
        driver: Some("vfio-pci".into()),
        iommu_group: Some(1),
        bars: vec![Bar {
            index: 2,
            start: 0x80_0000_0000,
            size: BAR2,
            prefetchable: true,
        }],
    }
}

pub fn model() -> Model {
    let mut m = Model::new(Generation::HugeFault);
    m.set_origin_ns(0);
    for d in [A, B] {
        m.add_device(bdf(d), vec![(2, 0x80_0000_0000, BAR2)]);
    }
    for t in 0..10u64 {
        for i in 0..100 + 10 * t {
            // Over the 16 huge pages of the BAR, 2 MiB apart.
            m.ingest(&fault(A, t, (i % 16) * 512, 9, 0x100, 3_000 + i * 10));
        }
        for i in 0..20 {
            m.ingest(&fault(A, t, 8192 - 1 - i, 0, 0x100, 1_500));
        }
        if t == 3 {
            let mut zap = ZapEvent::zeroed();
            zap.device = bdf(A).key();
            zap.range_start = 2 << 40;
            zap.range_len = 2 << 20;
            zap.start_ns = t * SECOND + 500_000_000;
            zap.latency_ns = 42_000;
            zap.pages = 512;
            zap.vmas = 1;
            zap.stack_id = 7;
            m.ingest(&Event::Zap(zap));
        }
        if t == 4 {
            for _ in 0..5 {
                m.ingest(&fault(A, t, 3 * 512, 9, 0x800, 900));
            }
        }
        if (5..8).contains(&t) {
            for i in 0..7 {
                m.ingest(&fault(B, t, i, 0, 0x100, 2_000));
            }
        }
    }
    m.add_stacks([(
        7,
        vec![
            "unmap_mapping_range".into(),
            "vfio_basic_config_write".into(),
        ],
    )]);
    m
}

fn probe(name: &str, status: ProbeStatus, required: bool) -> ProbeDoc {
    ProbeDoc {
        name: name.into(),
        program: None,
        kind: ProbeKind::Kprobe,
        symbol: Some(name.into()),
        module: None,
        required,
        status,
        reason: None,
        attach_us: None,
        skipped_runs: None,
    }
}

pub fn recording() -> Document {
    let info = RunInfo {
        kernel: Kernel::from_release("6.12.48".into()),
        command: Some(vec!["vfio-trace".into(), "exercise".into()]),
        command_status: Some(0),
        duration_seconds: 10.0,
        stop_reason: StopReason::CommandExited,
        error: None,
        probes: Vec::new(),
        offsets: Vec::new(),
        counts: KernelCounts {
            lost_by_device: BTreeMap::from([(bdf(A).key(), 3)]),
            counters: [3, 0, 0, 0, 0],
            loss_maps_readable: true,
            bpf_run_ns: 4_000_000,
            bpf_run_cnt: 10_000,
            ..KernelCounts::default()
        },
        rings: vec![RingCount {
            device: None,
            stats: ReaderStats::default(),
            error: None,
        }],
        stack_map_readable: true,
        usage: Usage {
            attach_ms: 80.0,
            cpu_ns: 150_000_000,
            stop_cpu_ns: 0,
            max_rss_kib: 9000,
            ingest_ns: 0,
            yielded: false,
            catch_ups: 0,
        },
        pci: vec![pci(A, 0x1af4, 0x1110), pci(B, 0x8086, 0x10ca)],
    };
    let mut doc = build(&model(), info);
    doc.probes = vec![
        probe("fault_entry", ProbeStatus::Attached, true),
        probe("fault_return", ProbeStatus::Attached, true),
        probe("zap_range", ProbeStatus::Attached, false),
        probe("lock_begin", ProbeStatus::Absent, false),
    ];
    // The losses' second, as `record` places them (its last).
    if let Some(t) = doc.timeline.devices.iter_mut().find(|d| d.bdf == bdf(A))
        && let Some(last) = t.seconds.last_mut()
    {
        last.lost = 3;
    }
    doc
}

/// Where the checked-in copy lives.
pub fn checked_in_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/top-replay.json")
}

#[test]
fn the_checked_in_recording_is_current() {
    let text = serde_json::to_string_pretty(&recording()).expect("json") + "\n";
    let path = checked_in_path();
    if std::env::var_os("VFIO_TRACE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, &text).expect("write");
    }
    let stored = std::fs::read_to_string(&path).expect("tests/data/top-replay.json");
    assert!(
        stored == text,
        "tests/data/top-replay.json is stale: rerun with VFIO_TRACE_BLESS=1"
    );
}
