//! Types shared by the eBPF programs and userspace: the start-up configuration
//! (struct offsets read from BTF), the events the programs emit, and map names.
//!
//! Every struct is `#[repr(C)]`, built from fixed-width integers with explicit
//! padding, and its size is asserted so both sides agree byte for byte.
#![no_std]

/// Size of the shared ring (devices without a ring of their own); device
/// rings are sized by userspace.
pub const SHARED_RING_BYTES: u32 = 1 << 20;

/// Length of `task_struct.comm`.
pub const TASK_COMM_LEN: usize = 16;

/// An offset the running kernel's BTF does not have; programs skip what needs it.
pub const MISSING: u32 = u32::MAX;

/// Names of the maps userspace opens, kept next to the programs' declarations.
pub mod maps {
    /// `ArrayOfMaps<RingBuf>`: one ring buffer per traced device, by slot.
    pub const DEVICE_RINGS: &str = "DEVICE_RINGS";
    /// `HashMap<device key, u32>`: the slot of a device's ring.
    pub const RING_SLOTS: &str = "RING_SLOTS";
    /// The ring buffer for devices that have no ring of their own yet.
    pub const SHARED_RING: &str = "SHARED_RING";
    /// `HashMap<device key, u64>`: events dropped because a ring was full.
    pub const LOST: &str = "LOST";
    /// `HashMap<device key, u8>`: devices to trace when `Config::filter_devices` is set.
    pub const DEVICE_FILTER: &str = "DEVICE_FILTER";
    /// `StackTrace`: kernel stacks of zaps.
    pub const STACKS: &str = "STACKS";
    /// `PerCpuArray<u64>`: losses and fault entries/returns, by [`super::counter`].
    pub const COUNTERS: &str = "COUNTERS";
    /// The global holding [`super::Config`].
    pub const CONFIG: &str = "CONFIG";
    /// `Array<Diagnosis>`, memory-mapped: rare paths met, by [`super::diagnosis`] kind.
    pub const DIAGNOSED: &str = "DIAGNOSED";
    /// `Array<u32, 1>`: how fault returns are seen, by [`super::fault_return`].
    pub const FAULT_RETURN: &str = "FAULT_RETURN";
}

/// Start-up configuration handed to the programs as one global.
///
/// Offsets are in bytes and come from the running kernel's BTF; a field the
/// kernel lacks is [`MISSING`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// `vm_fault.vma`
    pub vmf_vma: u32,
    /// `vm_fault.address`
    pub vmf_address: u32,
    /// `vm_area_struct.vm_start`
    pub vma_start: u32,
    /// `vm_area_struct.vm_pgoff`
    pub vma_pgoff: u32,
    /// `vm_area_struct.vm_private_data` (the `vfio_pci_core_device *`)
    pub vma_private_data: u32,
    /// `vfio_pci_core_device.pdev`
    pub vdev_pdev: u32,
    /// `vfio_pci_core_device.memory_lock`
    pub vdev_memory_lock: u32,
    /// `pci_dev.bus`
    pub pdev_bus: u32,
    /// `pci_dev.devfn`
    pub pdev_devfn: u32,
    /// `pci_bus.number`
    pub bus_number: u32,
    /// `pci_bus.domain_nr` (architectures with generic PCI domains)
    pub bus_domain_nr: u32,
    /// `pci_bus.sysdata` (x86 keeps the domain behind it)
    pub bus_sysdata: u32,
    /// `pci_sysdata.domain` (x86)
    pub sysdata_domain: u32,
    /// Trace only this process (tgid); 0 traces all.
    pub filter_pid: u32,
    /// Non-zero: trace only devices present in `DEVICE_FILTER`.
    pub filter_devices: u32,
    /// Non-zero: the fault handler's second argument is the requested order (6.12+).
    pub handler_has_order: u32,
    /// `vm_area_struct.vm_file`
    pub vma_file: u32,
    /// `file.f_mapping`
    pub file_mapping: u32,
    /// `address_space.host`
    pub mapping_host: u32,
    /// `inode.i_sb`
    pub inode_sb: u32,
    /// `super_block.s_magic`
    pub sb_magic: u32,
    /// `vfio_pci_core_device.vdev` (the `vfio_device` handed to `mmap`)
    pub vdev_core: u32,
    /// `lock:contention_begin`/`_end` record offsets of `lock_addr`, `flags`, `ret`.
    pub tp_lock_addr: u32,
    pub tp_flags: u32,
    pub tp_ret: u32,
    /// Non-zero: no insert probe runs; a fault's insert follows from its order
    /// and result (6.12+ inserts exactly once per mapped fault).
    pub inserts_from_result: u32,
    /// Wake a device ring's reader once the ring holds this many bytes
    /// (the shared ring's at a quarter of it); below it the reader drains
    /// on its timer. 0 wakes it for every event of a device ring. A power
    /// of two (a quarter of a ring): the programs find a crossing with a
    /// bit test.
    pub wake_bytes: u32,
    /// `vm_area_struct.vm_end`
    pub vma_end: u32,
    /// `vm_fault.flags`
    pub vmf_flags: u32,
    /// `FAULT_FLAG_USER` of `enum fault_flag`: set when a CPU in user mode
    /// faulted; 0 when BTF does not say.
    pub fault_flag_user: u32,
    /// Non-zero: once a ring holds `wake_bytes`, every record wakes the
    /// reader, so a collector slower than the workload slows it rather than
    /// losing events. 0: only a record that crosses a multiple of
    /// `wake_bytes` wakes it (a collector that yields the CPU lags by design).
    pub wake_past_mark: u32,
    /// Keeps the size a multiple of 8.
    _pad: u32,
}

