//! Faults: `vfio_pci_mmap_huge_fault(vmf, order)` (6.12+) or
//! `vfio_pci_mmap_fault(vmf)` (6.1-6.11), entry and return, plus the page
//! inserts made inside them: `vmf_insert_pfn{,_pmd,_pud}` and `remap_pfn_range`.
//!
//! Produces one `FaultEvent` per handler invocation. Inserts are counted only
//! while the same task is inside a vfio fault, so other drivers' inserts never
//! show; the order-0 wrapper is not probed, so nothing counts twice.

use aya_ebpf::programs::{ProbeContext, RetProbeContext};
use vfio_trace_common::{Config, FaultEvent};

use crate::{
    kernel::{device_of_vdev, learn, now, read, task, tid, vdev_of_vma},
    maps::{INFLIGHT, emit, filtered_out},
};

pub enum Insert {
    Pte,
    Pmd,
    Pud,
    Remap { pages: u64 },
}

#[inline(always)]
pub fn entry(ctx: &ProbeContext, cfg: &Config) {
    let task = task();
    if cfg.filter_pid != 0 && cfg.filter_pid != task.pid {
        return;
    }
    let vmf: u64 = ctx.arg(0).unwrap_or(0);
    let order: u32 = if cfg.handler_has_order != 0 {
        ctx.arg::<u64>(1).unwrap_or(0) as u32
    } else {
        0
    };
    let mut ev = FaultEvent::zeroed();
    if let Some(vma) = read::<u64>(vmf, cfg.vmf_vma) {
        let start = read::<u64>(vma, cfg.vma_start).unwrap_or(0);
        let address = read::<u64>(vmf, cfg.vmf_address).unwrap_or(start);
        ev.vma_pgoff = read::<u64>(vma, cfg.vma_pgoff).unwrap_or(0);
        ev.page_in_vma = address.wrapping_sub(start) >> 12;
        if let Some(vdev) = vdev_of_vma(cfg, vma)
            && let Some(device) = device_of_vdev(cfg, vdev)
        {
            ev.device = device;
            learn(cfg, vma, vdev, device);
        }
    }
    if filtered_out(cfg.filter_devices, ev.device) {
        return;
    }
    ev.order = order;
    ev.pid = task.pid;
    ev.tid = task.tid;
    ev.comm = task.comm;
    ev.start_ns = task.now;
    let _ = INFLIGHT.insert(ev.tid, ev, 0);
}

#[inline(always)]
pub fn ret(ctx: &RetProbeContext) {
    let tid = tid();
    let Some(ev) = INFLIGHT.get_ptr_mut(tid) else {
        return;
    };
    // SAFETY: the pointer comes from a successful lookup of this task's own entry.
    let ev = unsafe { &mut *ev };
    ev.latency_ns = now().wrapping_sub(ev.start_ns);
    ev.result = ctx.ret::<u64>() as u32;
    emit(ev.device, ev);
    let _ = INFLIGHT.remove(tid);
}

#[inline(always)]
pub fn count_insert(kind: Insert) {
    let tid = tid();
    let Some(ev) = INFLIGHT.get_ptr_mut(tid) else {
        return;
    };
    // SAFETY: as in `ret`: this task's own in-flight entry.
    let ev = unsafe { &mut *ev };
    match kind {
        Insert::Pte => ev.inserts_pte += 1,
        Insert::Pmd => ev.inserts_pmd += 1,
        Insert::Pud => ev.inserts_pud += 1,
        Insert::Remap { pages } => {
            ev.remaps += 1;
            ev.remap_pages += pages;
        }
    }
}
