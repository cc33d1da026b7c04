//! `cargo xtask setup`: install what a fresh Debian 12 machine lacks. Every piece
//! checks first, so a machine that has everything is done in seconds.

mod toolchain;

use std::process::Command;

use anyhow::{Context as _, Result};

use crate::{apt::PrivateApt, cmd, host_qemu, kernels, promtool};

use toolchain::DEFAULT_TOOLCHAIN;
pub use toolchain::DEFAULT_TOOLCHAIN as DEFAULT_EBPF_TOOLCHAIN;

/// System packages, from the machine's own apt sources.
const APT_PACKAGES: &[&str] = &[
    QEMU_PACKAGE,
    "busybox-static",
    "cpio",
    "kmod",
    "xz-utils",
    "zstd",
    // `top`'s terminal test runs it in tmux.
    "tmux",
];
/// Where apt cannot install it without replacing the user's QEMU packages,
/// a private copy runs the guests instead (`host_qemu`).
const QEMU_PACKAGE: &str = "qemu-system-x86";
/// llvm-22 only exists in bookworm-security; pinning the release keeps apt from
/// pulling anything else from there.
const LLVM_PACKAGE: &str = "llvm-22-dev";
const LLVM_RELEASE: &str = "bookworm-security";
const BPF_LINKER_VERSION: &str = "0.13.0";

#[derive(clap::Args, Debug)]
pub struct SetupArgs {
    /// Name of the rustup toolchain to link for the eBPF build.
    #[arg(long, hide = true, default_value = DEFAULT_TOOLCHAIN)]
    pub toolchain_name: String,
}

impl SetupArgs {
    /// What a plain `cargo xtask setup` does, for the commands that start with it.
    pub fn default_toolchain() -> Self {
        Self {
            toolchain_name: DEFAULT_TOOLCHAIN.to_owned(),
        }
    }
}

fn report(thing: &str, present: bool) {
    println!("{thing}: {}", if present { "ok" } else { "installing" });
}

pub fn run(args: &SetupArgs) -> Result<()> {
    apt_packages()?;
    toolchain::ensure(&args.toolchain_name)?;
    bpf_linker()?;
    let mut apt = None;
    for spec in kernels::KERNELS {
        let present = kernels::is_extracted(spec)?;
        report(&format!("kernel {}", spec.key), present);
        if !present {
            let apt = match &mut apt {
                Some(apt) => apt,
                None => apt.insert(PrivateApt::new()?),
            };
            kernels::ensure(spec, apt)?;
        }
    }
    report("promtool", promtool::is_unpacked());
    promtool::ensure(&mut apt)?;
    Ok(())
}

fn installed(pkg: &str) -> bool {
    installed_version(pkg).is_some()
}

/// The version of `pkg` when it is installed.
fn installed_version(pkg: &str) -> Option<String> {
    let out = cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}\t${Version}", pkg]))
        .ok()?;
    let (status, version) = out.trim().split_once('\t')?;
    (status == "install ok installed").then(|| version.to_owned())
}

/// Architecture-specific packages built from QEMU's source, always at one
/// version: qemu-system-x86 must match any of them already installed, or
/// apt would replace the user's (say, a backported qemu-utils).
const QEMU_SIBLINGS: &[&str] = &["qemu-system-common", "qemu-utils", "qemu-block-extra"];

/// What to ask apt for to get `pkg`: QEMU's system emulator at the version of
/// its installed siblings, anything else as it is.
fn request(pkg: &str, version_of: impl Fn(&str) -> Option<String>) -> String {
    if pkg == QEMU_PACKAGE
        && let Some(v) = QEMU_SIBLINGS.iter().find_map(|s| version_of(s))
    {
        return format!("{pkg}={v}");
    }
    pkg.to_owned()
}

fn apt_packages() -> Result<()> {
    let mut missing = Vec::new();
    for pkg in APT_PACKAGES.iter().chain([&LLVM_PACKAGE]) {
        let present = installed(pkg) || (*pkg == QEMU_PACKAGE && host_qemu::on_path());
        report(&format!("package {pkg}"), present);
        if !present {
            missing.push(*pkg);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let apt_get = || {
        let mut c = cmd::privileged("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    cmd::run(apt_get().arg("update")).context("apt-get update")?;
    let (plain, llvm): (Vec<&str>, Vec<&str>) = missing.iter().partition(|p| **p != LLVM_PACKAGE);
    let mut plain: Vec<String> = plain
        .iter()
        .map(|p| request(p, installed_version))
        .collect();
    // Setup never removes or downgrades what the user has: apt stops instead
    // (downgrades it never does unasked).
    let install = ["install", "-y", "--no-install-recommends", "--no-remove"];
    if let Some(i) = plain.iter().position(|p| p.starts_with(QEMU_PACKAGE))
        && !apt_would_install(&install, &plain[i])
    {
        println!(
            "package {QEMU_PACKAGE}: apt cannot install {} beside this machine's QEMU packages; \
             using a private QEMU in the project cache",
            plain[i]
        );
        plain.remove(i);
        host_qemu::ensure_private()?;
    }
    if !plain.is_empty() {
        cmd::run(apt_get().args(install).args(&plain)).context("installing packages")?;
    }
    if !llvm.is_empty() {
        cmd::run(
            apt_get()
                .args(install)
                .args(["-t", LLVM_RELEASE])
                .args(&llvm),
        )
        .with_context(|| format!("installing {LLVM_PACKAGE}"))?;
    }
    Ok(())
}

/// Whether apt, given `install` (the verb and its options), would install
/// `spec`: a dry run (`-s`), which needs no root and changes nothing.
fn apt_would_install(install: &[&str], spec: &str) -> bool {
    cmd::output(Command::new("apt-get").arg("-s").args(install).arg(spec)).is_ok()
}

fn bpf_linker() -> Result<()> {
    let wanted = format!("bpf-linker {}", minor_prefix(BPF_LINKER_VERSION));
    let present = cmd::output(Command::new("bpf-linker").arg("--version"))
        .is_ok_and(|v| v.trim().starts_with(&wanted));
    report("bpf-linker", present);
    if present {
        return Ok(());
    }
    cmd::run(
        Command::new("cargo")
            .env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .args(["install", "--locked"])
            .arg(format!("bpf-linker@{BPF_LINKER_VERSION}"))
            .args(["--no-default-features", "--features", "llvm-22"]),
    )
    .context("installing bpf-linker")
}

/// "0.13.0" -> "0.13.": any patch release of the pinned minor will do.
fn minor_prefix(version: &str) -> String {
    let mut parts = version.splitn(3, '.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}."),
        _ => version.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn minor_prefix() {
        assert_eq!(super::minor_prefix("0.13.0"), "0.13.");
        assert_eq!(super::minor_prefix("7"), "7");
    }
}
