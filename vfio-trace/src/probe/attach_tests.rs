//! Attach order, fallbacks, failures and cleanup over a fake `Programs`.

use aya::programs::ProgramError;

use super::*;
use crate::probe::{
    kallsyms::Symbols,
    plan::{self, Kind},
    table,
};

/// Records every call; refuses the programs it is told to, and takes its
/// time over the one it is told to.
#[derive(Default)]
struct Fake {
    calls: Vec<String>,
    /// What the entries were told of returns, and after how many calls.
    told: Vec<(bool, usize)>,
    refuse: Vec<&'static str>,
    slow: Option<&'static str>,
}

impl Fake {
    fn answer(&mut self, call: String, program: &'static str) -> Result<(), AttachError> {
        self.calls.push(call);
        if self.slow == Some(program) {
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        if self.refuse.contains(&program) {
            Err(AttachError::Attach(ProgramError::NotAttached))
        } else {
            Ok(())
        }
    }
}

impl Programs for Fake {
    fn attach_trampoline(
        &mut self,
        program: &'static str,
        btf_id: u32,
        _module: Option<&str>,
    ) -> Result<(), AttachError> {
        self.answer(format!("trampoline {program} {btf_id}"), program)
    }

    fn attach_probe(&mut self, program: &'static str, symbol: &str) -> Result<(), AttachError> {
        self.answer(format!("probe {program} {symbol}"), program)
    }

    fn unload(&mut self, program: &'static str) {
        self.calls.push(format!("unload {program}"));
    }

