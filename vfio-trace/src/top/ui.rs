//! Drawing: `render(&App, frame)` and nothing else. No state changes here.

use ratatui::{
    Frame,
    layout::{Constraint, Flex, Layout, Rect},
    style::{Color, Modifier, Style, Stylize as _},
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph, Row, Table, TableState},
};

use super::{
    app::{App, Screen},
    device_view, format,
    view::{DeviceRow, Header, Position},
};
use crate::record::document::ProbeStatus;

/// Below this the screen says so instead of drawing a squeezed table.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 12;

pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, area);
        return;
    }
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    render_header(app, frame, header);
    match app.screen {
        Screen::Table => render_table(app, frame, body),
        Screen::Device(bdf) => match app.device() {
            Some(row) => device_view::render(row, frame, body),
            None => frame.render_widget(
                Paragraph::new(format!("{bdf}: no longer traced")).block(Block::bordered()),
                body,
            ),
        },
    }
    render_footer(app, frame, footer);
    if app.help {
        render_help(app, frame, area);
    }
}

fn too_small(frame: &mut Frame, area: Rect) {
    let text = vec![
        Line::from("vfio-trace top: terminal too small"),
        Line::from(format!(
            "{}x{}, needs {MIN_WIDTH}x{MIN_HEIGHT}",
            area.width, area.height
        )),
        Line::from("q quits"),
    ];
    frame.render_widget(Paragraph::new(text), area);
}

fn attached(status: ProbeStatus) -> bool {
    matches!(status, ProbeStatus::Attached | ProbeStatus::Inferred)
}

fn status_name(status: ProbeStatus) -> &'static str {
    match status {
        ProbeStatus::Available => "not attached",
        ProbeStatus::Attached => "attached",
        ProbeStatus::Absent => "absent",
        ProbeStatus::Failed => "FAILED",
        ProbeStatus::Unsupported => "unsupported",
        ProbeStatus::Inferred => "inferred",
        ProbeStatus::Skipped => "skipped",
    }
}

/// The header's three lines: the run, the probe plan, the tool's cost.
#[must_use]
pub fn header_lines(h: &Header, app: &App) -> Vec<Line<'static>> {
    let mut first = vec![
        Span::styled("vfio-trace top", Style::new().bold()),
        Span::raw(format!("  kernel {} ({})", h.kernel, h.generation)),
    ];
    let mode = match (h.replay, app.playback) {
        (
            Some(Position {
                at: Some(at),
                length,
            }),
            Some(p),
        ) => format!(
            "  replay {at}s of {length}s, {} x{}",
            if p.paused { "paused" } else { "playing" },
            p.speed()
        ),
        (
            Some(Position {
                at: Some(at),
                length,
            }),
            None,
        ) => format!("  replay {at}s of {length}s"),
        (Some(Position { at: None, length }), _) => {
            format!("  replay: the whole run ({length}s), rates are averages")
        }
        (None, _) => "  live".into(),
    };
    let color = if h.replay.is_some() {
        Color::Cyan
    } else {
        Color::Green
    };
    first.push(Span::styled(mode, Style::new().fg(color)));
    let up = h.probes.iter().filter(|p| attached(p.status)).count();
    let mut probes = vec![Span::raw(format!(
        "probes {up}/{} attached",
        h.probes.len()
    ))];
    for p in h.probes.iter().filter(|p| !attached(p.status)) {
        let style = if p.required || p.status == ProbeStatus::Failed {
            Style::new().fg(Color::White).bg(Color::Red).bold()
        } else {
            Style::new().fg(Color::Yellow).bold()
        };
        probes.push(Span::raw("  "));
        probes.push(Span::styled(
            format!("{}: {}", p.name, status_name(p.status)),
            style,
        ));
    }
    let c = h.cost;
    let bpf = match (c.bpf_ns_per_run, c.bpf_runs_per_s) {
        (Some(per), Some(runs)) => format!(
            "BPF {}/run x {}/s",
            format::ns(round_ns(per)),
            format::rate(runs)
        ),
        _ => "BPF run time n/a (BPF statistics off)".into(),
    };
    let cpu = c
        .cpu_percent
        .map_or_else(|| "CPU n/a".into(), |p| format!("CPU {p:.1}%"));
    let lost_style = if h.lost > 0 {
        Style::new().fg(Color::White).bg(Color::Red).bold()
    } else {
        Style::new()
    };
    let cost = vec![
        Span::raw(format!("cost: {bpf}, {cpu}   ")),
        Span::styled(format!("lost {}", format::count(h.lost)), lost_style),
    ];
    vec![Line::from(first), Line::from(probes), Line::from(cost)]
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a mean run time in ns: small and positive"
)]
fn round_ns(ns: f64) -> u64 {
    ns.round().max(0.0) as u64
}

fn render_header(app: &App, frame: &mut Frame, area: Rect) {
    frame.render_widget(Paragraph::new(header_lines(&app.sample.header, app)), area);
}

