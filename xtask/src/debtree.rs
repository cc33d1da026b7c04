//! Debian programs for the guest: a pinned package and every library it
//! needs, glibc included (the initramfs has none), downloaded with the private
//! apt into the project cache and unpacked into the lab share with
//! `dpkg-deb -x`. Nothing is installed on the host. The guest runs the program
//! through the unpacked loader.

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

/// The package files, one a line; written once all of them are downloaded.
const MANIFEST: &str = "manifest";
/// In the unpacked tree: the files it was unpacked from.
const MARKER: &str = ".vfio-trace-unpacked";

/// One program's tree in the share.
pub struct DebTree {
    /// `NAME=VERSION` specs: the program first, then any data packages.
    pub specs: &'static [&'static str],
    /// Libraries from this release only, whatever else the private sources carry.
    pub release: &'static str,
    /// The directory in the share, the guest's /mnt/host/`share_dir`.
    pub share_dir: &'static str,
    /// A file the unpacked tree must hold, relative to it.
    pub binary: &'static str,
}

impl DebTree {
    /// The .deb files, downloading them on first use.
    pub fn debs(&self) -> Result<Vec<PathBuf>> {
        let dir = paths::debs_dir()?.join(self.specs.join("+").replace('=', "-"));
        if let Ok(text) = fs::read_to_string(dir.join(MANIFEST)) {
            let files: Vec<PathBuf> = text.lines().map(|l| dir.join(l)).collect();
            if !files.is_empty() && files.iter().all(|f| f.is_file()) {
                return Ok(files);
            }
        }
        let mut apt = PrivateApt::new()?;
        let pkgs = apt
            .closure(self.specs, self.release)
            .with_context(|| format!("resolving {} and its libraries", self.specs.join(" ")))?;
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
        let manifest = lines(files.iter().filter_map(|f| f.file_name()?.to_str()));
        fs::write(dir.join(MANIFEST), manifest).context("writing the package manifest")?;
        Ok(files)
    }

    /// Unpacks `debs` into the share unless that tree came from the same files.
    pub fn stage(&self, debs: &[PathBuf], share: &Path) -> Result<()> {
        let dest = share.join(self.share_dir);
        let stamp = lines(debs.iter().map(|d| d.display()));
        if fs::read_to_string(dest.join(MARKER)).ok().as_deref() == Some(stamp.as_str()) {
            return Ok(());
        }
        let staging = share.join(format!("{}.new", self.share_dir));
        cmd::remove(&staging)?;
        cmd::mkdir(&staging)?;
        for deb in debs {
            cmd::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&staging))
                .with_context(|| format!("unpacking {}", deb.display()))?;
        }
        if !staging.join(self.binary).is_file() {
            bail!("no {} in the unpacked packages", self.binary);
        }
        fs::write(staging.join(MARKER), stamp).context("writing the unpack marker")?;
        cmd::remove(&dest)?;
        fs::rename(&staging, &dest).with_context(|| format!("moving into {}", dest.display()))
    }
}

fn lines<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.fold(String::new(), |mut s, i| {
        let _ = writeln!(s, "{i}");
        s
    })
}
