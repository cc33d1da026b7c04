//! The exposition of a synthetic model: exact values, bounded labels, and
//! the text format's rules, all without root.

use vfio_trace_common::{FaultEvent, LockEvent, ZapEvent, lock_flags};

use super::{
    catalog::{self, Kind, LABELS, METRICS},
    metrics::{VERSION, render},
    scrape::{Live, Scrape},
};
use crate::{
    device::{Bar, Bdf, PciDevice},
    event::Event,
    kernel::{Generation, Kernel},
    model::Model,
    probe::{
        load::KernelCounts,
        plan::{Kind as ProbeKind, PlannedProbe, Status},
        role::Role,
    },
};

pub const TRACED: &str = "0000:01:00.0";
pub const UNBOUND: &str = "0000:02:00.0";
pub const IDLE: &str = "0000:03:00.0";

fn bdf(s: &str) -> Bdf {
    Bdf::parse(s).expect("bdf")
}

fn pci(s: &str) -> PciDevice {
    PciDevice {
        bdf: bdf(s),
        vendor: 0x1af4,
        device: 0x1110,
        driver: Some("vfio-pci".into()),
        iommu_group: Some(7),
        bars: vec![Bar {
            index: 2,
            start: 0x8000_0000,
            size: 1 << 30,
            prefetchable: true,
        }],
    }
}

fn fault(device: &str, order: u32, result: u32, page: u64, pmd: u32, ns: u64) -> Event {
    let mut e = FaultEvent::zeroed();
    e.device = bdf(device).key();
    e.vma_pgoff = 2 << 28;
    e.page_in_vma = page;
    e.order = order;
    e.result = result;
    e.latency_ns = ns;
    e.inserts_pmd = pmd;
    Event::Fault(e)
}

fn probe(role: Role, symbol: Option<&str>, status: Status) -> PlannedProbe {
    PlannedProbe {
        role,
        program: Some("fault_entry"),
        btf_program: None,
        btf_id: None,
        kind: ProbeKind::Kprobe,
        symbol: symbol.map(str::to_owned),
        module: None,
        required: false,
        status,
        reason: None,
        attach_us: None,
    }
}

/// A model of three 2 MiB faults, a reset zap that takes their pages, one
/// refault, a 1 GiB fallback, a lock wait and a fault of no device; one
/// device traced then unbound, one bound and idle.
pub fn synthetic() -> Scrape {
    let mut m = Model::new(Generation::HugeFault);
    m.add_device(bdf(TRACED), vec![(2, 0x8000_0000, 1 << 30)]);
    for page in [0, 512, 1024] {
        m.ingest(&fault(TRACED, 9, 0x100, page, 1, 4000));
    }
    let mut zap = ZapEvent::zeroed();
    zap.device = bdf(TRACED).key();
    zap.range_start = 2 << 40;
    zap.latency_ns = 30_000;
    zap.pages = 1536;
    zap.stack_id = 4;
    m.ingest(&Event::Zap(zap));
    m.ingest(&fault(TRACED, 18, 0x800, 0, 0, 2000));
    m.ingest(&fault(TRACED, 9, 0x100, 0, 1, 60_000));
    let mut lock = LockEvent::zeroed();
    lock.device = bdf(TRACED).key();
    lock.flags = lock_flags::WRITE;
    lock.wait_ns = 7000;
    m.ingest(&Event::Lock(lock));
    m.ingest(&fault(UNBOUND, 0, 0x100, 0, 0, 1000));
    m.ingest(&fault(TRACED, 0, 0x100, 0, 0, 1000).map_device(vfio_trace_common::UNKNOWN_DEVICE));
    m.add_stacks([(
        4,
        vec!["unmap_mapping_range".into(), "vfio_pci_core_ioctl".into()],
    )]);
    let live = Live {
        kernel: Kernel {
            release: "6.12.117+deb12-amd64".into(),
            generation: Some(Generation::HugeFault),
        },
        devices: vec![pci(TRACED), pci(IDLE)],
        names: vec!["Red Hat, Inc. Inter-VM shared memory".into(), String::new()],
        probes: vec![
            probe(
                Role::FaultEntry,
                Some("vfio_pci_mmap_huge_fault"),
                Status::Attached,
            ),
            probe(Role::InsertPud, None, Status::Absent),
        ],
        counts: KernelCounts {
            // ring full 2, fault entries 10, returns 9.
            counters: [2, 0, 0, 10, 9],
            loss_maps_readable: true,
            bpf_run_ns: 1_500_000_000,
            bpf_run_cnt: 42,
            ..KernelCounts::default()
        },
        events: 9,
        cpu_ns: 250_000_000,
        max_rss_kib: 2048,
        bpf_stats_enabled: true,
        stack_map_readable: true,
        readers_failed: 0,
        undecodable: 3,
        diagnostics: 1,
    };
    Scrape::new(&m, live)
}

