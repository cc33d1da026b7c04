//! The probe plan: for each role, the kernel symbols that can fill it, best
//! first. The plan is chosen from the running kernel's symbols at start-up and
//! never assumes a version; what cannot attach stays visible with its reason.

use serde::Serialize;

use super::kallsyms::Symbols;

/// How a program attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Kprobe,
    Kretprobe,
}

/// One row of the table: a role, its eBPF program, and candidate symbols.
#[derive(Debug, Clone, Copy)]
pub struct Role {
    /// Stable name used in `check`, JSON and metrics.
    pub name: &'static str,
    /// Program name in the eBPF object.
    pub program: &'static str,
    pub kind: Kind,
    /// Candidate symbols, best first, each with what it means when chosen.
    pub candidates: &'static [&'static str],
    /// Tracing is useless without it.
    pub required: bool,
    /// Why a kernel may lack every candidate, shown as the absence reason.
    pub absent_because: &'static str,
}

/// The fault handler: `huge_fault(vmf, order)` from 6.12, else the 4 KiB-only
/// handler. The 6.12+ order-0 wrapper `vfio_pci_mmap_page_fault` is left out on
/// purpose: it calls `huge_fault`, so probing both would count a fault twice.
pub const FAULT_HANDLERS: &[&str] = &["vfio_pci_mmap_huge_fault", "vfio_pci_mmap_fault"];

pub const ROLES: &[Role] = &[
    Role {
        name: "fault_entry",
        program: "fault_entry",
        kind: Kind::Kprobe,
        candidates: FAULT_HANDLERS,
        required: true,
        absent_because: "vfio-pci is not loaded, or its fault handler is unknown to this version",
    },
    Role {
        name: "fault_return",
        program: "fault_return",
        kind: Kind::Kretprobe,
        candidates: FAULT_HANDLERS,
        required: true,
        absent_because: "vfio-pci is not loaded, or its fault handler is unknown to this version",
    },
    Role {
        name: "insert_pte",
        program: "insert_pte",
        kind: Kind::Kprobe,
        candidates: &["vmf_insert_pfn"],
        required: false,
        absent_because: "no vmf_insert_pfn in this kernel",
    },
    Role {
        name: "insert_pmd",
        program: "insert_pmd",
        kind: Kind::Kprobe,
        candidates: &["vmf_insert_pfn_pmd", "vmf_insert_pfn_pmd_prot"],
        required: false,
        absent_because: "no PMD pfn insert in this kernel",
    },
    Role {
        name: "insert_pud",
        program: "insert_pud",
        kind: Kind::Kprobe,
        candidates: &["vmf_insert_pfn_pud", "vmf_insert_pfn_pud_prot"],
        required: false,
        absent_because: "no PUD pfn insert in this kernel (CONFIG_HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD off?)",
    },
    Role {
        name: "remap",
        program: "remap",
        kind: Kind::Kprobe,
        candidates: &["remap_pfn_range"],
        required: false,
        absent_because: "no remap_pfn_range symbol",
    },
];

/// Where a planned probe stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The symbol exists; not attached yet (what `check` reports).
    Available,
    /// Attached and running.
    Attached,
    /// No candidate symbol in this kernel.
    Absent,
    /// The symbol exists but attaching failed.
    Failed,
    /// The symbol exists but this kernel cannot attach kprobes at all.
    Unsupported,
}

/// Marks every present symbol unusable: the kernel has no kprobes.
pub fn without_kprobes(plan: &mut [PlannedProbe]) {
    for p in plan.iter_mut().filter(|p| p.status == Status::Available) {
        p.status = Status::Unsupported;
        p.reason = Some("symbol present, but this kernel cannot attach kprobes".into());
    }
}

/// One probe of the plan, as `check` and the JSON show it.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedProbe {
    pub name: &'static str,
    pub program: &'static str,
    pub kind: Kind,
    /// The chosen symbol; `null` when absent.
    pub symbol: Option<String>,
    /// Module holding the symbol, when it is a module function.
    pub module: Option<String>,
    pub required: bool,
    pub status: Status,
    /// Why it is absent or failed.
    pub reason: Option<String>,
}

