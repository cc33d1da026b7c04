//! DMA maps: `vfio_iommu_type1_ioctl(iommu, cmd, arg)` entry and return for
//! `VFIO_IOMMU_MAP_DMA`, and `vaddr_get_pfns` inside it. One `DmaMapEvent`
//! per map, with the vfio faults (counted at fault return) and pfn lookups
//! made while it ran. Only map ioctls are kept: every other command returns
//! at the first compare.

use aya_ebpf::helpers::bpf_probe_read_user;
use vfio_trace_common::{DmaMapEvent, UNKNOWN_DEVICE, VFIO_IOMMU_MAP_DMA, counter, dma_map_arg};

use crate::{
    diag,
    kernel::{low32, now, pid_tid},
    maps::{TASKS, TaskState, count, emit, other_process},
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
    st.dma = DmaMapEvent::zeroed();
    st.dma.vaddr = user_u64(arg, dma_map_arg::VADDR);
    st.dma.iova = user_u64(arg, dma_map_arg::IOVA);
    st.dma.size = user_u64(arg, dma_map_arg::SIZE);
    st.in_dma = 1;
    st.dma.start_ns = now();
}

/// The ioctl returned `ret`; `end_ns` was read first thing at return.
#[inline(always)]
pub fn ret(end_ns: u64, ret: u64) {
    let Some(st) = TASKS.current(false) else {
        return;
    };
    if st.in_dma == 0 {
        return;
    }
    st.in_dma = 0;
    let device = st.dma.device;
    (st.dma.pid, st.dma.tid) = pid_tid(thread::pid_tgid(st, device));
    st.dma.ret = low32(ret).cast_signed();
    st.dma.latency_ns = end_ns.wrapping_sub(st.dma.start_ns);
    emit(st.dma.device, &st.dma);
}

/// `vaddr_get_pfns`: one pfn lookup of the map in progress.
#[inline(always)]
pub fn lookup() {
    if let Some(st) = TASKS.current(false)
        && st.in_dma != 0
    {
        st.dma.lookups += 1;
    }
}

/// A vfio fault of `device` that took `latency_ns` returned inside a map.
#[inline(always)]
pub fn fault_inside(st: &mut TaskState, device: u64, latency_ns: u64) {
    if st.in_dma == 0 {
        return;
    }
    st.dma.faults += 1;
    st.dma.fault_ns += latency_ns;
    if st.dma.device == UNKNOWN_DEVICE {
        st.dma.device = device;
    }
}
