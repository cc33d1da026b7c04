//! `cargo xtask bench-report`: the bench's workloads recorded with
//! `vfio-trace record` on every lab kernel, one boot each, and one markdown
//! report comparing the generations: 6.1 remaps the whole VMA in one fault,
//! 6.12+ map a page per fault, or a huge page where the mapping is aligned.
//!
//! Figures are the recordings' own; the report quotes them and `vfio-trace
//! report RUN BASELINE` (run on the host: the guest binary is static) for the
//! comparisons, so nothing in it is typed by hand.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{
    bench::plan::{SCENARIOS, Scenario},
    cmd, guest, kernels,
    lab::{Lab, RunOpts},
    paths,
};

#[derive(clap::Args, Debug)]
pub struct GenerationsArgs {
    /// Kernel to record on (repeatable). Default: every lab kernel.
    #[arg(long = "kernel", value_name = "K")]
    kernels: Vec<String>,
    /// Where report.md and each kernel's recordings go.
    /// Default: target/bench-report/.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Kill a guest after this many seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECS")]
    timeout: u64,
    /// Boot nothing: write report.md again from the recordings already in
    /// the output directory (after a change to `vfio-trace report`, say).
    #[arg(long)]
    reuse: bool,
}

/// The guest's run.sh: every scenario recorded once, into out/NAME/.
fn guest_script(scenarios: &[Scenario]) -> String {
    let mut s = String::from(
        "DEV=$(basename \"$(ls -d /sys/bus/pci/drivers/vfio-pci/0000:* | head -1)\")\n\
         uname -r > release\n\
         run() {\n  name=$1; shift\n  mkdir -p $name\n  echo \"bench-report: $name\"\n  \
         vfio-trace record --device \"$DEV\" -o $name/record.json -- \\\n    \
         vfio-trace exercise --device \"$DEV\" --json \"$@\" > $name/exercise.json 2> $name/record.stderr\n  \
         echo $? > $name/status\n}\n",
    );
    for sc in scenarios {
        let _ = writeln!(s, "run {} {}", sc.name, sc.phases.join(" "));
    }
    s.push_str("exit 0\n");
    s
}

/// One kernel's recordings, or why there are none.
struct KernelRun {
    key: &'static str,
    release: String,
    /// Scenario name to its record.json on the host.
    records: Vec<(&'static str, Result<PathBuf, String>)>,
}

pub fn run(args: &GenerationsArgs) -> Result<i32> {
    // Bad names fail before minutes of setup.
    let keys: Vec<&'static str> = if args.kernels.is_empty() {
        kernels::KERNELS.iter().map(|k| k.key).collect()
    } else {
        args.kernels
            .iter()
            .map(|k| kernels::spec(k).map(|s| s.key))
            .collect::<Result<Vec<_>>>()?
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| paths::target_dir().join("bench-report"));
    let mut runs = Vec::new();
    if args.reuse {
        for key in keys {
            runs.push(recorded(key, &out));
        }
    } else {
        cmd::remove(&out)?;
        cmd::mkdir(&out)?;
        crate::setup::run(&crate::setup::SetupArgs::default_toolchain())?;
        let script = guest_script(SCENARIOS);
        for key in keys {
            eprintln!("bench-report: kernel {key}");
            runs.push(record_on(key, &script, args.timeout, &out));
        }
    }
    let md = render(&runs);
    fs::write(out.join("report.md"), &md).context("writing report.md")?;
    println!("{md}");
    println!("Written to {}", out.join("report.md").display());
    let clean = runs
        .iter()
        .all(|r| !r.records.is_empty() && r.records.iter().all(|(_, p)| p.is_ok()));
    Ok(i32::from(!clean))
}

