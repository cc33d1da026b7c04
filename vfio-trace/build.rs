//! Builds the eBPF programs from source and leaves the object in `OUT_DIR`, where
//! `probe::load` embeds it.
//!
//! The eBPF target needs `-Z build-std=core`, so the toolchain must ship the
//! library source of its own version. `cargo xtask setup` links one as
//! `rustc-web-1.96`; a nightly with rust-src works too:
//! `VFIO_TRACE_EBPF_TOOLCHAIN=nightly cargo build`.

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

const TOOLCHAIN_ENV: &str = "VFIO_TRACE_EBPF_TOOLCHAIN";
const DEFAULT_TOOLCHAIN: &str = "rustc-web-1.96";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed={TOOLCHAIN_ENV}");
    let toolchain = std::env::var(TOOLCHAIN_ENV).unwrap_or_else(|_| DEFAULT_TOOLCHAIN.into());
    if !toolchain.starts_with("nightly") {
        // A stable compiler with matching library source builds core only with this.
        // SAFETY: build scripts are single-threaded; the child cargo inherits it.
        unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    }
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "vfio-trace-ebpf")
        .ok_or_else(|| anyhow!("vfio-trace-ebpf package not found"))?;
    let root = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    aya_build::build_ebpf(
        [Package {
            name: ebpf.name.as_str(),
            root_dir: root.as_str(),
            ..Default::default()
        }],
        Toolchain::Custom(&toolchain),
    )
    .with_context(|| {
        format!("building the eBPF programs with toolchain {toolchain} (run `cargo xtask setup`)")
    })
}
