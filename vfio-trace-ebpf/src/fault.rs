//! Faults: `vfio_pci_mmap_huge_fault(vmf, order)` (6.12+) or
//! `vfio_pci_mmap_fault(vmf)` (6.1-6.11), entry and return, plus the page
//! inserts made inside them where they cannot be inferred:
//! `vmf_insert_pfn{,_pmd,_pud}` (6.10-6.11) and `remap_pfn_range` (6.1).
//!
//! Produces one `FaultEvent` per handler invocation, and one `TaskEvent` the
//! first time a thread faults. Entry only notes the fault in the task's own
//! storage; everything else is read at return, after the clock is read, so
//! the tracer's work stays out of the latency it reports. Inserts are counted
//! only while the same task is inside a vfio fault, so other drivers' inserts
//! never show; the order-0 wrapper is not probed, so nothing counts twice.

use aya_ebpf::helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid};
use vfio_trace_common::{Config, FaultEvent, TaskEvent, counter, origin, vm_fault};

use crate::{
    diag, dma,
    kernel::{device_of_vma, low32, now, read, vdev_of_vma},
    maps::{TASKS, TaskState, count, emit, filtered_out, other_process},
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
pub fn entry(cfg: &Config, vmf: u64, order: u32) {
    if other_process(cfg.filter_pid, (bpf_get_current_pid_tgid() >> 32) as u32) {
        return;
    }
    let Some(st) = TASKS.current(true) else {
        count(counter::INFLIGHT_FULL);
        diag::task_storage();
        return;
    };
    st.vmf = vmf;
    st.order = order;
    st.inserts_pte = 0;
    st.inserts_pmd = 0;
    st.inserts_pud = 0;
    st.remaps = 0;
    st.remap_pages = 0;
    st.in_fault = 1;
    count(counter::FAULT_ENTRIES);
    st.start_ns = now();
}

/// The fault returned `result`; `end_ns` was read first thing at return.
#[inline(always)]
pub fn ret(cfg: &Config, end_ns: u64, result: u32) {
    let Some(st) = TASKS.current(false) else {
        return;
    };
    if st.in_fault == 0 {
        return;
    }
    st.in_fault = 0;
    count(counter::FAULT_RETURNS);
    finish(cfg, st, end_ns, result);
}

/// Builds and sends the event of a fault that returned `result` at `end_ns`.
#[inline(always)]
fn finish(cfg: &Config, st: &mut TaskState, end_ns: u64, result: u32) {
    let mut ev = FaultEvent::zeroed();
    if let Some(vma) = read::<u64>(st.vmf, cfg.vmf_vma) {
        let start = read::<u64>(vma, cfg.vma_start).unwrap_or(0);
        let address = read::<u64>(st.vmf, cfg.vmf_address).unwrap_or(start);
        ev.vma_pgoff = read::<u64>(vma, cfg.vma_pgoff).unwrap_or(0);
        ev.page_in_vma = address.wrapping_sub(start) >> 12;
        ev.vma_start = start;
        if let Some(end) = read::<u64>(vma, cfg.vma_end) {
            ev.vma_pages = u32::try_from(end.wrapping_sub(start) >> 12).unwrap_or(u32::MAX);
        }
        match vdev_of_vma(cfg, vma) {
            Some(vdev) => {
                if let Some(device) = device_of_vma(cfg, vma, vdev) {
                    ev.device = device;
                }
            }
            None => diag::fault_vdev(cfg.vma_private_data),
        }
    } else {
        diag::fault_vma(cfg.vmf_vma);
    }
    if filtered_out(cfg.filter_devices, ev.device) {
        return;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    ev.pid = (pid_tgid >> 32) as u32;
    ev.tid = low32(pid_tgid);
    if st.named == 0 {
        let mut task = TaskEvent::zeroed();
        task.pid = ev.pid;
        task.tid = ev.tid;
        task.comm = bpf_get_current_comm().unwrap_or_default();
        emit(ev.device, &task, cfg.wake_bytes);
        st.named = 1;
    }
    ev.order = st.order;
    if !matches!(st.order, 0 | 9 | 18) {
        diag::order(st.order);
    }
    ev.result = result;
    ev.origin = origin_of(cfg, st);
    ev.start_ns = st.start_ns;
    ev.latency_ns = end_ns.wrapping_sub(st.start_ns);
    if cfg.inserts_from_result != 0 {
        infer_insert(st, result);
    }
    ev.inserts_pte = st.inserts_pte;
    ev.inserts_pmd = st.inserts_pmd;
    ev.inserts_pud = st.inserts_pud;
    ev.remaps = st.remaps;
    ev.remap_pages = st.remap_pages;
    dma::fault_inside(st, ev.device, ev.latency_ns);
    emit(ev.device, &ev, cfg.wake_bytes);
}

/// A fault inside type1's pinning is a DMA map's; one a user-mode CPU took
/// carries `FAULT_FLAG_USER`; anything else is another kernel path.
#[inline(always)]
fn origin_of(cfg: &Config, st: &TaskState) -> u32 {
    if st.pinning != 0 {
        return origin::DMA_MAP;
    }
    let flags = read::<u32>(st.vmf, cfg.vmf_flags).unwrap_or(0);
    if cfg.fault_flag_user != 0 && flags & cfg.fault_flag_user != 0 {
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
/// when it maps (`VM_FAULT_NOPAGE` alone), so no insert probe has to run.
#[inline(always)]
fn infer_insert(st: &mut TaskState, result: u32) {
    if result & !vm_fault::NOPAGE != 0 || result & vm_fault::NOPAGE == 0 {
        return;
    }
    match st.order {
        0 => st.inserts_pte += 1,
        9 => st.inserts_pmd += 1,
        18 => st.inserts_pud += 1,
        _ => {}
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
