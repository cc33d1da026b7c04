//! The machine a preflight reads: sysfs, kernel BTF, kallsyms, tracefs, the
//! kprobe PMU and the preemption model, all found under one root so a test
//! points it at a fixture tree. BTF sits behind `BtfSource`: real BTF is a
//! large binary no test writes by hand, so the fake answers lookups directly.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::Serialize;

use super::{
    KPROBE_PMU,
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

/// What one read of the BTF yields: the offsets, and the BTF type id of each
/// function asked for (in the order asked).
#[derive(Debug, Clone)]
pub struct BtfRead {
    pub offsets: Offsets,
    pub func_ids: Vec<Option<u32>>,
}

/// A function looked up in BTF: its symbol and module (`None`: vmlinux).
pub type BtfFunction<'a> = (&'a str, Option<&'a str>);

/// Where BTF comes from.
pub trait BtfSource {
    fn presence(&self) -> BtfPresence;
    /// Parses what is present once and answers every lookup from it.
    fn read(&self, functions: &[BtfFunction<'_>]) -> Result<BtfRead, String>;
}

/// The kernel's BTF files.
pub struct BtfFiles {
    pub vmlinux: PathBuf,
    pub module: PathBuf,
}

impl BtfSource for BtfFiles {
    fn presence(&self) -> BtfPresence {
        BtfPresence {
            vmlinux: self.vmlinux.exists(),
            vfio_pci_core: self.module.exists(),
        }
    }

    fn read(&self, functions: &[BtfFunction<'_>]) -> Result<BtfRead, String> {
        let read = |path: &Path| fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
        let vmlinux = read(&self.vmlinux)?;
        let module = if self.module.exists() {
            Some(read(&self.module)?)
        } else {
            None
        };
        let mut wanted: Vec<&str> = offsets::structs().collect();
        wanted.extend(functions.iter().map(|&(symbol, _)| symbol));
        let base = Scan::new(&vmlinux, None, &wanted)
            .map_err(|e| format!("{}: {e}", self.vmlinux.display()))?;
        let split = module
            .as_deref()
            .map(|blob| Scan::new(blob, Some(&base), &wanted))
            .transpose()
            .map_err(|e| format!("{}: {e}", self.module.display()))?;
        // The module's structs first; its split BTF falls back to vmlinux's.
        let btf = split.as_ref().unwrap_or(&base);
        let offsets = offsets::from_lookup(|strukt, member| btf.member_offset(strukt, member));
        let func_ids = functions
            .iter()
            .map(|&(symbol, module)| match module {
                None => base.func_id(symbol),
                Some("vfio_pci_core") => split.as_ref().and_then(|s| s.func_id(symbol)),
                Some(_) => None,
            })
            .collect();
        Ok(BtfRead { offsets, func_ids })
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

    pub fn kallsyms(&self) -> io::Result<Symbols> {
        std::fs::read_to_string(self.path("/proc/kallsyms")).map(|t| Symbols::parse(&t))
    }

    /// The kernel release (`uname -r`); empty when unreadable.
    pub fn release(&self) -> String {
        std::fs::read_to_string(self.path("/proc/sys/kernel/osrelease"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }

    /// `events/CATEGORY/NAME/format` from tracefs (or debugfs's copy).
    pub fn tracepoint_format(&self, category: &str, name: &str) -> Option<String> {
        ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .iter()
            .find_map(|tracefs| {
                let file = format!("{tracefs}/events/{category}/{name}/format");
                std::fs::read_to_string(self.path(&file)).ok()
            })
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
