//! Pure aggregation of decoded events: no I/O, tested without root.

pub mod cause;
pub mod devices;
pub mod dma;
pub mod fault;
pub mod latency;
pub mod mappings;
pub mod page_counts;
pub mod pages;
pub mod processes;
pub mod slots;
pub mod snapshot;
pub mod stats;
pub mod timeline;
pub mod zap;

use std::collections::BTreeMap;

use vfio_trace_common::{DmaMapEvent, FaultEvent, UNKNOWN_DEVICE};

use cause::ZapCause;

use crate::{device::Bdf, event::Event, kernel::Generation};
use devices::Devices;
use fault::{Fault, locate};
use stats::DeviceStats;
use timeline::Clock;

/// Everything recorded so far.
#[derive(Debug, Clone)]
pub struct Model {
    generation: Generation,
    pub devices: Devices,
    /// Faults whose device could not be read.
    pub unattributed: u64,
    /// Zaps of vfio address spaces whose device was not known yet.
    pub unattributed_zaps: u64,
    /// DMA maps of no known BAR mapping: guest RAM, for a VMM.
    pub other_dma: dma::DmaMaps,
    /// Process names by pid, from the kernel's once-per-thread task events.
    pub comms: BTreeMap<u32, String>,
    /// Each thread's process and name, by tid, from the same events.
    pub threads: BTreeMap<u32, (u32, String)>,
    /// Zap stacks by id, as function names, innermost first.
    pub stacks: BTreeMap<i32, Stack>,
    zap_walks_known: bool,
    /// Timeline seconds of kernel times.
    clock: Clock,
}

/// A kernel stack of a zap, and the cause it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    pub frames: Vec<String>,
    pub cause: ZapCause,
}

impl Model {
    pub fn new(generation: Generation) -> Self {
        Self {
            generation,
            devices: Devices::default(),
            unattributed: 0,
            unattributed_zaps: 0,
            other_dma: dma::DmaMaps::default(),
            comms: BTreeMap::new(),
            threads: BTreeMap::new(),
            stacks: BTreeMap::new(),
            zap_walks_known: false,
            clock: Clock::default(),
        }
    }

    /// Second 0 of the timelines, in kernel time (`CLOCK_MONOTONIC`, as the
    /// events' timestamps). Without it the first timed event is second 0.
    pub fn set_origin_ns(&mut self, ns: u64) {
        self.clock.set_origin_ns(ns);
    }

    /// Kernel time of second 0 of the timelines.
    pub fn origin_ns(&self) -> u64 {
        self.clock.origin_ns()
    }

    /// Names zap stacks read from the kernel (by stack id), and with them the
    /// cause of every zap that has one of these stacks.
    pub fn add_stacks(&mut self, stacks: impl IntoIterator<Item = (i32, Vec<String>)>) {
        for (id, frames) in stacks {
            let cause = cause::classify(&frames);
            self.stacks.insert(id, Stack { frames, cause });
        }
        for d in self.devices.values_mut() {
            for z in &mut d.zaps.zaps {
                if let Some(s) = self.stacks.get(&z.stack_id) {
                    z.cause.clone_from(&s.cause);
                }
            }
        }
    }

    /// Zaps whose kernel stack was stored but is not among the named stacks:
    /// their cause reads unknown.
    pub fn stacks_unresolved(&self) -> u64 {
        self.unnamed_zaps().count() as u64
    }

    /// The stack ids of zaps whose stack is not named yet, each once.
    pub fn unnamed_stack_ids(&self) -> Vec<i32> {
        let ids: std::collections::BTreeSet<i32> =
            self.unnamed_zaps().map(|z| z.stack_id).collect();
        ids.into_iter().collect()
    }

    fn unnamed_zaps(&self) -> impl Iterator<Item = &zap::Zap> {
        self.devices
            .values()
            .flat_map(|d| &d.zaps.zaps)
            .filter(|z| z.stack_id >= 0 && !self.stacks.contains_key(&z.stack_id))
    }

