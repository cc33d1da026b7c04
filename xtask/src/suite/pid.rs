//! `record --pid`: one process faults, zaps and contends on the first device
//! while another does the same on the second. Only the first process's
//! faults, zaps and `memory_lock` waits are recorded.

use serde_json::Value;

use super::{Ctx, Scenario, TestResult, device, eq, json, num, read_out, status_ok};

/// Resets each process makes; both also toggle decode once.
const RESETS: u64 = 3;

pub const SCENARIO: Scenario = Scenario {
    name: "pid",
    guest: concat!(
        include_str!("../../guest/truth.sh"),
        r#"
# Both sleep first: record attaches in a few seconds.
PHASES="sleep:6000 touch:4k:1m:4k decode-off decode-on contend:2:3:1m"
vfio-trace exercise --device $DEV --json $PHASES > a.json 2> a.stderr &
A=$!
vfio-trace exercise --device $DEV2 --json $PHASES > b.json 2> b.stderr &
B=$!
vfio-trace record --pid $A -o record.json -- sh -c "while kill -0 $A 2>/dev/null; do sleep 0.1; done" 2> pid.stderr
echo $? > pid.status
wait $B
echo "$DEV $DEV2" > devices
"#
    ),
    check,
};

/// Contended `memory_lock` waits of a device, all modes.
fn lock_waits(d: &Value) -> u64 {
    d["memory_lock"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .map(|m| num(&m["count"]))
        .sum()
}

fn check(ctx: &Ctx) -> Vec<TestResult> {
    let setup = || -> Result<(Value, String), String> {
        status_ok(ctx, "pid")?;
        Ok((json(ctx, "record.json")?, read_out(ctx, "devices")?))
    };
    let (doc, devices) = match setup() {
        Ok(v) => v,
        Err(e) => return vec![("pid/run".into(), Err(e))],
    };
    let mut bdfs = devices.split_whitespace();
    let (own, other) = (
        bdfs.next().unwrap_or_default(),
        bdfs.next().unwrap_or_default(),
    );
    let kept = device(&doc, own).and_then(|d| {
        eq("zaps.count", num(&d["zaps"]["count"]), 1 + RESETS)?;
        if num(&d["faults"]["total"]) == 0 && num(&d["inserts"]["remap"]) == 0 {
            return Err("the traced process's faults are missing".into());
        }
        if lock_waits(d) == 0 {
            return Err("the traced process's memory_lock waits are missing".into());
        }
        Ok(())
    });
    let left_out = device(&doc, other).and_then(|d| {
        eq("faults.total", num(&d["faults"]["total"]), 0)?;
        eq("zaps.count", num(&d["zaps"]["count"]), 0)?;
        eq("memory_lock waits", lock_waits(d), 0)
    });
    vec![
        ("own-faults-zaps-waits".into(), kept),
        ("other-process-left-out".into(), left_out),
    ]
}
