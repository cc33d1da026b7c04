//! Development tasks for vfio-trace: `cargo xtask <setup|vm|test|demo>`.

mod apt;
mod cmd;
mod demo;
mod guest;
mod initramfs;
mod kernels;
mod lab;
mod paths;
mod setup;
mod suite;
mod test;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "Build, lab and test automation for vfio-trace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what this machine lacks: packages, eBPF toolchain, bpf-linker, kernels.
    Setup(setup::SetupArgs),
    /// Boot a lab kernel in QEMU and run a command (or a shell) in it.
    Vm(vm::VmArgs),
    /// Formatting, lints, unit tests and the VM suite on every lab kernel.
    Test(test::TestArgs),
    /// Show vfio-trace at work in a 6.12 guest.
    Demo,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Setup(args) => setup::run(&args).map(|()| 0),
        Command::Vm(args) => vm::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Demo => demo::run(),
    };
    match result {
        Ok(status) => ExitCode::from(u8::try_from(status).unwrap_or(1)),
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}