/// The table's columns, and the cells of one row (also `--once`'s text).
pub const COLUMNS: [&str; 15] = [
    "BDF", "ID", "flt/s", "4K/s", "2M/s", "1G/s", "fallbk/s", "p50", "p99", "zap/s", "zap p99",
    "refault", "lock p99", "lost", "name",
];

#[must_use]
pub fn cells(r: &DeviceRow) -> [String; 15] {
    let bound = if r.fault_latency_bound { "≤" } else { "" };
    [
        r.bdf.to_string(),
        format::ids(r.vendor, r.device),
        format::rate(r.faults_per_s),
        format::rate(r.by_order_per_s[0]),
        format::rate(r.by_order_per_s[1]),
        format::rate(r.by_order_per_s[2]),
        format::rate(r.fallbacks_per_s),
        format!("{bound}{}", format::quantile(&r.fault_latency, |s| s.p50)),
        format!("{bound}{}", format::quantile(&r.fault_latency, |s| s.p99)),
        format::rate(r.zaps_per_s),
        format::quantile(&r.zap_latency, |s| s.p99),
        format::count(r.refaulted_pages),
        format!(
            "{}{}",
            if r.lock_wait_bound { "≤" } else { "" },
            format::quantile(&r.lock_wait, |s| s.p99)
        ),
        format::count(r.lost),
        r.name.clone().unwrap_or_default(),
    ]
}

fn render_table(app: &App, frame: &mut Frame, area: Rect) {
    let rows = app.rows();
    let widths = [
        Constraint::Length(12),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Fill(1),
    ];
    let header = Row::new(COLUMNS.map(|c| {
        if c == app.sort.name() || (c == "flt/s" && app.sort.name() == "faults/s") {
            Span::styled(c, Style::new().bold().underlined())
        } else {
            Span::raw(c)
        }
    }))
    .style(Style::new().bold().reversed());
    let body = rows.iter().map(|r| {
        let row = Row::new(cells(r));
        if r.lost > 0 {
            row.style(Style::new().fg(Color::Red))
        } else {
            row
        }
    });
    let title = if app.filter.is_empty() {
        format!(" devices ({}) ", rows.len())
    } else {
        format!(
            " devices ({} of {}, filter \"{}\") ",
            rows.len(),
            app.sample.devices.len(),
            app.filter
        )
    };
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(1)
        .block(Block::bordered().title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected((!rows.is_empty()).then_some(app.selected));
    frame.render_stateful_widget(table, area, &mut state);
    if rows.is_empty() {
        let inner = area.inner(ratatui::layout::Margin::new(2, 2));
        let text = if app.sample.devices.is_empty() {
            "no vfio-pci device traced yet"
        } else {
            "no device matches the filter"
        };
        frame.render_widget(Paragraph::new(text), inner);
    }
}

fn render_footer(app: &App, frame: &mut Frame, area: Rect) {
    let line = if app.editing_filter {
        Line::from(vec![
            Span::styled("filter: ", Style::new().bold()),
            Span::raw(format!("{}_", app.filter)),
            Span::raw("   Enter keeps, Esc clears"),
        ])
    } else {
        let mut keys =
            String::from("? help  q quit  ↑↓ select  Enter device  s sort  r reverse  / filter");
        if app.playback.is_some() {
            keys.push_str("  space pause  ←→ step  +/- speed");
        }
        Line::from(format!("{keys}   sorted by {}", app.sort.name())).dim()
    };
    frame.render_widget(Paragraph::new(line), area);
}

pub const HELP: [(&str, &str); 14] = [
    ("q, Ctrl-C", "quit (the terminal is restored)"),
    ("?", "this help; any key closes it"),
    ("↑ ↓, k j", "select a device"),
    (
        "Enter",
        "the device view: BARs, orders, latency, pages, zaps",
    ),
    ("Esc", "back to the table; in the table, clear the filter"),
    ("s", "sort by the next column"),
    ("r", "reverse the order"),
    ("/", "filter by BDF, vendor:device or name"),
    ("space", "replay: pause or play"),
    ("→ .", "replay: one second on (pauses)"),
    ("← ,", "replay: one second back (pauses)"),
    ("+ -", "replay: faster, slower"),
    ("0", "replay: back to the start"),
    ("", "rates per second; latencies over the run"),
];

fn render_help(app: &App, frame: &mut Frame, area: Rect) {
    let [area] = Layout::horizontal([Constraint::Length(68)])
        .flex(Flex::Center)
        .areas(area);
    let [area] = Layout::vertical([Constraint::Length(
        u16::try_from(HELP.len())
            .unwrap_or(u16::MAX)
            .saturating_add(2),
    )])
    .flex(Flex::Center)
    .areas(area);
    let lines: Vec<Line> = HELP
        .iter()
        .filter(|(k, _)| app.playback.is_some() || !is_replay_key(k))
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:>10}  "), Style::new().bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys ")),
        area,
    );
}

fn is_replay_key(key: &str) -> bool {
    HELP.iter()
        .any(|(k, what)| *k == key && what.starts_with("replay:"))
}
