//! `cargo xtask test`: everything CI checks, in order, stopping at the first
//! failing stage; the VM suite reports per test.

use std::{env, process::Command};

use anyhow::{Context as _, Result};

use crate::{cmd, kernels, paths, promtool, setup, suite};

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Limit the VM suite to this kernel (repeatable).
    #[arg(long = "kernel")]
    kernels: Vec<String>,
    /// Skip the VM suite.
    #[arg(long, conflicts_with = "vm_only")]
    no_vm: bool,
    /// Only the VM suite (still runs setup).
    #[arg(long)]
    vm_only: bool,
    /// Limit the VM suite to this scenario (repeatable): check, faults,
    /// signals, zaps, locks, pid, serve, top, verdict, client, unready.
    #[arg(long = "scenario")]
    scenarios: Vec<String>,
}

/// Returns 0 when everything passed.
pub fn run(args: &TestArgs) -> Result<i32> {
    // Fail on a mistyped kernel before minutes of lints.
    for key in &args.kernels {
        kernels::spec(key)?;
    }
    let scenarios = suite::select(&args.scenarios)?;
    setup::run(&setup::SetupArgs::default_toolchain())?;
    if !args.vm_only {
        host_checks()?;
    }
    if args.no_vm {
        return Ok(0);
    }
    let keys: Vec<&str> = if args.kernels.is_empty() {
        kernels::KERNELS.iter().map(|k| k.key).collect()
    } else {
        args.kernels.iter().map(String::as_str).collect()
    };
    let summary = suite::run_all(&keys, &scenarios);
    println!("{} passed, {} failed", summary.passed, summary.failed);
    Ok(i32::from(summary.failed > 0))
}

fn host_checks() -> Result<()> {
    let cargo = || {
        let mut c = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        c.current_dir(paths::workspace_root());
        c
    };
    // The eBPF crate builds only for the bpf target, inside vfio-trace's build.rs.
    let stages: [(&str, &[&str]); 3] = [
        ("fmt", &["fmt", "--all", "--", "--check"]),
        (
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--exclude",
                "vfio-trace-ebpf",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        (
            "unit tests",
            &["test", "--workspace", "--exclude", "vfio-trace-ebpf"],
        ),
    ];
    // The exposition tests also run promtool over the exporter's text.
    let promtool = promtool::ensure(&mut None)?;
    for (name, args) in stages {
        println!("== {name}");
        cmd::run(cargo().args(args).env(promtool::ENV, &promtool))
            .with_context(|| format!("{name} failed"))?;
        if name == "clippy" {
            println!("== clippy (eBPF, bpf target)");
            cmd::run(&mut ebpf_clippy()).context("clippy of the eBPF crate failed")?;
        }
    }
    Ok(())
}

/// Clippy of the eBPF crate for its own target, with the toolchain that builds it.
fn ebpf_clippy() -> Command {
    let toolchain = env::var("VFIO_TRACE_EBPF_TOOLCHAIN")
        .unwrap_or_else(|_| setup::DEFAULT_EBPF_TOOLCHAIN.to_owned());
    let root = paths::workspace_root();
    let mut c = Command::new("rustup");
    c.args(["run", &toolchain, "cargo", "clippy"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(root.join("target/bpf-clippy"))
        .args(["--", "-D", "warnings"])
        .current_dir(root.join("vfio-trace-ebpf"))
        // The stable toolchain of this kind builds core only with this.
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO");
    c
}
