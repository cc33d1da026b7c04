//! `vfio-trace report RUN.json [BASELINE.json]`: a recording, summarised for
//! people, with the huge-fault verdict, a comparison against a baseline and
//! bounds for CI.

use std::{fmt::Write as _, path::PathBuf, process::ExitCode};

use crate::{
    model::fault::{Origin, Outcome},
    record::{
        devices::DeviceDoc,
        document::{Document, ProbeStatus},
    },
    verdict::{
        self, compare,
        expect::{self, Expect},
        render::{self, Format},
    },
};

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// JSON written by `vfio-trace record`.
    pub file: PathBuf,
    /// Another recording to compare with: figures side by side, with the
    /// change and the ratio.
    pub baseline: Option<PathBuf>,
    /// `text` for a terminal, `markdown` for a write-up, `json` for tools.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// A bound such as `faults.by_order.0 <= 64` (repeatable): exit 1 naming
    /// each that fails, 2 when one cannot be read.
    #[arg(long = "expect", value_name = "EXPR")]
    pub expects: Vec<String>,
    /// Write SVG charts to this directory (markdown embeds them).
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
    /// Read RUN as the events file of `record --events` and write it to OUT
    /// in the Chrome trace-event format (Perfetto), instead of a report.
    #[arg(long, value_name = "OUT", conflicts_with_all = ["baseline", "expects", "charts"])]
    pub trace_event: Option<PathBuf>,
}

/// Converts an events file to a trace-event file.
fn trace_event(events: &std::path::Path, out: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let name = events.display().to_string();
    let file =
        std::fs::File::open(events).map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?;
    let lines = crate::record::events::read(std::io::BufReader::new(file), &name)?;
    let trace = crate::verdict::trace_event::convert(&lines);
    let text = serde_json::to_string(&trace)?;
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("vfio-trace: {} events to {}", lines.len(), out.display());
    Ok(ExitCode::SUCCESS)
}