impl Config {
    /// A configuration with every offset missing and no filters.
    pub const fn empty() -> Self {
        Self {
            vmf_vma: MISSING,
            vmf_address: MISSING,
            vma_start: MISSING,
            vma_pgoff: MISSING,
            vma_private_data: MISSING,
            vdev_pdev: MISSING,
            vdev_memory_lock: MISSING,
            pdev_bus: MISSING,
            pdev_devfn: MISSING,
            bus_number: MISSING,
            bus_domain_nr: MISSING,
            bus_sysdata: MISSING,
            sysdata_domain: MISSING,
            filter_pid: 0,
            filter_devices: 0,
            handler_has_order: 0,
            vma_file: MISSING,
            file_mapping: MISSING,
            mapping_host: MISSING,
            inode_sb: MISSING,
            sb_magic: MISSING,
            vdev_core: MISSING,
            tp_lock_addr: MISSING,
            tp_flags: MISSING,
            tp_ret: MISSING,
            inserts_from_result: 0,
            wake_bytes: 0,
            vma_end: MISSING,
            vmf_flags: MISSING,
            fault_flag_user: 0,
            wake_past_mark: 0,
            _pad: 0,
        }
    }
}

const _: () = assert!(size_of::<Config>() == 128);

/// Event kinds; every event starts with its kind as a `u32`.
pub mod kind {
    pub const FAULT: u32 = 1;
    pub const ZAP: u32 = 2;
    pub const LOCK: u32 = 3;
    pub const HOLD: u32 = 4;
    pub const TASK: u32 = 5;
    pub const DMA_MAP: u32 = 6;
    pub const DMA_BUF_MOVE: u32 = 7;
    pub const DECODE_ON: u32 = 8;
    /// [`super::VmaEvent`]: the mapping a thread's next faults are in.
    pub const VMA: u32 = 9;
    /// [`super::FaultInVma`]: a fault in its thread's last [`VMA`].
    pub const FAULT_IN_VMA: u32 = 10;
}

