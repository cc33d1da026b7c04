//! Reads of kernel structs at offsets from `Config`. Every read is a
//! `bpf_probe_read_kernel`; a missing offset or failed read gives `None`.

use core::{ffi::c_void, mem::MaybeUninit};

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel,
    generated,
};
use vfio_trace_common::{MISSING, TASK_COMM_LEN, device_key};

use crate::{
    diag::{self, Unreadable},
    maps::{LOCKS, MAPPINGS, VDEVS},
};

/// Reads a `T` at `base + offset`.
#[inline(always)]
pub fn read<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == MISSING {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address and fails instead of faulting.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T).ok() }
}

/// Reads a `T` at `base + offset` with a plain load, where `base` is a
/// BTF-typed pointer: an fentry/fexit argument, or a pointer field read
/// through one with this. The verifier checks the access against BTF (the
/// offset is a constant to it, from the frozen `CONFIG`) and turns it into a
/// load that cannot fault, so no helper is called.
#[inline(always)]
pub fn read_btf<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == MISSING {
        return None;
    }
    // SAFETY: see above; volatile keeps the load exactly `T` wide, as BTF's field is.
    Some(unsafe { core::ptr::read_volatile((base + u64::from(offset)) as *const T) })
}

/// How a program reads the structs it is handed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mem {
    /// `bpf_probe_read_kernel`: a kprobe's arguments are plain numbers.
    Probe,
    /// [`read_btf`]: fentry/fexit arguments carry their BTF type.
    Btf,
}

/// Most bytes [`Mem::fields`] reads with one helper call.
const SPAN: u32 = 64;

impl Mem {
    #[inline(always)]
    fn read<T>(self, base: u64, offset: u32) -> Option<T> {
        match self {
            Mem::Probe => read(base, offset),
            Mem::Btf => read_btf(base, offset),
        }
    }

    /// Fields of the struct at `base`, given as (offset, size 4 or 8); a
    /// missing offset or a failed read gives 0, never an `Option`: LLVM
    /// spills a `None`'s undefined payload, and the verifier refuses to
    /// read an uninitialized register. Through a kprobe,
    /// fields that lie within 64 bytes of each other come with one helper
    /// call, as a VMA's `vm_start` and `vm_end` do; through a BTF pointer
    /// each is a load.
    #[inline(always)]
    pub fn fields<const N: usize>(self, base: u64, fields: [(u32, u32); N]) -> [u64; N] {
        let mut out = [0; N];
        if base == 0 {
            return out;
        }
        let (mut lo, mut hi) = (u32::MAX, 0);
        for &(offset, size) in &fields {
            if offset != MISSING {
                lo = lo.min(offset);
                hi = hi.max(offset + size);
            }
        }
        if self == Mem::Btf || lo > hi || hi - lo > SPAN {
            for (o, &(offset, size)) in out.iter_mut().zip(&fields) {
                *o = if size == 4 {
                    self.read::<u32>(base, offset).map_or(0, u64::from)
                } else {
                    self.read::<u64>(base, offset).unwrap_or(0)
                };
            }
            return out;
        }
        let mut buf = MaybeUninit::<[u64; 8]>::uninit();
        // SAFETY: reads `hi - lo` (at most 64) bytes into the 64-byte buffer;
        // the helper checks the source and fails instead of faulting.
        let failed = unsafe {
            generated::bpf_probe_read_kernel(
                buf.as_mut_ptr().cast::<c_void>(),
                hi - lo,
                (base + u64::from(lo)) as *const c_void,
            )
        };
        if failed != 0 {
            return out;
        }
        for (o, &(offset, size)) in out.iter_mut().zip(&fields) {
            if offset == MISSING {
                continue;
            }
            // SAFETY: `offset - lo + size <= hi - lo`: inside the bytes read.
            *o = unsafe {
                let at = buf.as_ptr().cast::<u8>().add((offset - lo) as usize);
                if size == 4 {
                    u64::from(core::ptr::read_unaligned(at.cast::<u32>()))
                } else {
                    core::ptr::read_unaligned(at.cast::<u64>())
                }
            };
        }
        out
    }
}

/// A read of `device_of_vdev`; on failure, which one.
#[inline(always)]
fn step<T>(base: u64, offset: u32, step: u32) -> Result<T, Unreadable> {
    read::<T>(base, offset).ok_or(Unreadable { step, offset })
}

