//! `memory_lock` contention: `lock:contention_begin(lock, flags)` and
//! `lock:contention_end(lock, ret)`, which fire only on slow paths, matched
//! against the `&vdev->memory_lock` of known devices. Uncontended
//! acquisitions run no program at all.
//!
//! A wait ends at the `contention_end` of the same lock address, not at the
//! first end on the thread. `--pid` keeps only that process's waits.
//!
//! Produces one `LockEvent` per contended acquisition.

use aya_ebpf::programs::TracePointContext;
use vfio_trace_common::{LockEvent, MISSING, counter};

use crate::{
    diag,
    kernel::{now, task, tid},
    maps::{LOCK_INFLIGHT, LOCKS, MAX_INFLIGHT_U32, count, emit, filtered_out, other_process},
};

#[inline(always)]
fn field<T>(ctx: &TracePointContext, offset: u32) -> Option<T> {
    if offset == MISSING {
        return None;
    }
    // SAFETY: read_at copies from the trace record with bpf_probe_read.
    unsafe { ctx.read_at::<T>(offset as usize).ok() }
}

#[inline(always)]
pub fn begin(ctx: &TracePointContext) {
    let Some(lock) = field::<u64>(ctx, conf!(tp_lock_addr)) else {
        return;
    };
    let Some(device) = LOCKS.get_ptr(lock) else {
        return;
    };
    // SAFETY: a successful lookup of a plain u64.
    let device = unsafe { *device };
    if filtered_out(conf!(filter_devices), device) {
        return;
    }
    let task = task();
    if other_process() {
        return;
    }
    let mut ev = LockEvent::zeroed();
    ev.device = device;
    ev.lock = lock;
    ev.flags = field::<u32>(ctx, conf!(tp_flags)).unwrap_or(0);
    ev.pid = task.pid;
    ev.tid = task.tid;
    ev.comm = task.comm;
    ev.start_ns = task.now;
    if LOCK_INFLIGHT.insert(ev.tid, ev, 0).is_err() {
        count(counter::INFLIGHT_FULL);
        diag::lock_inflight(MAX_INFLIGHT_U32);
    }
}

#[inline(always)]
pub fn end(ctx: &TracePointContext) {
    let tid = tid();
    let Some(ev) = LOCK_INFLIGHT.get_ptr_mut(tid) else {
        return;
    };
    // SAFETY: this task's own in-flight entry.
    let ev = unsafe { &mut *ev };
    // A lock contended inside the wait (the rwsem's wait_lock, a runqueue
    // lock) ends first; only memory_lock's own end closes the wait.
    if field::<u64>(ctx, conf!(tp_lock_addr)) != Some(ev.lock) {
        return;
    }
    ev.wait_ns = now().wrapping_sub(ev.start_ns);
    ev.ret = field::<i32>(ctx, conf!(tp_ret)).unwrap_or(0);
    emit(ev.device, ev);
    let _ = LOCK_INFLIGHT.remove(tid);
}