/// Indices of the `COUNTERS` slots: losses by cause, and fault entries and
/// returns, whose difference is the returns never seen. Each CPU has its own
/// row of [`counter::STRIDE`] slots (one cache line); userspace reads them
/// through a memory mapping, never through a map syscall.
pub mod counter {
    /// A ring buffer was full.
    pub const RING_FULL: u32 = 0;
    /// No per-task slot could be had for an event in flight.
    pub const INFLIGHT_FULL: u32 = 1;
    /// A zap's kernel stack could not be stored: its cause reads unknown.
    pub const STACK_FAILED: u32 = 2;
    /// Fault entries that got their per-task slot, counted only while
    /// returns are a kretprobe's ([`super::fault_return`]).
    pub const FAULT_ENTRIES: u32 = 3;
    /// Fault returns matched to an entry, counted likewise. Entries minus
    /// returns are faults whose return was never seen (a kretprobe out of
    /// instances).
    pub const FAULT_RETURNS: u32 = 4;
    /// Number of counters.
    pub const COUNT: u32 = 5;
    /// Slots per CPU row: 8 u64, one cache line, so CPUs never share a line.
    pub const STRIDE: u32 = 8;
    /// CPU rows in the map definition; userspace sizes the map to the
    /// machine's possible CPUs before loading.
    pub const DEFAULT_CPUS: u32 = 64;
}

/// How the fault handler's returns are seen, as the loader writes it in
/// `maps::FAULT_RETURN` before any fault entry runs.
pub mod fault_return {
    /// A kretprobe: it has no `vmf`, so entries keep their state in the
    /// task's storage and fault entries and returns are counted, since a
    /// kretprobe out of instances misses returns without a trace.
    pub const KRETPROBE: u32 = 0;
    /// An fexit: entries take a slot found again by their `vmf`, and only the
    /// kernel's count of skipped runs can miss a return.
    pub const FEXIT: u32 = 1;
}

/// `VFIO_MAGIC`, the `s_magic` of the vfio pseudo-fs that holds device inodes (6.10+).
pub const VFIO_MAGIC: u64 = 0x5646_494f;

/// `lock:contention_begin` flags.
pub mod lock_flags {
    pub const READ: u32 = 1 << 1;
    pub const WRITE: u32 = 1 << 2;
}

/// A device key packs the PCI address: `domain << 16 | bus << 8 | devfn`.
/// 64 bits: PCI domains go past 16 bits (VMD uses 0x10000 and up).
pub const fn device_key(domain: u32, bus: u8, devfn: u8) -> u64 {
    ((domain as u64) << 16) | ((bus as u64) << 8) | devfn as u64
}

/// Device key for faults whose device could not be read: no PCI address
/// packs to it, since a domain has 32 bits.
pub const UNKNOWN_DEVICE: u64 = u64::MAX;

/// One invocation of the vfio fault handler, from entry to return.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultEvent {
    /// [`kind::FAULT`]
    pub kind: u32,
    /// Requested order (0, 9, 18); 0 where the handler has no order.
    pub order: u32,
    /// [`device_key`] of the faulting device.
    pub device: u64,
    /// `vm_pgoff` of the VMA: a vfio region offset from 6.10, the BAR's pfn before.
    pub vma_pgoff: u64,
    /// Page index of the faulting address inside the VMA.
    pub page_in_vma: u64,
    /// Entry time, `bpf_ktime_get_ns`.
    pub start_ns: u64,
    /// Entry to return.
    pub latency_ns: u64,
    /// `vm_fault_t` returned by the handler.
    pub result: u32,
    /// Thread group id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// `vmf_insert_pfn` calls during this fault.
    pub inserts_pte: u32,
    /// `vmf_insert_pfn_pmd` calls.
    pub inserts_pmd: u32,
    /// `vmf_insert_pfn_pud` calls.
    pub inserts_pud: u32,
    /// `remap_pfn_range` calls (whole-VMA remaps before 6.10).
    pub remaps: u32,
    /// Size of the VMA in pages (`vm_end - vm_start`, saturated at
    /// `u32::MAX`); 0 where the kernel's BTF lacks `vm_end`.
    pub vma_pages: u32,
    /// Pages mapped by those remaps.
    pub remap_pages: u64,
    /// `vm_start` of the VMA: with `vma_pgoff` and the BAR's address, the
    /// alignments that decide the page size a fault can insert.
    pub vma_start: u64,
    /// Where the fault came from: one of [`origin`].
    pub origin: u32,
    _pad: u32,
}

