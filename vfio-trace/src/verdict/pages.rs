//! Page arithmetic of the verdict: page sizes by fault order, the windows a
//! set of touched pages falls in, alignment of an address, and the
//! page-table pages a number of entries takes.

use crate::model::stats::PageRun;

/// 4 KiB pages.
pub const PAGE_SHIFT: u32 = 12;

/// Orders a huge-fault kernel maps with on x86-64: 4 KiB, 2 MiB, 1 GiB.
pub const ORDERS: [u32; 3] = [0, 9, 18];

/// Entries in one page-table page (x86-64, 4 KiB tables of 8-byte entries).
const ENTRIES_PER_TABLE: u64 = 512;

/// Bytes mapped by one entry of `order`.
#[must_use]
pub fn order_bytes(order: u32) -> u64 {
    1 << (order + PAGE_SHIFT)
}

/// `4 KiB`, `2 MiB`, `1 GiB`, for any power-of-two size.
#[must_use]
pub fn size_name(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b.is_multiple_of(1 << 30) => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b.is_multiple_of(1 << 10) => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// The page size of an order, as people name it.
#[must_use]
pub fn order_name(order: u32) -> String {
    size_name(order_bytes(order))
}

/// The largest power of two dividing `address` (0 counts as aligned to
/// anything: capped at 1 TiB, past every page size).
#[must_use]
pub fn alignment(address: u64) -> u64 {
    if address == 0 {
        1 << 40
    } else {
        1 << address.trailing_zeros().min(40)
    }
}

/// Distinct windows of `1 << order` pages that the runs' pages fall in:
/// the faults a walk over those pages takes when every fault maps a whole
/// window. Runs are sorted by first page, as the document has them.
#[must_use]
pub fn windows(runs: &[PageRun], order: u32) -> u64 {
    let mut count = 0;
    let mut last: Option<u64> = None;
    for r in runs.iter().filter(|r| r.pages > 0) {
        let first = r.first >> order;
        let end = (r.first + r.pages - 1) >> order;
        let from = match last {
            Some(l) if l >= first => l + 1,
            _ => first,
        };
        if end >= from {
            count += end - from + 1;
            last = Some(end);
        }
    }
    count
}

/// Span of the runs in pages, from the start of the first touched window
/// of `1 << order` pages to the end of the last: with the order a BAR was
/// mapped at, the pages its inserts covered end to end.
#[must_use]
pub fn span_pages(runs: &[PageRun], order: u32) -> u64 {
    match (runs.first(), runs.last()) {
        (Some(a), Some(b)) => {
            (((b.first + b.pages - 1) >> order) + 1 - (a.first >> order)) << order
        }
        _ => 0,
    }
}

/// Bytes of page-table pages holding `entries` leaf entries.
#[must_use]
pub fn table_bytes(entries: u64) -> u64 {
    entries.div_ceil(ENTRIES_PER_TABLE) << PAGE_SHIFT
}

/// "1 fault", "16,384 faults": a count and its noun, in the right number.
#[must_use]
pub fn count_of(n: u64, noun: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{} {noun}{s}", thousands(n))
}

/// `16384` as `16,384`.
#[must_use]
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(first: u64, pages: u64) -> PageRun {
        PageRun {
            first,
            pages,
            faults: 1,
        }
    }

    #[test]
    fn windows_count_each_window_once() {
        // 64 MiB touched at every 4 KiB page.
        let storm = [run(0, 16384)];
        assert_eq!(windows(&storm, 0), 16384);
        assert_eq!(windows(&storm, 9), 32);
        assert_eq!(windows(&storm, 18), 1);
        // Two runs sharing a 2 MiB window, one far away.
        let sparse = [run(0, 3), run(5, 1), run(1024, 1)];
        assert_eq!(windows(&sparse, 9), 2);
        assert_eq!(windows(&sparse, 0), 5);
        assert_eq!(windows(&[], 9), 0);
        assert_eq!(span_pages(&sparse, 0), 1025);
        assert_eq!(span_pages(&sparse, 9), 1536);
        assert_eq!(span_pages(&[run(0, 1), run(15872, 1)], 9), 16384);
    }

    #[test]
    fn sizes_alignments_and_tables() {
        assert_eq!(order_name(0), "4 KiB");
        assert_eq!(order_name(9), "2 MiB");
        assert_eq!(order_name(18), "1 GiB");
        assert_eq!(size_name(64 << 20), "64 MiB");
        assert_eq!(alignment(0x7f00_0000_1000), 4096);
        assert_eq!(alignment(0x8_0000_0000), 1 << 35);
        assert_eq!(alignment(0), 1 << 40);
        // 4K mappings of 1 GiB need 2 MiB of PTE pages; PMD ones 4 KiB.
        assert_eq!(table_bytes(262_144), 2 << 20);
        assert_eq!(table_bytes(512), 4096);
        assert_eq!(table_bytes(0), 0);
        assert_eq!(thousands(262_144), "262,144");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }
}
