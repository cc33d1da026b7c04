//! `report` end to end on documents written to disk: formats, the
//! comparison, bounds and their exit statuses, and the charts.

use std::{path::Path, process::ExitCode};

use super::{charts, compare::compare, render::Format, tests::document};
use crate::{
    kernel::Generation,
    record::document::Document,
    report::{ReportArgs, run, write_report},
};

fn write(dir: &Path, name: &str, doc: &Document) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(doc).expect("json")).expect("write");
    path
}

fn args(file: std::path::PathBuf) -> ReportArgs {
    ReportArgs {
        file,
        baseline: None,
        format: Format::Text,
        expects: Vec::new(),
        charts: None,
        trace_event: None,
    }
}

fn unaligned() -> Document {
    document(
        Generation::HugeFault,
        super::tests::BAR2_START,
        &super::tests::unaligned_storm(),
    )
}

fn aligned() -> Document {
    document(
        Generation::HugeFault,
        super::tests::BAR2_START,
        &super::tests::pmd_aligned(),
    )
}

#[test]
fn the_comparison_has_deltas_and_ratios() {
    let c = compare(&unaligned(), &aligned());
    let rows = &c.devices[0].rows;
    let row = |name: &str| rows.iter().find(|r| r.name == name).expect(name);
    let faults = row("faults");
    assert_eq!((faults.baseline, faults.run), (33.0, 16417.0));
    assert!((faults.delta() - 16384.0).abs() < f64::EPSILON);
    assert_eq!(
        faults.ratio().map(|r| (r * 1000.0).round()),
        Some(497_485.0)
    );
    let tables = row("page-table bytes");
    assert_eq!((tables.baseline, tables.run), (4096.0, 131_072.0));
    assert_eq!(row("2 MiB faults").ratio(), Some(1.0));
    assert_eq!(row("zaps").ratio(), None);
    let text =
        write_report(&unaligned(), Some(&aligned()), Format::Text, &[], &[]).expect("renders");
    assert!(
        text.contains("  faults                       33       16,417        +16,384   497.48x\n"),
        "{text}"
    );
    assert!(
        text.contains("  page-table bytes          4 KiB      128 KiB     +126,976 B    32.00x\n"),
        "{text}"
    );
}

#[test]
fn every_format_carries_the_verdict() {
    let doc = unaligned();
    let text = write_report(&doc, None, Format::Text, &[], &[]).expect("text");
    assert!(text.contains("\nverdict: kernel 6.12.117+deb12-amd64 (huge-fault): huge faults"));
    assert!(
        text.contains("  advice: BAR2 mmap at 0x7f1234001000 (64 MiB, pid 300) is only 4 KiB-aligned: 16,384 faults")
    );
    assert!(
        text.contains(
            "    mmap 0x7f1234001000 (64 MiB, pid 300): VA 4 KiB-aligned, PA 32 GiB-aligned: \
             4 KiB pages, 2 MiB if aligned; 16,417 faults in 163.9 ms, page tables 128 KiB\n"
        ),
        "{text}"
    );
    assert!(text.contains("      at 2 MiB: 32 faults, 320.0 us, page tables 4 KiB (no mapped 2 MiB fault in this run: estimated at the mean 4 KiB fault)\n"), "{text}");
    // Without mappings (an older recording), the BAR's own figures.
    let mut old = doc.clone();
    old.devices[0].bars[0].mappings.clear();
    let text = write_report(&old, None, Format::Text, &[], &[]).expect("text");
    assert!(
        text.contains(
            "    PMD (2 MiB): 32 attempts, 0 mapped, 32 fell back: misaligned virtual address\n"
        ),
        "{text}"
    );
    assert!(text.contains("    at 1 GiB: 1 fault, "), "{text}");
    assert!(
        text.contains("  advice: BAR2 of 0000:01:00.0 mmap is only 4 KiB-aligned"),
        "{text}"
    );
    let md = write_report(
        &doc,
        Some(&aligned()),
        Format::Markdown,
        &[],
        &["c/latency.svg".into()],
    )
    .expect("markdown");
    assert!(
        md.starts_with("# vfio-trace report\n\n```\nkernel 6.12.117"),
        "{md}"
    );
    assert!(md.contains("| 2 MiB | 32 | "), "{md}");
    assert!(md.contains("| 1 GiB* | 1 | "), "{md}");
    assert!(md.contains("\n## Comparison\n"), "{md}");
    assert!(md.contains("![c/latency.svg](c/latency.svg)"), "{md}");
    let json: serde_json::Value = serde_json::from_str(
        &write_report(&doc, Some(&aligned()), Format::Json, &[], &[]).expect("json"),
    )
    .expect("parses");
    let bar = &json["verdict"]["devices"][0]["bars"][0];
    assert_eq!(bar["projections"][1]["faults"], 32);
    assert_eq!(bar["projections"][1]["basis"]["kind"], "borrowed");
    assert_eq!(bar["huge"][0]["blocked"], "misaligned-virtual-address");
    assert_eq!(
        json["baseline"]["devices"][0]["bars"][0]["achieved_order"],
        9
    );
    assert_eq!(json["comparison"]["devices"][0]["rows"][0]["run"], 16417.0);
}

