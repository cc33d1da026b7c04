//! PCI devices as sysfs shows them, and the one check that a device is bound to
//! vfio-pci, shared by `record`, `check` and `exercise`. The root is a
//! parameter (`/sys` in production) so tests use a fake tree.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::{Bar, Bdf, PciDevice};

/// The driver every traced or exercised device must be bound to.
const VFIO_PCI: &str = "vfio-pci";

/// Why a device cannot be used, each a one-line message.
#[derive(Debug, Error)]
pub enum SysfsError {
    #[error("no PCI device {0}")]
    NoDevice(Bdf),
    #[error("{0} is not bound to any driver, not vfio-pci")]
    Unbound(Bdf),
    #[error("{bdf} is bound to {driver}, not vfio-pci")]
    WrongDriver { bdf: Bdf, driver: String },
    #[error("{bdf} has no IOMMU group ({path}: {source})")]
    NoGroup {
        bdf: Bdf,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{bdf}: IOMMU group link {path} does not end in a group number")]
    BadGroup { bdf: Bdf, path: PathBuf },
}

impl PciDevice {
    /// Whether vfio-pci owns the device, as the error to show when not.
    pub fn check_vfio(&self) -> Result<(), SysfsError> {
        match self.driver.as_deref() {
            Some(VFIO_PCI) => Ok(()),
            Some(other) => Err(SysfsError::WrongDriver {
                bdf: self.bdf,
                driver: other.to_owned(),
            }),
            None => Err(SysfsError::Unbound(self.bdf)),
        }
    }
}

const IORESOURCE_MEM: u64 = 0x200;
const IORESOURCE_PREFETCH: u64 = 0x2000;

/// Parses sysfs `resource`: one `start end flags` line per resource; the first
/// six are the BARs.
fn parse_resources(text: &str) -> Vec<Bar> {
    text.lines()
        .take(6)
        .enumerate()
        .filter_map(|(i, line)| {
            let index = u32::try_from(i).ok()?;
            let mut it = line
                .split_whitespace()
                .map(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16));
            let (Some(Ok(start)), Some(Ok(end)), Some(Ok(flags))) =
                (it.next(), it.next(), it.next())
            else {
                return None;
            };
            (flags & IORESOURCE_MEM != 0 && end > start).then(|| Bar {
                index,
                start,
                size: end - start + 1,
                prefetchable: flags & IORESOURCE_PREFETCH != 0,
            })
        })
        .collect()
}

fn read_hex16(path: &Path) -> Option<u16> {
    let s = std::fs::read_to_string(path).ok()?;
    u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

fn link_name(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()?
        .file_name()?
        .to_str()
        .map(str::to_owned)
}

/// Sysfs with an injectable root (`/sys` in production).
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/sys"),
        }
    }
}

