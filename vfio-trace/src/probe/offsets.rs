//! Struct field offsets from the running kernel's BTF (vmlinux plus the split
//! BTF of `vfio_pci_core`), handed to the programs in `Config`. Layouts really
//! differ per kernel (`vm_area_struct` moved by 40 bytes between 6.12 and 7.3),
//! so nothing here is hard-coded.

use serde::{Deserialize, Serialize};
use vfio_trace_common::{Config, MISSING};

use super::role::Need;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
pub const VFIO_PCI_CORE_BTF: &str = "/sys/kernel/btf/vfio_pci_core";
pub const VFIO_IOMMU_TYPE1_BTF: &str = "/sys/kernel/btf/vfio_iommu_type1";

/// One field the programs read, and where it was found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Field {
    /// `struct.member`
    pub name: &'static str,
    /// Byte offset; `None` when this kernel's BTF lacks it.
    pub offset: Option<u32>,
    /// What stops working without it.
    pub needed_for: &'static str,
    /// The same, typed: whether tracing can run without it.
    #[serde(skip)]
    pub need: Need,
    /// Some fields exist only on some architectures; their absence is expected.
    pub optional: bool,
}

/// A field as a recording holds it; read back against this build's table,
/// since names and needs are the table's own.
#[derive(Deserialize)]
struct FieldRecord {
    name: String,
    offset: Option<u32>,
    optional: bool,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::try_from(FieldRecord::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<FieldRecord> for Field {
    type Error = String;

    fn try_from(r: FieldRecord) -> Result<Self, String> {
        let want = WANTS
            .iter()
            .find(|w| w.name == r.name)
            .ok_or_else(|| format!("unknown BTF field {}", r.name))?;
        Ok(Self {
            name: want.name,
            offset: r.offset,
            needed_for: want.needed_for,
            need: want.need,
            optional: r.optional,
        })
    }
}

struct Want {
    strukt: &'static str,
    member: &'static str,
    name: &'static str,
    needed_for: &'static str,
    need: Need,
    optional: bool,
    set: fn(&mut Config, u32),
}

const WANTS: &[Want] = &[
    Want {
        strukt: "vm_fault",
        member: "vma",
        name: "vm_fault.vma",
        needed_for: "device, BAR and page of every fault",
        need: Need::EveryFault,
        optional: false,
        set: |c, v| c.vmf_vma = v,
    },
    Want {
        strukt: "vm_fault",
        member: "address",
        name: "vm_fault.address",
        needed_for: "page of every fault",
        need: Need::EveryFault,
        optional: false,
        set: |c, v| c.vmf_address = v,
    },
    Want {
        strukt: "vm_area_struct",
        member: "vm_start",
        name: "vm_area_struct.vm_start",
        needed_for: "page of every fault",
        need: Need::EveryFault,
        optional: false,
        set: |c, v| c.vma_start = v,
    },
    Want {
        strukt: "vm_area_struct",
        member: "vm_end",
        name: "vm_area_struct.vm_end",
        needed_for: "size of each mapping (report's verdict)",
        need: Need::Mappings,
        optional: false,
        set: |c, v| c.vma_end = v,
    },
    Want {
        strukt: "vm_fault",
        member: "flags",
        name: "vm_fault.flags",
        needed_for: "whether a CPU or another kernel path faulted",
        need: Need::Origins,
        optional: false,
        set: |c, v| c.vmf_flags = v,
    },
    Want {
        strukt: "vm_area_struct",
        member: "vm_pgoff",
        name: "vm_area_struct.vm_pgoff",
        needed_for: "BAR and page of every fault",
        need: Need::EveryFault,
        optional: false,
        set: |c, v| c.vma_pgoff = v,
    },
    Want {
        strukt: "vm_area_struct",
        member: "vm_private_data",
        name: "vm_area_struct.vm_private_data",
        needed_for: "device of every fault",
        need: Need::EveryFault,
        optional: false,
        set: |c, v| c.vma_private_data = v,
    },
    Want {
        strukt: "vfio_pci_core_device",
        member: "pdev",
        name: "vfio_pci_core_device.pdev",
        needed_for: "device of every fault",
        need: Need::EveryFault,
        optional: false,
        set: |c, v| c.vdev_pdev = v,
    },
    Want {
        strukt: "vfio_pci_core_device",
        member: "memory_lock",
        name: "vfio_pci_core_device.memory_lock",
        needed_for: "memory_lock contention",
        need: Need::LockWaits,
        optional: false,
        set: |c, v| c.vdev_memory_lock = v,
    },
    Want {
        strukt: "pci_dev",
        member: "bus",
        name: "pci_dev.bus",
        needed_for: "device of every fault",
        need: Need::EveryFault,
        optional: false,
        set: |c, v| c.pdev_bus = v,
    },
    Want {
        strukt: "pci_dev",
        member: "devfn",
        name: "pci_dev.devfn",
        needed_for: "device of every fault",
        need: Need::EveryFault,
        optional: false,
        set: |c, v| c.pdev_devfn = v,
    },
    Want {
        strukt: "pci_bus",
        member: "number",
        name: "pci_bus.number",
        needed_for: "device of every fault",
        need: Need::EveryFault,
        optional: false,
        set: |c, v| c.bus_number = v,
    },
    Want {
        strukt: "pci_bus",
        member: "domain_nr",
        name: "pci_bus.domain_nr",
        needed_for: "PCI domain (generic PCI domains)",
        need: Need::EveryFault,
        optional: true,
        set: |c, v| c.bus_domain_nr = v,
    },
    Want {
        strukt: "pci_bus",
        member: "sysdata",
        name: "pci_bus.sysdata",
        needed_for: "PCI domain (x86)",
        need: Need::EveryFault,
        optional: true,
        set: |c, v| c.bus_sysdata = v,
    },
    Want {
        strukt: "pci_sysdata",
        member: "domain",
        name: "pci_sysdata.domain",
        needed_for: "PCI domain (x86)",
        need: Need::EveryFault,
        optional: true,
        set: |c, v| c.sysdata_domain = v,
    },
    Want {
        strukt: "vm_area_struct",
        member: "vm_file",
        name: "vm_area_struct.vm_file",
        needed_for: "device of zaps (6.10+)",
        need: Need::Zaps,
        optional: false,
        set: |c, v| c.vma_file = v,
    },
    Want {
        strukt: "file",
        member: "f_mapping",
        name: "file.f_mapping",
        needed_for: "device of zaps (6.10+)",
        need: Need::Zaps,
        optional: false,
        set: |c, v| c.file_mapping = v,
    },
    Want {
        strukt: "address_space",
        member: "host",
        name: "address_space.host",
        needed_for: "telling vfio zaps from others (6.10+)",
        need: Need::Zaps,
        optional: false,
        set: |c, v| c.mapping_host = v,
    },
    Want {
        strukt: "inode",
        member: "i_sb",
        name: "inode.i_sb",
        needed_for: "telling vfio zaps from others (6.10+)",
        need: Need::Zaps,
        optional: false,
        set: |c, v| c.inode_sb = v,
    },
    Want {
        strukt: "super_block",
        member: "s_magic",
        name: "super_block.s_magic",
        needed_for: "telling vfio zaps from others (6.10+)",
        need: Need::Zaps,
        optional: false,
        set: |c, v| c.sb_magic = v,
    },
    Want {
        strukt: "vfio_pci_core_device",
        member: "vdev",
        name: "vfio_pci_core_device.vdev",
        needed_for: "device of new mappings",
        need: Need::Mappings,
        optional: false,
        set: |c, v| c.vdev_core = v,
    },
];

/// The offsets found, as `Config` and as a report.
#[derive(Debug, Clone)]
pub struct Offsets {
    pub config: Config,
    pub fields: Vec<Field>,
}

impl Field {
    /// Missing, and tracing cannot run without it. A field only some
    /// architectures have (`optional`) is never fatal.
    pub fn fatal(&self) -> bool {
        self.offset.is_none() && self.need.is_required() && !self.optional
    }

    /// Missing, and something short of every fault stops working.
    pub fn degraded(&self) -> bool {
        self.offset.is_none() && !self.optional && !self.need.is_required()
    }
}

/// The structs whose members are looked up.
pub fn structs() -> impl Iterator<Item = &'static str> {
    WANTS.iter().map(|w| w.strukt)
}

/// Every wanted field, placed by `offset_of(struct, member)`.
pub fn from_lookup(offset_of: impl Fn(&str, &str) -> Option<u32>) -> Offsets {
    let mut config = Config::empty();
    let mut fields = Vec::with_capacity(WANTS.len());
    for want in WANTS {
        let offset = offset_of(want.strukt, want.member);
        if let Some(offset) = offset {
            (want.set)(&mut config, offset);
        }
        fields.push(Field {
            name: want.name,
            offset,
            needed_for: want.needed_for,
            need: want.need,
            optional: want.optional,
        });
    }
    debug_assert!(fields.iter().all(|f| f.offset != Some(MISSING)));
    Offsets { config, fields }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::btf_scan::Scan;

    #[test]
    fn fields_read_back_against_the_table() {
        let fields = from_lookup(|s, _| (s != "pci_bus").then_some(16)).fields;
        let json = serde_json::to_string(&fields).expect("serializes");
        let back: Vec<Field> = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, fields);
        let bad = json.replace("vm_fault.vma", "vm_fault.nope");
        let err = serde_json::from_str::<Vec<Field>>(&bad).expect_err("unknown");
        assert!(
            err.to_string().contains("unknown BTF field vm_fault.nope"),
            "{err}"
        );
    }

    /// The host's own BTF, where there is one: the lookup must find the fields
    /// every x86 kernel has, inside anonymous members too.
    #[test]
    fn finds_nested_members_in_this_kernels_btf() {
        let Ok(blob) = std::fs::read(VMLINUX_BTF) else {
            eprintln!("no {VMLINUX_BTF}: skipped");
            return;
        };
        let wanted: Vec<&str> = structs().collect();
        let btf = Scan::new(&blob, None, &wanted).expect("vmlinux BTF scans");
        let vma = btf.member_offset("vm_fault", "vma").expect("vm_fault.vma");
        let address = btf
            .member_offset("vm_fault", "address")
            .expect("vm_fault.address");
        assert_eq!(
            vma, 0,
            "vma leads the anonymous struct at the start of vm_fault"
        );
        assert!(address > vma);
        assert_eq!(btf.member_offset("vm_area_struct", "vm_start"), Some(0));
        assert!(btf.member_offset("vm_fault", "no_such_member").is_none());
        assert!(btf.member_offset("no_such_struct", "vma").is_none());
    }
}
