//! A scenario's figures from its rounds: medians, costs against untraced, the
//! headline, and record's view of itself. Pure.

use std::collections::BTreeMap;

use super::{
    floor,
    parse::{Exercise, Record},
    report::{Mode, ModeReport, RecordReport, Round, ScenarioData, ScenarioReport},
    stats::{self, Cost, to_f64},
};

fn rounds_of(data: &ScenarioData, mode: Mode) -> &[Round] {
    data.modes
        .iter()
        .find(|(m, _)| *m == mode)
        .map_or(&[], |(_, r)| r.as_slice())
}

fn ok_exercises(rounds: &[Round]) -> impl Iterator<Item = (&Round, &Exercise)> {
    rounds
        .iter()
        .filter_map(|r| r.exercise.as_ref().ok().map(|e| (r, e)))
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "non-negative and far below 2^52: the cast is exact after rounding"
)]
fn median_u64(values: impl Iterator<Item = u64>) -> Option<u64> {
    let v: Vec<f64> = values.map(to_f64).collect();
    stats::median(&v).map(|m| m.round() as u64)
}

/// Serve rounds whose scrape counted other than record's median: a scrape
/// drains the rings first, so it must count what record counts.
fn scrapes_against_record(data: &ScenarioData, recorded: Option<u64>) -> Vec<String> {
    let Some(rec) = recorded else {
        return Vec::new();
    };
    rounds_of(data, Mode::Serve)
        .iter()
        .filter_map(|r| match &r.scrape {
            Some(Ok(s)) if s.faults != rec => Some(format!(
                "{} round {}: its scrape counted {} faults where record counted {rec}",
                Mode::Serve.label(),
                r.number,
                s.faults
            )),
            _ => None,
        })
        .collect()
}

/// tracefs's median, what the headline divides by, unless what tracefs
/// adds is within the rounds' scatter (then a note says so).
fn tracefs_basis(
    untraced: Option<stats::Spread>,
    tracefs: Option<stats::Spread>,
    notes: &mut Vec<String>,
) -> Option<f64> {
    let (u, t) = (untraced?, tracefs?);
    if stats::stands_out(&u, &t) {
        return Some(t.median);
    }
    notes.push(format!(
        "tracefs adds {:.3} ms, within the rounds' scatter: no quotient over it",
        (t.median - u.median) / 1e6
    ));
    None
}

