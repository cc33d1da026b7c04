//! `cargo xtask bench`: what tracing costs the workload. One guest boot per
//! kernel and vCPU count runs every scenario untraced, under tracefs kprobes
//! (the cheapest tracer that counts the same things) and under `vfio-trace
//! record`, in alternating rounds, and last under bpftrace. The figure is each
//! phase's own time as exercise measures it, so start-up and attach are out.
//!
//! plan.rs (arguments, scenarios) -> script.rs (the guest's run.sh, with
//! guest/bench.sh) -> lab -> collect.rs (files back) -> parse.rs, stats.rs,
//! figures.rs, report.rs (bench.json) -> markdown.rs, tables.rs (bench.md).

mod bpftrace;
mod collect;
mod events;
mod figures;
mod floor;
mod markdown;
mod parse;
pub mod plan;
mod report;
mod script;
mod serve;
mod stats;
mod tables;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};

use crate::{
    cmd,
    lab::{Lab, MAX_SMP, RunOpts},
    paths, setup,
};
use collect::{Boot, Staging};
use plan::Plan;
use report::{Bench, BpftraceReport, RunReport};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Kernel to boot (repeatable): 6.1, 6.12, 6.18 or 7.3. Default: 6.12.
    #[arg(long = "kernel", value_name = "K")]
    kernels: Vec<String>,
    /// vCPUs (repeatable, one boot each). Default: 1.
    #[arg(long = "smp", value_name = "N")]
    smps: Vec<u8>,
    /// Measured rounds per scenario after a warm-up; storm-1g runs at most 3.
    #[arg(long, default_value_t = plan::MIN_ROUNDS, value_name = "N")]
    rounds: u32,
    /// Scenario (repeatable): storm-64m, storm-1g, aligned-2m, aligned-1g,
    /// refault. Default: all.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Where bench.md, bench.json and each boot's raw files go.
    /// Default: target/bench/<UTC time>/.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Leave bpftrace out.
    #[arg(long)]
    no_bpftrace: bool,
    /// Kill a guest after this many seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    timeout: u64,
}

/// Returns 0 when every boot ran and every round gave a figure.
pub fn run(args: &BenchArgs) -> Result<i32> {
    // Bad arguments fail before minutes of setup and builds.
    let plan = Plan::new(
        &args.kernels,
        &args.smps,
        args.rounds,
        &args.scenarios,
        MAX_SMP,
    )?;
    let (created, stamp) = utc_now();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| paths::target_dir().join("bench").join(stamp));
    cmd::mkdir(&out)?;
    setup::run(&setup::SetupArgs::default_toolchain())?;

    // Downloaded once, unpacked into each kernel's share.
    let debs = if args.no_bpftrace {
        None
    } else {
        Some(bpftrace::TREE.debs().map_err(|e| format!("{e:#}")))
    };
    let script = script::guest_script(&plan.scenarios, plan.rounds, debs.is_some());
    let mut runs = Vec::new();
    for &kernel in &plan.kernels {
        let lab = match Lab::prepare(kernel) {
            Ok(lab) => lab,
            Err(err) => {
                for &smp in &plan.smps {
                    runs.push(failed(kernel, smp, format!("{err:#}")));
                }
                continue;
            }
        };
        let staging = match &debs {
            None => Staging::Skipped,
            Some(Err(why)) => Staging::Unavailable(why.clone()),
            Some(Ok(debs)) => match bpftrace::TREE.stage(debs, &lab.share) {
                Ok(()) => Staging::Staged,
                Err(e) => Staging::Unavailable(format!("{e:#}")),
            },
        };
        if let Staging::Unavailable(why) = &staging {
            eprintln!("bench: bpftrace not available: {why}");
            // The guest must not look for a tree that is stale or half there.
            cmd::remove(&lab.share.join(bpftrace::TREE.share_dir))?;
        }
        for &smp in &plan.smps {
            eprintln!("bench: kernel {kernel}, smp {smp}");
            let boot = Boot {
                kernel,
                smp,
                accel: "TCG",
                scenarios: &plan.scenarios,
                rounds: plan.rounds,
                bpftrace: staging.clone(),
            };
            runs.push(run_boot(&lab, &script, boot, args.timeout, &out));
        }
    }

    let bench = Bench {
        created_utc: created,
        rounds: plan.rounds,
        runs,
    };
    let md = markdown::render(&bench);
    let json = serde_json::to_string_pretty(&bench).context("serializing bench.json")?;
    fs::write(out.join("bench.json"), json + "\n").context("writing bench.json")?;
    fs::write(out.join("bench.md"), &md).context("writing bench.md")?;
    println!("{md}");
    println!("Written to {}", out.display());
    let clean = bench.runs.iter().all(|r| {
        r.error.is_none()
            && r.scenarios
                .iter()
                .all(|s| s.modes.iter().all(|m| m.failed_rounds == 0))
    });
    Ok(i32::from(!clean))
}

/// One boot: run, keep its raw files under `out`, read them into a report.
fn run_boot(lab: &Lab, script: &str, mut boot: Boot, timeout: u64, out: &Path) -> RunReport {
    let outcome = lab.run(&RunOpts {
        smp: boot.smp,
        ..RunOpts::scripted(script, timeout)
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(err) => return failed(boot.kernel, boot.smp, format!("{err:#}")),
    };
    if outcome.kvm {
        boot.accel = "KVM";
    }
    let raw = out.join(format!("{}-smp{}", boot.kernel, boot.smp));
    let kept = cmd::remove(&raw)
        .and_then(|()| cmd::run(Command::new("cp").arg("-r").arg(&outcome.out_dir).arg(&raw)));
    if let Err(e) = kept {
        eprintln!("bench: keeping the raw files in {}: {e:#}", raw.display());
    }
    let mut report = collect::run_report(&outcome.out_dir, &boot);
    if outcome.status != 0 {
        report.error = Some(format!(
            "the guest script exited {}; see {}",
            outcome.status,
            raw.join("console.log").display()
        ));
    }
    report
}

fn failed(kernel: &'static str, smp: u8, error: String) -> RunReport {
    RunReport {
        kernel,
        smp,
        accel: "n/a",
        release: None,
        cpus_seen: None,
        bpf_stats_enabled: None,
        error: Some(error),
        kprobes_left_after_rounds: Vec::new(),
        bpftrace: BpftraceReport::default(),
        scenarios: Vec::new(),
    }
}

/// The time now in UTC, as `YYYY-MM-DD HH:MM:SS` and as `YYYYMMDD-HHMMSS`.
fn utc_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

#[allow(
    clippy::many_single_char_names,
    reason = "the names of Howard Hinnant's algorithm"
)]
fn utc(secs: u64) -> (String, String) {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(mo <= 2);
    (
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}"),
        format!("{y:04}{mo:02}{d:02}-{h:02}{m:02}{s:02}"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0).0, "1970-01-01 00:00:00");
        assert_eq!(super::utc(951_782_400).0, "2000-02-29 00:00:00");
        let (text, dir) = super::utc(1_767_323_045);
        assert_eq!(text, "2026-01-02 03:04:05");
        assert_eq!(dir, "20260102-030405");
    }
}
