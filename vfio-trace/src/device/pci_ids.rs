//! Vendor and device names from the system's pci.ids database, when it has
//! one; without it `top` and `serve` show the numbers only.

use std::{collections::HashMap, path::Path};

/// Where distributions install pci.ids.
pub const PATHS: [&str; 3] = [
    "/usr/share/misc/pci.ids",
    "/usr/share/hwdata/pci.ids",
    "/usr/share/pci.ids",
];

#[derive(Debug, Clone, Default)]
pub struct PciIds {
    vendors: HashMap<u16, String>,
    devices: HashMap<(u16, u16), String>,
}

impl PciIds {
    /// The first database found in [`PATHS`]; empty when there is none.
    #[must_use]
    pub fn system() -> Self {
        PATHS
            .iter()
            .find_map(|p| Self::read(Path::new(p)))
            .unwrap_or_default()
    }

    #[must_use]
    pub fn read(path: &Path) -> Option<Self> {
        // The file is mostly UTF-8 with a few Latin-1 names.
        let bytes = std::fs::read(path).ok()?;
        Some(Self::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// Parses `vvvv  Vendor` lines and their `\tdddd  Device` lines; the
    /// class list at the end (`C xx`) and subsystems (`\t\t`) are skipped.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut ids = Self::default();
        let mut vendor = None;
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() || line.starts_with("\t\t") {
                continue;
            }
            if let Some(rest) = line.strip_prefix('\t') {
                if let (Some(v), Some((id, name))) = (vendor, split(rest)) {
                    ids.devices.insert((v, id), name);
                }
            } else if line.starts_with("C ") {
                break;
            } else {
                vendor = split(line).map(|(id, name)| {
                    ids.vendors.insert(id, name);
                    id
                });
            }
        }
        ids
    }

    /// `Vendor Device`, the vendor alone, or `None`.
    #[must_use]
    pub fn name(&self, vendor: u16, device: u16) -> Option<String> {
        let v = self.vendors.get(&vendor)?;
        Some(match self.devices.get(&(vendor, device)) {
            Some(d) => format!("{v} {d}"),
            None => v.clone(),
        })
    }
}

fn split(line: &str) -> Option<(u16, String)> {
    let (id, name) = line.split_once("  ")?;
    Some((
        u16::from_str_radix(id.trim(), 16).ok()?,
        name.trim().to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const SAMPLE: &str = "# comment\n\
        1af4  Red Hat, Inc.\n\
        \t1110  Inter-VM shared memory\n\
        \t\t1af4 1100  QEMU Virtual Machine\n\
        8086  Intel Corporation\n\
        C 00  Unclassified device\n\
        \t00  Non-VGA unclassified device\n";

    #[test]
    fn names_come_from_vendor_and_device_lines() {
        let ids = PciIds::parse(SAMPLE);
        assert_eq!(
            ids.name(0x1af4, 0x1110).as_deref(),
            Some("Red Hat, Inc. Inter-VM shared memory")
        );
        assert_eq!(
            ids.name(0x8086, 0x1234).as_deref(),
            Some("Intel Corporation")
        );
        assert_eq!(ids.name(0x10de, 0x0001), None);
    }
}
