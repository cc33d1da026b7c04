//! The running kernel: release, and the generation of the vfio mmap code it has.

use serde::{Deserialize, Serialize};

/// How vfio-pci maps BARs, by kernel generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Generation {
    /// Before 6.10: the first fault remaps the whole VMA (`remap_pfn_range`);
    /// `vm_pgoff` holds the BAR's physical pfn.
    #[serde(rename = "remap")]
    Remap,
    /// 6.10-6.11: per-device address space, one fault inserts every page of
    /// the VMA with `vmf_insert_pfn`; `vm_pgoff` is the vfio region offset.
    #[serde(rename = "per-page")]
    PerPage,
    /// 6.12 on: `huge_fault` inserts one 4 KiB, 2 MiB or 1 GiB page per fault.
    #[serde(rename = "huge-fault")]
    HugeFault,
}

impl Generation {
    pub fn from_version(major: u32, minor: u32) -> Self {
        match (major, minor) {
            (m, _) if m > 6 => Self::HugeFault,
            (6, n) if n >= 12 => Self::HugeFault,
            (6, n) if n >= 10 => Self::PerPage,
            _ => Self::Remap,
        }
    }

    /// As the JSON names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Remap => "remap",
            Self::PerPage => "per-page",
            Self::HugeFault => "huge-fault",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Remap => "before 6.10: whole-VMA remap on first fault",
            Self::PerPage => "6.10-6.11: vmf_insert_pfn of every page per fault",
            Self::HugeFault => "6.12+: huge_fault, one 4K/2M/1G insert per fault",
        }
    }

    /// `vm_pgoff` encodes the vfio region index and offset (6.10 on).
    pub fn pgoff_is_region_offset(self) -> bool {
        self != Self::Remap
    }
}

/// `major.minor` of a release string such as `6.12.117+deb12-amd64`.
pub fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// The running kernel, as `probe::preflight` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kernel {
    pub release: String,
    pub generation: Option<Generation>,
}

impl Kernel {
    /// The generation a release number suggests. At run time the
    /// generation comes from the kernel's symbols (`probe::table::generation`),
    /// which hold where a distribution backported the mmap rewrites.
    pub fn from_release(release: String) -> Self {
        let generation = parse_version(&release).map(|(a, b)| Generation::from_version(a, b));
        Self {
            release,
            generation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_follow_the_mmap_rewrites() {
        let g = |r: &str| Kernel::from_release(r.into()).generation;
        assert_eq!(g("6.1.0-56-amd64"), Some(Generation::Remap));
        assert_eq!(g("6.9.12"), Some(Generation::Remap));
        assert_eq!(g("6.10.0"), Some(Generation::PerPage));
        assert_eq!(g("6.12.117+deb12-amd64"), Some(Generation::HugeFault));
        assert_eq!(g("7.3.4+deb13-amd64"), Some(Generation::HugeFault));
        assert_eq!(g("5.15.0"), Some(Generation::Remap));
        assert_eq!(g("nonsense"), None);
    }
}