/// A kernel's recordings as an earlier run left them in `out`.
fn recorded(key: &'static str, out: &Path) -> KernelRun {
    let dir = out.join(key);
    let records: Vec<(&'static str, Result<PathBuf, String>)> = SCENARIOS
        .iter()
        .map(|sc| {
            let p = dir.join(format!("{}.json", sc.name));
            let found = if p.is_file() {
                Ok(p)
            } else {
                Err(format!("no {}", p.display()))
            };
            (sc.name, found)
        })
        .collect();
    // The recordings name their kernel.
    let release = records
        .iter()
        .filter_map(|(_, p)| read_json(p.as_ref().ok()?).ok())
        .find_map(|d| d["kernel"]["release"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "(no recording)".into());
    KernelRun {
        key,
        release,
        records,
    }
}

fn record_on(key: &'static str, script: &str, timeout: u64, out: &Path) -> KernelRun {
    let mut run = KernelRun {
        key,
        release: String::new(),
        records: Vec::new(),
    };
    let outcome = Lab::prepare(key).and_then(|lab| lab.run(&RunOpts::scripted(script, timeout)));
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            run.release = format!("(no boot: {e:#})");
            return run;
        }
    };
    run.release = fs::read_to_string(outcome.out_dir.join("release"))
        .map_or_else(|_| "(unknown release)".into(), |r| r.trim().to_owned());
    let dir = out.join(key);
    for sc in SCENARIOS {
        let src = outcome.out_dir.join(sc.name);
        let status = fs::read_to_string(src.join("status")).unwrap_or_default();
        let kept = if status.trim() == "0" {
            let dst = dir.join(format!("{}.json", sc.name));
            cmd::mkdir(&dir)
                .and_then(|()| {
                    fs::copy(src.join("record.json"), &dst).context("copying a recording")
                })
                .map(|_| dst)
                .map_err(|e| format!("{e:#}"))
        } else {
            let stderr = fs::read_to_string(src.join("record.stderr")).unwrap_or_default();
            Err(format!(
                "record exited {:?}: {}",
                status.trim(),
                stderr.lines().last().unwrap_or("no output")
            ))
        };
        run.records.push((sc.name, kept));
    }
    run
}

