//! Diagnostics of rare paths, sent through aya-log and printed by
//! `record --verbose`: a struct read that failed, an order the fault
//! handler is not known to ask for, a zap of a device not seen yet, a full
//! in-flight table.
//!
//! Each kind is logged once per run: a read that fails once fails at every
//! fault, and the log ring must never flood. Arguments are scalars only (a
//! BTF pointer argument fails verification). None of this runs on the
//! normal fault path.

use aya_ebpf::{btf_maps::Array, macros::btf_map};
use aya_log_ebpf::{info, warn};
use vfio_trace_common::MISSING;

const FAULT_VMA: u32 = 0;
const FAULT_VDEV: u32 = 1;
const DEVICE: u32 = 2;
const ORDER: u32 = 3;
const ZAP_UNKNOWN: u32 = 4;
const TASK_STORAGE: u32 = 5;
const ZAP_INFLIGHT: u32 = 6;
const LOCK_INFLIGHT: u32 = 7;
const KINDS: usize = 8;

/// Non-zero once a kind was logged.
#[btf_map]
static DIAGNOSED: Array<u32, KINDS> = Array::new();

/// True the first time `kind` is asked for. Not atomic: two CPUs racing may
/// both log it, which costs one extra line, never a flood.
#[inline(always)]
fn first(kind: u32) -> bool {
    let Some(seen) = DIAGNOSED.get_ptr_mut(kind) else {
        return false;
    };
    // SAFETY: a successful lookup of a plain u32.
    unsafe {
        if *seen != 0 {
            return false;
        }
        *seen = 1;
    }
    true
}

/// An offset as logged: -1 when this kernel's BTF lacks the field.
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
    if first(FAULT_VMA) {
        warn!(
            &(),
            "fault: vm_fault.vma unreadable (offset {}); faults go unattributed",
            shown(offset)
        );
    }
}

#[inline(always)]
pub fn fault_vdev(offset: u32) {
    if first(FAULT_VDEV) {
        warn!(
            &(),
            "fault: vm_area_struct.vm_private_data unreadable (offset {}); faults go unattributed",
            shown(offset)
        );
    }
}

#[inline(always)]
pub fn device(e: &Unreadable) {
    if first(DEVICE) {
        warn!(
            &(),
            "vfio device unreadable at step {} of vdev.pdev, pdev.devfn, pdev.bus, bus.number (offset {})",
            e.step,
            shown(e.offset)
        );
    }
}

#[inline(always)]
pub fn order(order: u32) {
    if first(ORDER) {
        info!(&(), "fault of order {}, not 0, 9 or 18", order);
    }
}

#[inline(always)]
pub fn zap_unknown() {
    if first(ZAP_UNKNOWN) {
        info!(
            &(),
            "zap of a vfio mapping not seen mapped or faulted since the start: device unknown"
        );
    }
}

#[inline(always)]
pub fn task_storage() {
    if first(TASK_STORAGE) {
        warn!(
            &(),
            "fault: no task storage for this thread; its faults are lost (inflight_full)"
        );
    }
}

#[inline(always)]
pub fn zap_inflight(limit: u32) {
    if first(ZAP_INFLIGHT) {
        warn!(
            &(),
            "zap in-flight table full ({} entries); zaps are lost (inflight_full)", limit
        );
    }
}

#[inline(always)]
pub fn lock_inflight(limit: u32) {
    if first(LOCK_INFLIGHT) {
        warn!(
            &(),
            "lock wait in-flight table full ({} entries); waits are lost (inflight_full)", limit
        );
    }
}
