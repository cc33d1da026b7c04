//! `report`'s verdict on a real recording: 64 MiB touched every 4 KiB
//! through a mapping of the whole 1 GiB BAR, as a VMM maps it, once 4 KiB-
//! and once 2 MiB-aligned. The first must say 16384 faults and that 2 MiB
//! alignment would take 32 and 1 GiB alignment 1; the second got 32 PMDs and
//! "PUD impossible: misaligned virtual address". Bounds (on the document and
//! on the verdict) pass and fail with their exit statuses, bad input is one
//! line, and the charts are written.

use serde_json::Value;

use super::{Ctx, Scenario, TestResult, eq, json, num, read_out, status_ok};

pub const SCENARIO: Scenario = Scenario {
    name: "verdict",
    guest: r#"
DEV=$(basename "$(ls -d /sys/bus/pci/drivers/vfio-pci/0000:* | head -1)")
vfio-trace record --device "$DEV" -o record.json -- \
  vfio-trace exercise --device "$DEV" --json touch:4k:64m:4k:1g touch:4k:64m:2m:1g \
  > exercise.json 2> record.stderr
echo $? > record.status
vfio-trace report record.json --format json > report.json 2> report.stderr
echo $? > report.status
vfio-trace report record.json --format markdown --charts charts > report.md 2> md.stderr
echo $? > md.status
ls charts > charts.list
# Bounds that hold on every kernel (6.1 faults once per mapping).
vfio-trace report record.json --expect 'faults.total >= 2' --expect 'zaps.count == 0' \
  --expect 'verdict.devices.0.bars[index=2].faults >= 2' \
  > /dev/null 2> pass.stderr
echo $? > pass.code
vfio-trace report record.json --expect 'faults.total < 1' > /dev/null 2> fail.stderr
echo $? > fail.code
vfio-trace report record.json --expect 'faults.total <=' > /dev/null 2> bad.stderr
echo $? > bad.code
vfio-trace report missing.json > /dev/null 2> missing.stderr
echo $? > missing.code
"#,
    check,
};

fn code(ctx: &Ctx, name: &str) -> Result<String, String> {
    Ok(read_out(ctx, &format!("{name}.code"))?.trim().to_owned())
}

/// An exit status and the one line of stderr that goes with it.
fn exits(ctx: &Ctx, name: &str, status: &str, line: &str) -> Result<(), String> {
    let got = code(ctx, name)?;
    let stderr = read_out(ctx, &format!("{name}.stderr"))?;
    if got != status {
        return Err(format!("{name}: exit {got}, expected {status}: {stderr}"));
    }
    if !line.is_empty() && !stderr.contains(line) {
        return Err(format!("{name}: stderr {stderr:?} lacks {line:?}"));
    }
    if stderr.trim().lines().count() > 1 {
        return Err(format!("{name}: more than one line: {stderr:?}"));
    }
    Ok(())
}

/// The BAR 2 mappings of the verdict, by virtual alignment.
fn mappings(report: &Value) -> Result<Vec<&Value>, String> {
    let bars = report["verdict"]["devices"][0]["bars"]
        .as_array()
        .ok_or("no bars in the verdict")?;
    let bar = bars
        .iter()
        .find(|b| b["index"] == 2)
        .ok_or("no BAR 2 in the verdict")?;
    let mut ms: Vec<&Value> = bar["mappings"]
        .as_array()
        .ok_or("no mappings")?
        .iter()
        .collect();
    ms.sort_by_key(|m| num(&m["va_alignment"]));
    Ok(ms)
}

fn mapped(m: &Value, order: u64) -> u64 {
    m["mapped_by_order"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| num(&p[0]) == order)
        .map_or(0, |p| num(&p[1]))
}

fn projected(m: &Value, order: u64) -> u64 {
    m["projections"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| num(&p["order"]) == order)
        .map_or(u64::MAX, |p| num(&p["faults"]))
}

fn check_verdict(ctx: &Ctx) -> Result<(), String> {
    status_ok(ctx, "record")?;
    status_ok(ctx, "report")?;
    let report = json(ctx, "report.json")?;
    let ms = mappings(&report)?;
    eq("mappings of BAR 2", ms.len() as u64, 2)?;
    let (small, aligned) = (ms[0], ms[1]);
    eq("4K mapping size", num(&small["size"]), 1 << 30)?;
    eq("4K mapping va_alignment", num(&small["va_alignment"]), 4096)?;
    if ctx.facts.remaps_whole_vma {
        // One fault remaps the whole VMA: nothing to project.
        eq("4K mapping remapped pages", mapped(small, 0), 262_144)?;
        let advice = small["advice"].as_str().unwrap_or_default();
        return if advice.contains("this kernel has no huge faults") {
            Ok(())
        } else {
            Err(format!("advice: {advice}"))
        };
    }
    eq("4K mapping 4 KiB faults", mapped(small, 0), 16384)?;
    eq("4K mapping projected 2 MiB faults", projected(small, 9), 32)?;
    eq("4K mapping projected 1 GiB faults", projected(small, 18), 1)?;
    eq(
        "2M mapping va_alignment >= 2 MiB",
        u64::from(num(&aligned["va_alignment"]) >= 2 << 20),
        1,
    )?;
    eq("2M mapping PMDs", mapped(aligned, 9), 32)?;
    let advice = small["advice"].as_str().unwrap_or_default();
    for want in [
        "is only 4 KiB-aligned: 16,384 faults at 4 KiB",
        "aligned to 2 MiB it would take 32",
        "aligned to 1 GiB it would take 1",
    ] {
        if !advice.contains(want) {
            return Err(format!("advice {advice:?} lacks {want:?}"));
        }
    }
    let advice = aligned["advice"].as_str().unwrap_or_default();
    for want in [
        "is only 2 MiB-aligned: 32 faults at 2 MiB",
        "aligned to 1 GiB it would take 1",
        "PUD impossible: misaligned virtual address]",
    ] {
        if !advice.contains(want) {
            return Err(format!("advice {advice:?} lacks {want:?}"));
        }
    }
    Ok(())
}

fn check_outputs(ctx: &Ctx) -> Result<(), String> {
    status_ok(ctx, "md")?;
    let md = read_out(ctx, "report.md")?;
    let charts = read_out(ctx, "charts.list")?;
    if !charts.lines().any(|c| {
        c.starts_with("pages-")
            && std::path::Path::new(c)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    }) {
        return Err(format!("no BAR heat map among the charts: {charts}"));
    }
    if !md.contains("## Verdict") || !md.contains("](charts/") {
        return Err("the markdown lacks the verdict or the charts".into());
    }
    Ok(())
}

fn check(ctx: &Ctx) -> Vec<TestResult> {
    vec![
        ("mappings".into(), check_verdict(ctx)),
        ("markdown-and-charts".into(), check_outputs(ctx)),
        ("expect-passes".into(), exits(ctx, "pass", "0", "")),
        (
            "expect-fails".into(),
            exits(ctx, "fail", "1", "expect failed: faults.total < 1 (got "),
        ),
        (
            "expect-unreadable".into(),
            exits(ctx, "bad", "2", "bad --expect"),
        ),
        (
            "missing-file".into(),
            exits(ctx, "missing", "1", "cannot read missing.json"),
        ),
    ]
}
