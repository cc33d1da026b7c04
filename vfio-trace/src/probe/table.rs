//! The probe table: for each role, the kernel symbols that can fill it, best
//! first, and the program that handles each. Which row wins is decided by the
//! symbols present, never by a version number.

use super::{
    kallsyms::Symbols,
    role::{Kind, Role},
};
use crate::kernel::Generation;

/// A kernel symbol that can fill a role, and the program that handles it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub symbol: &'static str,
    pub program: &'static str,
    /// The fentry/fexit program tried before `program`, where there is one.
    pub btf_program: Option<&'static str>,
}

const fn c(symbol: &'static str, program: &'static str) -> Candidate {
    Candidate {
        symbol,
        program,
        btf_program: None,
    }
}

/// A candidate with a trampoline program tried first: one dispatch per fault
/// costs several times less than a kprobe's breakpoint or a kretprobe's
/// return hijack.
const fn t(symbol: &'static str, program: &'static str, btf_program: &'static str) -> Candidate {
    Candidate {
        symbol,
        program,
        btf_program: Some(btf_program),
    }
}

/// One row of the table: a role and its candidates, best first.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub role: Role,
    pub kind: Kind,
    pub candidates: &'static [Candidate],
    /// Why a kernel may lack every candidate, shown as the absence reason.
    pub absent_because: &'static str,
}

/// The fault handler: `huge_fault(vmf, order)` from 6.12, else the 4 KiB-only
/// handler. The 6.12+ order-0 wrapper `vfio_pci_mmap_page_fault` is left out on
/// purpose: it calls `huge_fault`, so probing both would count a fault twice.
const FAULT_ENTRY: &[Candidate] = &[
    t(
        "vfio_pci_mmap_huge_fault",
        "fault_entry",
        "fault_fentry_huge",
    ),
    t("vfio_pci_mmap_fault", "fault_entry", "fault_fentry"),
];
const FAULT_RETURN: &[Candidate] = &[
    t(
        "vfio_pci_mmap_huge_fault",
        "fault_return",
        "fault_fexit_huge",
    ),
    t("vfio_pci_mmap_fault", "fault_return", "fault_fexit"),
];
/// Zaps: before 6.10 vfio zaps VMA by VMA under its own function; from 6.10 it
/// calls `unmap_mapping_range` on the device's address space. The vfio function
/// goes first: 6.1 has `unmap_mapping_range` too, but vfio does not use it there.
const ZAP_ENTRY: &[Candidate] = &[
    c("vfio_pci_zap_and_vma_lock", "zap_vdev_entry"),
    c("unmap_mapping_range", "zap_mapping_entry"),
];
const ZAP_RETURN: &[Candidate] = &[
    c("vfio_pci_zap_and_vma_lock", "zap_return"),
    c("unmap_mapping_range", "zap_return"),
];

