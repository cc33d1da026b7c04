//! One look at the machine before tracing, shared by `check`, `record` and
//! any later command, so they never disagree on readiness. Ready means: the
//! kernel can kprobe, and every probe and BTF field needed for every fault is
//! there. Whatever else is missing is reported, and tracing runs without it.

use std::fmt;

use serde::{Serialize, Serializer};
use vfio_trace_common::Config;

use super::{
    KPROBE_PMU,
    host::{BtfPresence, Host},
    kallsyms::Symbols,
    offsets::{self, Field},
    plan::{self, PlannedProbe},
    preempt,
    role::Role,
    table, tracefs,
};
use crate::{device::PciDevice, kernel::Kernel};

/// The vfio modules `check` reports.
pub const MODULES: &[&str] = &["vfio", "vfio_pci", "vfio_pci_core", "vfio_iommu_type1"];

#[derive(Debug, Clone, Serialize)]
pub struct Module {
    pub name: &'static str,
    pub loaded: bool,
}

/// Something that stops tracing, one sentence each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NoKprobes,
    NoBtf,
    BtfUnreadable(String),
    VfioNotLoaded,
    NoModuleBtf,
    RequiredProbe {
        role: Role,
        reason: String,
    },
    MissingField {
        name: &'static str,
        needed_for: &'static str,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoKprobes => write!(
                f,
                "no kprobe support in this kernel ({KPROBE_PMU} missing: CONFIG_KPROBES is off), so vfio functions cannot be probed"
            ),
            Self::NoBtf => write!(
                f,
                "no kernel BTF ({}): struct offsets cannot be read",
                offsets::VMLINUX_BTF
            ),
            Self::BtfUnreadable(why) => write!(f, "kernel BTF unreadable: {why}"),
            Self::VfioNotLoaded => {
                f.write_str("vfio-pci is not loaded (no /sys/module/vfio_pci_core)")
            }
            Self::NoModuleBtf => {
                f.write_str("no BTF for vfio_pci_core: device offsets cannot be read")
            }
            Self::RequiredProbe { role, reason } => {
                write!(f, "required probe {role} cannot attach: {reason}")
            }
            Self::MissingField { name, needed_for } => {
                write!(f, "BTF lacks {name} (needed for {needed_for})")
            }
        }
    }
}

impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Tracing cannot run here; the problems say why.
#[derive(Debug, thiserror::Error)]
#[error("{}; run `vfio-trace check`", join(.0))]
pub struct NotReady(pub Vec<Problem>);

fn join(problems: &[Problem]) -> String {
    let words: Vec<String> = problems.iter().map(ToString::to_string).collect();
    words.join("; ")
}

/// What the machine offers, and what it lacks.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// Release as the kernel says; generation as its vfio symbols say.
    pub kernel: Kernel,
    pub btf: BtfPresence,
    pub kprobes: bool,
    pub modules: Vec<Module>,
    pub devices: Vec<PciDevice>,
    pub offsets: Vec<Field>,
    /// Offsets and tracepoint field positions for the programs.
    pub config: Config,
    pub probes: Vec<PlannedProbe>,
    pub symbols: Symbols,
    pub problems: Vec<Problem>,
}

impl Preflight {
    pub fn ready(&self) -> bool {
        self.problems.is_empty()
    }

    /// `Ok` exactly when `ready`: the gate every tracing command passes.
    pub fn ensure_ready(&self) -> Result<(), NotReady> {
        if self.ready() {
            Ok(())
        } else {
            Err(NotReady(self.problems.clone()))
        }
    }

    /// Fields whose absence costs something short of every fault.
    pub fn degraded(&self) -> impl Iterator<Item = &Field> {
        self.offsets.iter().filter(|f| f.degraded())
    }
}

