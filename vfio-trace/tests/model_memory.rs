//! The model's memory, measured by the allocator rather than estimated:
//! 16 devices and a 32 GiB BAR touched at every 4 KiB page stay under
//! 64 MiB, and ingesting an event allocates nothing once its page's chunk and
//! its histograms exist; a long run keeps a bounded timeline.
//!
//! The counters are per thread, so tests running side by side do not mix.

#![expect(
    unused_crate_dependencies,
    reason = "an integration test uses a few of the package's dependencies"
)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

mod fixture;

use fixture::{BAR2_BYTES, DEVICES, bdf, fault, model};
use vfio_trace::{
    event::Event,
    model::{
        Model,
        timeline::{MAX_SECONDS, Second},
    },
};
use vfio_trace_common::{HoldEvent, LockEvent, ZapEvent, lock_flags, vm_fault};

thread_local! {
    /// Bytes allocated and not freed, and allocations made, by this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn note(bytes: isize, allocs: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get() + bytes));
    let _ = ALLOCS.try_with(|a| a.set(a.get() + allocs));
}

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size().cast_signed(), 1);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size().cast_signed(), 1);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-layout.size().cast_signed(), 0);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size.cast_signed() - layout.size().cast_signed(), 1);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

/// Every histogram a device can have: each order and result, a zap, its
/// hold of `memory_lock`, and a contended wait for it.
fn every_histogram(m: &mut Model, dev: u32) {
    let results = [
        vm_fault::NOPAGE,
        vm_fault::FALLBACK,
        vm_fault::SIGBUS,
        vm_fault::OOM,
        0,
    ];
    for (i, order) in [0, 9, 18, 13].into_iter().enumerate() {
        for result in results {
            m.ingest(&Event::Fault(fault(
                dev,
                (1 << 22) + i as u64,
                order,
                result,
            )));
        }
    }
    let mut z = ZapEvent::zeroed();
    z.device = bdf(dev).key();
    z.range_start = 2 << 40;
    z.range_len = 1 << 12;
    z.vmas = 1;
    m.ingest(&Event::Zap(z));
    let mut h = HoldEvent::zeroed();
    h.device = z.device;
    h.hold_ns = 5000;
    m.ingest(&Event::Hold(h));
    let mut l = LockEvent::zeroed();
    l.device = z.device;
    l.flags = lock_flags::READ;
    l.wait_ns = 7000;
    m.ingest(&Event::Lock(l));
}

#[test]
fn a_fully_touched_32_gib_bar_and_16_devices_stay_under_64_mib() {
    let before = live();
    let mut m = model();
    for dev in 0..DEVICES {
        every_histogram(&mut m, dev);
    }
    let pages = BAR2_BYTES >> 12;
    let mut e = fault(0, 0, 0, vm_fault::NOPAGE);
    for page in 0..pages {
        e.page_in_vma = page;
        m.ingest(&Event::Fault(e));
    }
    let held = usize::try_from(live() - before).expect("the model holds memory");
    let d = &m.devices[&bdf(0)];
    assert_eq!(d.bars[&Some(2)].page_faults.len(), pages);
    eprintln!(
        "model with 16 devices and {pages} pages touched: {:.1} MiB held, {:.1} MiB by heap_bytes()",
        held as f64 / f64::from(1 << 20),
        m.heap_bytes() as f64 / f64::from(1 << 20)
    );
    assert!(held < 64 << 20, "{held} bytes");
    // heap_bytes() is within 10 % of what the allocator saw: it can be trusted.
    let reported = m.heap_bytes();
    assert!(reported.abs_diff(held) < held / 10, "{reported} for {held}");
}

#[test]
fn pages_past_the_bar_cost_no_memory() {
    let mut m = model();
    every_histogram(&mut m, 0);
    let before = live();
    let pages = BAR2_BYTES >> 12;
    for page in [pages, pages + 1, 1 << 27, u64::MAX >> 20] {
        m.ingest(&Event::Fault(fault(0, page, 0, vm_fault::NOPAGE)));
    }
    assert_eq!(m.pages_out_of_range(), 4);
    assert!(live() - before < 4096, "{} bytes", live() - before);
}

#[test]
fn events_allocate_only_per_chunk_and_per_zap() {
    let mut m = model();
    for dev in 0..DEVICES {
        every_histogram(&mut m, dev);
    }
    // A storm over 64 MiB of every device: a chunk of counts per 4096 pages.
    let pages = 16_384;
    let start = allocs();
    for page in 0..pages {
        for dev in 0..DEVICES {
            m.ingest(&Event::Fault(fault(dev, page, 0, vm_fault::NOPAGE)));
        }
    }
    let storm = allocs() - start;
    assert!(storm <= DEVICES as usize * 8, "{storm} allocations");
    // Mixed orders on pages already counted, then a zap and the refaults
    // that bring every page back: no allocation but the zap's own.
    let start = allocs();
    for page in (0..pages).step_by(512) {
        m.ingest(&Event::Fault(fault(1, page, 9, vm_fault::NOPAGE)));
        m.ingest(&Event::Fault(fault(1, page, 9, vm_fault::FALLBACK)));
        m.ingest(&Event::Fault(fault(1, page + 7, 0, vm_fault::NOPAGE)));
    }
    assert_eq!(allocs() - start, 0);
    let mut z = ZapEvent::zeroed();
    z.device = bdf(1).key();
    z.range_start = 2 << 40;
    z.range_len = pages << 12;
    z.vmas = 1;
    z.start_ns = 1000;
    m.ingest(&Event::Zap(z));
    let start = allocs();
    for page in 0..pages {
        let mut e = fault(1, page, 0, vm_fault::NOPAGE);
        e.start_ns = 2000 + page;
        m.ingest(&Event::Fault(e));
    }
    let refaults = allocs() - start;
    assert!(refaults <= 2, "{refaults} allocations");
    let zap = &m.devices[&bdf(1)].zaps.zaps[1];
    assert_eq!((zap.removed, zap.refaulted), (pages, pages));
}

#[test]
fn a_long_run_keeps_a_bounded_timeline() {
    let mut m = model();
    let before = live();
    // Every device busy every second for twice what a timeline keeps.
    let seconds = 2 * MAX_SECONDS as u64;
    for s in 0..seconds {
        for dev in 0..DEVICES {
            let mut e = fault(dev, s % 4096, 0, vm_fault::NOPAGE);
            e.start_ns = s * 1_000_000_000;
            m.ingest(&Event::Fault(e));
        }
    }
    let held = usize::try_from(live() - before).expect("the model holds memory");
    let timelines = DEVICES as usize * MAX_SECONDS * size_of::<Second>();
    // The timelines (a deque may hold up to twice what it keeps) and a
    // chunk of page counts per device.
    assert!(held < 2 * timelines + (4 << 20), "{held} bytes");
    let t = &m.devices[&bdf(3)].timeline;
    assert_eq!(t.seconds().count(), MAX_SECONDS);
    assert_eq!(t.dropped_seconds(), seconds - MAX_SECONDS as u64);
    assert_eq!(t.seconds().next().map(|s| s.t), Some(MAX_SECONDS as u64));
}