const _: () = assert!(size_of::<FaultEvent>() == 104);

/// The mapping a thread faults in: sent to a ring before the first of the
/// thread's faults whose device, VMA or process differs from its last
/// fault's, so that the faults themselves travel as [`FaultInVma`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmaEvent {
    /// [`kind::VMA`]
    pub kind: u32,
    pub pid: u32,
    pub tid: u32,
    /// As [`FaultEvent::vma_pages`].
    pub vma_pages: u32,
    pub device: u64,
    pub vma_pgoff: u64,
    pub vma_start: u64,
}

const _: () = assert!(size_of::<VmaEvent>() == 40);

impl VmaEvent {
    /// The mapping `fault` was in, for the thread that took it.
    pub const fn of(fault: &FaultEvent) -> Self {
        Self {
            kind: kind::VMA,
            pid: fault.pid,
            tid: fault.tid,
            vma_pages: fault.vma_pages,
            device: fault.device,
            vma_pgoff: fault.vma_pgoff,
            vma_start: fault.vma_start,
        }
    }

    /// The full event of `fault`, which came after this in the same ring.
    pub const fn fault(&self, fault: &FaultInVma) -> FaultEvent {
        FaultEvent {
            kind: kind::FAULT,
            order: fault.order as u32,
            device: self.device,
            vma_pgoff: self.vma_pgoff,
            page_in_vma: fault.page_in_vma as u64,
            start_ns: fault.start_ns,
            latency_ns: fault.latency_ns as u64,
            result: fault.result as u32,
            pid: self.pid,
            tid: self.tid,
            inserts_pte: fault.inserts_pte as u32,
            inserts_pmd: fault.inserts_pmd as u32,
            inserts_pud: fault.inserts_pud as u32,
            remaps: 0,
            vma_pages: self.vma_pages,
            remap_pages: 0,
            vma_start: self.vma_start,
            origin: fault.origin as u32,
            _pad: 0,
        }
    }
}

/// A fault in the mapping its thread's last [`VmaEvent`] in the same ring
/// named: 40 bytes in the ring where a [`FaultEvent`] takes 112, so a ring
/// holds nearly three times the faults. A fault with a value too large for
/// these fields, or with remaps, travels as a [`FaultEvent`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultInVma {
    /// [`kind::FAULT_IN_VMA`]
    pub kind: u32,
    pub tid: u32,
    pub start_ns: u64,
    pub latency_ns: u32,
    pub page_in_vma: u32,
    pub result: u16,
    pub order: u8,
    pub origin: u8,
    pub inserts_pte: u16,
    pub inserts_pmd: u8,
    pub inserts_pud: u8,
}

const _: () = assert!(size_of::<FaultInVma>() == 32);

impl FaultInVma {
    /// `fault` without its mapping, when every field fits.
    #[allow(
        clippy::cast_possible_truncation,
        reason = "each field is checked to fit first"
    )]
    pub const fn of(fault: &FaultEvent) -> Option<Self> {
        if fault.latency_ns > u32::MAX as u64
            || fault.page_in_vma > u32::MAX as u64
            || fault.result > u16::MAX as u32
            || fault.order > u8::MAX as u32
            || fault.origin > u8::MAX as u32
            || fault.inserts_pte > u16::MAX as u32
            || fault.inserts_pmd > u8::MAX as u32
            || fault.inserts_pud > u8::MAX as u32
            || fault.remaps != 0
            || fault.remap_pages != 0
        {
            return None;
        }
        Some(Self {
            kind: kind::FAULT_IN_VMA,
            tid: fault.tid,
            start_ns: fault.start_ns,
            latency_ns: fault.latency_ns as u32,
            page_in_vma: fault.page_in_vma as u32,
            result: fault.result as u16,
            order: fault.order as u8,
            origin: fault.origin as u8,
            inserts_pte: fault.inserts_pte as u16,
            inserts_pmd: fault.inserts_pmd as u8,
            inserts_pud: fault.inserts_pud as u8,
        })
    }
}

