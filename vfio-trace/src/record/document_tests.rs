//! The document: names the VM suite and `report` read, the round trip
//! through JSON, and the ways a file can fail to be one.

use std::collections::BTreeMap;

use vfio_trace_common::{FaultEvent, LockEvent, ZapEvent, lock_flags};

use super::document::{Document, ReadError, RunInfo, StopReason, build};
use super::health::Usage;
use crate::{
    device::Bdf,
    event::Event,
    kernel::{Generation, Kernel},
    model::Model,
    probe::{load::KernelCounts, rings::ReaderStats, session::RingCount},
};

pub fn info() -> RunInfo {
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
                device: Bdf::parse("01:00.0").ok(),
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

/// Six 2 MiB faults on BAR 2, a decode-off zap of all of it and one
/// refault, a contended read of `memory_lock`, spread over two seconds.
fn model() -> Model {
    let bdf = Bdf::parse("0000:01:00.0").expect("bdf");
    let mut m = Model::new(Generation::HugeFault);
    m.set_origin_ns(0);
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
    e.start_ns = 1_000_000_100;
    m.ingest(&Event::Fault(e));
    let mut lock = LockEvent::zeroed();
    lock.device = bdf.key();
    lock.flags = lock_flags::READ;
    lock.wait_ns = 900;
    lock.start_ns = 1_500_000_000;
    m.ingest(&Event::Lock(lock));
    m.add_stacks([(
        4,
        vec![
            "unmap_mapping_range".into(),
            "vfio_basic_config_write".into(),
        ],
    )]);
    m
}

/// A document of a small run, for tests of its readers.
pub fn sample() -> Document {
    build(&model(), info())
}

#[test]
fn fixed_names_are_present_and_values_parse_back() {
    let doc = sample();
    let v: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&doc).expect("json")).expect("parses");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["lost_events"], 3);
    assert_eq!(v["losses"]["ring_full"], 3);
    assert_eq!(v["health"]["stack_map_readable"], true);
    assert_eq!(v["health"]["loss_maps_readable"], true);
    assert_eq!(v["health"]["reader_errors"], serde_json::json!([]));
    assert_eq!(v["kernel"]["generation"], "huge-fault");
    assert_eq!(v["stop_reason"], "command-exited");
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
    assert_eq!(d["zaps"]["events"][0]["cause"], "decode-off");
    assert_eq!(
        d["zaps"]["events"][0]["stack"][1],
        "vfio_basic_config_write"
    );
    assert_eq!(d["zaps"]["events"][0]["removed_pages"], 2560);
    assert_eq!(d["zaps"]["events"][0]["range_start"], 0);
    assert_eq!(d["zaps"]["events"][0]["range_len"], 6u64 << 40);
    assert_eq!(d["refaults"]["pages"], 512);
    assert_eq!(d["memory_lock"]["read"]["count"], 1);
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
    let t = &v["timeline"];
    assert_eq!(t["dropped_seconds"], 0);
    assert_eq!(t["devices"][0]["bdf"], "0000:01:00.0");
    let s = &t["devices"][0]["seconds"];
    assert_eq!(s[0]["t"], 0);
    assert_eq!(s[0]["faults_by_order"]["9"], 5);
    assert_eq!(s[0]["zaps"], 1);
    assert_eq!(s[1]["t"], 1);
    assert_eq!(s[1]["faults_by_result"]["nopage"], 1);
    assert_eq!(s[1]["refaulted_pages"], 512);
    assert_eq!(s[1]["lock_waits"], 1);
}

#[test]
fn a_document_reads_back_equal() {
    let doc = sample();
    let text = serde_json::to_string_pretty(&doc).expect("json");
    let back = Document::parse(&text, "run.json").expect("reads back");
    assert_eq!(back, doc);
}

fn parse_err(text: &str) -> String {
    let err = Document::parse(text, "run.json").expect_err("should fail");
    let line = err.to_string();
    assert!(!line.contains('\n'), "{line}");
    line
}

