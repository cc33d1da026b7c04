//! mmap of a BAR at a chosen alignment, and the reads that fault it in.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr;

use thiserror::Error;

use super::layout::{place, reservation_len};

#[derive(Debug, Error)]
pub enum MapError {
    #[error("{what} of {len} bytes failed: {source}")]
    Os {
        what: &'static str,
        len: u64,
        source: io::Error,
    },
    #[error("size {0} does not fit this machine's address space")]
    TooBig(u64),
}

fn last(what: &'static str, len: u64) -> MapError {
    MapError::Os {
        what,
        len,
        source: io::Error::last_os_error(),
    }
}

/// A live mapping of `len` bytes of a BAR. Unmapped on drop.
pub struct BarMapping {
    addr: *mut libc::c_void,
    len: usize,
}

impl BarMapping {
    /// Maps `len` bytes of the device fd at `offset` (the BAR's region offset, so
    /// BAR offset 0). With `align`, the address is aligned to exactly `align`: a
    /// `PROT_NONE` reservation is made first, the device is mapped with `MAP_FIXED`
    /// inside it and the rest of the reservation is given back.
    pub fn map(file: &File, offset: u64, len: u64, align: Option<u64>) -> Result<Self, MapError> {
        let size = usize::try_from(len).map_err(|_| MapError::TooBig(len))?;
        let off = libc::off_t::try_from(offset).map_err(|_| MapError::TooBig(offset))?;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let Some(align) = align else {
            // SAFETY: a fresh mapping chosen by the kernel aliases nothing.
            let addr = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    size,
                    prot,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    off,
                )
            };
            if addr == libc::MAP_FAILED {
                return Err(last("mmap of the BAR", len));
            }
            return Ok(Self { addr, len: size });
        };
        let resv_bytes = reservation_len(len, align);
        let resv_len = usize::try_from(resv_bytes).map_err(|_| MapError::TooBig(resv_bytes))?;
        // SAFETY: an inaccessible anonymous reservation aliases nothing.
        let resv = unsafe {
            libc::mmap(
                ptr::null_mut(),
                resv_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if resv == libc::MAP_FAILED {
            return Err(last("address reservation", resv_bytes));
        }
        let base = resv as usize;
        // place() stays inside the reservation, so these fit in usize.
        #[allow(
            clippy::cast_possible_truncation,
            reason = "an address inside the reservation"
        )]
        let at = place(base as u64, align) as usize;
        // SAFETY: [at, at + size) lies inside the reservation we own.
        let addr = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                size,
                prot,
                libc::MAP_SHARED | libc::MAP_FIXED,
                file.as_raw_fd(),
                off,
            )
        };
        if addr == libc::MAP_FAILED {
            let err = last("mmap of the BAR", len);
            // SAFETY: the whole reservation is ours and unused.
            unsafe { libc::munmap(resv, resv_len) };
            return Err(err);
        }
        let head = at - base;
        let tail = base + resv_len - (at + size);
        // SAFETY: head and tail are the unused ends of our reservation.
        unsafe {
            if head > 0 {
                libc::munmap(resv, head);
            }
            if tail > 0 {
                libc::munmap((at + size) as *mut libc::c_void, tail);
            }
        }
        Ok(Self { addr, len: size })
    }

    pub fn addr(&self) -> u64 {
        self.addr as u64
    }

    /// Reads one u32 at each `stride` step from the start; returns the reads made.
    /// Memory decode must be on, or the first read raises SIGBUS.
    #[allow(
        clippy::cast_ptr_alignment,
        reason = "the mapping is page-aligned and every offset a multiple of 4096"
    )]
    pub fn touch(&self, stride: u64, bytes: u64) -> u64 {
        let stride = usize::try_from(stride).unwrap_or(usize::MAX);
        let end = usize::try_from(bytes).map_or(self.len, |b| b.min(self.len));
        let mut touches = 0;
        let mut off = 0;
        while off < end {
            // SAFETY: off < len and off is a multiple of 4096, so the word lies
            // inside our mapping; a volatile read is never elided or merged.
            unsafe { ptr::read_volatile(self.addr.cast::<u8>().add(off).cast::<u32>()) };
            touches += 1;
            off = off.saturating_add(stride);
        }
        touches
    }

    /// Unmaps now, reporting failure (drop would have to swallow it).
    pub fn unmap(self) -> Result<(), MapError> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the mapping is ours and nothing refers to it after this.
        if unsafe { libc::munmap(this.addr, this.len) } != 0 {
            return Err(last("munmap", this.len as u64));
        }
        Ok(())
    }
}

impl Drop for BarMapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing refers to it after this.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}