trait MapDevice {
    fn map_device(self, key: u64) -> Self;
}

impl MapDevice for Event {
    fn map_device(self, key: u64) -> Self {
        match self {
            Event::Fault(mut e) => {
                e.device = key;
                Event::Fault(e)
            }
            other => other,
        }
    }
}

fn text() -> String {
    render(synthetic()).expect("renders")
}

#[test]
fn the_exposition_holds_the_models_exact_counts() {
    let t = text();
    let d = format!("device=\"{TRACED}\"");
    for line in [
        format!("vfio_trace_faults_total{{{d},order=\"9\"}} 4"),
        format!("vfio_trace_faults_total{{{d},order=\"18\"}} 1"),
        format!("vfio_trace_faults_total{{{d},order=\"0\"}} 0"),
        format!("vfio_trace_fault_results_total{{{d},result=\"nopage\"}} 4"),
        format!("vfio_trace_fault_results_total{{{d},result=\"fallback\"}} 1"),
        format!("vfio_trace_fault_duration_seconds_bucket{{{d},order=\"9\",le=\"0.000005\"}} 3"),
        format!("vfio_trace_fault_duration_seconds_bucket{{{d},order=\"9\",le=\"0.0001\"}} 4"),
        format!("vfio_trace_fault_duration_seconds_bucket{{{d},order=\"9\",le=\"+Inf\"}} 4"),
        format!("vfio_trace_fault_duration_seconds_count{{{d},order=\"9\"}} 4"),
        format!("vfio_trace_bar_faults_total{{bar=\"2\",{d}}} 5"),
        format!("vfio_trace_bar_faulted_pages{{bar=\"2\",{d}}} 3"),
        format!("vfio_trace_inserts_total{{{d},size=\"pmd\"}} 4"),
        format!("vfio_trace_inserts_total{{{d},size=\"pte\"}} 0"),
        format!("vfio_trace_zaps_total{{cause=\"reset\",{d}}} 1"),
        format!("vfio_trace_zaps_total{{cause=\"unknown\",{d}}} 0"),
        format!("vfio_trace_zapped_pages_total{{{d}}} 1536"),
        format!("vfio_trace_refaulted_pages_total{{{d}}} 512"),
        format!("vfio_trace_zap_duration_seconds_bucket{{{d},le=\"0.00005\"}} 1"),
        format!("vfio_trace_zap_duration_seconds_bucket{{{d},le=\"0.000025\"}} 0"),
        format!("vfio_trace_memory_lock_wait_seconds_count{{{d},mode=\"write\"}} 1"),
        format!("vfio_trace_memory_lock_wait_seconds_count{{{d},mode=\"read\"}} 0"),
        format!(
            "vfio_trace_device_info{{{d},device_id=\"0x1110\",driver=\"vfio-pci\",\
             iommu_group=\"7\",name=\"Red Hat, Inc. Inter-VM shared memory\",vendor=\"0x1af4\"}} 1"
        ),
        format!("vfio_trace_faults_total{{device=\"{IDLE}\",order=\"9\"}} 0"),
        format!(
            "vfio_trace_info{{generation=\"huge-fault\",kernel=\"6.12.117+deb12-amd64\",\
             version=\"{VERSION}\"}} 1"
        ),
        "vfio_trace_probe_attached{probe=\"fault_entry\",symbol=\"vfio_pci_mmap_huge_fault\"} 1"
            .into(),
        "vfio_trace_probe_attached{probe=\"insert_pud\",symbol=\"\"} 0".into(),
        "vfio_trace_lost_events_total{cause=\"ring_full\"} 2".into(),
        "vfio_trace_lost_events_total{cause=\"missed_return\"} 1".into(),
        "vfio_trace_lost_events_total{cause=\"recursion\"} 0".into(),
        "vfio_trace_lost_events_total{cause=\"undecodable\"} 3".into(),
        "vfio_trace_kernel_diagnostics_total 1".into(),
        "vfio_trace_unattributed_faults_total 1".into(),
        "vfio_trace_bpf_run_seconds_total 1.5".into(),
        "vfio_trace_bpf_runs_total 42".into(),
        "vfio_trace_events_total 9".into(),
        "vfio_trace_collector_cpu_seconds_total 0.25".into(),
        "vfio_trace_collector_max_resident_bytes 2097152".into(),
        "vfio_trace_healthy 0".into(),
    ] {
        assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
    }
    // A device no longer bound is gone; its faults stay in the model.
    assert!(!t.contains(UNBOUND), "{t}");
}

/// A sample line: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

