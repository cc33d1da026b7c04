//! Zaps, the pages they removed, and the refaults that brought pages back.
//!
//! Pages are keyed `bar << 40 | page`. A fault's inserts mark pages populated;
//! a zap takes the populated pages of its range; a later insert of a taken
//! page is a refault of that zap. The pages every zap still waits for are one
//! set of ranges tagged with the zap, so an insert costs one tree walk however
//! many zaps wait, and nothing while none does.

use vfio_trace_common::ZapEvent;

use std::collections::BTreeMap;

use super::{
    cause::ZapCause,
    dma::DmaMap,
    latency::Latency,
    pages::{PageSet, Ranges},
};

/// Page key of `page` in `bar` (`None`: BAR unknown).
pub fn key(bar: Option<u32>, page: u64) -> u64 {
    (u64::from(bar.unwrap_or(7)) << 40) | page
}

/// The page-key range a zap covers: vfio file offsets are `index << 40 | offset`.
pub fn zap_keys(range_start: u64, range_len: u64) -> (u64, u64) {
    let to_key = |off: u64| ((off >> 40) << 40) | ((off & ((1 << 40) - 1)) >> 12);
    let end = if range_len == 0 {
        u64::MAX
    } else {
        to_key(range_start.saturating_add(range_len))
    };
    (to_key(range_start), end)
}

#[derive(Debug, Clone)]
pub struct Zap {
    /// Byte range of the device file zapped (region offsets); `len` 0 is to the end.
    pub range_start: u64,
    pub range_len: u64,
    pub start_ns: u64,
    pub latency_ns: u64,
    /// Pages of mappings the kernel walked (per-VMA zaps).
    pub pages: u64,
    pub vmas: u32,
    pub stack_id: i32,
    /// Named once the stack is (see `Model::add_stacks`).
    pub cause: ZapCause,
    pub pid: u32,
    pub comm: String,
    /// Pages that were populated and this zap removed.
    pub removed: u64,
    /// Of those, pages faulted in again since.
    pub refaulted: u64,
    /// From the end of the zap to the first refault.
    pub first_refault_ns: Option<u64>,
    /// From the end of the zap until every removed page was back.
    pub repopulated_ns: Option<u64>,
    /// How long the zap's writer held `memory_lock` from the zap's start.
    pub write_hold_ns: Option<u64>,
    /// The DMA maps of the device after this zap and before the next one:
    /// a VMM maps the BAR again once decode is back on.
    pub maps_after: u32,
    pub map_ns_after: u64,
    /// Of `map_ns_after`, time in vfio faults.
    pub map_fault_ns_after: u64,
    /// From the end of the zap to the start of the first map after it.
    pub first_map_ns: Option<u64>,
    /// Pages faulted back while this was the last zap, whichever zap took
    /// them: a reset right after a decode-off removes nothing itself, yet
    /// the pages come back in its cycle.
    pub refaulted_in_cycle: u64,
    /// The dma-buf revoke beside the zap (6.19+).
    pub revoke_ns: Option<u64>,
    /// From the zap's end to the first config write that set memory
    /// decode (or, failing that, to the dma-buf restore of 6.19+).
    pub decode_on_ns: Option<u64>,
    /// Removed pages not back yet.
    pending: u64,
}

impl Zap {
    fn end_ns(&self) -> u64 {
        self.start_ns + self.latency_ns
    }
}

#[derive(Debug, Default, Clone)]
pub struct ZapStats {
    pub zaps: Vec<Zap>,
    pub latency: Latency,
    pub write_hold: Latency,
    pub refaulted_pages: u64,
    populated: PageSet,
    /// Pages taken by zaps and not back yet, tagged with the zap's index.
    pending: Ranges<usize>,
    /// The per-VMA zap probe runs, so a zap that walked no VMA mapped nothing.
    pub walks_known: bool,
}

impl ZapStats {
    /// A fault inserted `[start, end)` (page keys), finishing at `at_ns`.
    /// Returns the pages it brought back after a zap.
    pub fn on_insert(&mut self, start: u64, end: u64, at_ns: u64) -> u64 {
        let before = self.refaulted_pages;
        if !self.pending.is_empty() {
            let (zaps, refaulted) = (&mut self.zaps, &mut self.refaulted_pages);
            self.pending.take_with(start, end, |from, to, index| {
                let z = &mut zaps[index];
                let back = to - from;
                z.refaulted += back;
                z.pending -= back;
                *refaulted += back;
                let since = at_ns.saturating_sub(z.end_ns());
                z.first_refault_ns.get_or_insert(since);
                if z.pending == 0 {
                    z.repopulated_ns = Some(since);
                }
            });
        }
        self.populated.insert(start, end);
        let back = self.refaulted_pages - before;
        if let Some(z) = self.zaps.last_mut() {
            z.refaulted_in_cycle += back;
        }
        back
    }

