//! bench.md: the document for people, the run's tables (tables.rs) with what
//! happened to bpftrace and to kprobes around them.

use std::fmt::Write as _;

use super::{
    floor,
    report::{Bench, RunReport},
    tables::{NA, cost_table, opt, record_table, run_title, timing_table},
};

fn kprobe_line(what: &str, left: &[String]) -> String {
    if left.is_empty() {
        format!("{what}: none left registered.\n")
    } else {
        format!(
            "**{what}: {} kprobe(s) LEFT REGISTERED:** {}\n",
            left.len(),
            left.join("; ")
        )
    }
}

fn footer(out: &mut String, run: &RunReport) {
    out.push('\n');
    let b = &run.bpftrace;
    match b.status.as_str() {
        "measured" => {
            let _ = writeln!(
                out,
                "bpftrace 0.17: measured last, one session over all scenarios; attached in {} ms; stopped by {} in {} ms; it counted {} handler calls, tracefs {} for the same runs.\n",
                opt(b.attach_ms, |x| format!("{x:.0}")),
                b.stop.as_deref().unwrap_or(NA),
                opt(b.stop_ms, |x| format!("{x:.0}")),
                opt(b.faults_counted, |x| x.to_string()),
                opt(b.faults_expected, |x| x.to_string()),
            );
            out.push_str(&kprobe_line("Kprobes after bpftrace", &b.kprobes_left));
            out.push('\n');
        }
        status => {
            let _ = writeln!(
                out,
                "bpftrace: {status} ({}).\n",
                b.reason.as_deref().unwrap_or("no reason given")
            );
        }
    }
    out.push_str(&kprobe_line(
        "Kprobes after the untraced, tracefs and vfio-trace rounds",
        &run.kprobes_left_after_rounds,
    ));
    let stats = match run.bpf_stats_enabled {
        Some(true) => "on",
        Some(false) => "could not be enabled",
        None => NA,
    };
    let _ = writeln!(
        out,
        "\nBPF run-time stats (kernel.bpf_stats_enabled): {stats}."
    );
    for s in &run.scenarios {
        for n in &s.notes {
            let _ = writeln!(out, "- {}: {n}", s.name);
        }
    }
}

