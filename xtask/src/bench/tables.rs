//! The three tables of a run in bench.md: phase times, what tracing adds, and
//! record's own costs. Unknown figures print as `n/a`.

use std::fmt::Write as _;

use super::report::{Mode, ModeReport, RunReport, ScenarioReport};

pub const NA: &str = "n/a";
const MODES: [Mode; 8] = [
    Mode::Untraced,
    Mode::Tracefs,
    Mode::Record,
    Mode::Events,
    Mode::Serve,
    Mode::FloorFentry,
    Mode::FloorKprobe,
    Mode::Bpftrace,
];
/// The modes that add to untraced; the floor has its own table (floor.rs).
const TRACED: [Mode; 5] = [
    Mode::Tracefs,
    Mode::Record,
    Mode::Events,
    Mode::Serve,
    Mode::Bpftrace,
];

/// Milliseconds from nanoseconds, with the precision that matters at that size.
pub fn ms(ns: f64) -> String {
    let ms = ns / 1e6;
    if ms.abs() < 10.0 {
        format!("{ms:.2}")
    } else if ms.abs() < 1000.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

pub fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| NA.to_owned(), f)
}

fn mode(s: &ScenarioReport, m: Mode) -> Option<&ModeReport> {
    s.modes.iter().find(|r| r.mode == m)
}

fn phase_cell(s: &ScenarioReport, m: Mode) -> String {
    opt(mode(s, m).and_then(|r| r.phase_ns), |p| {
        format!("{} ({}-{})", ms(p.median), ms(p.min), ms(p.max))
    })
}

pub fn us_per_fault(s: &ScenarioReport, m: Mode) -> String {
    opt(mode(s, m).and_then(|r| r.cost.added_ns_per_fault), |ns| {
        format!("{:.2}", ns / 1000.0)
    })
}

pub fn ratio(v: Option<f64>) -> String {
    opt(v, |x| format!("{x:.2}x"))
}

pub fn run_title(r: &RunReport) -> String {
    format!(
        "## {} ({}), smp {}, {}",
        r.kernel,
        r.release.as_deref().unwrap_or("release unknown"),
        r.smp,
        r.accel
    )
}

pub fn timing_table(out: &mut String, run: &RunReport) {
    out.push_str("\nPhase time in ms, median (min-max):\n\n");
    out.push_str("| scenario | rounds | faults |");
    for m in MODES {
        let _ = write!(out, " {} |", m.label());
    }
    out.push_str("\n|---|---|---|");
    out.push_str(&"---|".repeat(MODES.len()));
    out.push('\n');
    for s in &run.scenarios {
        let _ = write!(
            out,
            "| {} | {} | {} |",
            s.name,
            s.rounds,
            opt(s.fault_basis, |f| f.to_string())
        );
        for m in MODES {
            let _ = write!(out, " {} |", phase_cell(s, m));
        }
        out.push('\n');
    }
}

pub fn cost_table(out: &mut String, run: &RunReport) {
    out.push_str(
        "\nWhat tracing adds: µs per fault, ratio to untraced, and added time over tracefs's:\n\n",
    );
    out.push_str("| scenario |");
    for m in TRACED {
        let _ = write!(out, " {} µs/fault |", m.label());
    }
    for m in TRACED {
        let _ = write!(out, " {} ratio |", m.label());
    }
    out.push_str(
        " **vfio-trace / tracefs** | vfio-trace --events / tracefs | vfio-trace serve / tracefs | bpftrace / tracefs |\n|---|",
    );
    out.push_str(&"---|".repeat(2 * TRACED.len() + 4));
    out.push('\n');
    for s in &run.scenarios {
        let _ = write!(out, "| {} |", s.name);
        for m in TRACED {
            let _ = write!(out, " {} |", us_per_fault(s, m));
        }
        for m in TRACED {
            let _ = write!(out, " {} |", ratio(mode(s, m).and_then(|r| r.cost.ratio)));
        }
        let _ = writeln!(
            out,
            " **{}** | {} | {} | {} |",
            ratio(s.vfio_trace_vs_tracefs),
            ratio(s.events_vs_tracefs),
            ratio(s.serve_vs_tracefs),
            ratio(s.bpftrace_vs_tracefs),
        );
    }
}

pub fn record_table(out: &mut String, run: &RunReport) {
    out.push_str("\nvfio-trace record itself, medians per round (lost: summed over rounds):\n\n");
    out.push_str("| scenario | attach ms | outside phase ms, untraced / record | events | lost | losses | BPF ns/run | collector CPU ns/event (ring read, model) | wake-ups/1000 events (catch-ups) | max RSS MiB | handler calls, record / tracefs | reported 4K p50 µs / untraced µs per fault | --events file lines |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for s in &run.scenarios {
        let c = &s.record;
        let outside = |m| {
            opt(mode(s, m).and_then(|r| r.outside_phase_ms), |x| {
                format!("{x:.0}")
            })
        };
        let losses = opt(c.losses.as_ref(), |l| {
            if l.is_empty() {
                "none".to_owned()
            } else {
                l.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        });
        let collector_cpu = format!(
            "{} ({}, {})",
            opt(c.cpu_ns_per_event, |x| format!("{x:.0}")),
            opt(c.read_ns_per_event, |x| format!("{x:.0}")),
            opt(c.ingest_ns_per_event, |x| format!("{x:.0}")),
        );
        let wakeups = format!(
            "{} ({})",
            opt(c.wakeups_per_1000_events, |x| format!("{x:.1}")),
            opt(c.catch_ups, |x| x.to_string())
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} |",
            s.name,
            opt(c.attach_ms, |x| format!("{x:.0}")),
            outside(Mode::Untraced),
            outside(Mode::Record),
            opt(c.events, |x| format!("{x:.0}")),
            opt(c.lost_events, |x| x.to_string()),
            losses,
            opt(c.bpf_ns_per_run, |x| format!("{x:.0}")),
            collector_cpu,
            wakeups,
            opt(c.max_rss_kib, |x| format!("{:.1}", x / 1024.0)),
            opt(s.recorded_faults, |x| x.to_string()),
            opt(s.tracefs_hits, |x| x.to_string()),
            opt(c.p50_4k_ns, |x| format!("{:.1}", x / 1000.0)),
            opt(untraced_per_fault_us(s), |x| format!("{x:.1}")),
            opt(s.event_lines, |x| x.to_string()),
        );
    }
}

/// The untraced phase time over the faults it cost, in µs.
fn untraced_per_fault_us(s: &ScenarioReport) -> Option<f64> {
    let phase = mode(s, Mode::Untraced)?.phase_ns?.median;
    let faults = s.fault_basis.filter(|f| *f > 0)?;
    Some(phase / faults as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn milliseconds() {
        assert_eq!(super::ms(9.876e6), "9.88");
        assert_eq!(super::ms(87.84e6), "87.8");
        assert_eq!(super::ms(1234.4e6), "1234");
    }
}
