//! `top --once`: the header and the table as plain text, for scripts.

use std::fmt::Write as _;

use super::{
    app::App,
    ui::{COLUMNS, cells, header_lines},
};

#[must_use]
pub fn once(app: &App) -> String {
    let mut out = String::new();
    for line in header_lines(&app.sample.header, app) {
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        let _ = writeln!(out, "{}", text.trim_end());
    }
    let rows: Vec<[String; 15]> = app.rows().into_iter().map(cells).collect();
    let mut widths = COLUMNS.map(|c| c.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                // The BDF and ids read left to right, numbers line up right.
                let pad = w - c.chars().count();
                if i < 2 {
                    let _ = write!(l, "{c}{}  ", " ".repeat(pad));
                } else {
                    let _ = write!(l, "{}{c}  ", " ".repeat(pad));
                }
            }
        }
        l.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(&COLUMNS));
    for r in &rows {
        let r: Vec<&str> = r.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&r));
    }
    out
}
