//! `report --charts DIR`: SVG charts of a recording, drawn from the same
//! document the text reads: fault latency by order, faults per page of
//! each BAR, the timeline of faults, zaps and refaults, and a comparison
//! with the baseline.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use plotters::{coord::Shift, prelude::*};

use super::{
    compare::{self, Unit},
    pages::order_name,
};
use crate::record::{devices::BarDoc, document::Document};

const SIZE: (u32, u32) = (960, 480);
/// Cells of a BAR heat map, across and at most down.
const HEAT_COLUMNS: u64 = 64;
const HEAT_ROWS: u64 = 64;
const QUANTILES: [&str; 5] = ["min", "p50", "p90", "p99", "max"];

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// A named, coloured series of (second, count).
type Series = (&'static str, RGBColor, Vec<(u64, u64)>);

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// Draws into an SVG string.
fn svg(draw: impl FnOnce(&Area<'_>) -> anyhow::Result<()>) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// Fault latency quantiles per order of one device, on a log scale.
///
/// # Errors
/// When plotters fails to draw (it does not, into a string, short of a bug).
pub fn latency(doc: &Document, device: usize) -> anyhow::Result<String> {
    let d = &doc.devices[device];
    let bars: Vec<(String, u64)> = d
        .latency_ns
        .by_order
        .iter()
        .filter(|(_, l)| l.count > 0)
        .flat_map(|(o, l)| {
            let name = o.parse().map_or(o.clone(), order_name);
            [l.min, l.p50, l.p90, l.p99, l.max]
                .into_iter()
                .zip(QUANTILES)
                .map(move |(v, q)| (format!("{name} {q}"), v.max(1)))
        })
        .collect();
    let top = bars.iter().map(|(_, v)| *v).max().unwrap_or(1) as f64 * 2.0;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("{}: fault latency by order (ns)", d.bdf),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (0..bars.len().max(1)).into_segmented(),
                (1f64..top).log_scale(),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bars.len().max(1))
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => bars.get(*i).map_or(String::new(), |b| b.0.clone()),
                _ => String::new(),
            })
            .y_desc("ns")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 1.0),
                        (SegmentValue::Exact(i + 1), *v as f64),
                    ],
                    BLUE.mix(0.6).filled(),
                )
            }))
            .map_err(err)?;
        Ok(())
    })
}

/// Faults per page of a BAR: pages in rows of cells, each cell the sum of
/// its pages' faults, white (none) to red (the most).
///
/// # Errors
/// When plotters fails to draw (it does not, into a string, short of a bug).
pub fn heatmap(bdf: &str, bar: &BarDoc) -> anyhow::Result<String> {
    let end = bar
        .page_faults
        .last()
        .map_or(1, |r| r.first + r.pages)
        .max(bar.size.map_or(1, |s| s >> 12));
    let cells = HEAT_COLUMNS * HEAT_ROWS;
    let per_cell = end.div_ceil(cells).max(1);
    let rows = end.div_ceil(per_cell * HEAT_COLUMNS).max(1);
    let mut counts = vec![0u64; (rows * HEAT_COLUMNS) as usize];
    for r in &bar.page_faults {
        for page in r.first..r.first + r.pages {
            if let Some(c) = counts.get_mut((page / per_cell) as usize) {
                *c += u64::from(r.faults);
            }
        }
    }
    let most = counts.iter().copied().max().unwrap_or(0).max(1);
    let name = bar.index.map_or("BAR ?".into(), |i| format!("BAR{i}"));
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{bdf} {name}: faults per page, {per_cell} pages per cell, most {most} per cell"
                ),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0..HEAT_COLUMNS, rows..0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(format!("+{per_cell} pages"))
            .y_desc(format!("x{} pages", per_cell * HEAT_COLUMNS))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, n)| {
                let (x, y) = (i as u64 % HEAT_COLUMNS, i as u64 / HEAT_COLUMNS);
                let shade = 255 - (255 * n / most) as u8;
                Rectangle::new(
                    [(x, y), (x + 1, y + 1)],
                    RGBColor(255, shade, shade).filled(),
                )
            }))
            .map_err(err)?;
        Ok(())
    })
}

