//! Where xtask keeps things: downloads in the user cache, build products in target/.

use std::{env, path::PathBuf};

use anyhow::{Context as _, Result};

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or(manifest.clone(), PathBuf::from)
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR` like cargo does.
pub fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// `~/.cache/vfio-trace`: downloads and unpacked kernels, shared by all checkouts.
pub fn cache_dir() -> Result<PathBuf> {
    let base = match env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(base.join("vfio-trace"))
}

/// Where downloaded .debs are kept.
pub fn debs_dir() -> Result<PathBuf> {
    Ok(cache_dir()?.join("debs"))
}

/// Per-kernel lab products: initramfs, share directory.
pub fn lab_dir(kernel: &str) -> PathBuf {
    target_dir().join("lab").join(kernel)
}
