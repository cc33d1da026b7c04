//! `top`'s state and what each key does to it: no drawing and no I/O, so
//! every key is tested without a terminal.

use std::time::Duration;

use super::view::{DeviceRow, Sample};
use crate::device::Bdf;

/// A key, as `top` reads it (the terminal's events are mapped in `event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Esc,
    Up,
    Down,
    Left,
    Right,
    Backspace,
    CtrlC,
}

/// What the table is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Faults,
    P99,
    Zaps,
    Refaults,
    Lost,
    Bdf,
}

impl SortKey {
    const ALL: [SortKey; 6] = [
        Self::Faults,
        Self::P99,
        Self::Zaps,
        Self::Refaults,
        Self::Lost,
        Self::Bdf,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Faults => "faults/s",
            Self::P99 => "p99",
            Self::Zaps => "zaps/s",
            Self::Refaults => "refaulted",
            Self::Lost => "lost",
            Self::Bdf => "BDF",
        }
    }

    fn next(self) -> Self {
        let at = Self::ALL.iter().position(|k| *k == self).unwrap_or(0);
        Self::ALL[(at + 1) % Self::ALL.len()]
    }

    fn value(self, row: &DeviceRow) -> f64 {
        match self {
            Self::Faults => row.faults_per_s,
            #[expect(clippy::cast_precision_loss, reason = "ordering only")]
            Self::P99 => row.fault_latency.p99 as f64,
            Self::Zaps => row.zaps_per_s,
            #[expect(clippy::cast_precision_loss, reason = "ordering only")]
            Self::Refaults => row.refaulted_pages as f64,
            #[expect(clippy::cast_precision_loss, reason = "ordering only")]
            Self::Lost => row.lost as f64,
            Self::Bdf => 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Table,
    Device(Bdf),
}

/// Playback speeds, in recorded seconds per second.
pub const SPEEDS: [f64; 7] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];

/// Where a replay is and how it moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Playback {
    /// The recorded second shown.
    pub at: u64,
    /// Seconds in the recording.
    pub length: u64,
    pub paused: bool,
    /// Index into [`SPEEDS`].
    pub speed: usize,
    /// Recorded time elapsed toward the next second.
    carry: f64,
}

impl Playback {
    #[must_use]
    pub fn new(length: u64) -> Self {
        Self {
            at: 0,
            length: length.max(1),
            paused: false,
            speed: 2,
            carry: 0.0,
        }
    }

    #[must_use]
    pub fn speed(&self) -> f64 {
        SPEEDS[self.speed]
    }

    fn last(&self) -> u64 {
        self.length - 1
    }

    fn advance(&mut self, wall: Duration) {
        if self.paused {
            return;
        }
        self.carry += wall.as_secs_f64() * self.speed();
        let floor = self.carry.floor();
        self.carry -= floor;
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a whole, non-negative number of seconds"
        )]
        let whole = floor as u64;
        self.at = (self.at + whole).min(self.last());
        // The end holds still rather than looping.
        if self.at == self.last() {
            self.paused = true;
        }
    }

    fn step(&mut self, forward: bool) {
        self.paused = true;
        self.carry = 0.0;
        self.at = if forward {
            (self.at + 1).min(self.last())
        } else {
            self.at.saturating_sub(1)
        };
    }
}

#[derive(Debug, Clone)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent switches of the view, each flipped by its own key"
)]
pub struct App {
    pub sample: Sample,
    pub screen: Screen,
    pub sort: SortKey,
    /// Largest first (smallest first for the BDF).
    pub descending: bool,
    /// Rows whose BDF, ids or name contain this (case-insensitive).
    pub filter: String,
    pub editing_filter: bool,
    /// Index into [`App::rows`].
    pub selected: usize,
    pub help: bool,
    pub playback: Option<Playback>,
    pub quit: bool,
}

impl App {
    /// `replay_length`: seconds of a recording played back; `None` when live.
    #[must_use]
    pub fn new(replay_length: Option<u64>) -> Self {
        Self {
            sample: Sample::default(),
            screen: Screen::Table,
            sort: SortKey::Faults,
            descending: true,
            filter: String::new(),
            editing_filter: false,
            selected: 0,
            help: false,
            playback: replay_length.map(Playback::new),
            quit: false,
        }
    }