    /// Events of `bdf` lost by kernel time `at_ns`, read from the kernel's
    /// loss counters by the caller. A device the model does not hold is
    /// left out: losses alone do not make a device traced.
    pub fn add_lost(&mut self, bdf: Bdf, at_ns: u64, lost: u64) {
        if self.devices.get(&bdf).is_none() {
            return;
        }
        let t = self.clock.second(at_ns);
        if let Some(s) = self.device(bdf).timeline.at(t) {
            s.lost += lost;
        }
    }

    /// Whether zaps report the VMAs they walked (the per-VMA zap probe attached).
    pub fn set_zap_walks_known(&mut self, known: bool) {
        self.zap_walks_known = known;
        for d in self.devices.values_mut() {
            d.zaps.walks_known = known;
        }
    }

    fn device(&mut self, bdf: Bdf) -> &mut DeviceStats {
        let known = self.zap_walks_known;
        self.devices.get_or_insert_with(bdf, || {
            let mut d = DeviceStats::default();
            d.zaps.walks_known = known;
            d
        })
    }

    /// Registers a device before any event, so it is reported even when idle.
    /// `bars` are (index, physical start, size): they place faults before
    /// 6.10 and bound each BAR's per-page counts.
    pub fn add_device(&mut self, bdf: Bdf, bars: Vec<(u32, u64, u64)>) {
        self.device(bdf).set_layout(bars);
    }

    /// Faults whose page lay past its BAR (or past the bound for a BAR of
    /// unknown size): counted, not stored.
    pub fn pages_out_of_range(&self) -> u64 {
        self.devices
            .values()
            .map(DeviceStats::pages_out_of_range)
            .sum()
    }

    /// Bytes the model holds on the heap, to check it stays bounded. Exact
    /// for the large parts (page counts, histograms); estimated for tree nodes.
    pub fn heap_bytes(&self) -> usize {
        // Process and thread names, each with its share of a tree node.
        let names: usize = self
            .comms
            .values()
            .map(|c| c.capacity() + 32)
            .sum::<usize>()
            + self
                .threads
                .values()
                .map(|(_, c)| c.capacity() + 40)
                .sum::<usize>();
        self.devices.heap_bytes() + names + self.other_dma.heap_bytes()
    }

    pub fn ingest(&mut self, event: &Event) {
        self.ingest_refaults(event);
    }

    /// Ingests an event; returns the pages it brought back after zaps (only
    /// a fault does).
    pub fn ingest_refaults(&mut self, event: &Event) -> u64 {
        if let Event::Fault(e) = event {
            return self.fault(e);
        }
        match event {
            Event::Fault(_) => {}
            // The thread group leader names the process; another thread only
            // until the leader is seen.
            Event::Task(e) => {
                let comm = fault::comm(&e.comm);
                if e.tid == e.pid || !self.comms.contains_key(&e.pid) {
                    self.comms.insert(e.pid, comm.clone());
                }
                self.threads.insert(e.tid, (e.pid, comm));
            }
            Event::Zap(e) if e.device == UNKNOWN_DEVICE => self.unattributed_zaps += 1,
            Event::Zap(e) => {
                let t = self.clock.second(e.start_ns);
                let cause = self.stacks.get(&e.stack_id).map(|s| s.cause.clone());
                let d = self.device(Bdf::from_key(e.device));
                d.add_zap(e, fault::comm(&e.comm));
                if let Some(s) = d.timeline.at(t) {
                    s.add_zap();
                }
                if let Some(cause) = cause
                    && let Some(z) = d.zaps.zaps.last_mut()
                {
                    z.cause = cause;
                }
            }
            Event::Hold(e) if e.device == UNKNOWN_DEVICE => {}
            Event::Hold(e) => self
                .device(Bdf::from_key(e.device))
                .zaps
                .on_hold(e.zap_start_ns, e.hold_ns),
            Event::DmaMap(e) => self.dma_map(e),
            Event::DecodeOn(e) if e.device == UNKNOWN_DEVICE => {}
            Event::DecodeOn(e) => self
                .device(Bdf::from_key(e.device))
                .zaps
                .on_decode_on(e.start_ns),
            Event::DmaBufMove(e) if e.device == UNKNOWN_DEVICE => {}
            Event::DmaBufMove(e) => self.device(Bdf::from_key(e.device)).add_dma_buf_move(e),
            Event::Lock(e) if e.device == UNKNOWN_DEVICE => {}
            Event::Lock(e) => {
                let t = self.clock.second(e.start_ns);
                let d = self.device(Bdf::from_key(e.device));
                d.add_lock_wait(e);
                if let Some(s) = d.timeline.at(t) {
                    s.add_lock_wait();
                }
            }
        }
        0
    }

