//! Per-second counts of one device, so a replay or a chart can show how a run
//! unfolded. Seconds are counted from the model's origin (see
//! `Model::set_origin_ns`). Only seconds with activity are kept, and at most
//! [`MAX_SECONDS`] of them: a long run keeps its latest hour and counts what
//! it let go.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::fault::Outcome;

/// Seconds kept per device: an hour of activity, ~80 bytes a second.
pub const MAX_SECONDS: usize = 3600;

/// Faults by requested order, keyed as `faults.by_order` is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCounts {
    #[serde(rename = "0")]
    pub pte: u32,
    #[serde(rename = "9")]
    pub pmd: u32,
    #[serde(rename = "18")]
    pub pud: u32,
    pub other: u32,
}

/// Faults by result, keyed as `faults.by_result` is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultCounts {
    pub nopage: u32,
    pub fallback: u32,
    pub sigbus: u32,
    pub oom: u32,
    pub other: u32,
}

/// What one device did in one second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the origin.
    pub t: u64,
    pub faults_by_order: OrderCounts,
    pub faults_by_result: ResultCounts,
    pub zaps: u32,
    pub refaulted_pages: u64,
    pub lock_waits: u32,
    pub lost: u64,
}

fn bump(n: &mut u32) {
    *n = n.saturating_add(1);
}

impl Second {
    pub fn add_fault(&mut self, order: u32, outcome: Outcome) {
        let o = &mut self.faults_by_order;
        bump(match order {
            0 => &mut o.pte,
            9 => &mut o.pmd,
            18 => &mut o.pud,
            _ => &mut o.other,
        });
        let r = &mut self.faults_by_result;
        bump(match outcome {
            Outcome::Nopage => &mut r.nopage,
            Outcome::Fallback => &mut r.fallback,
            Outcome::Sigbus => &mut r.sigbus,
            Outcome::Oom => &mut r.oom,
            Outcome::Other => &mut r.other,
        });
    }

    pub fn add_zap(&mut self) {
        bump(&mut self.zaps);
    }

    pub fn add_lock_wait(&mut self) {
        bump(&mut self.lock_waits);
    }

    pub fn faults(&self) -> u64 {
        let o = self.faults_by_order;
        u64::from(o.pte) + u64::from(o.pmd) + u64::from(o.pud) + u64::from(o.other)
    }
}

/// The seconds of one device, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Seconds before the newest, oldest first.
    past: VecDeque<Second>,
    /// The newest second, where nearly every event lands: kept apart so
    /// that an event costs one compare, not a deque lookup.
    newest: Option<Second>,
    /// Seconds let go to stay within [`MAX_SECONDS`].
    dropped_seconds: u64,
    /// Events for a second older than every second kept.
    dropped_events: u64,
}

fn empty(t: u64) -> Second {
    Second {
        t,
        ..Second::default()
    }
}

impl Timeline {
    /// The bucket of second `t`, made if new; `None` when `t` is older than
    /// the whole window of a full timeline (the event is counted as dropped).
    pub fn at(&mut self, t: u64) -> Option<&mut Second> {
        let newest = self.newest.as_ref().map(|s| s.t);
        match newest {
            Some(n) if n == t => {}
            Some(n) if n < t => {
                if self.past.len() + 1 >= MAX_SECONDS {
                    self.past.pop_front();
                    self.dropped_seconds += 1;
                }
                self.past.extend(self.newest.replace(empty(t)));
            }
            Some(_) => return self.at_past(t),
            None => self.newest = Some(empty(t)),
        }
        self.newest.as_mut()
    }

    /// A second before the newest: events from another ring arrive late.
    fn at_past(&mut self, t: u64) -> Option<&mut Second> {
        let mut at = self.past.partition_point(|s| s.t < t);
        if self.past.get(at).is_none_or(|s| s.t != t) {
            if self.past.len() + 1 >= MAX_SECONDS {
                if at == 0 {
                    self.dropped_events += 1;
                    return None;
                }
                self.past.pop_front();
                self.dropped_seconds += 1;
                at -= 1;
            }
            self.past.insert(at, empty(t));
        }
        self.past.get_mut(at)
    }

