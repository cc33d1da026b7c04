//! The `top` scenario's interactive half: Debian bookworm's tmux and its
//! libraries staged into the share, with ncurses-base's terminfo entries and
//! libc-bin's C.UTF-8 locale (tmux refuses to start without one). The
//! guest runs `vfio-trace top` in a detached tmux session while `exercise`
//! faults the first device, captures the pane every second, then sends `q`
//! (guest/top-tmux.sh). Checked here: a captured screen shows 4K faults per
//! second on the exercised BDF, none shows any on the idle one, top exits 0,
//! the session ends and no vfio probe is left.

use std::path::Path;

use anyhow::Result;

use super::{
    Ctx, TestResult, read_out, status_ok,
    top::{busy_row, devices, idle_row},
};
use crate::debtree::DebTree;

const TREE: DebTree = DebTree {
    specs: &[
        "tmux=3.3a-3",
        "ncurses-base=6.4-4",
        "libc-bin=2.36-9+deb12u14",
    ],
    release: "bookworm",
    share_dir: "tmux",
    binary: "usr/bin/tmux",
};

/// Downloads (once, into the project cache) and unpacks tmux into the share.
pub fn stage(share: &Path) -> Result<()> {
    TREE.stage(&TREE.debs()?, share)
}

/// The screens captured while the exercise ran, in order.
fn screens(ctx: &Ctx) -> Result<Vec<String>, String> {
    let screens: Vec<String> = (1..)
        .map_while(|n| read_out(ctx, &format!("screen.{n}")).ok())
        .collect();
    if screens.is_empty() {
        let why = read_out(ctx, "tmux.stderr").unwrap_or_default();
        return Err(format!("no screen captured while exercise ran: {why}"));
    }
    Ok(screens)
}

fn number(ctx: &Ctx, file: &str) -> Result<u64, String> {
    read_out(ctx, file)?
        .trim()
        .parse()
        .map_err(|e| format!("{file}: {e}"))
}

pub fn check(ctx: &Ctx) -> Vec<TestResult> {
    let setup = || -> Result<(Vec<String>, (String, String)), String> {
        status_ok(ctx, "tmux-exercise")?;
        Ok((screens(ctx)?, devices(ctx)?))
    };
    let (screens, (busy, idle)) = match setup() {
        Ok(v) => v,
        Err(e) => return vec![("tmux/run".into(), Err(e))],
    };
    let live = screens
        .iter()
        .find(|s| busy_row(s, &busy, false).is_ok())
        .map(|_| ())
        .ok_or_else(|| {
            let last = screens.last().map_or("", String::as_str);
            busy_row(last, &busy, false)
                .err()
                .unwrap_or_else(|| format!("no 4K faults per second on {busy}"))
        });
    let quiet = screens.iter().try_for_each(|s| idle_row(s, &idle));
    let header = screens
        .iter()
        .all(|s| s.contains("vfio-trace top  kernel"))
        .then_some(())
        .ok_or_else(|| format!("no top header in a capture:\n{}", screens[0]));
    let quits = status_ok(ctx, "tmux-top").and_then(|()| match number(ctx, "tmux.exited")? {
        0 => Ok(()),
        _ => Err("the tmux session still ran 10 s after q".into()),
    });
    let detached = number(ctx, "tmux.probes").and_then(|n| match n {
        0 => Ok(()),
        n => Err(format!("{n} vfio probes still registered after top quit")),
    });
    vec![
        ("tmux/header".into(), header),
        ("tmux/faults-on-the-exercised-bdf".into(), live),
        ("tmux/idle-device-quiet".into(), quiet),
        ("tmux/q-quits".into(), quits),
        ("tmux/detached".into(), detached),
    ]
}
