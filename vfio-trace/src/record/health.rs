//! What tracing cost and what it missed: losses by cause, the collector's own
//! work, and anything that went wrong on the way. Every figure is present,
//! at 0 when nothing happened, so a reader never mistakes "not counted" for
//! "none".

use serde::{Deserialize, Serialize};
use vfio_trace_common::counter;

use crate::probe::{load::KernelCounts, session::RingCount};

/// Events lost, by cause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossesDoc {
    /// A ring buffer was full.
    pub ring_full: u64,
    /// No per-task slot for an event in flight.
    pub inflight_full: u64,
    /// A zap's stack could not be stored (its cause reads unknown; the zap counts).
    pub stack_failed: u64,
    /// A fault's return was never seen: kretprobe instances ran out, or
    /// the kernel skipped an fexit run.
    pub missed_return: u64,
    /// Ring records too short or of an unknown kind.
    pub undecodable: u64,
    /// Program runs the kernel skipped to avoid recursion (a program of
    /// another tool already running on that CPU).
    pub recursion: u64,
}

impl LossesDoc {
    pub fn new(counts: &KernelCounts, rings: &[RingCount]) -> Self {
        let by = |which: u32| counts.counters[which as usize];
        Self {
            ring_full: by(counter::RING_FULL),
            inflight_full: by(counter::INFLIGHT_FULL),
            stack_failed: by(counter::STACK_FAILED),
            missed_return: counts.missed_returns(),
            undecodable: rings.iter().map(|r| r.stats.undecodable).sum(),
            recursion: counts.recursion_misses,
        }
    }

    /// Events lost; a stack that could not be stored loses no event.
    pub fn events(&self) -> u64 {
        self.ring_full + self.inflight_full + self.missed_return + self.undecodable + self.recursion
    }
}

/// The collector's own work while it traced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectorDoc {
    /// From loading the programs to every probe attached.
    pub attach_ms: f64,
    /// Events read from the rings (mapping records apart).
    pub events: u64,
    /// Mapping records read: each comes before the first fault of a thread
    /// in a new mapping, and joins it and the faults after it (not events).
    #[serde(default)]
    pub mappings: u64,
    /// Times the kernel woke a reader; the rest were timer drains.
    pub wakeups: u64,
    pub drains: u64,
    pub wakeups_per_1000_events: f64,
    /// CPU time of this process while tracing (attach to stop), user plus system.
    pub cpu_ns: u64,
    /// CPU time of stopping: detaching every probe and draining the rings.
    pub stop_cpu_ns: u64,
    /// Time spent reading records from the rings and decoding them, and
    /// adding them to the model, over the whole run (the last drain at stop
    /// included): wall-clock time around each.
    #[serde(default)]
    pub read_ns: u64,
    #[serde(default)]
    pub ingest_ns: u64,
    /// Whether the collector gave the CPU way to other work while its rings
    /// had room (nice 13), how often a ring about to run out of room made it
    /// compete at its own priority to catch up, and how often a reader left
    /// a ring that was still filling for later.
    #[serde(default)]
    pub yielded: bool,
    #[serde(default)]
    pub catch_ups: u64,
    #[serde(default)]
    pub deferred: u64,
    /// Peak resident memory of this process.
    pub max_rss_kib: u64,
    /// Time the eBPF programs ran, and how often; 0 unless
    /// `kernel.bpf_stats_enabled` was on.
    pub bpf_run_ns: u64,
    pub bpf_run_cnt: u64,
}

/// Measured around the run by `record`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub attach_ms: f64,
    pub cpu_ns: u64,
    pub stop_cpu_ns: u64,
    pub max_rss_kib: u64,
    /// Time in `Model::ingest`, and in sending events to `--events`.
    pub ingest_ns: u64,
    /// Whether the collector yielded the CPU, and its catch-ups.
    pub yielded: bool,
    pub catch_ups: u64,
}

impl CollectorDoc {
    pub fn new(usage: Usage, counts: &KernelCounts, rings: &[RingCount]) -> Self {
        let events: u64 = rings.iter().map(|r| r.stats.events).sum();
        let wakeups: u64 = rings.iter().map(|r| r.stats.wakeups).sum();
        Self {
            attach_ms: usage.attach_ms,
            events,
            mappings: rings.iter().map(|r| r.stats.mappings).sum(),
            wakeups,
            drains: rings.iter().map(|r| r.stats.drains).sum(),
            wakeups_per_1000_events: if events == 0 {
                0.0
            } else {
                wakeups as f64 * 1000.0 / events as f64
            },
            cpu_ns: usage.cpu_ns,
            stop_cpu_ns: usage.stop_cpu_ns,
            read_ns: rings.iter().map(|r| r.stats.read_ns).sum(),
            ingest_ns: usage.ingest_ns,
            yielded: usage.yielded,
            catch_ups: usage.catch_ups,
            deferred: rings.iter().map(|r| r.stats.deferred).sum(),
            max_rss_kib: usage.max_rss_kib,
            bpf_run_ns: counts.bpf_run_ns,
            bpf_run_cnt: counts.bpf_run_cnt,
        }
    }
}

