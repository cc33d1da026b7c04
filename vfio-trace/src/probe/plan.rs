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
    /// `symbol` is `category:name`.
    Tracepoint,
    /// A BPF trampoline at entry; falls back to a kprobe where the kernel refuses it.
    Fentry,
    /// A BPF trampoline at return; falls back to a kretprobe.
    Fexit,
}

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
pub struct Role {
    /// Stable name used in `check`, JSON and metrics.
    pub name: &'static str,
    pub kind: Kind,
    pub candidates: &'static [Candidate],
    /// Tracing is useless without it.
    pub required: bool,
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

pub const ROLES: &[Role] = &[
    Role {
        name: "fault_entry",
        kind: Kind::Kprobe,
        candidates: FAULT_ENTRY,
        required: true,
        absent_because: "vfio-pci is not loaded, or its fault handler is unknown to this version",
    },
    Role {
        name: "fault_return",
        kind: Kind::Kretprobe,
        candidates: FAULT_RETURN,
        required: true,
        absent_because: "vfio-pci is not loaded, or its fault handler is unknown to this version",
    },
    Role {
        name: "insert_pte",
        kind: Kind::Kprobe,
        candidates: &[c("vmf_insert_pfn", "insert_pte")],
        required: false,
        absent_because: "no vmf_insert_pfn in this kernel",
    },
    Role {
        name: "insert_pmd",
        kind: Kind::Kprobe,
        candidates: &[
            c("vmf_insert_pfn_pmd", "insert_pmd"),
            c("vmf_insert_pfn_pmd_prot", "insert_pmd"),
        ],
        required: false,
        absent_because: "no PMD pfn insert in this kernel",
    },
    Role {
        name: "insert_pud",
        kind: Kind::Kprobe,
        candidates: &[
            c("vmf_insert_pfn_pud", "insert_pud"),
            c("vmf_insert_pfn_pud_prot", "insert_pud"),
        ],
        required: false,
        absent_because: "no PUD pfn insert in this kernel (CONFIG_HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD off?)",
    },
    Role {
        name: "remap",
        kind: Kind::Kprobe,
        candidates: &[c("remap_pfn_range", "remap")],
        required: false,
        absent_because: "no remap_pfn_range symbol",
    },
    Role {
        name: "mmap",
        kind: Kind::Kprobe,
        candidates: &[c("vfio_pci_core_mmap", "mmap_entry")],
        required: false,
        absent_because: "vfio-pci is not loaded",
    },
    Role {
        name: "zap_entry",
        kind: Kind::Kprobe,
        candidates: ZAP_ENTRY,
        required: false,
        absent_because: "no known zap function",
    },
    Role {
        name: "zap_return",
        kind: Kind::Kretprobe,
        candidates: ZAP_RETURN,
        required: false,
        absent_because: "no known zap function",
    },
    Role {
        name: "zap_range",
        kind: Kind::Kprobe,
        candidates: &[
            // 6.18 also has zap_page_range_single_batched, but unmap_mapping_range
            // goes through the plain one there; 7.x renamed the batched one and
            // calls it directly.
            c("zap_page_range_single", "zap_range"),
            c("zap_vma_range_batched", "zap_range_batched"),
        ],
        required: false,
        absent_because: "no known per-VMA zap function: zapped pages read 0",
    },
    Role {
        name: "hold_config",
        kind: Kind::Kretprobe,
        candidates: &[c("vfio_basic_config_write", "hold_end")],
        required: false,
        absent_because: "vfio-pci is not loaded: no write hold time for decode-off zaps",
    },
    Role {
        name: "hold_ioctl",
        kind: Kind::Kretprobe,
        candidates: &[c("vfio_pci_core_ioctl", "hold_end")],
        required: false,
        absent_because: "vfio-pci is not loaded: no write hold time for reset zaps",
    },
    Role {
        name: "lock_begin",
        kind: Kind::Tracepoint,
        candidates: &[c("lock:contention_begin", "lock_begin")],
        required: false,
        absent_because: "no lock:contention_begin tracepoint (before 5.19)",
    },
    Role {
        name: "lock_end",
        kind: Kind::Tracepoint,
        candidates: &[c("lock:contention_end", "lock_end")],
        required: false,
        absent_because: "no lock:contention_end tracepoint (before 5.19)",
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
    /// Not attached because what it would count follows from another probe.
    Inferred,
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
    /// Program in the eBPF object; `null` when absent.
    pub program: Option<&'static str>,
    /// fentry/fexit program tried first; `kind` says which one ran.
    #[serde(skip)]
    pub btf_program: Option<&'static str>,
    /// The symbol's BTF type id, where `btf_program` can use it.
    #[serde(skip)]
    pub btf_id: Option<u32>,
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

/// Roles whose counts follow from the fault's order and result once the
/// handler takes an order (6.12+: one insert per mapped fault, no remaps).
const INFERRED_WITH_ORDER: &[&str] = &["insert_pte", "insert_pmd", "insert_pud", "remap"];

/// Chooses the first present candidate for every role. Probes that would only
/// repeat what the fault event already says are left unattached, so a 4 KiB
/// fault runs two programs, not three. `no_trampolines` gives the reason to
/// use kprobes where fentry/fexit would do (see `preempt`).
pub fn plan(symbols: &Symbols, no_trampolines: Option<&str>) -> Vec<PlannedProbe> {
    let mut plan = choose(symbols);
    if let Some(why) = no_trampolines {
        for p in plan.iter_mut().filter(|p| p.btf_program.is_some()) {
            p.btf_program = None;
            p.kind = if p.kind == Kind::Fexit {
                Kind::Kretprobe
            } else {
                Kind::Kprobe
            };
            p.reason = Some(format!("kprobe, not fentry/fexit: {why}"));
        }
    }
    if handler_has_order(&plan) {
        for p in plan
            .iter_mut()
            .filter(|p| INFERRED_WITH_ORDER.contains(&p.name) && p.status == Status::Available)
        {
            p.status = Status::Inferred;
            p.program = None;
            p.reason = Some(
                "not attached: the fault handler takes an order, so each mapped fault \
                 inserts exactly one entry of that order"
                    .into(),
            );
        }
    }
    plan
}

fn choose(symbols: &Symbols) -> Vec<PlannedProbe> {
    ROLES
        .iter()
        .map(|role| {
            let chosen = role.candidates.iter().find(|c| symbols.contains(c.symbol));
            let names: Vec<&str> = role.candidates.iter().map(|c| c.symbol).collect();
            PlannedProbe {
                name: role.name,
                program: chosen.map(|c| c.program),
                btf_program: chosen.and_then(|c| c.btf_program),
                btf_id: None,
                kind: match (role.kind, chosen.and_then(|c| c.btf_program)) {
                    (Kind::Kprobe, Some(_)) => Kind::Fentry,
                    (Kind::Kretprobe, Some(_)) => Kind::Fexit,
                    (kind, _) => kind,
                },
                symbol: chosen.map(|c| c.symbol.to_owned()),
                module: chosen
                    .and_then(|c| symbols.module_of(c.symbol))
                    .map(str::to_owned),
                required: role.required,
                status: if chosen.is_some() {
                    Status::Available
                } else {
                    Status::Absent
                },
                reason: chosen.is_none().then(|| {
                    format!(
                        "none of {} in kallsyms: {}",
                        names.join(", "),
                        role.absent_because
                    )
                }),
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

    fn plan_all(symbols: &Symbols) -> Vec<PlannedProbe> {
        plan(symbols, None)
    }

    #[test]
    fn a_preempting_kernel_gets_kprobes_with_the_reason() {
        let p = plan(
            &syms(&["vfio_pci_mmap_huge_fault"]),
            Some("this kernel preempts (lazy)"),
        );
        let entry = p.iter().find(|p| p.name == "fault_entry").expect("row");
        assert_eq!((entry.kind, entry.btf_program), (Kind::Kprobe, None));
        let ret = p.iter().find(|p| p.name == "fault_return").expect("row");
        assert_eq!(ret.kind, Kind::Kretprobe);
        assert!(ret.reason.as_deref().is_some_and(|r| r.contains("lazy")));
    }

    fn symbol_of<'a>(plan: &'a [PlannedProbe], name: &str) -> Option<&'a str> {
        plan.iter()
            .find(|p| p.name == name)
            .and_then(|p| p.symbol.as_deref())
    }

    #[test]
    fn kernel_6_12_uses_huge_fault_and_huge_inserts() {
        let p = plan_all(&syms(&[
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
        let status = |name: &str| {
            p.iter()
                .find(|p| p.name == name)
                .map(|p| (p.status.clone(), p.program))
        };
        assert_eq!(
            status("fault_entry"),
            Some((Status::Available, Some("fault_entry")))
        );
        assert_eq!(
            status("fault_return"),
            Some((Status::Available, Some("fault_return")))
        );
        // Inserts follow from order and result: no program runs for them.
        for name in ["insert_pte", "insert_pmd", "insert_pud", "remap"] {
            assert_eq!(status(name), Some((Status::Inferred, None)), "{name}");
        }
    }

    #[test]
    fn kernel_6_1_falls_back_to_the_4k_handler_and_prot_variants() {
        let p = plan_all(&syms(&[
            "vfio_pci_mmap_fault",
            "vfio_pci_zap_and_vma_lock",
            "unmap_mapping_range",
            "vmf_insert_pfn",
            "vmf_insert_pfn_pmd_prot",
            "vmf_insert_pfn_pud_prot",
            "remap_pfn_range",
        ]));
        assert_eq!(symbol_of(&p, "fault_entry"), Some("vfio_pci_mmap_fault"));
        assert_eq!(symbol_of(&p, "insert_pud"), Some("vmf_insert_pfn_pud_prot"));
        assert!(!handler_has_order(&p));
        let zap = p.iter().find(|p| p.name == "zap_entry").expect("row");
        assert_eq!(zap.symbol.as_deref(), Some("vfio_pci_zap_and_vma_lock"));
        assert_eq!(zap.program, Some("zap_vdev_entry"));
    }

    #[test]
    fn missing_symbols_are_absent_with_a_reason() {
        let p = plan_all(&syms(&["vmf_insert_pfn"]));
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
        let p = plan_all(&syms(&["vfio_pci_mmap_page_fault"]));
        assert!(
            p.iter()
                .all(|p| p.symbol.as_deref() != Some("vfio_pci_mmap_page_fault"))
        );
    }
}
