//! `vfio-trace check`: what this machine can trace, and why not.

use std::{path::Path, process::ExitCode};

use serde::Serialize;

use crate::{
    device::{PciDevice, Sysfs},
    kernel::Kernel,
    probe::{
        KPROBE_PMU,
        kallsyms::Symbols,
        offsets::{self, Field},
        plan::{self, PlannedProbe},
    },
};

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

const MODULES: &[&str] = &["vfio", "vfio_pci", "vfio_pci_core", "vfio_iommu_type1"];

#[derive(Debug, Serialize)]
pub struct Btf {
    pub vmlinux: bool,
    pub vfio_pci_core: bool,
}

#[derive(Debug, Serialize)]
pub struct Module {
    pub name: &'static str,
    pub loaded: bool,
}

/// Everything `check` found, as plain data.
#[derive(Debug, Serialize)]
pub struct Report {
    pub kernel: Kernel,
    pub btf: Btf,
    pub kprobes: bool,
    pub modules: Vec<Module>,
    pub devices: Vec<PciDevice>,
    pub offsets: Vec<Field>,
    pub probes: Vec<PlannedProbe>,
    /// Why tracing cannot work here; empty when it can.
    pub problems: Vec<String>,
    pub ready: bool,
}

/// Reads the running system.
pub fn gather() -> Report {
    let sysfs = Sysfs::default();
    let btf = Btf {
        vmlinux: Path::new(offsets::VMLINUX_BTF).exists(),
        vfio_pci_core: Path::new(offsets::VFIO_PCI_CORE_BTF).exists(),
    };
    let fields = if btf.vmlinux {
        offsets::read(
            Path::new(offsets::VMLINUX_BTF),
            Path::new(offsets::VFIO_PCI_CORE_BTF),
        )
        .map(|o| o.fields)
        .unwrap_or_default()
    } else {
        Vec::new()
    };
    let symbols = Symbols::load().unwrap_or_default();
    let modules = MODULES
        .iter()
        .map(|name| Module {
            name,
            loaded: sysfs.module_loaded(name),
        })
        .collect();
    let mut report = Report {
        kernel: Kernel::current(),
        btf,
        kprobes: Path::new(KPROBE_PMU).exists(),
        modules,
        devices: sysfs.vfio_devices(),
        offsets: fields,
        probes: plan::plan(
            &symbols,
            crate::probe::preempt::avoid_trampolines().as_deref(),
        ),
        problems: Vec::new(),
        ready: false,
    };
    if !report.kprobes {
        plan::without_kprobes(&mut report.probes);
    }
    report.problems = problems(&report);
    report.ready = report.problems.is_empty();
    report
}

/// What stops tracing, each as one sentence.
pub fn problems(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if !r.kprobes {
        out.push(format!(
            "no kprobe support in this kernel ({KPROBE_PMU} missing: CONFIG_KPROBES is off), so vfio functions cannot be probed"
        ));
    }
    if !r.btf.vmlinux {
        out.push("no kernel BTF (/sys/kernel/btf/vmlinux): struct offsets cannot be read".into());
    }
    if !r
        .modules
        .iter()
        .any(|m| m.name == "vfio_pci_core" && m.loaded)
    {
        out.push("vfio-pci is not loaded (no /sys/module/vfio_pci_core)".into());
    } else if !r.btf.vfio_pci_core {
        out.push("no BTF for vfio_pci_core: device offsets cannot be read".into());
    }
    for p in r.probes.iter().filter(|p| p.required && p.symbol.is_none()) {
        out.push(format!(
            "required probe {} cannot attach: {}",
            p.role,
            p.reason.as_deref().unwrap_or("absent")
        ));
    }
    if r.btf.vmlinux && r.btf.vfio_pci_core {
        for f in r
            .offsets
            .iter()
            .filter(|f| f.offset.is_none() && !f.optional)
        {
            out.push(format!(
                "BTF lacks {} (needed for {})",
                f.name, f.needed_for
            ));
        }
    }
    out
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The text form.
pub fn render(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let generation = r.kernel.generation.map_or("unknown", |g| g.describe());
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
        let at = f.offset.map_or("missing".to_owned(), |o| o.to_string());
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
            "probe     {:<13} {kind:<10} {symbol:<40} {status}",
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
    use crate::kernel::Kernel;

    fn report(kprobes: bool, vfio: bool, symbols: &str) -> Report {
        let mut r = Report {
            kernel: Kernel::from_release("6.12.117+deb12-amd64".into()),
            btf: Btf {
                vmlinux: true,
                vfio_pci_core: vfio,
            },
            kprobes,
            modules: MODULES
                .iter()
                .map(|name| Module { name, loaded: vfio })
                .collect(),
            devices: Vec::new(),
            offsets: Vec::new(),
            probes: plan::plan(&Symbols::parse(symbols), None),
            problems: Vec::new(),
            ready: false,
        };
        r.problems = problems(&r);
        r.ready = r.problems.is_empty();
        r
    }

    const GUEST_SYMBOLS: &str = "ffffffffc0001000 t vfio_pci_mmap_huge_fault\t[vfio_pci_core]\n";

    #[test]
    fn a_host_without_kprobes_or_vfio_is_not_ready_and_says_why() {
        let r = report(false, false, "ffffffff81000000 T vmf_insert_pfn\n");
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
        let r = report(true, true, GUEST_SYMBOLS);
        assert!(r.ready, "{:?}", r.problems);
        assert!(
            render(&r)
                .contains("fault_entry   fentry     vfio_pci_mmap_huge_fault [vfio_pci_core]")
        );
        let json: serde_json::Value = serde_json::to_value(&r).expect("serializes");
        assert_eq!(json["probes"][0]["status"], "available");
        assert_eq!(json["kernel"]["generation"], "huge-fault");
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(256), "256 B");
        assert_eq!(human_bytes(3 << 20), "3 MiB");
    }
}
