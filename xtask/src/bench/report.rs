//! The bench's results as one document (bench.json), and the rounds they are
//! computed from (figures.rs computes, collect.rs reads).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    events::Lines,
    floor::FloorReport,
    parse::{Exercise, Record},
    stats::{Cost, Spread},
};

/// How the workload ran. The names are also the guest's file-name stems.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Untraced,
    Tracefs,
    Record,
    /// record with `--events FILE`: every event streamed as JSON Lines.
    Events,
    /// `record --floor`: empty programs on the fault handler, trampolines
    /// where record would use them.
    FloorFentry,
    /// `record --floor --kprobes-only`: the same empty programs as kprobes.
    FloorKprobe,
    /// `vfio-trace serve` running through the phase, scraped after it.
    Serve,
    Bpftrace,
}

impl Mode {
    /// The guest's file-name stem (guest/bench.sh).
    pub fn stem(self) -> &'static str {
        match self {
            Mode::Untraced => "untraced",
            Mode::Tracefs => "tracefs",
            Mode::Record => "record",
            Mode::Events => "events",
            Mode::FloorFentry => "floor-fentry",
            Mode::FloorKprobe => "floor-kprobe",
            Mode::Serve => "serve",
            Mode::Bpftrace => "bpftrace",
        }
    }

    /// Runs `record --floor`, whose document must show the empty programs.
    pub fn is_floor(self) -> bool {
        matches!(self, Mode::FloorFentry | Mode::FloorKprobe)
    }

    /// Runs `vfio-trace record`, which writes a document beside the round.
    pub fn records(self) -> bool {
        matches!(self, Mode::Record | Mode::Events) || self.is_floor()
    }

    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Record => "vfio-trace",
            Mode::Events => "vfio-trace --events",
            Mode::Serve => "vfio-trace serve",
            other => other.stem(),
        }
    }
}

/// One measured round of one mode.
#[derive(Clone, Debug)]
pub struct Round {
    /// 1-based, in the order the rounds ran.
    pub number: u32,
    pub exercise: Result<Exercise, String>,
    pub wall_ms: Option<f64>,
    /// record and events modes only.
    pub record: Option<Result<Record, String>>,
    /// events mode only: the lines of its events file, when counted.
    pub event_lines: Option<Lines>,
    /// tracefs mode only: hits of the handler's kprobe.
    pub tracefs_hits: Option<u64>,
    /// serve mode only: what the scrape after the phase counted.
    pub scrape: Option<Result<super::serve::Scrape, String>>,
}

/// Every measured round (the warm-up excluded) of one scenario, by mode.
#[derive(Clone, Debug)]
pub struct ScenarioData {
    pub name: &'static str,
    pub phases: Vec<String>,
    pub rounds: u32,
    pub modes: Vec<(Mode, Vec<Round>)>,
    /// The record run with BPF stats on, when there was one.
    pub stats: Option<Result<Record, String>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModeReport {
    pub mode: Mode,
    /// The phases' own time, in ns.
    pub phase_ns: Option<Spread>,
    pub samples_ns: Vec<u64>,
    /// Median of the whole command's wall time minus its phase time, in ms:
    /// process start, VFIO setup and, for record, attaching and writing JSON.
    pub outside_phase_ms: Option<f64>,
    #[serde(flatten)]
    pub cost: Cost,
    pub failed_rounds: usize,
}

/// The collector's view of itself, medians over record's rounds unless named a sum.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecordReport {
    pub attach_ms: Option<f64>,
    pub events: Option<f64>,
    /// Summed over the measured rounds.
    pub lost_events: Option<u64>,
    /// Summed over the measured rounds, by cause.
    pub losses: Option<BTreeMap<String, u64>>,
    /// `bpf_run_ns` / `bpf_run_cnt`: per program run, from the separate run with
    /// BPF stats on (the timed rounds run without them).
    pub bpf_ns_per_run: Option<f64>,
    /// Median 4 KiB fault p50 that record reports, to set beside the
    /// untraced time per fault: the tracer's own time stays out of it.
    pub p50_4k_ns: Option<f64>,
    pub cpu_ns_per_event: Option<f64>,
    /// Of that, time reading the rings and time in the model, per event.
    pub read_ns_per_event: Option<f64>,
    pub ingest_ns_per_event: Option<f64>,
    pub wakeups_per_1000_events: Option<f64>,
    /// Summed over the measured rounds: times the collector stopped
    /// yielding the CPU because a ring was about to run out of room.
    pub catch_ups: Option<u64>,
    pub max_rss_kib: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub name: &'static str,
    pub phases: Vec<String>,
    pub rounds: u32,
    /// Faults the workload should cost on 6.12+, from exercise's JSON.
    pub faults: Option<u64>,
    /// Median of record's `devices[].faults.total`: handler calls, which
    /// include huge-fault attempts that fell back to a smaller order.
    pub recorded_faults: Option<u64>,
    /// Median of the tracefs kprobe's hits.
    pub tracefs_hits: Option<u64>,
    /// The count per-fault figures divide by.
    pub fault_basis: Option<u64>,
    pub modes: Vec<ModeReport>,
    /// vfio-trace's added time over tracefs's: the headline.
    pub vfio_trace_vs_tracefs: Option<f64>,
    /// The same for `record --events`.
    pub events_vs_tracefs: Option<f64>,
    /// The same for `serve`.
    pub serve_vs_tracefs: Option<f64>,
    pub bpftrace_vs_tracefs: Option<f64>,
    pub record: RecordReport,
    /// Median lines of the events mode's file, all kinds.
    pub event_lines: Option<u64>,
    /// What empty programs on the fault handler cost, against the target.
    pub floor: FloorReport,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BpftraceReport {
    /// `measured`, `failed`, `not available` or `skipped`.
    pub status: String,
    pub reason: Option<String>,
    /// From start until both kprobes were registered.
    pub attach_ms: Option<f64>,
    /// What ended it: `SIGINT`, or `SIGKILL: ...` when SIGINT did not.
    pub stop: Option<String>,
    /// From the first signal until it was gone.
    pub stop_ms: Option<f64>,
    /// Lines of /sys/kernel/debug/kprobes/list it left behind.
    pub kprobes_left: Vec<String>,
    /// Faults bpftrace counted (its @order map), warm-ups included.
    pub faults_counted: Option<u64>,
    /// Handler calls tracefs counted for the same runs, warm-ups included.
    pub faults_expected: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub kernel: &'static str,
    pub smp: u8,
    pub accel: &'static str,
    pub release: Option<String>,
    pub cpus_seen: Option<u32>,
    pub bpf_stats_enabled: Option<bool>,
    /// Set when the boot itself failed; nothing else is then known.
    pub error: Option<String>,
    /// Kprobes registered after the main rounds that were not there before.
    pub kprobes_left_after_rounds: Vec<String>,
    pub bpftrace: BpftraceReport,
    pub scenarios: Vec<ScenarioReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Bench {
    pub created_utc: String,
    pub rounds: u32,
    pub runs: Vec<RunReport>,
}