    fn fault_returns_by_fexit(&mut self, fexit: bool) {
        self.told.push((fexit, self.calls.len()));
    }
}

/// A 6.1 plan (kprobes everywhere, inserts planned) or a 6.12 one with BTF ids.
fn plan_for(symbols: &str) -> Vec<PlannedProbe> {
    let mut p = plan::plan(&Symbols::parse(symbols), None);
    for (id, probe) in (7..).zip(p.iter_mut()) {
        if probe.btf_program.is_some() {
            probe.btf_id = Some(id);
        }
    }
    p
}

const V6_1: &str = "\
ffffffff81000000 T vmf_insert_pfn
ffffffff81000100 T remap_pfn_range
ffffffff81000200 T unmap_mapping_range
ffffffff82000000 D __tracepoint_contention_begin
ffffffff82000100 D __tracepoint_contention_end
ffffffffc0001000 t vfio_pci_mmap_fault\t[vfio_pci_core]
ffffffffc0001100 t vfio_pci_zap_and_vma_lock\t[vfio_pci_core]
ffffffffc0001200 t vfio_basic_config_write\t[vfio_pci_core]
ffffffffc0001300 t vfio_pci_core_ioctl\t[vfio_pci_core]
";

fn stage_of(plan: &[PlannedProbe], call: &str) -> Stage {
    let program = call.split(' ').nth(1).expect("program");
    plan.iter()
        .find(|p| p.program == Some(program) || p.btf_program == Some(program))
        .map(|p| p.role.stage())
        .expect("a planned program")
}

#[test]
fn attaches_inner_then_returns_then_entries() {
    let mut plan = plan_for(V6_1);
    plan::use_kprobes(&mut plan, "test");
    let mut fake = Fake::default();
    attach_plan(&mut plan, &mut fake).expect("attaches");
    let stages: Vec<Stage> = fake.calls.iter().map(|c| stage_of(&plan, c)).collect();
    assert!(stages.is_sorted(), "{:?}", fake.calls);
    assert_eq!(
        fake.calls.first().map(String::as_str),
        Some("probe insert_pte vmf_insert_pfn")
    );
    assert_eq!(
        fake.calls.last().map(String::as_str),
        Some("probe lock_begin lock:contention_begin")
    );
    let attached = plan.iter().filter(|p| p.status == Status::Attached).count();
    assert_eq!(attached, fake.calls.len());
}

#[test]
fn detach_runs_the_stages_backwards_each_program_once() {
    let mut plan = plan_for(V6_1);
    plan::use_kprobes(&mut plan, "test");
    attach_plan(&mut plan, &mut Fake::default()).expect("attaches");
    let order = detach_order(&plan);
    assert_eq!(
        order[..5],
        [
            "fault_entry",
            "zap_vdev_entry",
            "config_write_entry",
            "hold_begin",
            "lock_begin"
        ]
    );
    assert_eq!(order[5..8], ["fault_return", "zap_return", "lock_end"]);
    assert_eq!(order.iter().filter(|p| **p == "hold_begin").count(), 1);
    assert_eq!(order.iter().filter(|p| **p == "hold_end").count(), 1);
    assert_eq!(order.last(), Some(&"hold_end"));
}

#[test]
fn a_refused_trampoline_falls_back_to_a_kprobe_and_says_so() {
    let symbols = "ffffffffc0001000 t vfio_pci_mmap_huge_fault\t[vfio_pci_core]\n";
    let mut plan = plan_for(symbols);
    let mut fake = Fake {
        refuse: vec!["fault_fentry_huge"],
        ..Fake::default()
    };
    attach_plan(&mut plan, &mut fake).expect("attaches");
    let entry = plan
        .iter()
        .find(|p| p.role == Role::FaultEntry)
        .expect("row");
    assert_eq!((entry.status, entry.kind), (Status::Attached, Kind::Kprobe));
    assert_eq!(entry.program, Some("fault_entry"));
    assert_eq!(
        entry.reason.as_deref(),
        Some("trampoline refused (attach: the program is not attached); kprobe used")
    );
    let ret = plan
        .iter()
        .find(|p| p.role == Role::FaultReturn)
        .expect("row");
    assert_eq!(
        (ret.kind, ret.program),
        (Kind::Fexit, Some("fault_fexit_huge"))
    );
    assert_eq!(detach_order(&plan), ["fault_entry", "fault_fexit_huge"]);
}

#[test]
fn entries_learn_how_returns_are_seen_between_the_two_stages() {
    let symbols = "ffffffffc0001000 t vfio_pci_mmap_huge_fault\t[vfio_pci_core]\n";
    // Both trampolines, an fexit refused, and kprobes asked for.
    let mut kprobes = plan_for(V6_1);
    plan::use_kprobes(&mut kprobes, "test");
    let cases = [
        (plan_for(symbols), vec![], true),
        (plan_for(symbols), vec!["fault_fexit_huge"], false),
        (kprobes, vec![], false),
    ];
    for (mut plan, refuse, fexit) in cases {
        let mut fake = Fake {
            refuse,
            ..Fake::default()
        };
        attach_plan(&mut plan, &mut fake).expect("attaches");
        assert_eq!(fake.told.len(), 1, "{:?}", fake.told);
        let (told, after) = fake.told[0];
        assert_eq!(told, fexit, "{:?}", fake.calls);
        let stages: Vec<Stage> = fake.calls.iter().map(|c| stage_of(&plan, c)).collect();
        assert!(
            stages[..after].iter().all(|s| *s != Stage::Entry),
            "{:?}",
            fake.calls
        );
        assert!(
            stages[after..].iter().all(|s| *s == Stage::Entry),
            "{:?}",
            fake.calls
        );
        assert!(after < stages.len());
    }
}

#[test]
fn every_probe_tried_is_timed_and_no_other() {
    let mut plan = plan_for(V6_1);
    let mut fake = Fake {
        refuse: vec!["zap_return"],
        slow: Some("fault_fentry"),
        ..Fake::default()
    };
    attach_plan(&mut plan, &mut fake).expect("attaches");
    for p in &plan {
        let tried = matches!(p.status, Status::Attached | Status::Failed);
        assert_eq!(p.attach_us.is_some(), tried, "{:?} {:?}", p.role, p.status);
    }
    let us = |role| {
        plan.iter()
            .find(|p| p.role == role)
            .and_then(|p| p.attach_us)
            .expect("timed")
    };
    assert!(us(Role::FaultEntry) >= 3000, "{}", us(Role::FaultEntry));
    assert!(us(Role::ZapReturn) < 3000);
    let json = serde_json::to_value(&plan).expect("serializes");
    let absent = json
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["status"] == "absent"))
        .expect("an absent probe");
    assert!(absent.get("attach_us").is_none(), "{absent}");
    // The recording's probe list carries it too.
    for p in &plan {
        let doc = crate::record::document::ProbeDoc::from(p);
        assert_eq!(doc.attach_us, p.attach_us);
    }
}

