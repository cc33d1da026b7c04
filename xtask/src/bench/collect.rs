//! Reading one boot's results back from the guest's output directory (the
//! files guest/bench.sh writes) into a report.

use std::{fs, path::Path};

use super::{
    events, figures, floor, parse,
    plan::Scenario,
    report::{BpftraceReport, Mode, Round, RunReport, ScenarioData, ScenarioReport},
    serve,
};
use crate::suite::truth;

/// What the host knows about a boot before reading its files.
pub struct Boot<'a> {
    pub kernel: &'static str,
    pub smp: u8,
    pub accel: &'static str,
    pub scenarios: &'a [&'static Scenario],
    pub rounds: u32,
    pub bpftrace: Staging,
}

/// Whether the guest had bpftrace to run.
#[derive(Clone)]
pub enum Staging {
    Staged,
    /// `--no-bpftrace`.
    Skipped,
    /// Staging failed on the host; why.
    Unavailable(String),
}

/// Written by the guest once bpftrace's kprobes are registered.
const ATTACHED: &str = "bpftrace/attach.wall";

fn read(dir: &Path, file: &str) -> Option<String> {
    fs::read_to_string(dir.join(file)).ok()
}

fn read_trim(dir: &Path, file: &str) -> Option<String> {
    read(dir, file).map(|s| s.trim().to_owned())
}

/// One round of one mode from `dir` (the scenario's directory).
fn round(dir: &Path, mode: Mode, r: u32) -> Round {
    let stem = format!("{}.{r}", mode.stem());
    let exercise = match read_trim(dir, &format!("{stem}.status")).as_deref() {
        None => Err("no result: the guest stopped before this round".to_owned()),
        Some("0") => read(dir, &format!("{stem}.json"))
            .ok_or_else(|| format!("{stem}.json missing"))
            .and_then(|t| parse::exercise(&t)),
        Some(status) => {
            let stderr = read(dir, &format!("{stem}.stderr")).unwrap_or_default();
            let last = stderr.lines().last().unwrap_or("no stderr");
            Err(format!("exit {status}: {last}"))
        }
    };
    let record = mode.records().then(|| {
        read(dir, &format!("{stem}.record.json"))
            .ok_or_else(|| format!("{stem}.record.json missing"))
            .and_then(|t| parse::record(&t))
    });
    let event_lines = read(dir, &format!("{stem}.lines")).and_then(|t| events::parse(&t));
    let doc = record.as_ref().and_then(|r| r.as_ref().ok());
    // A file short of the faults recorded makes the round a failure, and so
    // does a floor round that ran anything but the empty programs.
    let scrape = (mode == Mode::Serve).then(|| {
        read(dir, &format!("{stem}.prom"))
            .ok_or_else(|| format!("{stem}.prom missing: no scrape after the phase"))
            .and_then(|t| serve::parse(&t))
    });
    let exercise = if mode == Mode::Events {
        exercise.and_then(|e| events::check(event_lines, doc).map(|()| e))
    } else if let Some(scrape) = &scrape {
        exercise.and_then(|e| serve::check(scrape, e.faults).map(|()| e))
    } else if mode.is_floor() {
        exercise.and_then(|e| floor::check(doc).map(|()| e))
    } else {
        exercise
    };
    Round {
        number: r,
        exercise,
        wall_ms: read(dir, &format!("{stem}.wall")).and_then(|t| parse::wall_ms(&t)),
        record,
        event_lines,
        tracefs_hits: (mode == Mode::Tracefs)
            .then(|| read(dir, &format!("{stem}.vt_fault.hist")))
            .flatten()
            .and_then(|t| truth::total(&t)),
        scrape,
    }
}

/// The report of one boot whose guest output is in `out` (/mnt/host/out).
pub fn run_report(out: &Path, boot: &Boot) -> RunReport {
    let bench = out.join(super::script::OUT_SUBDIR);
    let mut modes = vec![
        Mode::Untraced,
        Mode::Tracefs,
        Mode::Record,
        Mode::Events,
        Mode::FloorFentry,
        Mode::FloorKprobe,
        Mode::Serve,
    ];
    if matches!(boot.bpftrace, Staging::Staged) && bench.join(ATTACHED).is_file() {
        modes.push(Mode::Bpftrace);
    }
    let scenarios: Vec<ScenarioReport> = boot
        .scenarios
        .iter()
        .map(|sc| {
            let dir = bench.join(sc.name);
            let rounds = sc.rounds(boot.rounds);
            figures::scenario(&ScenarioData {
                name: sc.name,
                phases: sc.phases.iter().map(|p| (*p).to_owned()).collect(),
                rounds,
                modes: modes
                    .iter()
                    .map(|&m| (m, (1..=rounds).map(|r| round(&dir, m, r)).collect()))
                    .collect(),
                stats: read(&dir, "record.stats.record.json").map(|t| parse::record(&t)),
            })
        })
        .collect();
    let kprobes = |file: &str| read(&bench, file).unwrap_or_default();
    RunReport {
        kernel: boot.kernel,
        smp: boot.smp,
        accel: boot.accel,
        release: read_trim(&bench, "release"),
        cpus_seen: read_trim(&bench, "cpus").and_then(|c| c.parse().ok()),
        bpf_stats_enabled: read_trim(&bench, "bpf_stats").map(|s| s == "1"),
        error: None,
        kprobes_left_after_rounds: parse::new_kprobes(
            &kprobes("kprobes.before"),
            &kprobes("kprobes.after-rounds"),
        ),
        bpftrace: bpftrace(&bench, boot, &scenarios),
        scenarios,
    }
}

fn bpftrace(bench: &Path, boot: &Boot, scenarios: &[ScenarioReport]) -> BpftraceReport {
    let not = |status: &str, reason: String| BpftraceReport {
        status: status.to_owned(),
        reason: Some(reason),
        ..BpftraceReport::default()
    };
    match &boot.bpftrace {
        Staging::Staged => {}
        Staging::Skipped => return not("skipped", "--no-bpftrace".into()),
        Staging::Unavailable(why) => return not("not available", why.clone()),
    }
    let dir = bench.join("bpftrace");
    if let Some(why) = read_trim(&dir, "failed") {
        return not("failed", why);
    }
    let Some(attach_ms) = read(bench, ATTACHED).and_then(|t| parse::wall_ms(&t)) else {
        return not("failed", "it did not start: the guest stopped first".into());
    };
    // The handler calls tracefs saw per run, times bpftrace's runs.
    let expected: Option<u64> = scenarios
        .iter()
        .zip(boot.scenarios)
        .map(|(report, sc)| Some(report.tracefs_hits? * u64::from(sc.rounds(boot.rounds) + 1)))
        .sum();
    BpftraceReport {
        status: "measured".into(),
        reason: None,
        attach_ms: Some(attach_ms),
        stop: read_trim(&dir, "stop"),
        stop_ms: read(&dir, "stop.wall").and_then(|t| parse::wall_ms(&t)),
        kprobes_left: parse::new_kprobes(
            &read(bench, "kprobes.after-rounds").unwrap_or_default(),
            &read(&dir, "kprobes.after").unwrap_or_default(),
        ),
        faults_counted: read(&dir, "log").and_then(|l| parse::bpftrace_faults(&l)),
        faults_expected: expected,
    }
}
