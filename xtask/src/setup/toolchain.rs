//! The eBPF toolchain: `-Z build-std=core` needs library source matching the
//! compiler exactly. Debian's rustc-web 1.96 ships both; its .debs are unpacked
//! (never installed) and linked into rustup under a name vfio-trace's build.rs uses.

use std::{
    env, fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    apt::{Pinned, PrivateApt},
    cmd, paths,
};

/// Read by vfio-trace's build.rs as well: a user's nightly with rust-src.
const TOOLCHAIN_ENV: &str = "VFIO_TRACE_EBPF_TOOLCHAIN";
pub const DEFAULT_TOOLCHAIN: &str = "rustc-web-1.96";
const VERSION: &str = "1.96.0+dfsg1-1~deb12u2";
const PACKAGES: [&str; 5] = [
    "rustc-web",
    "libstd-rust-web-1.96",
    "libstd-rust-web-dev",
    "rust-web-src",
    // Lints the eBPF crate for its own target.
    "rust-web-clippy",
];

pub fn ensure(name: &str) -> Result<()> {
    if let Ok(user) = env::var(TOOLCHAIN_ENV) {
        let ok = usable(&user);
        println!(
            "ebpf toolchain {user} (from {TOOLCHAIN_ENV}): {}",
            if ok { "ok" } else { "unusable" }
        );
        if !ok {
            bail!(
                "{TOOLCHAIN_ENV}={user}: `rustup run {user} rustc` must work and its sysroot \
                 must hold lib/rustlib/src/rust/library/core (rustup component add rust-src)"
            );
        }
        return Ok(());
    }
    let present = usable(name);
    println!(
        "ebpf toolchain {name}: {}",
        if present { "ok" } else { "installing" }
    );
    if !present {
        install(name).with_context(|| format!("installing toolchain {name}"))?;
        if !usable(name) {
            bail!("toolchain {name} was linked but `rustup run {name} rustc` still fails");
        }
    }
    Ok(())
}

/// The compiler runs, its sysroot carries the library source, and clippy
/// comes with it (the eBPF crate is linted for the bpf target).
fn usable(toolchain: &str) -> bool {
    let rustup = |args: &[&str]| {
        cmd::output(
            Command::new("rustup")
                .args(["run", toolchain, "rustc"])
                .args(args),
        )
    };
    rustup(&["--version"]).is_ok()
        && rustup(&["--print", "sysroot"]).is_ok_and(|root| {
            let root = Path::new(root.trim());
            root.join("lib/rustlib/src/rust/library/core").is_dir()
                && root.join("bin/clippy-driver").is_file()
        })
}

fn install(name: &str) -> Result<()> {
    let debs_dir = paths::debs_dir()?;
    let pinned: Vec<Pinned> = PACKAGES
        .iter()
        .map(|name| Pinned {
            name,
            version: VERSION,
        })
        .collect();
    let debs = PrivateApt::new()?.fetch(&pinned, &debs_dir)?;

    let prefix = paths::cache_dir()?.join("toolchain").join(name);
    cmd::remove(&prefix)?;
    cmd::mkdir(&prefix)?;
    for deb in &debs {
        cmd::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&prefix))?;
    }
    let usr = prefix.join("usr");
    link_rustc_driver(&usr.join("lib"))?;

    // Debian's cargo needs a libgit2 that is not installed; rustup's stable one works.
    let cargo =
        cmd::output(Command::new("rustup").args(["which", "cargo", "--toolchain", "stable"]))
            .context("locating rustup's stable cargo")?;
    let cargo_link = usr.join("bin/cargo");
    cmd::remove(&cargo_link)?;
    symlink(cargo.trim(), &cargo_link)
        .with_context(|| format!("linking {}", cargo_link.display()))?;

    cmd::run(
        Command::new("rustup")
            .args(["toolchain", "link", name])
            .arg(&usr),
    )
}

/// rustc looks for its driver in lib/, Debian puts it in lib/x86_64-linux-gnu/.
fn link_rustc_driver(lib: &Path) -> Result<()> {
    let multiarch = lib.join("x86_64-linux-gnu");
    let drivers: Vec<PathBuf> = fs::read_dir(&multiarch)
        .with_context(|| format!("reading {}", multiarch.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("librustc_driver-"))
                && p.extension().is_some_and(|x| x == "so")
        })
        .collect();
    if drivers.is_empty() {
        bail!("no librustc_driver-*.so in {}", multiarch.display());
    }
    for driver in drivers {
        let Some(file) = driver.file_name() else {
            continue;
        };
        let link = lib.join(file);
        cmd::remove(&link)?;
        symlink(Path::new("x86_64-linux-gnu").join(file), &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(())
}
