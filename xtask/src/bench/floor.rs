//! The floor: what attaching empty programs to the fault handler costs a
//! fault (`record --floor`, as fentry/fexit and as kprobe/kretprobe), set
//! against issue 7's target, at most 0.5x what tracefs adds. Where the empty
//! trampolines alone add more than that, no program on these hooks meets it.

use std::fmt::Write as _;

use serde::Serialize;

use super::{
    parse::Record,
    report::{Mode, ModeReport, RunReport, ScenarioReport},
    stats,
    tables::{NA, opt, ratio, us_per_fault},
};

/// The target: vfio-trace's added time over tracefs's.
pub const TARGET_VS_TRACEFS: f64 = 0.5;

/// A floor round counts only if its document shows empty programs alone:
/// anything else attached would be measured as floor.
pub fn check(doc: Option<&Record>) -> Result<(), String> {
    let Some(doc) = doc else {
        return Err("no record document: what ran is unknown".to_owned());
    };
    if doc.attached.is_empty() {
        return Err("record --floor attached nothing".to_owned());
    }
    if doc.attached.iter().any(|p| !p.starts_with("floor_")) {
        return Err(format!(
            "record --floor attached more than the floor: {}",
            doc.attached.join(", ")
        ));
    }
    Ok(())
}

/// One scenario's floor, per fault, against tracefs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FloorReport {
    pub tracefs_added_ns_per_fault: Option<f64>,
    /// `TARGET_VS_TRACEFS` times tracefs's added time.
    pub target_ns_per_fault: Option<f64>,
    pub fentry_added_ns_per_fault: Option<f64>,
    /// The fentry floor's added time over tracefs's.
    pub fentry_vs_tracefs: Option<f64>,
    pub kprobe_added_ns_per_fault: Option<f64>,
    pub kprobe_vs_tracefs: Option<f64>,
    /// True when the target lies below the fentry floor: out of reach.
    /// `None` when either is unknown.
    pub target_below_fentry_floor: Option<bool>,
    /// Whether the fentry floor stands out of the untraced rounds' scatter;
    /// where it does not, the verdict reads loosely.
    pub fentry_stands_out: Option<bool>,
    /// What the first sound round of each floor mode attached.
    pub fentry_programs: Vec<String>,
    pub kprobe_programs: Vec<String>,
}

/// The floor from the scenario's mode figures. `tracefs` and `untraced` are
/// the medians the headline uses (`tracefs` is `None` when it did not stand
/// out of the scatter); `programs` gives what a mode's rounds attached.
pub fn report(
    modes: &[ModeReport],
    tracefs: Option<f64>,
    untraced: Option<f64>,
    programs: impl Fn(Mode) -> Vec<String>,
    notes: &mut Vec<String>,
) -> FloorReport {
    let find = |m: Mode| modes.iter().find(|r| r.mode == m);
    let added = |m: Mode| find(m).and_then(|r| r.cost.added_ns_per_fault);
    let vs = |m: Mode| stats::added_vs(find(m)?.phase_ns.map(|s| s.median), tracefs, untraced);
    let base = find(Mode::Untraced).and_then(|r| r.phase_ns);
    let stands_out = |m: Mode| Some(stats::stands_out(&base?, &find(m)?.phase_ns?));
    for m in [Mode::FloorFentry, Mode::FloorKprobe] {
        if stands_out(m) == Some(false) {
            let (Some(u), Some(f)) = (base, find(m).and_then(|r| r.phase_ns)) else {
                continue;
            };
            notes.push(format!(
                "{} adds {:.3} ms, within the rounds' scatter",
                m.label(),
                (f.median - u.median) / 1e6
            ));
        }
    }
    let tracefs_added = tracefs.and(added(Mode::Tracefs));
    let fentry_vs_tracefs = vs(Mode::FloorFentry);
    FloorReport {
        tracefs_added_ns_per_fault: added(Mode::Tracefs),
        target_ns_per_fault: tracefs_added.map(|t| t * TARGET_VS_TRACEFS),
        fentry_added_ns_per_fault: added(Mode::FloorFentry),
        fentry_vs_tracefs,
        kprobe_added_ns_per_fault: added(Mode::FloorKprobe),
        kprobe_vs_tracefs: vs(Mode::FloorKprobe),
        target_below_fentry_floor: fentry_vs_tracefs.map(|r| r > TARGET_VS_TRACEFS),
        fentry_stands_out: stands_out(Mode::FloorFentry),
        fentry_programs: programs(Mode::FloorFentry),
        kprobe_programs: programs(Mode::FloorKprobe),
    }
}

