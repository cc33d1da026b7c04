//! A private apt configuration for downloading pinned .debs: its own sources,
//! lists and cache under ~/.cache/vfio-trace/apt, so the system's apt sources and
//! state are never touched (and nothing is installed from trixie-backports).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{cmd, paths};

const SOURCES: &str = "\
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
";

/// A pinned package: name and exact version.
#[derive(Clone, Copy, Debug)]
pub struct Pinned {
    pub name: &'static str,
    pub version: &'static str,
}

impl Pinned {
    /// The downloaded file for this package in `dir`, if there is one.
    /// apt names it `NAME_VERSION_ARCH.deb` with ':' escaped as %3a.
    pub fn find_in(&self, dir: &Path) -> Option<PathBuf> {
        let prefix = format!("{}_{}_", self.name, self.version.replace(':', "%3a"));
        fs::read_dir(dir).ok()?.flatten().find_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            (name.starts_with(&prefix) && name.ends_with(".deb")).then(|| e.path())
        })
    }
}

/// The private apt; `update` runs at most once, and only when something is downloaded.
pub struct PrivateApt {
    dir: PathBuf,
    updated: bool,
}

impl PrivateApt {
    pub fn new() -> Result<Self> {
        let dir = paths::cache_dir()?.join("apt");
        cmd::mkdir(&dir.join("lists/partial"))?;
        cmd::mkdir(&dir.join("cache/archives/partial"))?;
        let sources = dir.join("sources.list");
        if fs::read_to_string(&sources).ok().as_deref() != Some(SOURCES) {
            fs::write(&sources, SOURCES)
                .with_context(|| format!("writing {}", sources.display()))?;
        }
        Ok(Self {
            dir,
            updated: false,
        })
    }

    fn apt_get(&self) -> Command {
        let d = self.dir.display();
        let mut c = Command::new("apt-get");
        c.arg("-q")
            .arg(format!("-o=Dir::Etc::SourceList={d}/sources.list"))
            .arg("-o=Dir::Etc::SourceParts=/dev/null")
            .arg(format!("-o=Dir::State::Lists={d}/lists"))
            .arg(format!("-o=Dir::Cache={d}/cache"))
            .arg("-o=Dir::State::Status=/dev/null");
        if cmd::is_root() {
            // The _apt sandbox user cannot write under root's home.
            c.arg("-o=APT::Sandbox::User=root");
        }
        c
    }

    /// Makes sure every package in `pkgs` is in `dest`, downloading what is missing.
    /// Returns the paths in the order given.
    pub fn fetch(&mut self, pkgs: &[Pinned], dest: &Path) -> Result<Vec<PathBuf>> {
        let missing: Vec<String> = pkgs
            .iter()
            .filter(|p| p.find_in(dest).is_none())
            .map(|p| format!("{}={}", p.name, p.version))
            .collect();
        if !missing.is_empty() {
            cmd::mkdir(dest)?;
            if !self.updated {
                cmd::run(self.apt_get().arg("update")).context("private apt-get update")?;
                self.updated = true;
            }
            cmd::run(
                self.apt_get()
                    .arg("download")
                    .args(&missing)
                    .current_dir(dest),
            )
            .with_context(|| format!("downloading {}", missing.join(" ")))?;
        }
        pkgs.iter()
            .map(|p| match p.find_in(dest) {
                Some(path) => Ok(path),
                None => bail!(
                    "{}={} not in {} after download",
                    p.name,
                    p.version,
                    dest.display()
                ),
            })
            .collect()
    }
}
