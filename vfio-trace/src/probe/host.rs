//! The machine a preflight reads: sysfs, kernel BTF, tracefs, the kprobe PMU
//! and the preemption model (and kallsyms, when stacks are named), all found
//! under one root so a test
//! points it at a fixture tree. BTF sits behind `BtfSource`: real BTF is a
//! large binary no test writes by hand, so the fake answers lookups directly.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::Serialize;

use super::{
    KPROBE_PMU,
    btf_file::BtfBytes,
    btf_scan::Scan,
    kallsyms::Symbols,
    offsets::{self, Offsets},
    preempt::Preemption,
};
use crate::device::Sysfs;

/// Which BTF the kernel exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BtfPresence {
    pub vmlinux: bool,
    pub vfio_pci_core: bool,
}

/// A function the kernel's BTF has: its type id, and the module whose BTF
/// holds it (`None`: vmlinux).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtfFunction {
    pub id: u32,
    pub module: Option<&'static str>,
}

/// What one read of the BTF yields: the offsets, each function asked for
/// (in the order asked) when the kernel has it, and `FAULT_FLAG_USER`.
#[derive(Debug, Clone)]
pub struct BtfRead {
    pub offsets: Offsets,
    pub functions: Vec<Option<BtfFunction>>,
    pub fault_flag_user: Option<u32>,
}

/// Where BTF comes from.
pub trait BtfSource {
    fn presence(&self) -> BtfPresence;
    /// Parses what is present once and answers every lookup from it:
    /// vmlinux's functions first, then vfio-pci-core's, then type1's.
    fn read(&self, functions: &[&str]) -> Result<BtfRead, String>;
}

/// The enum and member whose value marks a fault a user-mode CPU took.
const FAULT_FLAG: (&str, &str) = ("fault_flag", "FAULT_FLAG_USER");

/// The kernel's BTF files.
pub struct BtfFiles {
    pub vmlinux: PathBuf,
    pub module: PathBuf,
    /// `vfio_iommu_type1`'s, for its functions only.
    pub type1: PathBuf,
}

impl BtfSource for BtfFiles {
    fn presence(&self) -> BtfPresence {
        BtfPresence {
            vmlinux: self.vmlinux.exists(),
            vfio_pci_core: self.module.exists(),
        }
    }

    fn read(&self, functions: &[&str]) -> Result<BtfRead, String> {
        let read = |path: &Path| fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
        let vmlinux = BtfBytes::open(&self.vmlinux)
            .map_err(|e| format!("{}: {e}", self.vmlinux.display()))?;
        let optional = |path: &Path| path.exists().then(|| read(path)).transpose();
        let module = optional(&self.module)?;
        let type1 = optional(&self.type1)?;
        let mut wanted: Vec<&str> = offsets::structs().collect();
        wanted.extend(functions);
        wanted.push(FAULT_FLAG.0);
        let base = Scan::new(&vmlinux, None, &wanted)
            .map_err(|e| format!("{}: {e}", self.vmlinux.display()))?;
        let split = module
            .as_deref()
            .map(|blob| Scan::new(blob, Some(&base), &wanted))
            .transpose()
            .map_err(|e| format!("{}: {e}", self.module.display()))?;
        let type1 = type1
            .as_deref()
            .map(|blob| Scan::new(blob, Some(&base), functions))
            .transpose()
            .map_err(|e| format!("{}: {e}", self.type1.display()))?;
        // The module's structs first; its split BTF falls back to vmlinux's.
        let btf = split.as_ref().unwrap_or(&base);
        let offsets = offsets::from_lookup(|strukt, member| btf.member_offset(strukt, member));
        let functions = functions
            .iter()
            .map(|name| {
                let vmlinux = base
                    .func_id(name)
                    .map(|id| BtfFunction { id, module: None });
                let in_module = |scan: Option<&Scan>, module| {
                    let id = scan?.func_id(name)?;
                    Some(BtfFunction {
                        id,
                        module: Some(module),
                    })
                };
                vmlinux
                    .or_else(|| in_module(split.as_ref(), "vfio_pci_core"))
                    .or_else(|| in_module(type1.as_ref(), "vfio_iommu_type1"))
            })
            .collect();
        Ok(BtfRead {
            offsets,
            functions,
            fault_flag_user: base.enum_value(FAULT_FLAG.0, FAULT_FLAG.1),
        })
    }
}

