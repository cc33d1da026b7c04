//! `vfio-trace report` as a user runs it, on the real 6.12 recording kept
//! in docs/verdict-example: the verdict, bounds that pass and fail with
//! their exit statuses, charts, the trace-event conversion, and bad input.

#![expect(
    unused_crate_dependencies,
    reason = "an integration test uses a few of the package's dependencies"
)]

use std::{path::PathBuf, process::Command};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/verdict-example/record.json")
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn report(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_vfio-trace"))
        .arg("report")
        .args(args)
        .output()
        .expect("runs the binary");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn the_verdict_of_a_real_recording() {
    let run = report(&[path(&example())]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "advice: BAR2 mmap at 0x7f43e934b000 (1 GiB, pid 175) is only 4 KiB-aligned: \
             16,384 faults at 4 KiB in 50.4 ms (+67 fallbacks); aligned to 2 MiB it would take \
             32 (~291.4 us), aligned to 1 GiB it would take 1 (~9.1 us)"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(
            "advice: BAR2 mmap at 0x7f43e8e00000 (1 GiB, pid 175) is only 2 MiB-aligned: \
             32 faults at 2 MiB in 297.3 us (+1 fallbacks); aligned to 1 GiB it would take 1 \
             (~9.1 us) (QEMU >= 9.2 aligns; for your own mmap, use MAP_FIXED on an aligned \
             reservation) [PUD impossible: misaligned virtual address]"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn bounds_pass_fail_or_cannot_be_read() {
    let file = example();
    let pass = report(&[
        path(&file),
        "--expect",
        "faults.by_order.0 == 16384",
        "--expect",
        "devices[0000:01:00.0].faults.by_order.9 == 98",
        "--expect",
        "zaps.count == 0",
        "--expect",
        "verdict.devices.0.bars[index=2].mappings[va_alignment=4096].projections[order=9].faults == 32",
    ]);
    assert_eq!(pass.code, Some(0), "{}", pass.stderr);
    let fail = report(&[
        path(&file),
        "--expect",
        "faults.by_order.0 <= 64",
        "--expect",
        "lost_events == 0",
        "--expect",
        "faults.by_result.fallback < 10",
    ]);
    assert_eq!(fail.code, Some(1));
    assert_eq!(
        fail.stderr,
        "vfio-trace: expect failed: faults.by_order.0 <= 64 (got 16384)\n\
         vfio-trace: expect failed: faults.by_result.fallback < 10 (got 68)\n"
    );
    let bad = report(&[path(&file), "--expect", "faults.by_order.0 =< 64"]);
    assert_eq!(bad.code, Some(2));
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
    assert!(
        bad.stderr
            .starts_with("vfio-trace: bad --expect 'faults.by_order.0 =< 64': ")
    );
}

#[test]
fn bad_input_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let cases = [
        (dir.path().join("none.json"), "cannot read"),
        (write("bad.json", "{ nope"), "is not JSON"),
        (
            write("other.json", r#"{"a": 1}"#),
            "is not a vfio-trace record",
        ),
        (
            write("v7.json", r#"{"schema_version": 7}"#),
            "has schema_version 7; this vfio-trace reads 1",
        ),
        (
            write("short.json", r#"{"schema_version": 1}"#),
            "is not a valid vfio-trace record: missing field",
        ),
    ];
    for (file, want) in &cases {
        let run = report(&[path(file)]);
        assert_eq!(run.code, Some(1), "{want}");
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains(want), "{}", run.stderr);
        // The same for a bad baseline.
        let run = report(&[path(&example()), path(file)]);
        assert_eq!(run.code, Some(1), "{want}");
        assert!(run.stderr.contains(want), "{}", run.stderr);
    }
}

#[test]
fn charts_markdown_and_comparison() {
    let dir = tempfile::tempdir().expect("tempdir");
    let charts = dir.path().join("charts");
    let run = report(&[
        path(&example()),
        path(&example()),
        "--format",
        "markdown",
        "--charts",
        path(&charts),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("\n## Comparison\n"));
    // Against itself: every figure unchanged.
    assert!(
        run.stdout
            .contains("| faults | 16,484 | 16,484 | +0 | 1.00x |"),
        "{}",
        run.stdout
    );
    let mut names: Vec<String> = std::fs::read_dir(&charts)
        .expect("charts written")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "compare-0000-01-00-0.svg",
            "latency-0000-01-00-0.svg",
            "pages-0000-01-00-0-bar2.svg",
            "timeline-0000-01-00-0.svg"
        ]
    );
    assert!(run.stdout.contains("/compare-0000-01-00-0.svg)"));
}

#[test]
fn events_convert_to_a_trace_event_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        concat!(
            r#"{"kind":"task","pid":7,"tid":7,"comm":"qemu"}"#,
            "\n",
            r#"{"kind":"fault","t_ns":1000,"dur_ns":2000,"device":"0000:01:00.0","pid":7,"tid":7,"order":0,"result":"nopage","bar":2,"page":3,"vma_start":4096,"pte":1,"pmd":0,"pud":0,"remap_pages":0}"#,
            "\n",
            r#"{"kind":"fault","t_ns":5000,"dur_ns":9000,"device":"0000:01:00.0","pid":7,"tid":7,"order":9,"result":"nopage","bar":2,"page":512,"vma_start":4096,"pte":0,"pmd":1,"pud":0,"remap_pages":0}"#,
            "\n"
        ),
    )
    .expect("write");
    let out = dir.path().join("trace.json");
    let run = report(&[path(&events), "--trace-event", path(&out)]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("written")).expect("JSON");
    let slices: Vec<&str> = trace["traceEvents"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| e["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(slices, ["4 KiB fault", "2 MiB fault"]);
    let bad = report(&[path(&example()), "--trace-event", path(&out)]);
    assert_eq!(bad.code, Some(1));
    assert!(
        bad.stderr.contains("record.json:1: not a vfio-trace event"),
        "{}",
        bad.stderr
    );
}
