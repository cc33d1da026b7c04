//! Stopping `record` by SIGTERM (with a command) and by SIGINT (without one):
//! the JSON is complete and valid, nothing recorded is lost, and every probe
//! (kprobes, and fentry/fexit trampolines, which ftrace lists among its
//! enabled functions) is gone afterwards.

use serde_json::Value;

use super::{Ctx, Scenario, TestResult, read_out};

pub const SCENARIO: Scenario = Scenario {
    name: "signals",
    guest: r#"
DEV=$(basename "$(ls -d /sys/bus/pci/drivers/vfio-pci/0000:* | head -1)")
KPROBES=/sys/kernel/debug/kprobes/list
FTRACE=/sys/kernel/tracing/enabled_functions
probes() { cat $KPROBES $FTRACE 2>/dev/null | grep -c vfio_pci_mmap; }
attached() { for i in $(seq 100); do grep -q attached "$1" && return 0; sleep 0.1; done; return 1; }

vfio-trace record --device "$DEV" -o term.json -- \
  vfio-trace exercise --device "$DEV" touch:4k:16m:4k sleep:60000 >/dev/null 2>term.stderr &
REC=$!
attached term.stderr
sleep 4
probes > term.during
kill -TERM $REC
wait $REC
echo $? > term.status
probes > term.after

vfio-trace record --device "$DEV" -o int.json 2>int.stderr &
REC=$!
attached int.stderr
vfio-trace exercise --device "$DEV" touch:4k:4m:4k >/dev/null
kill -INT $REC
wait $REC
echo $? > int.status
probes > int.after
"#,
    check,
};

fn count(ctx: &Ctx, file: &str) -> Result<u64, String> {
    read_out(ctx, file)?
        .trim()
        .parse()
        .map_err(|e| format!("{file}: {e}"))
}

/// `pages` touched through one mapping: one fault each, or one for the whole
/// mapping where the first fault remaps the VMA.
fn stopped(ctx: &Ctx, prefix: &str, reason: &str, pages: u64) -> Result<(), String> {
    let faults = if ctx.facts.remaps_whole_vma { 1 } else { pages };
    let doc: Value = serde_json::from_str(&read_out(ctx, &format!("{prefix}.json"))?)
        .map_err(|e| format!("{prefix}.json is not valid JSON: {e}"))?;
    if doc["stop_reason"] != reason {
        return Err(format!(
            "stop_reason {} (want {reason})",
            doc["stop_reason"]
        ));
    }
    if doc["complete"] != true {
        return Err(format!("not complete: {}", doc["error"]));
    }
    let got = doc["devices"][0]["faults"]["by_order"]["0"]
        .as_u64()
        .unwrap_or(0);
    if got != faults {
        return Err(format!(
            "{got} order-0 faults recorded, the workload made {faults}"
        ));
    }
    if doc["lost_events"] != 0 {
        return Err(format!("lost_events {}", doc["lost_events"]));
    }
    Ok(())
}

fn detached(ctx: &Ctx, after: &str) -> Result<(), String> {
    match count(ctx, after)? {
        0 => Ok(()),
        n => Err(format!(
            "{n} vfio probes still registered after record exited"
        )),
    }
}

fn check(ctx: &Ctx) -> Vec<TestResult> {
    vec![
        (
            "sigterm/json".into(),
            stopped(ctx, "term", "terminated", 4096),
        ),
        (
            "sigterm/attached-while-running".into(),
            count(ctx, "term.during").and_then(|n| {
                // A kprobe pair lists twice; fentry and fexit share one
                // trampoline, listed once.
                if n >= 1 {
                    Ok(())
                } else {
                    Err(format!("{n} vfio probes while recording"))
                }
            }),
        ),
        (
            "sigterm/command-stopped".into(),
            read_out(ctx, "term.json").and_then(|t| {
                let doc: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
                if doc["command_status"] == 143 {
                    Ok(())
                } else {
                    Err(format!("command_status {}", doc["command_status"]))
                }
            }),
        ),
        ("sigterm/detached".into(), detached(ctx, "term.after")),
        (
            "sigint/json".into(),
            stopped(ctx, "int", "interrupted", 1024),
        ),
        (
            "sigint/exit-status".into(),
            count(ctx, "int.status").and_then(|n| {
                if n == 0 {
                    Ok(())
                } else {
                    Err(format!("record exited {n}"))
                }
            }),
        ),
        ("sigint/detached".into(), detached(ctx, "int.after")),
    ]
}
