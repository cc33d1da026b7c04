//! `top` live in the guest: `top --once` traces every vfio-pci device while
//! `exercise` faults the first one's BAR, and its text screen must show
//! those faults on that BDF (and none on the idle second device).
//! The interactive view needs a terminal the guest lacks (no tmux in the
//! initramfs); the host's tmux test (`vfio-trace/tests/top_tmux.rs`) drives
//! it on a recording.

use super::{Ctx, Scenario, TestResult, read_out, status_ok};

pub const SCENARIO: Scenario = Scenario {
    name: "top",
    guest: concat!(
        include_str!("../../guest/truth.sh"),
        r#"
# top attaches in a few seconds; the faults start after 4 s and end well
# inside its 12 s window.
vfio-trace exercise --device $DEV --json sleep:4000 touch:4k:64m:4k touch:4k:64m:4k touch:4k:64m:4k > exercise.json 2> exercise.stderr &
EX=$!
vfio-trace top --once --interval 12 > top.txt 2> top.stderr
echo $? > top.status
wait $EX
echo $? > exercise.status
echo "$DEV $DEV2" > devices
"#
    ),
    check,
};

/// The words of the screen's row for `bdf`.
fn row<'a>(screen: &'a str, bdf: &str) -> Result<Vec<&'a str>, String> {
    screen
        .lines()
        .find(|l| l.starts_with(bdf))
        .map(|l| l.split_whitespace().collect())
        .ok_or_else(|| format!("no row for {bdf} in top's screen:\n{screen}"))
}

fn check(ctx: &Ctx) -> Vec<TestResult> {
    let setup = || -> Result<(String, String), String> {
        status_ok(ctx, "top")?;
        status_ok(ctx, "exercise")?;
        Ok((read_out(ctx, "top.txt")?, read_out(ctx, "devices")?))
    };
    let (screen, devices) = match setup() {
        Ok(v) => v,
        Err(e) => return vec![("run".into(), Err(e))],
    };
    let mut bdfs = devices.split_whitespace();
    let (busy, idle) = (
        bdfs.next().unwrap_or_default(),
        bdfs.next().unwrap_or_default(),
    );
    let header = if screen.starts_with("vfio-trace top  kernel") && screen.contains("  live") {
        Ok(())
    } else {
        Err(format!("no live header:\n{screen}"))
    };
    // Columns: BDF, ID, faults/s, 4K/s, 2M/s, 1G/s, fallbacks/s, p50, p99...
    let faults = row(&screen, busy).and_then(|r| {
        let (all, pte, p50) = (r.get(2), r.get(3), r.get(7));
        if all.is_none_or(|v| *v == "0") || pte.is_none_or(|v| *v == "0") {
            return Err(format!("no 4K faults per second on {busy}:\n{screen}"));
        }
        if p50.is_none_or(|v| *v == "-") {
            return Err(format!("no fault latency on {busy}:\n{screen}"));
        }
        Ok(())
    });
    let quiet = row(&screen, idle).and_then(|r| {
        if r.get(2) == Some(&"0") {
            Ok(())
        } else {
            Err(format!("faults on the idle {idle}:\n{screen}"))
        }
    });
    vec![
        ("live-header".into(), header),
        ("faults-on-the-exercised-bdf".into(), faults),
        ("idle-device-quiet".into(), quiet),
    ]
}
