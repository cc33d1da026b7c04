//! Who a probe is, typed: its role, the stage it belongs to (which fixes the
//! attach and detach order), what it is needed for (which fixes whether its
//! absence stops tracing) and how it attaches. Behaviour never depends on a
//! probe's name.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A probe's role; its `snake_case` name is what `check`, the JSON and metrics show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    FaultEntry,
    FaultReturn,
    InsertPte,
    InsertPmd,
    InsertPud,
    Remap,
    Mmap,
    ZapEntry,
    ZapReturn,
    ZapRange,
    HoldConfig,
    HoldIoctl,
    HoldConfigEntry,
    HoldIoctlEntry,
    LockBegin,
    LockEnd,
    PinEntry,
    PinReturn,
    DmaEntry,
    DmaReturn,
    PfnLookup,
    DmaBufEntry,
    DmaBufReturn,
}

/// Where a probe sits in an event's life. Attach runs `ATTACH_ORDER`, detach
/// runs it backwards: an event that starts is always seen to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Runs between an entry and its return (inserts, zapped ranges), or
    /// stands alone (mmap, hold ends).
    Inner,
    /// Closes what an entry opened.
    Return,
    /// Opens an event.
    Entry,
}

impl Stage {
    pub const ATTACH_ORDER: [Self; 3] = [Self::Inner, Self::Return, Self::Entry];
}

/// What a probe or a BTF field serves. Only `EveryFault` is indispensable:
/// without it nothing is traced; the rest is reported missing and tracing runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    /// Seeing, placing and timing every fault.
    EveryFault,
    /// Page-table inserts and remaps during faults.
    Inserts,
    /// New mappings of a device.
    Mappings,
    /// Zaps, their causes and the write holds around them.
    Zaps,
    /// Waits for `memory_lock`.
    LockWaits,
    /// Where each fault came from: a DMA map, a CPU, another kernel path.
    Origins,
    /// Each DMA map of a BAR: its duration, faults and pfn lookups.
    DmaMaps,
    /// dma-buf revokes beside zaps and restores at decode on (6.19+).
    DmaBuf,
}

impl Need {
    /// Tracing cannot run without what serves this need.
    pub fn is_required(self) -> bool {
        self == Self::EveryFault
    }
}

impl Role {
    pub const ALL: [Self; 23] = [
        Self::FaultEntry,
        Self::FaultReturn,
        Self::InsertPte,
        Self::InsertPmd,
        Self::InsertPud,
        Self::Remap,
        Self::Mmap,
        Self::ZapEntry,
        Self::ZapReturn,
        Self::ZapRange,
        Self::HoldConfig,
        Self::HoldIoctl,
        Self::HoldConfigEntry,
        Self::HoldIoctlEntry,
        Self::LockBegin,
        Self::LockEnd,
        Self::PinEntry,
        Self::PinReturn,
        Self::DmaEntry,
        Self::DmaReturn,
        Self::PfnLookup,
        Self::DmaBufEntry,
        Self::DmaBufReturn,
    ];

    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::FaultEntry => "fault_entry",
            Self::FaultReturn => "fault_return",
            Self::InsertPte => "insert_pte",
            Self::InsertPmd => "insert_pmd",
            Self::InsertPud => "insert_pud",
            Self::Remap => "remap",
            Self::Mmap => "mmap",
            Self::ZapEntry => "zap_entry",
            Self::ZapReturn => "zap_return",
            Self::ZapRange => "zap_range",
            Self::HoldConfig => "hold_config",
            Self::HoldIoctl => "hold_ioctl",
            Self::HoldConfigEntry => "hold_config_entry",
            Self::HoldIoctlEntry => "hold_ioctl_entry",
            Self::LockBegin => "lock_begin",
            Self::LockEnd => "lock_end",
            Self::PinEntry => "pin_entry",
            Self::PinReturn => "pin_return",
            Self::DmaEntry => "dma_entry",
            Self::DmaReturn => "dma_return",
            Self::PfnLookup => "pfn_lookup",
            Self::DmaBufEntry => "dma_buf_entry",
            Self::DmaBufReturn => "dma_buf_return",
        }
    }

    pub fn stage(self) -> Stage {
        match self {
            Self::FaultEntry
            | Self::ZapEntry
            | Self::LockBegin
            | Self::HoldConfigEntry
            | Self::HoldIoctlEntry
            | Self::PinEntry
            | Self::DmaEntry
            | Self::DmaBufEntry => Stage::Entry,
            Self::FaultReturn
            | Self::ZapReturn
            | Self::LockEnd
            | Self::PinReturn
            | Self::DmaReturn
            | Self::DmaBufReturn => Stage::Return,
            Self::InsertPte
            | Self::InsertPmd
            | Self::InsertPud
            | Self::Remap
            | Self::Mmap
            | Self::ZapRange
            | Self::HoldConfig
            | Self::HoldIoctl
            | Self::PfnLookup => Stage::Inner,
        }
    }

    pub fn need(self) -> Need {
        match self {
            Self::FaultEntry | Self::FaultReturn => Need::EveryFault,
            Self::InsertPte | Self::InsertPmd | Self::InsertPud | Self::Remap => Need::Inserts,
            Self::Mmap => Need::Mappings,
            Self::ZapEntry
            | Self::ZapReturn
            | Self::ZapRange
            | Self::HoldConfig
            | Self::HoldIoctl
            | Self::HoldConfigEntry
            | Self::HoldIoctlEntry => Need::Zaps,
            Self::LockBegin | Self::LockEnd => Need::LockWaits,
            Self::PinEntry | Self::PinReturn => Need::Origins,
            Self::DmaEntry | Self::DmaReturn | Self::PfnLookup => Need::DmaMaps,
            Self::DmaBufEntry | Self::DmaBufReturn => Need::DmaBuf,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a program attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Kprobe,
    Kretprobe,
    /// `symbol` is `category:name`.
    Tracepoint,
    /// A BPF trampoline at entry; falls back to a kprobe where the kernel refuses it.
    Fentry,
    /// A BPF trampoline at return; falls back to a kretprobe.
    Fexit,
}

impl Kind {
    /// The kprobe that stands in for a trampoline.
    #[must_use]
    pub fn without_trampoline(self) -> Self {
        match self {
            Self::Fentry => Self::Kprobe,
            Self::Fexit => Self::Kretprobe,
            other => other,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kprobe => "kprobe",
            Self::Kretprobe => "kretprobe",
            Self::Tracepoint => "tracepoint",
            Self::Fentry => "fentry",
            Self::Fexit => "fexit",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_serde_writes() {
        for role in Role::ALL {
            let json = serde_json::to_value(role).expect("serializes");
            assert_eq!(json, role.name());
            let back: Role = serde_json::from_value(json).expect("reads back");
            assert_eq!(back, role);
        }
    }

    #[test]
    fn only_the_fault_handler_is_required() {
        let required: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| r.need().is_required())
            .collect();
        assert_eq!(required, [Role::FaultEntry, Role::FaultReturn]);
    }
}
