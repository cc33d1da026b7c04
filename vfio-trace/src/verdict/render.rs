//! The verdict and a comparison as text for a terminal and as markdown for
//! a write-up.

use std::fmt::Write as _;

use super::{
    BarVerdict, DeviceVerdict, Verdict,
    advice::entry_name,
    compare::{Comparison, Row, Unit},
    pages::{order_name, size_name, thousands},
};
use crate::report::duration;

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

fn bar_head(b: &BarVerdict) -> String {
    let name = b.index.map_or("BAR ?".to_owned(), |i| format!("BAR{i}"));
    let size = b.size.map_or("size unknown".to_owned(), size_name);
    let phys = match (b.phys_start, b.phys_alignment) {
        (Some(p), Some(a)) => format!(" at {p:#x} ({}-aligned)", size_name(a)),
        _ => String::new(),
    };
    format!("{name} {size}{phys}")
}

fn mix(b: &BarVerdict) -> String {
    let parts: Vec<String> = b
        .mapped_by_order
        .iter()
        .map(|(o, n)| format!("{} {}", order_name(*o), thousands(*n)))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn projection_lines(projections: &[super::Projection]) -> Vec<String> {
    projections
        .iter()
        .map(|p| {
            let time = p.fault_ns.map_or("time unknown".into(), duration);
            let cond = if p.needs_larger_mapping {
                format!(
                    ", only if the mapping covered a whole {}",
                    order_name(p.order)
                )
            } else {
                String::new()
            };
            format!(
                "at {}: {}, {time}, page tables {}{cond} ({})",
                order_name(p.order),
                faults(p.faults),
                size_name(p.page_table_bytes.max(1)),
                p.basis.describe(p.order)
            )
        })
        .collect()
}

fn huge_lines(b: &BarVerdict) -> Vec<String> {
    b.huge
        .iter()
        .filter(|h| h.attempts > 0 || h.mapped > 0 || h.blocked.is_some())
        .map(|h| {
            let status = h.blocked.map_or("maps".into(), |x| x.describe().to_owned());
            format!(
                "{} ({}): {} attempts, {} mapped, {} fell back: {status}",
                entry_name(h.order),
                order_name(h.order),
                thousands(h.attempts),
                thousands(h.mapped),
                thousands(h.fell_back)
            )
        })
        .collect()
}

/// "1 fault", "32 faults".
fn faults(n: u64) -> String {
    if n == 1 {
        "1 fault".into()
    } else {
        format!("{} faults", thousands(n))
    }
}

fn mapping_text(s: &mut String, m: &super::mapping::MappingVerdict) {
    let known = |a: Option<u64>| a.map_or("?".into(), size_name);
    let _ = writeln!(
        s,
        "    mmap {:#x} ({}, pid {}): VA {}-aligned, PA {}-aligned: {} pages, {} if aligned; \
         {} in {}, page tables {}",
        m.start,
        if m.size == 0 {
            "size ?".into()
        } else {
            size_name(m.size)
        },
        m.pid,
        known(m.va_alignment),
        known(m.pa_alignment),
        order_name(m.allowed_order),
        order_name(m.best_order),
        faults(m.faults),
        duration(m.fault_ns),
        size_name(m.page_table_bytes.max(1))
    );
    for line in projection_lines(&m.projections) {
        let _ = writeln!(s, "      {line}");
    }
    let _ = writeln!(s, "    advice: {}", m.advice);
}

/// A device's totals, the same words in text and markdown.
fn device_summary(d: &DeviceVerdict) -> String {
    format!(
        "{} faults, {} in faults, {} fallbacks",
        thousands(d.faults),
        duration(d.fault_ns),
        thousands(d.fallbacks)
    )
}

/// A BAR's totals, the same words in text and markdown.
fn bar_summary(b: &BarVerdict) -> String {
    format!(
        "{} faults over {}, mapped {}, page tables {}",
        thousands(b.faults),
        size_name(b.span_bytes.max(1)),
        mix(b),
        size_name(b.page_table_bytes.max(1))
    )
}

fn device_text(s: &mut String, d: &DeviceVerdict) {
    let _ = writeln!(s, "\n{}: {}", d.bdf, device_summary(d));
    for b in &d.bars {
        let _ = writeln!(s, "  {}: {}", bar_head(b), bar_summary(b));
        if b.mappings.is_empty() {
            for line in huge_lines(b)
                .iter()
                .chain(&projection_lines(&b.projections))
            {
                let _ = writeln!(s, "    {line}");
            }
            let _ = writeln!(s, "  advice: {}", b.advice);
        }
        for m in &b.mappings {
            mapping_text(s, m);
        }
    }
    let r = &d.refaults;
    if r.zaps > 0 {
        let _ = writeln!(
            s,
            "  zaps {} ({}), then {} pages refaulted, repopulated in {}{}",
            r.zaps,
            duration(r.zap_ns),
            thousands(r.refaulted_pages),
            duration(r.repopulate_ns),
            if r.not_repopulated > 0 {
                format!(
                    " ({} never fully repopulated)",
                    super::pages::count_of(r.not_repopulated, "zap")
                )
            } else {
                String::new()
            }
        );
    }
}

fn head(v: &Verdict) -> String {
    format!(
        "verdict: kernel {} ({}): {}",
        v.kernel,
        v.generation.map_or("?", crate::kernel::Generation::name),
        if v.huge_faults {
            "huge faults (2 MiB, 1 GiB) where the mapping and the BAR are aligned"
        } else {
            "no huge faults on this kernel"
        }
    )
}

#[must_use]
pub fn text(v: &Verdict) -> String {
    let mut s = head(v);
    s.push('\n');
    for d in &v.devices {
        device_text(&mut s, d);
    }
    s
}

pub fn markdown(v: &Verdict) -> String {
    let mut s = format!(
        "## Verdict\n\n{}\n",
        head(v).trim_start_matches("verdict: ")
    );
    for d in &v.devices {
        let _ = writeln!(s, "\n### {}\n\n{}.\n", d.bdf, device_summary(d));
        for b in &d.bars {
            let _ = writeln!(s, "**{}**: {}.\n", bar_head(b), bar_summary(b));
            let _ = writeln!(
                s,
                "| page size | faults | fault time | page tables | basis |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---|");
            for p in &b.projections {
                let _ = writeln!(
                    s,
                    "| {}{} | {} | {} | {} | {} |",
                    order_name(p.order),
                    if p.needs_larger_mapping { "*" } else { "" },
                    thousands(p.faults),
                    p.fault_ns.map_or("?".into(), duration),
                    size_name(p.page_table_bytes.max(1)),
                    p.basis.describe(p.order)
                );
            }
            if b.projections.iter().any(|p| p.needs_larger_mapping) {
                let _ = writeln!(
                    s,
                    "\n\\* only if the mapping covered a whole page of that size"
                );
            }
            for line in huge_lines(b) {
                let _ = writeln!(s, "\n- {line}");
            }
            if b.mappings.is_empty() {
                let _ = writeln!(s, "\n> {}\n", b.advice);
            } else {
                mappings_markdown(&mut s, b);
            }
        }
    }
    s
}

/// One row per mapping, then its advice.
fn mappings_markdown(s: &mut String, b: &BarVerdict) {
    let _ = writeln!(
        s,
        "\n| mapping | size | VA aligned | PA aligned | got | faults | fault time | best aligned |\n\
         |---|---:|---:|---:|---|---:|---:|---|"
    );
    for m in &b.mappings {
        let best = m
            .projections
            .iter()
            .rfind(|p| p.order > m.achieved_order.unwrap_or(0))
            .map_or("-".into(), |p| {
                format!(
                    "{} at {}",
                    super::pages::count_of(p.faults, "fault"),
                    order_name(p.order)
                )
            });
        let _ = writeln!(
            s,
            "| {:#x} (pid {}) | {} | {} | {} | {} | {} | {} | {best} |",
            m.start,
            m.pid,
            if m.size == 0 {
                "?".into()
            } else {
                size_name(m.size)
            },
            m.va_alignment.map_or("?".into(), size_name),
            m.pa_alignment.map_or("?".into(), size_name),
            m.achieved_order.map_or("-".into(), order_name),
            thousands(m.faults),
            duration(m.fault_ns),
        );
    }
    s.push('\n');
    for m in &b.mappings {
        let _ = writeln!(s, "> {}\n", m.advice);
    }
}

fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Count => thousands(v.round() as u64),
        Unit::Ns => duration(v.round() as u64),
        Unit::Bytes if v == 0.0 => "0".into(),
        Unit::Bytes => size_name(v.round() as u64),
    }
}

