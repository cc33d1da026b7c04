//! Maps shared by the probe families, and the two ways out of a program: an
//! event into a ring, or a counted loss. Names are in `vfio_trace_common::maps`.

use core::{
    ffi::c_void,
    intrinsics::{AtomicOrdering, atomic_xadd},
};

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    btf_maps::{Array, ArrayOfMaps, HashMap, LruHashMap, RingBuf, StackTrace},
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_get_smp_processor_id, bpf_ringbuf_query},
    },
    macros::btf_map,
};
use vfio_trace_common::{
    DmaMapEvent, FaultEvent, HoldEvent, LockEvent, SHARED_RING_BYTES, VmaEvent, ZapEvent, counter,
};

use crate::task_storage::TaskStorage;

/// Ring size in the map definitions: the shared ring's; device rings are
/// sized by userspace.
pub const RING_BYTES: usize = SHARED_RING_BYTES as usize;
/// Most devices traced at once.
pub const MAX_DEVICES: usize = 64;
/// Most zaps and lock waits in flight at once (one per task).
pub const MAX_INFLIGHT: usize = 16384;
/// [`MAX_INFLIGHT`] as the diagnostics report it.
#[allow(clippy::cast_possible_truncation, reason = "16384 fits in a u32")]
pub const MAX_INFLIGHT_U32: u32 = MAX_INFLIGHT as u32;

/// One ring buffer per traced device, by slot: an array lookup, which the
/// verifier inlines, where a hash of maps hashed the key at every event.
#[btf_map]
pub static DEVICE_RINGS: ArrayOfMaps<RingBuf<FaultEvent, RING_BYTES>, MAX_DEVICES> =
    ArrayOfMaps::new();

/// Device key to the slot of its ring in [`DEVICE_RINGS`].
#[btf_map]
pub static RING_SLOTS: HashMap<u64, u32, MAX_DEVICES> = HashMap::new();

/// The slot of a device without a ring of its own: out of [`DEVICE_RINGS`]'
/// range, so its events go to [`SHARED_RING`].
pub const NO_RING: u32 = u32::MAX;

/// Events of devices without a ring of their own.
#[btf_map]
pub static SHARED_RING: RingBuf<FaultEvent, RING_BYTES> = RingBuf::new();

/// Events dropped per device because its ring was full.
#[btf_map]
pub static LOST: HashMap<u64, u64, MAX_DEVICES> = HashMap::new();

/// `BPF_F_MMAPABLE`: userspace maps the array and reads it without a syscall.
pub const BPF_F_MMAPABLE: usize = 1 << 10;

/// Losses by cause, and fault entries and returns (`vfio_trace_common::counter`),
/// one row per CPU. Memory-mapped rather than per-CPU: reading a map through
/// the bpf syscall holds the CPU's BPF recursion guard, and a reader preempted
/// there makes every kprobe program on that CPU a recursion miss.
#[btf_map]
pub static COUNTERS: Array<
    u64,
    { (counter::DEFAULT_CPUS * counter::STRIDE) as usize },
    BPF_F_MMAPABLE,
> = Array::new();

/// Devices to trace when `Config::filter_devices` is set.
#[btf_map]
pub static DEVICE_FILTER: HashMap<u64, u8, MAX_DEVICES> = HashMap::new();

/// What a thread is doing, kept in the task itself.
#[repr(C)]
pub struct TaskState {
    /// Fault entry time.
    pub start_ns: u64,
    /// The fault's `struct vm_fault *`, read at return.
    pub vmf: u64,
    pub order: u32,
    /// Non-zero while the thread is inside a vfio fault.
    pub in_fault: u32,
    pub inserts_pte: u32,
    pub inserts_pmd: u32,
    pub inserts_pud: u32,
    pub remaps: u32,
    pub remap_pages: u64,
    /// What the thread's faults repeat.
    pub thread: Thread,
    /// Its DMA maps.
    pub dma: TaskDma,
    /// Non-zero while the thread is in `vfio_pci_dma_buf_move`.
    pub in_move: u32,
    pub move_revoked: u32,
    /// Its `vfio_pci_core_device *` and entry time.
    pub move_vdev: u64,
    pub move_start_ns: u64,
}

