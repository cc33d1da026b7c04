//! `vfio-trace check --json` in the guest: it runs, exits 0, prints JSON, and
//! agrees with `record` on readiness: ready here, and not ready once vfio-pci
//! is unloaded (the last scenario of a boot). The functions it finds in BTF
//! are exactly those kallsyms has, among every candidate of the table.

use super::{Ctx, Scenario, TestResult, read_out};

pub const SCENARIO: Scenario = Scenario {
    name: "check",
    guest: r"
vfio-trace check --json > check.json; echo $? > check.status
vfio-trace record --duration 1 -o record.json 2> record.stderr; echo $? > record.status
awk '$2 ~ /^[tT]$/ { print $3 }' /proc/kallsyms | sort -u > functions.txt
",
    check,
};

/// Runs last: it unloads vfio-pci.
pub const UNREADY: Scenario = Scenario {
    name: "unready",
    guest: r"
rmmod vfio_pci vfio_pci_core 2> rmmod.stderr
grep -c '^vfio_pci_core ' /proc/modules > loaded
vfio-trace check --json > check.json; echo $? > check.status
vfio-trace record --duration 1 -o record.json 2> record.stderr; echo $? > record.status
",
    check: unready,
};

fn check(ctx: &Ctx) -> Vec<TestResult> {
    vec![
        ("exit-status".to_owned(), exit_status(ctx)),
        ("json".to_owned(), json(ctx).map(drop)),
        ("record-agrees".to_owned(), agree(ctx, true)),
        (
            "btf-functions-match-kallsyms".to_owned(),
            btf_matches_kallsyms(ctx),
        ),
    ]
}

/// Each probe's function is in kallsyms, and each role without one has none
/// of its candidates there ("none of A, B in this kernel: ..."). Tracepoints
/// (`category:name`) are tracefs's and left out.
fn btf_matches_kallsyms(ctx: &Ctx) -> Result<(), String> {
    let doc = json(ctx)?;
    let text = read_out(ctx, "functions.txt")?;
    let functions: std::collections::HashSet<&str> = text.lines().collect();
    let probes = doc["probes"].as_array().ok_or("check.json has no probes")?;
    for p in probes {
        let role = p["name"].as_str().unwrap_or("?");
        if let Some(symbol) = p["symbol"].as_str() {
            if !symbol.contains(':') && !functions.contains(symbol) {
                return Err(format!("{role}: {symbol} found in BTF but not in kallsyms"));
            }
        } else if let Some(names) = p["reason"]
            .as_str()
            .and_then(|r| r.strip_prefix("none of "))
            .and_then(|r| r.split_once(" in this kernel"))
            .map(|(names, _)| names)
        {
            for name in names.split(", ").filter(|n| !n.contains(':')) {
                if functions.contains(name) {
                    return Err(format!("{role}: kallsyms has {name}, BTF did not"));
                }
            }
        }
    }
    Ok(())
}

fn unready(ctx: &Ctx) -> Vec<TestResult> {
    let result = (|| {
        if read_out(ctx, "loaded")?.trim() != "0" {
            return Err(format!(
                "vfio_pci_core still loaded: {}",
                read_out(ctx, "rmmod.stderr")?.trim()
            ));
        }
        agree(ctx, false)?;
        let stderr = read_out(ctx, "record.stderr")?;
        if stderr.trim().lines().count() != 1 || !stderr.contains("vfio-trace check") {
            return Err(format!(
                "record's refusal is not one line naming check: {stderr:?}"
            ));
        }
        Ok(())
    })();
    vec![("check-and-record-agree".to_owned(), result)]
}

/// `check` and `record` both succeed, or both refuse; `ready` is what check said.
fn agree(ctx: &Ctx, ready: bool) -> Result<(), String> {
    let doc = json(ctx)?;
    if doc["ready"].as_bool() != Some(ready) {
        return Err(format!(
            "check says ready={}, expected {ready}",
            doc["ready"]
        ));
    }
    let check_ok = read_out(ctx, "check.status")?.trim() == "0";
    let record_ok = read_out(ctx, "record.status")?.trim() == "0";
    if check_ok != ready || record_ok != ready {
        return Err(format!(
            "check exited {}, record exited {} ({}), expected both to {}",
            read_out(ctx, "check.status")?.trim(),
            read_out(ctx, "record.status")?.trim(),
            read_out(ctx, "record.stderr")?.trim(),
            if ready { "succeed" } else { "fail" }
        ));
    }
    Ok(())
}

fn exit_status(ctx: &Ctx) -> Result<(), String> {
    match read_out(ctx, "check.status")?.trim() {
        "0" => Ok(()),
        other => Err(format!(
            "vfio-trace check exited {other} (see {})",
            ctx.run_dir.join("guest.log").display()
        )),
    }
}

fn json(ctx: &Ctx) -> Result<serde_json::Value, String> {
    let text = read_out(ctx, "check.json")?;
    serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| format!("check.json is not JSON: {e}"))
}