/// Where a fault came from, from the kernel's call path.
pub mod origin {
    /// Neither below: another kernel path (GUP from elsewhere, ptrace...).
    pub const OTHER: u32 = 0;
    /// A task touching the mapping (`FAULT_FLAG_USER`).
    pub const CPU: u32 = 1;
    /// `vfio_iommu_type1` pinning the pages of a DMA map (`vfio_pin_pages_remote`).
    pub const DMA_MAP: u32 = 2;
}

impl FaultEvent {
    pub const fn zeroed() -> Self {
        Self {
            kind: kind::FAULT,
            order: 0,
            device: UNKNOWN_DEVICE,
            vma_pgoff: 0,
            page_in_vma: 0,
            start_ns: 0,
            latency_ns: 0,
            result: 0,
            pid: 0,
            tid: 0,
            inserts_pte: 0,
            inserts_pmd: 0,
            inserts_pud: 0,
            remaps: 0,
            vma_pages: 0,
            remap_pages: 0,
            vma_start: 0,
            origin: origin::OTHER,
            _pad: 0,
        }
    }
}

/// The name of a task, sent once per thread the first time it faults, so
/// fault events need not carry it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskEvent {
    /// [`kind::TASK`]
    pub kind: u32,
    pub pid: u32,
    pub tid: u32,
    _pad: u32,
    pub comm: [u8; TASK_COMM_LEN],
}

const _: () = assert!(size_of::<TaskEvent>() == 32);

impl TaskEvent {
    pub const fn zeroed() -> Self {
        Self {
            kind: kind::TASK,
            pid: 0,
            tid: 0,
            _pad: 0,
            comm: [0; TASK_COMM_LEN],
        }
    }
}

/// One zap of a device's BAR mappings, from entry to return of the zapping function.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZapEvent {
    /// [`kind::ZAP`]
    pub kind: u32,
    /// VMAs the zap walked.
    pub vmas: u32,
    pub device: u64,
    /// Byte range of the vfio file zapped; `len` 0 means to the end.
    pub range_start: u64,
    pub range_len: u64,
    pub start_ns: u64,
    pub latency_ns: u64,
    /// Pages of BAR mappings the zap covered, summed over VMAs.
    pub pages: u64,
    /// Kernel stack id in `STACKS` (negative: none), to tell the cause.
    pub stack_id: i32,
    pub pid: u32,
    pub tid: u32,
    _pad: u32,
    pub comm: [u8; TASK_COMM_LEN],
}

const _: () = assert!(size_of::<ZapEvent>() == 88);

impl ZapEvent {
    pub const fn zeroed() -> Self {
        Self {
            kind: kind::ZAP,
            vmas: 0,
            device: UNKNOWN_DEVICE,
            range_start: 0,
            range_len: 0,
            start_ns: 0,
            latency_ns: 0,
            pages: 0,
            stack_id: -1,
            pid: 0,
            tid: 0,
            _pad: 0,
            comm: [0; TASK_COMM_LEN],
        }
    }
}

/// One contended acquisition of a traced device's `memory_lock`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockEvent {
    /// [`kind::LOCK`]
    pub kind: u32,
    /// `lock:contention_begin` flags ([`lock_flags`]).
    pub flags: u32,
    pub device: u64,
    /// Address of the `memory_lock`: the wait ends at the `contention_end`
    /// of this lock, not of a lock taken inside the wait.
    pub lock: u64,
    pub start_ns: u64,
    pub wait_ns: u64,
    /// `lock:contention_end` ret (0: acquired).
    pub ret: i32,
    pub pid: u32,
    pub tid: u32,
    _pad: u32,
    pub comm: [u8; TASK_COMM_LEN],
}

const _: () = assert!(size_of::<LockEvent>() == 72);

