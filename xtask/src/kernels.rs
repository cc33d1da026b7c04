//! The pinned guest kernels: Debian's own builds, downloaded and unpacked into
//! ~/.cache/vfio-trace/kernels/<key>/, never installed.

use std::{
    fmt::Write as _,
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    apt::{Pinned, PrivateApt},
    cmd, paths,
};

pub struct KernelSpec {
    pub key: &'static str,
    pub packages: &'static [Pinned],
    pub facts: Facts,
}

/// What a kernel's vfio-pci does that the suite's expectations depend on,
/// named here once instead of tested by version in each check.
#[derive(Debug)]
pub struct Facts {
    /// Before 6.10 the first fault remaps the whole VMA (`remap_pfn_range`):
    /// a mapping faults once, whatever it touches, and inserts no pages
    /// one by one, so faults have no per-order counts to compare.
    pub remaps_whole_vma: bool,
    /// The function each zap of a vfio device calls once: truth.sh's
    /// `vt_<function>` hist of its stacks counts zaps by cause.
    pub zap_function: &'static str,
}

/// vfio-pci before 6.10: zaps go through its own helper.
const REMAP: Facts = Facts {
    remaps_whole_vma: true,
    zap_function: "vfio_pci_zap_and_vma_lock",
};

/// vfio-pci from 6.12: one insert per `huge_fault`, zaps through the device's
/// own address space.
const HUGE_FAULT: Facts = Facts {
    remaps_whole_vma: false,
    zap_function: "unmap_mapping_range",
};

const fn pin(name: &'static str, version: &'static str) -> Pinned {
    Pinned { name, version }
}

/// The kernels the lab boots. From 7.3.4 linux-image-* is an empty meta package:
/// vmlinuz is in linux-binary-*, the modules in linux-modules-*.
pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        key: "6.1",
        packages: &[pin("linux-image-6.1.0-56-amd64", "6.1.192-2")],
        facts: REMAP,
    },
    KernelSpec {
        key: "6.12",
        packages: &[pin(
            "linux-image-6.12.117+deb12-amd64",
            "6.12.117-1~deb12u1",
        )],
        facts: HUGE_FAULT,
    },
    KernelSpec {
        key: "6.18",
        packages: &[pin("linux-image-6.18.15+deb13-amd64", "6.18.15-1~bpo13+1")],
        facts: HUGE_FAULT,
    },
    KernelSpec {
        key: "7.3",
        packages: &[
            pin("linux-binary-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1"),
            pin("linux-modules-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1"),
        ],
        facts: HUGE_FAULT,
    },
];

pub fn spec(key: &str) -> Result<&'static KernelSpec> {
    if let Some(spec) = KERNELS.iter().find(|k| k.key == key) {
        Ok(spec)
    } else {
        let known: Vec<&str> = KERNELS.iter().map(|k| k.key).collect();
        bail!("unknown kernel {key:?}; known: {}", known.join(", "))
    }
}

/// An unpacked kernel.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub key: &'static str,
    /// The unpacked tree; `lib/modules/<release>` resolves inside it.
    pub root: PathBuf,
    pub release: String,
    pub vmlinuz: PathBuf,
}

/// Written last, so a half-finished unpack is redone; holds what was unpacked.
const MARKER: &str = ".vfio-trace-unpacked";

fn root(spec: &KernelSpec) -> Result<PathBuf> {
    Ok(paths::cache_dir()?.join("kernels").join(spec.key))
}