    /// A map that faulted names its device. One that did not is a BAR's
    /// when it lies in a mapping the process faulted before (a map of
    /// pages still present), else it maps something else.
    fn dma_map(&mut self, e: &DmaMapEvent) {
        let m = dma::DmaMap::from(e);
        let bdf = if e.device == UNKNOWN_DEVICE {
            self.device_mapping(e.pid, e.vaddr)
        } else {
            Some(Bdf::from_key(e.device))
        };
        match bdf {
            Some(bdf) => self.device(bdf).add_dma_map(m),
            None => self.other_dma.add(m),
        }
    }

    /// The device whose BAR `pid` has mapped at `vaddr`, as its faults told.
    fn device_mapping(&self, pid: u32, vaddr: u64) -> Option<Bdf> {
        self.devices.iter().find_map(|(bdf, d)| {
            d.mappings
                .iter()
                .any(|m| {
                    m.pid == pid
                        && m.start != 0
                        && (m.start..m.start.saturating_add(m.pages << 12)).contains(&vaddr)
                })
                .then_some(*bdf)
        })
    }

    fn fault(&mut self, event: &FaultEvent) -> u64 {
        let f = Fault::from(event);
        let Some(bdf) = f.device else {
            self.unattributed += 1;
            return 0;
        };
        let generation = self.generation;
        let t = self.clock.second(f.end_ns);
        let d = self.device(bdf);
        let at = locate(generation, f.vma_pgoff, f.page_in_vma, d.layout());
        let refaulted = d.add(&f, at);
        if let Some(s) = d.timeline.at(t) {
            s.add_fault(f.order, f.outcome);
            s.refaulted_pages += refaulted;
        }
        refaulted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_land_on_their_device_and_bar() {
        let mut m = Model::new(Generation::HugeFault);
        let bdf = Bdf::parse("0000:01:00.0").expect("bdf");
        let idle = Bdf::parse("0000:02:00.0").expect("bdf");
        m.add_device(idle, vec![]);
        let mut e = FaultEvent::zeroed();
        e.device = bdf.key();
        e.vma_pgoff = 2 << 28;
        e.result = 0x100;
        for page in 0..3 {
            e.page_in_vma = page;
            m.ingest(&Event::Fault(e));
        }
        e.device = vfio_trace_common::UNKNOWN_DEVICE;
        m.ingest(&Event::Fault(e));
        assert_eq!(m.devices[&bdf].faults, 3);
        assert_eq!(m.devices[&bdf].bars[&Some(2)].page_faults.len(), 3);
        assert_eq!(m.devices[&idle].faults, 0);
        assert_eq!(m.unattributed, 1);
    }

    #[test]
    fn dma_maps_go_to_the_device_whose_mapping_they_cover() {
        let mut m = Model::new(Generation::HugeFault);
        let bdf = Bdf::parse("0000:01:00.0").expect("bdf");
        let mut f = FaultEvent::zeroed();
        f.device = bdf.key();
        f.vma_pgoff = 2 << 28;
        f.result = 0x100;
        f.pid = 7;
        f.vma_start = 0x7f00_0000_0000;
        f.vma_pages = 256;
        m.ingest(&Event::Fault(f));
        let mut d = DmaMapEvent::zeroed();
        d.pid = 7;
        // Faulted inside: the kernel named the device.
        d.device = bdf.key();
        d.faults = 2;
        m.ingest(&Event::DmaMap(d));
        // No fault, but inside the process's mapping of the BAR.
        d.device = UNKNOWN_DEVICE;
        d.faults = 0;
        d.vaddr = 0x7f00_0000_0000 + (255 << 12);
        m.ingest(&Event::DmaMap(d));
        // Past the mapping, or another process: not the BAR's.
        d.vaddr = 0x7f00_0000_0000 + (256 << 12);
        m.ingest(&Event::DmaMap(d));
        d.vaddr = 0x7f00_0000_0000;
        d.pid = 8;
        m.ingest(&Event::DmaMap(d));
        assert_eq!(
            (m.devices[&bdf].dma.maps, m.devices[&bdf].dma.faults),
            (2, 2)
        );
        assert_eq!(m.other_dma.maps, 2);
    }

    #[test]
    fn devices_first_seen_by_a_zap_or_lock_wait_know_zap_walks() {
        let mut m = Model::new(Generation::HugeFault);
        m.set_zap_walks_known(true);
        let [a, b] = ["0000:01:00.0", "0000:02:00.0"].map(|s| Bdf::parse(s).expect("bdf"));
        let mut zap = vfio_trace_common::ZapEvent::zeroed();
        zap.device = a.key();
        m.ingest(&Event::Zap(zap));
        let mut lock = vfio_trace_common::LockEvent::zeroed();
        lock.device = b.key();
        m.ingest(&Event::Lock(lock));
        assert!(m.devices[&a].zaps.walks_known);
        assert!(m.devices[&b].zaps.walks_known);
    }

    #[test]
    fn zaps_are_named_by_their_stack_whenever_it_arrives() {
        let mut m = Model::new(Generation::HugeFault);
        let bdf = Bdf::parse("0000:01:00.0").expect("bdf");
        let mut zap = vfio_trace_common::ZapEvent::zeroed();
        zap.device = bdf.key();
        zap.stack_id = 4;
        m.ingest(&Event::Zap(zap));
        zap.stack_id = 5;
        m.ingest(&Event::Zap(zap));
        assert_eq!(m.stacks_unresolved(), 2);
        m.add_stacks([(
            4,
            vec!["unmap_mapping_range".into(), "vfio_pci_core_ioctl".into()],
        )]);
        // A zap after its stack is known is named at once.
        zap.stack_id = 4;
        m.ingest(&Event::Zap(zap));
        let causes = m.devices[&bdf].zaps.causes();
        assert_eq!(causes.get("reset"), Some(&2));
        assert_eq!(causes.get("unknown"), Some(&1));
        assert_eq!(m.stacks_unresolved(), 1);
    }

    #[test]
    fn the_timeline_counts_each_second_from_the_origin() {
        let mut m = Model::new(Generation::HugeFault);
        m.set_origin_ns(10_000_000_000);
        let bdf = Bdf::parse("0000:01:00.0").expect("bdf");
        let mut e = FaultEvent::zeroed();
        e.device = bdf.key();
        e.vma_pgoff = 2 << 28;
        e.result = 0x100;
        e.inserts_pte = 1;
        e.start_ns = 10_500_000_000;
        m.ingest(&Event::Fault(e));
        let mut zap = vfio_trace_common::ZapEvent::zeroed();
        zap.device = bdf.key();
        zap.start_ns = 12_100_000_000;
        m.ingest(&Event::Zap(zap));
        e.start_ns = 12_200_000_000;
        m.ingest(&Event::Fault(e));
        m.add_lost(bdf, 13_000_000_000, 7);
        let seconds: Vec<_> = m.devices[&bdf].timeline.seconds().copied().collect();
        let t: Vec<u64> = seconds.iter().map(|s| s.t).collect();
        assert_eq!(t, [0, 2, 3]);
        assert_eq!(seconds[0].faults_by_result.nopage, 1);
        assert_eq!((seconds[1].zaps, seconds[1].refaulted_pages), (1, 1));
        assert_eq!(seconds[2].lost, 7);
    }
}
