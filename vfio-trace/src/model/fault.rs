//! A fault as the model sees it: decoded from the kernel event, with its BAR
//! and page inside the BAR resolved.

use serde::{Deserialize, Serialize};
use vfio_trace_common::{FaultEvent, UNKNOWN_DEVICE, vm_fault};

use crate::{device::Bdf, kernel::Generation};

/// Where a fault came from, as the kernel's call path says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A task touching the mapping.
    Cpu,
    /// `vfio_iommu_type1` pinning the pages of a DMA map (a VMM mapping the BAR).
    DmaMap,
    /// Another kernel path.
    Other,
}

impl Origin {
    pub const ALL: [Origin; 3] = [Self::Cpu, Self::DmaMap, Self::Other];

    pub fn from_event(origin: u32) -> Self {
        match origin {
            vfio_trace_common::origin::CPU => Self::Cpu,
            vfio_trace_common::origin::DMA_MAP => Self::DmaMap,
            _ => Self::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::DmaMap => "dma_map",
            Self::Other => "other",
        }
    }

    /// Position in [`Origin::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::Cpu => 0,
            Self::DmaMap => 1,
            Self::Other => 2,
        }
    }
}

/// What the fault handler returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Mapped (`VM_FAULT_NOPAGE`).
    Nopage,
    /// The huge size could not be used; the kernel retries smaller.
    Fallback,
    /// Memory decode off or outside the BAR.
    Sigbus,
    Oom,
    Other,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Self::Nopage,
        Self::Fallback,
        Self::Sigbus,
        Self::Oom,
        Self::Other,
    ];

    pub fn from_vm_fault(ret: u32) -> Self {
        if ret & vm_fault::SIGBUS != 0 {
            Self::Sigbus
        } else if ret & vm_fault::OOM != 0 {
            Self::Oom
        } else if ret & vm_fault::FALLBACK != 0 {
            Self::Fallback
        } else if ret & vm_fault::NOPAGE != 0 {
            Self::Nopage
        } else {
            Self::Other
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Nopage => "nopage",
            Self::Fallback => "fallback",
            Self::Sigbus => "sigbus",
            Self::Oom => "oom",
            Self::Other => "other",
        }
    }
}

/// Where in a device a fault landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// BAR index; `None` when it could not be resolved.
    pub bar: Option<u32>,
    /// 4 KiB page inside the BAR.
    pub page: u64,
}

/// vfio region offsets are `index << VFIO_PCI_OFFSET_SHIFT` (40) bytes, so in
/// pages the index starts at bit 28.
const REGION_PAGE_SHIFT: u32 = 40 - 12;

/// Resolves BAR and page. From 6.10 `vm_pgoff` is the region offset; before it
/// is the physical pfn of the mapping, matched against the BARs' addresses.
pub fn locate(
    generation: Generation,
    vma_pgoff: u64,
    page_in_vma: u64,
    bars: &[(u32, u64, u64)],
) -> Location {
    if generation.pgoff_is_region_offset() {
        let index = u32::try_from(vma_pgoff >> REGION_PAGE_SHIFT).ok();
        let offset = vma_pgoff & ((1 << REGION_PAGE_SHIFT) - 1);
        return Location {
            bar: index.filter(|i| *i < 6),
            page: offset + page_in_vma,
        };
    }
    let pfn = vma_pgoff + page_in_vma;
    bars.iter()
        .find(|(_, start, size)| {
            let first = start >> 12;
            pfn >= first && pfn < first + (size >> 12)
        })
        .map_or(
            Location {
                bar: None,
                page: pfn,
            },
            |(index, start, _)| Location {
                bar: Some(*index),
                page: pfn - (start >> 12),
            },
        )
}

/// One fault handler invocation, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub device: Option<Bdf>,
    pub vma_pgoff: u64,
    pub page_in_vma: u64,
    /// `vm_start` of the mapping (0: not read) and its size in pages (0: unknown).
    pub vma_start: u64,
    pub vma_pages: u32,
    pub order: u32,
    pub outcome: Outcome,
    pub origin: Origin,
    pub latency_ns: u64,
    /// When the handler returned (`bpf_ktime_get_ns`).
    pub end_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub inserts_pte: u32,
    pub inserts_pmd: u32,
    pub inserts_pud: u32,
    pub remaps: u32,
    pub remap_pages: u64,
}

/// A task name from its NUL-padded bytes.
pub fn comm(bytes: &[u8]) -> String {
    let len = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..len]).into_owned()
}

impl From<&FaultEvent> for Fault {
    fn from(e: &FaultEvent) -> Self {
        Self {
            device: (e.device != UNKNOWN_DEVICE).then(|| Bdf::from_key(e.device)),
            vma_pgoff: e.vma_pgoff,
            page_in_vma: e.page_in_vma,
            vma_start: e.vma_start,
            vma_pages: e.vma_pages,
            order: e.order,
            outcome: Outcome::from_vm_fault(e.result),
            origin: Origin::from_event(e.origin),
            latency_ns: e.latency_ns,
            end_ns: e.start_ns + e.latency_ns,
            pid: e.pid,
            tid: e.tid,
            inserts_pte: e.inserts_pte,
            inserts_pmd: e.inserts_pmd,
            inserts_pud: e.inserts_pud,
            remaps: e.remaps,
            remap_pages: e.remap_pages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_vm_fault_bits() {
        assert_eq!(Outcome::from_vm_fault(0x100), Outcome::Nopage);
        assert_eq!(Outcome::from_vm_fault(0x800), Outcome::Fallback);
        assert_eq!(Outcome::from_vm_fault(0x2), Outcome::Sigbus);
        assert_eq!(Outcome::from_vm_fault(0x1), Outcome::Oom);
        assert_eq!(Outcome::from_vm_fault(0), Outcome::Other);
    }

    #[test]
    fn region_offsets_give_bar_and_page_from_6_10() {
        // BAR 2 at region offset 0x20000000 pages, 5 pages into the mapping,
        // which itself starts 16 pages into the BAR.
        let loc = locate(Generation::HugeFault, (2 << 28) + 16, 5, &[]);
        assert_eq!(
            loc,
            Location {
                bar: Some(2),
                page: 21
            }
        );
    }

    #[test]
    fn physical_pfns_are_matched_to_bars_before_6_10() {
        let bars = [(0, 0xfea0_0000, 0x100), (2, 0x8_0000_0000, 1 << 30)];
        let loc = locate(Generation::Remap, 0x8_0000_0000 >> 12, 7, &bars);
        assert_eq!(
            loc,
            Location {
                bar: Some(2),
                page: 7
            }
        );
        assert_eq!(locate(Generation::Remap, 0x1234, 0, &bars).bar, None);
    }

    #[test]
    fn decodes_comm_and_unknown_devices() {
        assert_eq!(comm(b"qemu\0\0\0"), "qemu");
        let mut e = FaultEvent::zeroed();
        e.result = 0x100;
        let f = Fault::from(&e);
        assert_eq!(f.device, None);
        e.device = 0x0100;
        assert_eq!(
            Fault::from(&e).device.map(|b| b.to_string()).as_deref(),
            Some("0000:01:00.0")
        );
    }
}
