//! A private apt configuration for downloading pinned .debs: its own sources,
//! lists and cache under ~/.cache/vfio-trace/apt, so the system's apt sources and
//! state are never touched (and nothing is installed from either backports).

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
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main
";

/// A pinned package: name and exact version.
#[derive(Clone, Copy, Debug)]
pub struct Pinned {
    pub name: &'static str,
    pub version: &'static str,
}

impl Pinned {
    /// The downloaded file for this package in `dir`, if there is one.
    pub fn find_in(&self, dir: &Path) -> Option<PathBuf> {
        find_deb(dir, self.name, self.version)
    }
}

/// The downloaded file for `name` at `version` in `dir`, if there is one.
/// apt names it `NAME_VERSION_ARCH.deb` with ':' escaped as %3a.
pub fn find_deb(dir: &Path, name: &str, version: &str) -> Option<PathBuf> {
    let prefix = format!("{name}_{}_", version.replace(':', "%3a"));
    fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let file = e.file_name();
        let file = file.to_str()?;
        (file.starts_with(&prefix) && Path::new(file).extension().is_some_and(|x| x == "deb"))
            .then(|| e.path())
    })
}

/// `Inst NAME (VERSION ...)` lines of `apt-get -s install`: what would be installed.
pub fn parse_simulated(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .filter_map(|rest| {
            let (name, rest) = rest.split_once(" (")?;
            let version = rest.split_whitespace().next()?;
            Some((name.to_owned(), version.to_owned()))
        })
        .collect()
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

    /// Refreshes the package lists, once per `PrivateApt`.
    fn update(&mut self) -> Result<()> {
        if !self.updated {
            cmd::run(self.apt_get().arg("update")).context("private apt-get update")?;
            self.updated = true;
        }
        Ok(())
    }

    /// `specs` (`NAME=VERSION`) and everything they need, as (name, version), as
    /// apt would install them on an empty system, preferring `release`: the
    /// closure of a program to run outside any installed system. Nothing is
    /// installed: apt only simulates, against an empty status file.
    pub fn closure(&mut self, specs: &[&str], release: &str) -> Result<Vec<(String, String)>> {
        let simulate = |apt: &Self| {
            cmd::output(
                apt.apt_get()
                    .arg(format!("-o=APT::Default-Release={release}"))
                    .args(["-s", "--no-install-recommends", "install"])
                    .args(specs),
            )
        };
        let out = match simulate(self) {
            Ok(out) => out,
            // Lists may be missing or older than what the archive still has.
            Err(_) if !self.updated => {
                self.update()?;
                simulate(self)?
            }
            Err(e) => return Err(e),
        };
        let pkgs = parse_simulated(&out);
        if pkgs.is_empty() {
            bail!("apt would install nothing for {}:\n{out}", specs.join(" "));
        }
        Ok(pkgs)
    }

    /// Downloads `NAME=VERSION` specs into `dest` (all of them, present or not).
    pub fn download(&mut self, specs: &[String], dest: &Path) -> Result<()> {
        cmd::mkdir(dest)?;
        let get =
            |apt: &Self| cmd::run(apt.apt_get().arg("download").args(specs).current_dir(dest));
        let result = match get(self) {
            // Lists older than the archive name versions it no longer has.
            Err(_) if !self.updated => {
                self.update()?;
                get(self)
            }
            other => other,
        };
        result.with_context(|| format!("downloading {}", specs.join(" ")))
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
            self.update()?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn simulated_install() {
        let out = "NOTE: This is only a simulation!\n\
                   Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])\n\
                   Inst libgcc-s1 (12.2.0-14+deb12u1 Debian:12.15/oldstable [amd64]) []\n\
                   Inst libllvm14 (1:14.0.6-12 Debian:12.15/oldstable [amd64])\n\
                   Conf libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])\n";
        let got = super::parse_simulated(out);
        let want = [
            ("libc6", "2.36-9+deb12u14"),
            ("libgcc-s1", "12.2.0-14+deb12u1"),
            ("libllvm14", "1:14.0.6-12"),
        ];
        assert_eq!(got.len(), want.len());
        for ((name, version), (n, v)) in got.iter().zip(want) {
            assert_eq!((name.as_str(), version.as_str()), (n, v));
        }
    }
}
