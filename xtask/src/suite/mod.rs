//! The VM suite: scenarios run inside lab guests, all of a kernel's scenarios in
//! ONE boot (boots are the slow part).
//!
//! Adding a scenario: a new file here with a `pub const SCENARIO: Scenario`, and
//! its entry in `SCENARIOS`. Its guest fragment runs in a subshell (so `exit`
//! ends only the fragment) with the working directory and `$OUT` set to its own
//! output directory, `/mnt/host/out/<name>`; its check reads that directory on
//! the host and returns one result per test.

mod check;
mod client;
mod faults;
mod locks;
mod pid;
mod prometheus;
pub mod serve;
mod signals;
mod top;
mod top_tmux;
pub mod truth;
mod verdict;
mod zaps;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Result;

use crate::{
    kernels::{self, Facts},
    lab::{Console, Lab, RunOpts},
};

pub struct Scenario {
    /// Also the output directory name and the test-name prefix.
    pub name: &'static str,
    /// Shell run in the guest; vfio-trace is on PATH, one ivshmem device per
    /// `devices` is bound to vfio-pci.
    pub guest: &'static str,
    pub check: fn(&Ctx) -> Vec<TestResult>,
}

/// A test name (without kernel and scenario) and its result.
pub type TestResult = (String, Result<(), String>);

/// What a scenario's check gets to look at.
pub struct Ctx<'a> {
    /// What the booted kernel does, for expectations that differ per kernel.
    pub facts: &'a Facts,
    /// The scenario's own output directory (its `$OUT` in the guest).
    pub out_dir: PathBuf,
    /// The whole guest output directory: guest.log, console.log, other scenarios.
    pub run_dir: &'a Path,
}

const SCENARIOS: &[Scenario] = &[
    check::SCENARIO,
    faults::SCENARIO,
    signals::SCENARIO,
    zaps::SCENARIO,
    locks::SCENARIO,
    pid::SCENARIO,
    serve::SCENARIO,
    top::SCENARIO,
    verdict::SCENARIO,
    client::SCENARIO,
    // Unloads vfio-pci: always last.
    check::UNREADY,
];
/// Devices every suite boot has; scenarios may use fewer.
const DEVICES: u8 = 2;
/// A hang guard for one boot running every scenario: ~6-12 min on an idle
/// host, twice that on a busy one once the client scenario's nested VMs are in.
const BOOT_TIMEOUT: Duration = Duration::from_mins(30);

#[derive(Debug, Default)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
}

/// The scenarios named, in suite order; all of them when none is.
pub fn select(names: &[String]) -> Result<Vec<&'static Scenario>> {
    if let Some(bad) = names
        .iter()
        .find(|n| SCENARIOS.iter().all(|s| s.name != *n))
    {
        let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        anyhow::bail!("no scenario {bad:?}; the suite has {}", known.join(", "));
    }
    Ok(SCENARIOS
        .iter()
        .filter(|s| names.is_empty() || names.iter().any(|n| n == s.name))
        .collect())
}

/// Boots each kernel once with the scenarios, printing one line per test.
pub fn run_all(kernels: &[&str], scenarios: &[&'static Scenario]) -> Summary {
    let mut summary = Summary::default();
    let script = guest_script(scenarios);
    for kernel in kernels {
        let results = run_kernel(kernel, &script, scenarios);
        for (name, result) in results {
            match result {
                Ok(()) => {
                    summary.passed += 1;
                    println!("test {kernel}/{name} ... ok");
                }
                Err(reason) => {
                    summary.failed += 1;
                    println!("test {kernel}/{name} ... FAILED: {reason}");
                }
            }
        }
    }
    summary
}

/// The results for one kernel; a boot that fails fails every scenario with why.
fn run_kernel(kernel: &str, script: &str, scenarios: &[&'static Scenario]) -> Vec<TestResult> {
    let outcome = kernels::spec(kernel).and_then(|spec| {
        let lab = Lab::prepare(kernel)?;
        if scenarios.iter().any(|s| s.name == serve::SCENARIO.name) {
            prometheus::stage(&lab.share)?;
        }
        if scenarios.iter().any(|s| s.name == top::SCENARIO.name) {
            top_tmux::stage(&lab.share)?;
        }
        if scenarios.iter().any(|s| s.name == client::SCENARIO.name) {
            crate::client::stage(
                &client::CLIENTS,
                &lab.share,
                crate::client::L2::Bios,
                &lab.kernel.vmlinuz,
            )?;
        }
        let outcome = lab.run(&RunOpts {
            devices: DEVICES,
            timeout: Some(BOOT_TIMEOUT),
            script: Some(script.to_owned()),
            console: Console::Quiet,
            ..RunOpts::default()
        })?;
        Ok((&spec.facts, outcome))
    });
    let (facts, outcome) = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            return scenarios
                .iter()
                .map(|s| (format!("{}/boot", s.name), Err(format!("{err:#}"))))
                .collect();
        }
    };
    scenarios
        .iter()
        .flat_map(|s| {
            let ctx = Ctx {
                facts,
                out_dir: outcome.out_dir.join(s.name),
                run_dir: &outcome.out_dir,
            };
            (s.check)(&ctx)
                .into_iter()
                .map(|(name, result)| (format!("{}/{name}", s.name), result))
        })
        .collect()
}

fn guest_script(scenarios: &[&Scenario]) -> String {
    scenarios.iter().fold(String::new(), |mut script, s| {
        let _ = write!(
            script,
            "echo '== scenario {name}'\n\
             mkdir -p /mnt/host/out/{name}\n\
             (cd /mnt/host/out/{name} && export OUT=/mnt/host/out/{name}\n{guest}\n)\n",
            name = s.name,
            guest = s.guest.trim_end()
        );
        script
    })
}

/// Reads a file of the scenario's output, as a test failure when missing.
pub fn read_out(ctx: &Ctx, file: &str) -> Result<String, String> {
    let path = ctx.out_dir.join(file);
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a JSON file of the scenario's output.
pub fn json(ctx: &Ctx, file: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(&read_out(ctx, file)?).map_err(|e| format!("{file}: {e}"))
}

/// A device of a record document, by its BDF.
pub fn device<'a>(doc: &'a serde_json::Value, bdf: &str) -> Result<&'a serde_json::Value, String> {
    doc["devices"]
        .as_array()
        .and_then(|ds| ds.iter().find(|d| d["bdf"] == bdf))
        .ok_or_else(|| format!("no device {bdf} in the record"))
}

/// A JSON count; `u64::MAX` (which no check expects) when absent.
pub fn num(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(u64::MAX)
}

/// A recorded count against the expected one.
pub fn eq(what: &str, got: u64, want: u64) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: recorded {got}, expected {want}"))
    }
}

/// The exit status a guest step wrote to NAME.status; its stderr when not 0.
pub fn status_ok(ctx: &Ctx, name: &str) -> Result<(), String> {
    match read_out(ctx, &format!("{name}.status"))?.trim() {
        "0" => Ok(()),
        s => Err(format!(
            "{name} exited {s}: {}",
            read_out(ctx, &format!("{name}.stderr"))
                .unwrap_or_default()
                .trim()
        )),
    }
}