fn samples(t: &str) -> Vec<Sample> {
    t.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a value");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').expect("closed labels")),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once("=\"").expect("label=\"value\"");
                    (k.to_owned(), v.trim_end_matches('"').to_owned())
                })
                .collect();
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect("a number"),
            };
            (name.to_owned(), labels, value)
        })
        .collect()
}

fn family_of(series: &str) -> Option<&'static catalog::Spec> {
    METRICS
        .iter()
        .find(|s| s.series().iter().any(|n| n == series))
}

#[test]
fn every_series_is_catalogued_with_bounded_labels() {
    let t = text();
    for (name, labels, value) in samples(&t) {
        let spec = family_of(&name).unwrap_or_else(|| panic!("{name} is not catalogued"));
        let mut expected: Vec<&str> = spec.labels.to_vec();
        if name.ends_with("_bucket") {
            expected.push("le");
        }
        let mut got: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        expected.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, expected, "{name}");
        assert!(
            (value.is_finite() && value >= 0.0) || name.ends_with("_bucket"),
            "{name}"
        );
        for (k, v) in &labels {
            assert!(LABELS.contains(&k.as_str()) || k == "le", "{k}");
            let bounded = match k.as_str() {
                "order" => ["0", "9", "18", "other"].contains(&v.as_str()),
                "result" => ["nopage", "fallback", "sigbus", "oom", "other"].contains(&v.as_str()),
                "cause" => {
                    super::scrape::CAUSES.contains(&v.as_str())
                        || [
                            "ring_full",
                            "inflight_full",
                            "missed_return",
                            "recursion",
                            "undecodable",
                        ]
                        .contains(&v.as_str())
                }
                "mode" => ["read", "write", "other"].contains(&v.as_str()),
                "size" => ["pte", "pmd", "pud", "remap"].contains(&v.as_str()),
                "bar" => ["0", "1", "2", "3", "4", "5", "unknown"].contains(&v.as_str()),
                "device" => Bdf::parse(v).is_ok(),
                _ => true,
            };
            assert!(bounded, "{name}: {k}={v:?}");
        }
    }
}

/// What `promtool check metrics` checks of the text format: HELP and TYPE
/// once per family before its samples, counters ending in `_total`,
/// histogram buckets cumulative and ending at `+Inf` equal to `_count`.
#[test]
fn the_text_keeps_the_format_rules() {
    let t = text();
    let mut typed: Vec<String> = Vec::new();
    let mut helped: Vec<String> = Vec::new();
    for line in t.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().expect("name");
            assert!(!helped.contains(&name.to_owned()), "HELP twice: {name}");
            helped.push(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("name and type");
            let spec = catalog::find(name).unwrap_or_else(|| panic!("{name}"));
            let want = match spec.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            assert_eq!(kind, want, "{name}");
            assert!(
                helped.last().is_some_and(|h| h == name),
                "HELP before TYPE: {name}"
            );
            typed.push(name.to_owned());
        } else {
            let name = line.split(['{', ' ']).next().expect("name");
            let family = family_of(name).expect("catalogued").name;
            assert_eq!(typed.last().map(String::as_str), Some(family), "{line}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
    }
    let all = samples(&t);
    let mut last: Option<(String, f64)> = None;
    for (name, labels, value) in &all {
        if !name.ends_with("_bucket") {
            continue;
        }
        let mut key = name.clone();
        for (k, v) in labels.iter().filter(|(k, _)| k != "le") {
            key.extend([",", k, "=", v]);
        }
        if let Some((k, before)) = &last
            && *k == key
        {
            assert!(value >= before, "{key}: buckets must not decrease");
        }
        if labels.iter().any(|(k, v)| k == "le" && v == "+Inf") {
            let count_name = name.replace("_bucket", "_count");
            let count = all
                .iter()
                .find(|(n, l, _)| {
                    *n == count_name
                        && l.iter()
                            .all(|(k, v)| labels.iter().any(|(a, b)| a == k && b == v))
                })
                .map(|(_, _, v)| *v);
            assert_eq!(count, Some(*value), "{key}");
        }
        last = Some((key, *value));
    }
    // Every catalogued family is exposed by this model.
    for spec in METRICS {
        assert!(
            typed.iter().any(|t| t == spec.name),
            "{} not exposed",
            spec.name
        );
    }
}

/// `promtool check metrics` over the text, where `cargo xtask test` (or the
/// caller) names a promtool in `VFIO_TRACE_PROMTOOL`; skipped otherwise.
#[test]
fn promtool_finds_no_problem() {
    let Some(promtool) = std::env::var_os("VFIO_TRACE_PROMTOOL") else {
        eprintln!("VFIO_TRACE_PROMTOOL unset: promtool check skipped");
        return;
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), text().as_bytes())
        .expect("writes");
    let out = child.wait_with_output().expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}
