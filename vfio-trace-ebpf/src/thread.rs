//! A thread's identity, asked of the kernel once per thread: its first
//! event also sends its name, and later ones reuse what its cache kept.

use aya_ebpf::helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid};
use vfio_trace_common::TaskEvent;

use crate::{
    kernel::pid_tid,
    maps::{Thread, emit},
};

/// The current thread's `pid_tgid`. The first call for a thread reads it and
/// sends a `TaskEvent` naming the thread to `device`'s ring.
#[inline(always)]
pub fn pid_tgid(st: &mut Thread, device: u64) -> u64 {
    if st.named == 0 {
        st.pid_tgid = bpf_get_current_pid_tgid();
        let mut task = TaskEvent::zeroed();
        (task.pid, task.tid) = pid_tid(st.pid_tgid);
        task.comm = bpf_get_current_comm().unwrap_or_default();
        emit(device, &task);
        st.named = 1;
    }
    st.pid_tgid
}
