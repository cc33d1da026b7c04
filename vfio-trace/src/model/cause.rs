//! Why a zap happened, named from the kernel stack that made it.

/// Classifies a zap from its stack (innermost frame first). The first rule
/// that any frame matches wins; more specific rules come first, since every
/// hot reset also runs through the ioctl handler and power-state changes can
/// arrive as config writes.
pub fn classify(frames: &[&str]) -> String {
    const RULES: &[(&str, &[&str])] = &[
        ("hot-reset", &["hot_reset"]),
        (
            "power",
            &[
                "power_state",
                "runtime_suspend",
                "pm_entry",
                "low_power",
                "pm_config_write",
            ],
        ),
        (
            "decode-off",
            &["vfio_basic_config_write", "vfio_pci_config_rw"],
        ),
        (
            "reset",
            &["vfio_pci_ioctl_reset", "vfio_pci_core_ioctl", "try_reset"],
        ),
        ("dma-buf", &["dma_buf_move"]),
    ];
    for (cause, needles) in RULES {
        if frames.iter().any(|f| needles.iter().any(|n| f.contains(n))) {
            return (*cause).to_owned();
        }
    }
    // Another caller: name the first frame outside the zap machinery itself.
    frames
        .iter()
        .find(|f| !f.contains("unmap_mapping") && !f.contains("zap") && !f.contains("kprobe"))
        .map_or_else(|| "unknown".to_owned(), |f| (*f).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_write_is_decode_off() {
        let stack = [
            "unmap_mapping_range",
            "vfio_basic_config_write",
            "vfio_pci_config_rw",
            "vfs_write",
        ];
        assert_eq!(classify(&stack), "decode-off");
    }

    #[test]
    fn device_reset_ioctl_is_reset() {
        assert_eq!(
            classify(&[
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
        assert_eq!(classify(&stack), "reset");
    }

    #[test]
    fn hot_reset_wins_over_the_ioctl_it_runs_in() {
        let stack = [
            "unmap_mapping_range",
            "vfio_pci_dev_set_hot_reset",
            "vfio_pci_core_ioctl",
        ];
        assert_eq!(classify(&stack), "hot-reset");
    }

    #[test]
    fn power_wins_over_config_writes() {
        let stack = [
            "unmap_mapping_range",
            "vfio_pci_set_power_state",
            "vfio_basic_config_write",
        ];
        assert_eq!(classify(&stack), "power");
    }

    #[test]
    fn other_callers_are_named() {
        assert_eq!(
            classify(&["unmap_mapping_range", "some_driver_fn", "vfs_write"]),
            "some_driver_fn"
        );
        assert_eq!(classify(&[]), "unknown");
    }
}
