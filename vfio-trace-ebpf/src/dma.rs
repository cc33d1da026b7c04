//! DMA maps: `vfio_iommu_type1_ioctl(iommu, cmd, arg)` entry and return for
//! `VFIO_IOMMU_MAP_DMA`, and `vaddr_get_pfns` inside it. One `DmaMapEvent`
//! per map, with the vfio faults (counted at fault return) and pfn lookups
//! made while it ran. Only map ioctls are kept: every other command returns
//! at the first compare.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{btf_maps::Array, helpers::bpf_probe_read_user, macros::btf_map};
use vfio_trace_common::{DmaMapEvent, UNKNOWN_DEVICE, VFIO_IOMMU_MAP_DMA, counter, dma_map_arg};

use crate::{
    diag,
    kernel::{low32, now, pid_tid},
    maps::{TASKS, TaskDma, count, emit, other_process},
    thread,
};

#[inline(always)]
fn user_u64(base: u64, offset: u64) -> u64 {
    // SAFETY: bpf_probe_read_user checks the address and fails instead of faulting.
    unsafe { bpf_probe_read_user((base + offset) as *const u64).unwrap_or(0) }
}

/// The ioctl began with `cmd` and user argument `arg`.
#[inline(always)]
pub fn entry(cmd: u32, arg: u64) {
    if cmd != VFIO_IOMMU_MAP_DMA || other_process() {
        return;
    }
    let Some(st) = TASKS.current(true) else {
        count(counter::INFLIGHT_FULL);
        diag::task_storage();
        return;
    };
    st.dma.map = DmaMapEvent::zeroed();
    st.dma.map.vaddr = user_u64(arg, dma_map_arg::VADDR);
    st.dma.map.iova = user_u64(arg, dma_map_arg::IOVA);
    st.dma.map.size = user_u64(arg, dma_map_arg::SIZE);
    if st.dma.in_dma == 0 {
        set_busy(true);
    }
    st.dma.in_dma = 1;
    st.dma.map.start_ns = now();
}

/// The ioctl returned `ret`; `end_ns` was read first thing at return.
#[inline(always)]
pub fn ret(end_ns: u64, ret: u64) {
    let Some(st) = TASKS.current(false) else {
        return;
    };
    if st.dma.in_dma == 0 {
        return;
    }
    st.dma.in_dma = 0;
    set_busy(false);
    let map = &mut st.dma.map;
    (map.pid, map.tid) = pid_tid(thread::pid_tgid(&mut st.thread, map.device));
    map.ret = low32(ret).cast_signed();
    map.latency_ns = end_ns.wrapping_sub(map.start_ns);
    emit(map.device, map);
}

/// `vaddr_get_pfns`: one pfn lookup of the map in progress.
#[inline(always)]
pub fn lookup() {
    if let Some(st) = TASKS.current(false)
        && st.dma.in_dma != 0
    {
        st.dma.map.lookups += 1;
    }
}

/// A vfio fault of `device` that took `latency_ns` returned inside a map.
#[inline(always)]
pub fn fault_inside(dma: &mut TaskDma, device: u64, latency_ns: u64) {
    if dma.in_dma == 0 {
        return;
    }
    dma.map.faults += 1;
    dma.map.fault_ns += latency_ns;
    if dma.map.device == UNKNOWN_DEVICE {
        dma.map.device = device;
    }
}

/// Threads now pinning pages or inside a DMA map ioctl. While it is 0, a
/// fault returning through an `in_flight` slot need not look in its task's
/// storage for DMA state. A return never seen leaves it above 0: slower,
/// never wrong.
#[btf_map]
static BUSY: Array<u64, 1> = Array::new();

/// A thread began (`true`) or ended pinning or a DMA map.
#[inline(always)]
pub fn set_busy(on: bool) {
    if let Some(n) = BUSY.get_ptr_mut(0) {
        // Adding u64::MAX subtracts one.
        let step = if on { 1 } else { u64::MAX };
        // SAFETY: `n` comes from a successful map lookup: valid and aligned.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(n, step) };
    }
}

/// True while some thread pins pages or maps DMA.
#[inline(always)]
pub fn busy() -> bool {
    // SAFETY: a successful lookup of a plain u64.
    BUSY.get_ptr(0)
        .is_some_and(|n| unsafe { core::ptr::read_volatile(n) } != 0)
}
