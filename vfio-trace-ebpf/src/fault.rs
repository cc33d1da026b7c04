//! Faults: `vfio_pci_mmap_huge_fault(vmf, order)` (6.12+) or
//! `vfio_pci_mmap_fault(vmf)` (6.1-6.11), entry and return, plus the page
//! inserts made inside them where they cannot be inferred:
//! `vmf_insert_pfn{,_pmd,_pud}` (6.10-6.11) and `remap_pfn_range` (6.1).
//!
//! Produces one event per handler invocation: a `FaultInVma` where it fits,
//! after a `VmaEvent` whenever the thread's mapping changed, else a whole
//! `FaultEvent`; and one `TaskEvent` the first time a thread faults. Entry
//! only notes the fault, in an `in_flight` slot when an fexit returns it,
//! else in the task's own storage; everything else is read
//! at return, after the clock is read, so the tracer's work stays out of
//! the latency it reports. Inserts are counted only while the same task is
//! inside a vfio fault, so other drivers' inserts never show; the order-0
//! wrapper is not probed, so nothing counts twice.

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use vfio_trace_common::{counter, vm_fault};

use crate::{
    diag, dma,
    fault_event::{self, Returned},
    in_flight::{self, InFlight},
    kernel::{Mem, now},
    maps::{TASKS, TaskState, count, other_process},
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
    let by_fexit = in_flight::by_fexit();
    if by_fexit && in_flight::usable() {
        // The fexit looks nowhere else: no slot, no event, counted.
        if !in_flight::claim(vmf, order) {
            count(counter::INFLIGHT_FULL);
            diag::fault_in_flight(in_flight::PROBES);
        }
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
    if !by_fexit {
        count(counter::FAULT_ENTRIES);
    }
    st.start_ns = now();
}

/// What a fault's entry left for its return.
pub struct Began {
    pub start_ns: u64,
    pub order: u32,
    /// PTE, PMD and PUD inserts, whole-VMA remaps and their pages.
    pub inserts: [u32; 3],
    pub remaps: u32,
    pub remap_pages: u64,
}

impl Began {
    /// A fault that noted its entry in the task's storage and returned `result`.
    #[inline(always)]
    fn of_task(st: &TaskState, result: u32) -> Self {
        let inserts = if conf!(inserts_from_result) != 0 {
            inferred_inserts(st.order, result)
        } else {
            [st.inserts_pte, st.inserts_pmd, st.inserts_pud]
        };
        Self {
            start_ns: st.start_ns,
            order: st.order,
            inserts,
            remaps: st.remaps,
            remap_pages: st.remap_pages,
        }
    }
}

/// The fault returned `result` to a kretprobe; `end_ns` was read first
/// thing at return.
#[inline(always)]
pub fn ret_kretprobe(end_ns: u64, result: u32) {
    from_task(end_ns, result, None);
}

/// The fault of `vmf` returned `result` to an fexit; `end_ns` was read
/// first. `vmf` is the argument with its BTF type, for loads without
/// helpers; `key` the same pointer as a number, for arithmetic. Where
/// slots are usable its entry is in one or nowhere, so the verifier prunes
/// the task-storage way out of this program there.
#[inline(always)]
pub fn ret_fexit(end_ns: u64, result: u32, vmf: u64, key: u64) {
    if in_flight::usable() {
        if let Some((slot, own)) = in_flight::held(key) {
            from_slot(slot, own, end_ns, result, vmf);
        }
        return;
    }
    from_task(end_ns, result, Some(vmf));
}

/// The return of a fault whose entry is in the task's storage. `vmf` is an
/// fexit's BTF-typed argument; a kretprobe has none, and the one noted at
/// entry is read with helpers.
#[inline(always)]
fn from_task(end_ns: u64, result: u32, vmf: Option<u64>) {
    let Some(st) = TASKS.current(false) else {
        return;
    };
    if st.in_fault == 0 {
        return;
    }
    st.in_fault = 0;
    // Returns count exactly while entries do: while told returns are a
    // kretprobe's, which a kretprobe's are without asking.
    if vmf.is_none() || !in_flight::by_fexit() {
        count(counter::FAULT_RETURNS);
    }
    let (mem, vmf) = match vmf {
        Some(vmf) => (Mem::Btf, vmf),
        None => (Mem::Probe, st.vmf),
    };
    let fault = Returned {
        mem,
        vmf,
        began: Began::of_task(st, result),
        end_ns,
        result,
    };
    fault_event::send(&fault, &mut st.thread, Some(&mut st.dma), true);
}

/// The return of a fault whose entry holds `slot` (`own`: the slot its
/// stack maps to), which is freed once the event is sent.
#[inline(always)]
fn from_slot(slot: &mut InFlight, own: bool, end_ns: u64, result: u32, vmf: u64) {
    let began = Began {
        start_ns: slot.start_ns,
        order: slot.order,
        inserts: inferred_inserts(slot.order, result),
        remaps: 0,
        remap_pages: 0,
    };
    // The slot's thread cache is valid for one thread only; its id is one
    // cheap helper call, where the task's storage takes two.
    if slot.thread.pid_tgid != bpf_get_current_pid_tgid() {
        slot.thread.forget();
    }
    // A thread's DMA state lives in its storage: looked up only while some
    // thread maps DMA.
    let dma = if dma::busy() {
        TASKS.current(false).map(|st| &mut st.dma)
    } else {
        None
    };
    let fault = Returned {
        mem: Mem::Btf,
        vmf,
        began,
        end_ns,
        result,
    };
    // The thread's mapping records follow its own slot's cache: in another
    // slot the fault travels whole.
    fault_event::send(&fault, &mut slot.thread, dma, own);
    in_flight::release(slot);
}

/// `vfio_pin_pages_remote` began (`true`) or returned: faults in between
/// come from a DMA map.
#[inline(always)]
pub fn pinning(on: bool) {
    if let Some(st) = TASKS.current(on) {
        if (st.dma.pinning != 0) != on {
            dma::set_busy(on);
        }
        st.dma.pinning = u32::from(on);
    }
}

/// From 6.12 the handler inserts one entry of the requested order exactly
/// when it maps (`VM_FAULT_NOPAGE` alone), so no insert probe has to run:
/// the PTE, PMD and PUD inserts of a fault of `order` that returned `result`.
#[inline(always)]
pub fn inferred_inserts(order: u32, result: u32) -> [u32; 3] {
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