#[test]
fn expect_bounds_set_the_exit_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "run.json", &unaligned());
    let with = |expects: &[&str]| {
        let mut a = args(file.clone());
        a.expects = expects.iter().map(|e| (*e).to_owned()).collect();
        run(&a).expect("runs")
    };
    assert_eq!(
        with(&["faults.by_order.0 == 16384", "zaps.count == 0"]),
        ExitCode::SUCCESS
    );
    assert_eq!(with(&["faults.by_order.0 <= 64"]), ExitCode::FAILURE);
    assert_eq!(with(&["faults.by_order.0 <="]), ExitCode::from(2));
    assert_eq!(with(&["no.such.field < 1"]), ExitCode::from(2));
}

#[test]
fn bad_input_is_one_line_and_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ nope").expect("write");
    let missing = dir.path().join("none.json");
    let old = dir.path().join("old.json");
    std::fs::write(&old, r#"{"schema_version": 0}"#).expect("write");
    for (file, start) in [
        (&bad, "is not JSON"),
        (&missing, "cannot read"),
        (&old, "has schema_version 0"),
    ] {
        let err = run(&args(file.clone())).expect_err("fails").to_string();
        assert!(err.contains(start), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
    // A bad baseline fails the same way.
    let good = write(dir.path(), "run.json", &unaligned());
    let mut a = args(good);
    a.baseline = Some(bad);
    assert!(
        run(&a)
            .expect_err("fails")
            .to_string()
            .contains("bad.json is not JSON")
    );
}

#[test]
fn charts_render_labelled_with_the_documents_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = unaligned();
    let written = charts::write_all(dir.path(), &doc, Some(&aligned())).expect("charts");
    let names: Vec<String> = written
        .iter()
        .map(|p| {
            Path::new(p)
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "latency-0000-01-00-0.svg",
            "pages-0000-01-00-0-bar2.svg",
            "timeline-0000-01-00-0.svg",
            "compare-0000-01-00-0.svg"
        ]
    );
    for p in &written {
        let svg = std::fs::read_to_string(p).expect("read");
        assert!(svg.starts_with("<svg"), "{p}");
        assert!(svg.trim_end().ends_with("</svg>"), "{p}");
    }
    let latency = std::fs::read_to_string(&written[0]).expect("read");
    assert!(latency.contains("0000:01:00.0: fault latency by order (ns)"));
    assert!(
        latency.contains("4 KiB p50") && latency.contains("2 MiB max"),
        "{latency}"
    );
    // A 262144-page BAR in 4096 cells of 64 pages; the first holds page 0's
    // PUD, PMD and PTE faults and 63 pages of one fault each.
    let pages = std::fs::read_to_string(&written[1]).expect("read");
    assert!(
        pages.contains("0000:01:00.0 BAR2: faults per page, 64 pages per cell, most 66 per cell"),
        "{pages}"
    );
    let cmp = std::fs::read_to_string(&written[3]).expect("read");
    assert!(
        cmp.contains("fault time (ns)") && cmp.contains("baseline"),
        "{cmp}"
    );
}