/// Chooses the first present candidate for every role.
pub fn plan(symbols: &Symbols) -> Vec<PlannedProbe> {
    ROLES
        .iter()
        .map(|role| {
            let chosen = role.candidates.iter().find(|c| symbols.contains(c));
            PlannedProbe {
                name: role.name,
                program: role.program,
                kind: role.kind,
                symbol: chosen.map(|s| (*s).to_owned()),
                module: chosen.and_then(|s| symbols.module_of(s)).map(str::to_owned),
                required: role.required,
                status: if chosen.is_some() {
                    Status::Available
                } else {
                    Status::Absent
                },
                reason: if chosen.is_some() {
                    None
                } else {
                    Some(format!(
                        "none of {} in kallsyms: {}",
                        role.candidates.join(", "),
                        role.absent_because
                    ))
                },
            }
        })
        .collect()
}

/// True when the fault handler takes the requested order as its second argument.
pub fn handler_has_order(plan: &[PlannedProbe]) -> bool {
    plan.iter()
        .any(|p| p.name == "fault_entry" && p.symbol.as_deref() == Some("vfio_pci_mmap_huge_fault"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syms(names: &[&str]) -> Symbols {
        let text: String = names
            .iter()
            .map(|n| format!("ffffffffc0000000 t {n}\t[vfio_pci_core]\n"))
            .collect();
        Symbols::parse(&text)
    }

    fn symbol_of<'a>(plan: &'a [PlannedProbe], name: &str) -> Option<&'a str> {
        plan.iter()
            .find(|p| p.name == name)
            .and_then(|p| p.symbol.as_deref())
    }

    #[test]
    fn kernel_6_12_uses_huge_fault_and_huge_inserts() {
        let p = plan(&syms(&[
            "vfio_pci_mmap_huge_fault",
            "vfio_pci_mmap_page_fault",
            "vmf_insert_pfn",
            "vmf_insert_pfn_pmd",
            "vmf_insert_pfn_pud",
            "remap_pfn_range",
        ]));
        assert_eq!(
            symbol_of(&p, "fault_entry"),
            Some("vfio_pci_mmap_huge_fault")
        );
        assert_eq!(
            symbol_of(&p, "fault_return"),
            Some("vfio_pci_mmap_huge_fault")
        );
        assert_eq!(symbol_of(&p, "insert_pmd"), Some("vmf_insert_pfn_pmd"));
        assert!(handler_has_order(&p));
        assert!(p.iter().all(|p| p.status == Status::Available));
    }

    #[test]
    fn kernel_6_1_falls_back_to_the_4k_handler_and_prot_variants() {
        let p = plan(&syms(&[
            "vfio_pci_mmap_fault",
            "vmf_insert_pfn",
            "vmf_insert_pfn_pmd_prot",
            "vmf_insert_pfn_pud_prot",
            "remap_pfn_range",
        ]));
        assert_eq!(symbol_of(&p, "fault_entry"), Some("vfio_pci_mmap_fault"));
        assert_eq!(symbol_of(&p, "insert_pud"), Some("vmf_insert_pfn_pud_prot"));
        assert!(!handler_has_order(&p));
    }

    #[test]
    fn missing_symbols_are_absent_with_a_reason() {
        let p = plan(&syms(&["vmf_insert_pfn"]));
        let entry = p.iter().find(|p| p.name == "fault_entry").expect("row");
        assert_eq!(entry.status, Status::Absent);
        assert!(entry.required);
        let reason = entry.reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("vfio_pci_mmap_huge_fault, vfio_pci_mmap_fault"),
            "{reason}"
        );
    }

    #[test]
    fn the_order_zero_wrapper_is_never_chosen() {
        let p = plan(&syms(&["vfio_pci_mmap_page_fault"]));
        assert!(
            p.iter()
                .all(|p| p.symbol.as_deref() != Some("vfio_pci_mmap_page_fault"))
        );
    }
}
