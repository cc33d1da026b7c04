//! vfio-trace eBPF programs: thin entries over `try_*` bodies, one module per
//! probe family. Struct offsets come from userspace in [`CONFIG`]; nothing here
//! knows a kernel version.
#![no_std]
#![no_main]
// Atomic adds on map values: the BPF target has no `AtomicU64::fetch_add`.
#![feature(core_intrinsics)]
#![allow(internal_features, reason = "atomic_xadd is the one intrinsic used")]
#![allow(
    clippy::inline_always,
    reason = "helpers inline into their program: the verifier follows one function, not BPF-to-BPF calls"
)]
#![allow(
    clippy::needless_pass_by_value,
    reason = "aya's program macros hand each program its context by value"
)]
#![allow(
    unused_crate_dependencies,
    reason = "-Z build-std=core adds compiler_builtins, which no code names"
)]

/// One `u32` field of [`CONFIG`]. A volatile load of that field alone: the
/// map is frozen, so the verifier knows the value and prunes the branches it
/// decides, while `Global::load` copied all 30 fields to the stack in every run.
macro_rules! conf {
    ($field:ident) => {
        $crate::config_field(core::mem::offset_of!(vfio_trace_common::Config, $field))
    };
}

mod decode;
mod diag;
mod dma;
mod dma_buf;
mod fault;
mod fault_event;
mod in_flight;
mod kernel;
mod lock;
mod maps;
mod task_storage;
mod thread;
mod zap;

