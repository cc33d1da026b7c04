//! A fake machine for tests: a fixture tree of `/sys` and `/proc` in a
//! temporary directory, and BTF that answers lookups without a BTF file.
//! A fixture lists the kernel's functions as kallsyms would; its BTF then
//! has those functions, and its tracefs those tracepoints.

use super::{BtfFunction, BtfPresence, BtfRead, BtfSource, Host};
use crate::probe::offsets;

/// BTF as a test wants it: which objects exist, whether they parse, and
/// which `struct.member` fields they lack.
#[derive(Debug, Clone)]
pub struct FakeBtf {
    pub presence: BtfPresence,
    pub unreadable: bool,
    pub missing: Vec<&'static str>,
    /// Functions it has, with their module; filled from `FakeHost::symbols`.
    pub functions: Vec<(String, Option<String>)>,
}

impl BtfSource for FakeBtf {
    fn presence(&self) -> BtfPresence {
        self.presence
    }

    fn read(&self, functions: &[&str]) -> Result<BtfRead, String> {
        if self.unreadable {
            return Err("/sys/kernel/btf/vmlinux: bad magic".into());
        }
        let module = self.presence.vfio_pci_core;
        let offsets = offsets::from_lookup(|strukt, member| {
            let name = format!("{strukt}.{member}");
            let in_module = strukt.starts_with("vfio_pci_core");
            (!self.missing.contains(&name.as_str()) && (module || !in_module)).then_some(8)
        });
        let found = |name: &str| {
            let at = self.functions.iter().position(|(f, _)| f == name)?;
            let module = match self.functions[at].1.as_deref() {
                None => None,
                Some("vfio_pci_core") if module => Some("vfio_pci_core"),
                Some("vfio_iommu_type1") => Some("vfio_iommu_type1"),
                Some(_) => return None,
            };
            let id = 1000 + u32::try_from(at).ok()?;
            Some(BtfFunction { id, module })
        };
        let functions = functions.iter().map(|name| found(name)).collect();
        Ok(BtfRead {
            offsets,
            functions,
            fault_flag_user: Some(1 << 6),
        })
    }
}

/// What the fixture tree holds.
#[derive(Debug, Clone)]
pub struct FakeHost {
    pub kprobes: bool,
    pub vfio_loaded: bool,
    /// The kernel's symbols in kallsyms' form: functions go to the BTF,
    /// `__tracepoint_NAME` to tracefs (as `lock:NAME`), and the text to
    /// `/proc/kallsyms`. `None`: no kallsyms, no functions.
    pub symbols: Option<String>,
    pub release: &'static str,
    /// `/proc/sys/kernel/version`, which gives the preemption model.
    pub version: &'static str,
    /// `lock:contention_begin`'s format in tracefs, if mounted.
    pub lock_begin_format: Option<&'static str>,
    pub btf: FakeBtf,
}

/// A 6.12 guest's vfio-related symbols.
pub const SYMBOLS_6_12: &str = "\
ffffffff81000000 T vmf_insert_pfn
ffffffff81000100 T vmf_insert_pfn_pmd
ffffffff81000200 T vmf_insert_pfn_pud
ffffffff81000300 T remap_pfn_range
ffffffff81000400 T unmap_mapping_range
ffffffff81000500 T zap_page_range_single
ffffffff82000000 D __tracepoint_contention_begin
ffffffff82000100 D __tracepoint_contention_end
ffffffffc0001000 t vfio_pci_mmap_huge_fault\t[vfio_pci_core]
ffffffffc0001100 t vfio_pci_mmap_page_fault\t[vfio_pci_core]
ffffffffc0001200 t vfio_pci_core_mmap\t[vfio_pci_core]
ffffffffc0001300 t vfio_basic_config_write\t[vfio_pci_core]
ffffffffc0001400 t vfio_pci_core_ioctl\t[vfio_pci_core]
ffffffffc0002000 t vfio_pin_pages_remote\t[vfio_iommu_type1]
";

/// `lock_addr` at 24, where no default would put it.
pub const LOCK_BEGIN_FORMAT: &str = "name: contention_begin\nformat:\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\tfield:void * lock_addr;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:unsigned int flags;\toffset:32;\tsize:4;\tsigned:0;\n";

impl FakeHost {
    /// A 6.12 guest where everything is in place.
    pub fn good() -> Self {
        Self {
            kprobes: true,
            vfio_loaded: true,
            symbols: Some(SYMBOLS_6_12.into()),
            release: "6.12.117+deb12-amd64",
            version: "#1 SMP Debian 6.12.117-1",
            lock_begin_format: Some(LOCK_BEGIN_FORMAT),
            btf: FakeBtf {
                presence: BtfPresence {
                    vmlinux: true,
                    vfio_pci_core: true,
                },
                unreadable: false,
                missing: Vec::new(),
                functions: Vec::new(),
            },
        }
    }

    /// Writes the tree; the host reads it while the directory lives.
    ///
    /// # Panics
    /// When the temporary directory cannot be made or written.
    pub fn build(mut self) -> (tempfile::TempDir, Host) {
        let root = tempfile::tempdir().expect("tempdir");
        let write = |path: &str, text: &str| {
            let file = root.path().join(path);
            std::fs::create_dir_all(file.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(file, text).expect("write");
        };
        if self.kprobes {
            write("sys/bus/event_source/devices/kprobe/type", "6\n");
        }
        if self.vfio_loaded {
            for module in ["vfio", "vfio_pci", "vfio_pci_core", "vfio_iommu_type1"] {
                write(&format!("sys/module/{module}/refcnt"), "0\n");
            }
        }
        if let Some(text) = &self.symbols {
            write("proc/kallsyms", text);
            for line in text.lines() {
                let mut parts = line.split_whitespace();
                let (Some(_), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                if let Some(tp) = name.strip_prefix("__tracepoint_") {
                    write(&format!("sys/kernel/tracing/events/lock/{tp}/id"), "1\n");
                } else if kind.eq_ignore_ascii_case("t") {
                    let module = parts.next().map(|m| m.trim_matches(['[', ']']).to_owned());
                    self.btf.functions.push((name.to_owned(), module));
                }
            }
        }
        write("proc/sys/kernel/osrelease", &format!("{}\n", self.release));
        write("proc/sys/kernel/version", &format!("{}\n", self.version));
        if let Some(format) = self.lock_begin_format {
            write(
                "sys/kernel/tracing/events/lock/contention_begin/format",
                format,
            );
        }
        let host = Host::new(root.path()).with_btf(Box::new(self.btf));
        (root, host)
    }
}

impl Host {
    /// A fixture host (see `FakeHost`).
    pub fn fake(spec: FakeHost) -> (tempfile::TempDir, Self) {
        spec.build()
    }
}