/// `vfio-trace report ARGS...` on the host, its stdout.
fn report(args: &[&Path], extra: &[&str]) -> Result<String> {
    let bin = guest::binary()?;
    let out = Command::new(&bin)
        .arg("report")
        .args(args)
        .args(extra)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "vfio-trace report failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One row of a scenario's table, from a recording and its verdict.
#[derive(Debug, Default, PartialEq)]
pub struct Row {
    pub generation: String,
    pub by_order: [u64; 3],
    pub fallbacks: u64,
    pub remap_pages: u64,
    pub fault_ns: f64,
    pub p50_4k_ns: u64,
    pub lost: u64,
    /// The projection at the largest order the verdict allows: (order, faults).
    pub best: Option<(u64, u64)>,
    /// The kernel maps huge pages on faults (6.12+).
    pub huge_faults: bool,
}

const ORDERS: [&str; 3] = ["0", "9", "18"];

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The figures of a record document and its `report --format json`.
pub fn row(doc: &Value, verdict: &Value) -> Row {
    let mut r = Row {
        generation: doc["kernel"]["generation"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned(),
        lost: n(&doc["lost_events"]),
        huge_faults: verdict["verdict"]["huge_faults"].as_bool().unwrap_or(false),
        ..Row::default()
    };
    for d in doc["devices"].as_array().into_iter().flatten() {
        for (slot, o) in r.by_order.iter_mut().zip(ORDERS) {
            *slot += n(&d["faults"]["by_order"][o]);
        }
        r.fallbacks += n(&d["faults"]["by_result"]["fallback"]);
        r.remap_pages += n(&d["inserts"]["remap_pages"]);
        for o in ORDERS {
            let l = &d["latency_ns"]["by_order"][o];
            r.fault_ns += l["count"].as_f64().unwrap_or(0.0) * l["mean"].as_f64().unwrap_or(0.0);
        }
        r.p50_4k_ns = r.p50_4k_ns.max(n(&d["latency_ns"]["by_order"]["0"]["p50"]));
    }
    // The largest projected order over every BAR's mappings, and its faults.
    let projections = verdict["verdict"]["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| d["bars"].as_array().into_iter().flatten())
        .flat_map(|b| b["mappings"].as_array().into_iter().flatten())
        .filter_map(|m| m["projections"].as_array().into_iter().flatten().last());
    for p in projections {
        let (order, faults) = (n(&p["order"]), n(&p["faults"]));
        r.best = Some(match r.best {
            Some((o, f)) if o == order => (o, f + faults),
            Some((o, f)) if o > order => (o, f),
            _ => (order, faults),
        });
    }
    r
}

fn size(order: u64) -> &'static str {
    match order {
        0 => "4 KiB",
        9 => "2 MiB",
        18 => "1 GiB",
        _ => "?",
    }
}

fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

/// A scenario's table: one row per kernel.
pub fn table(rows: &[(String, Result<Row, String>)]) -> String {
    let mut s = String::from(
        "| kernel | generation | faults asking 4 KiB / 2 MiB / 1 GiB | fallbacks | pages remapped | time in faults | per fault | 4 KiB p50 | best aligned | lost |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---|---:|\n",
    );
    for (release, r) in rows {
        match r {
            Err(why) => {
                let _ = writeln!(s, "| {release} | not recorded: {why} | | | | | | | | |");
            }
            Ok(r) => {
                let faults: u64 = r.by_order.iter().sum();
                let per = if faults == 0 {
                    "-".into()
                } else {
                    time(r.fault_ns / faults as f64)
                };
                let best = match r.best {
                    _ if !r.huge_faults => "- (no huge faults)".into(),
                    Some((o, f)) => format!("{f} at {}", size(o)),
                    None => "-".into(),
                };
                let _ = writeln!(
                    s,
                    "| {release} | {} | {} / {} / {} | {} | {} | {} | {per} | {} | {best} | {} |",
                    r.generation,
                    r.by_order[0],
                    r.by_order[1],
                    r.by_order[2],
                    r.fallbacks,
                    r.remap_pages,
                    time(r.fault_ns),
                    if r.by_order[0] == 0 {
                        "-".into()
                    } else {
                        time(r.p50_4k_ns as f64)
                    },
                    r.lost,
                );
            }
        }
    }
    s
}

fn read_json(path: &Path) -> Result<Value, String> {
    fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
}

fn render(runs: &[KernelRun]) -> String {
    let mut s = String::from(
        "# Fault cost across kernel generations\n\n\
         Made by `cargo xtask bench-report`: each workload of `cargo xtask bench`, \
         recorded once with `vfio-trace record` on each lab kernel (one boot per \
         kernel, QEMU TCG, one vCPU, an ivshmem device with a 1 GiB BAR2 bound to \
         vfio-pci). Times are emulated: compare them within a column, and read the \
         counts as exact. \"Best aligned\" is the verdict's projection: the faults \
         the mappings would take at the largest page their BAR and the kernel allow, \
         were their addresses aligned.\n\n\
         - **6.1** (`remap`): the first fault remaps the whole VMA \
         (`remap_pfn_range`), so one fault per mapping whatever its size.\n\
         - **6.12 and later** (`huge-fault`): one fault per page, and a 2 MiB or \
         1 GiB page where the mapping and the BAR are aligned. A fault asks for a \
         page size; one that cannot be had falls back and is asked again smaller, \
         so a fallback is counted under the size it asked for.\n\n",
    );
    for sc in SCENARIOS {
        let _ = write!(
            s,
            "## {}\n\n{}: `{}`.\n\n",
            sc.name,
            sc.about,
            sc.phases.join(" ")
        );
        let rows: Vec<(String, Result<Row, String>)> = runs
            .iter()
            .map(|r| {
                let got = r
                    .records
                    .iter()
                    .find(|(n, _)| *n == sc.name)
                    .map_or_else(|| Err("no boot".to_owned()), |(_, p)| p.clone())
                    .and_then(|p| {
                        let doc = read_json(&p)?;
                        let verdict = report(&[&p], &["--format", "json"])
                            .map_err(|e| format!("{e:#}"))
                            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))?;
                        Ok(row(&doc, &verdict))
                    });
                (format!("{} ({})", r.key, r.release), got)
            })
            .collect();
        s.push_str(&table(&rows));
        comparisons(&mut s, runs, sc.name);
    }
    s.push_str(
        "\nThe recordings are beside this report, as KERNEL/SCENARIO.json; \
         `vfio-trace report` reads them.\n",
    );
    s
}

