//! promtool, Prometheus's own checker, for the host tests: Debian bookworm's
//! prometheus package downloaded with the private apt and only its promtool
//! unpacked into the cache (dpkg-deb -x). Nothing is installed; the host's
//! glibc runs it.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{
    apt::{Pinned, PrivateApt},
    cmd, paths,
};

const PACKAGE: Pinned = Pinned {
    name: "prometheus",
    version: "2.42.0+ds-5+deb12u1",
};

/// The environment variable the unit tests read promtool's path from.
pub const ENV: &str = "VFIO_TRACE_PROMTOOL";

fn unpacked() -> Result<PathBuf> {
    Ok(paths::cache_dir()?
        .join(format!("prometheus-{}", PACKAGE.version))
        .join("usr/bin/promtool"))
}

/// Whether promtool is unpacked already.
pub fn is_unpacked() -> bool {
    unpacked().is_ok_and(|p| p.is_file())
}

/// The path of a working promtool, downloading and unpacking it on first use.
pub fn ensure(apt: &mut Option<PrivateApt>) -> Result<PathBuf> {
    let promtool = unpacked()?;
    if promtool.is_file() {
        return Ok(promtool);
    }
    let apt = match apt {
        Some(apt) => apt,
        None => apt.insert(PrivateApt::new()?),
    };
    let debs = apt.fetch(&[PACKAGE], &paths::debs_dir()?)?;
    let root = paths::cache_dir()?.join(format!("prometheus-{}", PACKAGE.version));
    let staging = root.with_extension("new");
    cmd::remove(&staging)?;
    cmd::mkdir(&staging)?;
    for deb in &debs {
        cmd::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&staging))
            .with_context(|| format!("unpacking {}", deb.display()))?;
    }
    if !staging.join("usr/bin/promtool").is_file() {
        bail!("no usr/bin/promtool in {}", PACKAGE.name);
    }
    cmd::remove(&root)?;
    fs::rename(&staging, &root).with_context(|| format!("moving into {}", root.display()))?;
    cmd::output(Command::new(&promtool).arg("--version")).context("running promtool")?;
    Ok(promtool)
}
