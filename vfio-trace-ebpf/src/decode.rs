//! Memory decode written on: `vfio_basic_config_write(vdev, pos, count,
//! perm, offset, val)` entry, when the write covers the command register
//! and sets `PCI_COMMAND_MEMORY`. Rare (a guest's BAR sizing, a reset's
//! restore), so the device is read from the kernel, not cached.

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use vfio_trace_common::{DecodeOnEvent, PCI_COMMAND, PCI_COMMAND_MEMORY};

use crate::{
    kernel::{device_of, now, pid_tid},
    maps::{emit, filtered_out},
};

/// A config write of `count` bytes at `pos` with value `val` (little
/// endian, its first byte at `pos`).
#[inline(always)]
pub fn config_write(vdev: u64, pos: u32, count: u32, val: u32) {
    if pos > PCI_COMMAND || pos.saturating_add(count) <= PCI_COMMAND {
        return;
    }
    let command = val >> ((PCI_COMMAND - pos) * 8);
    if command & PCI_COMMAND_MEMORY == 0 {
        return;
    }
    let mut ev = DecodeOnEvent::zeroed();
    ev.start_ns = now();
    if let Some(device) = device_of(vdev) {
        ev.device = device;
    }
    if filtered_out(conf!(filter_devices), ev.device) {
        return;
    }
    (ev.pid, ev.tid) = pid_tid(bpf_get_current_pid_tgid());
    emit(ev.device, &ev);
}
