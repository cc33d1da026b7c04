//! bpftrace for the guest, the other tool the bench compares against: Debian
//! bookworm's bpftrace 0.17 and every library it needs, glibc included (the
//! initramfs has none), downloaded with the private apt and unpacked into the
//! lab share with `dpkg-deb -x`. Nothing is installed on the host. The guest
//! runs it through the unpacked loader (guest/bench.sh).

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    apt::{PrivateApt, find_deb},
    cmd, paths,
};

const SPEC: &str = "bpftrace=0.17.0-1";
/// Libraries from bookworm only, whatever else the private sources carry.
const RELEASE: &str = "bookworm";
/// The package files, one a line; written once all of them are downloaded.
const MANIFEST: &str = "manifest";
/// In the unpacked tree: the manifest it was unpacked from.
const MARKER: &str = ".vfio-trace-unpacked";
/// The directory in the share, the guest's /mnt/host/bpftrace.
pub const SHARE_DIR: &str = "bpftrace";

/// The .deb files, downloading them on first use.
pub fn debs() -> Result<Vec<PathBuf>> {
    let dir = paths::debs_dir()?.join(SPEC.replace('=', "-"));
    if let Ok(text) = fs::read_to_string(dir.join(MANIFEST)) {
        let files: Vec<PathBuf> = text.lines().map(|l| dir.join(l)).collect();
        if !files.is_empty() && files.iter().all(|f| f.is_file()) {
            return Ok(files);
        }
    }
    let mut apt = PrivateApt::new()?;
    let pkgs = apt
        .closure(SPEC, RELEASE)
        .with_context(|| format!("resolving {SPEC} and its libraries"))?;
    let missing: Vec<String> = pkgs
        .iter()
        .filter(|(n, v)| find_deb(&dir, n, v).is_none())
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    if !missing.is_empty() {
        apt.download(&missing, &dir)?;
    }
    let files = pkgs
        .iter()
        .map(|(n, v)| {
            find_deb(&dir, n, v)
                .with_context(|| format!("{n}={v} not in {} after download", dir.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let manifest =
        files
            .iter()
            .filter_map(|f| f.file_name()?.to_str())
            .fold(String::new(), |mut s, f| {
                let _ = writeln!(s, "{f}");
                s
            });
    fs::write(dir.join(MANIFEST), manifest).context("writing the bpftrace manifest")?;
    Ok(files)
}

/// Unpacks `debs` into `share/bpftrace` unless that tree came from the same files.
pub fn stage(debs: &[PathBuf], share: &Path) -> Result<()> {
    let dest = share.join(SHARE_DIR);
    let stamp = debs.iter().fold(String::new(), |mut s, d| {
        let _ = writeln!(s, "{}", d.display());
        s
    });
    if fs::read_to_string(dest.join(MARKER)).ok().as_deref() == Some(stamp.as_str()) {
        return Ok(());
    }
    let staging = share.join(format!("{SHARE_DIR}.new"));
    cmd::remove(&staging)?;
    cmd::mkdir(&staging)?;
    for deb in debs {
        cmd::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&staging))
            .with_context(|| format!("unpacking {}", deb.display()))?;
    }
    if !staging.join("usr/bin/bpftrace").is_file() {
        bail!("no usr/bin/bpftrace in the unpacked packages");
    }
    fs::write(staging.join(MARKER), stamp).context("writing the unpack marker")?;
    cmd::remove(&dest)?;
    fs::rename(&staging, &dest).with_context(|| format!("moving into {}", dest.display()))
}
