//! The vfio-trace binary for the guest. The initramfs has no glibc, so it is
//! linked statically; built once per xtask invocation, whatever the kernel count.

use std::{env, path::PathBuf, process::Command, sync::OnceLock};

use anyhow::{Context as _, Result};

use crate::{cmd, paths};

const TARGET: &str = "x86_64-unknown-linux-gnu";

static BUILT: OnceLock<PathBuf> = OnceLock::new();

/// The path of the static guest binary, building it on the first call.
pub fn binary() -> Result<PathBuf> {
    if let Some(path) = BUILT.get() {
        return Ok(path.clone());
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    cmd::run(
        Command::new(cargo)
            .current_dir(paths::workspace_root())
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .args(["build", "--release", "-p", "vfio-trace", "--target", TARGET]),
    )
    .context("building the static vfio-trace for the guest")?;
    let path = paths::target_dir().join(TARGET).join("release/vfio-trace");
    Ok(BUILT.get_or_init(|| path).clone())
}
