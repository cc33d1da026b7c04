//! The QEMU that runs lab guests. The system's `qemu-system-x86_64` when it
//! has one; otherwise a private copy in the project cache, for a host whose
//! apt cannot install QEMU without replacing the user's own QEMU packages (a
//! backported qemu-utils, say, with no backports in its sources). The copy is
//! Debian's QEMU 10 with every library it needs, run through its own loader:
//! nothing is installed on the host.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::{debtree::DebTree, paths};

/// The private copy: the same packages the nested client uses for QEMU 10.
const TREE: DebTree = DebTree {
    specs: &["qemu-system-x86=1:10.0.2+ds-2+deb13u1~bpo12+1"],
    release: "bookworm-backports",
    share_dir: "host-qemu",
    binary: "usr/bin/qemu-system-x86_64",
};

const BINARY: &str = "qemu-system-x86_64";

/// Where the private copy is unpacked.
fn tree_dir() -> Result<PathBuf> {
    Ok(paths::cache_dir()?.join(TREE.share_dir))
}

/// True when `qemu-system-x86_64` is on `PATH`.
pub fn on_path() -> bool {
    env::var_os("PATH").is_some_and(|p| env::split_paths(&p).any(|d| d.join(BINARY).is_file()))
}

/// Downloads (once) and unpacks the private copy.
pub fn ensure_private() -> Result<()> {
    let cache = paths::cache_dir()?;
    TREE.stage(&TREE.debs()?, &cache)
        .context("unpacking a private QEMU")
}

/// The command that starts QEMU: the system's, else the private copy when
/// it is unpacked.
pub fn command() -> Command {
    if !on_path()
        && let Ok(dir) = tree_dir()
        && dir.join(TREE.binary).is_file()
    {
        return private_command(&dir);
    }
    Command::new(BINARY)
}

/// QEMU from the unpacked tree `q`, through the tree's own loader and
/// libraries, with its firmware and modules.
fn private_command(q: &Path) -> Command {
    let loader = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64"]
        .iter()
        .map(|d| q.join(d).join("ld-linux-x86-64.so.2"))
        .find(|l| l.is_file())
        .unwrap_or_else(|| q.join("lib64/ld-linux-x86-64.so.2"));
    let libs = [
        "lib/x86_64-linux-gnu",
        "usr/lib/x86_64-linux-gnu",
        "usr/lib/x86_64-linux-gnu/pulseaudio",
    ]
    .map(|d| q.join(d).display().to_string())
    .join(":");
    let mut c = Command::new(loader);
    c.env("QEMU_MODULE_DIR", q.join("usr/lib/x86_64-linux-gnu/qemu"))
        .arg("--library-path")
        .arg(libs)
        .arg(q.join(TREE.binary))
        // bios-256k.bin is a real file only under seabios's directory; the
        // option ROMs are under qemu's. QEMU searches every -L in turn.
        .arg("-L")
        .arg(q.join("usr/share/seabios"))
        .arg("-L")
        .arg(q.join("usr/share/qemu"));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_private_copy_runs_through_its_own_loader_and_firmware() {
        let q = Path::new("/c/host-qemu");
        let c = private_command(q);
        assert_eq!(c.get_program(), "/c/host-qemu/lib64/ld-linux-x86-64.so.2");
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[0], "--library-path");
        assert!(args[1].starts_with("/c/host-qemu/lib/x86_64-linux-gnu:"));
        assert_eq!(args[2], "/c/host-qemu/usr/bin/qemu-system-x86_64");
        assert_eq!(
            &args[3..],
            [
                "-L",
                "/c/host-qemu/usr/share/seabios",
                "-L",
                "/c/host-qemu/usr/share/qemu"
            ]
        );
    }
}
