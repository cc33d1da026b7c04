//! Faults in flight whose return is an fexit, kept in an array slot chosen
//! by the faulting thread's kernel stack and tagged with the fault's
//! `struct vm_fault *`, which lives on that stack. The fexit program gets
//! the same pointer, so entry and return meet with inlined array lookups
//! instead of task-storage helper calls. The slot also keeps the thread
//! cache of the last thread that returned through it, which the return
//! uses, checked against the thread's id, while it holds the slot.
//!
//! A fault whose own slot is held by another thread's fault takes the next
//! free one of [`PROBES`]; with all held, it is a counted loss. Only a
//! fault in its own slot may travel as a `FaultInVma`: a thread's mapping
//! records follow the cache of its own slot. A slot whose return never ran
//! (the kernel skipped the fexit, and counts it) is stale: the next fault
//! of the same stack frame carries the same tag and takes it over. Two
//! threads whose stacks share a slot take turns with its cache, and each
//! turn sends the thread's name and mapping again.

use core::intrinsics::{AtomicOrdering, atomic_cxchg, atomic_xchg};

use aya_ebpf::{btf_maps::Array, macros::btf_map};
use vfio_trace_common::fault_return;

use crate::maps::Thread;

/// Slots: a power of two. Two threads meet in one only by hash collision.
const SLOTS: u32 = 4096;

/// Slots an entry tries, its own and the next ones.
pub const PROBES: u32 = 4;

/// A fault in flight, as its entry left it for an fexit return.
#[repr(C)]
pub struct InFlight {
    /// The fault's `struct vm_fault *` as a number; 0 when the slot is free.
    vmf: u64,
    pub start_ns: u64,
    pub order: u32,
    pad: u32,
    /// The cache of the thread that last returned through this slot.
    pub thread: Thread,
}

#[btf_map]
static IN_FLIGHT: Array<InFlight, { SLOTS as usize }> = Array::new();

/// How fault returns are seen (`vfio_trace_common::fault_return`), written
/// by userspace once the return probe is attached and before any entry is:
/// not in the frozen `CONFIG`, since a trampoline may fall back to a kprobe
/// after the programs load.
#[btf_map]
static FAULT_RETURN: Array<u32, 1> = Array::new();

/// True when the fault return is an fexit, which reads the slots; false
/// when it is a kretprobe, which has no `vmf` and reads only the storage.
#[inline(always)]
pub fn by_fexit() -> bool {
    // SAFETY: a successful lookup of a plain u32.
    FAULT_RETURN
        .get_ptr(0)
        .is_some_and(|m| unsafe { core::ptr::read_volatile(m) } == fault_return::FEXIT)
}

/// True where entries may use slots: where a fault's inserts follow from
/// its result, nothing but the return needs what the entry noted, while
/// insert probes count into the task's storage.
#[inline(always)]
pub fn usable() -> bool {
    conf!(inserts_from_result) != 0
}

/// The slot of the stack `vmf` lies on: kernel stacks are 16 KiB apart at
/// least, so the bits above 14 tell them apart; a multiply spreads them.
#[inline(always)]
fn slot_of(vmf: u64) -> u32 {
    #[allow(
        clippy::cast_possible_truncation,
        reason = "the top 12 bits of the product index 4096 slots"
    )]
    let i = ((vmf >> 14).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as u32;
    i & (SLOTS - 1)
}

/// Claims a slot for the fault of `vmf`, of `order`, and notes its start,
/// read last; false when its own and the next slots are all held by other
/// threads' faults.
#[inline(always)]
pub fn claim(vmf: u64, order: u32) -> bool {
    let home = slot_of(vmf);
    for k in 0..PROBES {
        let Some(slot) = IN_FLIGHT.get_ptr_mut((home + k) & (SLOTS - 1)) else {
            return false;
        };
        // SAFETY: `slot` comes from a successful array lookup: valid and aligned.
        unsafe {
            let tag = &raw mut (*slot).vmf;
            let (held_by, free) =
                atomic_cxchg::<u64, { AtomicOrdering::SeqCst }, { AtomicOrdering::SeqCst }>(
                    tag, 0, vmf,
                );
            if free || held_by == vmf {
                core::ptr::write_volatile(&raw mut (*slot).order, order);
                core::ptr::write_volatile(&raw mut (*slot).start_ns, crate::kernel::now());
                return true;
            }
        }
    }
    false
}

/// The slot the entry of the fault of `vmf` holds, if it holds one, and
/// whether it is the fault's own. It stays held, its cache the caller's,
/// until [`release`].
#[inline(always)]
#[allow(
    clippy::mut_from_ref,
    reason = "the slot is this fault's alone until it is released"
)]
pub fn held(vmf: u64) -> Option<(&'static mut InFlight, bool)> {
    let home = slot_of(vmf);
    for k in 0..PROBES {
        let slot = IN_FLIGHT.get_ptr_mut((home + k) & (SLOTS - 1))?;
        // SAFETY: `slot` comes from a successful array lookup: valid and
        // aligned; only the fault whose tag it carries uses it.
        unsafe {
            if core::ptr::read_volatile(&raw const (*slot).vmf) == vmf {
                return Some((&mut *slot, k == 0));
            }
        }
    }
    None
}

/// Frees a slot [`held`] returned, once its fault's event is sent.
#[inline(always)]
pub fn release(slot: &mut InFlight) {
    // An exchange, not a store: the next owner sees every write made
    // while it was held.
    // SAFETY: a field of a valid map value.
    unsafe { atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(&raw mut slot.vmf, 0) };
}