/// Everything about one scenario, from its rounds.
pub fn scenario(data: &ScenarioData) -> ScenarioReport {
    let mut notes = Vec::new();
    let faults = [Mode::Untraced, Mode::Tracefs, Mode::Record, Mode::Events]
        .iter()
        .find_map(|&m| {
            ok_exercises(rounds_of(data, m))
                .next()
                .map(|(_, e)| e.faults)
        });
    let record_docs: Vec<&Record> = rounds_of(data, Mode::Record)
        .iter()
        .filter_map(|r| r.record.as_ref()?.as_ref().ok())
        .collect();
    let recorded_faults = median_u64(record_docs.iter().filter_map(|r| r.faults));
    notes.extend(scrapes_against_record(data, recorded_faults));
    let tracefs_hits = median_u64(
        rounds_of(data, Mode::Tracefs)
            .iter()
            .filter_map(|r| r.tracefs_hits),
    );
    let fault_basis = match (faults, recorded_faults) {
        // Before 6.10 a mapping faults once, where exercise expects (for 6.12+)
        // a fault per page: then the handler calls are the count that means
        // something. Small differences are huge-fault attempts that fell back.
        (Some(f), Some(r)) if r.saturating_mul(2) < f || f.saturating_mul(2) < r => {
            notes.push(format!(
                "the handler ran {r} times where exercise expects {f} faults (on 6.12+); per-fault figures use {r}"
            ));
            Some(r)
        }
        (f, r) => f.or(r),
    };

    let phase = |mode: Mode| {
        let v: Vec<f64> = ok_exercises(rounds_of(data, mode))
            .map(|(_, e)| to_f64(e.elapsed_ns))
            .collect();
        stats::spread(&v)
    };
    let untraced = phase(Mode::Untraced).map(|s| s.median);
    let mut modes = Vec::new();
    for (mode, rounds) in &data.modes {
        let spread = phase(*mode);
        for r in rounds {
            if let Err(e) = &r.exercise {
                notes.push(format!("{} round {}: {e}", mode.label(), r.number));
            }
            if let Some(Err(e)) = &r.record {
                notes.push(format!("{} round {}: {e}", mode.label(), r.number));
            }
        }
        let outside: Vec<f64> = ok_exercises(rounds)
            .filter_map(|(r, e)| Some(r.wall_ms? - to_f64(e.elapsed_ns) / 1e6))
            .collect();
        modes.push(ModeReport {
            mode: *mode,
            phase_ns: spread,
            samples_ns: ok_exercises(rounds).map(|(_, e)| e.elapsed_ns).collect(),
            outside_phase_ms: stats::median(&outside),
            cost: if *mode == Mode::Untraced {
                Cost::default()
            } else {
                stats::cost(spread.map(|s| s.median), untraced, fault_basis)
            },
            failed_rounds: rounds.iter().filter(|r| r.exercise.is_err()).count(),
        });
    }
    let spread_of = |mode: Mode| {
        modes
            .iter()
            .find(|m| m.mode == mode)
            .and_then(|m| m.phase_ns)
    };
    let median_of = |mode: Mode| spread_of(mode).map(|s| s.median);
    let tracefs = tracefs_basis(
        spread_of(Mode::Untraced),
        spread_of(Mode::Tracefs),
        &mut notes,
    );
    let floor = floor::report(&modes, tracefs, untraced, |m| attached(data, m), &mut notes);
    ScenarioReport {
        name: data.name,
        phases: data.phases.clone(),
        rounds: data.rounds,
        faults,
        recorded_faults,
        tracefs_hits,
        fault_basis,
        vfio_trace_vs_tracefs: stats::added_vs(median_of(Mode::Record), tracefs, untraced),
        events_vs_tracefs: stats::added_vs(median_of(Mode::Events), tracefs, untraced),
        serve_vs_tracefs: stats::added_vs(median_of(Mode::Serve), tracefs, untraced),
        bpftrace_vs_tracefs: stats::added_vs(median_of(Mode::Bpftrace), tracefs, untraced),
        modes,
        record: record_report(
            &record_docs,
            data.stats.as_ref().and_then(|s| s.as_ref().ok()),
        ),
        event_lines: event_lines(data),
        floor,
        notes,
    }
}

/// What the first round of `mode` with a record document attached.
fn attached(data: &ScenarioData, mode: Mode) -> Vec<String> {
    rounds_of(data, mode)
        .iter()
        .find_map(|r| r.record.as_ref()?.as_ref().ok())
        .map(|r| r.attached.clone())
        .unwrap_or_default()
}

/// Median lines of the events mode's files.
fn event_lines(data: &ScenarioData) -> Option<u64> {
    median_u64(
        rounds_of(data, Mode::Events)
            .iter()
            .filter_map(|r| r.event_lines.map(|l| l.total)),
    )
}