/// What a thread's faults nearly always repeat, kept so that a compare
/// stands in for lookups: in its task storage, or in the `in_flight` slot
/// its faults return through, for the thread whose `pid_tgid` it holds.
#[repr(C)]
pub struct Thread {
    /// The thread's `bpf_get_current_pid_tgid`, kept at its first event.
    pub pid_tgid: u64,
    /// Non-zero once the thread's name was sent and `pid_tgid` kept.
    pub named: u32,
    /// The ring slot of `device` (`NO_RING`: the shared ring).
    pub slot: u32,
    /// The `vfio_pci_core_device *` of the thread's last fault and its
    /// device key.
    pub vdev: u64,
    pub device: u64,
    /// The mapping of the thread's last `VmaEvent`, sent to the ring of
    /// `vma.device`; valid when `vma_sent` is non-zero.
    pub vma: VmaEvent,
    pub vma_sent: u32,
    pub vma_slot: u32,
}

impl Thread {
    /// Forgets what another thread kept here: its next event names the
    /// thread and its mapping again.
    #[inline(always)]
    pub fn forget(&mut self) {
        self.named = 0;
        self.vdev = 0;
        self.vma_sent = 0;
    }
}

/// A thread's DMA map in progress, and whether type1 is pinning for it.
#[repr(C)]
pub struct TaskDma {
    /// Non-zero while the thread is in `vfio_pin_pages_remote` (a DMA map).
    pub pinning: u32,
    /// Non-zero while the thread is in a `VFIO_IOMMU_MAP_DMA` ioctl.
    pub in_dma: u32,
    /// The map in progress; its faults, fault time and lookups so far.
    pub map: DmaMapEvent,
}

/// Per-thread fault state.
#[btf_map]
pub static TASKS: TaskStorage<TaskState> = TaskStorage::new();

/// `vfio_pci_core_device *` to device key: the device is read from the
/// kernel once, not at every fault.
#[btf_map]
pub static VDEVS: LruHashMap<u64, u64, 1024> = LruHashMap::new();

/// Zaps in flight, by thread id.
#[btf_map]
pub static ZAP_INFLIGHT: HashMap<u32, ZapEvent, MAX_INFLIGHT> = HashMap::new();

/// Contended `memory_lock` acquisitions in flight, by thread id.
#[btf_map]
pub static LOCK_INFLIGHT: HashMap<u32, LockEvent, MAX_INFLIGHT> = HashMap::new();

/// Finished zaps whose writer still holds `memory_lock`, by thread id.
/// Cleared when the thread enters a function that takes the lock, so a
/// stale hold is never closed by an unrelated later call.
#[btf_map]
pub static HOLDS: LruHashMap<u32, HoldEvent, 1024> = LruHashMap::new();

/// vfio address spaces (`address_space *`) to device key, learned at mmap and fault.
#[btf_map]
pub static MAPPINGS: LruHashMap<u64, u64, 1024> = LruHashMap::new();

/// `&vdev->memory_lock` to device key, learned at mmap and fault.
#[btf_map]
pub static LOCKS: LruHashMap<u64, u64, 1024> = LruHashMap::new();

/// Kernel stacks of zaps; userspace names the cause from them.
#[btf_map]
pub static STACKS: StackTrace<1024> = StackTrace::new();

/// True when tracing is restricted to another process
/// (`Config::filter_pid`). The current pid is asked for only then.
#[inline(always)]
pub fn other_process() -> bool {
    let want = conf!(filter_pid);
    want != 0 && want != (bpf_get_current_pid_tgid() >> 32) as u32
}

/// True when tracing is restricted to other devices.
#[inline(always)]
pub fn filtered_out(filter_devices: u32, device: u64) -> bool {
    filter_devices != 0 && DEVICE_FILTER.get_ptr(device).is_none()
}

/// Adds one to this CPU's `COUNTERS` slot. Atomic: a tracepoint program may
/// interrupt a kprobe program on the same CPU.
#[inline(always)]
pub fn count(which: u32) {
    // SAFETY: a helper without arguments.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    if let Some(n) = COUNTERS.get_ptr_mut(cpu * counter::STRIDE + which) {
        add_one(n);
    }
}

