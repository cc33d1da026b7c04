//! Faults: `vfio_pci_mmap_huge_fault(vmf, order)` (6.12+) or
//! `vfio_pci_mmap_fault(vmf)` (6.1-6.11), entry and return, plus the page
//! inserts made inside them where they cannot be inferred:
//! `vmf_insert_pfn{,_pmd,_pud}` (6.10-6.11) and `remap_pfn_range` (6.1).
//!
//! Produces one event per handler invocation: a `FaultInVma` where it fits,
//! after a `VmaEvent` whenever the thread's mapping changed, else a whole
//! `FaultEvent`; and one `TaskEvent` the first time a thread faults. Entry
//! only notes the fault in the task's own storage; everything else is read
//! at return, after the clock is read, so the tracer's work stays out of
//! the latency it reports. Inserts are counted only while the same task is
//! inside a vfio fault, so other drivers' inserts never show; the order-0
//! wrapper is not probed, so nothing counts twice.

use vfio_trace_common::{
    FaultEvent, FaultInVma, UNKNOWN_DEVICE, VmaEvent, counter, origin, vm_fault,
};

use crate::{
    diag, dma,
    kernel::{Mem, device_of_vma, now, pid_tid},
    maps::{NO_RING, TASKS, TaskState, count, emit_to, filtered_out, other_process, ring_slot},
    thread,
};

#[derive(Clone, Copy)]
pub enum Insert {
    Pte,
    Pmd,
    Pud,
    Remap { pages: u64 },
}

/// A fault began: `vmf` is its `struct vm_fault *`, `order` the order asked for.
#[inline(always)]
pub fn entry(vmf: u64, order: u32) {
    if other_process() {
        return;
    }
    let Some(st) = TASKS.current(true) else {
        count(counter::INFLIGHT_FULL);
        diag::task_storage();
        return;
    };
    st.vmf = vmf;
    st.order = order;
    // Where the insert follows from the result, no probe counts inserts:
    // the counts stay 0 from the storage's creation.
    if conf!(inserts_from_result) == 0 {
        // Volatile: LLVM merges plain zero stores into a `memset` call,
        // which the BPF target runs a byte at a time.
        // SAFETY: writes to fields of the task's own storage.
        unsafe {
            core::ptr::write_volatile(&raw mut st.inserts_pte, 0);
            core::ptr::write_volatile(&raw mut st.inserts_pmd, 0);
            core::ptr::write_volatile(&raw mut st.inserts_pud, 0);
            core::ptr::write_volatile(&raw mut st.remaps, 0);
            core::ptr::write_volatile(&raw mut st.remap_pages, 0);
        }
    }
    st.in_fault = 1;
    count(counter::FAULT_ENTRIES);
    st.start_ns = now();
}

/// The fault returned `result`; `end_ns` was read first thing at return.
/// `vmf` is the handler's argument when the program has it with its BTF
/// type (fexit), else the one noted at entry is read with helpers.
#[inline(always)]
pub fn ret(end_ns: u64, result: u32, vmf: Option<u64>) {
    let Some(st) = TASKS.current(false) else {
        return;
    };
    if st.in_fault == 0 {
        return;
    }
    st.in_fault = 0;
    count(counter::FAULT_RETURNS);
    let (mem, vmf) = match vmf {
        Some(vmf) => (Mem::Btf, vmf),
        None => (Mem::Probe, st.vmf),
    };
    finish(mem, vmf, st, end_ns, result);
}

/// The device key of the VMA's vfio device `vdev`, and its ring slot. The
/// thread's last ones are kept in its storage: a thread's faults nearly
/// always repeat them, and a compare costs less than two hash lookups.
/// An unknown device gives `(UNKNOWN_DEVICE, NO_RING)`, which is not kept.
#[inline(always)]
fn device_cached(st: &mut TaskState, vma: u64, vdev: u64) -> (u64, u32) {
    if vdev == st.vdev && vdev != 0 {
        return (st.device, st.slot);
    }
    let Some(device) = device_of_vma(vma, vdev) else {
        return (UNKNOWN_DEVICE, NO_RING);
    };
    st.vdev = vdev;
    st.device = device;
    st.slot = ring_slot(device);
    (device, st.slot)
}

