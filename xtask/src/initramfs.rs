//! The guest initramfs: static busybox, the vfio/virtio/9p module closure
//! (decompressed, since busybox insmod reads only plain .ko) and guest/init.sh.
//! The virtio-net closure is there too, listed apart: init loads it only when
//! the kernel command line asks for networking.

use std::{
    fmt::Write as _,
    fs,
    hash::{DefaultHasher, Hash as _, Hasher as _},
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{cmd, kernels::Kernel};

const INIT: &str = include_str!("../guest/init.sh");
const BUSYBOX: &str = "/bin/busybox";
const MODULES: &[&str] = &[
    "vfio-pci",
    "vfio_iommu_type1",
    "virtio_pci",
    "9pnet_virtio",
    "9p",
];
/// Loaded only with `vfio_trace.net` on the kernel command line.
const NET_MODULES: &[&str] = &["virtio_net"];

/// `dir/initrd.cpio.gz` for `kernel`, rebuilt when its inputs changed.
pub fn ensure(kernel: &Kernel, dir: &Path) -> Result<PathBuf> {
    let modules = module_closure(kernel, MODULES, &[])?;
    let net_modules = module_closure(kernel, NET_MODULES, &modules)?;
    let initrd = dir.join("initrd.cpio.gz");
    let stamp_file = dir.join("initrd.stamp");
    let stamp = stamp(kernel, &modules, &net_modules)?;
    if initrd.is_file() && fs::read_to_string(&stamp_file).ok() == Some(stamp.clone()) {
        return Ok(initrd);
    }
    let staging = dir.join("initramfs");
    stage(&staging, &modules, &net_modules).context("staging the initramfs")?;
    let tmp = dir.join("initrd.cpio.gz.tmp");
    pack(&staging, &tmp)?;
    fs::rename(&tmp, &initrd).with_context(|| format!("renaming to {}", initrd.display()))?;
    fs::write(&stamp_file, stamp).context("writing initrd stamp")?;
    Ok(initrd)
}

/// What the initramfs is made of; a different stamp means a rebuild.
fn stamp(kernel: &Kernel, modules: &[PathBuf], net_modules: &[PathBuf]) -> Result<String> {
    let busybox = fs::metadata(BUSYBOX).with_context(|| format!("{BUSYBOX} (busybox-static)"))?;
    let mut init_hash = DefaultHasher::new();
    INIT.hash(&mut init_hash);
    let mut s = format!(
        "kernel {} {}\ninit {:016x}\nbusybox {} {:?}\n",
        kernel.key,
        kernel.release,
        init_hash.finish(),
        busybox.len(),
        busybox.modified().ok()
    );
    for m in modules {
        let _ = writeln!(s, "module {}", m.display());
    }
    for m in net_modules {
        let _ = writeln!(s, "net module {}", m.display());
    }
    Ok(s)
}

/// The ordered, de-duplicated module files for `wanted`, dependencies first,
/// leaving out those already in `loaded`.
fn module_closure(kernel: &Kernel, wanted: &[&str], loaded: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = Vec::new();
    let modules_dir = kernel.root.join("lib/modules").join(&kernel.release);
    // 7.3's packages ship no modules.builtin, so modprobe cannot tell a built-in
    // module from a missing one; there, not found means built in.
    let builtin_known = modules_dir.join("modules.builtin").is_file();
    for module in wanted {
        let out = cmd::output(
            Command::new("modprobe")
                .arg("-d")
                .arg(&kernel.root)
                .arg("-S")
                .arg(&kernel.release)
                .arg("--show-depends")
                .arg(module),
        );
        let out = match out {
            Ok(out) => out,
            Err(_) if !builtin_known => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("resolving module {module} of kernel {}", kernel.key)
                });
            }
        };
        for path in parse_show_depends(&out) {
            if !files.contains(&path) && !loaded.contains(&path) {
                files.push(path);
            }
        }
    }
    Ok(files)
}