/// An atomic add (`BPF_ATOMIC`): the BPF target lacks `AtomicU64::fetch_add`.
#[inline(always)]
fn add_one(n: *mut u64) {
    // SAFETY: `n` comes from a successful map lookup: valid and aligned.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(n, 1) };
}

/// The slot of `device`'s ring, or [`NO_RING`].
#[inline(always)]
pub fn ring_slot(device: u64) -> u32 {
    // SAFETY: a successful lookup of a plain u32.
    RING_SLOTS
        .get_ptr(device)
        .map_or(NO_RING, |s| unsafe { *s })
}

/// Sends an event to its device's ring, or to the shared ring, counting drops.
#[inline(always)]
pub fn emit<T: Copy + 'static>(device: u64, event: &T) {
    let _ = emit_to(ring_slot(device), device, event);
}

/// As [`emit`], with the device's ring slot already known; false when the
/// ring was full (the loss is counted).
#[inline(always)]
pub fn emit_to<T: Copy + 'static>(slot: u32, device: u64, event: &T) -> bool {
    let sent = match DEVICE_RINGS.get(slot) {
        Some(ring) => send(ring, event, conf!(wake_bytes)),
        None => send(&SHARED_RING, event, SHARED_WAKE_BYTES),
    };
    if !sent {
        count(counter::RING_FULL);
        match LOST.get_ptr_mut(device) {
            Some(n) => add_one(n),
            None => {
                let _ = LOST.insert(device, 1u64, 0);
            }
        }
    }
    sent
}

/// The shared ring's wake-up mark: a quarter of it, as `Config::wake_bytes`
/// is of a device ring.
#[allow(clippy::cast_possible_truncation, reason = "1 MiB / 4 fits in a u32")]
const SHARED_WAKE_BYTES: u32 = (RING_BYTES / 4) as u32;

/// Reserves room in `ring`, writes `event` there and submits it. The reader
/// is woken by the record that takes the ring past a multiple of `wake`
/// bytes, and with `Config::wake_past_mark` by every record past the first:
/// waking it per event would schedule the collector inside every fault, and
/// waking it for every record past the mark costs an interrupt per fault
/// while a collector that yields to the workload lets the ring fill. Its
/// timer drains the rest.
#[inline(always)]
fn send<T: Copy + 'static>(ring: &RingBuf<FaultEvent, RING_BYTES>, event: &T, wake: u32) -> bool {
    let Some(mut entry) = ring.reserve_untyped::<T>(0) else {
        return false;
    };
    entry.write(*event);
    let map = core::ptr::from_ref(ring).cast_mut().cast::<c_void>();
    // SAFETY: a query of a ring map's positions; no memory is touched.
    // The reserved record is counted: it is what may cross the mark.
    let avail = unsafe { bpf_ringbuf_query(map, u64::from(BPF_RB_AVAIL_DATA)) };
    let flags = wake_flags(avail, record_bytes::<T>(), wake, conf!(wake_past_mark) != 0);
    entry.submit(u64::from(flags));
    true
}

/// Bytes a record of `T` takes in a ring: its header, rounded up to 8.
#[inline(always)]
const fn record_bytes<T>() -> u64 {
    ((size_of::<T>() + 8 + 7) & !7) as u64
}

/// Wakes the reader when the record just reserved (`record` bytes, the
/// last of `avail`) crossed a multiple of `wake_bytes`, or, with
/// `past_mark`, lies anywhere past the first; `wake_bytes` 0 wakes it every
/// time. `wake_bytes` is a power of two (a quarter of a ring), so two
/// positions lie on either side of a multiple exactly when they differ in a
/// bit at or above it: no division, which the JIT emits as one per call.
#[inline(always)]
fn wake_flags(avail: u64, record: u64, wake_bytes: u32, past_mark: bool) -> u32 {
    let wake = u64::from(wake_bytes);
    if wake == 0 || (past_mark && avail >= wake) || avail ^ avail.saturating_sub(record) >= wake {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}
