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
    seconds: VecDeque<Second>,
    /// Seconds let go to stay within [`MAX_SECONDS`].
    dropped_seconds: u64,
    /// Events for a second older than every second kept.
    dropped_events: u64,
}

impl Timeline {
    /// The bucket of second `t`, made if new; `None` when `t` is older than
    /// the whole window of a full timeline (the event is counted as dropped).
    pub fn at(&mut self, t: u64) -> Option<&mut Second> {
        // Events arrive nearly in time order: the newest bucket is the usual hit.
        let newest = self.seconds.back().map(|s| s.t);
        let at = if newest == Some(t) {
            self.seconds.len() - 1
        } else {
            let mut at = self.seconds.partition_point(|s| s.t < t);
            if self.seconds.get(at).is_none_or(|s| s.t != t) {
                if self.seconds.len() >= MAX_SECONDS {
                    if at == 0 {
                        self.dropped_events += 1;
                        return None;
                    }
                    self.seconds.pop_front();
                    self.dropped_seconds += 1;
                    at -= 1;
                }
                self.seconds.insert(
                    at,
                    Second {
                        t,
                        ..Second::default()
                    },
                );
            }
            at
        };
        self.seconds.get_mut(at)
    }

    pub fn seconds(&self) -> impl Iterator<Item = &Second> {
        self.seconds.iter()
    }

    pub fn dropped_seconds(&self) -> u64 {
        self.dropped_seconds
    }

    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    pub fn heap_bytes(&self) -> usize {
        self.seconds.capacity() * size_of::<Second>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_stay_ordered_whatever_order_events_come_in() {
        let mut t = Timeline::default();
        for s in [3, 1, 3, 2, 1] {
            t.at(s).expect("kept").add_zap();
        }
        let seen: Vec<(u64, u32)> = t.seconds().map(|s| (s.t, s.zaps)).collect();
        assert_eq!(seen, [(1, 2), (2, 1), (3, 2)]);
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
