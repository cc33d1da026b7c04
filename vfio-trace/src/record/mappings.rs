//! The mappings of a BAR in the record document: where each VMA starts,
//! its size, the BAR offset it maps first, and its faults by order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::mappings::Mapping;

/// Order slots of [`Mapping`] as the JSON keys orders.
const ORDER_KEYS: [&str; 4] = ["0", "9", "18", "other"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingDoc {
    pub pid: u32,
    /// `vm_start`, as a number; 0 when the kernel did not say.
    pub start: u64,
    /// Bytes; 0 when this kernel's BTF lacks `vm_end`.
    pub size: u64,
    /// Byte offset into the BAR of the mapping's first page.
    pub bar_offset: u64,
    /// Faults by requested order, only orders seen.
    pub faults_by_order: BTreeMap<String, u64>,
    /// Entries inserted by order (`"0"` counts remapped pages too).
    pub mapped_by_order: BTreeMap<String, u64>,
    /// Handler time by requested order, summed.
    pub fault_ns_by_order: BTreeMap<String, u64>,
    pub fallbacks: u64,
    /// Distinct 2 MiB and 1 GiB windows of the mapping (from its start) that faulted.
    pub windows_2m: u64,
    pub windows_1g: u64,
}

fn by_order(values: &[u64; 4]) -> BTreeMap<String, u64> {
    ORDER_KEYS
        .iter()
        .zip(values)
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| ((*k).to_owned(), *n))
        .collect()
}

impl From<&Mapping> for MappingDoc {
    fn from(m: &Mapping) -> Self {
        Self {
            pid: m.pid,
            start: m.start,
            size: m.pages << 12,
            bar_offset: m.bar_page << 12,
            faults_by_order: by_order(&m.attempts),
            mapped_by_order: by_order(&m.mapped),
            fault_ns_by_order: by_order(&m.fault_ns),
            fallbacks: m.fallbacks,
            windows_2m: m.pmd_windows(),
            windows_1g: m.pud_windows(),
        }
    }
}