/// Reads `host` once: BTF (offsets and functions), tracefs, PMU, sysfs.
pub fn preflight(host: &Host) -> Preflight {
    let mut problems = Vec::new();
    let sysfs = host.sysfs();
    let kprobes = host.kprobes();
    let btf = host.btf().presence();
    // What exists comes from BTF and tracefs, not /proc/kallsyms: reading
    // and parsing kallsyms was most of the time to attach.
    let (names, tracepoints): (Vec<&str>, Vec<&str>) =
        table::symbols().partition(|s| !s.contains(':'));
    let mut config = Config::empty();
    let mut fields = Vec::new();
    let mut found = Vec::new();
    let mut functions_known = false;
    if btf.vmlinux {
        match host.btf().read(&names) {
            Ok(read) => {
                functions_known = true;
                found = names
                    .iter()
                    .zip(read.functions)
                    .filter_map(|(&name, f)| Some((name, f?)))
                    .collect();
                config = read.offsets.config;
                config.fault_flag_user = read.fault_flag_user.unwrap_or(0);
                fields = read.offsets.fields;
            }
            Err(why) => problems.push(Problem::BtfUnreadable(why)),
        }
    }
    let tracepoints = tracepoints.into_iter().filter(|t| {
        t.split_once(':')
            .is_some_and(|(category, name)| host.has_tracepoint(category, name))
    });
    let symbols = Symbols::from_present(found.iter().map(|(n, f)| (*n, f.module)), tracepoints);
    let no_trampolines = preempt::avoid_trampolines(host.preemption());
    let mut probes = plan::plan(&symbols, no_trampolines.as_deref());
    if !kprobes {
        plan::without_kprobes(&mut probes);
    }
    // Trampolines name their function by BTF id.
    for p in probes.iter_mut().filter(|p| p.btf_program.is_some()) {
        p.btf_id = p
            .symbol
            .as_deref()
            .and_then(|s| found.iter().find(|(n, _)| *n == s))
            .map(|(_, f)| f.id);
    }
    let modules: Vec<Module> = MODULES
        .iter()
        .map(|name| Module {
            name,
            loaded: sysfs.module_loaded(name),
        })
        .collect();
    tracepoint_fields(host, &mut config);

    if !kprobes {
        problems.insert(0, Problem::NoKprobes);
    }
    if !btf.vmlinux {
        problems.push(Problem::NoBtf);
    }
    let vfio_loaded = modules
        .iter()
        .any(|m| m.name == "vfio_pci_core" && m.loaded);
    if !vfio_loaded {
        problems.push(Problem::VfioNotLoaded);
    } else if !btf.vfio_pci_core {
        problems.push(Problem::NoModuleBtf);
    }
    // Without BTF no function is known: the BTF problem says it once.
    let missing = probes
        .iter()
        .filter(|p| functions_known && p.required && p.symbol.is_none());
    for p in missing {
        problems.push(Problem::RequiredProbe {
            role: p.role,
            reason: p.reason.clone().unwrap_or_else(|| "absent".into()),
        });
    }
    // Without vfio_pci_core's BTF every device field is missing: said once above.
    if btf.vfio_pci_core {
        for f in fields.iter().filter(|f| f.fatal()) {
            problems.push(Problem::MissingField {
                name: f.name,
                needed_for: f.needed_for,
            });
        }
    }
    Preflight {
        kernel: Kernel {
            release: host.release(),
            generation: table::generation(&symbols),
        },
        btf,
        kprobes,
        modules,
        devices: sysfs.vfio_devices(),
        offsets: fields,
        config,
        probes,
        symbols,
        problems,
    }
}

/// Where the lock tracepoints put their fields on this kernel (the
/// programs' defaults stand where tracefs is not mounted).
fn tracepoint_fields(host: &Host, config: &mut Config) {
    if let Some(format) = host.tracepoint_format("lock", "contention_begin") {
        config.tp_lock_addr =
            tracefs::field_offset(&format, "lock_addr").unwrap_or(config.tp_lock_addr);
        config.tp_flags = tracefs::field_offset(&format, "flags").unwrap_or(config.tp_flags);
    }
    if let Some(format) = host.tracepoint_format("lock", "contention_end") {
        config.tp_ret = tracefs::field_offset(&format, "ret").unwrap_or(config.tp_ret);
    }
}

#[cfg(test)]
#[path = "preflight_tests.rs"]
mod tests;