    /// Zaps by cause.
    pub fn causes(&self) -> BTreeMap<&str, u64> {
        let mut causes = BTreeMap::new();
        for z in &self.zaps {
            *causes.entry(z.cause.name()).or_default() += 1;
        }
        causes
    }

    /// Pages of mappings the zaps covered.
    pub fn pages(&self) -> u64 {
        self.zaps.iter().map(|z| z.pages).sum()
    }

    /// Bytes held beyond the struct: histograms, zap records, page ranges
    /// (an estimate for the ranges, which live in tree nodes).
    pub fn heap_bytes(&self) -> usize {
        let comms: usize = self.zaps.iter().map(|z| z.comm.capacity()).sum();
        self.latency.heap_bytes()
            + self.write_hold.heap_bytes()
            + self.zaps.capacity() * size_of::<Zap>()
            + comms
            + self.populated.heap_bytes()
            + self.pending.heap_bytes()
    }

    /// The writer of the zap that started at `zap_start_ns` released the lock.
    pub fn on_hold(&mut self, zap_start_ns: u64, hold_ns: u64) {
        if let Some(z) = self
            .zaps
            .iter_mut()
            .rev()
            .find(|z| z.start_ns == zap_start_ns)
        {
            z.write_hold_ns = Some(hold_ns);
            self.write_hold.record(hold_ns);
        }
    }

    /// A DMA map of the device: it belongs to the cycle of the last zap.
    pub fn on_dma_map(&mut self, m: &DmaMap) {
        let Some(z) = self.zaps.last_mut() else {
            return;
        };
        z.maps_after += 1;
        z.map_ns_after += m.latency_ns;
        z.map_fault_ns_after += m.fault_ns;
        z.first_map_ns
            .get_or_insert(m.start_ns.saturating_sub(z.end_ns()));
    }

    /// A dma-buf revoke (or restore, `revoked` false) of the device: the
    /// revoke follows its zap, the restore marks decode back on.
    pub fn on_dma_buf_move(&mut self, revoked: bool, start_ns: u64, latency_ns: u64) {
        if revoked {
            if let Some(z) = self.zaps.last_mut() {
                z.revoke_ns.get_or_insert(latency_ns);
            }
        } else {
            self.on_decode_on(start_ns);
        }
    }

    /// Memory decode was written on at `at_ns`: the first time after a zap
    /// ends its decode-off phase.
    pub fn on_decode_on(&mut self, at_ns: u64) {
        if let Some(z) = self.zaps.last_mut()
            && at_ns >= z.end_ns()
        {
            z.decode_on_ns.get_or_insert(at_ns - z.end_ns());
        }
    }

