//! PCI addresses, and PCI devices from sysfs (the `sysfs` module: its root is
//! a parameter so tests use a fake tree). Every command parses `--device` here.

pub mod pci_ids;
mod sysfs;

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use sysfs::{Sysfs, SysfsError};

/// An address that is not `[DOMAIN:]BUS:DEV.FN`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "invalid PCI address {0:?}: expected [DOMAIN:]BUS:DEVICE.FUNCTION in hex, \
     e.g. 0000:01:00.0, 01:00.0 or 1:00.0"
)]
pub struct BdfError(String);

/// A PCI address `domain:bus:device.function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    pub domain: u32,
    pub bus: u8,
    pub devfn: u8,
}

impl Bdf {
    /// Parses `DOMAIN:BUS:DEV.FN` or `BUS:DEV.FN` (domain 0), in hex of any
    /// case, with or without leading zeros: `0000:01:00.0`, `01:00.0`,
    /// `1:00.0`, `10000:e1:00.0` (VMD domains are wider than 16 bits).
    pub fn parse(s: &str) -> Result<Self, BdfError> {
        let bad = || BdfError(s.to_owned());
        let (domain, rest) = match s.matches(':').count() {
            2 => s.split_once(':').ok_or_else(bad)?,
            1 => ("0", s),
            _ => return Err(bad()),
        };
        let (bus, rest) = rest.split_once(':').ok_or_else(bad)?;
        let (dev, func) = rest.split_once('.').ok_or_else(bad)?;
        // Digits only: from_str_radix alone would take a sign ("+1"), and the
        // address becomes a sysfs path component.
        let hex = |t: &str, digits: usize, max: u32| {
            (!t.is_empty() && t.len() <= digits && t.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(t, 16).ok())
                .flatten()
                .filter(|v| *v <= max)
                .ok_or_else(bad)
        };
        let domain = hex(domain, 8, u32::MAX)?;
        let bus = hex(bus, 2, 0xff)?;
        let dev = hex(dev, 2, 0x1f)?;
        let func = hex(func, 1, 7)?;
        #[allow(
            clippy::cast_possible_truncation,
            reason = "bus <= 0xff, dev <= 0x1f and func <= 7, checked above"
        )]
        let (bus, devfn) = (bus as u8, ((dev << 3) | func) as u8);
        Ok(Self { domain, bus, devfn })
    }

    /// The key the eBPF programs use for this device.
    pub fn key(self) -> u64 {
        vfio_trace_common::device_key(self.domain, self.bus, self.devfn)
    }

    #[allow(
        clippy::cast_possible_truncation,
        reason = "each field takes its own bits of the key"
    )]
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

impl FromStr for Bdf {
    type Err = BdfError;

    fn from_str(s: &str) -> Result<Self, BdfError> {
        Self::parse(s)
    }
}

impl Serialize for Bdf {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bdf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // Where other modules' tests find the fake sysfs.
    pub use super::sysfs::tests::{IVSHMEM_RESOURCE, fake_sysfs};

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
            assert!(Bdf::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn every_form_names_the_same_device() {
        let want = Bdf {
            domain: 0,
            bus: 1,
            devfn: 0,
        };
        for form in [
            "0000:01:00.0",
            "01:00.0",
            "1:00.0",
            "0:1:0.0",
            "0000:01:00.0",
        ] {
            assert_eq!(Bdf::parse(form), Ok(want), "{form}");
            assert_eq!(form.parse::<Bdf>(), Ok(want), "{form}");
        }
        let upper = Bdf::parse("0000:AF:1F.7").expect("upper case");
        assert_eq!(upper.to_string(), "0000:af:1f.7");
    }

    #[test]
    fn vmd_domains_wider_than_16_bits() {
        let vmd = Bdf::parse("10000:e1:00.0").expect("VMD domain");
        assert_eq!(vmd.domain, 0x1_0000);
        assert_eq!(vmd.bus, 0xe1);
        // The kernel's own spelling, so it is also the sysfs name.
        assert_eq!(vmd.to_string(), "10000:e1:00.0");
        assert_eq!(
            Bdf::parse("ffffffff:00:00.0").map(|b| b.domain),
            Ok(u32::MAX)
        );
    }

    #[test]
    fn bad_addresses_get_one_line_naming_the_forms() {
        for bad in [
            "",
            "01:00",
            "0000:01:00",
            "0000:01:00.8",
            "0000:01:20.0",
            "0000:100:00.0",
            "0000:01:000.0",
            "100000000:00:00.0",
            "+1:00.0",
            "0000:-1:00.0",
            "../../x:00.0",
            "0:0:0:0.0",
            "0000:01:00.0 ",
            "nonsense",
        ] {
            let err = Bdf::parse(bad).expect_err(bad).to_string();
            assert_eq!(
                err,
                format!(
                    "invalid PCI address {bad:?}: expected [DOMAIN:]BUS:DEVICE.FUNCTION \
                     in hex, e.g. 0000:01:00.0, 01:00.0 or 1:00.0"
                )
            );
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn serde_uses_the_kernel_spelling() {
        let bdf = Bdf::parse("1:00.0").expect("valid");
        let json = serde_json::to_string(&bdf).expect("serialize");
        assert_eq!(json, "\"0000:01:00.0\"");
        assert_eq!(serde_json::from_str::<Bdf>(&json).expect("read"), bdf);
        let err = serde_json::from_str::<Bdf>("\"0000:01:00\"").expect_err("bad");
        assert!(err.to_string().starts_with("invalid PCI address"), "{err}");
    }
}
