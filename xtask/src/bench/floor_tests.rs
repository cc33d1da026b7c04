//! The floor's figures and checks from made-up rounds.

use super::*;
use crate::bench::stats::{Cost, Spread};

fn mode(mode: Mode, median: f64, untraced: f64, faults: f64) -> ModeReport {
    ModeReport {
        mode,
        phase_ns: Some(Spread {
            median,
            min: median - 1.0,
            max: median + 1.0,
            mad: 0.5,
            n: 5,
        }),
        samples_ns: vec![],
        outside_phase_ms: None,
        cost: Cost {
            added_ns_per_fault: (mode != Mode::Untraced).then(|| (median - untraced) / faults),
            ratio: None,
        },
        failed_rounds: 0,
    }
}

fn modes(fentry: f64, kprobe: f64) -> Vec<ModeReport> {
    vec![
        mode(Mode::Untraced, 88.0, 88.0, 1.0),
        mode(Mode::Tracefs, 163.0, 88.0, 1.0),
        mode(Mode::FloorFentry, fentry, 88.0, 1.0),
        mode(Mode::FloorKprobe, kprobe, 88.0, 1.0),
    ]
}

fn programs(m: Mode) -> Vec<String> {
    match m {
        Mode::FloorFentry => vec!["floor_fentry (fentry)".into(), "floor_fexit (fexit)".into()],
        _ => vec![],
    }
}

#[test]
fn a_floor_above_half_tracefs_puts_the_target_out_of_reach() {
    let mut notes = Vec::new();
    // tracefs adds 75; the fentry floor 45 (0.6x), the kprobe floor 60 (0.8x).
    let f = report(
        &modes(133.0, 148.0),
        Some(163.0),
        Some(88.0),
        programs,
        &mut notes,
    );
    assert_eq!(f.tracefs_added_ns_per_fault, Some(75.0));
    assert_eq!(f.target_ns_per_fault, Some(37.5));
    assert_eq!(f.fentry_added_ns_per_fault, Some(45.0));
    assert!((f.fentry_vs_tracefs.expect("known") - 0.6).abs() < 1e-9);
    assert!((f.kprobe_vs_tracefs.expect("known") - 0.8).abs() < 1e-9);
    assert_eq!(f.target_below_fentry_floor, Some(true));
    assert_eq!(f.fentry_programs.len(), 2);
    assert_eq!(f.fentry_stands_out, Some(true));
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn a_floor_below_half_tracefs_leaves_room() {
    let mut notes = Vec::new();
    let f = report(
        &modes(103.0, 118.0),
        Some(163.0),
        Some(88.0),
        programs,
        &mut notes,
    );
    assert_eq!(f.target_below_fentry_floor, Some(false));
    let line = verdict(&scenario(f));
    // 1000x: the test's figures are ns per fault, shown in µs.
    assert!(
        line.contains("leaves 0.02 µs per fault for the programs' work"),
        "{line}"
    );
}

fn scenario(floor: FloorReport) -> ScenarioReport {
    ScenarioReport {
        name: "storm-64m",
        phases: vec![],
        rounds: 5,
        faults: None,
        recorded_faults: None,
        tracefs_hits: None,
        fault_basis: None,
        modes: vec![],
        vfio_trace_vs_tracefs: None,
        events_vs_tracefs: None,
        serve_vs_tracefs: None,
        bpftrace_vs_tracefs: None,
        record: super::super::report::RecordReport::default(),
        event_lines: None,
        floor,
        notes: vec![],
    }
}

#[test]
fn no_verdict_without_a_measurable_tracefs() {
    let mut notes = Vec::new();
    let f = report(&modes(133.0, 148.0), None, Some(88.0), programs, &mut notes);
    assert_eq!(
        (f.target_below_fentry_floor, f.target_ns_per_fault),
        (None, None)
    );
    // The floor's own figures stay: they are what was measured.
    assert_eq!(f.fentry_added_ns_per_fault, Some(45.0));
}

#[test]
fn a_floor_within_the_scatter_is_noted() {
    let mut notes = Vec::new();
    let f = report(
        &modes(88.5, 148.0),
        Some(163.0),
        Some(88.0),
        programs,
        &mut notes,
    );
    assert_eq!(
        notes,
        ["floor-fentry adds 0.000 ms, within the rounds' scatter"]
    );
    assert_eq!(f.fentry_stands_out, Some(false));
    assert!(
        verdict(&scenario(f))
            .ends_with("(the fentry floor is within the rounds' scatter: a loose reading).\n")
    );
}

#[test]
fn floor_rounds_must_show_only_empty_programs() {
    let doc = |attached: &[&str]| Record {
        attached: attached.iter().map(|s| (*s).to_owned()).collect(),
        ..Record::default()
    };
    assert!(
        check(Some(&doc(&[
            "floor_kprobe (kprobe)",
            "floor_kretprobe (kretprobe)"
        ])))
        .is_ok()
    );
    assert_eq!(
        check(None),
        Err("no record document: what ran is unknown".into())
    );
    assert_eq!(
        check(Some(&doc(&[]))),
        Err("record --floor attached nothing".into())
    );
    let e = check(Some(&doc(&[
        "floor_fentry (fentry)",
        "fault_return (kretprobe)",
    ])));
    assert_eq!(
        e,
        Err("record --floor attached more than the floor: floor_fentry (fentry), fault_return (kretprobe)".into())
    );
}
