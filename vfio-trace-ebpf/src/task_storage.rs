//! A per-task storage map (`BPF_MAP_TYPE_TASK_STORAGE`, 5.11+), which
//! aya-ebpf 0.2 does not define: per-thread state that needs no hash update,
//! no delete and frees itself when the task exits.
//!
//! The layout follows aya-ebpf's BTF map definitions (type, key, value,
//! `max_entries`, `map_flags` as pointers to arrays whose lengths carry the
//! numbers), which the loader reads from BTF.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_LOCAL_STORAGE_GET_F_CREATE, bpf_map_type},
    helpers::generated::{bpf_get_current_task_btf, bpf_task_storage_get},
};

#[repr(C)]
pub struct TaskStorage<T> {
    r#type: *const [i32; bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE as usize],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
}

// SAFETY: the fields are placeholders the loader patches; never dereferenced.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    pub const fn new() -> Self {
        Self {
            r#type: core::ptr::null(),
            key: core::ptr::null(),
            value: core::ptr::null(),
            max_entries: core::ptr::null(),
            map_flags: core::ptr::null(),
        }
    }

    /// The current task's value, created zeroed when `create` and absent.
    /// `None` when absent, or when the kernel could not allocate or lock it.
    #[inline(always)]
    #[allow(
        clippy::mut_from_ref,
        reason = "the value lives in the task, not in the map: one task, one program run at a time"
    )]
    pub fn current(&self, create: bool) -> Option<&mut T> {
        let flags = if create {
            u64::from(BPF_LOCAL_STORAGE_GET_F_CREATE)
        } else {
            0
        };
        // SAFETY: the helper takes the map's address and a trusted task
        // pointer; it returns NULL or a pointer to this task's value, which
        // stays valid for the program's run.
        unsafe {
            let task = bpf_get_current_task_btf();
            let map = core::ptr::from_ref(self).cast_mut().cast::<c_void>();
            bpf_task_storage_get(map, task, core::ptr::null_mut(), flags)
                .cast::<T>()
                .as_mut()
        }
    }
}