/// Faults, zaps and refaulted pages per second of one device.
///
/// # Errors
/// When plotters fails to draw (it does not, into a string, short of a bug).
pub fn timeline(doc: &Document, device: usize) -> anyhow::Result<String> {
    let bdf = doc.devices[device].bdf;
    let seconds = doc
        .timeline
        .devices
        .iter()
        .find(|t| t.bdf == bdf)
        .map_or(&[][..], |t| &t.seconds[..]);
    let last = seconds.last().map_or(1, |s| s.t + 1);
    let series: [Series; 3] = [
        (
            "faults",
            BLUE,
            seconds.iter().map(|s| (s.t, s.faults())).collect(),
        ),
        (
            "zaps",
            RED,
            seconds.iter().map(|s| (s.t, u64::from(s.zaps))).collect(),
        ),
        (
            "refaulted pages",
            GREEN,
            seconds.iter().map(|s| (s.t, s.refaulted_pages)).collect(),
        ),
    ];
    let top = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(_, v)| *v))
        .max()
        .unwrap_or(1)
        .max(1)
        * 2;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(format!("{bdf}: per second"), ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0..last, (1..top).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since attach")
            .y_desc("count")
            .draw()
            .map_err(err)?;
        for (name, color, points) in series {
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|(_, v)| *v > 0)
                        .map(|&(t, v)| Circle::new((t, v), 4, color.filled())),
                )
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// Baseline and run side by side, per figure, on a log scale.
///
/// # Errors
/// When plotters fails to draw (it does not, into a string, short of a bug).
pub fn comparison(c: &compare::Comparison, device: usize) -> anyhow::Result<String> {
    let d = &c.devices[device];
    let rows: Vec<&compare::Row> = d
        .rows
        .iter()
        .filter(|r| r.unit != Unit::Bytes && (r.run > 0.0 || r.baseline > 0.0))
        .collect();
    let top = rows
        .iter()
        .map(|r| r.run.max(r.baseline))
        .fold(1.0, f64::max)
        * 2.0;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{} ({}) against {} ({})",
                    d.run, c.run_kernel, d.baseline, c.baseline_kernel
                ),
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (0..rows.len().max(1)).into_segmented(),
                (1f64..top).log_scale(),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(rows.len().max(1))
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => rows.get(*i).map_or(String::new(), |r| {
                    if r.unit == Unit::Ns {
                        format!("{} (ns)", r.name)
                    } else {
                        r.name.to_owned()
                    }
                }),
                _ => String::new(),
            })
            .draw()
            .map_err(err)?;
        for (name, color, run) in [("baseline", BLUE, false), ("run", RED, true)] {
            chart
                .draw_series(rows.iter().enumerate().map(|(i, r)| {
                    // Baseline in the left half of the figure's slot, run in the right.
                    let (from, to, v) = if run {
                        (SegmentValue::CenterOf(i), SegmentValue::Exact(i + 1), r.run)
                    } else {
                        (
                            SegmentValue::Exact(i),
                            SegmentValue::CenterOf(i),
                            r.baseline,
                        )
                    };
                    Rectangle::new([(from, 1.0), (to, v.max(1.0))], color.mix(0.6).filled())
                }))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// Writes every chart of `doc` (and the comparison with `base`) into `dir`;
/// returns their paths in the order written.
///
/// # Errors
/// When `dir` cannot be made or a chart cannot be written.
pub fn write_all(
    dir: &Path,
    doc: &Document,
    base: Option<&Document>,
) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut charts: Vec<(String, String)> = Vec::new();
    for (i, d) in doc.devices.iter().enumerate() {
        let tag = d.bdf.to_string().replace([':', '.'], "-");
        if d.faults.total > 0 {
            charts.push((format!("latency-{tag}.svg"), latency(doc, i)?));
        }
        for b in d.bars.iter().filter(|b| b.faults > 0) {
            let bar = b.index.map_or("unknown".into(), |i| i.to_string());
            charts.push((
                format!("pages-{tag}-bar{bar}.svg"),
                heatmap(&d.bdf.to_string(), b)?,
            ));
        }
        charts.push((format!("timeline-{tag}.svg"), timeline(doc, i)?));
    }
    if let Some(base) = base {
        let c = compare::compare(doc, base);
        for (i, d) in c.devices.iter().enumerate() {
            let tag = d.run.replace([':', '.'], "-");
            charts.push((format!("compare-{tag}.svg"), comparison(&c, i)?));
        }
    }
    let mut written = Vec::new();
    for (name, body) in charts {
        let path = dir.join(&name);
        std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}