    pub fn seconds(&self) -> impl Iterator<Item = &Second> {
        self.past.iter().chain(&self.newest)
    }

    pub fn dropped_seconds(&self) -> u64 {
        self.dropped_seconds
    }

    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    pub fn heap_bytes(&self) -> usize {
        self.past.capacity() * size_of::<Second>()
    }
}

const NS_PER_SECOND: u64 = 1_000_000_000;

/// Kernel times to timeline seconds. Events come in runs within one second,
/// so the second last found is tried first: a compare, not a division.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    origin_ns: Option<u64>,
    /// `[start, end)` in ns of second `t`, the one last found.
    start: u64,
    end: u64,
    t: u64,
}

impl Clock {
    /// Second 0; without it the first time asked for is second 0.
    /// Kernel time of second 0; 0 before anything set or timed it.
    pub fn origin_ns(&self) -> u64 {
        self.origin_ns.unwrap_or(0)
    }

    pub fn set_origin_ns(&mut self, ns: u64) {
        *self = Self {
            origin_ns: Some(ns),
            ..Self::default()
        };
    }

    /// The second of kernel time `ns`; times before the origin are second 0.
    pub fn second(&mut self, ns: u64) -> u64 {
        if (self.start..self.end).contains(&ns) {
            return self.t;
        }
        let origin = *self.origin_ns.get_or_insert(ns);
        if ns < origin {
            return 0;
        }
        self.t = (ns - origin) / NS_PER_SECOND;
        self.start = origin + self.t * NS_PER_SECOND;
        self.end = self.start.saturating_add(NS_PER_SECOND);
        self.t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_stay_ordered_whatever_order_events_come_in() {
        let mut t = Timeline::default();
        for s in [3, 1, 3, 2, 1, 4] {
            t.at(s).expect("kept").add_zap();
        }
        let seen: Vec<(u64, u32)> = t.seconds().map(|s| (s.t, s.zaps)).collect();
        assert_eq!(seen, [(1, 2), (2, 1), (3, 2), (4, 1)]);
    }

    #[test]
    fn a_full_timeline_keeps_the_latest_seconds_and_counts_the_rest() {
        let mut t = Timeline::default();
        for s in 0..MAX_SECONDS as u64 + 10 {
            t.at(s).expect("kept").add_fault(0, Outcome::Nopage);
        }
        assert_eq!(t.seconds().count(), MAX_SECONDS);
        assert_eq!(t.seconds().next().map(|s| s.t), Some(10));
        assert_eq!(t.dropped_seconds(), 10);
        assert!(t.at(3).is_none());
        assert_eq!(t.dropped_events(), 1);
        assert!(t.heap_bytes() <= MAX_SECONDS * 2 * 80);
    }

    #[test]
    fn the_clock_counts_whole_seconds_from_its_origin() {
        let mut c = Clock::default();
        c.set_origin_ns(5 * NS_PER_SECOND);
        let secs: Vec<u64> = [5, 6, 6, 9, 4, 5]
            .map(|s| c.second(s * NS_PER_SECOND + 1))
            .to_vec();
        assert_eq!(secs, [0, 1, 1, 4, 0, 0]);
        assert_eq!(c.second(6 * NS_PER_SECOND - 1), 0);
        let mut first = Clock::default();
        assert_eq!(first.second(77), 0);
        assert_eq!(first.second(77 + NS_PER_SECOND), 1);
    }

    #[test]
    fn faults_count_by_order_and_result() {
        let mut s = Second::default();
        s.add_fault(0, Outcome::Nopage);
        s.add_fault(9, Outcome::Fallback);
        s.add_fault(4, Outcome::Nopage);
        assert_eq!(s.faults(), 3);
        assert_eq!(
            (
                s.faults_by_order.pmd,
                s.faults_by_order.other,
                s.faults_by_result.nopage
            ),
            (1, 1, 2)
        );
    }
}
