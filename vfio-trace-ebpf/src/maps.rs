//! Maps shared by the probe families. Names are in `vfio_trace_common::maps`.

use aya_ebpf::{
    btf_maps::{HashMap, HashOfMaps, LruHashMap, RingBuf, StackTrace},
    macros::btf_map,
};
use vfio_trace_common::{FaultEvent, HoldEvent, LockEvent, ZapEvent};

/// Ring size per device; userspace may size each inner ring differently.
pub const RING_BYTES: usize = 1 << 22;
/// Most devices traced at once.
pub const MAX_DEVICES: usize = 64;
/// Most faults in flight at once (one per task).
pub const MAX_INFLIGHT: usize = 16384;

/// One ring buffer per traced device, keyed by device key.
#[btf_map]
pub static DEVICE_RINGS: HashOfMaps<u32, RingBuf<FaultEvent, RING_BYTES>, MAX_DEVICES> =
    HashOfMaps::new();

/// Events of devices without a ring of their own.
#[btf_map]
pub static SHARED_RING: RingBuf<FaultEvent, RING_BYTES> = RingBuf::new();

/// Events dropped per device because its ring was full.
#[btf_map]
pub static LOST: HashMap<u32, u64, MAX_DEVICES> = HashMap::new();

/// Devices to trace when `Config::filter_devices` is set.
#[btf_map]
pub static DEVICE_FILTER: HashMap<u32, u8, MAX_DEVICES> = HashMap::new();

/// Faults in flight, by thread id: entry fills them, inserts count into them,
/// return emits them.
#[btf_map]
pub static INFLIGHT: HashMap<u32, FaultEvent, MAX_INFLIGHT> = HashMap::new();

/// Zaps in flight, by thread id.
#[btf_map]
pub static ZAP_INFLIGHT: HashMap<u32, ZapEvent, MAX_INFLIGHT> = HashMap::new();

/// Contended `memory_lock` acquisitions in flight, by thread id.
#[btf_map]
pub static LOCK_INFLIGHT: HashMap<u32, LockEvent, MAX_INFLIGHT> = HashMap::new();

/// Finished zaps whose writer still holds `memory_lock`, by thread id.
#[btf_map]
pub static HOLDS: LruHashMap<u32, HoldEvent, 1024> = LruHashMap::new();

/// vfio address spaces (`address_space *`) to device key, learned at mmap and fault.
#[btf_map]
pub static MAPPINGS: LruHashMap<u64, u32, 1024> = LruHashMap::new();

/// `&vdev->memory_lock` to device key, learned at mmap and fault.
#[btf_map]
pub static LOCKS: LruHashMap<u64, u32, 1024> = LruHashMap::new();

/// Kernel stacks of zaps; userspace names the cause from them.
#[btf_map]
pub static STACKS: StackTrace<1024> = StackTrace::new();

/// True when tracing is restricted to other devices.
#[inline(always)]
pub fn filtered_out(filter_devices: u32, device: u32) -> bool {
    filter_devices != 0 && DEVICE_FILTER.get_ptr(device).is_none()
}

/// Sends an event to its device's ring, or to the shared ring, counting drops.
#[inline(always)]
pub fn emit<T: 'static>(device: u32, event: &T) {
    // SAFETY: inner maps are only replaced by userspace, never freed under us.
    let sent = match unsafe { DEVICE_RINGS.get(&device) } {
        Some(ring) => ring.output_untyped::<T>(event, 0),
        None => SHARED_RING.output_untyped::<T>(event, 0),
    };
    if sent.is_err() {
        match LOST.get_ptr_mut(device) {
            // SAFETY: the pointer comes from a successful lookup.
            Some(n) => unsafe { *n += 1 },
            None => {
                let _ = LOST.insert(device, 1u64, 0);
            }
        }
    }
}