impl Sysfs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn device_dir(&self, bdf: Bdf) -> PathBuf {
        self.root.join("bus/pci/devices").join(bdf.to_string())
    }

    /// One device, or `None` when sysfs has no such address.
    pub fn device(&self, bdf: Bdf) -> Option<PciDevice> {
        let dir = self.device_dir(bdf);
        if !dir.exists() {
            return None;
        }
        Some(PciDevice {
            bdf,
            vendor: read_hex16(&dir.join("vendor")).unwrap_or(0),
            device: read_hex16(&dir.join("device")).unwrap_or(0),
            driver: link_name(&dir.join("driver")),
            iommu_group: self.iommu_group(bdf).ok(),
            bars: std::fs::read_to_string(dir.join("resource"))
                .map(|t| parse_resources(&t))
                .unwrap_or_default(),
        })
    }

    /// The device at `bdf`, which must be bound to vfio-pci.
    pub fn vfio_device(&self, bdf: Bdf) -> Result<PciDevice, SysfsError> {
        let dev = self.device(bdf).ok_or(SysfsError::NoDevice(bdf))?;
        dev.check_vfio()?;
        Ok(dev)
    }

    /// The device's IOMMU group number, from its `iommu_group` link.
    pub fn iommu_group(&self, bdf: Bdf) -> Result<u32, SysfsError> {
        let path = self.device_dir(bdf).join("iommu_group");
        let target = path.read_link().map_err(|source| SysfsError::NoGroup {
            bdf,
            path: path.clone(),
            source,
        })?;
        target
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .ok_or(SysfsError::BadGroup { bdf, path })
    }

    /// Every device bound to vfio-pci, in address order.
    pub fn vfio_devices(&self) -> Vec<PciDevice> {
        let Ok(entries) = std::fs::read_dir(self.root.join("bus/pci/devices")) else {
            return Vec::new();
        };
        let mut devices: Vec<PciDevice> = entries
            .filter_map(|e| Bdf::parse(e.ok()?.file_name().to_str()?).ok())
            .filter_map(|bdf| self.device(bdf))
            .filter(|d| d.check_vfio().is_ok())
            .collect();
        devices.sort_by_key(|d| d.bdf);
        devices
    }

    /// Whether module `name` is loaded (from `/sys/module`).
    pub fn module_loaded(&self, name: &str) -> bool {
        self.root.join("module").join(name).exists()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a fake `/sys` with one device bound to `driver`.
    pub fn fake_sysfs(bdf: &str, driver: Option<&str>, resource: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        let dev = root.path().join("bus/pci/devices").join(bdf);
        std::fs::create_dir_all(&dev).expect("mkdir");
        std::fs::write(dev.join("vendor"), "0x1af4\n").expect("write");
        std::fs::write(dev.join("device"), "0x1110\n").expect("write");
        std::fs::write(dev.join("resource"), resource).expect("write");
        if let Some(driver) = driver {
            let drv = root.path().join("bus/pci/drivers").join(driver);
            std::fs::create_dir_all(&drv).expect("mkdir");
            std::os::unix::fs::symlink(&drv, dev.join("driver")).expect("symlink");
        }
        let group = root.path().join("kernel/iommu_groups/7");
        std::fs::create_dir_all(&group).expect("mkdir");
        std::os::unix::fs::symlink(&group, dev.join("iommu_group")).expect("symlink");
        root
    }

    pub const IVSHMEM_RESOURCE: &str = "\
0x00000000fea00000 0x00000000fea000ff 0x0000000000040200
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000800000000 0x000000083fffffff 0x000000000014220c
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
";

    fn bdf(s: &str) -> Bdf {
        Bdf::parse(s).expect("valid address")
    }

    /// Points the device's `iommu_group` link at `group`, or removes it.
    fn regroup(root: &Path, dev: &str, group: Option<&str>) {
        let link = root.join("bus/pci/devices").join(dev).join("iommu_group");
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link).expect("unlink group");
        }
        if let Some(group) = group {
            let target = root.join("kernel/iommu_groups").join(group);
            std::fs::create_dir_all(&target).expect("mkdir");
            std::os::unix::fs::symlink(&target, &link).expect("symlink");
        }
    }

    const BDF: &str = "0000:01:00.0";

    #[test]
    fn bound_to_vfio() {
        let root = fake_sysfs(BDF, Some("vfio-pci"), IVSHMEM_RESOURCE);
        let sys = Sysfs::new(root.path());
        let dev = sys.vfio_device(bdf("1:00.0")).expect("bound");
        assert_eq!(dev.bars.len(), 2);
        assert_eq!(sys.iommu_group(dev.bdf).expect("group"), 7);
    }

    #[test]
    fn missing_device() {
        let root = fake_sysfs(BDF, Some("vfio-pci"), IVSHMEM_RESOURCE);
        let err = Sysfs::new(root.path())
            .vfio_device(bdf("02:00.0"))
            .expect_err("no device");
        assert_eq!(err.to_string(), "no PCI device 0000:02:00.0");
    }

    #[test]
    fn wrong_or_no_driver() {
        let root = fake_sysfs(BDF, Some("nvme"), IVSHMEM_RESOURCE);
        let err = Sysfs::new(root.path())
            .vfio_device(bdf(BDF))
            .expect_err("nvme");
        assert_eq!(
            err.to_string(),
            "0000:01:00.0 is bound to nvme, not vfio-pci"
        );
        let root = fake_sysfs(BDF, None, IVSHMEM_RESOURCE);
        let err = Sysfs::new(root.path())
            .vfio_device(bdf(BDF))
            .expect_err("unbound");
        assert_eq!(
            err.to_string(),
            "0000:01:00.0 is not bound to any driver, not vfio-pci"
        );
    }

    #[test]
    fn group_problems() {
        let root = fake_sysfs(BDF, Some("vfio-pci"), IVSHMEM_RESOURCE);
        let sys = Sysfs::new(root.path());
        regroup(root.path(), BDF, None);
        let err = sys.iommu_group(bdf(BDF)).expect_err("no group");
        assert!(
            err.to_string()
                .starts_with("0000:01:00.0 has no IOMMU group"),
            "{err}"
        );
        assert_eq!(sys.vfio_device(bdf(BDF)).expect("bound").iommu_group, None);
        regroup(root.path(), BDF, Some("seven"));
        let err = sys.iommu_group(bdf(BDF)).expect_err("bad group");
        assert!(
            err.to_string().contains("does not end in a group number"),
            "{err}"
        );
    }

    #[test]
    fn vmd_domain_devices_are_found() {
        let root = fake_sysfs("10000:e1:00.0", Some("vfio-pci"), IVSHMEM_RESOURCE);
        let devs = Sysfs::new(root.path()).vfio_devices();
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].bdf, bdf("10000:e1:00.0"));
    }

    #[test]
    fn resources_give_memory_bars_only() {
        let bars = parse_resources(IVSHMEM_RESOURCE);
        assert_eq!(bars.len(), 2);
        assert_eq!(
            bars[1],
            Bar {
                index: 2,
                start: 0x8_0000_0000,
                size: 1 << 30,
                prefetchable: true
            }
        );
        assert_eq!(bars[0].size, 256);
    }

    #[test]
    fn finds_vfio_bound_devices_in_a_fake_tree() {
        let root = fake_sysfs("0000:01:00.0", Some("vfio-pci"), IVSHMEM_RESOURCE);
        let sys = Sysfs::new(root.path());
        let devs = sys.vfio_devices();
        assert_eq!(devs.len(), 1);
        assert_eq!(devs[0].vendor, 0x1af4);
        assert_eq!(devs[0].iommu_group, Some(7));
        assert_eq!(devs[0].bar_at(0x8_0000_1000).map(|b| b.index), Some(2));

        let other = fake_sysfs("0000:02:00.0", Some("nvme"), IVSHMEM_RESOURCE);
        assert!(Sysfs::new(other.path()).vfio_devices().is_empty());
    }
}