pub const ROWS: &[Row] = &[
    Row {
        role: Role::FaultEntry,
        kind: Kind::Kprobe,
        candidates: FAULT_ENTRY,
        absent_because: "vfio-pci is not loaded, or its fault handler is unknown to this version",
    },
    Row {
        role: Role::FaultReturn,
        kind: Kind::Kretprobe,
        candidates: FAULT_RETURN,
        absent_because: "vfio-pci is not loaded, or its fault handler is unknown to this version",
    },
    Row {
        role: Role::InsertPte,
        kind: Kind::Kprobe,
        candidates: &[c("vmf_insert_pfn", "insert_pte")],
        absent_because: "no vmf_insert_pfn in this kernel",
    },
    Row {
        role: Role::InsertPmd,
        kind: Kind::Kprobe,
        candidates: &[
            c("vmf_insert_pfn_pmd", "insert_pmd"),
            c("vmf_insert_pfn_pmd_prot", "insert_pmd"),
        ],
        absent_because: "no PMD pfn insert in this kernel",
    },
    Row {
        role: Role::InsertPud,
        kind: Kind::Kprobe,
        candidates: &[
            c("vmf_insert_pfn_pud", "insert_pud"),
            c("vmf_insert_pfn_pud_prot", "insert_pud"),
        ],
        absent_because: "no PUD pfn insert in this kernel (CONFIG_HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD off?)",
    },
    Row {
        role: Role::Remap,
        kind: Kind::Kprobe,
        candidates: &[c("remap_pfn_range", "remap")],
        absent_because: "no remap_pfn_range symbol",
    },
    Row {
        role: Role::Mmap,
        kind: Kind::Kprobe,
        candidates: &[c("vfio_pci_core_mmap", "mmap_entry")],
        absent_because: "vfio-pci is not loaded",
    },
    Row {
        role: Role::ZapEntry,
        kind: Kind::Kprobe,
        candidates: ZAP_ENTRY,
        absent_because: "no known zap function",
    },
    Row {
        role: Role::ZapReturn,
        kind: Kind::Kretprobe,
        candidates: ZAP_RETURN,
        absent_because: "no known zap function",
    },
    Row {
        role: Role::ZapRange,
        kind: Kind::Kprobe,
        candidates: &[
            // 6.18 also has zap_page_range_single_batched, but unmap_mapping_range
            // goes through the plain one there; 7.x renamed the batched one and
            // calls it directly.
            c("zap_page_range_single", "zap_range"),
            c("zap_vma_range_batched", "zap_range_batched"),
        ],
        absent_because: "no known per-VMA zap function: zapped pages read 0",
    },
    Row {
        role: Role::HoldConfig,
        kind: Kind::Kretprobe,
        candidates: &[c("vfio_basic_config_write", "hold_end")],
        absent_because: "vfio-pci is not loaded: no write hold time for decode-off zaps",
    },
    Row {
        role: Role::HoldIoctl,
        kind: Kind::Kretprobe,
        candidates: &[c("vfio_pci_core_ioctl", "hold_end")],
        absent_because: "vfio-pci is not loaded: no write hold time for reset zaps",
    },
    // The entries scope a hold: one left by a zap made elsewhere on the
    // thread is dropped, not closed by the next config write or ioctl. The
    // config write's entry also sees memory decode written back on.
    Row {
        role: Role::HoldConfigEntry,
        kind: Kind::Kprobe,
        candidates: &[c("vfio_basic_config_write", "config_write_entry")],
        absent_because: "vfio-pci is not loaded: no write hold time for decode-off zaps, no decode-on",
    },
    Row {
        role: Role::HoldIoctlEntry,
        kind: Kind::Kprobe,
        candidates: &[c("vfio_pci_core_ioctl", "hold_begin")],
        absent_because: "vfio-pci is not loaded: no write hold time for reset zaps",
    },
    Row {
        role: Role::LockBegin,
        kind: Kind::Tracepoint,
        candidates: &[c("lock:contention_begin", "lock_begin")],
        absent_because: "no lock:contention_begin tracepoint (before 5.19)",
    },
    Row {
        role: Role::LockEnd,
        kind: Kind::Tracepoint,
        candidates: &[c("lock:contention_end", "lock_end")],
        absent_because: "no lock:contention_end tracepoint (before 5.19)",
    },
    // type1 pins a DMA map's pages here, faulting BAR pages in: faults in
    // between are the DMA map's, not a CPU's.
    Row {
        role: Role::PinEntry,
        kind: Kind::Kprobe,
        candidates: &[c("vfio_pin_pages_remote", "pin_entry")],
        absent_because: "vfio_iommu_type1 is not loaded: no fault reads as a DMA map's",
    },
    Row {
        role: Role::PinReturn,
        kind: Kind::Kretprobe,
        candidates: &[c("vfio_pin_pages_remote", "pin_return")],
        absent_because: "vfio_iommu_type1 is not loaded: no fault reads as a DMA map's",
    },
    // Each VFIO_IOMMU_MAP_DMA, timed whole; every other command of the
    // container ioctl returns at the programs' first compare.
    Row {
        role: Role::DmaEntry,
        kind: Kind::Kprobe,
        candidates: &[c("vfio_iommu_type1_ioctl", "dma_entry")],
        absent_because: "vfio_iommu_type1 is not loaded: DMA maps are not timed",
    },
    Row {
        role: Role::DmaReturn,
        kind: Kind::Kretprobe,
        candidates: &[c("vfio_iommu_type1_ioctl", "dma_return")],
        absent_because: "vfio_iommu_type1 is not loaded: DMA maps are not timed",
    },
    Row {
        role: Role::PfnLookup,
        kind: Kind::Kprobe,
        candidates: &[c("vaddr_get_pfns", "pfn_lookup")],
        absent_because: "DMA maps' pfn lookups read 0",
    },
    // From 6.19 vfio-pci exports BARs as dma-bufs, revoked beside each zap
    // and restored when memory decode is back on.
    Row {
        role: Role::DmaBufEntry,
        kind: Kind::Kprobe,
        candidates: &[c("vfio_pci_dma_buf_move", "dma_buf_entry")],
        absent_because: "vfio-pci exports no dma-buf (before 6.19)",
    },
    Row {
        role: Role::DmaBufReturn,
        kind: Kind::Kretprobe,
        candidates: &[c("vfio_pci_dma_buf_move", "dma_buf_return")],
        absent_because: "vfio-pci exports no dma-buf (before 6.19)",
    },
];