fn us(ns: Option<f64>) -> String {
    opt(ns, |x| format!("{:.2}", x / 1000.0))
}

/// What the numbers say about the target, in one line.
pub fn verdict(s: &ScenarioReport) -> String {
    let f = &s.floor;
    let figures = format!(
        "the target ({TARGET_VS_TRACEFS}x tracefs) is {} µs per fault; empty fentry/fexit add {} µs ({}), empty kprobe/kretprobe {} µs ({})",
        us(f.target_ns_per_fault),
        us(f.fentry_added_ns_per_fault),
        ratio(f.fentry_vs_tracefs),
        us(f.kprobe_added_ns_per_fault),
        ratio(f.kprobe_vs_tracefs),
    );
    let conclusion = match (f.target_below_fentry_floor, f.target_ns_per_fault, f.fentry_added_ns_per_fault) {
        (Some(true), _, _) => "**out of reach**: the target is below the fentry floor, so even programs that do nothing miss it".to_owned(),
        (Some(false), Some(t), Some(floor)) => format!(
            "the target is above the fentry floor: it leaves {} µs per fault for the programs' work",
            us(Some(t - floor))
        ),
        (Some(false), _, _) => "the target is above the fentry floor".to_owned(),
        (None, _, _) => "no verdict: tracefs's or the floor's added time is unknown or within the scatter".to_owned(),
    };
    let loose = if f.fentry_stands_out == Some(false) && f.target_below_fentry_floor.is_some() {
        " (the fentry floor is within the rounds' scatter: a loose reading)"
    } else {
        ""
    };
    format!("- {}: {figures}: {conclusion}{loose}.\n", s.name)
}

/// The floor table of a run, and a verdict line per scenario.
pub fn table(out: &mut String, run: &RunReport) {
    if run.scenarios.iter().all(|s| {
        s.modes
            .iter()
            .all(|m| !m.mode.is_floor() || m.phase_ns.is_none())
    }) {
        return;
    }
    out.push_str(
        "\nThe floor: empty programs on the fault handler (`record --floor`), µs added per \
         fault and added time over tracefs's:\n\n",
    );
    out.push_str("| scenario | tracefs µs/fault | vfio-trace µs/fault | floor-fentry µs/fault | floor-kprobe µs/fault | vfio-trace / tracefs | floor-fentry / tracefs | floor-kprobe / tracefs | target µs/fault | floor programs |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for s in &run.scenarios {
        let f = &s.floor;
        let programs = [&f.fentry_programs, &f.kprobe_programs]
            .iter()
            .map(|p| {
                if p.is_empty() {
                    NA.to_owned()
                } else {
                    p.join(" + ")
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.name,
            us_per_fault(s, Mode::Tracefs),
            us_per_fault(s, Mode::Record),
            us_per_fault(s, Mode::FloorFentry),
            us_per_fault(s, Mode::FloorKprobe),
            ratio(s.vfio_trace_vs_tracefs),
            ratio(f.fentry_vs_tracefs),
            ratio(f.kprobe_vs_tracefs),
            us(f.target_ns_per_fault),
            programs,
        );
    }
    out.push('\n');
    for s in &run.scenarios {
        out.push_str(&verdict(s));
    }
}

#[cfg(test)]
#[path = "floor_tests.rs"]
mod tests;
