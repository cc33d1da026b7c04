//! A vfio-pci device opened through the classic group/container API (type1v2),
//! with the few operations the exercise needs: region info, `PCI_COMMAND`, reset,
//! and DMA-mapping a range of our address space through the container.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use thiserror::Error;
use vfio_bindings::bindings::vfio::{
    VFIO_API_VERSION, VFIO_BASE, VFIO_DEVICE_FLAGS_RESET, VFIO_DMA_MAP_FLAG_READ,
    VFIO_DMA_MAP_FLAG_WRITE, VFIO_GROUP_FLAGS_VIABLE, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_TYPE,
    VFIO_TYPE1v2_IOMMU, vfio_device_info, vfio_group_status, vfio_iommu_type1_dma_map,
    vfio_iommu_type1_dma_unmap, vfio_region_info,
};
use vmm_sys_util::ioctl::{
    ioctl, ioctl_with_mut_ref, ioctl_with_ptr, ioctl_with_ref, ioctl_with_val,
};
use vmm_sys_util::ioctl_io_nr;

use crate::device::Bdf;

// The VFIO ioctls are all _IO(';', 100 + n): the argument size is not encoded.
ioctl_io_nr!(VFIO_GET_API_VERSION, VFIO_TYPE.into(), VFIO_BASE);
ioctl_io_nr!(VFIO_CHECK_EXTENSION, VFIO_TYPE.into(), VFIO_BASE + 1);
ioctl_io_nr!(VFIO_SET_IOMMU, VFIO_TYPE.into(), VFIO_BASE + 2);
ioctl_io_nr!(VFIO_GROUP_GET_STATUS, VFIO_TYPE.into(), VFIO_BASE + 3);
ioctl_io_nr!(VFIO_GROUP_SET_CONTAINER, VFIO_TYPE.into(), VFIO_BASE + 4);
ioctl_io_nr!(VFIO_GROUP_GET_DEVICE_FD, VFIO_TYPE.into(), VFIO_BASE + 6);
ioctl_io_nr!(VFIO_DEVICE_GET_INFO, VFIO_TYPE.into(), VFIO_BASE + 7);
ioctl_io_nr!(VFIO_DEVICE_GET_REGION_INFO, VFIO_TYPE.into(), VFIO_BASE + 8);
ioctl_io_nr!(VFIO_DEVICE_RESET, VFIO_TYPE.into(), VFIO_BASE + 11);
ioctl_io_nr!(VFIO_IOMMU_MAP_DMA, VFIO_TYPE.into(), VFIO_BASE + 13);
ioctl_io_nr!(VFIO_IOMMU_UNMAP_DMA, VFIO_TYPE.into(), VFIO_BASE + 14);

/// `PCI_COMMAND` register offset in config space, and its memory-decode bit.
pub const PCI_COMMAND: u64 = 4;
pub const PCI_COMMAND_MEMORY: u16 = 0x2;

#[derive(Debug, Error)]
pub enum VfioError {
    #[error("{what}: {source}")]
    Os { what: String, source: io::Error },
    #[error("VFIO API version {0}, expected {VFIO_API_VERSION}")]
    ApiVersion(i32),
    #[error("this kernel's VFIO has no type1v2 IOMMU (vfio_iommu_type1 not loaded?)")]
    NoType1v2,
    #[error("IOMMU group {0} is not viable: bind every device in it to vfio-pci")]
    NotViable(u32),
    #[error("{0} does not support VFIO_DEVICE_RESET")]
    NoReset(Bdf),
    #[error("VFIO_IOMMU_UNMAP_DMA of iova {iova:#x}: unmapped {unmapped} bytes of {size}")]
    ShortUnmap { iova: u64, size: u64, unmapped: u64 },
}

fn os(what: impl Into<String>) -> impl FnOnce(io::Error) -> VfioError {
    let what = what.into();
    move |source| VfioError::Os { what, source }
}

/// Turns an ioctl return value into a result, reading errno on failure.
fn check(ret: i32, what: &str) -> Result<i32, VfioError> {
    if ret < 0 {
        Err(os(what)(io::Error::last_os_error()))
    } else {
        Ok(ret)
    }
}