/// Each later kernel against the first, as `vfio-trace report RUN BASELINE`
/// words it, under a fold.
fn comparisons(s: &mut String, runs: &[KernelRun], scenario: &str) {
    let path = |r: &KernelRun| {
        r.records
            .iter()
            .find(|(n, _)| *n == scenario)
            .and_then(|(_, p)| p.as_ref().ok().cloned())
    };
    let Some((first, base)) = runs.iter().find_map(|r| path(r).map(|p| (r, p))) else {
        return;
    };
    for r in runs.iter().filter(|r| r.key != first.key) {
        let Some(run) = path(r) else { continue };
        let text = match report(&[&run, &base], &["--format", "markdown"]) {
            Ok(md) => md.find("\n## Comparison").map_or_else(String::new, |at| {
                md[at..]
                    .replace("\n### ", "\n#### ")
                    .replace("\n## Comparison\n", "")
            }),
            Err(e) => format!("\n{e:#}\n"),
        };
        let _ = write!(
            s,
            "\n<details><summary>{} against {}</summary>\n{text}\n</details>\n",
            r.key, first.key
        );
    }
    s.push('\n');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn script_records_every_scenario() {
        let s = guest_script(SCENARIOS);
        for sc in SCENARIOS {
            assert!(s.contains(&format!("run {} {}\n", sc.name, sc.phases.join(" "))));
        }
        assert!(s.contains("vfio-trace record --device \"$DEV\" -o $name/record.json"));
        assert!(s.ends_with("exit 0\n"));
    }

    #[test]
    fn rows_sum_devices_and_take_the_largest_projection() {
        let dev = json!({
            "faults": {"by_order": {"0": 16384, "9": 0, "18": 0}, "by_result": {"fallback": 31}},
            "inserts": {"remap_pages": 0},
            "latency_ns": {"by_order": {"0": {"count": 16384, "mean": 2000.0, "p50": 1900}}}
        });
        let doc =
            json!({"kernel": {"generation": "huge-fault"}, "lost_events": 0, "devices": [dev]});
        let verdict = json!({"verdict": {"huge_faults": true, "devices": [{"bars": [{"mappings": [
            {"projections": [{"order": 9, "faults": 32}, {"order": 18, "faults": 1}]}
        ]}]}]}});
        let r = row(&doc, &verdict);
        assert_eq!(r.by_order, [16384, 0, 0]);
        assert_eq!(r.fallbacks, 31);
        assert_eq!(r.best, Some((18, 1)));
        assert!((r.fault_ns - 16384.0 * 2000.0).abs() < 1.0);
        let t = table(&[
            ("6.12 (x)".into(), Ok(r)),
            ("6.1 (y)".into(), Err("boom".into())),
        ]);
        assert!(t.contains("| 6.12 (x) | huge-fault | 16384 / 0 / 0 | 31 | 0 | 32.8 ms | 2.0 µs | 1.9 µs | 1 at 1 GiB | 0 |"), "{t}");
        assert!(t.contains("| 6.1 (y) | not recorded: boom |"));
    }
}
