//! Zaps of BAR mappings. From 6.10: `unmap_mapping_range(mapping, start, len,
//! even_cows)`, kept only for vfio address spaces (`s_magic == VFIO_MAGIC`).
//! Before 6.10: `vfio_pci_zap_and_vma_lock(vdev, try)`. Pages come from the
//! per-VMA zaps made inside (`zap_page_range_single`; `zap_vma_range_batched`
//! on 7.x).
//! The kernel stack at entry tells the cause; userspace names it.
//!
//! Produces one `ZapEvent` per zap.

use aya_ebpf::programs::{ProbeContext, tracing::StackIdContext as _};
use vfio_trace_common::{HoldEvent, UNKNOWN_DEVICE, VFIO_MAGIC, ZapEvent, counter};

use crate::{
    diag,
    kernel::{device_of_vdev, now, read, task, tid},
    maps::{
        HOLDS, MAPPINGS, MAX_INFLIGHT_U32, STACKS, ZAP_INFLIGHT, count, emit, filtered_out,
        other_process,
    },
};

/// Entry of `unmap_mapping_range`: vfio address spaces only.
#[inline(always)]
pub fn mapping_entry(ctx: &ProbeContext) {
    let mapping: u64 = ctx.arg(0).unwrap_or(0);
    let magic = read::<u64>(mapping, conf!(mapping_host))
        .and_then(|inode| read::<u64>(inode, conf!(inode_sb)))
        .and_then(|sb| read::<u64>(sb, conf!(sb_magic)));
    if magic != Some(VFIO_MAGIC) {
        return;
    }
    // SAFETY: the pointer comes from a successful lookup; the value is a plain u64.
    let device = MAPPINGS.get_ptr(mapping).map_or_else(
        || {
            diag::zap_unknown();
            UNKNOWN_DEVICE
        },
        |d| unsafe { *d },
    );
    start(
        ctx,
        device,
        ctx.arg(1).unwrap_or(0),
        ctx.arg(2).unwrap_or(0),
    );
}

/// Entry of `vfio_pci_zap_and_vma_lock(vdev, try)` (before 6.10): every BAR.
#[inline(always)]
pub fn vdev_entry(ctx: &ProbeContext) {
    let vdev: u64 = ctx.arg(0).unwrap_or(0);
    let device = device_of_vdev(vdev).unwrap_or_else(|e| {
        diag::device(&e);
        UNKNOWN_DEVICE
    });
    start(ctx, device, 0, 0);
}

#[inline(always)]
fn start(ctx: &ProbeContext, device: u64, range_start: u64, range_len: u64) {
    if filtered_out(conf!(filter_devices), device) {
        return;
    }
    let task = task();
    if other_process() {
        return;
    }
    let mut ev = ZapEvent::zeroed();
    ev.device = device;
    ev.range_start = range_start;
    ev.range_len = range_len;
    #[allow(
        clippy::cast_possible_truncation,
        reason = "a stack id indexes STACKS, which holds 1024"
    )]
    let stack_id = if let Ok(id) = ctx.get_stackid(&STACKS, 0) {
        id as i32
    } else {
        count(counter::STACK_FAILED);
        -1
    };
    ev.stack_id = stack_id;
    ev.pid = task.pid;
    ev.tid = task.tid;
    ev.comm = task.comm;
    ev.start_ns = task.now;
    if ZAP_INFLIGHT.insert(ev.tid, ev, 0).is_err() {
        count(counter::INFLIGHT_FULL);
        diag::zap_inflight(MAX_INFLIGHT_U32);
    }
}

/// A per-VMA zap inside a vfio zap; `size_arg` is where its size argument is:
/// 2 for `zap_page_range_single(vma, address, size, details)`, 3 for
/// `zap_vma_range_batched(tlb, vma, address, size, details)` (7.x).
#[inline(always)]
pub fn range(ctx: &ProbeContext, size_arg: usize) {
    let tid = tid();
    let Some(ev) = ZAP_INFLIGHT.get_ptr_mut(tid) else {
        return;
    };
    let size: u64 = ctx.arg(size_arg).unwrap_or(0);
    // SAFETY: this task's own in-flight entry.
    let ev = unsafe { &mut *ev };
    ev.pages += size >> 12;
    ev.vmas += 1;
}

/// Return of the zapping function.
#[inline(always)]
pub fn ret() {
    let tid = tid();
    let Some(ev) = ZAP_INFLIGHT.get_ptr_mut(tid) else {
        return;
    };
    // SAFETY: this task's own in-flight entry.
    let ev = unsafe { &mut *ev };
    ev.latency_ns = now().wrapping_sub(ev.start_ns);
    emit(ev.device, ev);
    let mut hold = HoldEvent::zeroed();
    hold.device = ev.device;
    hold.zap_start_ns = ev.start_ns;
    let _ = HOLDS.insert(tid, hold, 0);
    let _ = ZAP_INFLIGHT.remove(tid);
}

/// Entry of a vfio function that takes `memory_lock` and may zap: a hold
/// left by a zap made elsewhere on this thread must not be closed by its return.
#[inline(always)]
pub fn hold_begin() {
    let _ = HOLDS.remove(tid());
}

/// Return of the vfio function that took `memory_lock` for a zap and released it.
#[inline(always)]
pub fn hold_end() {
    let tid = tid();
    let Some(hold) = HOLDS.get_ptr_mut(tid) else {
        return;
    };
    // SAFETY: this task's own entry.
    let hold = unsafe { &mut *hold };
    hold.hold_ns = now().wrapping_sub(hold.zap_start_ns);
    emit(hold.device, hold);
    let _ = HOLDS.remove(tid);
}