fn record_report(docs: &[&Record], with_stats: Option<&Record>) -> RecordReport {
    let med = |f: &dyn Fn(&Record) -> Option<f64>| {
        stats::median(&docs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    let lost: Vec<u64> = docs.iter().filter_map(|r| r.lost_events).collect();
    let catch_ups: Vec<u64> = docs.iter().filter_map(|r| r.catch_ups).collect();
    let mut losses: Option<BTreeMap<String, u64>> = None;
    for r in docs {
        if let Some(l) = &r.losses {
            let sum = losses.get_or_insert_default();
            for (cause, n) in l {
                *sum.entry(cause.clone()).or_default() += n;
            }
        }
    }
    RecordReport {
        attach_ms: med(&|r| r.attach_ms),
        events: med(&|r| r.events.map(to_f64)),
        lost_events: (!lost.is_empty()).then(|| lost.iter().sum()),
        losses,
        bpf_ns_per_run: with_stats
            .and_then(|r| stats::per(r.bpf_run_ns, r.bpf_run_cnt))
            .or_else(|| med(&|r| stats::per(r.bpf_run_ns, r.bpf_run_cnt))),
        p50_4k_ns: med(&|r| r.p50_4k_ns.map(to_f64)),
        cpu_ns_per_event: med(&|r| stats::per(r.cpu_ns, r.events)),
        read_ns_per_event: med(&|r| stats::per(r.read_ns, r.events)),
        ingest_ns_per_event: med(&|r| stats::per(r.ingest_ns, r.events)),
        wakeups_per_1000_events: med(&|r| stats::per(r.wakeups, r.events).map(|x| x * 1000.0)),
        catch_ups: (!catch_ups.is_empty()).then(|| catch_ups.iter().sum()),
        max_rss_kib: med(&|r| r.max_rss_kib.map(to_f64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::events::Lines;

    fn rounds(ns: &[u64], faults: u64) -> Vec<Round> {
        ns.iter()
            .zip(1..)
            .map(|(&elapsed_ns, round)| Round {
                number: round,
                exercise: Ok(Exercise { elapsed_ns, faults }),
                wall_ms: Some(to_f64(elapsed_ns) / 1e6 + 50.0),
                record: None,
                event_lines: None,
                tracefs_hits: None,
                scrape: None,
            })
            .collect()
    }

    fn data() -> ScenarioData {
        let mut record = rounds(&[664, 627, 694, 650, 670], 16384);
        for r in &mut record {
            r.record = Some(Ok(Record {
                faults: Some(16384),
                lost_events: Some(1),
                events: Some(16384),
                wakeups: Some(164),
                read_ns: Some(16384 * 500),
                ..Record::default()
            }));
        }
        record[2].exercise = Err("exit 1".into());
        let mut events = rounds(&[700, 690, 720, 705, 710], 16384);
        for r in &mut events {
            r.record = Some(Ok(Record {
                faults: Some(16384),
                ..Record::default()
            }));
            r.event_lines = Some(Lines {
                total: 16390,
                faults: 16384,
            });
        }
        ScenarioData {
            name: "storm-64m",
            phases: vec!["touch:4k:64m:4k".into()],
            rounds: 5,
            modes: vec![
                (Mode::Untraced, rounds(&[88, 87, 91, 89, 90], 16384)),
                (Mode::Tracefs, rounds(&[163, 161, 167, 162, 164], 16384)),
                (Mode::Record, record),
                (Mode::Events, events),
            ],
            stats: Some(Ok(Record {
                bpf_run_ns: Some(3_000_000),
                bpf_run_cnt: Some(32_768),
                ..Record::default()
            })),
        }
    }

    #[test]
    fn serve_is_a_tracer_and_its_scrapes_must_count_what_record_counts() {
        use crate::bench::serve::Scrape;
        let mut d = data();
        let mut serve = rounds(&[300, 310, 290, 305, 295], 16384);
        for (r, faults) in serve.iter_mut().zip([16384, 16384, 16000, 16384, 16384]) {
            r.scrape = Some(Ok(Scrape { faults, lost: 0 }));
        }
        d.modes.push((Mode::Serve, serve));
        let r = scenario(&d);
        // (300 - 89) / (163 - 89): serve's added time over tracefs's.
        let vs = r.serve_vs_tracefs.expect("known");
        assert!((vs - 211.0 / 74.0).abs() < 1e-9, "{vs}");
        let stale: Vec<&String> = r.notes.iter().filter(|n| n.contains("scrape")).collect();
        assert_eq!(
            stale,
            [
                "vfio-trace serve round 3: its scrape counted 16000 faults where record counted 16384"
            ]
        );
    }

    #[test]
    fn medians_costs_and_headline() {
        let r = scenario(&data());
        // BPF run time comes from the separate run with stats on.
        let per_run = r.record.bpf_ns_per_run.expect("from the stats run");
        assert!((per_run - 3_000_000.0 / 32_768.0).abs() < 1e-6, "{per_run}");
        assert_eq!(
            (r.faults, r.recorded_faults, r.fault_basis),
            (Some(16384), Some(16384), Some(16384))
        );
        let vt = &r.modes[2];
        assert_eq!(vt.failed_rounds, 1);
        // 694 failed: the median of 627, 650, 664, 670.
        assert_eq!(vt.phase_ns.map(|s| s.median), Some(657.0));
        let headline = r.vfio_trace_vs_tracefs.expect("known");
        assert!((headline - (657.0 - 89.0) / (163.0 - 89.0)).abs() < 1e-9);
        assert_eq!(r.bpftrace_vs_tracefs, None);
        // Record's own view comes from record's rounds alone.
        assert_eq!(r.record.events, Some(16384.0));
        // Its record document is sound even where the exercise failed.
        assert_eq!(r.record.lost_events, Some(5));
        assert_eq!(r.record.wakeups_per_1000_events, Some(10.009_765_625));
        assert_eq!(r.record.read_ns_per_event, Some(500.0));
        assert_eq!(r.record.ingest_ns_per_event, None);
        assert_eq!(r.record.attach_ms, None);
        assert!(r.notes.iter().any(|n| n == "vfio-trace round 3: exit 1"));
        assert!(
            r.modes[0]
                .outside_phase_ms
                .is_some_and(|ms| (ms - 50.0).abs() < 1e-6)
        );
    }

    #[test]
    fn events_mode_beside_record() {
        let r = scenario(&data());
        let ev = &r.modes[3];
        assert_eq!(ev.mode, Mode::Events);
        assert_eq!(ev.failed_rounds, 0);
        assert_eq!(ev.phase_ns.map(|s| s.median), Some(705.0));
        let added = ev.cost.added_ns_per_fault.expect("known");
        assert!((added - (705.0 - 89.0) / 16384.0).abs() < 1e-9, "{added}");
        let headline = r.events_vs_tracefs.expect("known");
        assert!((headline - (705.0 - 89.0) / (163.0 - 89.0)).abs() < 1e-9);
        assert_eq!(r.event_lines, Some(16390));
        // Without events rounds there is no such figure, and no failure.
        let mut d = data();
        d.modes.pop();
        let r = scenario(&d);
        assert_eq!((r.events_vs_tracefs, r.event_lines), (None, None));
    }

    #[test]
    fn no_headline_within_the_noise() {
        let mut d = data();
        d.modes[1].1 = rounds(&[90, 88, 91, 87, 89], 16384);
        let r = scenario(&d);
        assert_eq!(r.vfio_trace_vs_tracefs, None);
        assert_eq!(r.events_vs_tracefs, None);
        assert!(
            r.notes
                .iter()
                .any(|n| n.starts_with("tracefs adds 0.000 ms, within"))
        );
        // The per-fault figures stay: they are what was measured.
        assert!(r.modes[2].cost.added_ns_per_fault.is_some());
    }

    #[test]
    fn a_different_recorded_count_becomes_the_basis() {
        let mut d = data();
        for (_, rounds) in &mut d.modes {
            for r in rounds {
                if let Some(Ok(rec)) = &mut r.record {
                    rec.faults = Some(1);
                }
            }
        }
        let r = scenario(&d);
        assert_eq!(r.fault_basis, Some(1));
        assert!(r.notes[0].starts_with("the handler ran 1 times"));
        // Fallbacks make a few more handler calls than faults: no change.
        for (_, rounds) in &mut d.modes {
            for r in rounds {
                if let Some(Ok(rec)) = &mut r.record {
                    rec.faults = Some(16448);
                }
            }
        }
        assert_eq!(scenario(&d).fault_basis, Some(16384));
    }
}
