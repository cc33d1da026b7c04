//! The device view (Enter): per-BAR mappings, the order mix, latency,
//! where faults land, rates over time, the projection at the best page
//! size and the last zaps.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Style, Stylize as _},
    text::Line,
    widgets::{BarChart, Block, Paragraph, Row, Sparkline, Table},
};

use super::{
    format,
    view::{DeviceRow, LatencyKind},
};

/// Zaps listed at most.
const ZAPS_SHOWN: usize = 8;
/// Projection lines shown at most (the last says how many more there are).
const PROJECTION_SHOWN: usize = 4;

pub fn render(row: &DeviceRow, frame: &mut Frame, area: Rect) {
    let d = &row.detail;
    let bars = u16::try_from(d.bars.len().max(1)).unwrap_or(8).min(8);
    let projection_lines = projection_lines(&d.projection);
    let projection_height = u16::try_from(projection_lines.len()).unwrap_or(1) + 2;
    let [title, bar_table, middle, heat, sparks, projection, zaps] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(bars + 3),
        Constraint::Length(9),
        Constraint::Length(bars + 2),
        Constraint::Length(4),
        Constraint::Length(projection_height),
        Constraint::Min(3),
    ])
    .areas(area);
    let name = row.name.as_deref().unwrap_or("");
    frame.render_widget(
        Paragraph::new(Line::from(format!(
            "{} {} {name}   faults {}/s  zaps {}/s  refaulted {}  lost {}   Esc: back",
            row.bdf,
            format::ids(row.vendor, row.device),
            format::rate(row.faults_per_s),
            format::rate(row.zaps_per_s),
            format::count(row.refaulted_pages),
            format::count(row.lost),
        )))
        .bold(),
        title,
    );
    render_bars(row, frame, bar_table);
    let [orders, latency] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(middle);
    render_orders(row, frame, orders);
    render_latency(row, frame, latency);
    render_heat(row, frame, heat);
    let [faults, zap_rate] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(sparks);
    let last = |v: &[u64]| v.last().copied().unwrap_or(0);
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(format!(" faults/s (now {}) ", last(&d.fault_rate))))
            .data(tail(&d.fault_rate, faults.width.saturating_sub(2)))
            .style(Style::new().fg(Color::Green)),
        faults,
    );
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(format!(" zaps/s (now {}) ", last(&d.zap_rate))))
            .data(tail(&d.zap_rate, zap_rate.width.saturating_sub(2)))
            .style(Style::new().fg(Color::Yellow)),
        zap_rate,
    );
    frame.render_widget(
        Paragraph::new(projection_lines).block(
            Block::bordered().title(" projection: faults at the best page size (run, analysis) "),
        ),
        projection,
    );
    render_zaps(row, frame, zaps);
}

/// The panel's lines: up to [`PROJECTION_SHOWN`], the last of them
/// counting the rest when there are more.
fn projection_lines(lines: &[String]) -> Vec<Line<'static>> {
    if lines.is_empty() {
        // Live works it out for the open view only, at its next refresh.
        return vec![Line::from("worked out at the next refresh")];
    }
    if lines.len() <= PROJECTION_SHOWN {
        return lines.iter().map(|l| Line::from(l.clone())).collect();
    }
    let shown = PROJECTION_SHOWN - 1;
    lines[..shown]
        .iter()
        .map(|l| Line::from(l.clone()))
        .chain([Line::from(format!(
            "and {} more mappings: `vfio-trace report` lists each",
            lines.len() - shown
        ))])
        .collect()
}

fn tail(v: &[u64], width: u16) -> Vec<u64> {
    v[v.len().saturating_sub(usize::from(width))..].to_vec()
}

fn render_bars(row: &DeviceRow, frame: &mut Frame, area: Rect) {
    let header = Row::new([
        "BAR", "size", "faults", "pages", "4K maps", "2M maps", "1G maps",
    ])
    .style(Style::new().bold());
    let rows = row.detail.bars.iter().map(|b| {
        Row::new([
            b.index.map_or_else(|| "?".into(), |i| i.to_string()),
            b.size.map_or_else(|| "?".into(), format::size),
            format::count(b.faults),
            format::count(b.pages_faulted),
            format::count(b.pte),
            format::count(b.pmd),
            format::count(b.pud),
        ])
    });
    let widths = [4, 6, 8, 8, 8, 8, 8].map(Constraint::Length);
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(" BARs: what faults mapped ")),
        area,
    );
}