/// One VFIO region (a BAR, config space, ...) as the device reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub index: u32,
    pub flags: u32,
    pub size: u64,
    /// Offset of the region in the device fd, for pread/pwrite and mmap.
    pub offset: u64,
}

/// The `argsz` of a VFIO ioctl argument: its size.
#[allow(
    clippy::cast_possible_truncation,
    reason = "VFIO argument structs are a few dozen bytes"
)]
const fn argsz<T>() -> u32 {
    size_of::<T>() as u32
}

/// An open device. Fields drop in order: the device fd closes before its group,
/// the group before the container.
pub struct Device {
    file: File,
    _group: File,
    container: File,
    bdf: Bdf,
    flags: u32,
    config: Region,
}

impl Device {
    pub fn open(bdf: Bdf, group: u32) -> Result<Self, VfioError> {
        let rw = |path: &str| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(os(format!("open {path}")))
        };
        let container = rw("/dev/vfio/vfio")?;
        // SAFETY: VFIO_GET_API_VERSION takes no argument.
        let version = check(
            unsafe { ioctl(&container, VFIO_GET_API_VERSION()) },
            "VFIO_GET_API_VERSION",
        )?;
        if version != VFIO_API_VERSION.cast_signed() {
            return Err(VfioError::ApiVersion(version));
        }
        // SAFETY: VFIO_CHECK_EXTENSION takes an integer by value.
        let has = unsafe {
            ioctl_with_val(
                &container,
                VFIO_CHECK_EXTENSION(),
                VFIO_TYPE1v2_IOMMU.into(),
            )
        };
        if check(has, "VFIO_CHECK_EXTENSION")? != 1 {
            return Err(VfioError::NoType1v2);
        }