    pub fn on_zap(&mut self, e: &ZapEvent, comm: String) {
        let (start, end) = zap_keys(e.range_start, e.range_len);
        // Populated pages whose mappings were unmapped since the per-VMA
        // probe last saw them: this zap removed nothing.
        let unmaps = !(self.walks_known && e.vmas == 0);
        let index = self.zaps.len();
        let pending = &mut self.pending;
        let taken = self.populated.take_with(start, end, |from, to, ()| {
            if unmaps {
                pending.put(from, to, index);
            }
        });
        let removed = if unmaps { taken } else { 0 };
        self.latency.record(e.latency_ns);
        self.zaps.push(Zap {
            range_start: e.range_start,
            range_len: e.range_len,
            start_ns: e.start_ns,
            latency_ns: e.latency_ns,
            pages: e.pages,
            vmas: e.vmas,
            stack_id: e.stack_id,
            cause: ZapCause::Unknown,
            pid: e.pid,
            comm,
            removed,
            refaulted: 0,
            first_refault_ns: None,
            repopulated_ns: None,
            write_hold_ns: None,
            maps_after: 0,
            map_ns_after: 0,
            map_fault_ns_after: 0,
            first_map_ns: None,
            refaulted_in_cycle: 0,
            revoke_ns: None,
            decode_on_ns: None,
            pending: removed,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zap_at(ns: u64) -> ZapEvent {
        let mut e = ZapEvent::zeroed();
        e.start_ns = ns;
        e.latency_ns = 10;
        e
    }

    #[test]
    fn refaults_count_pages_taken_by_a_zap_and_time_their_return() {
        let mut z = ZapStats::default();
        for p in 0..4 {
            z.on_insert(key(Some(2), p), key(Some(2), p + 1), 100 + p);
        }
        z.on_zap(&zap_at(1000), "t".into());
        assert_eq!(z.zaps[0].removed, 4);
        z.on_insert(key(Some(2), 0), key(Some(2), 1), 1110);
        z.on_insert(key(Some(2), 9), key(Some(2), 10), 1120); // never zapped: not a refault
        assert_eq!(z.refaulted_pages, 1);
        assert_eq!(z.zaps[0].first_refault_ns, Some(100));
        assert_eq!(z.zaps[0].repopulated_ns, None);
        z.on_insert(key(Some(2), 1), key(Some(2), 4), 1210);
        assert_eq!(z.refaulted_pages, 4);
        assert_eq!(z.zaps[0].repopulated_ns, Some(200));
        z.on_hold(1000, 50);
        z.on_hold(999, 70); // no such zap
        assert_eq!(z.zaps[0].write_hold_ns, Some(50));
        assert_eq!(z.write_hold.count(), 1);
    }

    #[test]
    fn dma_maps_after_a_zap_join_its_cycle() {
        let mut z = ZapStats::default();
        let map = |start_ns, latency_ns| DmaMap {
            start_ns,
            latency_ns,
            fault_ns: latency_ns / 2,
            ..DmaMap::from(&vfio_trace_common::DmaMapEvent::zeroed())
        };
        z.on_dma_map(&map(1, 5)); // before any zap: no cycle
        z.on_zap(&zap_at(1000), "t".into());
        z.on_dma_map(&map(1500, 200));
        z.on_dma_map(&map(1800, 100));
        z.on_zap(&zap_at(3000), "t".into());
        assert_eq!(
            (
                z.zaps[0].maps_after,
                z.zaps[0].map_ns_after,
                z.zaps[0].map_fault_ns_after
            ),
            (2, 300, 150)
        );
        assert_eq!(z.zaps[0].first_map_ns, Some(490));
        assert_eq!((z.zaps[1].maps_after, z.zaps[1].first_map_ns), (0, None));
    }

    #[test]
    fn a_revoke_joins_its_zap_and_a_restore_marks_decode_on() {
        let mut z = ZapStats::default();
        z.on_dma_buf_move(true, 5, 1); // before any zap: nothing to join
        z.on_zap(&zap_at(1000), "t".into());
        z.on_dma_buf_move(true, 1010, 40);
        z.on_dma_buf_move(true, 1060, 99); // a second revoke keeps the first
        z.on_dma_buf_move(false, 4010, 7);
        z.on_dma_buf_move(false, 5010, 7);
        assert_eq!(z.zaps[0].revoke_ns, Some(40));
        assert_eq!(z.zaps[0].decode_on_ns, Some(3000));
        // The config write that sets decode comes first when both are seen.
        z.on_zap(&zap_at(10_000), "t".into());
        z.on_decode_on(9_000); // before the zap ended: not its decode-on
        z.on_decode_on(12_010);
        z.on_dma_buf_move(false, 12_020, 7);
        assert_eq!(z.zaps[1].decode_on_ns, Some(2000));
    }

    #[test]
    fn pages_wait_for_the_zap_that_took_them() {
        let mut z = ZapStats::default();
        z.on_insert(key(Some(0), 0), key(Some(0), 8), 1);
        z.on_insert(key(Some(2), 0), key(Some(2), 8), 1);
        let mut bar0 = zap_at(10);
        bar0.range_len = 8 << 12;
        z.on_zap(&bar0, "t".into());
        let mut bar2 = zap_at(20);
        bar2.range_start = 2 << 40;
        bar2.range_len = 8 << 12;
        z.on_zap(&bar2, "t".into());
        z.on_zap(&zap_at(30), "t".into()); // everything, but nothing is left
        assert_eq!(z.pending.len(), 16);
        z.on_insert(key(Some(2), 0), key(Some(2), 8), 100);
        assert_eq!(z.pending.len(), 8);
        assert_eq!(z.zaps[1].repopulated_ns, Some(70));
        z.on_insert(key(Some(0), 0), key(Some(0), 8), 200);
        assert!(z.pending.is_empty());
        assert_eq!(z.refaulted_pages, 16);
        assert_eq!(z.zaps[2].removed, 0);
        // Every page came back after the last zap: all in its cycle.
        assert_eq!(z.zaps[2].refaulted_in_cycle, 16);
        assert_eq!(z.zaps[0].refaulted_in_cycle, 0);
    }

    #[test]
    fn a_zap_that_walked_no_mapping_removed_nothing() {
        let mut z = ZapStats {
            walks_known: true,
            ..ZapStats::default()
        };
        z.on_insert(0, 4, 1);
        z.on_zap(&zap_at(10), "t".into());
        assert_eq!(z.zaps[0].removed, 0);
        z.on_insert(0, 4, 20);
        assert_eq!(z.refaulted_pages, 0);
    }

    #[test]
    fn zap_ranges_follow_vfio_region_offsets() {
        assert_eq!(zap_keys(0, 0), (0, u64::MAX));
        // BAR2 from offset 8 KiB, 4 pages long.
        assert_eq!(
            zap_keys((2 << 40) + 8192, 16384),
            (key(Some(2), 2), key(Some(2), 6))
        );
    }
}