impl LockEvent {
    pub const fn zeroed() -> Self {
        Self {
            kind: kind::LOCK,
            flags: 0,
            device: UNKNOWN_DEVICE,
            lock: 0,
            start_ns: 0,
            wait_ns: 0,
            ret: 0,
            pid: 0,
            tid: 0,
            _pad: 0,
            comm: [0; TASK_COMM_LEN],
        }
    }
}

/// How long a zap's writer held `memory_lock`: from the zap's start (the lock
/// is already held) to the return of the vfio function that took it and
/// released it (the config write or the ioctl).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldEvent {
    /// [`kind::HOLD`]
    pub kind: u32,
    _pad: u32,
    pub device: u64,
    /// `ZapEvent::start_ns` of the zap this hold belongs to.
    pub zap_start_ns: u64,
    pub hold_ns: u64,
}

const _: () = assert!(size_of::<HoldEvent>() == 32);

impl HoldEvent {
    pub const fn zeroed() -> Self {
        Self {
            kind: kind::HOLD,
            _pad: 0,
            device: UNKNOWN_DEVICE,
            zap_start_ns: 0,
            hold_ns: 0,
        }
    }
}

/// `VFIO_IOMMU_MAP_DMA`, `_IO(VFIO_TYPE, VFIO_BASE + 13)`: a uapi constant.
pub const VFIO_IOMMU_MAP_DMA: u32 = 0x3b71;

/// Offsets in the uapi `struct vfio_iommu_type1_dma_map` (argsz, flags,
/// vaddr, iova, size): fixed by the ABI, not by a kernel's BTF.
pub mod dma_map_arg {
    pub const VADDR: u64 = 8;
    pub const IOVA: u64 = 16;
    pub const SIZE: u64 = 24;
}

/// One `VFIO_IOMMU_MAP_DMA` of a type1 container, entry to return of
/// `vfio_iommu_type1_ioctl`, with the vfio faults and pfn lookups inside it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaMapEvent {
    /// [`kind::DMA_MAP`]
    pub kind: u32,
    /// The ioctl's return value (0 or a negative errno).
    pub ret: i32,
    /// Device of the first vfio fault inside the map; [`UNKNOWN_DEVICE`]
    /// when none faulted (guest RAM, or a BAR already mapped).
    pub device: u64,
    /// The map's user address, IOVA and size, as the caller asked.
    pub vaddr: u64,
    pub iova: u64,
    pub size: u64,
    pub start_ns: u64,
    pub latency_ns: u64,
    /// Time inside vfio faults during the map, summed.
    pub fault_ns: u64,
    /// vfio faults during the map.
    pub faults: u32,
    /// `vaddr_get_pfns` calls during the map: type1 looked up pfns this
    /// many times (per 4 KiB before 6.15, per leaf from 6.15).
    pub lookups: u32,
    pub pid: u32,
    pub tid: u32,
}

const _: () = assert!(size_of::<DmaMapEvent>() == 80);

impl DmaMapEvent {
    pub const fn zeroed() -> Self {
        Self {
            kind: kind::DMA_MAP,
            ret: 0,
            device: UNKNOWN_DEVICE,
            vaddr: 0,
            iova: 0,
            size: 0,
            start_ns: 0,
            latency_ns: 0,
            fault_ns: 0,
            faults: 0,
            lookups: 0,
            pid: 0,
            tid: 0,
        }
    }
}

/// One `vfio_pci_dma_buf_move(vdev, revoked)` (6.19+): the device's
/// dma-buf exports revoked beside a zap, or restored once memory decode is
/// back on, timed entry to return (from 7.1 a revoke waits for importers
/// while the writer holds `memory_lock`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaBufMoveEvent {
    /// [`kind::DMA_BUF_MOVE`]
    pub kind: u32,
    /// 1: revoked (decode off, reset, power); 0: restored (decode on).
    pub revoked: u32,
    pub device: u64,
    pub start_ns: u64,
    pub latency_ns: u64,
    pub pid: u32,
    pub tid: u32,
}

const _: () = assert!(size_of::<DmaBufMoveEvent>() == 40);