#[test]
fn other_files_get_one_clear_line() {
    assert!(parse_err("{ nope").starts_with("run.json is not JSON: "));
    assert!(parse_err("").starts_with("run.json is not JSON: "));
    assert_eq!(
        parse_err(r#"{"x": 1}"#),
        "run.json is not a vfio-trace record (no schema_version)"
    );
    assert_eq!(
        parse_err("[1, 2]"),
        "run.json is not a vfio-trace record (no schema_version)"
    );
    assert_eq!(
        parse_err(r#"{"schema_version": 7}"#),
        "run.json has schema_version 7; this vfio-trace reads 1"
    );
}

#[test]
fn a_missing_or_mistyped_field_is_named() {
    let mut v = serde_json::to_value(sample()).expect("json");
    if let Some(d) = v["devices"][0].as_object_mut() {
        d.remove("faults");
    }
    let line = parse_err(&v.to_string());
    assert!(
        line.starts_with("run.json is not a valid vfio-trace record: missing field `faults`"),
        "{line}"
    );
    let mut v = serde_json::to_value(sample()).expect("json");
    v["devices"][0]["bdf"] = "nonsense".into();
    assert!(parse_err(&v.to_string()).contains("invalid PCI address \"nonsense\""));
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("none.json");
    let err = Document::read(&path).expect_err("no file");
    assert!(matches!(err, ReadError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read {}: ", path.display())),
        "{err}"
    );
}

#[test]
fn the_timeline_sums_to_the_device_totals() {
    let doc = sample();
    let d = &doc.devices[0];
    let seconds = &doc.timeline.devices[0].seconds;
    let sum = |f: fn(&crate::model::timeline::Second) -> u64| seconds.iter().map(f).sum::<u64>();
    assert_eq!(sum(crate::model::timeline::Second::faults), d.faults.total);
    assert_eq!(
        sum(|s| u64::from(s.faults_by_order.pmd)),
        d.faults.by_order["9"]
    );
    assert_eq!(sum(|s| u64::from(s.zaps)), d.zaps.count);
    assert_eq!(sum(|s| s.refaulted_pages), d.refaults.pages);
    assert_eq!(
        sum(|s| u64::from(s.lock_waits)),
        d.memory_lock["read"].count
    );
}

/// A VMM's shape: its ioctl thread DMA-maps the BAR (faulting it in), a
/// vCPU thread touches it, a decode-off zap, then the map again.
#[test]
fn threads_dma_maps_and_cycles_reach_the_json() {
    let bdf = Bdf::parse("0000:01:00.0").expect("bdf");
    let mut m = Model::new(Generation::HugeFault);
    m.set_origin_ns(0);
    let task = |tid: u32, name: &[u8]| {
        let mut t = vfio_trace_common::TaskEvent::zeroed();
        t.pid = 800;
        t.tid = tid;
        t.comm[..name.len()].copy_from_slice(name);
        Event::Task(t)
    };
    m.ingest(&task(800, b"qemu-system-x86"));
    m.ingest(&task(803, b"CPU 0/TCG"));
    let mut e = FaultEvent::zeroed();
    e.device = bdf.key();
    e.vma_pgoff = 2 << 28;
    e.result = 0x100;
    e.inserts_pte = 1;
    e.pid = 800;
    e.tid = 800;
    e.latency_ns = 1000;
    let mut map = vfio_trace_common::DmaMapEvent::zeroed();
    map.pid = 800;
    map.tid = 800;
    map.device = bdf.key();
    map.size = 8192;
    map.faults = 2;
    map.fault_ns = 2000;
    map.lookups = 2;
    map.latency_ns = 5000;
    for cycle in 0..2u64 {
        e.tid = 800;
        for page in 0..2 {
            e.page_in_vma = page;
            m.ingest(&Event::Fault(e));
        }
        map.start_ns = cycle * 1_000_000;
        m.ingest(&Event::DmaMap(map));
        if cycle == 0 {
            e.tid = 803;
            e.page_in_vma = 5;
            m.ingest(&Event::Fault(e));
            let mut zap = ZapEvent::zeroed();
            zap.device = bdf.key();
            zap.stack_id = 4;
            zap.start_ns = 500_000;
            zap.latency_ns = 100;
            m.ingest(&Event::Zap(zap));
        }
    }
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
    let d = &v["devices"][0];
    let threads = &d["processes"][0]["threads"];
    assert_eq!(threads[0]["comm"], "qemu-system-x86");
    assert_eq!(
        (threads[0]["tid"].as_u64(), threads[0]["faults"].as_u64()),
        (Some(800), Some(4))
    );
    assert_eq!(
        (threads[1]["comm"].as_str(), threads[1]["faults"].as_u64()),
        (Some("CPU 0/TCG"), Some(1))
    );
    assert_eq!(d["dma_maps"]["count"], 2);
    assert_eq!(d["dma_maps"]["faults"], 4);
    assert_eq!(d["dma_maps"]["maps"][1]["t_ns"], 1_000_000);
    let cycle = &d["cycles"]["decode-off"];
    assert_eq!(
        (cycle["count"].as_u64(), cycle["maps"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(cycle["to_map_ns"], 1_000_000 - 500_100);
    assert_eq!(cycle["map_fault_ns"], 2000);
    assert_eq!(d["zaps"]["events"][0]["dma_maps_after"], 1);
    let back: Document = serde_json::from_value(v).expect("reads back");
    let text = crate::report::render(&back);
    assert!(
        text.contains("  threads   qemu-system-x86[800] 4, CPU 0/TCG[803] 1\n"),
        "{text}"
    );
    assert!(text.contains("  dma maps  2 maps, 16.0 KiB"), "{text}");
    assert!(
        text.contains("  cycles    decode-off 1: per cycle zap 100 ns, to map 499.9 us"),
        "{text}"
    );
}