/// `kernels/6.12` -> `kernels/6.12.SUFFIX` (`with_extension` would replace ".12").
fn sibling(root: &Path, suffix: &str) -> PathBuf {
    let mut name = root.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn marker_text(spec: &KernelSpec) -> String {
    spec.packages.iter().fold(String::new(), |mut s, p| {
        let _ = writeln!(s, "{}={}", p.name, p.version);
        s
    })
}

pub fn is_extracted(spec: &KernelSpec) -> Result<bool> {
    let marker = root(spec)?.join(MARKER);
    Ok(fs::read_to_string(marker).ok() == Some(marker_text(spec)))
}

/// The unpacked kernel, downloading and unpacking it first when needed.
pub fn ensure(spec: &'static KernelSpec, apt: &mut PrivateApt) -> Result<Kernel> {
    let root = root(spec)?;
    if !is_extracted(spec)? {
        cmd::mkdir(&paths::cache_dir()?.join("kernels"))?;
        let _lock = cmd::lock(
            &sibling(&root, "lock"),
            &format!("another unpack of kernel {}", spec.key),
        )?;
        // Someone else may have finished it while this waited.
        if !is_extracted(spec)? {
            unpack(spec, &root, apt).with_context(|| format!("unpacking kernel {}", spec.key))?;
        }
    }
    locate(spec.key, &root)
}

/// Like `ensure`, but only builds a private apt when a download is needed.
pub fn prepare(key: &str) -> Result<Kernel> {
    let spec = spec(key)?;
    if is_extracted(spec)? {
        locate(spec.key, &root(spec)?)
    } else {
        ensure(spec, &mut PrivateApt::new()?)
    }
}

/// Unpacks beside `root` and swaps it in, so a tree in use is not emptied midway.
fn unpack(spec: &KernelSpec, root: &Path, apt: &mut PrivateApt) -> Result<()> {
    let debs = apt.fetch(spec.packages, &paths::debs_dir()?)?;
    let staging = sibling(root, "new");
    cmd::remove(&staging)?;
    cmd::mkdir(&staging)?;
    for deb in &debs {
        cmd::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&staging))?;
    }
    prepare_tree(spec, &staging)?;
    cmd::remove(root)?;
    fs::rename(&staging, root).with_context(|| format!("moving into {}", root.display()))
}

/// Links lib/, runs depmod and writes the marker, all inside `root`.
fn prepare_tree(spec: &KernelSpec, root: &Path) -> Result<()> {
    // depmod -b and modprobe -d only look in ROOT/lib/modules; newer packages
    // use usr/lib/modules.
    if !root.join("lib").exists() && root.join("usr/lib/modules").is_dir() {
        symlink("usr/lib", root.join("lib")).context("linking lib -> usr/lib")?;
    }
    let kernel = locate(spec.key, root)?;
    cmd::output(
        Command::new("depmod")
            .arg("-b")
            .arg(root)
            .arg(&kernel.release),
    )
    .context("depmod")?;
    fs::write(root.join(MARKER), marker_text(spec)).context("writing unpack marker")
}

/// Finds vmlinuz: boot/vmlinuz-<release> in older packages,
/// lib/modules/<release>/vmlinuz in newer ones.
fn locate(key: &'static str, root: &Path) -> Result<Kernel> {
    let boot = root.join("boot");
    if let Ok(entries) = fs::read_dir(&boot) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(release) = name.strip_prefix("vmlinuz-") {
                return found(key, root, release.to_owned(), e.path());
            }
        }
    }
    let modules = root.join("lib/modules");
    if let Ok(entries) = fs::read_dir(&modules) {
        for e in entries.flatten() {
            let vmlinuz = e.path().join("vmlinuz");
            if vmlinuz.is_file() {
                let release = e.file_name().to_string_lossy().into_owned();
                return found(key, root, release, vmlinuz);
            }
        }
    }
    bail!("no vmlinuz under {}", root.display())
}

fn found(key: &'static str, root: &Path, release: String, vmlinuz: PathBuf) -> Result<Kernel> {
    if !root.join("lib/modules").join(&release).is_dir() {
        bail!("no lib/modules/{release} under {}", root.display());
    }
    Ok(Kernel {
        key,
        root: root.to_owned(),
        release,
        vmlinuz,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The facts agree with the version each kernel's key names.
    #[test]
    fn facts_follow_the_version() {
        for k in KERNELS {
            let (major, minor) = k.key.split_once('.').expect("MAJOR.MINOR");
            let version = (
                major.parse::<u32>().expect("major"),
                minor.parse::<u32>().expect("minor"),
            );
            let before_6_10 = version < (6, 10);
            assert_eq!(k.facts.remaps_whole_vma, before_6_10, "{}", k.key);
            let zap = if before_6_10 {
                "vfio_pci_zap_and_vma_lock"
            } else {
                "unmap_mapping_range"
            };
            assert_eq!(k.facts.zap_function, zap, "{}", k.key);
        }
    }
}
