//! `vfio_pci_dma_buf_move(vdev, revoked)` (6.19+), entry and return: the
//! device's dma-buf exports revoked beside a zap, or restored when memory
//! decode comes back on. One `DmaBufMoveEvent` per call.

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use vfio_trace_common::{DmaBufMoveEvent, counter};

use crate::{
    diag,
    kernel::{device_of, now, pid_tid},
    maps::{TASKS, count, emit, filtered_out},
};

#[inline(always)]
pub fn entry(vdev: u64, revoked: bool) {
    let Some(st) = TASKS.current(true) else {
        count(counter::INFLIGHT_FULL);
        diag::task_storage();
        return;
    };
    st.move_vdev = vdev;
    st.move_revoked = u32::from(revoked);
    st.in_move = 1;
    st.move_start_ns = now();
}

/// `end_ns` was read first thing at return.
#[inline(always)]
pub fn ret(end_ns: u64) {
    let Some(st) = TASKS.current(false) else {
        return;
    };
    if st.in_move == 0 {
        return;
    }
    st.in_move = 0;
    let mut ev = DmaBufMoveEvent::zeroed();
    if let Some(device) = device_of(st.move_vdev) {
        ev.device = device;
    }
    if filtered_out(conf!(filter_devices), ev.device) {
        return;
    }
    (ev.pid, ev.tid) = pid_tid(bpf_get_current_pid_tgid());
    ev.revoked = st.move_revoked;
    ev.start_ns = st.move_start_ns;
    ev.latency_ns = end_ns.wrapping_sub(st.move_start_ns);
    emit(ev.device, &ev);
}