/// Builds and sends the event of a fault that returned `result` at `end_ns`.
/// Every field is set once from a local: an event zeroed first and filled
/// in branches became a `memset` call, which the BPF target runs a byte at
/// a time (88 bytes: about 450 instructions per fault).
#[inline(always)]
fn finish(mem: Mem, vmf: u64, st: &mut TaskState, end_ns: u64, result: u32) {
    let [vma, address, flags] = mem.fields(
        vmf,
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
            (device, slot) = device_cached(st, vma, vdev);
        }
    } else {
        diag::fault_vma(conf!(vmf_vma));
    }
    if filtered_out(conf!(filter_devices), device) {
        return;
    }
    let (pid, tid) = pid_tid(thread::pid_tgid(st, device));
    if !matches!(st.order, 0 | 9 | 18) {
        diag::order(st.order);
    }
    let latency_ns = end_ns.wrapping_sub(st.start_ns);
    let [pte, pmd, pud] = if conf!(inserts_from_result) != 0 {
        inferred_inserts(st.order, result)
    } else {
        [st.inserts_pte, st.inserts_pmd, st.inserts_pud]
    };
    dma::fault_inside(st, device, latency_ns);
    let mut ev = FaultEvent::zeroed();
    ev.order = st.order;
    ev.device = device;
    ev.vma_pgoff = vma_pgoff;
    ev.page_in_vma = page_in_vma;
    ev.start_ns = st.start_ns;
    ev.latency_ns = latency_ns;
    ev.result = result;
    ev.pid = pid;
    ev.tid = tid;
    ev.inserts_pte = pte;
    ev.inserts_pmd = pmd;
    ev.inserts_pud = pud;
    ev.remaps = st.remaps;
    ev.vma_pages = vma_pages;
    ev.remap_pages = st.remap_pages;
    ev.vma_start = vma_start;
    ev.origin = origin_of(flags, st);
    match FaultInVma::of(&ev) {
        Some(small) if vma != 0 => {
            if same_vma(st, &ev, slot) || send_vma(st, &ev, slot) {
                let _ = emit_to(slot, device, &small);
            }
        }
        _ => {
            let _ = emit_to(slot, device, &ev);
        }
    }
}

/// True when `slot`'s ring last heard of `ev`'s mapping from this thread.
#[inline(always)]
fn same_vma(st: &TaskState, ev: &FaultEvent, slot: u32) -> bool {
    let v = &st.vma;
    st.vma_sent != 0
        && st.vma_slot == slot
        && v.device == ev.device
        && v.vma_start == ev.vma_start
        && v.vma_pgoff == ev.vma_pgoff
        && v.vma_pages == ev.vma_pages
        && v.pid == ev.pid
}

/// Sends `ev`'s mapping to `slot`'s ring and keeps it as the thread's;
/// false when the ring was full, and the fault is lost with it (counted once).
#[inline(always)]
fn send_vma(st: &mut TaskState, ev: &FaultEvent, slot: u32) -> bool {
    let v = VmaEvent::of(ev);
    if !emit_to(slot, ev.device, &v) {
        st.vma_sent = 0;
        return false;
    }
    st.vma = v;
    st.vma_slot = slot;
    st.vma_sent = 1;
    true
}

/// A fault inside type1's pinning is a DMA map's; one a user-mode CPU took
/// carries `FAULT_FLAG_USER`; anything else is another kernel path.
#[inline(always)]
fn origin_of(flags: u64, st: &TaskState) -> u32 {
    if st.pinning != 0 {
        return origin::DMA_MAP;
    }
    let user = u64::from(conf!(fault_flag_user));
    if user != 0 && flags & user != 0 {
        origin::CPU
    } else {
        origin::OTHER
    }
}

/// `vfio_pin_pages_remote` began (`true`) or returned: faults in between
/// come from a DMA map.
#[inline(always)]
pub fn pinning(on: bool) {
    if let Some(st) = TASKS.current(on) {
        st.pinning = u32::from(on);
    }
}

/// From 6.12 the handler inserts one entry of the requested order exactly
/// when it maps (`VM_FAULT_NOPAGE` alone), so no insert probe has to run:
/// the PTE, PMD and PUD inserts of a fault of `order` that returned `result`.
#[inline(always)]
fn inferred_inserts(order: u32, result: u32) -> [u32; 3] {
    if result != vm_fault::NOPAGE {
        return [0; 3];
    }
    match order {
        0 => [1, 0, 0],
        9 => [0, 1, 0],
        18 => [0, 0, 1],
        _ => [0; 3],
    }
}

#[inline(always)]
pub fn count_insert(kind: Insert) {
    let Some(st) = TASKS.current(false) else {
        return;
    };
    if st.in_fault == 0 {
        return;
    }
    match kind {
        Insert::Pte => st.inserts_pte += 1,
        Insert::Pmd => st.inserts_pmd += 1,
        Insert::Pud => st.inserts_pud += 1,
        Insert::Remap { pages } => {
            st.remaps += 1;
            st.remap_pages += pages;
        }
    }
}