/// Failures of the tracer itself. Counters are 0 and flags true when
/// nothing went wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthDoc {
    /// Readers that failed, with why: their ring's later events are lost.
    pub reader_errors: Vec<String>,
    /// Ring records too short or of an unknown kind, dropped.
    pub undecodable_records: u64,
    /// Zap stacks the kernel could not store: those zaps' causes read unknown.
    pub stack_failures: u64,
    /// Zaps whose stored stack was not found when the stacks were read.
    pub stacks_unresolved: u64,
    /// False when a loss counter could not be read: losses are then a floor.
    pub loss_maps_readable: bool,
    /// False when the zap stacks could not be read: every zap cause reads unknown.
    pub stack_map_readable: bool,
    /// Fault returns never seen (kretprobe instances ran out).
    pub missed_returns: u64,
    /// Program runs the kernel skipped to avoid recursion.
    pub recursion_misses: u64,
    /// Faults on pages beyond their BAR's size: counted, not placed on a page.
    pub pages_out_of_range: u64,
    /// Diagnostics the eBPF programs logged on rare paths (printed with
    /// `--verbose`); each kind comes at most once per run.
    #[serde(default)]
    pub kernel_diagnostics: u64,
}

/// What the tracer saw go wrong, from the session and the model.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthInputs {
    pub stack_map_readable: bool,
    pub stacks_unresolved: u64,
    pub pages_out_of_range: u64,
}

impl HealthDoc {
    pub fn new(counts: &KernelCounts, rings: &[RingCount], seen: HealthInputs) -> Self {
        let losses = LossesDoc::new(counts, rings);
        Self {
            reader_errors: rings
                .iter()
                .filter_map(|r| {
                    let ring = r.device.map_or("shared".into(), |d| d.to_string());
                    r.error.as_ref().map(|e| format!("{ring}: {e}"))
                })
                .chain(
                    counts
                        .diagnostics_error
                        .as_ref()
                        .map(|e| format!("kernel diagnostics: {e}")),
                )
                .collect(),
            undecodable_records: losses.undecodable,
            stack_failures: losses.stack_failed,
            stacks_unresolved: seen.stacks_unresolved,
            loss_maps_readable: counts.loss_maps_readable,
            stack_map_readable: seen.stack_map_readable,
            missed_returns: losses.missed_return,
            recursion_misses: losses.recursion,
            pages_out_of_range: seen.pages_out_of_range,
            kernel_diagnostics: counts.diagnostics,
        }
    }

    /// One line per thing that went wrong; none when all is well.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .reader_errors
            .iter()
            .map(|e| format!("ring reader failed: {e}"))
            .collect();
        if !self.loss_maps_readable {
            out.push("loss counters unreadable: losses are a floor".into());
        }
        if !self.stack_map_readable {
            out.push("zap stack map unreadable: every zap cause is unknown".into());
        }
        for (n, what) in [
            (self.undecodable_records, "undecodable ring records"),
            (self.stack_failures, "zap stacks the kernel could not store"),
            (self.stacks_unresolved, "zap stacks not found when read"),
            (self.missed_returns, "fault returns missed"),
            (self.recursion_misses, "program runs skipped (recursion)"),
            (self.pages_out_of_range, "faults on pages past their BAR"),
        ] {
            if n > 0 {
                out.push(format!("{what}: {n}"));
            }
        }
        out
    }

    /// True when nothing went wrong.
    pub fn is_clean(&self) -> bool {
        self.problems().is_empty()
    }
}