/// The whole document.
pub fn render(bench: &Bench) -> String {
    let mut out = format!(
        "# vfio-trace bench, {} UTC\n\n\
         Each mode runs the same `vfio-trace exercise` phases; the figure is the phases' own \
         time (exercise's `elapsed_ns`: no start-up, no attach). One boot per kernel and vCPU \
         count; per scenario a warm-up, then {} rounds (storm-1g: 3) of untraced, tracefs \
         (kprobe + kretprobe on the fault handler, hist triggers on order and retval), \
         `vfio-trace record` and `vfio-trace record --events FILE` (every event also streamed \
         as JSON Lines; a file with fewer fault lines than record counted fails the round), \
         `vfio-trace serve` (running through the phase and scraped once after it; a scrape \
         that counts no fault or a loss fails the round, and one that counts other than record \
         is noted), and the floor, `vfio-trace record --floor` (empty programs on the fault handler only, \
         as fentry/fexit, and with `--kprobes-only` as kprobe/kretprobe), \
         alternating; last, once over all scenarios, the same runs under \
         bpftrace, compared with the same untraced medians. µs/fault = (median mode - median untraced) / faults; \
         ratio = median mode / median untraced; vfio-trace / tracefs = vfio-trace's added time \
         over tracefs's, the headline. Faults are exercise's count; the handler also runs for \
         huge-fault attempts that fall back, which record and tracefs count. Compare within a \
         boot, not across machines.\n",
        bench.created_utc, bench.rounds
    );
    for run in &bench.runs {
        let _ = write!(out, "\n{}\n", run_title(run));
        if let Some(err) = &run.error {
            let _ = writeln!(out, "\nThe run failed: {err}");
            continue;
        }
        timing_table(&mut out, run);
        cost_table(&mut out, run);
        floor::table(&mut out, run);
        record_table(&mut out, run);
        footer(&mut out, run);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{
        floor::FloorReport,
        report::{BpftraceReport, Mode, ModeReport, RecordReport, ScenarioReport},
        stats::{Cost, Spread},
    };

    fn mode_report(mode: Mode, median: f64, cost: Cost) -> ModeReport {
        ModeReport {
            mode,
            phase_ns: Some(Spread {
                median,
                min: median - 1e6,
                max: median + 2e6,
                mad: 1e6,
                n: 5,
            }),
            samples_ns: vec![],
            outside_phase_ms: Some(40.0),
            cost,
            failed_rounds: 0,
        }
    }

    fn bench() -> Bench {
        let cost = |added: f64, ratio: f64| Cost {
            added_ns_per_fault: Some(added),
            ratio: Some(ratio),
        };
        Bench {
            created_utc: "2026-01-02 03:04:05".into(),
            rounds: 5,
            runs: vec![RunReport {
                kernel: "6.12",
                smp: 1,
                accel: "TCG",
                release: Some("6.12.117+deb12-amd64".into()),
                cpus_seen: Some(1),
                bpf_stats_enabled: Some(true),
                error: None,
                kprobes_left_after_rounds: vec![],
                bpftrace: BpftraceReport {
                    status: "not available".into(),
                    reason: Some("no network".into()),
                    ..BpftraceReport::default()
                },
                scenarios: vec![ScenarioReport {
                    name: "storm-64m",
                    phases: vec!["touch:4k:64m:4k".into()],
                    rounds: 5,
                    faults: Some(16384),
                    recorded_faults: Some(16384),
                    tracefs_hits: Some(16384),
                    fault_basis: Some(16384),
                    modes: vec![
                        mode_report(Mode::Untraced, 88e6, Cost::default()),
                        mode_report(Mode::Tracefs, 163e6, cost(4577.6, 1.852)),
                        mode_report(Mode::Record, 664e6, cost(35156.0, 7.545)),
                        mode_report(Mode::Events, 700e6, cost(37353.5, 7.955)),
                    ],
                    vfio_trace_vs_tracefs: Some(7.68),
                    events_vs_tracefs: Some(8.16),
                    serve_vs_tracefs: None,
                    bpftrace_vs_tracefs: None,
                    record: RecordReport::default(),
                    event_lines: Some(16390),
                    floor: FloorReport::default(),
                    notes: vec![],
                }],
            }],
        }
    }

    #[test]
    fn renders_tables_with_na_for_the_unknown() {
        let md = render(&bench());
        assert!(
            md.contains("## 6.12 (6.12.117+deb12-amd64), smp 1, TCG"),
            "{md}"
        );
        assert!(
            md.contains("| scenario | rounds | faults | untraced | tracefs | vfio-trace | vfio-trace --events | vfio-trace serve | floor-fentry | floor-kprobe | bpftrace |\n|---|---|---|---|---|---|---|---|---|---|---|\n"),
            "{md}"
        );
        assert!(
            md.contains("| storm-64m | 5 | 16384 | 88.0 (87.0-90.0) | 163.0 (162.0-165.0) | 664.0 (663.0-666.0) | 700.0 (699.0-702.0) | n/a | n/a | n/a | n/a |"),
            "{md}"
        );
        assert!(
            md.contains("| vfio-trace --events ratio | vfio-trace serve ratio | bpftrace ratio | **vfio-trace / tracefs** | vfio-trace --events / tracefs | vfio-trace serve / tracefs | bpftrace / tracefs |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "| storm-64m | 4.58 | 35.16 | 37.35 | n/a | n/a | 1.85x | 7.54x | 7.96x | n/a | n/a | **7.68x** | 8.16x | n/a | n/a |"
            ),
            "{md}"
        );
        assert!(md.contains("| storm-64m | n/a | 40 / 40 | n/a | n/a | n/a | n/a | n/a (n/a, n/a) | n/a (n/a) | n/a | 16384 / 16384 | n/a / 5.4 | 16390 |"), "{md}");
        assert!(md.contains("bpftrace: not available (no network)."), "{md}");
        assert!(md.contains("rounds: none left registered."), "{md}");
        // No floor rounds, no floor table.
        assert!(!md.contains("The floor:"), "{md}");
    }

    #[test]
    fn the_floor_table_and_its_verdict() {
        let mut b = bench();
        let s = &mut b.runs[0].scenarios[0];
        let cost = |added: f64| Cost {
            added_ns_per_fault: Some(added),
            ratio: None,
        };
        s.modes
            .push(mode_report(Mode::FloorFentry, 130e6, cost(2563.5)));
        s.modes
            .push(mode_report(Mode::FloorKprobe, 150e6, cost(3784.2)));
        s.floor = FloorReport {
            tracefs_added_ns_per_fault: Some(4577.6),
            target_ns_per_fault: Some(2288.8),
            fentry_added_ns_per_fault: Some(2563.5),
            fentry_vs_tracefs: Some(0.56),
            kprobe_added_ns_per_fault: Some(3784.2),
            kprobe_vs_tracefs: Some(0.827),
            target_below_fentry_floor: Some(true),
            fentry_stands_out: Some(true),
            fentry_programs: vec!["floor_fentry (fentry)".into(), "floor_fexit (fexit)".into()],
            kprobe_programs: vec![],
        };
        let md = render(&b);
        assert!(
            md.contains("| storm-64m | 4.58 | 35.16 | 2.56 | 3.78 | 7.68x | 0.56x | 0.83x | 2.29 | floor_fentry (fentry) + floor_fexit (fexit); n/a |"),
            "{md}"
        );
        assert!(md.contains("- storm-64m: the target (0.5x tracefs) is 2.29 µs per fault; empty fentry/fexit add 2.56 µs (0.56x), empty kprobe/kretprobe 3.78 µs (0.83x): **out of reach**"), "{md}");
    }

    #[test]
    fn bpftrace_measured() {
        let mut b = bench();
        b.runs[0].bpftrace = BpftraceReport {
            status: "measured".into(),
            attach_ms: Some(7740.0),
            stop: Some("SIGKILL: still running 20 s after SIGINT".into()),
            stop_ms: Some(20_100.0),
            kprobes_left: vec!["ffff r vfio_pci_mmap_huge_fault+0x0".into()],
            faults_counted: Some(1_250_060),
            faults_expected: Some(1_250_058),
            ..BpftraceReport::default()
        };
        let md = render(&b);
        assert!(md.contains("attached in 7740 ms; stopped by SIGKILL: still running 20 s after SIGINT in 20100 ms; it counted 1250060 handler calls, tracefs 1250058"), "{md}");
        assert!(
            md.contains("**Kprobes after bpftrace: 1 kprobe(s) LEFT REGISTERED:** ffff r"),
            "{md}"
        );
    }

    #[test]
    fn leftover_kprobes_are_marked() {
        let mut b = bench();
        b.runs[0].kprobes_left_after_rounds = vec!["ffff k vfio_pci_mmap_huge_fault+0x0".into()];
        assert!(render(&b).contains("**Kprobes after the untraced, tracefs and vfio-trace rounds: 1 kprobe(s) LEFT REGISTERED:**"));
    }
}
