//! Diagnostics of rare paths, noted in the `DIAGNOSED` array for userspace
//! to word, count and print (`record --verbose`): a struct read that
//! failed, an order the fault handler is not known to ask for, a zap of a
//! device not seen yet, a full in-flight table.
//!
//! Each kind is noted once per run: a read that fails once fails at every
//! fault. A note is a lookup and three stores, so it adds little to what the
//! verifier walks at load; a formatted log record at each call site took
//! more than half of it. None of this runs on the normal fault path.

use aya_ebpf::{btf_maps::Array, macros::btf_map};
use vfio_trace_common::{Diagnosis, MISSING, diagnosis};

use crate::maps::BPF_F_MMAPABLE;

/// One entry per kind, written once. Memory-mapped, like `COUNTERS`:
/// userspace polls it without the bpf syscall, whose recursion guard a
/// preempted reader would hold against every kprobe program on its CPU.
#[btf_map]
static DIAGNOSED: Array<Diagnosis, { diagnosis::KINDS as usize }, BPF_F_MMAPABLE> = Array::new();

/// Notes `kind` with its arguments the first time. Not atomic: two CPUs
/// racing may both write it, which is harmless.
#[inline(always)]
fn note(kind: u32, args: [i64; 2]) {
    let Some(entry) = DIAGNOSED.get_ptr_mut(kind) else {
        return;
    };
    // SAFETY: a successful lookup of a plain struct in an array map.
    unsafe {
        if (*entry).seen != 0 {
            return;
        }
        (*entry).args = args;
        // Volatile: written after the arguments, which userspace then reads.
        core::ptr::write_volatile(&raw mut (*entry).seen, 1);
    }
}

/// An offset as noted: -1 when this kernel's BTF lacks the field.
#[inline(always)]
fn shown(offset: u32) -> i64 {
    if offset == MISSING {
        -1
    } else {
        i64::from(offset)
    }
}

/// Which read of `device_of_vdev` failed.
pub struct Unreadable {
    /// 1 vdev.pdev, 2 pdev.devfn, 3 pdev.bus, 4 bus.number.
    pub step: u32,
    pub offset: u32,
}

#[inline(always)]
pub fn fault_vma(offset: u32) {
    note(diagnosis::FAULT_VMA, [shown(offset), 0]);
}

#[inline(always)]
pub fn fault_vdev(offset: u32) {
    note(diagnosis::FAULT_VDEV, [shown(offset), 0]);
}

#[inline(always)]
pub fn device(e: &Unreadable) {
    note(diagnosis::DEVICE, [i64::from(e.step), shown(e.offset)]);
}

#[inline(always)]
pub fn order(order: u32) {
    note(diagnosis::ORDER, [i64::from(order), 0]);
}

#[inline(always)]
pub fn zap_unknown() {
    note(diagnosis::ZAP_UNKNOWN, [0, 0]);
}

#[inline(always)]
pub fn task_storage() {
    note(diagnosis::TASK_STORAGE, [0, 0]);
}

#[inline(always)]
pub fn zap_inflight(limit: u32) {
    note(diagnosis::ZAP_INFLIGHT, [i64::from(limit), 0]);
}

#[inline(always)]
pub fn fault_in_flight(tried: u32) {
    note(diagnosis::FAULT_IN_FLIGHT, [i64::from(tried), 0]);
}

#[inline(always)]
pub fn lock_inflight(limit: u32) {
    note(diagnosis::LOCK_INFLIGHT, [i64::from(limit), 0]);
}
