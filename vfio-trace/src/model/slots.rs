//! Fixed slots in place of maps for what takes few values: requested orders,
//! fault outcomes and BARs. A fault updates them by index: no tree walk and
//! no allocation on the per-event path.

use std::{fmt, ops::Index};

use super::fault::Outcome;

/// Fault orders the handler asks for (4 KiB, 2 MiB, 1 GiB on x86).
pub const ORDERS: [u32; 3] = [0, 9, 18];

/// Which order the shared "other" slot holds. Other orders only come from
/// other page sizes (arm64), so one is the usual case and keeps its number.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum OtherOrder {
    #[default]
    Unused,
    One(u32),
    Several,
}

/// The name of an order slot, as the JSON keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKey {
    Order(u32),
    /// Several orders outside [`ORDERS`] share the slot.
    Other,
}

impl fmt::Display for OrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Order(o) => write!(f, "{o}"),
            Self::Other => f.write_str("other"),
        }
    }
}

/// One `T` for each of [`ORDERS`] and one for any other order.
#[derive(Debug, Default, Clone)]
pub struct PerOrder<T> {
    slots: [T; 4],
    other: OtherOrder,
}

fn order_slot(order: u32) -> usize {
    match order {
        0 => 0,
        9 => 1,
        18 => 2,
        _ => 3,
    }
}

impl<T> PerOrder<T> {
    pub fn get_mut(&mut self, order: u32) -> &mut T {
        let slot = order_slot(order);
        if slot == 3 {
            self.other = match self.other {
                OtherOrder::Unused => OtherOrder::One(order),
                OtherOrder::One(o) if o == order => OtherOrder::One(o),
                _ => OtherOrder::Several,
            };
        }
        &mut self.slots[slot]
    }

    /// The fixed orders always, then the other slot if any fault used it.
    pub fn iter(&self) -> impl Iterator<Item = (OrderKey, &T)> {
        let other = match self.other {
            OtherOrder::Unused => None,
            OtherOrder::One(o) => Some(OrderKey::Order(o)),
            OtherOrder::Several => Some(OrderKey::Other),
        };
        ORDERS
            .iter()
            .map(|o| OrderKey::Order(*o))
            .zip(&self.slots)
            .chain(other.map(|k| (k, &self.slots[3])))
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter()
    }
}

impl<T> Index<&u32> for PerOrder<T> {
    type Output = T;
    fn index(&self, order: &u32) -> &T {
        &self.slots[order_slot(*order)]
    }
}

/// One `T` per [`Outcome`].
#[derive(Debug, Default, Clone)]
pub struct PerOutcome<T> {
    slots: [T; Outcome::ALL.len()],
}

impl<T> PerOutcome<T> {
    pub fn get_mut(&mut self, outcome: Outcome) -> &mut T {
        &mut self.slots[outcome as usize]
    }

    /// In [`Outcome::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Outcome, &T)> {
        Outcome::ALL.into_iter().zip(&self.slots)
    }
}

impl<T> Index<&Outcome> for PerOutcome<T> {
    type Output = T;
    fn index(&self, outcome: &Outcome) -> &T {
        &self.slots[*outcome as usize]
    }
}

/// BARs 0-5, and the slot for faults whose BAR could not be resolved.
pub const BAR_SLOTS: usize = 7;
const UNKNOWN_BAR: usize = 6;

fn bar_slot(bar: Option<u32>) -> usize {
    match bar {
        Some(i) if (i as usize) < UNKNOWN_BAR => i as usize,
        _ => UNKNOWN_BAR,
    }
}

/// One `T` per BAR; `None` is the unresolved BAR.
#[derive(Debug, Default, Clone)]
pub struct PerBar<T> {
    slots: [T; BAR_SLOTS],
}

impl<T> PerBar<T> {
    pub fn get_mut(&mut self, bar: Option<u32>) -> &mut T {
        &mut self.slots[bar_slot(bar)]
    }

    /// The unresolved BAR first, then 0-5: the order a map keyed by
    /// `Option<u32>` had, which the JSON keeps.
    pub fn iter(&self) -> impl Iterator<Item = (Option<u32>, &T)> {
        std::iter::once((None, &self.slots[UNKNOWN_BAR])).chain(
            (0u32..)
                .zip(&self.slots[..UNKNOWN_BAR])
                .map(|(i, slot)| (Some(i), slot)),
        )
    }
}

impl<T> Index<&Option<u32>> for PerBar<T> {
    type Output = T;
    fn index(&self, bar: &Option<u32>) -> &T {
        &self.slots[bar_slot(*bar)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_orders_share_a_slot_that_keeps_their_number_while_there_is_one() {
        let mut p = PerOrder::<u64>::default();
        *p.get_mut(9) += 1;
        let keys = |p: &PerOrder<u64>| {
            p.iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&p), ["0=0", "9=1", "18=0"]);
        *p.get_mut(13) += 2;
        assert_eq!(keys(&p), ["0=0", "9=1", "18=0", "13=2"]);
        *p.get_mut(13) += 1;
        assert_eq!(p[&13], 3);
        *p.get_mut(11) += 1;
        assert_eq!(keys(&p), ["0=0", "9=1", "18=0", "other=4"]);
    }

    #[test]
    fn bars_iterate_unknown_first_and_clamp_bad_indices() {
        let mut b = PerBar::<u64>::default();
        *b.get_mut(Some(2)) += 1;
        *b.get_mut(None) += 1;
        *b.get_mut(Some(99)) += 1;
        let seen: Vec<_> = b.iter().filter(|(_, n)| **n > 0).collect();
        assert_eq!(seen, [(None, &2), (Some(2), &1)]);
    }

    #[test]
    fn outcomes_index_their_own_slot() {
        let mut p = PerOutcome::<u64>::default();
        *p.get_mut(Outcome::Sigbus) += 1;
        assert_eq!(p[&Outcome::Sigbus], 1);
        assert_eq!(p[&Outcome::Nopage], 0);
        assert_eq!(p.iter().map(|(_, n)| n).sum::<u64>(), 1);
        // Slots follow the declaration order, which `ALL` must share.
        for (i, o) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(o as usize, i);
        }
    }
}
