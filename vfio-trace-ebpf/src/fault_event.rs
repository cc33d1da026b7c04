//! A returned fault's event: its mapping and device read from the kernel,
//! the thread's cache consulted, and the smallest record that says it all
//! sent to the device's ring.

use vfio_trace_common::{FaultEvent, FaultInVma, UNKNOWN_DEVICE, VmaEvent, origin};

use crate::{
    diag, dma,
    fault::Began,
    kernel::{Mem, device_of_vma, pid_tid},
    maps::{NO_RING, TaskDma, Thread, emit_to, filtered_out, ring_slot},
    thread,
};

/// A fault at its return.
pub struct Returned {
    /// How its `vmf` is read.
    pub mem: Mem,
    pub vmf: u64,
    pub began: Began,
    pub end_ns: u64,
    pub result: u32,
}

/// The device key of the VMA's vfio device `vdev`, and its ring slot, from
/// `thread`'s cache: a thread's faults nearly always repeat them, and a
/// compare costs less than two hash lookups. An unknown device gives
/// `(UNKNOWN_DEVICE, NO_RING)`, which is not kept.
#[inline(always)]
fn device_cached(thread: &mut Thread, vma: u64, vdev: u64) -> (u64, u32) {
    if vdev == thread.vdev && vdev != 0 {
        return (thread.device, thread.slot);
    }
    let Some(device) = device_of_vma(vma, vdev) else {
        return (UNKNOWN_DEVICE, NO_RING);
    };
    thread.vdev = vdev;
    thread.device = device;
    thread.slot = ring_slot(device);
    (device, thread.slot)
}

/// Builds and sends the event of `fault`. `dma` is the thread's DMA state
/// where it may matter; `small` lets the fault travel as a `FaultInVma`
/// after the thread's mapping, as `thread` remembers it.
/// Every field is set once from a local: an event zeroed first and filled
/// in branches became a `memset` call, which the BPF target runs a byte at
/// a time (88 bytes: about 450 instructions per fault).
#[inline(always)]
pub fn send(fault: &Returned, thread: &mut Thread, dma: Option<&mut TaskDma>, small: bool) {
    let mem = fault.mem;
    let [vma, address, flags] = mem.fields(
        fault.vmf,
        [
            (conf!(vmf_vma), 8),
            (conf!(vmf_address), 8),
            (conf!(vmf_flags), 4),
        ],
    );
    let (mut device, mut slot) = (UNKNOWN_DEVICE, NO_RING);
    let (mut vma_start, mut vma_pgoff, mut page_in_vma, mut vma_pages) = (0, 0, 0, 0);
    if vma != 0 {
        // Two groups: `vm_start` and `vm_end` lead the struct, `vm_pgoff`
        // and `vm_private_data` lie together further in.
        let [start, end] = mem.fields(vma, [(conf!(vma_start), 8), (conf!(vma_end), 8)]);
        let [pgoff, vdev] = mem.fields(vma, [(conf!(vma_pgoff), 8), (conf!(vma_private_data), 8)]);
        vma_start = start;
        vma_pgoff = pgoff;
        let address = if address == 0 { start } else { address };
        page_in_vma = address.wrapping_sub(start) >> 12;
        if end != 0 {
            vma_pages = u32::try_from(end.wrapping_sub(start) >> 12).unwrap_or(u32::MAX);
        }
        if vdev == 0 {
            diag::fault_vdev(conf!(vma_private_data));
        } else {
            (device, slot) = device_cached(thread, vma, vdev);
        }
    } else {
        diag::fault_vma(conf!(vmf_vma));
    }
    if filtered_out(conf!(filter_devices), device) {
        return;
    }
    let (pid, tid) = pid_tid(thread::pid_tgid(thread, device));
    let began = &fault.began;
    if !matches!(began.order, 0 | 9 | 18) {
        diag::order(began.order);
    }
    let latency_ns = fault.end_ns.wrapping_sub(began.start_ns);
    let mut pinning = false;
    if let Some(dma) = dma {
        pinning = dma.pinning != 0;
        dma::fault_inside(dma, device, latency_ns);
    }
    let [pte, pmd, pud] = began.inserts;
    let mut ev = FaultEvent::zeroed();
    ev.order = began.order;
    ev.device = device;
    ev.vma_pgoff = vma_pgoff;
    ev.page_in_vma = page_in_vma;
    ev.start_ns = began.start_ns;
    ev.latency_ns = latency_ns;
    ev.result = fault.result;
    ev.pid = pid;
    ev.tid = tid;
    ev.inserts_pte = pte;
    ev.inserts_pmd = pmd;
    ev.inserts_pud = pud;
    ev.remaps = began.remaps;
    ev.vma_pages = vma_pages;
    ev.remap_pages = began.remap_pages;
    ev.vma_start = vma_start;
    ev.origin = origin_of(flags, pinning);
    match FaultInVma::of(&ev) {
        Some(small_ev) if small && vma != 0 => {
            if same_vma(thread, &ev, slot) || send_vma(thread, &ev, slot) {
                let _ = emit_to(slot, device, &small_ev);
            }
        }
        _ => {
            let _ = emit_to(slot, device, &ev);
        }
    }
}

/// True when `slot`'s ring last heard of `ev`'s mapping from this thread.
#[inline(always)]
fn same_vma(thread: &Thread, ev: &FaultEvent, slot: u32) -> bool {
    let v = &thread.vma;
    thread.vma_sent != 0
        && thread.vma_slot == slot
        && v.device == ev.device
        && v.vma_start == ev.vma_start
        && v.vma_pgoff == ev.vma_pgoff
        && v.vma_pages == ev.vma_pages
        && v.pid == ev.pid
}

/// Sends `ev`'s mapping to `slot`'s ring and keeps it as the thread's;
/// false when the ring was full, and the fault is lost with it (counted once).
#[inline(always)]
fn send_vma(thread: &mut Thread, ev: &FaultEvent, slot: u32) -> bool {
    let v = VmaEvent::of(ev);
    if !emit_to(slot, ev.device, &v) {
        thread.vma_sent = 0;
        return false;
    }
    thread.vma = v;
    thread.vma_slot = slot;
    thread.vma_sent = 1;
    true
}

/// A fault inside type1's pinning is a DMA map's; one a user-mode CPU took
/// carries `FAULT_FLAG_USER`; anything else is another kernel path.
#[inline(always)]
fn origin_of(flags: u64, pinning: bool) -> u32 {
    if pinning {
        return origin::DMA_MAP;
    }
    let user = u64::from(conf!(fault_flag_user));
    if user != 0 && flags & user != 0 {
        origin::CPU
    } else {
        origin::OTHER
    }
}
