//! `vfio-trace check --json` in the guest: it runs, exits 0 and prints JSON.

use super::{Ctx, Scenario, TestResult, read_out};

pub const SCENARIO: Scenario = Scenario {
    name: "check",
    guest: r#"vfio-trace check --json >"$OUT/check.json"; echo $? >"$OUT/check.status""#,
    check,
};

fn check(ctx: &Ctx) -> Vec<TestResult> {
    vec![
        ("exit-status".to_owned(), exit_status(ctx)),
        ("json".to_owned(), json(ctx)),
    ]
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

fn json(ctx: &Ctx) -> Result<(), String> {
    let text = read_out(ctx, "check.json")?;
    serde_json::from_str::<serde_json::Value>(&text)
        .map(drop)
        .map_err(|e| format!("check.json is not JSON: {e}"))
}
