//! The plan per kernel, from the symbols each one has.

use std::fmt::Write as _;

use super::*;

fn syms(names: &[&str]) -> Symbols {
    let text = names.iter().fold(String::new(), |mut text, n| {
        let _ = writeln!(text, "ffffffffc0000000 t {n}\t[vfio_pci_core]");
        text
    });
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
    let entry = p.iter().find(|p| p.role == Role::FaultEntry).expect("row");
    assert_eq!((entry.kind, entry.btf_program), (Kind::Kprobe, None));
    let ret = p.iter().find(|p| p.role == Role::FaultReturn).expect("row");
    assert_eq!(ret.kind, Kind::Kretprobe);
    assert!(ret.reason.as_deref().is_some_and(|r| r.contains("lazy")));
}

#[test]
fn a_plan_reads_back_as_written() {
    let p = plan_all(&syms(&["vfio_pci_mmap_huge_fault", "vmf_insert_pfn"]));
    let json = serde_json::to_string(&p).expect("serializes");
    let back: Vec<PlannedProbe> = serde_json::from_str(&json).expect("reads back");
    assert_eq!(serde_json::to_string(&back).expect("serializes"), json);
    let bad = json.replace(
        "\"program\":\"fault_entry\"",
        "\"program\":\"no_such_program\"",
    );
    let err = serde_json::from_str::<Vec<PlannedProbe>>(&bad).expect_err("unknown");
    assert!(
        err.to_string()
            .contains("unknown eBPF program no_such_program"),
        "{err}"
    );
}

#[test]
fn kprobes_only_overrides_the_preemption_reason() {
    let mut p = plan(
        &syms(&["vfio_pci_mmap_huge_fault"]),
        Some("this kernel preempts (lazy)"),
    );
    use_kprobes(&mut p, "--kprobes-only");
    let ret = p.iter().find(|p| p.role == Role::FaultReturn).expect("row");
    assert_eq!((ret.kind, ret.btf_program), (Kind::Kretprobe, None));
    assert_eq!(
        ret.reason.as_deref(),
        Some("kprobe, not fentry/fexit: --kprobes-only")
    );
}

fn symbol_of(plan: &[PlannedProbe], name: Role) -> Option<&str> {
    plan.iter()
        .find(|p| p.role == name)
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
        symbol_of(&p, Role::FaultEntry),
        Some("vfio_pci_mmap_huge_fault")
    );
    assert_eq!(
        symbol_of(&p, Role::FaultReturn),
        Some("vfio_pci_mmap_huge_fault")
    );
    assert_eq!(symbol_of(&p, Role::InsertPmd), Some("vmf_insert_pfn_pmd"));
    assert!(handler_has_order(&p));
    let status = |name: Role| {
        p.iter()
            .find(|p| p.role == name)
            .map(|p| (p.status, p.program))
    };
    assert_eq!(
        status(Role::FaultEntry),
        Some((Status::Available, Some("fault_entry")))
    );
    assert_eq!(
        status(Role::FaultReturn),
        Some((Status::Available, Some("fault_return")))
    );
    // Inserts follow from order and result: no program runs for them.
    for name in [
        Role::InsertPte,
        Role::InsertPmd,
        Role::InsertPud,
        Role::Remap,
    ] {
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
    assert_eq!(symbol_of(&p, Role::FaultEntry), Some("vfio_pci_mmap_fault"));
    assert_eq!(
        symbol_of(&p, Role::InsertPud),
        Some("vmf_insert_pfn_pud_prot")
    );
    assert!(!handler_has_order(&p));
    let zap = p.iter().find(|p| p.role == Role::ZapEntry).expect("row");
    assert_eq!(zap.symbol.as_deref(), Some("vfio_pci_zap_and_vma_lock"));
    assert_eq!(zap.program, Some("zap_vdev_entry"));
}

#[test]
fn missing_symbols_are_absent_with_a_reason() {
    let p = plan_all(&syms(&["vmf_insert_pfn"]));
    let entry = p.iter().find(|p| p.role == Role::FaultEntry).expect("row");
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
