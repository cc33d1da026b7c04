//! What a bench run measures: the scenarios, and the checked choice of kernels,
//! vCPU counts, rounds and scenarios made from the command line.

use anyhow::{Result, bail};

use crate::kernels;

/// A workload, run the same way in every mode.
#[derive(Debug, PartialEq, Eq)]
pub struct Scenario {
    pub name: &'static str,
    /// `vfio-trace exercise` phases, in order; the round's figure is the sum of
    /// their `elapsed_ns`.
    pub phases: &'static [&'static str],
    /// Fewer rounds than asked for, for workloads whose rounds take many seconds.
    pub max_rounds: Option<u32>,
    pub about: &'static str,
}

/// A zap and refault of 4 MiB, 8 times: 8 x 2 x 1024 order-0 faults, the
/// same count as storm-64m, with decode toggles between the passes.
const REFAULT: [&str; 8] = ["refault:4k:4m:4k"; 8];

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "storm-64m",
        phases: &["touch:4k:64m:4k"],
        max_rounds: None,
        about: "64 MiB read every 4 KiB through a 4 KiB-aligned mapping: 16384 order-0 faults",
    },
    Scenario {
        name: "storm-1g",
        phases: &["touch:4k:1g:4k"],
        max_rounds: Some(3),
        about: "the whole 1 GiB BAR read every 4 KiB: 262144 order-0 faults",
    },
    Scenario {
        name: "aligned-2m",
        phases: &["touch:4k:64m:2m"],
        max_rounds: None,
        about: "64 MiB read every 4 KiB through a 2 MiB-aligned mapping: 32 order-9 faults",
    },
    Scenario {
        name: "aligned-1g",
        phases: &["touch:2m:1g:1g"],
        max_rounds: None,
        about: "1 GiB read every 2 MiB through a 1 GiB-aligned mapping: one order-18 fault",
    },
    Scenario {
        name: "refault",
        phases: &REFAULT,
        max_rounds: None,
        about: "8 times: 4 MiB touched, decode toggled (a zap), touched again",
    },
];

impl Scenario {
    /// Measured rounds (after the warm-up) when `asked` were asked for.
    pub fn rounds(&self, asked: u32) -> u32 {
        self.max_rounds.map_or(asked, |max| asked.min(max))
    }
}

pub const DEFAULT_KERNEL: &str = "6.12";
pub const MIN_ROUNDS: u32 = 5;
pub const MAX_ROUNDS: u32 = 100;

/// The checked choices of one bench invocation.
#[derive(Debug)]
pub struct Plan {
    pub kernels: Vec<&'static str>,
    pub smps: Vec<u8>,
    pub rounds: u32,
    pub scenarios: Vec<&'static Scenario>,
}

impl Plan {
    /// Checks names and ranges; repeats are dropped, the order kept. Empty lists
    /// take the defaults: kernel 6.12, one vCPU, every scenario.
    pub fn new(
        kernels: &[String],
        smps: &[u8],
        rounds: u32,
        scenarios: &[String],
        max_smp: u8,
    ) -> Result<Self> {
        if !(MIN_ROUNDS..=MAX_ROUNDS).contains(&rounds) {
            bail!("--rounds must be {MIN_ROUNDS} to {MAX_ROUNDS}, not {rounds}");
        }
        let mut keys = Vec::new();
        for k in kernels {
            let key = kernels::spec(k)?.key;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            keys.push(DEFAULT_KERNEL);
        }
        let mut cpus = Vec::new();
        for &n in smps {
            if !(1..=max_smp).contains(&n) {
                bail!("--smp must be 1 to {max_smp}, not {n}");
            }
            if !cpus.contains(&n) {
                cpus.push(n);
            }
        }
        if cpus.is_empty() {
            cpus.push(1);
        }
        let mut chosen: Vec<&'static Scenario> = Vec::new();
        for name in scenarios {
            let Some(s) = SCENARIOS.iter().find(|s| s.name == name) else {
                let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
                bail!("unknown scenario {name:?}; known: {}", known.join(", "));
            };
            if !chosen.contains(&s) {
                chosen.push(s);
            }
        }
        if chosen.is_empty() {
            chosen = SCENARIOS.iter().collect();
        }
        Ok(Self {
            kernels: keys,
            smps: cpus,
            rounds,
            scenarios: chosen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults() {
        let p = Plan::new(&[], &[], 5, &[], 64).expect("defaults are valid");
        assert_eq!(p.kernels, ["6.12"]);
        assert_eq!(p.smps, [1]);
        assert_eq!(p.scenarios.len(), SCENARIOS.len());
    }

    #[test]
    fn repeats_dropped_order_kept() {
        let p = Plan::new(
            &words(&["7.3", "6.1", "7.3"]),
            &[2, 1, 2],
            7,
            &words(&["aligned-2m", "storm-64m", "aligned-2m"]),
            64,
        )
        .expect("valid");
        assert_eq!(p.kernels, ["7.3", "6.1"]);
        assert_eq!(p.smps, [2, 1]);
        let names: Vec<&str> = p.scenarios.iter().map(|s| s.name).collect();
        assert_eq!(names, ["aligned-2m", "storm-64m"]);
    }

    #[test]
    fn bad_arguments_are_one_line_errors() {
        let err = |r: Result<Plan>| format!("{:#}", r.expect_err("must fail"));
        let e = err(Plan::new(&words(&["5.4"]), &[], 5, &[], 64));
        assert!(e.contains("unknown kernel \"5.4\""), "{e}");
        let e = err(Plan::new(&[], &[0], 5, &[], 64));
        assert_eq!(e, "--smp must be 1 to 64, not 0");
        let e = err(Plan::new(&[], &[], 2, &[], 64));
        assert_eq!(e, "--rounds must be 5 to 100, not 2");
        let e = err(Plan::new(&[], &[], 5, &words(&["storm"]), 64));
        assert!(
            e.starts_with("unknown scenario \"storm\"; known: storm-64m"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }

    #[test]
    fn storm_1g_runs_at_most_three_rounds() {
        let big = SCENARIOS.iter().find(|s| s.name == "storm-1g");
        assert_eq!(big.map(|s| s.rounds(5)), Some(3));
        assert_eq!(SCENARIOS[0].rounds(5), 5);
        assert!(SCENARIOS.iter().all(|s| s.rounds(MIN_ROUNDS) >= 3));
    }
}
