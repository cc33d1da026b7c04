//! The floor plan from a 6.12 symbol set, with and without trampolines.

use std::fmt::Write as _;

use super::*;
use crate::probe::{
    kallsyms::Symbols,
    plan::{Kind, plan, use_kprobes},
};

fn syms_6_12() -> Symbols {
    let text = [
        "vfio_pci_mmap_huge_fault",
        "vfio_pci_mmap_page_fault",
        "vmf_insert_pfn",
        "vmf_insert_pfn_pmd",
        "unmap_mapping_range",
        "zap_page_range_single",
        "vfio_basic_config_write",
        "vfio_pci_core_ioctl",
        "vfio_pci_core_mmap",
    ]
    .iter()
    .fold(String::new(), |mut text, n| {
        let _ = writeln!(text, "ffffffffc0000000 t {n}\t[vfio_pci_core]");
        text
    });
    Symbols::parse(&text)
}

fn find(plan: &[PlannedProbe], role: Role) -> &PlannedProbe {
    plan.iter()
        .find(|p| p.role == role)
        .expect("every role has a row")
}

fn others_skipped(plan: &[PlannedProbe]) {
    for p in plan
        .iter()
        .filter(|p| !matches!(p.role, Role::FaultEntry | Role::FaultReturn))
    {
        assert!(
            matches!(p.status, Status::Skipped | Status::Absent),
            "{}: {}",
            p.role,
            p.status
        );
        if p.status == Status::Skipped {
            assert_eq!((p.program, p.btf_program), (None, None), "{}", p.role);
            assert_eq!(p.reason.as_deref(), Some(SKIPPED), "{}", p.role);
        }
    }
    // Roles that had a symbol are skipped, not left to attach.
    assert_eq!(find(plan, Role::ZapEntry).status, Status::Skipped);
    assert_eq!(find(plan, Role::InsertPte).status, Status::Skipped);
    // Roles with no symbol stay absent, with their own reason.
    assert_eq!(find(plan, Role::LockBegin).status, Status::Absent);
}

#[test]
fn trampolines_swap_for_the_empty_trampolines() {
    let mut p = plan(&syms_6_12(), None);
    apply(&mut p);
    let entry = find(&p, Role::FaultEntry);
    assert_eq!(entry.status, Status::Available);
    assert_eq!(entry.kind, Kind::Fentry);
    assert_eq!(
        (entry.program, entry.btf_program),
        (Some(KPROBE), Some(FENTRY))
    );
    assert_eq!(entry.symbol.as_deref(), Some("vfio_pci_mmap_huge_fault"));
    let ret = find(&p, Role::FaultReturn);
    assert_eq!(ret.kind, Kind::Fexit);
    assert_eq!(
        (ret.program, ret.btf_program),
        (Some(KRETPROBE), Some(FEXIT))
    );
    others_skipped(&p);
}

#[test]
fn kprobes_only_swaps_for_the_empty_kprobes() {
    let mut p = plan(&syms_6_12(), None);
    use_kprobes(&mut p, "--kprobes-only");
    apply(&mut p);
    let entry = find(&p, Role::FaultEntry);
    assert_eq!(
        (entry.kind, entry.program, entry.btf_program),
        (Kind::Kprobe, Some(KPROBE), None)
    );
    let ret = find(&p, Role::FaultReturn);
    assert_eq!(
        (ret.kind, ret.program, ret.btf_program),
        (Kind::Kretprobe, Some(KRETPROBE), None)
    );
    assert_eq!(
        ret.reason.as_deref(),
        Some("kprobe, not fentry/fexit: --kprobes-only")
    );
    others_skipped(&p);
}

#[test]
fn a_preempting_kernel_gets_the_empty_kprobes() {
    let mut p = plan(&syms_6_12(), Some("this kernel preempts (lazy)"));
    apply(&mut p);
    let entry = find(&p, Role::FaultEntry);
    assert_eq!(
        (entry.kind, entry.program, entry.btf_program),
        (Kind::Kprobe, Some(KPROBE), None)
    );
}

#[test]
fn an_absent_handler_stays_absent() {
    let mut p = plan(&Symbols::parse(""), None);
    apply(&mut p);
    let entry = find(&p, Role::FaultEntry);
    assert_eq!((entry.status, entry.program), (Status::Absent, None));
}

#[test]
fn floor_programs_read_back_from_a_recording() {
    let mut p = plan(&syms_6_12(), None);
    apply(&mut p);
    let json = serde_json::to_string(&p).expect("serializes");
    let back: Vec<PlannedProbe> = serde_json::from_str(&json).expect("reads back");
    assert_eq!(find(&back, Role::FaultEntry).program, Some(KPROBE));
    assert_eq!(find(&back, Role::ZapEntry).status, Status::Skipped);
}
