//! PCI devices from sysfs. The root is a parameter so tests use a fake tree.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// A PCI address `domain:bus:device.function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    pub domain: u32,
    pub bus: u8,
    pub devfn: u8,
}

impl Bdf {
    /// Parses `0000:01:00.0` (the domain may be omitted: `01:00.0`).
    pub fn parse(s: &str) -> Option<Self> {
        let (domain, rest) = match s.matches(':').count() {
            2 => {
                let (d, r) = s.split_once(':')?;
                (u32::from_str_radix(d, 16).ok()?, r)
            }
            1 => (0, s),
            _ => return None,
        };
        let (bus, rest) = rest.split_once(':')?;
        let (dev, func) = rest.split_once('.')?;
        let bus = u8::from_str_radix(bus, 16).ok()?;
        let dev = u8::from_str_radix(dev, 16).ok().filter(|d| *d < 32)?;
        let func = u8::from_str_radix(func, 16).ok().filter(|f| *f < 8)?;
        Some(Self {
            domain,
            bus,
            devfn: (dev << 3) | func,
        })
    }

    /// The key the eBPF programs use for this device.
    pub fn key(self) -> u64 {
        vfio_trace_common::device_key(self.domain, self.bus, self.devfn)
    }

    pub fn from_key(key: u64) -> Self {
        Self {
            domain: (key >> 16) as u32,
            bus: (key >> 8) as u8,
            devfn: key as u8,
        }
    }
}

impl std::fmt::Display for Bdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain,
            self.bus,
            self.devfn >> 3,
            self.devfn & 7
        )
    }
}

impl Serialize for Bdf {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One memory BAR of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bar {
    pub index: u32,
    pub start: u64,
    pub size: u64,
    pub prefetchable: bool,
}

/// A PCI device as sysfs describes it.
#[derive(Debug, Clone, Serialize)]
pub struct PciDevice {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    pub driver: Option<String>,
    pub iommu_group: Option<u32>,
    pub bars: Vec<Bar>,
}

impl PciDevice {
    /// The BAR whose physical range holds `addr`.
    pub fn bar_at(&self, addr: u64) -> Option<&Bar> {
        self.bars
            .iter()
            .find(|b| addr >= b.start && addr - b.start < b.size)
    }
}

const IORESOURCE_MEM: u64 = 0x200;
const IORESOURCE_PREFETCH: u64 = 0x2000;

/// Parses sysfs `resource`: one `start end flags` line per resource; the first
/// six are the BARs.
pub fn parse_resources(text: &str) -> Vec<Bar> {
    text.lines()
        .take(6)
        .enumerate()
        .filter_map(|(i, line)| {
            let mut it = line
                .split_whitespace()
                .map(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16));
            let (Some(Ok(start)), Some(Ok(end)), Some(Ok(flags))) =
                (it.next(), it.next(), it.next())
            else {
                return None;
            };
            (flags & IORESOURCE_MEM != 0 && end > start).then(|| Bar {
                index: i as u32,
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
            iommu_group: link_name(&dir.join("iommu_group")).and_then(|g| g.parse().ok()),
            bars: std::fs::read_to_string(dir.join("resource"))
                .map(|t| parse_resources(&t))
                .unwrap_or_default(),
        })
    }

    /// Every device bound to vfio-pci, in address order.
    pub fn vfio_devices(&self) -> Vec<PciDevice> {
        let Ok(entries) = std::fs::read_dir(self.root.join("bus/pci/devices")) else {
            return Vec::new();
        };
        let mut devices: Vec<PciDevice> = entries
            .filter_map(|e| Bdf::parse(e.ok()?.file_name().to_str()?))
            .filter_map(|bdf| self.device(bdf))
            .filter(|d| d.driver.as_deref() == Some("vfio-pci"))
            .collect();
        devices.sort_by_key(|d| d.bdf);
        devices
    }

    /// Loaded modules among `names` (from `/sys/module`).
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

    #[test]
    fn bdf_round_trips_and_rejects_garbage() {
        let bdf = Bdf::parse("0000:01:1f.7").expect("valid");
        assert_eq!(bdf.to_string(), "0000:01:1f.7");
        assert_eq!(Bdf::parse("01:00.0"), Bdf::parse("0000:01:00.0"));
        assert_eq!(Bdf::from_key(bdf.key()), bdf);
        for bad in [
            "",
            "0000:01:00",
            "zz:00.0",
            "0000:01:20.0",
            "0000:01:00.8",
            "1:2:3:4.0",
        ] {
            assert!(Bdf::parse(bad).is_none(), "{bad:?} should not parse");
        }
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