/// `insmod PATH [OPTIONS]` lines give files; `builtin NAME` lines need nothing.
fn parse_show_depends(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|l| l.strip_prefix("insmod "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(PathBuf::from)
        .collect()
}

/// `x.ko.xz` -> `x.ko`.
fn plain_name(path: &Path) -> Result<String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("odd module path {}", path.display()))?;
    let plain = name
        .strip_suffix(".xz")
        .or_else(|| name.strip_suffix(".zst"))
        .or_else(|| name.strip_suffix(".gz"))
        .unwrap_or(name);
    Ok(plain.to_owned())
}

fn stage(root: &Path, modules: &[PathBuf], net_modules: &[PathBuf]) -> Result<()> {
    cmd::remove(root)?;
    for dir in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "etc",
        "mnt/host",
        "lib/modules",
    ] {
        cmd::mkdir(&root.join(dir))?;
    }
    fs::copy(BUSYBOX, root.join("bin/busybox")).context("copying busybox")?;
    // Applet links made here, so /init needs no setup before its first command.
    let applets = cmd::output(Command::new(BUSYBOX).arg("--list-full"))?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
        let link = root.join(applet);
        if applet == "bin/busybox" || link.exists() {
            continue;
        }
        symlink("/bin/busybox", &link).with_context(|| format!("linking {applet}"))?;
    }

    for (list, modules) in [("modules.order", modules), ("modules.net", net_modules)] {
        let mut order = String::new();
        for module in modules {
            let name = plain_name(module)?;
            let dest = root.join("lib/modules").join(&name);
            decompress(module, &dest)?;
            order.push_str(&name);
            order.push('\n');
        }
        fs::write(root.join("etc").join(list), order).with_context(|| format!("writing {list}"))?;
    }

    let init = root.join("init");
    fs::write(&init, INIT).context("writing /init")?;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755)).context("chmod /init")
}

fn decompress(src: &Path, dest: &Path) -> Result<()> {
    let tool = match src.extension().and_then(|e| e.to_str()) {
        Some("xz") => "xz",
        Some("zst") => "zstd",
        Some("gz") => "gzip",
        _ => {
            fs::copy(src, dest).with_context(|| format!("copying {}", src.display()))?;
            return Ok(());
        }
    };
    let out = fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    cmd::run(Command::new(tool).arg("-dc").arg(src).stdout(out))
}

/// `find . | cpio -o -H newc | gzip` in `staging`, owned by root in the archive.
fn pack(staging: &Path, dest: &Path) -> Result<()> {
    let out = fs::File::create(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut find = Command::new("find")
        .arg(".")
        .current_dir(staging)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting find")?;
    let mut cpio = Command::new("cpio")
        .args(["--quiet", "-o", "-H", "newc", "-R", "0:0"])
        .current_dir(staging)
        .stdin(find.stdout.take().context("find stdout")?)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cpio")?;
    let gzip = Command::new("gzip")
        .arg("-1")
        .stdin(cpio.stdout.take().context("cpio stdout")?)
        .stdout(out)
        .status()
        .context("running gzip")?;
    let cpio = cpio.wait().context("waiting for cpio")?;
    let find = find.wait().context("waiting for find")?;
    if !(find.success() && cpio.success() && gzip.success()) {
        bail!(
            "packing {}: find {find}, cpio {cpio}, gzip {gzip}",
            staging.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    #[test]
    fn show_depends() {
        let out = "builtin virtio\ninsmod /k/lib/modules/6.1/kernel/vfio.ko \n\
                   insmod /k/lib/modules/6.1/kernel/vfio_iommu_type1.ko.xz opt=1\n";
        assert_eq!(
            super::parse_show_depends(out),
            [
                PathBuf::from("/k/lib/modules/6.1/kernel/vfio.ko"),
                PathBuf::from("/k/lib/modules/6.1/kernel/vfio_iommu_type1.ko.xz"),
            ]
        );
    }

    #[test]
    fn plain_name() {
        for (path, plain) in [
            ("a/vfio-pci.ko.xz", "vfio-pci.ko"),
            ("9p.ko.zst", "9p.ko"),
            ("x.ko", "x.ko"),
        ] {
            assert_eq!(
                super::plain_name(Path::new(path)).ok().as_deref(),
                Some(plain)
            );
        }
    }
}