/// The machine to trace, rooted at `/` unless a test says otherwise.
pub struct Host {
    root: PathBuf,
    btf: Box<dyn BtfSource>,
}

impl Host {
    /// This machine.
    pub fn current() -> Self {
        Self::new("/")
    }

    /// A machine whose `/sys` and `/proc` are under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let btf = Box::new(BtfFiles {
            vmlinux: at(&root, offsets::VMLINUX_BTF),
            module: at(&root, offsets::VFIO_PCI_CORE_BTF),
            type1: at(&root, offsets::VFIO_IOMMU_TYPE1_BTF),
        });
        Self { root, btf }
    }

    /// The same machine with BTF from elsewhere.
    #[must_use]
    pub fn with_btf(mut self, btf: Box<dyn BtfSource>) -> Self {
        self.btf = btf;
        self
    }

    fn path(&self, absolute: &str) -> PathBuf {
        at(&self.root, absolute)
    }

    pub fn sysfs(&self) -> Sysfs {
        Sysfs::new(self.path("/sys"))
    }

    pub fn btf(&self) -> &dyn BtfSource {
        self.btf.as_ref()
    }

    /// The perf kprobe PMU exists only on kernels that can kprobe.
    pub fn kprobes(&self) -> bool {
        self.path(KPROBE_PMU).exists()
    }

    /// Function names and addresses, to name stack frames. Slow to read and
    /// parse (most of a second in an emulated guest): read when a stack needs
    /// naming, never at start-up.
    pub fn kallsyms(&self) -> io::Result<Symbols> {
        std::fs::read_to_string(self.path("/proc/kallsyms")).map(|t| Symbols::parse(&t))
    }

    /// The kernel release (`uname -r`); empty when unreadable.
    pub fn release(&self) -> String {
        std::fs::read_to_string(self.path("/proc/sys/kernel/osrelease"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }

    /// `events/CATEGORY/NAME` in tracefs and in debugfs's copy, in that order.
    fn tracepoint_dirs(&self, category: &str, name: &str) -> impl Iterator<Item = PathBuf> {
        ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .map(|tracefs| self.path(&format!("{tracefs}/events/{category}/{name}")))
            .into_iter()
    }

    /// Whether tracefs has the tracepoint `CATEGORY:NAME` (a tracepoint
    /// program attaches by its id there).
    pub fn has_tracepoint(&self, category: &str, name: &str) -> bool {
        self.tracepoint_dirs(category, name).any(|d| d.is_dir())
    }

    /// `events/CATEGORY/NAME/format` from tracefs (or debugfs's copy).
    pub fn tracepoint_format(&self, category: &str, name: &str) -> Option<String> {
        self.tracepoint_dirs(category, name)
            .find_map(|d| std::fs::read_to_string(d.join("format")).ok())
    }

    /// The dynamic setting where debugfs shows it, else the build's.
    pub fn preemption(&self) -> Option<Preemption> {
        std::fs::read_to_string(self.path("/sys/kernel/debug/sched/preempt"))
            .ok()
            .and_then(|s| Preemption::from_dynamic(&s))
            .or_else(|| {
                std::fs::read_to_string(self.path("/proc/sys/kernel/version"))
                    .ok()
                    .map(|v| Preemption::from_version(&v))
            })
    }
}

fn at(root: &Path, absolute: &str) -> PathBuf {
    root.join(absolute.trim_start_matches('/'))
}

#[cfg(test)]
#[path = "host_fake.rs"]
pub mod fake;
