//! The programs' counters, read through a shared memory mapping of their
//! `BPF_F_MMAPABLE` array.
//!
//! Reading a map with the bpf syscall raises the CPU's BPF recursion guard
//! (`bpf_prog_active`) and only disables migration. On a preemptible kernel
//! a reader preempted there makes every kprobe program that then runs on its
//! CPU a recursion miss: a scrape would cost the events it reports on.
//! A load from mapped memory holds no guard.

use std::{
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use aya::maps::MapData;
use vfio_trace_common::counter;

/// CPU rows the map needs: one per possible CPU.
pub fn rows() -> u32 {
    aya::util::nr_cpus()
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(counter::DEFAULT_CPUS)
        .max(1)
}

/// A `BPF_F_MMAPABLE` array of u64 words, mapped read-only: the counters,
/// and the diagnostics (`probe::diagnostics`).
pub struct Mapped {
    base: NonNull<AtomicU64>,
    len: usize,
    words: usize,
}

// SAFETY: the mapping is shared kernel memory read only through atomics.
unsafe impl Send for Mapped {}
// SAFETY: as above; nothing is written through it.
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Maps the counters: `map` holds `rows` × `STRIDE` of them.
    pub fn new(map: &MapData, rows: u32) -> std::io::Result<Self> {
        Self::words(map, rows as usize * counter::STRIDE as usize)
    }

    /// Maps the first `words` u64 of `map`, an array created `BPF_F_MMAPABLE`.
    pub fn words(map: &MapData, words: usize) -> std::io::Result<Self> {
        let bytes = words * size_of::<u64>();
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let len = bytes.div_ceil(page) * page;
        let fd = map.fd().as_fd().as_raw_fd();
        // SAFETY: a fresh read-only shared mapping of the map's fd; the kernel
        // checks `len` against the array's size.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base =
            NonNull::new(ptr.cast::<AtomicU64>()).ok_or_else(std::io::Error::last_os_error)?;
        Ok(Self { base, len, words })
    }

    /// The word at `at`; 0 past the end.
    #[must_use]
    pub fn word(&self, at: usize) -> u64 {
        if at >= self.words {
            return 0;
        }
        // SAFETY: `at` lies inside the mapping; the programs write these
        // words with atomic adds or plain aligned stores.
        unsafe { self.base.add(at).as_ref() }.load(Ordering::Relaxed)
    }

    /// Every counter summed over the CPUs.
    #[must_use]
    pub fn read(&self) -> [u64; counter::COUNT as usize] {
        let mut out = [0; counter::COUNT as usize];
        let rows = self.words / counter::STRIDE as usize;
        for row in 0..rows {
            for (i, slot) in out.iter_mut().enumerate() {
                *slot += self.word(row * counter::STRIDE as usize + i);
            }
        }
        out
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
