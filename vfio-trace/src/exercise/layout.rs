//! Address arithmetic: where to place a mapping so its alignment is exact, what
//! alignment an address has, and which faults a walk should cost on kernels >= 6.12.

use serde::Serialize;

use super::spec::{GIB, PAGE, Walk};

const PMD: u64 = 2 << 20;

/// The largest power of two dividing `addr`, capped at 1 GiB (nothing larger
/// changes the fault order). Address 0 counts as 1 GiB aligned.
pub fn alignment(addr: u64) -> u64 {
    if addr == 0 {
        GIB
    } else {
        (1u64 << addr.trailing_zeros()).min(GIB)
    }
}

/// Bytes to reserve so `place` always finds room for `size` bytes.
pub fn reservation_len(size: u64, align: u64) -> u64 {
    size + 2 * 2 * align
}

/// The address inside a reservation starting at `base` where a mapping aligned to
/// exactly `align` goes: aligned to `align` but not to `2 * align`, except that
/// 1 GiB alignment is exact enough (no larger fault order exists).
pub fn place(base: u64, align: u64) -> u64 {
    if align >= GIB {
        base.next_multiple_of(align)
    } else {
        base.next_multiple_of(2 * align) + align
    }
}

/// Faults per order that a walk should cost on a kernel with huge pfnmaps (>= 6.12):
/// a hint to compare with what tracing measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Expected {
    pub order0: u64,
    pub order9: u64,
    pub order18: u64,
}

/// Counts the faults of `walk` over a mapping at `map_addr` of a BAR of `bar_size`
/// bytes mapped from offset 0. A 2 MiB or 1 GiB insert needs the block to lie inside
/// the mapping and its physical address to be aligned too; BARs are naturally
/// aligned, so that holds when the mapping is at least that aligned and the BAR at
/// least that big. A later touch inside an already inserted block costs nothing.
pub fn expected_faults(walk: &Walk, map_addr: u64, bar_size: u64) -> Expected {
    let end = map_addr + walk.map;
    let map_align = alignment(map_addr);
    let fits = |block: u64, addr: u64| {
        let start = addr & !(block - 1);
        map_align >= block && bar_size >= block && start >= map_addr && start + block <= end
    };
    let mut expected = Expected::default();
    // Touches go up, so remembering the last block inserted is enough.
    let mut last: Option<(u64, u64)> = None;
    let mut offset = 0;
    while offset < walk.size {
        let addr = map_addr + offset;
        offset += walk.stride;
        if last.is_some_and(|(start, len)| addr >= start && addr < start + len) {
            continue;
        }
        let block = [GIB, PMD]
            .into_iter()
            .find(|&b| fits(b, addr))
            .unwrap_or(PAGE);
        match block {
            GIB => expected.order18 += 1,
            PMD => expected.order9 += 1,
            _ => expected.order0 += 1,
        }
        last = Some((addr & !(block - 1), block));
    }
    expected
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn walk(stride: u64, size: u64) -> Walk {
        Walk {
            stride,
            size,
            align: None,
            map: size,
        }
    }

    fn e(order0: u64, order9: u64, order18: u64) -> Expected {
        Expected {
            order0,
            order9,
            order18,
        }
    }

    #[test]
    fn alignment_of_addresses() {
        assert_eq!(alignment(0x7f00_0000_1000), 4096);
        assert_eq!(alignment(0x7f00_0020_0000), 2 * MIB);
        assert_eq!(alignment(0x7f00_4000_0000), GIB);
        assert_eq!(alignment(0x7f80_0000_0000), GIB);
        assert_eq!(alignment(0), GIB);
    }

    #[test]
    fn placement_is_exact_and_fits() {
        for base in [
            0x7f00_0000_1000u64,
            0x7f00_0020_0000,
            0x7f00_4000_0000,
            0x7f12_3456_7000,
        ] {
            for align in [PAGE, 64 * 1024, 2 * MIB, 512 * MIB, GIB] {
                let size = 64 * MIB;
                let at = place(base, align);
                assert_eq!(alignment(at), align, "base {base:#x} align {align:#x}");
                assert!(at >= base);
                assert!(at + size <= base + reservation_len(size, align));
            }
        }
    }

    #[test]
    fn expected_for_the_classic_runs() {
        let bar = GIB;
        // 4K-only aligned: every page faults at order 0.
        assert_eq!(
            expected_faults(&walk(PAGE, 64 * MIB), 0x7f00_0000_1000, bar),
            e(16384, 0, 0)
        );
        // 2M aligned: one PMD per 2 MiB.
        assert_eq!(
            expected_faults(&walk(PAGE, 64 * MIB), 0x7f00_0020_0000, bar),
            e(0, 32, 0)
        );
        // 1G aligned, the whole BAR: one PUD.
        assert_eq!(
            expected_faults(&walk(2 * MIB, GIB), 0x7f00_4000_0000, bar),
            e(0, 0, 1)
        );
        // 1G aligned but smaller than 1G: PMDs.
        assert_eq!(
            expected_faults(&walk(PAGE, 4 * MIB), 0x7f00_4000_0000, bar),
            e(0, 2, 0)
        );
    }

    #[test]
    fn part_of_a_whole_bar_mapping() {
        // 64 MiB touched through a mapping of the whole 1 GiB BAR: the huge
        // blocks only need to lie inside the mapping, not the walk.
        let part = Walk {
            map: GIB,
            ..walk(PAGE, 64 * MIB)
        };
        assert_eq!(
            expected_faults(&part, 0x7f00_0000_1000, GIB),
            e(16384, 0, 0)
        );
        assert_eq!(expected_faults(&part, 0x7f00_0020_0000, GIB), e(0, 32, 0));
        assert_eq!(expected_faults(&part, 0x7f00_4000_0000, GIB), e(0, 0, 1));
    }

    #[test]
    fn expected_edges() {
        // A 2M-aligned mapping whose size is not a PMD multiple ends in 4K faults.
        assert_eq!(
            expected_faults(&walk(PAGE, 3 * MIB), 0x7f00_0020_0000, GIB),
            e(256, 1, 0)
        );
        // A BAR smaller than 2 MiB cannot be PMD-mapped whatever the address.
        assert_eq!(
            expected_faults(&walk(PAGE, MIB), 0x7f00_4000_0000, MIB),
            e(256, 0, 0)
        );
        // A stride larger than a page on 4K mappings faults once per touch.
        assert_eq!(
            expected_faults(&walk(64 * 1024, 4 * MIB), 0x7f00_0000_1000, GIB),
            e(64, 0, 0)
        );
        // A 1G-aligned 2 GiB mapping of a 4 GiB BAR: two PUDs.
        assert_eq!(
            expected_faults(&walk(PAGE, 2 * GIB), 0x7f00_4000_0000, 4 * GIB),
            e(0, 0, 2)
        );
    }
}
