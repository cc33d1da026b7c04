//! Why a zap happened, named from the kernel stack that made it.

use std::fmt;

/// The cause of a zap. Stacks are read from the kernel apart from the zap
/// events, so a zap's cause is `Unknown` until its stack is named.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ZapCause {
    /// A config write clearing memory decode.
    DecodeOff,
    /// `VFIO_DEVICE_RESET`.
    Reset,
    HotReset,
    Power,
    DmaBuf,
    /// Another caller: the first function outside the zap machinery.
    Caller(String),
    /// No stack, or none read yet.
    #[default]
    Unknown,
}

impl ZapCause {
    pub fn name(&self) -> &str {
        match self {
            Self::DecodeOff => "decode-off",
            Self::Reset => "reset",
            Self::HotReset => "hot-reset",
            Self::Power => "power",
            Self::DmaBuf => "dma-buf",
            Self::Caller(f) => f,
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ZapCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Classifies a zap from its stack (innermost frame first). The first rule
/// that any frame matches wins; more specific rules come first, since every
/// hot reset also runs through the ioctl handler and power-state changes can
/// arrive as config writes.
pub fn classify<S: AsRef<str>>(frames: &[S]) -> ZapCause {
    const RULES: &[(ZapCause, &[&str])] = &[
        (ZapCause::HotReset, &["hot_reset"]),
        (
            ZapCause::Power,
            &[
                "power_state",
                "runtime_suspend",
                "pm_entry",
                "low_power",
                "pm_config_write",
            ],
        ),
        (
            ZapCause::DecodeOff,
            &["vfio_basic_config_write", "vfio_pci_config_rw"],
        ),
        (
            ZapCause::Reset,
            &["vfio_pci_ioctl_reset", "vfio_pci_core_ioctl", "try_reset"],
        ),
        (ZapCause::DmaBuf, &["dma_buf_move"]),
    ];
    let frames = || frames.iter().map(AsRef::as_ref);
    for (cause, needles) in RULES {
        if frames().any(|f: &str| needles.iter().any(|n| f.contains(n))) {
            return cause.clone();
        }
    }
    frames()
        .find(|f| !f.contains("unmap_mapping") && !f.contains("zap") && !f.contains("kprobe"))
        .map_or(ZapCause::Unknown, |f| ZapCause::Caller(f.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(frames: &[&str]) -> String {
        classify(frames).to_string()
    }

    #[test]
    fn config_write_is_decode_off() {
        let stack = [
            "unmap_mapping_range",
            "vfio_basic_config_write",
            "vfio_pci_config_rw",
            "vfs_write",
        ];
        assert_eq!(name(&stack), "decode-off");
    }

    #[test]
    fn device_reset_ioctl_is_reset() {
        assert_eq!(
            name(&[
                "unmap_mapping_range",
                "vfio_pci_core_ioctl",
                "__x64_sys_ioctl"
            ]),
            "reset"
        );
    }

    #[test]
    fn reset_before_6_10_runs_through_the_decode_helper_but_is_a_reset() {
        let stack = [
            "vfio_pci_zap_and_vma_lock",
            "vfio_pci_zap_and_down_write_memory_lock",
            "vfio_pci_core_ioctl",
        ];
        assert_eq!(name(&stack), "reset");
    }

    #[test]
    fn hot_reset_wins_over_the_ioctl_it_runs_in() {
        let stack = [
            "unmap_mapping_range",
            "vfio_pci_dev_set_hot_reset",
            "vfio_pci_core_ioctl",
        ];
        assert_eq!(name(&stack), "hot-reset");
    }

    #[test]
    fn power_wins_over_config_writes() {
        let stack = [
            "unmap_mapping_range",
            "vfio_pci_set_power_state",
            "vfio_basic_config_write",
        ];
        assert_eq!(name(&stack), "power");
    }

    #[test]
    fn other_callers_are_named() {
        assert_eq!(
            name(&["unmap_mapping_range", "some_driver_fn", "vfs_write"]),
            "some_driver_fn"
        );
        assert_eq!(name(&[]), "unknown");
    }
}
