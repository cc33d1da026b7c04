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
    })?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR")?);
    strip_dwarf(&out.join("vfio-trace"))
}

/// Drops the object's DWARF (`.debug_*` and its relocations), four fifths
/// of its bytes. The linker made the BTF from it; the loader does not use
/// it, but parsing its relocations was a third of loading the object (about
/// 60 ms in a 7.3 guest under emulation).
fn strip_dwarf(path: &std::path::Path) -> anyhow::Result<()> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut elf = object::build::elf::Builder::read(data.as_slice())
        .with_context(|| format!("parsing {}", path.display()))?;
    for section in &mut elf.sections {
        let name = section.name.as_slice();
        if name.starts_with(b".debug_") || name.starts_with(b".rel.debug_") {
            section.delete = true;
        }
    }
    // The linker names sections from the symbols' string table; the
    // writer wants a table of its own for them.
    if !elf
        .sections
        .iter()
        .any(|s| matches!(s.data, object::build::elf::SectionData::SectionString))
    {
        let names = elf.sections.add();
        names.name = b".shstrtab".to_vec().into();
        names.sh_type = object::elf::SHT_STRTAB;
        names.sh_addralign = 1;
        names.data = object::build::elf::SectionData::SectionString;
    }
    let mut stripped = Vec::new();
    elf.write(&mut stripped)
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::write(path, stripped).with_context(|| format!("writing {}", path.display()))
}
