//! Maps shared by the probe families. Names are in `vfio_trace_common::maps`.

use aya_ebpf::{
    btf_maps::{HashMap, HashOfMaps, RingBuf},
    macros::btf_map,
};
use vfio_trace_common::FaultEvent;

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

/// Sends an event to its device's ring, or to the shared ring, counting drops.
#[inline(always)]
pub fn emit(event: &FaultEvent) {
    let device = event.device;
    // SAFETY: inner maps are only replaced by userspace, never freed under us.
    let sent = match unsafe { DEVICE_RINGS.get(&device) } {
        Some(ring) => ring.output(event, 0),
        None => SHARED_RING.output(event, 0),
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
