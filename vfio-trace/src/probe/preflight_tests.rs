//! Preflight over fixture hosts: each lack is reported once, and only what
//! every fault needs makes the machine not ready.

use super::*;
use crate::{
    kernel::Generation,
    probe::{
        host::fake::{FakeHost, SYMBOLS_6_12},
        plan::{Kind, Status},
        role::Role,
    },
};

fn run(spec: FakeHost) -> Preflight {
    let (_root, host) = Host::fake(spec);
    preflight(&host)
}

#[test]
fn a_good_host_is_ready() {
    let p = run(FakeHost::good());
    assert!(p.ready(), "{:?}", p.problems);
    assert!(p.ensure_ready().is_ok());
    assert_eq!(p.kernel.release, "6.12.117+deb12-amd64");
    assert_eq!(p.kernel.generation, Some(Generation::HugeFault));
    assert_eq!(p.degraded().count(), 0);
    let entry = &p.probes[0];
    assert_eq!((entry.role, entry.kind), (Role::FaultEntry, Kind::Fentry));
    assert!(entry.btf_id.is_some(), "trampolines get their BTF id");
    assert_eq!(p.config.tp_lock_addr, 24, "tracefs gives the field's place");
    assert!(p.modules.iter().all(|m| m.loaded));
}

#[test]
fn a_host_without_kprobes_is_not_ready() {
    let p = run(FakeHost {
        kprobes: false,
        ..FakeHost::good()
    });
    assert_eq!(p.problems, [Problem::NoKprobes]);
    assert!(p.probes.iter().all(|p| p.status != Status::Available));
    let err = p.ensure_ready().expect_err("not ready").to_string();
    assert!(err.starts_with("no kprobe support"), "{err}");
    assert!(err.ends_with("; run `vfio-trace check`"), "{err}");
}

#[test]
fn a_host_without_btf_is_not_ready() {
    let mut spec = FakeHost::good();
    spec.btf.presence = BtfPresence {
        vmlinux: false,
        vfio_pci_core: false,
    };
    let p = run(spec);
    assert_eq!(p.problems, [Problem::NoBtf, Problem::NoModuleBtf]);
    assert!(p.offsets.is_empty());
}

#[test]
fn unreadable_btf_is_not_ready() {
    let mut spec = FakeHost::good();
    spec.btf.unreadable = true;
    let p = run(spec);
    assert!(
        matches!(p.problems.as_slice(), [Problem::BtfUnreadable(why)] if why.contains("bad magic")),
        "{:?}",
        p.problems
    );
}

#[test]
fn a_missing_optional_field_is_reported_but_not_fatal() {
    let mut spec = FakeHost::good();
    spec.btf.missing = vec!["vfio_pci_core_device.memory_lock", "pci_bus.domain_nr"];
    let p = run(spec);
    assert!(p.ready(), "{:?}", p.problems);
    let degraded: Vec<&str> = p.degraded().map(|f| f.name).collect();
    assert_eq!(degraded, ["vfio_pci_core_device.memory_lock"]);
}

#[test]
fn a_missing_fault_field_is_fatal() {
    let mut spec = FakeHost::good();
    spec.btf.missing = vec!["vm_fault.address"];
    let p = run(spec);
    assert_eq!(
        p.problems,
        [Problem::MissingField {
            name: "vm_fault.address",
            needed_for: "page of every fault"
        }]
    );
}

#[test]
fn a_host_without_vfio_says_so_once_per_cause() {
    let p = run(FakeHost {
        vfio_loaded: false,
        symbols: Some("ffffffff81000000 T vmf_insert_pfn\n".into()),
        ..FakeHost::good()
    });
    assert_eq!(p.kernel.generation, None);
    let text: Vec<String> = p.problems.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "{text:?}");
    assert!(text[0].starts_with("vfio-pci is not loaded"));
    assert!(text[1].starts_with("required probe fault_entry cannot attach"));
    assert!(text[2].starts_with("required probe fault_return cannot attach"));
}

#[test]
fn functions_come_from_btf_and_tracepoints_from_tracefs() {
    let (root, host) = Host::fake(FakeHost {
        symbols: Some(SYMBOLS_6_12.replace("D __tracepoint_contention_end", "D x")),
        ..FakeHost::good()
    });
    // No /proc/kallsyms at all: start-up does not read it.
    std::fs::remove_file(root.path().join("proc/kallsyms")).expect("kallsyms");
    let p = preflight(&host);
    assert!(p.ready(), "{:?}", p.problems);
    let by_role = |r: Role| p.probes.iter().find(|x| x.role == r).expect("role");
    assert_eq!(
        by_role(Role::FaultEntry).symbol.as_deref(),
        Some("vfio_pci_mmap_huge_fault")
    );
    assert_eq!(
        by_role(Role::FaultEntry).module.as_deref(),
        Some("vfio_pci_core")
    );
    assert!(by_role(Role::FaultEntry).btf_id.is_some());
    assert_eq!(
        by_role(Role::LockBegin).symbol.as_deref(),
        Some("lock:contention_begin")
    );
    assert_eq!(
        by_role(Role::LockEnd).symbol,
        None,
        "no such tracepoint in tracefs"
    );
}

#[test]
fn a_preempting_kernel_plans_kprobes() {
    let p = run(FakeHost {
        version: "#1 SMP PREEMPT_DYNAMIC Debian",
        ..FakeHost::good()
    });
    assert!(p.ready());
    assert_eq!(p.probes[0].kind, Kind::Kprobe);
    assert_eq!(p.probes[0].btf_id, None);
}

#[test]
fn the_generation_comes_from_symbols_not_the_release() {
    let old = SYMBOLS_6_12.replace("vfio_pci_mmap_huge_fault", "vfio_pci_mmap_fault");
    let p = run(FakeHost {
        // A distribution kernel whose version says 6.12 but whose vfio is 6.10's.
        symbols: Some(old),
        ..FakeHost::good()
    });
    assert_eq!(p.kernel.generation, Some(Generation::PerPage));
}
