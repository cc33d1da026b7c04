//! The shell run in the guest: every scenario's rounds in one boot, then, with
//! bpftrace staged, the same workloads under bpftrace, last, so that kprobes it
//! may leave behind cannot slow any other measurement.

use std::fmt::Write as _;

use super::plan::Scenario;

const TRUTH: &str = include_str!("../../guest/truth.sh");
const BENCH: &str = include_str!("../../guest/bench.sh");

/// The guest's output directory for the bench, relative to /mnt/host/out.
pub const OUT_SUBDIR: &str = "bench";

/// The whole run.sh for one boot: the shell functions, then what calls them.
pub fn guest_script(scenarios: &[&Scenario], rounds: u32, bpftrace: bool) -> String {
    format!("{TRUTH}\n{BENCH}\n{}", calls(scenarios, rounds, bpftrace))
}

fn calls(scenarios: &[&Scenario], rounds: u32, bpftrace: bool) -> String {
    let mut s = String::from("bench_begin\n");
    let each = |function: &str| -> String {
        scenarios.iter().fold(String::new(), |mut s, sc| {
            let _ = writeln!(
                s,
                "{function} {} {} {}",
                sc.name,
                sc.rounds(rounds),
                sc.phases.join(" ")
            );
            s
        })
    };
    s.push_str(&each("bench_scenario"));
    s.push_str("bench_rounds_done\n");
    for sc in scenarios {
        let _ = writeln!(s, "bench_stats {} {}", sc.name, sc.phases.join(" "));
    }
    if bpftrace {
        s.push_str("if bpftrace_start; then\n");
        s.push_str(&each("bench_bpftrace"));
        s.push_str("bpftrace_stop\nfi\n");
    }
    // Failures are in the per-round status files; the run itself succeeded.
    s.push_str("exit 0\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::plan::SCENARIOS;

    #[test]
    fn scenarios_in_order_then_bpftrace_last() {
        let chosen: Vec<&Scenario> = vec![&SCENARIOS[1], &SCENARIOS[0]];
        let s = calls(&chosen, 5, true);
        let at = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("no {needle:?}"));
        assert!(at("bench_begin\n") < at("bench_scenario storm-1g 3 touch:4k:1g:4k\n"));
        assert!(at("bench_scenario storm-1g") < at("bench_scenario storm-64m 5 touch:4k:64m:4k\n"));
        assert!(at("bench_scenario storm-64m") < at("bench_rounds_done"));
        assert!(at("bench_rounds_done") < at("bench_stats storm-64m touch:4k:64m:4k\n"));
        assert!(at("bench_stats storm-64m") < at("if bpftrace_start"));
        assert!(at("if bpftrace_start") < at("bench_bpftrace storm-64m 5"));
        assert!(at("bench_bpftrace storm-64m") < at("bpftrace_stop"));
        assert!(s.ends_with("exit 0\n"));
    }

    #[test]
    fn repeated_phases_and_no_bpftrace() {
        let refault = SCENARIOS.iter().find(|s| s.name == "refault");
        let chosen: Vec<&Scenario> = refault.into_iter().collect();
        let s = calls(&chosen, 6, false);
        let line = s
            .lines()
            .find(|l| l.starts_with("bench_scenario refault 6 "))
            .unwrap_or_default();
        assert_eq!(line.matches("refault:4k:4m:4k").count(), 8);
        assert!(!s.contains("bpftrace_start"));
    }

    /// `bench_scenario`'s orders, from its `N) order="..." ;;` lines.
    fn orders() -> Vec<Vec<&'static str>> {
        BENCH
            .lines()
            .filter_map(|l| l.trim().split_once(") order=\""))
            .map(|(_, rest)| rest.trim_end_matches("\" ;;").split(' ').collect())
            .collect()
    }

    #[test]
    fn modes_rotate_in_a_balanced_latin_square() {
        let orders = orders();
        let modes = [
            "untraced",
            "tracefs",
            "record",
            "events",
            "floor-fentry",
            "floor-kprobe",
        ];
        assert_eq!(orders.len(), modes.len(), "{orders:?}");
        for (place, _) in modes.iter().enumerate() {
            let mut at: Vec<&str> = orders.iter().map(|o| o[place]).collect();
            at.sort_unstable();
            let mut all = modes.to_vec();
            all.sort_unstable();
            assert_eq!(at, all, "each mode once in place {place}");
        }
        // Every ordered pair of modes is adjacent exactly once: no mode
        // always follows another.
        for a in modes {
            for b in modes.iter().filter(|&&b| b != a) {
                let n = orders
                    .iter()
                    .filter(|o| o.windows(2).any(|w| w == [a, *b]))
                    .count();
                assert_eq!(n, 1, "{b} after {a}");
            }
        }
    }
}
