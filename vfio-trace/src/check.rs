//! `vfio-trace check`: what this machine can trace, and why not.

use std::process::ExitCode;

use serde::Serialize;

use crate::{
    device::PciDevice,
    kernel::Kernel,
    probe::{
        Host, Preflight,
        host::BtfPresence,
        offsets::Field,
        plan::PlannedProbe,
        preflight::{Module, Problem},
    },
};

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Everything `check` found, as plain data: the preflight `record` runs too.
#[derive(Debug, Serialize)]
pub struct Report {
    pub kernel: Kernel,
    pub btf: BtfPresence,
    pub kprobes: bool,
    pub modules: Vec<Module>,
    pub devices: Vec<PciDevice>,
    pub offsets: Vec<Field>,
    pub probes: Vec<PlannedProbe>,
    /// Why tracing cannot work here; empty when it can.
    pub problems: Vec<Problem>,
    pub ready: bool,
}

impl From<Preflight> for Report {
    fn from(p: Preflight) -> Self {
        Self {
            ready: p.ready(),
            kernel: p.kernel,
            btf: p.btf,
            kprobes: p.kprobes,
            modules: p.modules,
            devices: p.devices,
            offsets: p.offsets,
            probes: p.probes,
            problems: p.problems,
        }
    }
}

/// Reads the running system.
pub fn gather() -> Report {
    crate::probe::preflight(&Host::current()).into()
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The text form.
pub fn render(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let generation = r.kernel.generation.map_or(
        "generation unknown: no vfio fault handler in this kernel",
        |g| g.describe(),
    );
    let _ = writeln!(s, "kernel    {} ({generation})", r.kernel.release);
    let _ = writeln!(
        s,
        "btf       vmlinux {}, vfio_pci_core {}",
        yes(r.btf.vmlinux),
        yes(r.btf.vfio_pci_core)
    );
    let _ = writeln!(s, "kprobes   {}", yes(r.kprobes));
    let mods: Vec<String> = r
        .modules
        .iter()
        .map(|m| format!("{} {}", m.name, yes(m.loaded)))
        .collect();
    let _ = writeln!(s, "modules   {}", mods.join(", "));
    if r.devices.is_empty() {
        let _ = writeln!(s, "devices   none bound to vfio-pci");
    }
    for d in &r.devices {
        let bars: Vec<String> = d
            .bars
            .iter()
            .map(|b| {
                format!(
                    "BAR{} {}{}",
                    b.index,
                    human_bytes(b.size),
                    if b.prefetchable { " pref" } else { "" }
                )
            })
            .collect();
        let group = d.iommu_group.map_or("-".to_owned(), |g| g.to_string());
        let _ = writeln!(
            s,
            "device    {} {:04x}:{:04x} group {group}: {}",
            d.bdf,
            d.vendor,
            d.device,
            bars.join(", ")
        );
    }
    for f in &r.offsets {
        let at = f.offset.map_or_else(
            || format!("missing (needed for {})", f.needed_for),
            |o| o.to_string(),
        );
        let _ = writeln!(s, "offset    {:<36} {at}", f.name);
    }
    for p in &r.probes {
        let (status, kind) = (p.status, p.kind.to_string());
        let symbol = match (&p.symbol, &p.module) {
            (Some(sym), Some(m)) => format!("{sym} [{m}]"),
            (Some(sym), None) => sym.clone(),
            (None, _) => "-".into(),
        };
        let _ = write!(
            s,
            "probe     {:<17} {kind:<10} {symbol:<40} {status}",
            p.role.name()
        );
        if let Some(reason) = &p.reason {
            let _ = write!(s, ": {reason}");
        }
        s.push('\n');
    }
    if r.ready {
        s.push_str("ready     yes: every required probe can attach\n");
    } else {
        for p in &r.problems {
            let _ = writeln!(s, "problem   {p}");
        }
        s.push_str("ready     no\n");
    }
    s
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: &[(u64, &str)] = &[(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    UNITS
        .iter()
        .find(|(u, _)| n >= *u && n.is_multiple_of(*u))
        .map_or(format!("{n} B"), |(u, name)| format!("{} {name}", n / u))
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let report = gather();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{
        host::fake::{FakeHost, SYMBOLS_6_12},
        preflight,
    };

    fn report(spec: FakeHost) -> Report {
        let (_root, host) = Host::fake(spec);
        preflight(&host).into()
    }

    #[test]
    fn a_host_without_kprobes_or_vfio_is_not_ready_and_says_why() {
        let r = report(FakeHost {
            kprobes: false,
            vfio_loaded: false,
            symbols: Some("ffffffff81000000 T vmf_insert_pfn\n".into()),
            ..FakeHost::good()
        });
        assert!(!r.ready);
        let text = render(&r);
        assert!(text.contains("no kprobe support"), "{text}");
        assert!(text.contains("vfio-pci is not loaded"), "{text}");
        assert!(
            text.contains("required probe fault_entry cannot attach"),
            "{text}"
        );
        assert!(text.ends_with("ready     no\n"));
    }

    #[test]
    fn a_guest_with_everything_is_ready() {
        let r = report(FakeHost::good());
        assert!(r.ready, "{:?}", r.problems);
        let text = render(&r);
        assert!(
            text.contains("fault_entry       fentry     vfio_pci_mmap_huge_fault [vfio_pci_core]"),
            "{text}"
        );
        assert!(
            text.contains("insert_pte        kprobe     vmf_insert_pfn"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::to_value(&r).expect("serializes");
        assert_eq!(json["probes"][0]["name"], "fault_entry");
        assert_eq!(json["probes"][0]["status"], "available");
        assert_eq!(json["probes"][0]["kind"], "fentry");
        assert_eq!(json["kernel"]["generation"], "huge-fault");
        assert_eq!(json["btf"]["vfio_pci_core"], true);
        assert_eq!(json["problems"], serde_json::json!([]));
    }

    #[test]
    fn a_missing_lock_field_is_shown_but_check_stays_ready() {
        let mut spec = FakeHost::good();
        spec.btf.missing = vec!["vfio_pci_core_device.memory_lock"];
        let r = report(spec);
        assert!(r.ready, "{:?}", r.problems);
        assert!(render(&r).contains("missing (needed for memory_lock contention)"));
    }

    #[test]
    fn check_and_record_agree_on_readiness() {
        let mut no_btf = FakeHost::good();
        no_btf.btf.unreadable = true;
        let mut no_lock = FakeHost::good();
        no_lock.btf.missing = vec!["vfio_pci_core_device.memory_lock"];
        let mut no_vma = FakeHost::good();
        no_vma.btf.missing = vec!["vm_fault.vma"];
        let hosts = [
            FakeHost::good(),
            FakeHost {
                kprobes: false,
                ..FakeHost::good()
            },
            FakeHost {
                symbols: Some(SYMBOLS_6_12.replace("huge_fault", "x")),
                ..FakeHost::good()
            },
            no_btf,
            no_lock,
            no_vma,
        ];
        let verdicts: Vec<bool> = hosts
            .into_iter()
            .map(|spec| {
                let (_root, host) = Host::fake(spec);
                let p = preflight(&host);
                // `record` passes `ensure_ready`; `check` prints `ready`.
                let record_runs = p.ensure_ready().is_ok();
                let check_ready = Report::from(p).ready;
                assert_eq!(record_runs, check_ready);
                check_ready
            })
            .collect();
        assert_eq!(verdicts, [true, false, false, false, true, false]);
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(256), "256 B");
        assert_eq!(human_bytes(3 << 20), "3 MiB");
    }
}