/// Nanoseconds as people read them.
#[must_use]
pub fn duration(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

fn probes(doc: &Document, keep: impl Fn(ProbeStatus) -> bool) -> String {
    doc.probes
        .iter()
        .filter(|p| keep(p.status))
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[allow(
    clippy::many_single_char_names,
    reason = "s, d and f are the text, the device and its faults in every line"
)]
fn device(s: &mut String, d: &DeviceDoc) {
    let f = &d.faults;
    let order = |o: &str| f.by_order.get(o).copied().unwrap_or(0);
    let result = |o: Outcome| format!("{} {}", o.name(), f.by_result.get(&o).unwrap_or(&0));
    let _ = writeln!(
        s,
        "\n{} ({}:{}), lost {}",
        d.bdf,
        d.vendor.as_deref().unwrap_or("?"),
        d.device.as_deref().unwrap_or("?"),
        d.lost_events
    );
    let _ = writeln!(
        s,
        "  faults    {} | 4K {}, 2M {}, 1G {} | {}, {}, {}",
        f.total,
        order("0"),
        order("9"),
        order("18"),
        result(Outcome::Nopage),
        result(Outcome::Fallback),
        result(Outcome::Sigbus),
    );
    if !f.by_origin.is_empty() {
        let origins: Vec<String> = Origin::ALL
            .iter()
            .map(|o| format!("{} {}", o.name(), f.by_origin.get(o).unwrap_or(&0)))
            .collect();
        let _ = writeln!(s, "  origin    {}", origins.join(", "));
    }
    threads(s, d);
    let i = &d.inserts;
    let _ = writeln!(
        s,
        "  inserts   pte {}, pmd {}, pud {}, remap {}",
        i.pte, i.pmd, i.pud, i.remap
    );
    for (order, name) in [("0", "4K"), ("9", "2M"), ("18", "1G")] {
        if let Some(l) = d.latency_ns.by_order.get(order).filter(|l| l.count > 0) {
            let _ = writeln!(
                s,
                "  {name} fault  p50 {}, p99 {}, max {} ({} faults)",
                duration(l.p50),
                duration(l.p99),
                duration(l.max),
                l.count
            );
        }
    }
    let z = &d.zaps;
    let causes: Vec<String> = z.causes.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        s,
        "  zaps      {} ({}), {} pages, p50 {} | refaulted pages {}",
        z.count,
        if causes.is_empty() {
            "none".into()
        } else {
            causes.join(", ")
        },
        z.pages,
        duration(z.latency_ns.p50),
        d.refaults.pages
    );
    crate::report_dma::device(s, d);
    let lock = |mode: &str| {
        d.memory_lock
            .get(mode)
            .map_or((0, 0), |l| (l.count, l.wait_ns.p50))
    };
    let (read, write) = (lock("read"), lock("write"));
    let _ = writeln!(
        s,
        "  lock wait read {} (p50 {}), write {} (p50 {})",
        read.0,
        duration(read.1),
        write.0,
        duration(write.1)
    );
}

/// Threads shown at most, those with the most faults first.
const THREADS_SHOWN: usize = 6;

/// "  threads   qemu-system-x86[812] 1027, CPU 0/TCG[815] 3": which threads
/// faulted, so a VMM's DMA-mapping thread reads apart from its vCPUs.
fn threads(s: &mut String, d: &DeviceDoc) {
    let mut all: Vec<(&str, u32, u64)> = d
        .processes
        .iter()
        .flat_map(|p| &p.threads)
        .map(|t| (t.comm.as_str(), t.tid, t.faults))
        .collect();
    if all.is_empty() {
        return;
    }
    all.sort_by(|a, b| b.2.cmp(&a.2).then(a.1.cmp(&b.1)));
    let mut shown: Vec<String> = all
        .iter()
        .take(THREADS_SHOWN)
        .map(|(comm, tid, n)| format!("{comm}[{tid}] {n}"))
        .collect();
    if all.len() > THREADS_SHOWN {
        shown.push(format!("{} more", all.len() - THREADS_SHOWN));
    }
    let _ = writeln!(s, "  threads   {}", shown.join(", "));
}

/// The text summary of a record document.
#[must_use]
pub fn render(doc: &Document) -> String {
    let mut s = String::new();
    let generation = doc.kernel.generation.map_or("?", |g| g.name());
    let _ = writeln!(
        s,
        "kernel {} ({generation}), {:.2} s, stopped: {}, lost events {}",
        doc.kernel.release,
        doc.duration_seconds,
        doc.stop_reason.name(),
        doc.lost_events,
    );
    let missing = probes(doc, |st| {
        !matches!(st, ProbeStatus::Attached | ProbeStatus::Inferred)
    });
    if !missing.is_empty() {
        let _ = writeln!(s, "not attached: {missing}");
    }
    let inferred = probes(doc, |st| st == ProbeStatus::Inferred);
    if !inferred.is_empty() {
        let _ = writeln!(s, "inferred from the fault's order and result: {inferred}");
    }
    for problem in doc.health.problems() {
        let _ = writeln!(s, "tracer health: {problem}");
    }
    for d in &doc.devices {
        device(&mut s, d);
    }
    crate::report_dma::other(&mut s, &doc.other_dma_maps);
    s
}

/// Exit status of a bound that cannot be read.
const BAD_EXPECT: u8 = 2;

/// Everything `--format json` writes.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    verdict: &'a verdict::Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<&'a verdict::Verdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comparison: Option<&'a compare::Comparison>,
    expect_failed: Vec<String>,
    charts: Vec<String>,
}