/// CPU time (user + system) and peak RSS of this process so far.
pub fn own_usage() -> (u64, u64) {
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &raw mut ru);
        ru
    };
    let ns = |tv: libc::timeval| {
        u64::try_from(tv.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(tv.tv_usec).unwrap_or(0) * 1000
    };
    (
        ns(ru.ru_utime) + ns(ru.ru_stime),
        u64::try_from(ru.ru_maxrss).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::rings::ReaderStats;

    fn ring(events: u64, wakeups: u64, undecodable: u64, error: Option<&str>) -> RingCount {
        RingCount {
            device: None,
            stats: ReaderStats {
                events,
                undecodable,
                mappings: events / 1000,
                wakeups,
                drains: wakeups + 1,
                deferred: wakeups * 3,
                read_ns: events * 100,
            },
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn losses_sum_every_cause_that_loses_an_event() {
        let counts = KernelCounts {
            counters: [4, 1, 7, 12, 10],
            loss_maps_readable: true,
            ..KernelCounts::default()
        };
        let rings = [ring(10, 1, 3, None)];
        let l = LossesDoc::new(&counts, &rings);
        assert_eq!(
            (
                l.ring_full,
                l.inflight_full,
                l.stack_failed,
                l.missed_return,
                l.undecodable
            ),
            (4, 1, 7, 2, 3)
        );
        assert_eq!(l.events(), 4 + 1 + 2 + 3);
    }

    #[test]
    fn missed_returns_are_unmatched_entries_or_skipped_fexit_runs() {
        // A kretprobe returns faults: entries and returns are counted.
        let kretprobe = KernelCounts {
            counters: [0, 0, 0, 12, 10],
            ..KernelCounts::default()
        };
        // An fexit does: nothing is counted, and the kernel skipped 3 of its runs.
        let fexit = KernelCounts {
            fexit_returns_skipped: 3,
            ..KernelCounts::default()
        };
        let rings = [ring(10, 0, 0, None)];
        assert_eq!(LossesDoc::new(&kretprobe, &rings).missed_return, 2);
        assert_eq!(LossesDoc::new(&fexit, &rings).missed_return, 3);
        assert_eq!(LossesDoc::new(&fexit, &rings).events(), 3);
    }

    #[test]
    fn collector_rates_and_health_flags() {
        let counts = KernelCounts {
            loss_maps_readable: true,
            ..KernelCounts::default()
        };
        let rings = [
            ring(4000, 2, 0, None),
            ring(1000, 0, 0, None),
            ring(0, 0, 0, Some("EBADF")),
        ];
        let usage = Usage {
            ingest_ns: 7,
            yielded: true,
            catch_ups: 3,
            ..Usage::default()
        };
        let c = CollectorDoc::new(usage, &counts, &rings);
        assert_eq!(
            (c.events, c.mappings, c.read_ns, c.ingest_ns),
            (5000, 5, 500_000, 7)
        );
        assert_eq!((c.yielded, c.catch_ups, c.deferred), (true, 3, 6));
        assert!((c.wakeups_per_1000_events - 0.4).abs() < 1e-9);
        let h = HealthDoc::new(&counts, &rings, clean());
        assert_eq!(h.reader_errors, vec!["shared: EBADF".to_owned()]);
        assert_eq!(h.problems(), ["ring reader failed: shared: EBADF"]);
        assert!(HealthDoc::new(&counts, &rings[..2], clean()).is_clean());
    }

    fn clean() -> HealthInputs {
        HealthInputs {
            stack_map_readable: true,
            ..HealthInputs::default()
        }
    }

    #[test]
    fn nothing_wrong_is_all_zero() {
        let counts = KernelCounts {
            loss_maps_readable: true,
            ..KernelCounts::default()
        };
        let h = HealthDoc::new(&counts, &[ring(100, 1, 0, None)], clean());
        assert_eq!(
            h,
            HealthDoc {
                loss_maps_readable: true,
                stack_map_readable: true,
                ..HealthDoc::default()
            }
        );
        assert!(h.problems().is_empty());
    }

    #[test]
    fn every_failure_is_counted_and_named_on_its_own_line() {
        let counts = KernelCounts {
            // stack failures 2, fault entries 10, returns 7.
            counters: [0, 0, 2, 10, 7],
            loss_maps_readable: false,
            recursion_misses: 4,
            ..KernelCounts::default()
        };
        let seen = HealthInputs {
            stack_map_readable: false,
            stacks_unresolved: 3,
            pages_out_of_range: 6,
        };
        let h = HealthDoc::new(&counts, &[ring(5, 1, 9, Some("EIO"))], seen);
        assert_eq!(
            (
                h.undecodable_records,
                h.stack_failures,
                h.stacks_unresolved,
                h.missed_returns,
                h.recursion_misses,
                h.pages_out_of_range
            ),
            (9, 2, 3, 3, 4, 6)
        );
        assert_eq!(
            h.problems(),
            [
                "ring reader failed: shared: EIO",
                "loss counters unreadable: losses are a floor",
                "zap stack map unreadable: every zap cause is unknown",
                "undecodable ring records: 9",
                "zap stacks the kernel could not store: 2",
                "zap stacks not found when read: 3",
                "fault returns missed: 3",
                "program runs skipped (recursion): 4",
                "faults on pages past their BAR: 6",
            ]
        );
    }

    #[test]
    fn kernel_diagnostics_are_counted_and_a_dead_reader_is_an_error() {
        let mut counts = KernelCounts {
            loss_maps_readable: true,
            diagnostics: 2,
            ..KernelCounts::default()
        };
        let h = HealthDoc::new(&counts, &[], clean());
        assert_eq!(h.kernel_diagnostics, 2);
        // Diagnostics are not failures of the tracer.
        assert!(h.is_clean());
        counts.diagnostics_error = Some("map DIAGNOSED not found".into());
        let h = HealthDoc::new(&counts, &[], clean());
        assert_eq!(
            h.reader_errors,
            vec!["kernel diagnostics: map DIAGNOSED not found".to_owned()]
        );
        assert!(!h.is_clean());
    }
}