impl DmaBufMoveEvent {
    pub const fn zeroed() -> Self {
        Self {
            kind: kind::DMA_BUF_MOVE,
            revoked: 0,
            device: UNKNOWN_DEVICE,
            start_ns: 0,
            latency_ns: 0,
            pid: 0,
            tid: 0,
        }
    }
}

/// `PCI_COMMAND` and its `PCI_COMMAND_MEMORY` bit: config-space ABI.
pub const PCI_COMMAND: u32 = 4;
pub const PCI_COMMAND_MEMORY: u32 = 2;

/// A config write through vfio-pci that sets memory decode in the command
/// register (`vfio_basic_config_write` entry): after a decode-off zap, the
/// moment decode comes back on.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOnEvent {
    /// [`kind::DECODE_ON`]
    pub kind: u32,
    _pad: u32,
    pub device: u64,
    pub start_ns: u64,
    pub pid: u32,
    pub tid: u32,
}

const _: () = assert!(size_of::<DecodeOnEvent>() == 32);

impl DecodeOnEvent {
    pub const fn zeroed() -> Self {
        Self {
            kind: kind::DECODE_ON,
            _pad: 0,
            device: UNKNOWN_DEVICE,
            start_ns: 0,
            pid: 0,
            tid: 0,
        }
    }
}

/// `vm_fault_t` bits the handler returns.
pub mod vm_fault {
    pub const OOM: u32 = 0x0001;
    pub const SIGBUS: u32 = 0x0002;
    pub const NOPAGE: u32 = 0x0100;
    pub const FALLBACK: u32 = 0x0800;
}

/// A rare path the programs met, noted once per kind in the `DIAGNOSED`
/// array (indexed by [`diagnosis`]) for userspace to word and print. A
/// note is a few stores: a formatted log record per call site took more
/// than half the verifier's time at load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// Non-zero once noted; written after `args`.
    pub seen: u64,
    /// What the kind reports (an offset, an order, a limit).
    pub args: [i64; 2],
}

const _: () = assert!(size_of::<Diagnosis>() == 24);

/// The kinds of [`Diagnosis`], by index.
pub mod diagnosis {
    /// `vm_fault.vma` unreadable: args[0] the offset (-1: not in BTF).
    pub const FAULT_VMA: u32 = 0;
    /// `vm_area_struct.vm_private_data` unreadable: args[0] the offset.
    pub const FAULT_VDEV: u32 = 1;
    /// The device unreadable: args[0] the step (1 vdev.pdev, 2 pdev.devfn,
    /// 3 pdev.bus, 4 bus.number), args[1] its offset.
    pub const DEVICE: u32 = 2;
    /// A fault of an order not 0, 9 or 18: args[0] the order.
    pub const ORDER: u32 = 3;
    /// A zap of a mapping not seen since the start.
    pub const ZAP_UNKNOWN: u32 = 4;
    /// No task storage for a thread.
    pub const TASK_STORAGE: u32 = 5;
    /// The zap in-flight table full: args[0] its entries.
    pub const ZAP_INFLIGHT: u32 = 6;
    /// The lock-wait in-flight table full: args[0] its entries.
    pub const LOCK_INFLIGHT: u32 = 7;
    /// No free slot near a fault's own for its entry: args[0] the slots tried.
    pub const FAULT_IN_FLIGHT: u32 = 8;
    pub const KINDS: u32 = 9;
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data: repr(C), fixed-width integers, no padding holes.
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FaultEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ZapEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::LockEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HoldEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TaskEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DmaMapEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DmaBufMoveEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DecodeOnEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::VmaEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FaultInVma {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_key_packs_domain_bus_devfn() {
        assert_eq!(device_key(0, 0x01, 0x00), 0x0100);
        assert_eq!(device_key(0x10, 0xab, 0x1f), 0x0010_ab1f);
        // VMD domains do not collide with domain 0.
        assert_eq!(device_key(0x1_0000, 0xe1, 0), 0x1_0000_e100);
        assert_ne!(device_key(u32::MAX, 0xff, 0xff), UNKNOWN_DEVICE);
    }
}