/// The report of `doc` (and `base`) in `format`; `charts` are files
/// written beside it, named as markdown links them.
///
/// # Errors
/// Only if the JSON report cannot be serialized.
pub fn write_report(
    doc: &Document,
    base: Option<&Document>,
    format: Format,
    failed: &[expect::Failed],
    charts: &[String],
) -> anyhow::Result<String> {
    let v = verdict::verdict(doc);
    let bv = base.map(verdict::verdict);
    let cmp = base.map(|b| compare::compare(doc, b));
    Ok(match format {
        Format::Text => {
            let mut s = render(doc);
            s.push('\n');
            s.push_str(&render::text(&v));
            if let Some(c) = &cmp {
                s.push_str(&render::comparison_text(c));
            }
            s
        }
        Format::Markdown => {
            let mut s = format!(
                "# vfio-trace report\n\n```\n{}```\n\n{}",
                render(doc),
                render::markdown(&v)
            );
            if let Some(c) = &cmp {
                s.push_str(&render::comparison_markdown(c));
            }
            if !charts.is_empty() {
                s.push_str("\n## Charts\n");
                for c in charts {
                    let _ = write!(s, "\n![{c}]({c})\n");
                }
            }
            s
        }
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&JsonReport {
                verdict: &v,
                baseline: bv.as_ref(),
                comparison: cmp.as_ref(),
                expect_failed: failed.iter().map(ToString::to_string).collect(),
                charts: charts.to_vec(),
            })?;
            s.push('\n');
            s
        }
    })
}

/// Prints the report; the exit status says whether every bound held.
///
/// # Errors
/// When a document cannot be read (one line naming the file) or a chart
/// cannot be written.
pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    if let Some(out) = &args.trace_event {
        return trace_event(&args.file, out);
    }
    let expects = match args
        .expects
        .iter()
        .map(|e| Expect::parse(e))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(e) => e,
        Err(err) => {
            eprintln!("vfio-trace: {err}");
            return Ok(ExitCode::from(BAD_EXPECT));
        }
    };
    let doc = Document::read(&args.file)?;
    let base = args.baseline.as_deref().map(Document::read).transpose()?;
    // Bounds see the document and, under `verdict`, the verdict.
    let mut fields = serde_json::to_value(&doc)?;
    fields["verdict"] = serde_json::to_value(verdict::verdict(&doc))?;
    let failed = match expect::check(&fields, &expects) {
        Ok(f) => f,
        Err(err) => {
            eprintln!("vfio-trace: {err}");
            return Ok(ExitCode::from(BAD_EXPECT));
        }
    };
    let charts = match &args.charts {
        Some(dir) => crate::verdict::charts::write_all(dir, &doc, base.as_ref())?,
        None => Vec::new(),
    };
    print!(
        "{}",
        write_report(&doc, base.as_ref(), args.format, &failed, &charts)?
    );
    for f in &failed {
        eprintln!("vfio-trace: {f}");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::document::{ProbeDoc, ProbeKind};

    fn probe(name: &str, status: ProbeStatus) -> ProbeDoc {
        ProbeDoc {
            name: name.into(),
            program: None,
            kind: ProbeKind::Kprobe,
            symbol: None,
            module: None,
            required: false,
            status,
            reason: None,
            attach_us: None,
            skipped_runs: None,
        }
    }

    #[test]
    fn summarises_a_document() {
        let mut doc = crate::record::document_tests::sample();
        doc.probes = vec![
            probe("fault_entry", ProbeStatus::Attached),
            probe("zap_range", ProbeStatus::Absent),
            probe("insert_pte", ProbeStatus::Inferred),
        ];
        let text = render(&doc);
        assert!(
            text.starts_with("kernel 6.12.117+deb12-amd64 (huge-fault), 0.50 s, stopped: command-exited, lost events 3\n"),
            "{text}"
        );
        assert!(text.contains("not attached: zap_range\n"), "{text}");
        assert!(
            text.contains("inferred from the fault's order and result: insert_pte\n"),
            "{text}"
        );
        assert!(text.contains("\n0000:01:00.0 (?:?), lost 3\n"), "{text}");
        assert!(
            text.contains("faults    6 | 4K 0, 2M 6, 1G 0 | nopage 6, fallback 0, sigbus 0"),
            "{text}"
        );
        assert!(
            text.contains("inserts   pte 0, pmd 6, pud 0, remap 0"),
            "{text}"
        );
        assert!(text.contains("2M fault  p50 5.0 us"), "{text}");
        assert!(
            text.contains("zaps      1 (decode-off 1), 2560 pages"),
            "{text}"
        );
        assert!(text.contains("refaulted pages 512"), "{text}");
        assert!(
            text.contains("lock wait read 1 (p50 903 ns), write 0"),
            "{text}"
        );
        assert!(!text.contains("tracer health"), "{text}");
    }
}
