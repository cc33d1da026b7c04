//! The sysfs checks made before opening anything: the device exists, vfio-pci owns
//! it, and its IOMMU group. The root is a parameter so tests use a fake tree.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SysfsError {
    #[error("bad PCI address '{0}': expected DDDD:BB:DD.F, e.g. 0000:01:00.0")]
    BadAddress(String),
    #[error("no PCI device {0}")]
    NoDevice(String),
    #[error("{0} is not bound to any driver")]
    Unbound(String),
    #[error("{bdf} is bound to {driver}, not vfio-pci")]
    WrongDriver { bdf: String, driver: String },
    #[error("{bdf} has no IOMMU group ({path}: {source})")]
    NoGroup {
        bdf: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{bdf}: IOMMU group link {path} does not end in a group number")]
    BadGroup { bdf: String, path: PathBuf },
}

/// Normalises `01:00.0` or `0000:01:00.0` (any case) to the kernel's spelling,
/// which is also what VFIO_GROUP_GET_DEVICE_FD matches against.
pub fn normalize_bdf(s: &str) -> Result<String, SysfsError> {
    let bad = || SysfsError::BadAddress(s.to_owned());
    let full = if s.matches(':').count() == 1 {
        format!("0000:{s}")
    } else {
        s.to_owned()
    };
    let (domain, rest) = full.split_once(':').ok_or_else(bad)?;
    let (bus, rest) = rest.split_once(':').ok_or_else(bad)?;
    let (dev, func) = rest.split_once('.').ok_or_else(bad)?;
    let hex = |t: &str, width: usize, max: u32| {
        (t.len() == width && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(t, 16).ok())
            .flatten()
            .filter(|v| *v <= max)
            .ok_or_else(bad)
    };
    let domain = hex(domain, 4, 0xffff)?;
    let bus = hex(bus, 2, 0xff)?;
    let dev = hex(dev, 2, 0x1f)?;
    let func = hex(func, 1, 7)?;
    Ok(format!("{domain:04x}:{bus:02x}:{dev:02x}.{func:x}"))
}

/// Checks that `bdf` (normalised) exists under `root` and is bound to vfio-pci,
/// and returns its IOMMU group number.
pub fn vfio_group(root: &Path, bdf: &str) -> Result<u32, SysfsError> {
    let dev = root.join("bus/pci/devices").join(bdf);
    if !dev.exists() {
        return Err(SysfsError::NoDevice(bdf.to_owned()));
    }
    let driver = match dev.join("driver").read_link() {
        Ok(target) => last_component(&target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SysfsError::Unbound(bdf.to_owned()));
        }
        // A driver link that cannot be read says nothing useful; name it.
        Err(e) => format!("an unreadable driver ({e})"),
    };
    if driver != "vfio-pci" {
        return Err(SysfsError::WrongDriver {
            bdf: bdf.to_owned(),
            driver,
        });
    }
    let path = dev.join("iommu_group");
    let target = path.read_link().map_err(|source| SysfsError::NoGroup {
        bdf: bdf.to_owned(),
        path: path.clone(),
        source,
    })?;
    last_component(&target)
        .parse()
        .map_err(|_| SysfsError::BadGroup {
            bdf: bdf.to_owned(),
            path,
        })
}

fn last_component(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    const BDF: &str = "0000:01:00.0";

    /// A sysfs tree with one device, optionally bound and grouped.
    fn fake(driver: Option<&str>, group: Option<&str>) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        let devices = root.path().join("bus/pci/devices");
        let dev = root.path().join("devices/pci0000:00").join(BDF);
        fs::create_dir_all(&dev).expect("device dir");
        fs::create_dir_all(&devices).expect("devices dir");
        symlink(&dev, devices.join(BDF)).expect("device link");
        if let Some(driver) = driver {
            let d = root.path().join("bus/pci/drivers").join(driver);
            fs::create_dir_all(&d).expect("driver dir");
            symlink(&d, dev.join("driver")).expect("driver link");
        }
        if let Some(group) = group {
            let g = root.path().join("kernel/iommu_groups").join(group);
            fs::create_dir_all(&g).expect("group dir");
            symlink(&g, dev.join("iommu_group")).expect("group link");
        }
        root
    }

    #[test]
    fn addresses() {
        assert_eq!(normalize_bdf("0000:01:00.0").expect("ok"), BDF);
        assert_eq!(normalize_bdf("01:00.0").expect("ok"), BDF);
        assert_eq!(normalize_bdf("0000:AF:1F.7").expect("ok"), "0000:af:1f.7");
        for bad in [
            "",
            "01:00",
            "0000:01:00.8",
            "0000:01:20.0",
            "1:00.0",
            "../../x:00.0",
            "0:0:0:0.0",
        ] {
            let err = normalize_bdf(bad).expect_err(bad).to_string();
            assert!(err.starts_with("bad PCI address"), "{bad}: {err}");
        }
    }

    #[test]
    fn bound_to_vfio() {
        let root = fake(Some("vfio-pci"), Some("7"));
        assert_eq!(vfio_group(root.path(), BDF).expect("group"), 7);
    }

    #[test]
    fn missing_device() {
        let root = fake(Some("vfio-pci"), Some("7"));
        let err = vfio_group(root.path(), "0000:02:00.0").expect_err("no device");
        assert_eq!(err.to_string(), "no PCI device 0000:02:00.0");
    }

    #[test]
    fn wrong_or_no_driver() {
        let root = fake(Some("nvme"), Some("7"));
        let err = vfio_group(root.path(), BDF).expect_err("nvme");
        assert_eq!(
            err.to_string(),
            "0000:01:00.0 is bound to nvme, not vfio-pci"
        );
        let root = fake(None, Some("7"));
        let err = vfio_group(root.path(), BDF).expect_err("unbound");
        assert_eq!(err.to_string(), "0000:01:00.0 is not bound to any driver");
    }

    #[test]
    fn group_problems() {
        let root = fake(Some("vfio-pci"), None);
        let err = vfio_group(root.path(), BDF).expect_err("no group");
        assert!(
            err.to_string()
                .starts_with("0000:01:00.0 has no IOMMU group"),
            "{err}"
        );
        let root = fake(Some("vfio-pci"), Some("seven"));
        let err = vfio_group(root.path(), BDF).expect_err("bad group");
        assert!(
            err.to_string().contains("does not end in a group number"),
            "{err}"
        );
    }
}