#[test]
fn skipped_runs_show_on_the_attached_probes_of_their_program() {
    let mut plan = plan_for(V6_1);
    let mut fake = Fake {
        refuse: vec!["zap_return"],
        ..Fake::default()
    };
    attach_plan(&mut plan, &mut fake).expect("attaches");
    let counts = crate::probe::load::KernelCounts {
        skipped_runs: std::collections::BTreeMap::from([("fault_fentry", 1838), ("zap_return", 4)]),
        ..crate::probe::load::KernelCounts::default()
    };
    let docs: Vec<_> = plan
        .iter()
        .map(|p| crate::record::document::ProbeDoc::of(p, &counts))
        .collect();
    let skipped = |program| {
        docs.iter()
            .find(|d| d.program.as_deref() == Some(program))
            .map(|d| d.skipped_runs)
    };
    assert_eq!(skipped("fault_fentry"), Some(Some(1838)));
    assert_eq!(
        skipped("zap_return"),
        Some(None),
        "not attached: nothing ran"
    );
    let json = serde_json::to_value(&docs).expect("serializes");
    let quiet = json
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|p| p["status"] == "attached" && p["program"] != "fault_fentry")
        })
        .expect("another attached probe");
    assert!(quiet.get("skipped_runs").is_none(), "{quiet}");
}

#[test]
fn a_failed_optional_probe_is_recorded_and_the_rest_attach() {
    let mut plan = plan_for(V6_1);
    let mut fake = Fake {
        refuse: vec!["zap_return"],
        ..Fake::default()
    };
    attach_plan(&mut plan, &mut fake).expect("optional failures do not stop tracing");
    let zap = plan
        .iter()
        .find(|p| p.role == Role::ZapReturn)
        .expect("row");
    assert_eq!(zap.status, Status::Failed);
    assert_eq!(
        zap.reason.as_deref(),
        Some("attach: the program is not attached")
    );
    assert!(!fake.calls.iter().any(|c| c.starts_with("unload")));
    let entry = plan
        .iter()
        .find(|p| p.role == Role::FaultEntry)
        .expect("row");
    assert_eq!(entry.status, Status::Attached);
    assert!(!detach_order(&plan).contains(&"zap_return"));
}

#[test]
fn a_failed_required_probe_detaches_everything_in_reverse() {
    let mut plan = plan_for(V6_1);
    plan::use_kprobes(&mut plan, "test");
    let mut fake = Fake {
        refuse: vec!["fault_entry"],
        ..Fake::default()
    };
    let err = attach_plan(&mut plan, &mut fake).expect_err("required");
    assert_eq!(err.role, Role::FaultEntry);
    assert_eq!(
        error_chain(&err),
        "required probe fault_entry did not attach: attach: the program is not attached"
    );
    let attached: Vec<&str> = fake
        .calls
        .iter()
        .take_while(|c| !c.starts_with("probe fault_entry"))
        .filter_map(|c| c.split(' ').nth(1))
        .collect();
    let mut expected: Vec<String> = Vec::new();
    for program in attached.iter().rev() {
        let call = format!("unload {program}");
        if !expected.contains(&call) {
            expected.push(call);
        }
    }
    let unloads: Vec<String> = fake
        .calls
        .iter()
        .filter(|c| c.starts_with("unload"))
        .cloned()
        .collect();
    assert!(!unloads.is_empty());
    assert_eq!(unloads, expected);
    assert!(plan.iter().all(|p| p.status != Status::Attached));
    assert!(detach_order(&plan).is_empty());
}

#[test]
fn an_absent_required_probe_attaches_nothing() {
    let mut plan = plan_for("ffffffff81000000 T vmf_insert_pfn\n");
    let mut fake = Fake::default();
    let err = attach_plan(&mut plan, &mut fake).expect_err("no fault handler");
    assert_eq!(err.role, Role::FaultEntry);
    assert!(error_chain(&err).contains("none of vfio_pci_mmap_huge_fault"));
    assert!(fake.calls.is_empty());
}

#[test]
fn every_program_of_the_table_has_a_stage_order() {
    // Attach order must not depend on program names: one program per stage.
    for row in table::ROWS {
        for c in row.candidates {
            let other = table::ROWS
                .iter()
                .filter(|r| r.candidates.iter().any(|o| o.program == c.program))
                .map(|r| r.role.stage());
            assert!(
                other.clone().all(|s| s == row.role.stage()),
                "{}",
                c.program
            );
        }
    }
}
