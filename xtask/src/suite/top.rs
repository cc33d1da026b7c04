//! `top` live in the guest: `top --once` traces every vfio-pci device while
//! `exercise` faults the first one's BAR, and its text screen must show
//! those faults on that BDF (and none on the idle second device). Then the
//! interactive view, in Debian's tmux staged into the share (`top_tmux`):
//! the captured pane must show the same, and `q` must end it cleanly.

use super::{Ctx, Scenario, TestResult, read_out, status_ok, top_tmux};

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
"#,
        include_str!("../../guest/top-tmux.sh"),
    ),
    check,
};

/// The words of the screen's row for `bdf`, in the text screen or between
/// the interactive table's borders.
pub fn row<'a>(screen: &'a str, bdf: &str) -> Result<Vec<&'a str>, String> {
    screen
        .lines()
        .find(|l| l.trim_start_matches('│').starts_with(bdf))
        .map(|l| {
            l.split(|c: char| c.is_whitespace() || c == '│')
                .filter(|w| !w.is_empty())
                .collect()
        })
        .ok_or_else(|| format!("no row for {bdf} in top's screen:\n{screen}"))
}

/// The busy and the idle device's BDFs.
pub fn devices(ctx: &Ctx) -> Result<(String, String), String> {
    let devices = read_out(ctx, "devices")?;
    let mut bdfs = devices.split_whitespace().map(str::to_owned);
    match (bdfs.next(), bdfs.next()) {
        (Some(busy), Some(idle)) => Ok((busy, idle)),
        _ => Err(format!("devices: {devices:?}")),
    }
}

/// The busy row shows 4K faults per second (and latency); `screen` otherwise.
pub fn busy_row(screen: &str, busy: &str, latency: bool) -> Result<(), String> {
    // Columns: BDF, ID, faults/s, 4K/s, 2M/s, 1G/s, fallbacks/s, p50, p99...
    let r = row(screen, busy)?;
    let (all, pte, p50) = (r.get(2), r.get(3), r.get(7));
    if !all.is_some_and(|v| positive(v)) || !pte.is_some_and(|v| positive(v)) {
        return Err(format!("no 4K faults per second on {busy}:\n{screen}"));
    }
    if latency && p50.is_none_or(|v| *v == "-") {
        return Err(format!("no fault latency on {busy}:\n{screen}"));
    }
    Ok(())
}

/// A rate as top prints it (`0`, `0.9`, `8.2k`, `1.1M`) is above zero.
fn positive(rate: &str) -> bool {
    let digits = rate.trim_end_matches(['k', 'M']);
    digits.parse::<f64>().is_ok_and(|r| r > 0.0)
}

/// The idle row shows no faults.
pub fn idle_row(screen: &str, idle: &str) -> Result<(), String> {
    let r = row(screen, idle)?;
    if r.get(2) == Some(&"0") && r.get(3) == Some(&"0") {
        Ok(())
    } else {
        Err(format!("faults on the idle {idle}:\n{screen}"))
    }
}

fn check(ctx: &Ctx) -> Vec<TestResult> {
    let mut results = once(ctx);
    results.extend(top_tmux::check(ctx));
    results
}

fn once(ctx: &Ctx) -> Vec<TestResult> {
    let setup = || -> Result<(String, (String, String)), String> {
        status_ok(ctx, "top")?;
        status_ok(ctx, "exercise")?;
        Ok((read_out(ctx, "top.txt")?, devices(ctx)?))
    };
    let (screen, (busy, idle)) = match setup() {
        Ok(v) => v,
        Err(e) => return vec![("run".into(), Err(e))],
    };
    let header = if screen.starts_with("vfio-trace top  kernel") && screen.contains("  live") {
        Ok(())
    } else {
        Err(format!("no live header:\n{screen}"))
    };
    vec![
        ("live-header".into(), header),
        (
            "faults-on-the-exercised-bdf".into(),
            busy_row(&screen, &busy, true),
        ),
        ("idle-device-quiet".into(), idle_row(&screen, &idle)),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates() {
        for r in ["0.9", "2.0", "8.2k", "1.1M", "16"] {
            assert!(super::positive(r), "{r}");
        }
        for r in ["0", "0.0", "-", "", "k"] {
            assert!(!super::positive(r), "{r}");
        }
    }
}