fn render_orders(row: &DeviceRow, frame: &mut Frame, area: Rect) {
    let total: u64 = row.detail.orders.iter().map(|o| o.faults).sum();
    let header = Row::new(["order", "faults", "share", "p50", "p99"]).style(Style::new().bold());
    let rows = row.detail.orders.iter().map(|o| {
        #[expect(clippy::cast_precision_loss, reason = "a percentage")]
        let share = if total == 0 {
            0.0
        } else {
            o.faults as f64 * 100.0 / total as f64
        };
        Row::new([
            o.label.clone(),
            format::count(o.faults),
            format!("{share:.0}%"),
            format::quantile(&o.latency, |s| s.p50),
            format::quantile(&o.latency, |s| s.p99),
        ])
    });
    let widths = [6, 8, 6, 7, 7].map(Constraint::Length);
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(format!(
                " order mix (run); from cpu {}, dma-map {}, other {}{} ",
                format::count(row.detail.origins[0]),
                format::count(row.detail.origins[1]),
                format::count(row.detail.origins[2]),
                dma_maps(&row.detail),
            ))),
        area,
    );
}

/// "; 3 DMA maps in 1.2 s", when the BARs were DMA-mapped.
fn dma_maps(d: &crate::top::view::Detail) -> String {
    if d.dma_maps == 0 {
        return String::new();
    }
    format!(
        "; {} DMA map{} in {}",
        format::count(d.dma_maps),
        if d.dma_maps == 1 { "" } else { "s" },
        crate::report::duration(d.dma_map_ns)
    )
}

fn render_latency(row: &DeviceRow, frame: &mut Frame, area: Rect) {
    let l = &row.detail.latency;
    let title = match l.kind {
        LatencyKind::Histogram => " fault latency (count per bucket) ",
        LatencyKind::Percentiles => " fault latency percentiles (ns) ",
    };
    let data: Vec<(&str, u64)> = l.bars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let width = u16::try_from(l.bars.len().max(1)).map_or(3, |n| {
        (area.width.saturating_sub(2) / n)
            .saturating_sub(1)
            .clamp(1, 6)
    });
    frame.render_widget(
        BarChart::default()
            .block(Block::bordered().title(title))
            .data(data.as_slice())
            .bar_width(width)
            .bar_gap(1),
        area,
    );
}

/// Shades from no fault to the most faulted cell.
const SHADES: [char; 5] = ['·', '░', '▒', '▓', '█'];

#[must_use]
pub fn heat_line(cells: &[u64]) -> String {
    let max = cells.iter().copied().max().unwrap_or(0);
    cells
        .iter()
        .map(|&n| {
            if n == 0 || max == 0 {
                SHADES[0]
            } else {
                let level = (n * 4).div_ceil(max);
                SHADES[usize::try_from(level).unwrap_or(4).clamp(1, 4)]
            }
        })
        .collect()
}

fn render_heat(row: &DeviceRow, frame: &mut Frame, area: Rect) {
    let lines: Vec<Line> = row
        .detail
        .bars
        .iter()
        .map(|b| {
            let label = b
                .index
                .map_or_else(|| "BAR ?".into(), |i| format!("BAR {i}"));
            Line::from(format!("{label:<6}{}", heat_line(&b.heat)))
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(" where faults land (start → end of BAR) ")),
        area,
    );
}

fn render_zaps(row: &DeviceRow, frame: &mut Frame, area: Rect) {
    let zaps = &row.detail.zaps;
    let header = Row::new([
        "cause",
        "latency",
        "pages",
        "removed",
        "refaulted",
        "refault after",
        "by",
    ])
    .style(Style::new().bold());
    let rows = zaps.iter().rev().take(ZAPS_SHOWN).map(|z| {
        Row::new([
            z.cause.clone(),
            format::ns(z.latency_ns),
            format::count(z.pages),
            format::count(z.removed_pages),
            format::count(z.refaulted_pages),
            z.first_refault_ns.map_or_else(|| "-".into(), format::ns),
            z.comm.clone(),
        ])
    });
    let widths = [14, 8, 7, 8, 10, 13, 16].map(Constraint::Length);
    frame.render_widget(
        Table::new(rows, widths).header(header).block(
            Block::bordered().title(format!(" last zaps ({} kept, newest first) ", zaps.len())),
        ),
        area,
    );
}

#[cfg(test)]
mod tests {
    use crate::top::view::Detail;

    #[test]
    fn dma_maps_join_the_origin_title_only_when_there_were_some() {
        let mut d = Detail::default();
        assert_eq!(super::dma_maps(&d), "");
        d.dma_maps = 3;
        d.dma_map_ns = 1_256_000_000;
        assert_eq!(super::dma_maps(&d), "; 3 DMA maps in 1.26 s");
    }
}