fn delta(r: &Row) -> String {
    let d = r.delta();
    let sign = if d < 0.0 { "-" } else { "+" };
    let magnitude = match r.unit {
        Unit::Bytes => thousands(d.abs().round() as u64) + " B",
        _ => value(r.unit, d.abs()),
    };
    format!("{sign}{magnitude}")
}

fn ratio(r: &Row) -> String {
    r.ratio().map_or("-".into(), |x| format!("{x:.2}x"))
}

/// Side by side, as a fixed-width table.
#[must_use]
pub fn comparison_text(c: &Comparison) -> String {
    let mut s = format!(
        "\ncomparison: run {} against baseline {}\n",
        c.run_kernel, c.baseline_kernel
    );
    for d in &c.devices {
        let _ = writeln!(s, "\n{} (baseline {})", d.run, d.baseline);
        let _ = writeln!(
            s,
            "  {:<18} {:>12} {:>12} {:>14} {:>9}",
            "", "baseline", "run", "change", "ratio"
        );
        for r in &d.rows {
            let _ = writeln!(
                s,
                "  {:<18} {:>12} {:>12} {:>14} {:>9}",
                r.name,
                value(r.unit, r.baseline),
                value(r.unit, r.run),
                delta(r),
                ratio(r)
            );
        }
    }
    s
}

#[must_use]
pub fn comparison_markdown(c: &Comparison) -> String {
    let mut s = format!(
        "\n## Comparison\n\nRun on {} against the baseline on {}.\n",
        c.run_kernel, c.baseline_kernel
    );
    for d in &c.devices {
        let _ = writeln!(
            s,
            "\n### {} (baseline {})\n\n| | baseline | run | change | ratio |\n|---|---:|---:|---:|---:|",
            d.run, d.baseline
        );
        for r in &d.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.name,
                value(r.unit, r.baseline),
                value(r.unit, r.run),
                delta(r),
                ratio(r)
            );
        }
    }
    s
}