/// The PCI address of a `vfio_pci_core_device`, as a device key; or which
/// read failed, for a diagnostic.
#[inline(always)]
pub fn device_of_vdev(vdev: u64) -> Result<u64, Unreadable> {
    let pdev = step::<u64>(vdev, conf!(vdev_pdev), 1)?;
    let devfn = step::<u32>(pdev, conf!(pdev_devfn), 2)?;
    let bus = step::<u64>(pdev, conf!(pdev_bus), 3)?;
    let number = step::<u8>(bus, conf!(bus_number), 4)?;
    // Domain: generic pci_bus.domain_nr where it exists, x86 keeps it in sysdata.
    let domain = match read::<i32>(bus, conf!(bus_domain_nr)) {
        Some(d) => d.cast_unsigned(),
        None => read::<u64>(bus, conf!(bus_sysdata))
            .and_then(|sysdata| read::<i32>(sysdata, conf!(sysdata_domain)))
            .map_or(0, i32::cast_unsigned),
    };
    #[allow(
        clippy::cast_possible_truncation,
        reason = "devfn is 8 bits (slot and function) kept in an unsigned int"
    )]
    let devfn = devfn as u8;
    Ok(device_key(domain, number, devfn))
}

/// Remembers the device behind a vfio VMA's address space and its
/// `memory_lock`, so zaps and lock contention can be attributed. A lookup
/// first: the maps are written once per device, not once per fault.
#[inline(always)]
pub fn learn(vma: u64, vdev: u64, device: u64) {
    if let Some(mapping) =
        read::<u64>(vma, conf!(vma_file)).and_then(|file| read::<u64>(file, conf!(file_mapping)))
        && MAPPINGS.get_ptr(mapping).is_none()
    {
        let _ = MAPPINGS.insert(mapping, device, 0);
    }
    if conf!(vdev_memory_lock) != MISSING {
        let lock = vdev + u64::from(conf!(vdev_memory_lock));
        if LOCKS.get_ptr(lock).is_none() {
            let _ = LOCKS.insert(lock, device, 0);
        }
    }
}

/// The device of a VMA's vfio device, from the cache when it was seen before;
/// the first sight also learns its address space and `memory_lock`.
#[inline(always)]
pub fn device_of_vma(vma: u64, vdev: u64) -> Option<u64> {
    if let Some(device) = VDEVS.get_ptr(vdev) {
        // SAFETY: a successful lookup of a plain u64.
        return Some(unsafe { *device });
    }
    // Not cached on failure, so this repeats at every fault: diag logs it once.
    let device = device_of_vdev(vdev).map_err(|e| diag::device(&e)).ok()?;
    learn(vma, vdev, device);
    let _ = VDEVS.insert(vdev, device, 0);
    Some(device)
}

/// The device of a `vfio_pci_core_device *`, from the cache when a fault or
/// mmap put it there; else read, not cached: caching is `device_of_vma`'s,
/// which also learns the device's address space and lock on first sight.
#[inline(always)]
pub fn device_of(vdev: u64) -> Option<u64> {
    if let Some(device) = VDEVS.get_ptr(vdev) {
        // SAFETY: a successful lookup of a plain u64.
        return Some(unsafe { *device });
    }
    device_of_vdev(vdev).map_err(|e| diag::device(&e)).ok()
}

/// The current task, as zap and lock events record it.
pub struct Task {
    pub pid: u32,
    pub tid: u32,
    pub comm: [u8; TASK_COMM_LEN],
    pub now: u64,
}

#[inline(always)]
pub fn task() -> Task {
    let (pid, tid) = pid_tid(bpf_get_current_pid_tgid());
    Task {
        pid,
        tid,
        comm: bpf_get_current_comm().unwrap_or_default(),
        now: now(),
    }
}

/// Thread id of the current task: the key of in-flight events.
#[inline(always)]
pub fn tid() -> u32 {
    low32(bpf_get_current_pid_tgid())
}

/// Process and thread id of a `bpf_get_current_pid_tgid` value.
#[inline(always)]
pub const fn pid_tid(pid_tgid: u64) -> (u32, u32) {
    ((pid_tgid >> 32) as u32, low32(pid_tgid))
}

/// The low half of a 64-bit value: a C `unsigned int` argument or return
/// value in its register, or the thread id in `pid_tgid`.
#[inline(always)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "the upper half is not part of the value"
)]
pub const fn low32(reg: u64) -> u32 {
    reg as u32
}

/// Argument `n` of a traced function as a plain number: the same value as
/// the BTF-typed pointer an fentry/fexit context hands over, on which the
/// verifier allows no arithmetic. The verifier inlines the helper.
#[inline(always)]
pub fn func_arg(ctx: *mut c_void, n: u32) -> u64 {
    let mut value = 0;
    // SAFETY: `ctx` is a tracing program's context; the helper writes one u64.
    unsafe { generated::bpf_get_func_arg(ctx, n, &raw mut value) };
    value
}

#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: a helper without arguments.
    unsafe { bpf_ktime_get_ns() }
}