/// The table's row for `role`.
pub fn row(role: Role) -> Option<&'static Row> {
    ROWS.iter().find(|r| r.role == role)
}

/// Every symbol the table names, each once: functions, and tracepoints as
/// `category:name`.
pub fn symbols() -> impl Iterator<Item = &'static str> {
    let mut seen: Vec<&'static str> = Vec::new();
    ROWS.iter()
        .flat_map(|r| r.candidates)
        .map(|c| c.symbol)
        .filter(move |s| {
            let new = !seen.contains(s);
            seen.push(s);
            new
        })
}

/// A program of the table or of the floor plan by name, as they spell it.
pub fn program(name: &str) -> Option<&'static str> {
    ROWS.iter()
        .flat_map(|r| r.candidates)
        .flat_map(|c| [Some(c.program), c.btf_program])
        .flatten()
        .chain(super::floor::PROGRAMS)
        .find(|p| *p == name)
}

/// The fault handler that makes each generation, checked newest first: the
/// symbols tell what vfio-pci does on this kernel, whatever its version says
/// (distributions backport). `None` while vfio-pci is not loaded.
pub fn generation(symbols: &Symbols) -> Option<Generation> {
    if symbols.contains("vfio_pci_mmap_huge_fault") {
        Some(Generation::HugeFault)
    } else if symbols.contains("vfio_pci_zap_and_vma_lock") {
        // Gone in 6.10 with the per-device address space.
        Some(Generation::Remap)
    } else if symbols.contains("vfio_pci_mmap_fault") {
        Some(Generation::PerPage)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn every_role_has_one_row() {
        for role in Role::ALL {
            assert_eq!(ROWS.iter().filter(|r| r.role == role).count(), 1, "{role}");
        }
    }

    #[test]
    fn the_generation_follows_the_handler() {
        let g = |names: &[&str]| {
            let text = names.iter().fold(String::new(), |mut text, n| {
                let _ = writeln!(text, "ffffffffc0000000 t {n}\t[vfio_pci_core]");
                text
            });
            generation(&Symbols::parse(&text))
        };
        assert_eq!(
            g(&["vfio_pci_mmap_fault", "vfio_pci_zap_and_vma_lock"]),
            Some(Generation::Remap)
        );
        assert_eq!(g(&["vfio_pci_mmap_fault"]), Some(Generation::PerPage));
        assert_eq!(
            g(&["vfio_pci_mmap_huge_fault", "vfio_pci_mmap_page_fault"]),
            Some(Generation::HugeFault)
        );
        assert_eq!(g(&["vmf_insert_pfn"]), None);
    }
}
