//! The QEMU command line for a lab guest, and the choice between KVM and TCG.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// KVM only where it really works: this kind of host has a nested `kvm_pvm`
/// /dev/kvm that cannot run stock kernels, and no vmx/svm flags.
pub fn kvm_usable() -> bool {
    Path::new("/dev/kvm").exists()
        && !Path::new("/sys/module/kvm_pvm").exists()
        && fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
            info.lines()
                .filter(|l| l.starts_with("flags"))
                .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
        })
}

pub struct QemuConfig<'a> {
    pub vmlinuz: &'a Path,
    pub initrd: &'a Path,
    pub share: &'a Path,
    pub memory_mb: u32,
    pub smp: u8,
    pub kvm: bool,
    /// Extra words for the kernel command line.
    pub cmdline_extra: &'a str,
    /// One 1 GiB ivshmem device behind its own root port per entry.
    pub shm_files: &'a [PathBuf],
    /// User-mode networking with this port forwarded; None: no network device.
    pub forward: Option<super::Forward>,
}

pub fn command(c: &QemuConfig) -> Command {
    let mut q = crate::host_qemu::command();
    if c.kvm {
        q.args(["-accel", "kvm", "-cpu", "host"]);
    } else {
        q.args(["-accel", "tcg,thread=multi", "-cpu", "max"]);
    }
    q.args(["-machine", "q35", "-m"])
        .arg(format!("{}M", c.memory_mb))
        .arg("-smp")
        .arg(c.smp.to_string())
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .args(["-serial", "stdio"])
        // Debian kernels lack VFIO_NOIOMMU, so vfio needs a (emulated) IOMMU.
        // 48-bit IOVAs (QEMU's default from 9.2): a nested QEMU 10 with SeaBIOS
        // 1.16.3 places 64-bit BARs near 1 TiB, past the 39-bit default.
        .args(["-device", "intel-iommu,intremap=off,aw-bits=48"])
        .arg("-kernel")
        .arg(c.vmlinuz)
        .arg("-initrd")
        .arg(c.initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 intel_iommu=on iommu=pt panic=-1 loglevel=4{}",
            c.cmdline_extra
        ));
    for (i, shm) in c.shm_files.iter().enumerate() {
        q.arg("-object")
            .arg(format!(
                "memory-backend-file,id=mb{i},size=1G,share=on,mem-path={}",
                shm.display()
            ))
            .arg("-device")
            .arg(format!(
                "pcie-root-port,id=rp{i},bus=pcie.0,chassis={n},slot={n}",
                n = i + 1
            ))
            .arg("-device")
            .arg(format!("ivshmem-plain,memdev=mb{i},bus=rp{i}"));
    }
    q.arg("-virtfs").arg(format!(
        "local,path={},mount_tag=host0,security_model=none",
        c.share.display()
    ));
    if let Some(f) = c.forward {
        q.arg("-netdev")
            .arg(format!(
                "user,id=n0,hostfwd=tcp:127.0.0.1:{}-:{}",
                f.host_port, f.guest_port
            ))
            .args(["-device", "virtio-net-pci,netdev=n0"]);
    }
    q
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{QemuConfig, command};
    use crate::lab::Forward;

    fn args(forward: Option<Forward>) -> Vec<String> {
        let shm = [PathBuf::from("/dev/shm/x")];
        let q = command(&QemuConfig {
            vmlinuz: Path::new("vmlinuz"),
            initrd: Path::new("initrd"),
            share: Path::new("share"),
            memory_mb: 2048,
            smp: 1,
            kvm: false,
            cmdline_extra: "",
            shm_files: &shm,
            forward,
        });
        q.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn network_only_when_forwarding() {
        let plain = args(None);
        assert!(
            !plain
                .iter()
                .any(|a| a == "-netdev" || a.contains("virtio-net"))
        );
        let net = args(Some(Forward {
            host_port: 19748,
            guest_port: 9748,
        }));
        let at = net.iter().position(|a| a == "-netdev").expect("-netdev");
        assert_eq!(net[at + 1], "user,id=n0,hostfwd=tcp:127.0.0.1:19748-:9748");
        assert_eq!(net[at + 2..at + 4], ["-device", "virtio-net-pci,netdev=n0"]);
        // Everything else is the plain boot's.
        assert_eq!(net[..at], plain[..]);
    }
}
