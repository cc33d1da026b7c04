//! `check` and `record` judge readiness by one preflight: on whatever machine
//! the tests run, both succeed or both refuse, and a refusal is one line.

#![expect(
    unused_crate_dependencies,
    reason = "an integration test uses a few of the package's dependencies"
)]

use std::process::Command;

fn vfio_trace(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vfio-trace"))
        .args(args)
        .output()
        .expect("runs the binary")
}

#[test]
fn check_and_record_agree_on_this_machine() {
    let check = vfio_trace(&["check", "--json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&check.stdout).expect("check --json prints JSON");
    let ready = report["ready"].as_bool().expect("a ready field");
    assert_eq!(check.status.success(), ready);

    let out = tempfile::tempdir().expect("tempdir");
    let json = out.path().join("r.json");
    let record = vfio_trace(&[
        "record",
        "--duration",
        "1",
        "-o",
        json.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&record.stderr);
    assert_eq!(record.status.success(), ready, "record: {stderr}");
    if !ready {
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("vfio-trace check"), "{stderr}");
    }
}