use aya_ebpf::{
    EbpfContext as _, Global,
    macros::{fentry, fexit, kprobe, kretprobe, tracepoint},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use vfio_trace_common::Config;

/// Offsets and filters, overridden by the loader before the programs load.
/// Read a field at a time with [`conf!`].
#[unsafe(no_mangle)]
static CONFIG: Global<Config> = Global::new(Config::empty());

#[inline(always)]
fn config_field(offset: usize) -> u32 {
    // SAFETY: `Global` is `repr(transparent)` over the `Config`, whose fields
    // are all `u32`; `offset` comes from `offset_of!` on it.
    unsafe { core::ptr::read_volatile((&raw const CONFIG).cast::<u32>().byte_add(offset)) }
}

/// Entry of the vfio fault handler (`vfio_pci_mmap_huge_fault` or `vfio_pci_mmap_fault`).
#[kprobe]
pub fn fault_entry(ctx: ProbeContext) -> u32 {
    let order = if conf!(handler_has_order) != 0 {
        kernel::low32(ctx.arg(1).unwrap_or(0))
    } else {
        0
    };
    fault::entry(ctx.arg(0).unwrap_or(0), order);
    0
}

/// Return of the vfio fault handler.
#[kretprobe]
pub fn fault_return(ctx: RetProbeContext) -> u32 {
    let end_ns = kernel::now();
    fault::ret_kretprobe(end_ns, kernel::low32(ctx.ret()));
    0
}

/// fentry of `vfio_pci_mmap_huge_fault(vmf, order)`: a trampoline instead of a
/// breakpoint, several times cheaper per fault than a kprobe.
#[fentry]
pub fn fault_fentry_huge(ctx: FEntryContext) -> u32 {
    fault::entry(kernel::func_arg(ctx.as_ptr(), 0), kernel::low32(ctx.arg(1)));
    0
}

/// fexit of `vfio_pci_mmap_huge_fault(vmf, order)`: the result follows the two arguments.
#[fexit]
pub fn fault_fexit_huge(ctx: FExitContext) -> u32 {
    let end_ns = kernel::now();
    let vmf = kernel::func_arg(ctx.as_ptr(), 0);
    fault::ret_fexit(end_ns, kernel::low32(ctx.arg(2)), ctx.arg(0), vmf);
    0
}

/// fentry of `vfio_pci_mmap_fault(vmf)` (before 6.12).
#[fentry]
pub fn fault_fentry(ctx: FEntryContext) -> u32 {
    fault::entry(kernel::func_arg(ctx.as_ptr(), 0), 0);
    0
}

/// fexit of `vfio_pci_mmap_fault(vmf)`.
#[fexit]
pub fn fault_fexit(ctx: FExitContext) -> u32 {
    let end_ns = kernel::now();
    let vmf = kernel::func_arg(ctx.as_ptr(), 0);
    fault::ret_fexit(end_ns, kernel::low32(ctx.arg(1)), ctx.arg(0), vmf);
    0
}

/// The floor (`record --floor`): empty programs on the fault handler, so the
/// bench can measure what merely dispatching to BPF costs a fault, apart from
/// what the real programs do. No helper call, no map: nothing but the dispatch.
#[fentry]
pub fn floor_fentry(_ctx: FEntryContext) -> u32 {
    0
}

/// The floor's return side as a trampoline (see [`floor_fentry`]).
#[fexit]
pub fn floor_fexit(_ctx: FExitContext) -> u32 {
    0
}

/// The floor as a kprobe (see [`floor_fentry`]).
#[kprobe]
pub fn floor_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

/// The floor's return side as a kretprobe (see [`floor_fentry`]).
#[kretprobe]
pub fn floor_kretprobe(_ctx: RetProbeContext) -> u32 {
    0
}

/// `vfio_pin_pages_remote` entry: type1 is pinning a DMA map's pages.
#[kprobe]
pub fn pin_entry(_ctx: ProbeContext) -> u32 {
    fault::pinning(true);
    0
}

/// `vfio_pin_pages_remote` return.
#[kretprobe]
pub fn pin_return(_ctx: RetProbeContext) -> u32 {
    fault::pinning(false);
    0
}

/// `vfio_iommu_type1_ioctl(iommu, cmd, arg)` entry: a `VFIO_IOMMU_MAP_DMA` begins.
#[kprobe]
pub fn dma_entry(ctx: ProbeContext) -> u32 {
    let cmd: u64 = ctx.arg(1).unwrap_or(0);
    dma::entry(kernel::low32(cmd), ctx.arg(2).unwrap_or(0));
    0
}

/// `vfio_iommu_type1_ioctl` return.
#[kretprobe]
pub fn dma_return(ctx: RetProbeContext) -> u32 {
    let end_ns = kernel::now();
    dma::ret(end_ns, ctx.ret());
    0
}

/// `vaddr_get_pfns`: type1 looks up the pfns of a DMA map's next pages.
#[kprobe]
pub fn pfn_lookup(_ctx: ProbeContext) -> u32 {
    dma::lookup();
    0
}

/// `vfio_pci_dma_buf_move(vdev, revoked)` entry (6.19+).
#[kprobe]
pub fn dma_buf_entry(ctx: ProbeContext) -> u32 {
    let revoked: u64 = ctx.arg(1).unwrap_or(0);
    dma_buf::entry(ctx.arg(0).unwrap_or(0), revoked & 0xff != 0);
    0
}

/// `vfio_pci_dma_buf_move` return.
#[kretprobe]
pub fn dma_buf_return(_ctx: RetProbeContext) -> u32 {
    let end_ns = kernel::now();
    dma_buf::ret(end_ns);
    0
}

/// `vmf_insert_pfn`: one PTE inserted.
#[kprobe]
pub fn insert_pte(_ctx: ProbeContext) -> u32 {
    fault::count_insert(fault::Insert::Pte);
    0
}

/// `vmf_insert_pfn_pmd`: one 2 MiB entry inserted.
#[kprobe]
pub fn insert_pmd(_ctx: ProbeContext) -> u32 {
    fault::count_insert(fault::Insert::Pmd);
    0
}

/// `vmf_insert_pfn_pud`: one 1 GiB entry inserted.
#[kprobe]
pub fn insert_pud(_ctx: ProbeContext) -> u32 {
    fault::count_insert(fault::Insert::Pud);
    0
}

/// `remap_pfn_range(vma, addr, pfn, size, prot)`: a whole-VMA remap (before 6.10).
#[kprobe]
pub fn remap(ctx: ProbeContext) -> u32 {
    let size: u64 = ctx.arg(3).unwrap_or(0);
    fault::count_insert(fault::Insert::Remap { pages: size >> 12 });
    0
}

/// `vfio_pci_core_mmap(core_vdev, vma)`: learn the device behind a new mapping.
#[kprobe]
pub fn mmap_entry(ctx: ProbeContext) -> u32 {
    let core: u64 = ctx.arg(0).unwrap_or(0);
    let vma: u64 = ctx.arg(1).unwrap_or(0);
    if core != 0 && conf!(vdev_core) != vfio_trace_common::MISSING {
        let vdev = core - u64::from(conf!(vdev_core));
        let _ = kernel::device_of_vma(vma, vdev);
    }
    0
}

/// `unmap_mapping_range` entry (6.10+).
#[kprobe]
pub fn zap_mapping_entry(ctx: ProbeContext) -> u32 {
    zap::mapping_entry(&ctx);
    0
}

/// `vfio_pci_zap_and_vma_lock` entry (before 6.10).
#[kprobe]
pub fn zap_vdev_entry(ctx: ProbeContext) -> u32 {
    zap::vdev_entry(&ctx);
    0
}

/// Return of the zapping function.
#[kretprobe]
pub fn zap_return(_ctx: RetProbeContext) -> u32 {
    zap::ret();
    0
}

/// Entry of `vfio_basic_config_write` or `vfio_pci_core_ioctl`: forget any
/// hold left by a zap made outside them.
#[kprobe]
pub fn hold_begin(_ctx: ProbeContext) -> u32 {
    zap::hold_begin();
    0
}

/// Entry of `vfio_basic_config_write(vdev, pos, count, perm, offset, val)`:
/// as `hold_begin`, and a write setting memory decode is an event.
#[kprobe]
pub fn config_write_entry(ctx: ProbeContext) -> u32 {
    zap::hold_begin();
    let arg = |n| kernel::low32(ctx.arg::<u64>(n).unwrap_or(0));
    decode::config_write(ctx.arg(0).unwrap_or(0), arg(1), arg(2), arg(5));
    0
}

/// Return of `vfio_basic_config_write` or `vfio_pci_core_ioctl`: the writer
/// of a zap has released `memory_lock`.
#[kretprobe]
pub fn hold_end(_ctx: RetProbeContext) -> u32 {
    zap::hold_end();
    0
}

/// Per-VMA zap inside a vfio zap: `zap_page_range_single(vma, addr, size, ..)`.
#[kprobe]
pub fn zap_range(ctx: ProbeContext) -> u32 {
    zap::range(&ctx, 2);
    0
}

/// Per-VMA zap inside a vfio zap on 7.x: `zap_vma_range_batched(tlb, vma, addr, size, ..)`.
#[kprobe]
pub fn zap_range_batched(ctx: ProbeContext) -> u32 {
    zap::range(&ctx, 3);
    0
}

/// `lock:contention_begin`
#[tracepoint]
pub fn lock_begin(ctx: TracePointContext) -> u32 {
    lock::begin(&ctx);
    0
}

/// `lock:contention_end`
#[tracepoint]
pub fn lock_end(ctx: TracePointContext) -> u32 {
    lock::end(&ctx);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