        let group_file = rw(&format!("/dev/vfio/{group}"))?;
        let mut status = vfio_group_status {
            argsz: argsz::<vfio_group_status>(),
            flags: 0,
        };
        // SAFETY: the kernel writes at most argsz bytes into `status`.
        check(
            unsafe { ioctl_with_mut_ref(&group_file, VFIO_GROUP_GET_STATUS(), &mut status) },
            "VFIO_GROUP_GET_STATUS",
        )?;
        if status.flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(VfioError::NotViable(group));
        }
        let container_fd = container.as_raw_fd();
        // SAFETY: the kernel reads one int, the container fd, which outlives the call.
        check(
            unsafe { ioctl_with_ref(&group_file, VFIO_GROUP_SET_CONTAINER(), &container_fd) },
            "VFIO_GROUP_SET_CONTAINER",
        )?;
        // SAFETY: VFIO_SET_IOMMU takes the IOMMU type by value.
        check(
            unsafe { ioctl_with_val(&container, VFIO_SET_IOMMU(), VFIO_TYPE1v2_IOMMU.into()) },
            "VFIO_SET_IOMMU",
        )?;

        // The kernel matches this against the device's sysfs name, which is
        // Bdf's spelling.
        let name =
            CString::new(bdf.to_string()).map_err(|e| os("device name")(io::Error::other(e)))?;
        // SAFETY: the kernel reads a NUL-terminated string that outlives the call.
        let fd = check(
            unsafe { ioctl_with_ptr(&group_file, VFIO_GROUP_GET_DEVICE_FD(), name.as_ptr()) },
            &format!("VFIO_GROUP_GET_DEVICE_FD {bdf}"),
        )?;
        // SAFETY: the ioctl returned a new fd that nothing else owns.
        let device = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };

        let mut info = vfio_device_info {
            argsz: argsz::<vfio_device_info>(),
            ..Default::default()
        };
        // SAFETY: the kernel writes at most argsz bytes into `info`.
        check(
            unsafe { ioctl_with_mut_ref(&device, VFIO_DEVICE_GET_INFO(), &mut info) },
            "VFIO_DEVICE_GET_INFO",
        )?;
        let mut dev = Self {
            file: device,
            _group: group_file,
            container,
            bdf,
            flags: info.flags,
            config: Region {
                index: VFIO_PCI_CONFIG_REGION_INDEX,
                flags: 0,
                size: 0,
                offset: 0,
            },
        };
        dev.config = dev.region(VFIO_PCI_CONFIG_REGION_INDEX)?;
        Ok(dev)
    }

    pub fn region(&self, index: u32) -> Result<Region, VfioError> {
        let mut info = vfio_region_info {
            argsz: argsz::<vfio_region_info>(),
            index,
            ..Default::default()
        };
        // SAFETY: the kernel writes at most argsz bytes into `info`.
        check(
            unsafe { ioctl_with_mut_ref(&self.file, VFIO_DEVICE_GET_REGION_INFO(), &mut info) },
            &format!("VFIO_DEVICE_GET_REGION_INFO {index}"),
        )?;
        Ok(Region {
            index,
            flags: info.flags,
            size: info.size,
            offset: info.offset,
        })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Reads `PCI_COMMAND` through the config region.
    pub fn command(&self) -> Result<u16, VfioError> {
        let mut buf = [0u8; 2];
        self.file
            .read_exact_at(&mut buf, self.config.offset + PCI_COMMAND)
            .map_err(os("read PCI_COMMAND"))?;
        Ok(u16::from_le_bytes(buf))
    }

    /// Writes `PCI_COMMAND` through the config region; vfio-pci zaps the BAR
    /// mappings when the write leaves memory decode off.
    pub fn set_command(&self, value: u16) -> Result<(), VfioError> {
        self.file
            .write_all_at(&value.to_le_bytes(), self.config.offset + PCI_COMMAND)
            .map_err(os("write PCI_COMMAND"))
    }

    pub fn reset(&self) -> Result<(), VfioError> {
        if self.flags & VFIO_DEVICE_FLAGS_RESET == 0 {
            return Err(VfioError::NoReset(self.bdf));
        }
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        check(
            unsafe { ioctl(&self.file, VFIO_DEVICE_RESET()) },
            "VFIO_DEVICE_RESET",
        )?;
        Ok(())
    }

    /// `VFIO_IOMMU_MAP_DMA`: maps `size` bytes of our address space at `vaddr`
    /// to `iova`, readable and writable by the device. type1 pins every page
    /// before it returns; a BAR mapping's pages are faulted in to be pinned.
    pub fn map_dma(&self, vaddr: u64, iova: u64, size: u64) -> Result<(), VfioError> {
        let map = vfio_iommu_type1_dma_map {
            argsz: argsz::<vfio_iommu_type1_dma_map>(),
            flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
            vaddr,
            iova,
            size,
        };
        // SAFETY: the kernel reads argsz bytes of `map`; it checks the range
        // itself and maps nothing it cannot pin.
        check(
            unsafe { ioctl_with_ref(&self.container, VFIO_IOMMU_MAP_DMA(), &map) },
            &format!("VFIO_IOMMU_MAP_DMA of {size} bytes at vaddr {vaddr:#x} to iova {iova:#x}"),
        )?;
        Ok(())
    }

    /// `VFIO_IOMMU_UNMAP_DMA` of exactly what `map_dma` mapped.
    pub fn unmap_dma(&self, iova: u64, size: u64) -> Result<(), VfioError> {
        let mut unmap = vfio_iommu_type1_dma_unmap {
            argsz: argsz::<vfio_iommu_type1_dma_unmap>(),
            flags: 0,
            iova,
            size,
            ..Default::default()
        };
        // SAFETY: the kernel reads argsz bytes of `unmap` and writes back `size`
        // (no dirty bitmap is asked for, so nothing past argsz).
        check(
            unsafe { ioctl_with_mut_ref(&self.container, VFIO_IOMMU_UNMAP_DMA(), &mut unmap) },
            &format!("VFIO_IOMMU_UNMAP_DMA of {size} bytes at iova {iova:#x}"),
        )?;
        if unmap.size != size {
            return Err(VfioError::ShortUnmap {
                iova,
                size,
                unmapped: unmap.size,
            });
        }
        Ok(())
    }
}