    /// The devices shown, filtered and sorted.
    #[must_use]
    pub fn rows(&self) -> Vec<&DeviceRow> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&DeviceRow> = self
            .sample
            .devices
            .iter()
            .filter(|r| needle.is_empty() || matches(r, &needle))
            .collect();
        let key = self.sort;
        rows.sort_by(|a, b| {
            let by_value = key.value(a).total_cmp(&key.value(b));
            let by_value = if self.descending {
                by_value.reverse()
            } else {
                by_value
            };
            // The BDF's own order is smallest first; reversed, largest.
            let by_bdf = if key == SortKey::Bdf && !self.descending {
                b.bdf.cmp(&a.bdf)
            } else {
                a.bdf.cmp(&b.bdf)
            };
            by_value.then(by_bdf)
        });
        rows
    }

    #[must_use]
    pub fn selected_row(&self) -> Option<&DeviceRow> {
        self.rows().get(self.selected).copied()
    }

    /// The device the device view shows, if it is open and still there.
    #[must_use]
    pub fn device(&self) -> Option<&DeviceRow> {
        match self.screen {
            Screen::Device(bdf) => self.sample.devices.iter().find(|r| r.bdf == bdf),
            Screen::Table => None,
        }
    }

    /// The device whose view is open.
    #[must_use]
    pub fn focus(&self) -> Option<Bdf> {
        match self.screen {
            Screen::Device(bdf) => Some(bdf),
            Screen::Table => None,
        }
    }

    /// The recorded second to show; `None` when live.
    #[must_use]
    pub fn position(&self) -> Option<u64> {
        self.playback.map(|p| p.at)
    }

    /// A new refresh: the selection stays on its device.
    pub fn set_sample(&mut self, sample: Sample) {
        let was = self.selected_row().map(|r| r.bdf);
        self.sample = sample;
        self.reselect(was);
    }

    /// Time passed: a playing replay moves on.
    pub fn on_tick(&mut self, wall: Duration) {
        if let Some(p) = &mut self.playback {
            p.advance(wall);
        }
    }

    fn reselect(&mut self, bdf: Option<Bdf>) {
        let rows = self.rows();
        self.selected = bdf
            .and_then(|b| rows.iter().position(|r| r.bdf == b))
            .unwrap_or(self.selected)
            .min(rows.len().saturating_sub(1));
    }

    pub fn on_key(&mut self, key: Key) {
        if key == Key::CtrlC {
            self.quit = true;
            return;
        }
        if self.editing_filter {
            self.edit_filter(key);
            return;
        }
        if self.help {
            // Any key closes the help; q still quits.
            self.help = false;
            self.quit = key == Key::Char('q');
            return;
        }
        if self.playback_key(key) {
            return;
        }
        match key {
            Key::Char('q') => self.quit = true,
            Key::Char('?' | 'h') => self.help = true,
            Key::Up | Key::Char('k') => self.selected = self.selected.saturating_sub(1),
            Key::Down | Key::Char('j') => {
                self.selected = (self.selected + 1).min(self.rows().len().saturating_sub(1));
            }
            Key::Enter => {
                if let Some(r) = self.selected_row() {
                    self.screen = Screen::Device(r.bdf);
                }
            }
            Key::Esc | Key::Backspace => {
                if self.screen == Screen::Table {
                    self.filter.clear();
                } else {
                    self.screen = Screen::Table;
                }
            }
            Key::Char('s') => self.resort(self.sort.next(), self.descending),
            Key::Char('r') => self.resort(self.sort, !self.descending),
            Key::Char('/') => {
                self.editing_filter = true;
                self.screen = Screen::Table;
            }
            _ => {}
        }
    }

    fn resort(&mut self, sort: SortKey, descending: bool) {
        let was = self.selected_row().map(|r| r.bdf);
        self.sort = sort;
        self.descending = descending;
        self.reselect(was);
    }

    fn edit_filter(&mut self, key: Key) {
        let was = self.selected_row().map(|r| r.bdf);
        match key {
            Key::Enter => self.editing_filter = false,
            Key::Esc => {
                self.editing_filter = false;
                self.filter.clear();
            }
            Key::Backspace => {
                self.filter.pop();
            }
            Key::Char(c) => self.filter.push(c),
            _ => {}
        }
        self.reselect(was);
    }

    /// Space, arrows and +/- steer a replay; live they do nothing.
    fn playback_key(&mut self, key: Key) -> bool {
        let Some(p) = &mut self.playback else {
            return false;
        };
        match key {
            Key::Char(' ') => {
                if p.paused && p.at == p.last() {
                    // Played to the end: space plays it again.
                    p.at = 0;
                }
                p.paused = !p.paused;
            }
            Key::Right | Key::Char('.') => p.step(true),
            Key::Left | Key::Char(',') => p.step(false),
            Key::Char('+' | '=') => p.speed = (p.speed + 1).min(SPEEDS.len() - 1),
            Key::Char('-') => p.speed = p.speed.saturating_sub(1),
            Key::Char('0') => {
                p.at = 0;
                p.carry = 0.0;
            }
            _ => return false,
        }
        true
    }
}

fn matches(row: &DeviceRow, needle: &str) -> bool {
    let ids = match (row.vendor, row.device) {
        (Some(v), Some(d)) => format!("{v:04x}:{d:04x}"),
        _ => String::new(),
    };
    row.bdf.to_string().contains(needle)
        || ids.contains(needle)
        || row
            .name
            .as_deref()
            .is_some_and(|n| n.to_lowercase().contains(needle))
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
